/* Helpers shared by the C transports (stream.c, udp.c, pipe.c) and the
 * accept loop (server.c): calling protocols in a context, capturing and
 * reporting exceptions, scheduling a transport's own methods. */
#ifndef FASTLOOP_TRANSPORT_H
#define FASTLOOP_TRANSPORT_H

#include "fastloop.h"

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

#endif
