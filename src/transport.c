/* Helpers shared by the C transports; see transport.h. */
#include "transport.h"

#include <errno.h>

int
fl_tr_check_init(int initialised)
{
    if (!initialised) {
        PyErr_SetString(PyExc_RuntimeError, "transport is not initialised");
        return -1;
    }
    return 0;
}

PyObject *
fl_tr_call_in_ctx(PyObject *ctx, PyObject *fn, PyObject *const *args,
                  Py_ssize_t nargs)
{
    PyObject *res, *et, *ev, *etb;

    if (ctx == NULL || PyThreadState_Get()->context == ctx) {
        return PyObject_Vectorcall(fn, args, nargs, NULL);
    }
    if (PyContext_Enter(ctx) < 0) {
        return NULL;
    }
    res = PyObject_Vectorcall(fn, args, nargs, NULL);
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
    PyObject *r = PyObject_CallMethod((PyObject *)loop, helper, "OOs", self,
                                      exc, msg);
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
