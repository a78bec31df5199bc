/* Listener: the C accept loop of one listening stream socket. Behaviour
 * follows asyncio's BaseSelectorEventLoop._accept_connection: accept up to
 * `backlog` connections per readiness event; on EMFILE and friends report
 * the error and stop accepting for ACCEPT_RETRY_DELAY seconds, so that the
 * server survives fd exhaustion without spinning. */
#include "sockaddr.h"
#include "stream.h"
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <structmember.h>

#define ACCEPT_RETRY_DELAY 1.0

typedef struct {
    PyObject_HEAD
    fl_io io;
    fl_loop *loop;
    PyObject *sock;
    PyObject *factory;
    PyObject *server;
    PyObject *ssl_wrap;
    PyObject *context;
    PyObject *retry; /* TimerHandle while paused after EMFILE */
    PyObject *weakreflist;
    int backlog;
    int family, socktype, proto;
    char serving;
    char closed;
} fl_listener;

static void
report(fl_listener *self, PyObject *exc, const char *msg)
{
    PyObject *r = PyObject_CallMethod((PyObject *)self->loop,
                                      "_fl_accept_error", "OOs", self->sock,
                                      exc, msg);
    if (r == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(r);
}


/* Builds the protocol and transport of one accepted fd. Returns 0, or -1
 * for SystemExit/KeyboardInterrupt (left set). Closes fd on failure. */
static int
make_connection(fl_listener *self, int fd, struct sockaddr_storage *ss,
                socklen_t len)
{
    PyObject *peer = fl_sockaddr_to_py(ss, len), *proto = NULL, *t = NULL;

    if (peer != NULL) {
        proto = PyObject_CallNoArgs(self->factory);
    }
    if (proto != NULL && self->ssl_wrap != NULL) {
        Py_SETREF(proto, PyObject_CallOneArg(self->ssl_wrap, proto));
    }
    if (proto != NULL) {
        t = fl_stream_accepted(self->loop, fd, self->family, self->socktype,
                               self->proto, proto, self->server, peer);
    }
    Py_XDECREF(peer);
    Py_XDECREF(proto);
    if (t != NULL) {
        Py_DECREF(t);
        return 0;
    }
    close(fd);
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
    {
        return -1;
    }
    {
        PyObject *exc = fl_tr_fetch_exc();
        report(self, exc,
               "Error on transport creation for incoming connection");
        Py_XDECREF(exc);
    }
    return 0;
}

static void
pause_accepting(fl_listener *self, int err)
{
    PyObject *exc, *fn, *h;

    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    exc = fl_tr_fetch_exc();
    report(self, exc, "socket.accept() out of system resource");
    Py_XDECREF(exc);
    fl_io_stop(self->loop, &self->io);
    fn = PyObject_GetAttrString((PyObject *)self, "_fl_resume");
    if (fn == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
        return;
    }
    h = PyObject_CallMethod((PyObject *)self->loop, "call_later", "dO",
                            ACCEPT_RETRY_DELAY, fn);
    Py_DECREF(fn);
    if (h == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
        return;
    }
    Py_XSETREF(self->retry, h);
}

static int
accept_batch(fl_listener *self)
{
    int i;

    for (i = 0; i < self->backlog && !self->closed && self->io.wanted; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd;
        do {
            fd = accept4(self->io.fd, (struct sockaddr *)&ss, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        } while (fd < 0 && errno == EINTR);
        if (fd < 0) {
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
                err == ENOMEM)
            {
                pause_accepting(self, err);
                return 0;
            }
            if (err != EAGAIN && err != EWOULDBLOCK && err != ECONNABORTED) {
                PyObject *exc;
                errno = err;
                PyErr_SetFromErrno(PyExc_OSError);
                exc = fl_tr_fetch_exc();
                report(self, exc, "Error on accepting connection");
                Py_XDECREF(exc);
            }
            return 0;
        }
        if (make_connection(self, fd, &ss, len) < 0) {
            return -1;
        }
    }
    return 0;
}

static int
listener_on_io(fl_io *io, unsigned events)
{
    fl_listener *self = (fl_listener *)io->owner;
    int rc;

    if (PyThreadState_Get()->context == self->context) {
        return accept_batch(self);
    }
    /* Connections inherit the listener's context, as in asyncio where the
     * accept handle runs in the context captured by start_serving. */
    if (PyContext_Enter(self->context) < 0) {
        return -1;
    }
    rc = accept_batch(self);
    if (PyContext_Exit(self->context) < 0) {
        return -1;
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Python API                                                          */

static int
check_open(fl_listener *self)
{
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "listener is not initialised");
        return -1;
    }
    return 0;
}

static PyObject *
listener_start(fl_listener *self, PyObject *unused)
{
    if (check_open(self) < 0) {
        return NULL;
    }
    if (self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "listener is closed");
        return NULL;
    }
    if (fl_loop_check_closed(self->loop) < 0) {
        return NULL;
    }
    self->serving = 1;
    if (self->retry == NULL && fl_io_start(self->loop, &self->io, FL_READ) < 0)
    {
        return NULL;
    }
    Py_RETURN_NONE;
}

static void
cancel_retry(fl_listener *self)
{
    if (self->retry != NULL) {
        PyObject *r = PyObject_CallMethod(self->retry, "cancel", NULL);
        Py_XDECREF(r);
        PyErr_Clear();
        Py_CLEAR(self->retry);
    }
}

static PyObject *
listener_stop(fl_listener *self, PyObject *unused)
{
    if (check_open(self) < 0) {
        return NULL;
    }
    self->serving = 0;
    cancel_retry(self);
    Py_INCREF(self);
    fl_io_stop(self->loop, &self->io);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *
listener_close(fl_listener *self, PyObject *unused)
{
    PyObject *r;

    if (check_open(self) < 0) {
        return NULL;
    }
    if (self->closed) {
        Py_RETURN_NONE;
    }
    Py_INCREF(self);
    r = listener_stop(self, NULL);
    Py_XDECREF(r);
    self->closed = 1;
    r = PyObject_CallMethod(self->sock, "close", NULL);
    Py_DECREF(self);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
listener_resume(fl_listener *self, PyObject *unused)
{
    Py_CLEAR(self->retry);
    if (self->closed || !self->serving || self->loop == NULL ||
        self->loop->closed)
    {
        Py_RETURN_NONE;
    }
    if (fl_io_start(self->loop, &self->io, FL_READ) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
listener_is_serving(fl_listener *self, PyObject *unused)
{
    return PyBool_FromLong(self->serving && !self->closed);
}

static int
listener_init(fl_listener *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"loop", "sock", "protocol_factory", "server",
                             "backlog", "ssl_wrap", NULL};
    PyObject *loop, *sock, *factory, *server = Py_None, *ssl_wrap = Py_None;
    int backlog = 100, fd;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|OiO:Listener", kwlist,
                                     &loop, &sock, &factory, &server,
                                     &backlog, &ssl_wrap))
    {
        return -1;
    }
    if (self->loop != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "listener already initialised");
        return -1;
    }
    if (!fl_is_loop(loop)) {
        PyErr_SetString(PyExc_TypeError, "loop must be a fastloop Loop");
        return -1;
    }
    if (fl_tr_check_socklike(sock) < 0) {
        return -1;
    }
    if (!PyCallable_Check(factory) ||
        (ssl_wrap != Py_None && !PyCallable_Check(ssl_wrap)))
    {
        PyErr_SetString(PyExc_TypeError,
                        "protocol_factory and ssl_wrap must be callable");
        return -1;
    }
    if (fl_tr_sock_params(sock, &fd, &self->family, &self->socktype,
                          &self->proto) < 0 ||
        fl_tr_set_nonblocking(sock) < 0)
    {
        return -1;
    }
    self->context = PyContext_CopyCurrent();
    if (self->context == NULL) {
        return -1;
    }
    self->backlog = backlog > 0 ? backlog : 1;
    self->io.fd = fd;
    self->io.cb = listener_on_io;
    self->io.owner = (PyObject *)self;
    self->sock = Py_NewRef(sock);
    self->factory = Py_NewRef(factory);
    self->server = Py_NewRef(server);
    self->ssl_wrap = ssl_wrap == Py_None ? NULL : Py_NewRef(ssl_wrap);
    self->loop = (fl_loop *)Py_NewRef(loop);
    return 0;
}

static int
listener_traverse(fl_listener *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->sock);
    Py_VISIT(self->factory);
    Py_VISIT(self->server);
    Py_VISIT(self->ssl_wrap);
    Py_VISIT(self->context);
    Py_VISIT(self->retry);
    return 0;
}

static int
listener_clear(fl_listener *self)
{
    Py_CLEAR(self->factory);
    Py_CLEAR(self->server);
    Py_CLEAR(self->ssl_wrap);
    Py_CLEAR(self->context);
    Py_CLEAR(self->retry);
    return 0;
}

static void
listener_dealloc(fl_listener *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    listener_clear(self);
    /* The socket object closes its own fd when collected. */
    Py_CLEAR(self->sock);
    Py_CLEAR(self->loop);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
listener_repr(fl_listener *self)
{
    return PyUnicode_FromFormat("<Listener fd=%d serving=%s>", self->io.fd,
                                self->serving && !self->closed ? "True"
                                                               : "False");
}

static PyObject *
get_sock(fl_listener *self, void *c)
{
    return Py_NewRef(self->sock ? self->sock : Py_None);
}

static PyGetSetDef listener_getset[] = {
    {"sock", (getter)get_sock, NULL, NULL, NULL},
    {NULL},
};

static PyMethodDef listener_methods[] = {
    FL_NOARGS("start", listener_start),
    FL_NOARGS("stop", listener_stop),
    FL_NOARGS("close", listener_close),
    FL_NOARGS("is_serving", listener_is_serving),
    FL_NOARGS("_fl_resume", listener_resume),
    {NULL, NULL, 0, NULL},
};

static PyMemberDef listener_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(fl_listener, weakreflist),
     READONLY},
    {NULL},
};

static PyType_Slot listener_slots[] = {
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, listener_init},
    {Py_tp_dealloc, listener_dealloc},
    {Py_tp_traverse, listener_traverse},
    {Py_tp_clear, listener_clear},
    {Py_tp_methods, listener_methods},
    {Py_tp_getset, listener_getset},
    {Py_tp_members, listener_members},
    {Py_tp_repr, listener_repr},
    {Py_tp_doc, "The accept loop of one listening socket."},
    {0, NULL},
};

static PyType_Spec listener_spec = {
    .name = "fastloop._core.Listener",
    .basicsize = sizeof(fl_listener),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = listener_slots,
};

int fl_listener_init_type(PyObject *mod, fl_state *st);

int
fl_listener_init_type(PyObject *mod, fl_state *st)
{
    st->ListenerType =
        (PyTypeObject *)PyType_FromModuleAndSpec(mod, &listener_spec, NULL);
    if (st->ListenerType == NULL) {
        return -1;
    }
    return PyModule_AddObject(mod, "Listener",
                              Py_NewRef((PyObject *)st->ListenerType));
}
