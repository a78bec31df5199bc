/* Helpers shared by the C transports; see transport.h. */
#include "transport.h"

#include <errno.h>
#include <stddef.h>

int
fl_tr_check_init(int initialised)
{
    if (!initialised) {
        PyErr_SetString(PyExc_RuntimeError, "transport is not initialised");
        return -1;
    }
    return 0;
}

/* fn(*args), holding fn: callers pass a transport's cached method, which
 * the callback may drop (set_protocol()) while it runs. */
static PyObject *
call_held(PyObject *fn, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *res;

    Py_INCREF(fn);
    res = PyObject_Vectorcall(fn, args, nargs, NULL);
    Py_DECREF(fn);
    return res;
}

PyObject *
fl_tr_call_in_ctx(PyObject *ctx, PyObject *fn, PyObject *const *args,
                  Py_ssize_t nargs)
{
    PyObject *res, *et, *ev, *etb;

    if (ctx == NULL || PyThreadState_Get()->context == ctx) {
        return call_held(fn, args, nargs);
    }
    if (PyContext_Enter(ctx) < 0) {
        return NULL;
    }
    res = call_held(fn, args, nargs);
    if (res != NULL) {
        if (PyContext_Exit(ctx) < 0) {
            Py_DECREF(res);
            return NULL;
        }
        return res;
    }
    /* Keep the callback's exception across the exit. */
    PyErr_Fetch(&et, &ev, &etb);
    if (PyContext_Exit(ctx) < 0) {
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(etb);
        return NULL;
    }
    PyErr_Restore(et, ev, etb);
    return NULL;
}

PyObject *
fl_tr_call_method(PyObject *ctx, PyObject *obj, const char *name,
                  PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *fn, *res;

    if (obj == NULL) {
        Py_RETURN_NONE;
    }
    fn = PyObject_GetAttrString(obj, name);
    if (fn == NULL) {
        return NULL;
    }
    res = fl_tr_call_in_ctx(ctx, fn, args, nargs);
    Py_DECREF(fn);
    return res;
}

int
fl_tr_is_fatal_exc(void)
{
    return PyErr_ExceptionMatches(PyExc_SystemExit) ||
           PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
}

PyObject *
fl_tr_fetch_exc(void)
{
    PyObject *t, *v, *tb;

    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL && v != NULL) {
        PyException_SetTraceback(v, tb);
    }
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
}

PyObject *
fl_tr_oserror(int err)
{
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return fl_tr_fetch_exc();
}

void
fl_tr_report(fl_loop *loop, PyObject *self, const char *helper,
             PyObject *exc, const char *msg)
{
    fl_handling handling;
    PyObject *r;

    fl_handling_begin(&handling, exc);
    r = PyObject_CallMethod((PyObject *)loop, helper, "OOs", self, exc, msg);
    fl_handling_end(&handling);
    if (r == NULL) {
        PyErr_WriteUnraisable(self);
    }
    Py_XDECREF(r);
}

int
fl_tr_fatal_error(fl_loop *loop, PyObject *self, const char *msg,
                  void (*force_close)(PyObject *self, PyObject *exc))
{
    PyObject *exc;

    if (fl_tr_is_fatal_exc()) {
        return -1;
    }
    exc = fl_tr_fetch_exc();
    if (exc == NULL) {
        return 0;
    }
    fl_tr_report(loop, self, "_fl_transport_error", exc, msg);
    force_close(self, exc);
    Py_DECREF(exc);
    return 0;
}

int
fl_tr_call_soon(fl_loop *loop, PyObject *self, const char *name,
                PyObject *arg, PyObject *ctx)
{
    PyObject *fn, *h;
    int rc;

    if (fl_loop_check_closed(loop) < 0) {
        return -1;
    }
    fn = PyObject_GetAttrString(self, name);
    if (fn == NULL) {
        return -1;
    }
    h = fl_handle_new(loop->state, loop, fn, &arg, arg ? 1 : 0, ctx);
    Py_DECREF(fn);
    if (h == NULL) {
        return -1;
    }
    rc = fl_ready_push(&loop->ready, h);
    Py_DECREF(h);
    return rc;
}

int
fl_tr_check_socklike(PyObject *sock)
{
    int ok = !PyLong_Check(sock) && PyObject_HasAttrString(sock, "fileno") &&
             PyObject_HasAttrString(sock, "family");

    if (!ok) {
        PyErr_Format(PyExc_TypeError,
                     "sock must be a socket object, not %.200s",
                     Py_TYPE(sock)->tp_name);
        return -1;
    }
    return 0;
}

static int
sock_int(PyObject *sock, const char *attr, int *out)
{
    PyObject *v = PyObject_GetAttrString(sock, attr);
    long l;

    if (v == NULL) {
        return -1;
    }
    l = PyLong_AsLong(v);
    Py_DECREF(v);
    if (l == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (int)l;
    return 0;
}

int
fl_tr_sock_params(PyObject *sock, int *fd, int *family, int *type,
                  int *proto)
{
    if ((*fd = fl_fd_from_object(sock)) < 0) {
        return -1;
    }
    if (sock_int(sock, "family", family) < 0 ||
        sock_int(sock, "type", type) < 0 || sock_int(sock, "proto", proto) < 0)
    {
        return -1;
    }
    return 0;
}

int
fl_tr_set_nonblocking(PyObject *sock)
{
    PyObject *r = PyObject_CallMethod(sock, "setblocking", "O", Py_False);

    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The transports' common base                                         */

#define TB(self) ((fl_transport_base *)(self))

int
fl_tb_call_flow(fl_transport_base *b, const char *name, const char *msg,
                PyObject *ctx)
{
    PyObject *r = fl_tr_call_method(ctx, b->protocol, name, NULL, 0), *exc;

    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (fl_tr_is_fatal_exc()) {
        return -1;
    }
    exc = fl_tr_fetch_exc();
    fl_tb_report(b, "_fl_protocol_error", exc, msg);
    Py_XDECREF(exc);
    return 0;
}

void
fl_tb_update_io_noerr(fl_transport_base *b)
{
    if (b->ops->update_io(b) < 0) {
        PyErr_WriteUnraisable((PyObject *)b);
    }
}

int
fl_tb_lost_write(fl_transport_base *b, const char *msg)
{
    if (b->conn_lost >= FL_TR_LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
        PyObject *r = PyObject_CallMethod((PyObject *)b->loop,
                                          "_fl_log_warning", "s", msg);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    b->conn_lost++;
    return 0;
}

int
fl_tb_close(fl_transport_base *b, int pending)
{
    int rc = 0;

    if (b->closing) {
        return 0;
    }
    b->closing = 1;
    Py_INCREF(b);
    if (!pending) {
        b->conn_lost++;
    }
    fl_tb_update_io_noerr(b);
    if (!pending) {
        rc = fl_tb_call_soon(b, "_call_connection_lost", Py_None);
    }
    Py_DECREF(b);
    return rc;
}

int
fl_tb_pause_reading(fl_transport_base *b)
{
    if (fl_tb_check_init(b) < 0) {
        return -1;
    }
    if (b->closing || b->paused) {
        return 0;
    }
    b->paused = 1;
    Py_INCREF(b);
    fl_tb_update_io_noerr(b);
    Py_DECREF(b);
    return 1;
}

int
fl_tb_resume_reading(fl_transport_base *b)
{
    if (fl_tb_check_init(b) < 0) {
        return -1;
    }
    if (b->closing || !b->paused) {
        return 0;
    }
    b->paused = 0;
    return b->ops->update_io(b) < 0 ? -1 : 1;
}

static int
as_ssize(PyObject *o, Py_ssize_t *out)
{
    *out = PyLong_AsSsize_t(o);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

int
fl_tb_set_limits(fl_transport_base *b, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high_o = Py_None, *low_o = Py_None;
    Py_ssize_t high, low;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     "|OO:set_write_buffer_limits", kwlist,
                                     &high_o, &low_o) ||
        fl_tb_check_init(b) < 0)
    {
        return -1;
    }
    if (high_o != Py_None) {
        if (as_ssize(high_o, &high) < 0) {
            return -1;
        }
    }
    else if (low_o == Py_None) {
        high = FL_TR_HIGH_WATER;
    }
    else {
        if (as_ssize(low_o, &low) < 0) {
            return -1;
        }
        if (low > PY_SSIZE_T_MAX / 4 || low < PY_SSIZE_T_MIN / 4) {
            PyErr_SetString(PyExc_OverflowError, "low is too large");
            return -1;
        }
        high = 4 * low;
    }
    if (low_o == Py_None) {
        low = high / 4;
    }
    else if (as_ssize(low_o, &low) < 0) {
        return -1;
    }
    if (!(high >= low && low >= 0)) {
        PyErr_Format(PyExc_ValueError,
                     "high (%zd) must be >= low (%zd) must be >= 0", high,
                     low);
        return -1;
    }
    b->high = high;
    b->low = low;
    return 0;
}

int
fl_tb_init_check(fl_transport_base *b, PyObject *loop, PyObject *extra)
{
    if (b->initialised || b->loop != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "transport already initialised");
        return -1;
    }
    if (!fl_is_loop(loop)) {
        PyErr_SetString(PyExc_TypeError, "loop must be a fastloop Loop");
        return -1;
    }
    if (fl_loop_check_closed((fl_loop *)loop) < 0) {
        return -1;
    }
    if (extra != Py_None && !PyDict_Check(extra)) {
        PyErr_SetString(PyExc_TypeError, "extra must be a dict or None");
        return -1;
    }
    return 0;
}

int
fl_tb_setup(fl_transport_base *b, fl_loop *loop, const fl_transport_ops *ops,
            fl_io_cb cb, PyObject *extra)
{
    b->loop = (fl_loop *)Py_NewRef((PyObject *)loop);
    b->ops = ops;
    b->io.owner = (PyObject *)b;
    b->io.cb = cb;
    b->io.wanted = 0;
    b->high = FL_TR_HIGH_WATER;
    b->low = FL_TR_HIGH_WATER / 4;
    Py_XSETREF(b->context, PyContext_CopyCurrent());
    if (b->context == NULL) {
        return -1;
    }
    Py_XSETREF(b->extra, PyDict_New());
    if (b->extra == NULL) {
        return -1;
    }
    if (extra != NULL && extra != Py_None &&
        PyDict_Update(b->extra, extra) < 0)
    {
        return -1;
    }
    return 0;
}

void
fl_tb_set_protocol(fl_transport_base *b, PyObject *protocol)
{
    Py_XSETREF(b->protocol, Py_NewRef(protocol));
    b->protocol_connected = 1;
}

/* Schedules fn(*args) in the transport's context (no closed-loop check:
 * __init__ made that). */
static int
schedule(fl_transport_base *b, PyObject *fn, PyObject *const *args,
         Py_ssize_t nargs)
{
    PyObject *h = fl_handle_new(b->loop->state, b->loop, fn, args, nargs,
                                b->context);
    int rc;

    if (h == NULL) {
        return -1;
    }
    rc = fl_ready_push(&b->loop->ready, h);
    Py_DECREF(h);
    return rc;
}

int
fl_tb_schedule_start(fl_transport_base *b, PyObject *protocol,
                     const char *start, PyObject *waiter)
{
    PyObject *args[2], *fn;
    int rc;

    fn = PyObject_GetAttrString(protocol, "connection_made");
    if (fn == NULL) {
        return -1;
    }
    args[0] = (PyObject *)b;
    rc = schedule(b, fn, args, 1);
    Py_DECREF(fn);
    if (rc < 0 || fl_tb_call_soon(b, start, NULL) < 0) {
        return -1;
    }
    if (waiter != NULL && waiter != Py_None) {
        args[0] = waiter;
        args[1] = Py_None;
        return schedule(b, b->loop->state->set_result_unless_cancelled, args,
                        2);
    }
    return 0;
}

PyObject *
fl_tb_sock_repr(fl_transport_base *b, int write_polling, Py_ssize_t bufsize)
{
    const char *state = b->fd_closed ? " closed"
                        : b->closing ? " closing"
                                     : "";

    return PyUnicode_FromFormat(
        "<%s%s fd=%d read=%s write=<%s, bufsize=%zd>>", Py_TYPE(b)->tp_name,
        state, b->fd_closed ? -1 : b->io.fd,
        b->io.wanted & FL_READ ? "polling" : "idle",
        write_polling ? "polling" : "idle", bufsize);
}

int
fl_tb_traverse(fl_transport_base *b, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(b));
    Py_VISIT(b->extra);
    Py_VISIT(b->loop);
    Py_VISIT(b->protocol);
    Py_VISIT(b->context);
    Py_VISIT(b->dict);
    return 0;
}

void
fl_tb_clear(fl_transport_base *b)
{
    Py_CLEAR(b->extra);
    Py_CLEAR(b->protocol);
    Py_CLEAR(b->context);
    Py_CLEAR(b->dict);
}

void
fl_tb_finalize(PyObject *self)
{
    fl_transport_base *b = TB(self);
    PyObject *et, *ev, *etb;

    if (!b->initialised || b->fd_closed) {
        return;
    }
    PyErr_Fetch(&et, &ev, &etb);
    if (PyErr_ResourceWarning(self, 1, "unclosed transport %R", self) < 0) {
        PyErr_WriteUnraisable(self);
    }
    b->ops->close_fd(b);
    PyErr_Restore(et, ev, etb);
}

int
fl_tb_dealloc_begin(fl_transport_base *b)
{
    PyObject *self = (PyObject *)b;

    /* Weak references die first, as when the collector frees a cycle: the
     * ResourceWarning of the finaliser holds the transport as its
     * source. */
    PyObject_GC_UnTrack(self);
    if (b->weakreflist != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    PyObject_GC_Track(self);
    if (PyObject_CallFinalizerFromDealloc(self) < 0) {
        return -1; /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    if (b->initialised && !b->fd_closed) {
        b->ops->close_fd(b);
    }
    else if (b->loop != NULL) {
        fl_io_stop(b->loop, &b->io); /* detach, if attached */
    }
    return 0;
}

void
fl_tb_dealloc_end(fl_transport_base *b)
{
    PyTypeObject *tp = Py_TYPE(b);

    Py_CLEAR(b->loop);
    tp->tp_free((PyObject *)b);
    Py_DECREF(tp);
}

PyObject *
fl_tb_is_closing(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(TB(self)->closing);
}

PyObject *
fl_tb_is_reading(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(!TB(self)->paused && !TB(self)->closing);
}

PyObject *
fl_tb_pause_reading_meth(PyObject *self, PyObject *unused)
{
    if (fl_tb_pause_reading(TB(self)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
fl_tb_resume_reading_meth(PyObject *self, PyObject *unused)
{
    if (fl_tb_resume_reading(TB(self)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
fl_tb_start_reading(PyObject *self, PyObject *unused)
{
    fl_transport_base *b = TB(self);

    if (fl_tb_check_init(b) < 0) {
        return NULL;
    }
    b->reading = 1;
    if (b->ops->update_io(b) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
fl_tb_get_write_buffer_limits(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("(nn)", TB(self)->low, TB(self)->high);
}

PyObject *
fl_tb_get_write_buffer_size(PyObject *self, PyObject *unused)
{
    fl_transport_base *b = TB(self);

    return PyLong_FromSsize_t(b->ops != NULL ? b->ops->buffer_size(b) : 0);
}

PyObject *
fl_tb_get_protocol(PyObject *self, PyObject *unused)
{
    PyObject *p = TB(self)->protocol;

    return Py_NewRef(p ? p : Py_None);
}

PyObject *
fl_tb_set_protocol_meth(PyObject *self, PyObject *protocol)
{
    fl_transport_base *b = TB(self);

    if (fl_tb_check_init(b) < 0 || b->ops->set_protocol(b, protocol) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
fl_tb_abort(PyObject *self, PyObject *unused)
{
    fl_transport_base *b = TB(self);

    if (fl_tb_check_init(b) < 0 || b->ops->force_close(b, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
fl_tb_force_close_meth(PyObject *self, PyObject *exc)
{
    fl_transport_base *b = TB(self);

    if (fl_tb_check_init(b) < 0 ||
        b->ops->force_close(b, exc == Py_None ? NULL : exc) < 0)
    {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
fl_tb_get_conn_lost(PyObject *self, void *c)
{
    return PyLong_FromLong(TB(self)->conn_lost);
}

PyObject *
fl_tb_get_closing(PyObject *self, void *c)
{
    return PyBool_FromLong(TB(self)->closing);
}

PyObject *
fl_tb_get_loop(PyObject *self, void *c)
{
    fl_transport_base *b = TB(self);

    if (b->fd_closed || b->loop == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef((PyObject *)b->loop);
}

PyObject *
fl_tb_get_protocol_attr(PyObject *self, void *c)
{
    return fl_tb_get_protocol(self, NULL);
}

PyObject *
fl_tb_get_paused(PyObject *self, void *c)
{
    return PyBool_FromLong(TB(self)->paused);
}

PyObject *
fl_tb_get_protocol_paused(PyObject *self, void *c)
{
    return PyBool_FromLong(TB(self)->protocol_paused);
}

PyObject *
fl_tb_get_sock_fd(PyObject *self, void *c)
{
    fl_transport_base *b = TB(self);

    return PyLong_FromLong(b->fd_closed || !b->initialised ? -1 : b->io.fd);
}

PyMemberDef fl_tb_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(fl_transport_base, weakreflist), READONLY},
    {"__dictoffset__", T_PYSSIZET, offsetof(fl_transport_base, dict),
     READONLY},
    {NULL},
};

/* Whether cls's instances are laid out as asyncio.BaseTransport's: the
 * `_extra` slot right after the object header, and nothing else. */
static int
has_base_layout(PyObject *cls)
{
    PyObject *d;
    Py_ssize_t off;

    if (!PyType_Check(cls)) {
        return 0;
    }
    d = PyObject_GetAttrString(cls, "_extra");
    if (d == NULL) {
        PyErr_Clear();
        return 0;
    }
    off = Py_IS_TYPE(d, &PyMemberDescr_Type)
              ? ((PyMemberDescrObject *)d)->d_member->offset
              : -1;
    Py_DECREF(d);
    return off == (Py_ssize_t)offsetof(fl_transport_base, extra) &&
           ((PyTypeObject *)cls)->tp_basicsize ==
               (Py_ssize_t)offsetof(fl_transport_base, io);
}

PyTypeObject *
fl_tb_add_type(PyObject *mod, PyType_Spec *spec, PyObject *bases,
               const char *name, const char *what)
{
    PyObject *tp;
    Py_ssize_t i;

    for (i = 0; i < PyTuple_GET_SIZE(bases); i++) {
        if (!has_base_layout(PyTuple_GET_ITEM(bases, i))) {
            PyErr_Format(PyExc_ImportError,
                         "fastloop: unexpected layout of %s", what);
            return NULL;
        }
    }
    tp = PyType_FromModuleAndSpec(mod, spec, bases);
    if (tp == NULL) {
        return NULL;
    }
    if (PyModule_AddObject(mod, name, Py_NewRef(tp)) < 0) {
        Py_DECREF(tp);
        Py_DECREF(tp);
        return NULL;
    }
    return (PyTypeObject *)tp;
}

static void
force_close_noerr(PyObject *self, PyObject *exc)
{
    fl_tb_force_close_noerr(TB(self), exc);
}

void
fl_tb_force_close_noerr(fl_transport_base *b, PyObject *exc)
{
    if (b->ops->force_close(b, exc) < 0) {
        PyErr_WriteUnraisable((PyObject *)b);
    }
}

int
fl_tb_fatal_error(fl_transport_base *b, const char *msg)
{
    return fl_tr_fatal_error(b->loop, (PyObject *)b, msg, force_close_noerr);
}

int
fl_tb_schedule_lost(fl_transport_base *b, PyObject *exc)
{
    int rc;

    b->closing = 1;
    b->conn_lost++;
    Py_INCREF(b);
    fl_tb_update_io_noerr(b);
    /* Fails (RuntimeError) only on a closed loop, like call_soon. */
    rc = fl_tb_call_soon(b, "_call_connection_lost", exc ? exc : Py_None);
    Py_DECREF(b);
    return rc;
}
