/* Code shared by the C transports (stream.c, udp.c, pipe.c) and the
 * accept loop (server.c): the common base struct of the transports and the
 * methods that only read it, calling protocols in a context, capturing and
 * reporting exceptions, scheduling a transport's own methods. */
#ifndef FASTLOOP_TRANSPORT_H
#define FASTLOOP_TRANSPORT_H

#include "fastloop.h"

#include <structmember.h>

/* RuntimeError unless the transport's __init__ completed. */
int fl_tr_check_init(int initialised);

/* fn(*args) inside ctx (or directly when ctx is NULL or already current:
 * a Context cannot be entered twice). New reference or NULL. */
PyObject *fl_tr_call_in_ctx(PyObject *ctx, PyObject *fn,
                            PyObject *const *args, Py_ssize_t nargs);

/* obj.<name>(*args) inside ctx; None when obj is NULL. */
PyObject *fl_tr_call_method(PyObject *ctx, PyObject *obj, const char *name,
                            PyObject *const *args, Py_ssize_t nargs);

/* The current exception is SystemExit or KeyboardInterrupt. */
int fl_tr_is_fatal_exc(void);

/* Takes the current exception (normalised, traceback attached). */
PyObject *fl_tr_fetch_exc(void);

/* An OSError for errno err, as an exception object (nothing left set). */
PyObject *fl_tr_oserror(int err);

/* loop.<helper>(self, exc, msg) — one of the Python layer's reporting
 * hooks (_fl_transport_error, _fl_protocol_error). Never raises. */
void fl_tr_report(fl_loop *loop, PyObject *self, const char *helper,
                  PyObject *exc, const char *msg);

/* asyncio's _fatal_error: consumes the current exception, reports it and
 * calls force_close(self, exc). Returns -1 when the exception is
 * SystemExit/KeyboardInterrupt (left set), else 0. */
int fl_tr_fatal_error(fl_loop *loop, PyObject *self, const char *msg,
                      void (*force_close)(PyObject *self, PyObject *exc));

/* Schedules self.<name>(arg) (no argument when arg is NULL) in ctx, like
 * loop.call_soon(); RuntimeError on a closed loop. */
int fl_tr_call_soon(fl_loop *loop, PyObject *self, const char *name,
                    PyObject *arg, PyObject *ctx);

/* asyncio duck-types sockets (gunicorn passes wrappers that delegate to
 * a socket): TypeError unless sock has fileno() and a family. */
int fl_tr_check_socklike(PyObject *sock);

/* TypeError unless data is bytes, bytearray or memoryview (the message of
 * asyncio's write()). */
static inline int
fl_tr_check_bytes_like(PyObject *data)
{
    if (PyBytes_Check(data) || PyByteArray_Check(data) ||
        PyMemoryView_Check(data))
    {
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "data argument must be a bytes-like object, not '%.200s'",
                 Py_TYPE(data)->tp_name);
    return -1;
}

/* The fd, family, type and proto of a socket(-like) object. */
int fl_tr_sock_params(PyObject *sock, int *fd, int *family, int *type,
                      int *proto);

/* sock.setblocking(False). */
int fl_tr_set_nonblocking(PyObject *sock);

/* A METH_NOARGS method; the doc gives the text signature (inspect, mypy
 * stubtest). */
#define FL_NOARGS(name, fn) \
    {name, (PyCFunction)(void (*)(void))(fn), METH_NOARGS, \
     name "($self, /)\n--\n\n"}
#define FL_GETTER(name, fn) {name, (getter)(fn), NULL, NULL, NULL}

/* ------------------------------------------------------------------ */
/* The transports' common base                                         */

#define FL_TR_HIGH_WATER (64 * 1024) /* asyncio's default high-water mark */
/* asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES */
#define FL_TR_LOG_THRESHOLD_FOR_CONNLOST_WRITES 5

typedef struct fl_transport_base fl_transport_base;

/* What the shared methods need from a transport type; the hot paths call
 * the type's own functions directly. */
typedef struct {
    /* Brings the loop's watcher in line with the transport's state. May
     * drop the loop's reference to the transport. 0 or -1. */
    int (*update_io)(fl_transport_base *b);
    /* abort(), _force_close(exc): drop the queue and schedule
     * connection_lost(exc) (None when exc is NULL). 0 or -1. */
    int (*force_close)(fl_transport_base *b, PyObject *exc);
    /* Closes the fd exactly once (finaliser, dealloc). Never raises. */
    void (*close_fd)(fl_transport_base *b);
    /* get_write_buffer_size() */
    Py_ssize_t (*buffer_size)(fl_transport_base *b);
    /* set_protocol(): caches the protocol's methods the type calls, then
     * fl_tb_set_protocol(). 0 or -1. */
    int (*set_protocol)(fl_transport_base *b, PyObject *protocol);
} fl_transport_ops;

/* The first member (`base`) of every transport struct. It starts with
 * asyncio.BaseTransport's layout (the `_extra` slot only), which the types
 * are checked against at import (fl_tb_add_type). */
struct fl_transport_base {
    PyObject_HEAD
    PyObject *extra; /* asyncio.BaseTransport's `_extra` slot (a dict) */
    fl_io io;        /* io.owner == self */
    fl_loop *loop;
    const fl_transport_ops *ops; /* set with loop, by fl_tb_setup() */
    PyObject *protocol;
    PyObject *context; /* protocol callbacks run in it */
    PyObject *weakreflist;
    PyObject *dict;
    Py_ssize_t high, low; /* write buffer water marks */
    int conn_lost;
    char initialised;
    char closing;
    char paused;  /* pause_reading() */
    char reading; /* reading (watching) has been started */
    char protocol_paused;
    char protocol_connected;
    char fd_closed;
};

static inline int
fl_tb_check_init(fl_transport_base *b)
{
    return fl_tr_check_init(b->initialised);
}

static inline PyObject *
fl_tb_call_in_ctx(fl_transport_base *b, PyObject *fn, PyObject *const *args,
                  Py_ssize_t nargs)
{
    return fl_tr_call_in_ctx(b->context, fn, args, nargs);
}

/* protocol.<name>(*args) in the transport's context. */
static inline PyObject *
fl_tb_call_proto(fl_transport_base *b, const char *name,
                 PyObject *const *args, Py_ssize_t nargs)
{
    return fl_tr_call_method(b->context, b->protocol, name, args, nargs);
}

static inline void
fl_tb_report(fl_transport_base *b, const char *helper, PyObject *exc,
             const char *msg)
{
    fl_tr_report(b->loop, (PyObject *)b, helper, exc, msg);
}

/* Schedules self.<name>(arg) in the transport's context. */
static inline int
fl_tb_call_soon(fl_transport_base *b, const char *name, PyObject *arg)
{
    return fl_tr_call_soon(b->loop, (PyObject *)b, name, arg, b->context);
}

/* The watcher's part of update_io: watch for mask m (0: stay attached
 * without watching). May drop the loop's reference to the transport. */
static inline int
fl_tb_set_mask(fl_transport_base *b, unsigned m)
{
    if (m == b->io.wanted) {
        return 0;
    }
    if (m == 0) {
        /* Stay attached: the fd remains the transport's (add_reader() on
         * it raises, as asyncio's _ensure_fd_no_transport). */
        fl_io_pause(b->loop, &b->io);
        return 0;
    }
    return fl_io_start(b->loop, &b->io, m);
}

/* protocol.<name>() of write flow control, in ctx (none when NULL); an
 * exception goes to the loop's _fl_protocol_error with msg. Returns -1 with
 * SystemExit/KeyboardInterrupt left set, else 0. */
int fl_tb_call_flow(fl_transport_base *b, const char *name, const char *msg,
                    PyObject *ctx);

/* pause_writing() once `size` queued bytes exceed the high-water mark. */
static inline int
fl_tb_maybe_pause(fl_transport_base *b, Py_ssize_t size, PyObject *ctx)
{
    if (size <= b->high || b->protocol_paused) {
        return 0;
    }
    b->protocol_paused = 1;
    return fl_tb_call_flow(b, "pause_writing",
                           "protocol.pause_writing() failed", ctx);
}

/* resume_writing() once a paused protocol's queue is down to the low
 * mark. */
static inline int
fl_tb_maybe_resume(fl_transport_base *b, Py_ssize_t size, PyObject *ctx)
{
    if (!b->protocol_paused || size > b->low) {
        return 0;
    }
    b->protocol_paused = 0;
    return fl_tb_call_flow(b, "resume_writing",
                           "protocol.resume_writing() failed", ctx);
}

/* ops->update_io, an error reported as unraisable. */
void fl_tb_update_io_noerr(fl_transport_base *b);

/* ops->force_close, an error reported as unraisable. */
void fl_tb_force_close_noerr(fl_transport_base *b, PyObject *exc);

/* fl_tr_fatal_error with ops->force_close. */
int fl_tb_fatal_error(fl_transport_base *b, const char *msg);

/* The end of asyncio's _force_close, once the type dropped its queue:
 * closing, the watcher updated, connection_lost(exc, or None when NULL)
 * scheduled. 0, or -1 (RuntimeError: the loop is closed). */
int fl_tb_schedule_lost(fl_transport_base *b, PyObject *exc);

/* A write after the connection was lost: counted, and from the 5th on
 * logged as loop._fl_log_warning(msg), as asyncio. 0 or -1. */
int fl_tb_lost_write(fl_transport_base *b, const char *msg);

/* close() of a socket transport (check_init done): closing; unless data
 * is pending, connection_lost(None) is scheduled now (else once the queue
 * drains). 0 or -1. */
int fl_tb_close(fl_transport_base *b, int pending);

/* pause_reading()/resume_reading() without the method call around them:
 * 1 when the state changed, 0 when there was nothing to do, -1 on error
 * (uninitialised, or the watcher could not be updated). */
int fl_tb_pause_reading(fl_transport_base *b);
int fl_tb_resume_reading(fl_transport_base *b);

/* set_write_buffer_limits(high=None, low=None) without the flow control
 * call that follows: parses, checks init and sets the marks. 0 or -1. */
int fl_tb_set_limits(fl_transport_base *b, PyObject *args, PyObject *kwargs);

/* __init__'s first checks: not initialised yet, a fastloop loop that is
 * not closed, extra a dict or None. 0 or -1. */
int fl_tb_init_check(fl_transport_base *b, PyObject *loop, PyObject *extra);

/* Takes the loop, ops and watcher callback (io.fd is the caller's), sets
 * the default water marks, captures the context and builds the extra dict
 * from `extra` (a dict, None or NULL). 0 or -1. */
int fl_tb_setup(fl_transport_base *b, fl_loop *loop,
                const fl_transport_ops *ops, fl_io_cb cb, PyObject *extra);

/* Sets the protocol (the type binds its methods itself). */
void fl_tb_set_protocol(fl_transport_base *b, PyObject *protocol);

/* The end of __init__, as asyncio: schedules protocol.connection_made(self),
 * then self.<start>(), then the waiter's result (unless waiter is NULL or
 * None), all in the transport's context. 0 or -1. */
int fl_tb_schedule_start(fl_transport_base *b, PyObject *protocol,
                         const char *start, PyObject *waiter);

/* repr of a socket transport. */
PyObject *fl_tb_sock_repr(fl_transport_base *b, int write_polling,
                          Py_ssize_t bufsize);

/* tp_traverse/tp_clear of the base's objects (the type's own come on
 * top); clear leaves loop to dealloc. */
int fl_tb_traverse(fl_transport_base *b, visitproc visit, void *arg);
void fl_tb_clear(fl_transport_base *b);

/* tp_finalize: an initialised transport whose fd is still open gives a
 * ResourceWarning and closes it (ops->close_fd). */
void fl_tb_finalize(PyObject *self);

/* tp_dealloc in two halves around the type's own clean-up. begin: weak
 * references die first, then the finaliser; the fd is closed (or the
 * watcher detached) and the object untracked. Returns -1 when the
 * finaliser resurrected the object (return at once), else 0. end: drops
 * the loop, frees the object, releases the type. */
int fl_tb_dealloc_begin(fl_transport_base *b);
void fl_tb_dealloc_end(fl_transport_base *b);

/* Shared methods (self is the transport). */
PyObject *fl_tb_is_closing(PyObject *self, PyObject *unused);
PyObject *fl_tb_is_reading(PyObject *self, PyObject *unused);
PyObject *fl_tb_pause_reading_meth(PyObject *self, PyObject *unused);
PyObject *fl_tb_resume_reading_meth(PyObject *self, PyObject *unused);
/* _fl_start_reading: scheduled after connection_made. */
PyObject *fl_tb_start_reading(PyObject *self, PyObject *unused);
PyObject *fl_tb_get_write_buffer_limits(PyObject *self, PyObject *unused);
PyObject *fl_tb_get_write_buffer_size(PyObject *self, PyObject *unused);
PyObject *fl_tb_get_protocol(PyObject *self, PyObject *unused);
PyObject *fl_tb_set_protocol_meth(PyObject *self, PyObject *protocol);
PyObject *fl_tb_abort(PyObject *self, PyObject *unused);
/* asyncio's _force_close(exc) (used by sslproto on the raw transport). */
PyObject *fl_tb_force_close_meth(PyObject *self, PyObject *exc);

/* Shared getters: _conn_lost, _closing, _loop (None once the fd is
 * closed), _protocol, _paused, _protocol_paused, _sock_fd (-1 unless
 * open). */
PyObject *fl_tb_get_conn_lost(PyObject *self, void *c);
PyObject *fl_tb_get_closing(PyObject *self, void *c);
PyObject *fl_tb_get_loop(PyObject *self, void *c);
PyObject *fl_tb_get_protocol_attr(PyObject *self, void *c);
PyObject *fl_tb_get_paused(PyObject *self, void *c);
PyObject *fl_tb_get_protocol_paused(PyObject *self, void *c);
PyObject *fl_tb_get_sock_fd(PyObject *self, void *c);

/* __weaklistoffset__ and __dictoffset__ of any type whose struct starts
 * with the base. */
extern PyMemberDef fl_tb_members[];

/* Creates the type from spec over bases (a tuple: 3.9 requires one), each
 * of which must have asyncio.BaseTransport's layout (ImportError about
 * `what` otherwise), and adds it to mod as `name`. New reference or NULL. */
PyTypeObject *fl_tb_add_type(PyObject *mod, PyType_Spec *spec,
                             PyObject *bases, const char *name,
                             const char *what);

#endif
