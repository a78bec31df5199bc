/* StreamTransport: a C subclass of asyncio.Transport for connected stream
 * sockets. Behaviour follows asyncio's _SelectorSocketTransport
 * (selector_events.py); the read path reads once per readiness event into
 * a per-loop buffer (or the BufferedProtocol's own buffer), the write path
 * sends at once when nothing is pending and otherwise queues the data and
 * drains it with writev when the socket is writable. */
#include "stream.h"
#include "streams.h"
#include "transport.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <structmember.h>

#define READ_SIZE (256 * 1024)
/* Native streams read straight into a reader's buffer with this much room
 * (only storage left by a large message has it). */
#define DIRECT_MIN (64 * 1024)

#define ST(self) ((self)->base.loop->state)
#define B(self) (&(self)->base)

static int stream_on_io(fl_io *io, unsigned events);
static int force_close(fl_transport_base *b, PyObject *exc);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static int
fatal_error(fl_stream *self, const char *msg)
{
    return fl_tb_fatal_error(B(self), msg);
}

static int
fatal_errno(fl_stream *self, int err, const char *msg)
{
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return fatal_error(self, msg);
}

/* ------------------------------------------------------------------ */
/* Watcher                                                             */

static unsigned
wanted_mask(fl_stream *self)
{
    unsigned m = 0;

    if (self->base.fd_closed || self->base.loop->closed) {
        return 0;
    }
    if (self->base.reading && !self->base.paused && !self->base.closing &&
        !self->read_eof)
    {
        m |= FL_READ;
    }
    if (self->wbuf.len && !self->base.conn_lost) {
        m |= FL_WRITE;
    }
    return m;
}

/* Brings the loop's watcher in line with the transport's state. May drop
 * the loop's reference to self: callers hold their own. */
static int
update_io(fl_transport_base *b)
{
    fl_stream *self = (fl_stream *)b;

    if (self->fd_released) {
        return 0;
    }
    return fl_tb_set_mask(b, wanted_mask(self));
}

static void
update_io_noerr(fl_stream *self)
{
    if (update_io(B(self)) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
}

/* ------------------------------------------------------------------ */
/* Flow control                                                        */

/* Write flow control, in the transport's context; SystemExit and
 * KeyboardInterrupt from the protocol are unraisable. */
static void
maybe_pause_protocol(fl_stream *self)
{
    if (fl_tb_maybe_pause(B(self), self->wbuf.size, self->base.context) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
}

static void
maybe_resume_protocol(fl_stream *self)
{
    if (fl_tb_maybe_resume(B(self), self->wbuf.size, self->base.context) <
        0)
    {
        PyErr_WriteUnraisable((PyObject *)self);
    }
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */

/* Closes the fd exactly once: through the socket object if one exists
 * (it owns the fd then), else directly. */
static void
close_fd(fl_transport_base *b)
{
    fl_stream *self = (fl_stream *)b;

    if (self->base.fd_closed) {
        return;
    }
    self->base.fd_closed = 1;
    fl_io_stop(self->base.loop, &self->base.io);
    if (self->sock != NULL) {
        PyObject *r = PyObject_CallMethod(self->sock, "close", NULL);
        if (r == NULL) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
        Py_XDECREF(r);
    }
    else if (self->base.io.fd >= 0) {
        close(self->base.io.fd);
    }
    self->base.io.fd = -1;
}

/* Resolves the sendfile empty waiter, unless it is already done (its task
 * may have been cancelled): result None when exc is NULL, else exc. */
static void
settle_empty_waiter(fl_stream *self, PyObject *exc)
{
    PyObject *w = self->empty_waiter, *r;

    if (w == NULL) {
        return;
    }
    /* Held: done() may run code that calls _reset_empty_waiter(). */
    Py_INCREF(w);
    r = PyObject_CallMethod(w, "done", NULL);
    if (r == Py_False) {
        Py_XDECREF(exc == NULL
                       ? PyObject_CallMethod(w, "set_result", "O", Py_None)
                       : PyObject_CallMethod(w, "set_exception", "O", exc));
    }
    Py_XDECREF(r);
    Py_DECREF(w);
    if (PyErr_Occurred()) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
}

static void
fail_empty_waiter(fl_stream *self, PyObject *exc)
{
    PyObject *e;

    if (self->empty_waiter == NULL) {
        return;
    }
    if (exc == NULL || exc == Py_None) {
        e = PyObject_CallFunction(PyExc_ConnectionError, "s",
                                  "Connection is closed by peer");
        if (e == NULL) {
            PyErr_WriteUnraisable((PyObject *)self);
            return;
        }
    }
    else {
        e = Py_NewRef(exc);
    }
    settle_empty_waiter(self, e);
    Py_DECREF(e);
}

/* asyncio's _force_close. */
static int
force_close(fl_transport_base *b, PyObject *exc)
{
    fl_stream *self = (fl_stream *)b;

    if (self->base.conn_lost) {
        return 0;
    }
    if (self->wbuf.len) {
        fl_wbuf_clear(&self->wbuf);
    }
    return fl_tb_schedule_lost(b, exc);
}

static PyObject *
stream_call_connection_lost(fl_stream *self, PyObject *exc)
{
    PyObject *r = NULL, *server, *et, *ev, *etb;

    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    Py_INCREF(self);
    if (self->base.protocol_connected && self->base.protocol != NULL) {
        r = fl_tb_call_proto(B(self), "connection_lost", &exc, 1);
    }
    else {
        r = Py_NewRef(Py_None);
    }
    /* Clean up whatever connection_lost() did (asyncio's finally:), with
     * its exception put aside while we call out. */
    PyErr_Fetch(&et, &ev, &etb);
    fail_empty_waiter(self, exc);
    fl_wbuf_clear(&self->wbuf);
    close_fd(B(self));
    Py_CLEAR(self->base.protocol);
    Py_CLEAR(self->data_received);
    Py_CLEAR(self->get_buffer);
    Py_CLEAR(self->buffer_updated);
    server = self->server;
    self->server = NULL;
    if (server != NULL) {
        PyObject *d = PyObject_CallMethod(server, "_detach", "O",
                                          (PyObject *)self);
        if (d == NULL) {
            PyErr_WriteUnraisable(server);
        }
        Py_XDECREF(d);
        Py_DECREF(server);
    }
    PyErr_Restore(et, ev, etb);
    Py_DECREF(self);
    return r;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

static int
on_eof(fl_stream *self)
{
    PyObject *r = fl_tb_call_proto(B(self), "eof_received", NULL, 0);
    int keep;

    if (r == NULL) {
        return fatal_error(self,
                           "Fatal error: protocol.eof_received() call failed.");
    }
    keep = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (keep < 0) {
        return fatal_error(self,
                           "Fatal error: protocol.eof_received() call failed.");
    }
    if (keep) {
        /* Half-open: stop reading, keep the transport for writing. Like
         * asyncio this is not "paused": is_reading() stays true. */
        self->read_eof = 1;
        update_io_noerr(self);
        return 0;
    }
    r = PyObject_CallMethod((PyObject *)self, "close", NULL);
    if (r == NULL) {
        return fatal_error(self, "Fatal error on transport");
    }
    Py_DECREF(r);
    return 0;
}

static ssize_t
do_recv(int fd, void *buf, size_t len)
{
    ssize_t n;

    do {
        n = recv(fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

/* A BufferedProtocol method: the one bound by set_protocol(), or, when
 * that is gone (a callback replaced the protocol) or its lookup failed,
 * the current protocol's, looked up now (asyncio's self._protocol.<name>). */
static PyObject *
call_cached(fl_stream *self, PyObject *fn, const char *name, PyObject *arg)
{
    if (fn != NULL) {
        return fl_tb_call_in_ctx(B(self), fn, &arg, 1);
    }
    return fl_tb_call_proto(B(self), name, &arg, 1);
}

static int
read_buffered(fl_stream *self)
{
    PyObject *buf, *arg, *r;
    Py_buffer view;
    ssize_t n;

    arg = PyLong_FromLong(-1);
    if (arg == NULL) {
        return -1;
    }
    buf = call_cached(self, self->get_buffer, "get_buffer", arg);
    Py_DECREF(arg);
    if (buf == NULL) {
        return fatal_error(self,
                           "Fatal error: protocol.get_buffer() call failed.");
    }
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
        Py_DECREF(buf);
        return fatal_error(self,
                           "Fatal error: protocol.get_buffer() call failed.");
    }
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_DECREF(buf);
        PyErr_SetString(PyExc_RuntimeError,
                        "get_buffer() returned an empty buffer");
        return fatal_error(self,
                           "Fatal error: protocol.get_buffer() call failed.");
    }
    n = do_recv(self->base.io.fd, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    Py_DECREF(buf);
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
        return 0;
    }
    if (n < 0) {
        return fatal_errno(self, (int)-n,
                           "Fatal read error on socket transport");
    }
    if (n == 0) {
        return on_eof(self);
    }
    arg = PyLong_FromSsize_t(n);
    if (arg == NULL) {
        return -1;
    }
    r = call_cached(self, self->buffer_updated, "buffer_updated", arg);
    Py_DECREF(arg);
    if (r == NULL) {
        return fatal_error(
            self, "Fatal error: protocol.buffer_updated() call failed.");
    }
    Py_DECREF(r);
    return 0;
}

/* The bytes object passed to data_received(). Most protocols do not keep
 * it: when the transport holds the only reference once the call has
 * returned, nothing else can see the object any more, so the loop keeps it
 * (loop->rdata) and refills it for the next read of the same length. That
 * saves an allocation and a free per read (a 1 KiB read is above
 * pymalloc's limit and glibc's tcache: ~22% of a 1 KiB echo's user-space
 * instructions, NOTES-perf.md) and, above glibc's mmap threshold, an
 * mmap/munmap pair. A kept object is reused only while its reference
 * count is still 1, and its cached hash is reset. */
static PyObject *
take_data(fl_loop *loop, const char *buf, Py_ssize_t n)
{
#ifndef Py_GIL_DISABLED
    PyObject *d = loop->rdata;

    if (d != NULL && Py_REFCNT(d) == 1 && Py_SIZE(d) == n) {
        loop->rdata = NULL;
        memcpy(PyBytes_AS_STRING(d), buf, (size_t)n);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
        ((PyBytesObject *)d)->ob_shash = -1;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
        return d;
    }
#endif
    return PyBytes_FromStringAndSize(buf, n);
}

/* Takes the reference to data back after data_received(). */
static void
keep_data(fl_loop *loop, PyObject *data)
{
#ifndef Py_GIL_DISABLED
    if (Py_REFCNT(data) == 1 && PyBytes_CheckExact(data)) {
        Py_XSETREF(loop->rdata, data);
        return;
    }
#endif
    Py_DECREF(data);
}

/* A recv() that returned n <= 0: EAGAIN, an error or EOF. */
static int
read_failed(fl_stream *self, ssize_t n)
{
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
        return 0;
    }
    if (n < 0) {
        return fatal_errno(self, (int)-n,
                           "Fatal read error on socket transport");
    }
    return on_eof(self);
}

/* Native streams (streams.c): recv() straight into the reader's buffer
 * when it has room for a large read (the storage of an earlier large
 * message, bytebuf.c), else into the loop's buffer and append; either way
 * without data_received(). *done 0: not a native reader. */
static int
read_native(fl_stream *self, int *done)
{
    fl_loop *loop = self->base.loop;
    fl_streams_slot slot;
    const char *from = NULL;
    ssize_t n;
    int rc = fl_streams_room(ST(self), self->base.protocol, DIRECT_MIN,
                             &slot);

    *done = rc != 0;
    if (rc <= 0) {
        return rc < 0 ? fatal_error(self, "Fatal error: protocol."
                                          "data_received() call failed.")
                      : 0;
    }
    if (slot.room > 0) {
        n = do_recv(self->base.io.fd, slot.dst,
                    slot.room < READ_SIZE ? (size_t)slot.room : READ_SIZE);
    }
    else {
        n = do_recv(self->base.io.fd, loop->rbuf, READ_SIZE);
        from = loop->rbuf;
    }
    if (fl_streams_commit(ST(self), &slot, from, n) < 0) {
        return fatal_error(self,
                           "Fatal error: protocol.data_received() call failed.");
    }
    return n <= 0 ? read_failed(self, n) : 0;
}

static int
read_data(fl_stream *self)
{
    fl_loop *loop = self->base.loop;
    PyObject *data, *r;
    ssize_t n;

    /* One buffer per loop, allocated once: a fresh large buffer per read
     * would page-fault on every read. */
    if (loop->rbuf == NULL) {
        loop->rbuf = aligned_alloc(4096, READ_SIZE);
        if (loop->rbuf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    if (self->streams) {
        int done, rc = read_native(self, &done);

        if (done) {
            return rc;
        }
    }
    n = do_recv(self->base.io.fd, loop->rbuf, READ_SIZE);
    if (n <= 0) {
        return read_failed(self, n);
    }
    if (self->streams) {
        int rc = fl_streams_feed(ST(self), self->base.protocol, loop->rbuf, n);

        if (rc != 0) {
            return rc > 0 ? 0
                          : fatal_error(self, "Fatal error: protocol."
                                              "data_received() call failed.");
        }
    }
    data = take_data(loop, loop->rbuf, n);
    if (data == NULL) {
        return -1;
    }
    r = fl_tb_call_in_ctx(B(self), self->data_received, &data, 1);
    keep_data(loop, data);
    if (r == NULL) {
        return fatal_error(self,
                           "Fatal error: protocol.data_received() call failed.");
    }
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Writing (the writable event)                                        */

static int
on_writable(fl_stream *self)
{
    ssize_t n;

    if (self->base.conn_lost || self->wbuf.len == 0) {
        return update_io(B(self));
    }
    fl_loop_touch(self->base.loop);
    n = fl_wbuf_write(&self->wbuf, self->base.io.fd, 1);
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
        return 0;
    }
    if (n < 0) {
        PyObject *exc;
        fl_wbuf_clear(&self->wbuf);
        update_io_noerr(self);
        errno = (int)-n;
        PyErr_SetFromErrno(PyExc_OSError);
        exc = fl_tr_fetch_exc();
        if (exc == NULL) {
            return -1;
        }
        settle_empty_waiter(self, exc);
        fl_tb_report(B(self), "_fl_transport_error", exc,
               "Fatal write error on socket transport");
        fl_tb_force_close_noerr(B(self), exc);
        Py_DECREF(exc);
        return 0;
    }
    fl_wbuf_consume(&self->wbuf, n);
    maybe_resume_protocol(self);
    if (self->wbuf.len == 0) {
        update_io_noerr(self);
        settle_empty_waiter(self, NULL);
        if (self->base.closing) {
            PyObject *r;
            self->base.conn_lost++;
            r = stream_call_connection_lost(self, Py_None);
            if (r == NULL) {
                if (fl_tr_is_fatal_exc()) {
                    return -1;
                }
                PyErr_WriteUnraisable((PyObject *)self);
            }
            Py_XDECREF(r);
        }
        else if (self->eof) {
            fl_loop_touch(self->base.loop);
            shutdown(self->base.io.fd, SHUT_WR);
        }
    }
    return 0;
}

static int
stream_on_io(fl_io *io, unsigned events)
{
    fl_stream *self = (fl_stream *)io->owner;
    int rc = 0;

    if ((events & FL_WRITE) && (self->base.io.wanted & FL_WRITE)) {
        rc = on_writable(self);
    }
    if (rc == 0 && (events & FL_READ) && (self->base.io.wanted & FL_READ) &&
        !self->base.conn_lost)
    {
        rc = self->buffered ? read_buffered(self) : read_data(self);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Python API                                                          */

/* PyBuffer_Release for a view stream_write() may have filled itself. */
static inline void
release_view(Py_buffer *view)
{
    if (view->obj != NULL) {
        PyBuffer_Release(view);
    }
}

static PyObject *
stream_write(fl_stream *self, PyObject *data)
{
    Py_buffer view;
    ssize_t n = 0;

    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (fl_tr_check_bytes_like(data) < 0) {
        return NULL;
    }
    if (self->eof) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot call write() after write_eof()");
        return NULL;
    }
    if (self->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "unable to write; sendfile is in progress");
        return NULL;
    }
    if (PyBytes_CheckExact(data)) {
        /* No buffer export needed: a bytes object cannot change. */
        view.buf = PyBytes_AS_STRING(data);
        view.len = PyBytes_GET_SIZE(data);
        view.obj = NULL;
    }
    else if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len == 0) {
        release_view(&view);
        Py_RETURN_NONE;
    }
    if (self->base.conn_lost || self->base.fd_closed) {
        release_view(&view);
        if (fl_tb_lost_write(B(self), "socket.send() raised exception.") <
            0)
        {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (self->wbuf.len == 0) {
        /* Nothing queued: try to send right away. */
        fl_loop_touch(self->base.loop);
        do {
            n = send(self->base.io.fd, view.buf, (size_t)view.len,
                     MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            int err = errno;
            release_view(&view);
            if (fatal_errno(self, err,
                            "Fatal write error on socket transport") < 0)
            {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        if (n < 0) {
            n = 0;
        }
        if (n == view.len) {
            release_view(&view);
            Py_RETURN_NONE;
        }
    }
    if (fl_wbuf_push_rest(&self->wbuf, data, &view, n) < 0 ||
        update_io(B(self)) < 0)
    {
        return NULL;
    }
    maybe_pause_protocol(self);
    Py_RETURN_NONE;
}

PyObject *
fl_stream_write(PyObject *self, PyObject *data)
{
    return stream_write((fl_stream *)self, data);
}

/* WRITER_PROBES: how many of the first write()/writelines() calls from
 * Python after the protocol was adopted look at their caller for a
 * StreamWriter to adopt (open_connection()'s writer is made after the
 * connection). */
#define WRITER_PROBES 2

static inline void
probe_writer(fl_stream *self)
{
    if (self->wprobe) {
        self->wprobe = (char)(self->streams ? self->wprobe - 1 : 0);
        if (self->streams && self->base.protocol != NULL &&
            fl_streams_adopt_caller(ST(self), self->base.protocol))
        {
            self->wprobe = 0;
        }
    }
}

/* transport.write() called from Python. */
static PyObject *
stream_write_py(fl_stream *self, PyObject *data)
{
    probe_writer(self);
    return stream_write(self, data);
}

/* writelines()' items as a list of non-empty bytes, all taken before
 * anything is queued, as asyncio's list comprehension: an iterable that
 * fails midway queues nothing, and one that closes or aborts the transport
 * does so before the data is looked at. New reference or NULL. */
static PyObject *
take_lines(PyObject *lines)
{
    PyObject *it = PyObject_GetIter(lines), *list, *item;

    if (it == NULL) {
        return NULL;
    }
    list = PyList_New(0);
    while (list != NULL && (item = PyIter_Next(it)) != NULL) {
        PyObject *b;
        if (PyBytes_CheckExact(item)) {
            b = Py_NewRef(item);
        }
        else {
            b = fl_tr_check_bytes_like(item) < 0 ? NULL
                                                 : PyBytes_FromObject(item);
        }
        Py_DECREF(item);
        if (b == NULL || (PyBytes_GET_SIZE(b) && PyList_Append(list, b) < 0))
        {
            Py_CLEAR(list);
        }
        Py_XDECREF(b);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        Py_CLEAR(list);
    }
    return list;
}

/* Queues the chunks of take_lines() and, if nothing was queued before,
 * sends them with one vectored call. 0 or -1. */
static int
queue_lines(fl_stream *self, PyObject *chunks)
{
    Py_ssize_t i, n = PyList_GET_SIZE(chunks);
    int was_empty = self->wbuf.len == 0;

    if (n == 0) {
        return 0;
    }
    if (self->base.conn_lost || self->base.fd_closed) {
        /* The iterable closed or aborted the transport. */
        return fl_tb_lost_write(B(self), "socket.send() raised exception.");
    }
    for (i = 0; i < n; i++) {
        if (fl_wbuf_push(&self->wbuf, PyList_GET_ITEM(chunks, i), 0) < 0) {
            return -1;
        }
    }
    if (was_empty) {
        ssize_t w;
        fl_loop_touch(self->base.loop);
        w = fl_wbuf_write(&self->wbuf, self->base.io.fd, 1);
        if (w >= 0) {
            fl_wbuf_consume(&self->wbuf, w);
        }
        else if (w != -EAGAIN && w != -EWOULDBLOCK) {
            fl_wbuf_clear(&self->wbuf);
            return fatal_errno(self, (int)-w,
                               "Fatal write error on socket transport");
        }
    }
    if (update_io(B(self)) < 0) {
        return -1;
    }
    maybe_pause_protocol(self);
    return 0;
}

static PyObject *
stream_writelines(fl_stream *self, PyObject *lines)
{
    PyObject *it, *item, *chunks;
    int rc;

    probe_writer(self);
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (self->eof) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot call writelines() after write_eof()");
        return NULL;
    }
    if (self->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "unable to writelines; sendfile is in progress");
        return NULL;
    }
    if (self->base.conn_lost) {
        /* Same bookkeeping as write(). */
        it = PyObject_GetIter(lines);
        if (it == NULL) {
            return NULL;
        }
        while ((item = PyIter_Next(it)) != NULL) {
            PyObject *r = stream_write(self, item);
            Py_DECREF(item);
            if (r == NULL) {
                Py_DECREF(it);
                return NULL;
            }
            Py_DECREF(r);
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    chunks = take_lines(lines);
    if (chunks == NULL) {
        return NULL;
    }
    rc = queue_lines(self, chunks);
    Py_DECREF(chunks);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_write_eof(fl_stream *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (self->base.closing || self->eof) {
        Py_RETURN_NONE;
    }
    self->eof = 1;
    fl_loop_touch(self->base.loop);
    if (self->wbuf.len == 0 && !self->base.fd_closed &&
        shutdown(self->base.io.fd, SHUT_WR) < 0 && errno != ENOTCONN)
    {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_can_write_eof(fl_stream *self, PyObject *unused)
{
    Py_RETURN_TRUE;
}

static PyObject *
stream_close(fl_stream *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0 ||
        fl_tb_close(B(self), self->wbuf.len != 0) < 0)
    {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_resume_reading(fl_stream *self, PyObject *unused)
{
    if (self->base.paused && !self->base.closing) {
        self->read_eof = 0; /* asyncio re-adds the reader (sees EOF again) */
    }
    return fl_tb_resume_reading_meth((PyObject *)self, unused);
}

static PyObject *
stream_set_write_buffer_limits(fl_stream *self, PyObject *args,
                               PyObject *kwargs)
{
    if (fl_tb_set_limits(B(self), args, kwargs) < 0) {
        return NULL;
    }
    maybe_pause_protocol(self);
    Py_RETURN_NONE;
}

/* protocol.<name>, or NULL (no exception) when the lookup fails: the read
 * path then looks it up at the call, which fails as asyncio's does. */
static PyObject *
lookup_method(PyObject *protocol, const char *name)
{
    PyObject *m = PyObject_GetAttrString(protocol, name);

    if (m == NULL) {
        PyErr_Clear();
    }
    return m;
}

static int
set_protocol(fl_transport_base *b, PyObject *protocol)
{
    fl_stream *self = (fl_stream *)b;
    fl_state *st = ST(self);
    PyObject *dr = NULL, *gb = NULL, *bu = NULL;
    int buffered = PyObject_IsInstance(protocol, st->aio_BufferedProtocol);

    if (buffered < 0) {
        return -1;
    }
    if (buffered) {
        gb = lookup_method(protocol, "get_buffer");
        bu = lookup_method(protocol, "buffer_updated");
    }
    else {
        dr = lookup_method(protocol, "data_received");
        if (dr == NULL) {
            /* asyncio fails later, when data arrives; so do we. */
            dr = Py_NewRef(Py_None);
        }
    }
    /* All three at once: a callback may call set_protocol() again. */
    Py_XSETREF(self->data_received, dr);
    Py_XSETREF(self->get_buffer, gb);
    Py_XSETREF(self->buffer_updated, bu);
    self->buffered = (char)buffered;
    self->streams =
        !buffered && fl_streams_adopt(ST(self), protocol, self->data_received);
    self->wprobe = self->streams ? WRITER_PROBES : 0;
    fl_tb_set_protocol(B(self), protocol);
    return 0;
}

/* Returns the socket object, creating it for an accepted fd on demand
 * (it then owns the fd). New reference or NULL. */
static PyObject *
get_sock(fl_stream *self)
{
    if (!self->base.initialised && self->sock == NULL) {
        Py_RETURN_NONE; /* made by __new__ alone: there is no fd */
    }
    if (self->sock == NULL) {
        if (self->base.fd_closed || self->base.io.fd < 0) {
            Py_RETURN_NONE;
        }
        PyObject *r;
        self->sock = PyObject_CallFunction(
            ST(self)->socket_socket, "iiii", self->family, self->socktype,
            self->proto, self->base.io.fd);
        if (self->sock == NULL) {
            return NULL;
        }
        /* The fd is non-blocking; tell the socket object so. */
        r = PyObject_CallMethod(self->sock, "setblocking", "O", Py_False);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    return Py_NewRef(self->sock);
}

static PyObject *
compute_extra(fl_stream *self, PyObject *name)
{
    PyObject *sock, *r = NULL;
    const char *s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;

    if (s == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (strcmp(s, "socket") && strcmp(s, "sockname") && strcmp(s, "peername")) {
        return NULL;
    }
    sock = get_sock(self);
    if (sock == NULL || sock == Py_None) {
        PyErr_Clear();
        Py_XDECREF(sock);
        return NULL;
    }
    if (s[0] == 's' && s[1] == 'o' && s[2] == 'c' && s[3] == 'k' && s[4] == 'e') {
        r = PyObject_CallOneArg(ST(self)->TransportSocket, sock);
    }
    else {
        r = PyObject_CallMethod(sock, s[0] == 'p' ? "getpeername"
                                                  : "getsockname", NULL);
    }
    Py_DECREF(sock);
    if (r == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (PyDict_SetItem(self->base.extra, name, r) < 0) {
        PyErr_Clear();
    }
    return r;
}

static PyObject *
stream_get_extra_info(fl_stream *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"name", "default", NULL};
    PyObject *name, *dflt = Py_None, *v;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:get_extra_info",
                                     kwlist, &name, &dflt))
    {
        return NULL;
    }
    if (self->base.extra != NULL && PyDict_Check(self->base.extra)) {
        v = PyDict_GetItemWithError(self->base.extra, name);
        if (v != NULL) {
            return Py_NewRef(v);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
        if (self->base.initialised &&
            (v = compute_extra(self, name)) != NULL)
        {
            return v;
        }
    }
    return Py_NewRef(dflt);
}

/* Lend the fd to the loop's sock_* machinery (native sendfile), as
 * asyncio's _sendfile_native removes the transport from loop._transports
 * for the duration. Reading must be paused and the buffer empty. */
static PyObject *
stream_release_fd(fl_stream *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (self->base.fd_closed || self->fd_released) {
        Py_RETURN_NONE;
    }
    Py_INCREF(self);
    fl_io_stop(self->base.loop, &self->base.io);
    self->fd_released = 1;
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *
stream_claim_fd(fl_stream *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (!self->fd_released) {
        Py_RETURN_NONE;
    }
    self->fd_released = 0;
    if (self->base.fd_closed) {
        Py_RETURN_NONE;
    }
    if (self->base.io.wanted == 0) {
        fl_io_pause(self->base.loop, &self->base.io);
    }
    if (update_io(B(self)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_make_empty_waiter(fl_stream *self, PyObject *unused)
{
    PyObject *f;

    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (self->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
        return NULL;
    }
    f = PyObject_CallMethod((PyObject *)self->base.loop, "create_future",
                            NULL);
    if (f == NULL) {
        return NULL;
    }
    if (self->wbuf.len == 0) {
        PyObject *r = PyObject_CallMethod(f, "set_result", "O", Py_None);
        if (r == NULL) {
            Py_DECREF(f);
            return NULL;
        }
        Py_DECREF(r);
    }
    self->empty_waiter = Py_NewRef(f);
    return f;
}

static PyObject *
stream_reset_empty_waiter(fl_stream *self, PyObject *unused)
{
    Py_CLEAR(self->empty_waiter);
    Py_RETURN_NONE;
}

static PyObject *
stream_repr(fl_stream *self)
{
    return fl_tb_sock_repr(B(self), self->wbuf.len != 0, self->wbuf.size);
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */

static int
set_nodelay(fl_stream *self)
{
    int one = 1;

    if ((self->family == AF_INET || self->family == AF_INET6) &&
        self->socktype == SOCK_STREAM)
    {
        setsockopt(self->base.io.fd, IPPROTO_TCP, TCP_NODELAY, &one,
                   sizeof(one));
    }
    return 0;
}

static const fl_transport_ops stream_ops;

/* Scheduled after connection_made(): a StreamReaderProtocol of a server
 * has made its StreamWriter by now, which can be adopted too. */
static PyObject *
stream_start_reading(fl_stream *self, PyObject *unused)
{
    if (self->streams && self->base.protocol != NULL) {
        self->streams = (char)fl_streams_adopt(ST(self), self->base.protocol,
                                               self->data_received);
        self->wprobe = self->streams ? WRITER_PROBES : 0;
    }
    return fl_tb_start_reading((PyObject *)self, unused);
}

/* Shared by the Python constructor and the accept loop: everything
 * asyncio's _SelectorSocketTransport.__init__ does after the socket is
 * known. */
static int
setup(fl_stream *self, fl_loop *loop, PyObject *protocol, PyObject *waiter,
      PyObject *extra, PyObject *server)
{
    if (fl_tb_setup(B(self), loop, &stream_ops, stream_on_io, extra) < 0 ||
        set_protocol(B(self), protocol) < 0)
    {
        return -1;
    }
    set_nodelay(self);
    if (server != NULL && server != Py_None) {
        PyObject *r = PyObject_CallMethod(server, "_attach", "O",
                                          (PyObject *)self);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
        self->server = Py_NewRef(server);
    }
    self->base.initialised = 1;
    return fl_tb_schedule_start(B(self), protocol, "_fl_start_reading",
                                waiter);
}

static int
stream_init(fl_stream *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"loop", "sock", "protocol", "waiter",
                             "extra", "server", NULL};
    PyObject *loop, *sock, *protocol, *waiter = Py_None, *extra = Py_None;
    PyObject *server = Py_None;
    int fd;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|OOO:StreamTransport",
                                     kwlist, &loop, &sock, &protocol, &waiter,
                                     &extra, &server))
    {
        return -1;
    }
    if (fl_tb_init_check(B(self), loop, extra) < 0 ||
        fl_tr_check_socklike(sock) < 0 ||
        fl_tr_sock_params(sock, &fd, &self->family, &self->socktype,
                          &self->proto) < 0 ||
        fl_tr_set_nonblocking(sock) < 0)
    {
        return -1;
    }
    self->sock = Py_NewRef(sock);
    self->base.io.fd = fd;
    return setup(self, (fl_loop *)loop, protocol, waiter, extra, server);
}

PyObject *
fl_stream_accepted(fl_loop *loop, int fd, int family, int socktype,
                   int proto, PyObject *protocol, PyObject *server,
                   PyObject *peername)
{
    PyTypeObject *tp = loop->state->StreamTransportType;
    fl_stream *self = (fl_stream *)tp->tp_alloc(tp, 0);
    PyObject *extra = NULL;
    int rc;

    if (self == NULL) {
        return NULL;
    }
    self->base.io.fd = fd;
    self->family = family;
    self->socktype = socktype;
    self->proto = proto;
    if (peername != NULL) {
        extra = Py_BuildValue("{s:O}", "peername", peername);
        if (extra == NULL) {
            self->base.fd_closed = 1; /* the caller still owns fd */
            Py_DECREF(self);
            return NULL;
        }
    }
    rc = setup(self, loop, protocol, NULL, extra, server);
    Py_XDECREF(extra);
    if (rc < 0) {
        /* Give the fd back: the caller closes it. */
        fl_io_stop(loop, &self->base.io);
        self->base.fd_closed = 1;
        self->base.io.fd = -1;
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* ------------------------------------------------------------------ */
/* Type                                                                */

static int
stream_traverse(fl_stream *self, visitproc visit, void *arg)
{
    Py_VISIT(self->sock);
    Py_VISIT(self->server);
    Py_VISIT(self->data_received);
    Py_VISIT(self->get_buffer);
    Py_VISIT(self->buffer_updated);
    Py_VISIT(self->empty_waiter);
    if (fl_wbuf_traverse(&self->wbuf, visit, arg) < 0) {
        return -1;
    }
    return fl_tb_traverse(B(self), visit, arg);
}

static int
stream_clear(fl_stream *self)
{
    fl_wbuf_clear(&self->wbuf);
    Py_CLEAR(self->server);
    Py_CLEAR(self->data_received);
    Py_CLEAR(self->get_buffer);
    Py_CLEAR(self->buffer_updated);
    Py_CLEAR(self->empty_waiter);
    fl_tb_clear(B(self));
    /* sock and loop stay until dealloc: the fd must be closed exactly once,
     * and close_fd needs both. */
    return 0;
}

static void
stream_dealloc(fl_stream *self)
{
    if (fl_tb_dealloc_begin(B(self)) < 0) {
        return; /* resurrected */
    }
    stream_clear(self);
    Py_CLEAR(self->sock);
    fl_wbuf_free(&self->wbuf);
    fl_tb_dealloc_end(B(self));
}

static Py_ssize_t
ops_buffer_size(fl_transport_base *b)
{
    return ((fl_stream *)b)->wbuf.size;
}

static const fl_transport_ops stream_ops = {
    .update_io = update_io,
    .force_close = force_close,
    .close_fd = close_fd,
    .buffer_size = ops_buffer_size,
    .set_protocol = set_protocol,
};

static PyObject *
get_sock_attr(fl_stream *self, void *c)
{
    return get_sock(self);
}

static PyGetSetDef stream_getset[] = {
    FL_GETTER("_sock", get_sock_attr),
    FL_GETTER("_sock_fd", fl_tb_get_sock_fd),
    FL_GETTER("_conn_lost", fl_tb_get_conn_lost),
    FL_GETTER("_closing", fl_tb_get_closing),
    FL_GETTER("_loop", fl_tb_get_loop),
    FL_GETTER("_protocol", fl_tb_get_protocol_attr),
    FL_GETTER("_paused", fl_tb_get_paused),
    FL_GETTER("_protocol_paused", fl_tb_get_protocol_paused),
    {NULL},
};

static PyMethodDef stream_methods[] = {
    {"write", (PyCFunction)stream_write_py, METH_O, "write($self, data, /)\n--\n\n"},
    {"writelines", (PyCFunction)stream_writelines, METH_O, "writelines($self, list_of_data, /)\n--\n\n"},
    FL_NOARGS("write_eof", stream_write_eof),
    FL_NOARGS("can_write_eof", stream_can_write_eof),
    FL_NOARGS("close", stream_close),
    FL_NOARGS("abort", fl_tb_abort),
    FL_NOARGS("is_closing", fl_tb_is_closing),
    FL_NOARGS("is_reading", fl_tb_is_reading),
    FL_NOARGS("pause_reading", fl_tb_pause_reading_meth),
    FL_NOARGS("resume_reading", stream_resume_reading),
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))stream_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, "set_write_buffer_limits($self, high=None, low=None)\n--\n\n"},
    FL_NOARGS("get_write_buffer_limits", fl_tb_get_write_buffer_limits),
    FL_NOARGS("get_write_buffer_size", fl_tb_get_write_buffer_size),
    {"set_protocol", (PyCFunction)fl_tb_set_protocol_meth, METH_O,
     "set_protocol($self, protocol, /)\n--\n\n"},
    FL_NOARGS("get_protocol", fl_tb_get_protocol),
    {"get_extra_info", (PyCFunction)(void (*)(void))stream_get_extra_info,
     METH_VARARGS | METH_KEYWORDS, "get_extra_info($self, name, default=None)\n--\n\n"},
    {"_call_connection_lost", (PyCFunction)stream_call_connection_lost,
     METH_O, "_call_connection_lost($self, exc, /)\n--\n\n"},
    FL_NOARGS("_fl_start_reading", stream_start_reading),
    FL_NOARGS("_make_empty_waiter", stream_make_empty_waiter),
    FL_NOARGS("_reset_empty_waiter", stream_reset_empty_waiter),
    {"_force_close", (PyCFunction)fl_tb_force_close_meth, METH_O, "_force_close($self, exc, /)\n--\n\n"},
    FL_NOARGS("_fl_release_fd", stream_release_fd),
    FL_NOARGS("_fl_claim_fd", stream_claim_fd),
    {NULL, NULL, 0, NULL},
};

static PyType_Slot stream_slots[] = {
    {Py_tp_init, stream_init},
    {Py_tp_dealloc, stream_dealloc},
    {Py_tp_finalize, fl_tb_finalize},
    {Py_tp_traverse, stream_traverse},
    {Py_tp_clear, stream_clear},
    {Py_tp_methods, stream_methods},
    {Py_tp_getset, stream_getset},
    {Py_tp_members, fl_tb_members},
    {Py_tp_repr, stream_repr},
    {Py_tp_doc, "A stream (TCP or Unix) transport of a fastloop Loop."},
    {0, NULL},
};

static PyType_Spec stream_spec = {
    .name = "fastloop._core.StreamTransport",
    .basicsize = sizeof(fl_stream),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = stream_slots,
};

int
fl_stream_init_type(PyObject *mod, fl_state *st)
{
    PyObject *bases = PyTuple_Pack(1, st->aio_Transport);

    if (bases == NULL) {
        return -1;
    }
    st->StreamTransportType = fl_tb_add_type(
        mod, &stream_spec, bases, "StreamTransport", "asyncio.Transport");
    Py_DECREF(bases);
    return st->StreamTransportType == NULL ? -1 : 0;
}
