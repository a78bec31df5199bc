/* ReadPipeTransport and WritePipeTransport: C subclasses of
 * asyncio.ReadTransport and asyncio.WriteTransport for pipes, sockets and
 * character devices (PTYs), used by loop.connect_read_pipe(),
 * loop.connect_write_pipe() and the subprocess transport. Behaviour follows
 * asyncio's _UnixReadPipeTransport / _UnixWritePipeTransport
 * (unix_events.py, 3.11+):
 *
 *   - the constructor checks the fd kind (ValueError otherwise), makes it
 *     non-blocking and schedules protocol.connection_made(), then the start
 *     of watching, then the waiter's result; extra['pipe'] is the pipe;
 *   - the read side reads once per readiness event (into the loop's shared
 *     buffer) and calls data_received(); on EOF it stops reading and
 *     schedules eof_received() then connection_lost(None);
 *   - the write side writes at once when nothing is queued, queues the rest
 *     and drains it when the fd is writable, with pause_writing() /
 *     resume_writing() around the water marks; write_eof() and close()
 *     call connection_lost(None) once the queue is drained; abort() drops
 *     it. A write pipe or socket is also watched for readability: that
 *     means the reader went away (connection_lost(BrokenPipeError) if data
 *     was still queued, else connection_lost(None));
 *   - the pipe object owns the fd: the transport closes it (pipe.close())
 *     exactly once, after connection_lost(), or in its finaliser with a
 *     ResourceWarning when it was never closed.
 *
 * Differences from asyncio: an exception raised by data_received() goes to
 * the loop's exception handler with the transport and protocol (asyncio
 * reports the failed _read_ready callback); the transport stays open, as
 * asyncio's. connection_lost() is scheduled once even if abort() follows
 * close(), and a transport closed before its first iteration never starts
 * watching its fd. write() of something that is not bytes-like raises
 * TypeError (asyncio asserts). */
#include "streams.h"
#include "transport.h"
#include "wbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <structmember.h>

#define READ_SIZE (256 * 1024) /* asyncio's max_size; == stream.c READ_SIZE */
/* Once a read returns at least this much, the next reads go straight into
 * a new bytes object (of twice the last size, up to READ_SIZE) instead of
 * the loop's shared buffer plus a copy: a bulk stream skips one memcpy of
 * every byte; small reads keep the shared buffer. */
#define DIRECT_MIN (16 * 1024)

#define ST(self) ((self)->base.loop->state)
#define B(self) (&(self)->base)

/* base.reading: _fl_start() ran (watching has been started). */
typedef struct {
    fl_transport_base base;
    PyObject *pipe;          /* owns the fd; NULL once closed */
    PyObject *data_received; /* cached bound method (read side), or NULL */

    Py_ssize_t last_read; /* read side: bytes the last read() returned */
    fl_wbuf wbuf;         /* write side */

    char writer;        /* a WritePipeTransport */
    char peer_watch;    /* write side: watching for the reader's close */
    char watch_peer_ok; /* write side: the fd is a fifo or a socket */
    char lost;          /* connection_lost() scheduled or called */
    char streams;       /* read side: an adopted StreamReaderProtocol */
} fl_pipe;

static int pipe_on_io(fl_io *io, unsigned events);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* loop.call_exception_handler({message, exception, transport, protocol}).
 * Never raises. */
static void
call_handler(fl_pipe *self, PyObject *exc, const char *msg)
{
    PyObject *ctx, *r = NULL;

    ctx = Py_BuildValue("{s:s,s:O,s:O,s:O}", "message", msg, "exception",
                        exc, "transport", (PyObject *)self, "protocol",
                        self->base.protocol ? self->base.protocol : Py_None);
    if (ctx != NULL) {
        fl_handling handling;

        fl_handling_begin(&handling, exc);
        r = PyObject_CallMethod((PyObject *)self->base.loop,
                                "call_exception_handler", "O", ctx);
        fl_handling_end(&handling);
        Py_DECREF(ctx);
    }
    if (r == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(r);
}

/* Debug mode: asyncio's logger.log(level, fmt, self). Never raises. */
static void
debug_log(fl_pipe *self, int level, const char *fmt)
{
    PyObject *r;

    if (!self->base.loop->debug) {
        return;
    }
    r = PyObject_CallMethod((PyObject *)self->base.loop, "_fl_log_transport",
                            "isO", level, fmt, (PyObject *)self);
    if (r == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(r);
}

#define LOG_DEBUG 10
#define LOG_INFO 20

/* Reports the current exception raised by a protocol callback: returns -1
 * (exception left set) for SystemExit/KeyboardInterrupt, else 0. */
static int
protocol_error(fl_pipe *self, const char *msg)
{
    PyObject *exc;

    if (fl_tr_is_fatal_exc()) {
        return -1;
    }
    exc = fl_tr_fetch_exc();
    if (exc != NULL) {
        call_handler(self, exc, msg);
        Py_DECREF(exc);
    }
    return 0;
}

/* Schedules fn(arg) in the transport's context. 0, or -1 with an
 * exception set (RuntimeError on a closed loop, as call_soon()). */
static int
call_soon_fn(fl_pipe *self, PyObject *fn, PyObject *arg)
{
    PyObject *h;
    int rc;

    if (fl_loop_check_closed(self->base.loop) < 0) {
        return -1;
    }
    h = fl_handle_new(ST(self), self->base.loop, fn, &arg, arg ? 1 : 0,
                      self->base.context);
    if (h == NULL) {
        return -1;
    }
    rc = fl_ready_push(&self->base.loop->ready, h);
    Py_DECREF(h);
    return rc;
}

static int
call_soon_method(fl_pipe *self, const char *name, PyObject *arg)
{
    return fl_tb_call_soon(B(self), name, arg);
}

/* ------------------------------------------------------------------ */
/* Watcher                                                             */

static unsigned
wanted_mask(fl_pipe *self)
{
    unsigned m = 0;

    if (!self->base.initialised || self->base.fd_closed ||
        self->base.loop->closed)
    {
        return 0;
    }
    if (self->writer) {
        if (self->peer_watch) {
            m |= FL_READ;
        }
        if (self->wbuf.len) {
            m |= FL_WRITE;
        }
    }
    else if (self->base.reading && !self->base.paused && !self->base.closing) {
        m |= FL_READ;
    }
    return m;
}

/* Brings the loop's watcher in line with the transport's state. May drop
 * the loop's reference to self: callers hold their own. */
static int
update_io(fl_transport_base *b)
{
    return fl_tb_set_mask(b, wanted_mask((fl_pipe *)b));
}

static void
update_io_noerr(fl_pipe *self)
{
    if (update_io(B(self)) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */

/* Closes the fd exactly once, through the pipe object that owns it.
 * Returns -1 with an exception set if pipe.close() raised (the fd counts
 * as closed all the same). */
static int
close_pipe(fl_pipe *self)
{
    PyObject *pipe, *r;

    if (self->base.fd_closed) {
        return 0;
    }
    self->base.fd_closed = 1;
    fl_io_stop(self->base.loop, &self->base.io);
    pipe = self->pipe;
    self->pipe = NULL;
    if (pipe == NULL) {
        return 0;
    }
    r = PyObject_CallMethod(pipe, "close", NULL);
    Py_DECREF(pipe);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* asyncio's _close(exc): stop everything, schedule connection_lost(). */
static int
do_close(fl_transport_base *b, PyObject *exc)
{
    fl_pipe *self = (fl_pipe *)b;
    int rc = 0;

    Py_INCREF(self);
    self->base.closing = 1;
    fl_wbuf_clear(&self->wbuf);
    self->peer_watch = 0;
    update_io_noerr(self);
    if (!self->lost) {
        rc = call_soon_method(self, "_call_connection_lost",
                              exc ? exc : Py_None);
        if (rc == 0) {
            self->lost = 1;
        }
    }
    Py_DECREF(self);
    return rc;
}

/* asyncio's _fatal_error: consumes the current exception. Returns -1 when
 * it is SystemExit/KeyboardInterrupt (left set), else 0. OSErrors are only
 * logged in debug mode (the read side: EIO only, as a PTY whose other side
 * closed reports it); anything else goes to the exception handler. */
static int
fatal_error(fl_pipe *self, const char *msg)
{
    PyObject *exc;
    int quiet = 1;

    if (fl_tr_is_fatal_exc()) {
        return -1;
    }
    exc = fl_tr_fetch_exc();
    if (exc == NULL) {
        return 0;
    }
    if (!self->writer && PyObject_TypeCheck(exc, (PyTypeObject *)
                                                     PyExc_OSError))
    {
        quiet = ((PyOSErrorObject *)exc)->myerrno != NULL &&
                PyLong_Check(((PyOSErrorObject *)exc)->myerrno) &&
                PyLong_AsLong(((PyOSErrorObject *)exc)->myerrno) == EIO;
        PyErr_Clear();
    }
    if (quiet) {
        fl_tb_report(B(self), "_fl_transport_error", exc, msg);
    }
    else {
        call_handler(self, exc, msg);
    }
    if (do_close(B(self), exc) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_DECREF(exc);
    return 0;
}

static int
fatal_errno(fl_pipe *self, int err, const char *msg)
{
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return fatal_error(self, msg);
}

static PyObject *
pipe_call_connection_lost(fl_pipe *self, PyObject *exc)
{
    PyObject *r;

    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    self->lost = 1;
    if (self->base.fd_closed && self->base.protocol == NULL) {
        Py_RETURN_NONE; /* already done */
    }
    Py_INCREF(self);
    r = fl_tb_call_proto(B(self), "connection_lost", &exc, 1);
    fl_wbuf_clear(&self->wbuf);
    if (r == NULL) {
        /* connection_lost()'s exception wins, as asyncio's finally. */
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        if (close_pipe(self) < 0) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
        PyErr_Restore(et, ev, etb);
    }
    else if (close_pipe(self) < 0) {
        Py_CLEAR(r);
    }
    Py_CLEAR(self->base.protocol);
    Py_CLEAR(self->data_received);
    Py_DECREF(self);
    return r;
}

/* ------------------------------------------------------------------ */
/* Read side                                                           */

static int
on_read_eof(fl_pipe *self)
{
    PyObject *fn;
    int rc = 0;

    debug_log(self, LOG_INFO, "%r was closed by peer");
    self->base.closing = 1;
    update_io_noerr(self);
    if (self->base.protocol == NULL) {
        return 0;
    }
    fn = PyObject_GetAttrString(self->base.protocol, "eof_received");
    if (fn == NULL || call_soon_fn(self, fn, NULL) < 0) {
        rc = protocol_error(self, "Fatal error: protocol.eof_received() "
                                  "call failed.");
    }
    Py_XDECREF(fn);
    if (rc == 0 && !self->lost) {
        if (call_soon_method(self, "_call_connection_lost", Py_None) < 0) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
        else {
            self->lost = 1;
        }
    }
    return rc;
}

/* read() into a new bytes object of `size` bytes, shrunk to what was read.
 * Returns read()'s result (errno set when < 0; *out set when > 0), or -2
 * with a Python exception set. */
static ssize_t
read_direct(fl_pipe *self, Py_ssize_t size, PyObject **out)
{
    PyObject *b = PyBytes_FromStringAndSize(NULL, size);
    ssize_t n;
    int err;

    if (b == NULL) {
        return -2;
    }
    do {
        n = read(self->base.io.fd, PyBytes_AS_STRING(b), (size_t)size);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        err = errno;
        Py_DECREF(b);
        errno = err;
        return n;
    }
    if (n < size && _PyBytes_Resize(&b, (Py_ssize_t)n) < 0) {
        return -2;
    }
    *out = b;
    return n;
}

/* read() into the loop's shared buffer; *out is a copy (when > 0). */
static ssize_t
read_shared(fl_pipe *self, PyObject **out)
{
    fl_loop *loop = self->base.loop;
    ssize_t n;

    /* One buffer per loop (shared with the stream transports; it is only
     * used synchronously). */
    if (loop->rbuf == NULL) {
        loop->rbuf = aligned_alloc(4096, READ_SIZE);
        if (loop->rbuf == NULL) {
            PyErr_NoMemory();
            return -2;
        }
    }
    do {
        n = read(self->base.io.fd, loop->rbuf, READ_SIZE);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        *out = PyBytes_FromStringAndSize(loop->rbuf, n);
        if (*out == NULL) {
            return -2;
        }
    }
    return n;
}

static int
read_ready(fl_pipe *self)
{
    PyObject *data = NULL, *r;
    ssize_t n;

    if (self->last_read >= DIRECT_MIN) {
        Py_ssize_t size = self->last_read * 2;
        n = read_direct(self, size < READ_SIZE ? size : READ_SIZE, &data);
    }
    else {
        n = read_shared(self, &data);
    }
    if (n == -2) {
        return -1;
    }
    self->last_read = n > 0 ? (Py_ssize_t)n : 0;
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }
        return fatal_errno(self, errno, "Fatal read error on pipe transport");
    }
    if (n == 0) {
        return on_read_eof(self);
    }
    if (self->streams && self->base.protocol != NULL) {
        int rc = fl_streams_feed(ST(self), self->base.protocol,
                                 PyBytes_AS_STRING(data), (Py_ssize_t)n);

        if (rc != 0) {
            Py_DECREF(data);
            return rc > 0 ? 0
                          : protocol_error(self,
                                           "Exception in protocol."
                                           "data_received() of a pipe "
                                           "transport");
        }
    }
    if (self->data_received == NULL && self->base.protocol != NULL) {
        /* Missing at set_protocol() time: raise AttributeError now. */
        self->data_received =
            PyObject_GetAttrString(self->base.protocol, "data_received");
    }
    /* (the call holds the cached method: set_protocol() may drop it) */
    r = self->data_received == NULL
            ? NULL
            : fl_tb_call_in_ctx(B(self), self->data_received, &data, 1);
    Py_DECREF(data);
    if (r == NULL) {
        if (self->base.protocol == NULL && !PyErr_Occurred()) {
            return 0;
        }
        return protocol_error(self, "Exception in protocol.data_received() "
                                    "of a pipe transport");
    }
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Write side                                                          */

/* Write flow control, in the transport's context. -1 (with the exception
 * set) for SystemExit/KeyboardInterrupt, else 0. */
static int
maybe_pause_protocol(fl_pipe *self)
{
    return fl_tb_maybe_pause(B(self), self->wbuf.size, self->base.context);
}

static int
maybe_resume_protocol(fl_pipe *self)
{
    return fl_tb_maybe_resume(B(self), self->wbuf.size, self->base.context);
}

/* The reader of a write pipe went away (asyncio's _read_ready). */
static int
peer_closed(fl_pipe *self)
{
    int rc;

    debug_log(self, LOG_INFO, "%r was closed by peer");
    if (self->wbuf.len) {
        PyObject *exc = PyObject_CallNoArgs(PyExc_BrokenPipeError);
        if (exc == NULL) {
            return -1;
        }
        rc = do_close(B(self), exc);
        Py_DECREF(exc);
    }
    else {
        rc = do_close(B(self), NULL);
    }
    if (rc < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    return 0;
}

static int
write_ready(fl_pipe *self)
{
    ssize_t n;

    if (self->wbuf.len == 0) {
        return update_io(B(self));
    }
    fl_loop_touch(self->base.loop);
    n = fl_wbuf_write(&self->wbuf, self->base.io.fd, 0);
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
        return 0;
    }
    if (n < 0) {
        fl_wbuf_clear(&self->wbuf);
        self->base.conn_lost++;
        update_io_noerr(self);
        return fatal_errno(self, (int)-n,
                           "Fatal write error on pipe transport");
    }
    fl_wbuf_consume(&self->wbuf, n);
    if (self->wbuf.len) {
        return 0;
    }
    update_io_noerr(self);
    if (maybe_resume_protocol(self) < 0) { /* may write more */
        return -1;
    }
    if (self->base.closing && !self->lost) {
        PyObject *r;
        self->peer_watch = 0;
        update_io_noerr(self);
        r = pipe_call_connection_lost(self, Py_None);
        if (r == NULL) {
            return protocol_error(self, "Exception in protocol."
                                        "connection_lost() of a pipe "
                                        "transport");
        }
        Py_DECREF(r);
    }
    return 0;
}

static int
pipe_on_io(fl_io *io, unsigned events)
{
    fl_pipe *self = (fl_pipe *)io->owner;

    if (!self->writer) {
        return (events & FL_READ) ? read_ready(self) : 0;
    }
    /* Readable first: a hang-up reports both, and the reader's close wins
     * (asyncio runs the reader's handle first and cancels the writer's). */
    if ((events & FL_READ) && self->peer_watch) {
        return peer_closed(self);
    }
    if ((events & FL_WRITE) && (self->base.io.wanted & FL_WRITE)) {
        return write_ready(self);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Python API, both sides                                              */

static int
set_protocol(fl_transport_base *b, PyObject *protocol)
{
    fl_pipe *self = (fl_pipe *)b;

    Py_CLEAR(self->data_received);
    if (!self->writer) {
        self->data_received =
            PyObject_GetAttrString(protocol, "data_received");
        if (self->data_received == NULL) {
            /* asyncio fails later, when data arrives; so do we. */
            PyErr_Clear();
        }
    }
    self->streams = !self->writer && fl_streams_adopt(ST(self), protocol,
                                                      self->data_received);
    fl_tb_set_protocol(b, protocol);
    return 0;
}

/* Scheduled after connection_made(): start watching the fd. */
static PyObject *
pipe_start(fl_pipe *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (self->base.closing || self->base.fd_closed) {
        Py_RETURN_NONE;
    }
    self->base.reading = 1;
    if (self->writer) {
        self->peer_watch = self->watch_peer_ok;
    }
    if (update_io(B(self)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
pipe_repr(fl_pipe *self)
{
    const char *name = strrchr(Py_TYPE(self)->tp_name, '.');
    const char *state = self->pipe == NULL ? " closed"
                        : self->base.closing   ? " closing"
                                          : "";

    name = name ? name + 1 : Py_TYPE(self)->tp_name;
    if (self->pipe == NULL) {
        return PyUnicode_FromFormat("<%s%s fd=%d closed>", name, state,
                                    self->base.io.fd);
    }
    if (self->base.loop == NULL || self->base.loop->closed) {
        /* asyncio tells polling/idle only while its selector exists. */
        return PyUnicode_FromFormat("<%s%s fd=%d open>", name, state,
                                    self->base.io.fd);
    }
    if (self->writer) {
        return PyUnicode_FromFormat(
            "<%s%s fd=%d %s bufsize=%zd>", name, state, self->base.io.fd,
            self->base.io.wanted & FL_WRITE ? "polling" : "idle",
            self->wbuf.size);
    }
    return PyUnicode_FromFormat(
        "<%s%s fd=%d %s>", name, state, self->base.io.fd,
        self->base.io.wanted & FL_READ ? "polling" : "idle");
}

/* ------------------------------------------------------------------ */
/* Python API, read side                                               */

/* pause_reading()/resume_reading() have asyncio's debug log. */
static PyObject *
log_reading(fl_pipe *self, int rc, const char *fmt)
{
    if (rc < 0) {
        return NULL;
    }
    if (rc > 0) {
        debug_log(self, LOG_DEBUG, fmt);
    }
    Py_RETURN_NONE;
}

static PyObject *
pipe_pause_reading(fl_pipe *self, PyObject *unused)
{
    return log_reading(self, fl_tb_pause_reading(B(self)),
                       "%r pauses reading");
}

static PyObject *
pipe_resume_reading(fl_pipe *self, PyObject *unused)
{
    return log_reading(self, fl_tb_resume_reading(B(self)),
                       "%r resumes reading");
}

static PyObject *
pipe_read_close(fl_pipe *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (!self->base.closing && do_close(B(self), NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Python API, write side                                              */

static PyObject *
pipe_write(fl_pipe *self, PyObject *data)
{
    Py_buffer view;
    ssize_t n = 0;

    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (fl_tr_check_bytes_like(data) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    if (self->base.conn_lost || self->base.closing || self->base.fd_closed) {
        PyBuffer_Release(&view);
        if (fl_tb_lost_write(B(self), "pipe closed by peer or "
                                      "os.write(pipe, data) raised "
                                      "exception.") < 0)
        {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (self->wbuf.len == 0) {
        /* Nothing queued: try to write right away. */
        fl_loop_touch(self->base.loop);
        do {
            n = write(self->base.io.fd, view.buf, (size_t)view.len);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            int err = errno;
            PyBuffer_Release(&view);
            self->base.conn_lost++;
            if (fatal_errno(self, err,
                            "Fatal write error on pipe transport") < 0)
            {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        if (n < 0) {
            n = 0;
        }
        if (n == view.len) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
    }
    if (fl_wbuf_push_rest(&self->wbuf, data, &view, n) < 0 ||
        update_io(B(self)) < 0 || maybe_pause_protocol(self) < 0)
    {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
pipe_write_eof(fl_pipe *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (self->base.closing) {
        Py_RETURN_NONE;
    }
    self->base.closing = 1;
    if (self->wbuf.len == 0) {
        Py_INCREF(self);
        self->peer_watch = 0;
        update_io_noerr(self);
        if (!self->lost) {
            if (call_soon_method(self, "_call_connection_lost", Py_None) <
                0)
            {
                Py_DECREF(self);
                return NULL;
            }
            self->lost = 1;
        }
        Py_DECREF(self);
    }
    Py_RETURN_NONE;
}

static PyObject *
pipe_can_write_eof(fl_pipe *self, PyObject *unused)
{
    Py_RETURN_TRUE;
}

static PyObject *
pipe_write_close(fl_pipe *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (self->pipe != NULL && !self->base.closing) {
        /* write_eof() is all that is needed to close a write pipe. */
        return pipe_write_eof(self, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *
pipe_set_write_buffer_limits(fl_pipe *self, PyObject *args, PyObject *kwargs)
{
    if (fl_tb_set_limits(B(self), args, kwargs) < 0 ||
        maybe_pause_protocol(self) < 0)
    {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */

static void
ops_close_fd(fl_transport_base *b)
{
    if (close_pipe((fl_pipe *)b) < 0) {
        PyErr_WriteUnraisable((PyObject *)b);
    }
}

static Py_ssize_t
ops_buffer_size(fl_transport_base *b)
{
    return ((fl_pipe *)b)->wbuf.size;
}

static const fl_transport_ops pipe_ops = {
    .update_io = update_io,
    .force_close = do_close,
    .close_fd = ops_close_fd,
    .buffer_size = ops_buffer_size,
    .set_protocol = set_protocol,
};

static int
pipe_init(fl_pipe *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"loop", "pipe", "protocol", "waiter", "extra",
                             NULL};
    PyObject *loop, *pipe, *protocol, *waiter = Py_None, *extra = Py_None;
    PyObject *r;
    struct stat sb;
    long fd;
    int flags, rc;

    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs,
            self->writer ? "OOO|OO:WritePipeTransport"
                         : "OOO|OO:ReadPipeTransport",
            kwlist, &loop, &pipe, &protocol, &waiter, &extra))
    {
        return -1;
    }
    if (fl_tb_init_check(B(self), loop, extra) < 0) {
        return -1;
    }
    /* pipe.fileno(), os.fstat(), the kind check: as asyncio. */
    r = PyObject_CallMethod(pipe, "fileno", NULL);
    if (r == NULL) {
        return -1;
    }
    fd = PyLong_AsLong(r);
    Py_DECREF(r);
    if (fd == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (fd < 0 || fd > INT_MAX) {
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (fstat((int)fd, &sb) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (!S_ISFIFO(sb.st_mode) && !S_ISSOCK(sb.st_mode) &&
        !S_ISCHR(sb.st_mode))
    {
        PyErr_SetString(PyExc_ValueError,
                        self->writer ? "Pipe transport is only for pipes, "
                                       "sockets and character devices"
                                     : "Pipe transport is for pipes/sockets "
                                       "only.");
        return -1;
    }
    flags = fcntl((int)fd, F_GETFL);
    if (flags < 0 ||
        (!(flags & O_NONBLOCK) &&
         fcntl((int)fd, F_SETFL, flags | O_NONBLOCK) < 0))
    {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->watch_peer_ok = S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode);

    self->base.io.fd = (int)fd;
    rc = fl_tb_setup(B(self), (fl_loop *)loop, &pipe_ops, pipe_on_io, extra);
    if (rc < 0 || PyDict_SetItemString(self->base.extra, "pipe", pipe) < 0) {
        return -1;
    }
    self->base.initialised = 1;
    if (set_protocol(B(self), protocol) < 0) {
        goto fail;
    }
    /* connection_made, then watching, then the waiter: as asyncio. */
    if (fl_tb_schedule_start(B(self), protocol, "_fl_start", waiter) < 0) {
        goto fail;
    }
    /* The transport owns the pipe from here on. */
    self->pipe = Py_NewRef(pipe);
    return 0;

fail:
    /* The caller keeps the pipe; the transport is dead. */
    self->base.closing = 1;
    self->lost = 1;
    self->base.fd_closed = 1;
    return -1;
}

static int
read_pipe_init(fl_pipe *self, PyObject *args, PyObject *kwargs)
{
    self->writer = 0;
    return pipe_init(self, args, kwargs);
}

static int
write_pipe_init(fl_pipe *self, PyObject *args, PyObject *kwargs)
{
    self->writer = 1;
    return pipe_init(self, args, kwargs);
}

/* ------------------------------------------------------------------ */
/* Type                                                                */

static int
pipe_traverse(fl_pipe *self, visitproc visit, void *arg)
{
    Py_VISIT(self->pipe);
    Py_VISIT(self->data_received);
    if (fl_wbuf_traverse(&self->wbuf, visit, arg) < 0) {
        return -1;
    }
    return fl_tb_traverse(B(self), visit, arg);
}

static int
pipe_clear(fl_pipe *self)
{
    fl_wbuf_clear(&self->wbuf);
    Py_CLEAR(self->data_received);
    fl_tb_clear(B(self));
    /* pipe and loop stay until dealloc: the fd must be closed exactly once,
     * and close_pipe needs both. */
    return 0;
}

static void
pipe_dealloc(fl_pipe *self)
{
    if (fl_tb_dealloc_begin(B(self)) < 0) {
        return; /* resurrected */
    }
    pipe_clear(self);
    Py_CLEAR(self->pipe);
    fl_wbuf_free(&self->wbuf);
    fl_tb_dealloc_end(B(self));
}

static PyObject *
get_pipe(fl_pipe *self, void *c)
{
    return Py_NewRef(self->pipe ? self->pipe : Py_None);
}

/* `_pipe = None` makes the transport forget its pipe (asyncio's tests do
 * that to close the pipe themselves): it will not close it. Another object
 * replaces the one closed at the end; the fd stays the same. */
static int
set_pipe(fl_pipe *self, PyObject *value, void *c)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _pipe");
        return -1;
    }
    if (fl_tb_check_init(B(self)) < 0) {
        return -1;
    }
    if (value == Py_None) {
        if (!self->base.fd_closed) {
            Py_INCREF(self);
            self->base.fd_closed = 1;
            fl_io_stop(self->base.loop, &self->base.io);
            Py_CLEAR(self->pipe);
            Py_DECREF(self);
        }
        return 0;
    }
    if (self->base.fd_closed) {
        PyErr_SetString(PyExc_RuntimeError, "the pipe is already closed");
        return -1;
    }
    Py_XSETREF(self->pipe, Py_NewRef(value));
    return 0;
}

static PyObject *
get_fileno(fl_pipe *self, void *c)
{
    if (!self->base.initialised) {
        Py_RETURN_NONE;
    }
    return PyLong_FromLong(self->base.io.fd);
}

static PyObject *
get_high_water(fl_pipe *self, void *c)
{
    return PyLong_FromSsize_t(self->base.high);
}

static PyObject *
get_low_water(fl_pipe *self, void *c)
{
    return PyLong_FromSsize_t(self->base.low);
}

static PyGetSetDef read_getset[] = {
    {"_pipe", (getter)get_pipe, (setter)set_pipe, NULL, NULL},
    FL_GETTER("_fileno", get_fileno),
    FL_GETTER("_loop", fl_tb_get_loop),
    FL_GETTER("_protocol", fl_tb_get_protocol_attr),
    FL_GETTER("_closing", fl_tb_get_closing),
    FL_GETTER("_paused", fl_tb_get_paused),
    {NULL},
};

static PyGetSetDef write_getset[] = {
    {"_pipe", (getter)get_pipe, (setter)set_pipe, NULL, NULL},
    FL_GETTER("_fileno", get_fileno),
    FL_GETTER("_loop", fl_tb_get_loop),
    FL_GETTER("_protocol", fl_tb_get_protocol_attr),
    FL_GETTER("_closing", fl_tb_get_closing),
    FL_GETTER("_conn_lost", fl_tb_get_conn_lost),
    FL_GETTER("_protocol_paused", fl_tb_get_protocol_paused),
    FL_GETTER("_high_water", get_high_water),
    FL_GETTER("_low_water", get_low_water),
    {NULL},
};

static PyMethodDef read_methods[] = {
    FL_NOARGS("close", pipe_read_close),
    FL_NOARGS("is_closing", fl_tb_is_closing),
    FL_NOARGS("is_reading", fl_tb_is_reading),
    FL_NOARGS("pause_reading", pipe_pause_reading),
    FL_NOARGS("resume_reading", pipe_resume_reading),
    {"set_protocol", (PyCFunction)fl_tb_set_protocol_meth, METH_O,
     "set_protocol($self, protocol, /)\n--\n\n"},
    FL_NOARGS("get_protocol", fl_tb_get_protocol),
    {"_call_connection_lost", (PyCFunction)pipe_call_connection_lost, METH_O,
     "_call_connection_lost($self, exc, /)\n--\n\n"},
    FL_NOARGS("_fl_start", pipe_start),
    {NULL, NULL, 0, NULL},
};

static PyMethodDef write_methods[] = {
    {"write", (PyCFunction)pipe_write, METH_O, "write($self, data, /)\n--\n\n"},
    FL_NOARGS("write_eof", pipe_write_eof),
    FL_NOARGS("can_write_eof", pipe_can_write_eof),
    FL_NOARGS("close", pipe_write_close),
    FL_NOARGS("abort", fl_tb_abort),
    FL_NOARGS("is_closing", fl_tb_is_closing),
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))pipe_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, "set_write_buffer_limits($self, high=None, low=None)\n--\n\n"},
    FL_NOARGS("get_write_buffer_limits", fl_tb_get_write_buffer_limits),
    FL_NOARGS("get_write_buffer_size", fl_tb_get_write_buffer_size),
    {"set_protocol", (PyCFunction)fl_tb_set_protocol_meth, METH_O,
     "set_protocol($self, protocol, /)\n--\n\n"},
    FL_NOARGS("get_protocol", fl_tb_get_protocol),
    {"_call_connection_lost", (PyCFunction)pipe_call_connection_lost, METH_O,
     "_call_connection_lost($self, exc, /)\n--\n\n"},
    FL_NOARGS("_fl_start", pipe_start),
    {NULL, NULL, 0, NULL},
};

static PyType_Slot read_slots[] = {
    {Py_tp_init, read_pipe_init},
    {Py_tp_dealloc, pipe_dealloc},
    {Py_tp_finalize, fl_tb_finalize},
    {Py_tp_traverse, pipe_traverse},
    {Py_tp_clear, pipe_clear},
    {Py_tp_methods, read_methods},
    {Py_tp_getset, read_getset},
    {Py_tp_members, fl_tb_members},
    {Py_tp_repr, pipe_repr},
    {Py_tp_doc, "The read end of a pipe (or a socket or a character device) "
                "as a transport of a fastloop Loop."},
    {0, NULL},
};

static PyType_Slot write_slots[] = {
    {Py_tp_init, write_pipe_init},
    {Py_tp_dealloc, pipe_dealloc},
    {Py_tp_finalize, fl_tb_finalize},
    {Py_tp_traverse, pipe_traverse},
    {Py_tp_clear, pipe_clear},
    {Py_tp_methods, write_methods},
    {Py_tp_getset, write_getset},
    {Py_tp_members, fl_tb_members},
    {Py_tp_repr, pipe_repr},
    {Py_tp_doc, "The write end of a pipe (or a socket or a character "
                "device) as a transport of a fastloop Loop."},
    {0, NULL},
};

static PyType_Spec read_spec = {
    .name = "fastloop._core.ReadPipeTransport",
    .basicsize = sizeof(fl_pipe),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = read_slots,
};

static PyType_Spec write_spec = {
    .name = "fastloop._core.WritePipeTransport",
    .basicsize = sizeof(fl_pipe),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = write_slots,
};

/* Creates one type over asyncio.transports.<base_name>. */
static int
add_type(PyObject *mod, PyObject *transports, const char *base_name,
         PyType_Spec *spec, const char *name, const char *what)
{
    PyObject *base, *bases;
    PyTypeObject *tp;

    base = PyObject_GetAttrString(transports, base_name);
    if (base == NULL) {
        return -1;
    }
    bases = PyTuple_Pack(1, base);
    Py_DECREF(base);
    if (bases == NULL) {
        return -1;
    }
    tp = fl_tb_add_type(mod, spec, bases, name, what);
    Py_DECREF(bases);
    if (tp == NULL) {
        return -1;
    }
    Py_DECREF(tp);
    return 0;
}

int
fl_pipe_init_types(PyObject *mod, fl_state *st)
{
    PyObject *m = PyImport_ImportModule("asyncio.transports");
    int rc;

    if (m == NULL) {
        return -1;
    }
    rc = add_type(mod, m, "ReadTransport", &read_spec, "ReadPipeTransport",
                  "asyncio.ReadTransport");
    if (rc == 0) {
        rc = add_type(mod, m, "WriteTransport", &write_spec,
                      "WritePipeTransport", "asyncio.WriteTransport");
    }
    Py_DECREF(m);
    return rc;
}
