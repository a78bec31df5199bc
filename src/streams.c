/* Native paths for asyncio streams: see streams.h.
 *
 * The C methods do what asyncio's Python does (streams.py, identical for
 * these methods in 3.9-3.13) and fall back to asyncio's own function for
 * any call they do not handle: keywords, read() without a positive int,
 * a stream that already saw EOF, a buffer that is not a bytearray, a
 * drain() that has to wait. read(), readexactly() and readline() return an
 * awaitable "op" that runs their body and _wait_for_data() as a small state
 * machine; it is a collections.abc.Coroutine, so
 * create_task(reader.read(n)) works. */
#include "streams.h"
#include "bytebuf.h"
#include "stream.h"

#include <string.h>

#define S(st, i) ((st)->streams.str[i])

static const char *const names[FL_S_N] = {
    "_buffer",         "_eof",          "_waiter",
    "_exception",      "_transport",    "_paused",
    "_limit",          "_loop",         "_reader",
    "_protocol",       "_connection_lost", "_stream_reader_wr",
    "_stream_writer",  "create_future", "cancelled",
    "set_result",      "pause_reading", "resume_reading",
    "write",           "is_closing",    "__class__",
    "self",
};

/* (class index, method) pairs whose replacement disables adoption. */
static const struct {
    int cls; /* 0 reader, 1 writer, 2 protocol */
    const char *name;
} guarded[] = {
    {0, "read"},           {0, "feed_data"},
    {0, "exception"},      {0, "_wait_for_data"},
    {0, "_maybe_resume_transport"}, {0, "_wakeup_waiter"},
    {0, "readexactly"},    {0, "readline"},
    {0, "readuntil"},
    {1, "write"},          {1, "drain"},
    {2, "data_received"},  {2, "_drain_helper"},
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

/* o.<name>(*args), result discarded: 0 or -1. */
static int
call_attr(fl_state *st, PyObject *o, int i, PyObject *arg)
{
    PyObject *args[2] = {o, arg};
    PyObject *r = PyObject_VectorcallMethod(
        S(st, i), args, (arg ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);

    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* The referent of a weak reference, new reference; NULL (no error) when
 * it is dead or not a weak reference. */
static PyObject *
deref(PyObject *wr)
{
    if (!PyWeakref_Check(wr)) {
        return NULL;
    }
#if FL_PY313
    PyObject *o;

    if (PyWeakref_GetRef(wr, &o) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return o;
#else
    PyObject *o = PyWeakref_GetObject(wr);

    return o == NULL || o == Py_None ? NULL : Py_NewRef(o);
#endif
}

/* asyncio's function fn(self, *args, **kwargs). */
static PyObject *
call_orig(PyObject *fn, PyObject *self, PyObject *const *args,
          size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *small[8], **stack = small, *r;

    if (total + 1 > 8) {
        stack = PyMem_New(PyObject *, (size_t)total + 1);
        if (stack == NULL) {
            return PyErr_NoMemory();
        }
    }
    stack[0] = self;
    if (total > 0) {
        memcpy(stack + 1, args, (size_t)total * sizeof(PyObject *));
    }
    r = PyObject_Vectorcall(fn, stack, (size_t)nargs + 1, kwnames);
    if (stack != small) {
        PyMem_Free(stack);
    }
    return r;
}

/* ------------------------------------------------------------------ */
/* Instance dicts                                                      */

/* The reader's and writer's attributes are plain instance attributes
 * (asyncio's classes have no slots or properties for them, and only
 * objects of exactly the adopted classes get here), so the C methods read
 * and write the instance dict directly: a dict lookup instead of a generic
 * getattr with its type lookup. */

/* o.__dict__, new reference. */
static inline PyObject *
odict(PyObject *o)
{
    return PyObject_GenericGetDict(o, NULL);
}

/* d[name], borrowed; NULL with AttributeError when missing. */
static PyObject *
dget(fl_state *st, PyObject *d, int i)
{
    PyObject *v = PyDict_GetItemWithError(d, S(st, i));

    if (v == NULL && !PyErr_Occurred()) {
        PyErr_SetObject(PyExc_AttributeError, S(st, i));
    }
    return v;
}

static inline int
dset(fl_state *st, PyObject *d, int i, PyObject *v)
{
    return PyDict_SetItem(d, S(st, i), v);
}

/* bool(d[name]): 1, 0 or -1. */
static int
dtrue(fl_state *st, PyObject *d, int i)
{
    PyObject *v = dget(st, d, i);
    int r;

    if (v == NULL) {
        return -1;
    }
    if (v == Py_False || v == Py_None) {
        return 0;
    }
    if (v == Py_True) {
        return 1;
    }
    Py_INCREF(v);
    r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

/* transport.<method>() on d[name] (pause/resume_reading). 0 or -1. */
static int
call_transport(fl_state *st, PyObject *d, int method)
{
    PyObject *t = dget(st, d, FL_S_TRANSPORT);
    int rc;

    if (t == NULL) {
        return -1;
    }
    Py_INCREF(t);
    rc = call_attr(st, t, method, NULL);
    Py_DECREF(t);
    return rc;
}

/* ------------------------------------------------------------------ */
/* StreamReader internals (d: the reader's __dict__)                   */

/* _maybe_resume_transport() */
static int
maybe_resume(fl_state *st, PyObject *d, PyObject *buffer)
{
    PyObject *limit, *len;
    Py_ssize_t n;
    int paused = dtrue(st, d, FL_S_PAUSED), le;

    if (paused <= 0) {
        return paused;
    }
    n = PyObject_Length(buffer);
    limit = n < 0 ? NULL : dget(st, d, FL_S_LIMIT);
    if (limit == NULL) {
        return -1;
    }
    Py_INCREF(limit);
    len = PyLong_FromSsize_t(n);
    le = len == NULL ? -1 : PyObject_RichCompareBool(len, limit, Py_LE);
    Py_XDECREF(len);
    Py_DECREF(limit);
    if (le <= 0) {
        return le;
    }
    if (dset(st, d, FL_S_PAUSED, Py_False) < 0) {
        return -1;
    }
    return call_transport(st, d, FL_S_RESUME_READING);
}

/* _wakeup_waiter() */
static int
wakeup(fl_state *st, PyObject *d)
{
    PyObject *w = dget(st, d, FL_S_WAITER), *c;
    int cancelled, rc = 0;

    if (w == NULL) {
        return -1;
    }
    if (w == Py_None) {
        return 0;
    }
    Py_INCREF(w);
    if (dset(st, d, FL_S_WAITER, Py_None) < 0) {
        Py_DECREF(w);
        return -1;
    }
    if ((PyObject *)Py_TYPE(w) == st->aio_Future) {
        /* The loop's own futures: asyncio.Future's methods, called
         * without looking them up on the instance. */
        PyObject *args[2] = {w, Py_None};

        c = PyObject_Vectorcall(st->streams.fut_cancelled, args, 1, NULL);
        cancelled = c == NULL ? -1 : PyObject_IsTrue(c);
        Py_XDECREF(c);
        if (cancelled == 0) {
            c = PyObject_Vectorcall(st->streams.fut_set_result, args, 2,
                                    NULL);
            rc = c == NULL ? -1 : 0;
            Py_XDECREF(c);
        }
    }
    else {
        c = PyObject_VectorcallMethod(S(st, FL_S_CANCELLED), &w,
                                      1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      NULL);
        cancelled = c == NULL ? -1 : PyObject_IsTrue(c);
        Py_XDECREF(c);
        if (cancelled == 0) {
            rc = call_attr(st, w, FL_S_SET_RESULT, Py_None);
        }
    }
    if (cancelled < 0) {
        rc = -1;
    }
    Py_DECREF(w);
    return rc;
}

/* len(buffer) > 2 * limit: 1, 0 or -1. */
static int
over_limit(PyObject *limit, Py_ssize_t buflen)
{
    PyObject *two, *twice, *len;
    int over;

    if (PyLong_CheckExact(limit)) {
        Py_ssize_t l = PyLong_AsSsize_t(limit);

        if (l != -1 || !PyErr_Occurred()) {
            return l < PY_SSIZE_T_MAX / 2 ? buflen > 2 * l : 0;
        }
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear(); /* a huge limit: compare as Python does */
    }
    two = PyLong_FromLong(2);
    twice = two == NULL ? NULL : PyNumber_Multiply(two, limit);
    len = PyLong_FromSsize_t(buflen);
    over = twice == NULL || len == NULL
               ? -1
               : PyObject_RichCompareBool(len, twice, Py_GT);
    Py_XDECREF(two);
    Py_XDECREF(twice);
    Py_XDECREF(len);
    return over;
}

/* The end of feed_data(): pause the transport above twice the limit.
 * asyncio tests `_transport is not None and not _paused` first; the three
 * are plain attribute reads, so the limit goes first here, which spares
 * the other two lookups on almost every call. */
static int
maybe_pause(fl_state *st, PyObject *d, Py_ssize_t buflen)
{
    PyObject *t, *limit;
    int paused, over, rc;

    limit = dget(st, d, FL_S_LIMIT);
    if (limit == NULL) {
        return -1;
    }
    Py_INCREF(limit);
    over = over_limit(limit, buflen);
    Py_DECREF(limit);
    if (over <= 0) {
        return over;
    }
    t = dget(st, d, FL_S_TRANSPORT);
    if (t == NULL || t == Py_None) {
        return t == NULL ? -1 : 0;
    }
    paused = dtrue(st, d, FL_S_PAUSED);
    if (paused != 0) {
        return paused < 0 ? -1 : 0;
    }
    rc = call_transport(st, d, FL_S_PAUSE_READING);
    if (rc < 0) {
        if (!PyErr_ExceptionMatches(PyExc_NotImplementedError)) {
            return -1;
        }
        PyErr_Clear();
        return dset(st, d, FL_S_TRANSPORT, Py_None);
    }
    return dset(st, d, FL_S_PAUSED, Py_True);
}

/* feed_data(buf[:n]) on reader; data is the caller's object for buf, or
 * NULL. */
static int
feed(fl_state *st, PyObject *reader, const char *buf, Py_ssize_t n,
     PyObject *data)
{
    PyObject *d = odict(reader), *buffer, *r;
    Py_ssize_t old;
    int eof, rc = -1;

    if (d == NULL) {
        return -1;
    }
    eof = dtrue(st, d, FL_S_EOF);
    buffer = eof < 0 ? NULL : dget(st, d, FL_S_BUFFER);
    if (buffer == NULL) {
        goto done;
    }
    if (eof || !PyByteArray_CheckExact(buffer)) {
        /* asyncio's own: the assertion, or a buffer of another type. */
        if (data == NULL) {
            data = PyBytes_FromStringAndSize(buf, n);
            if (data == NULL) {
                goto done;
            }
        }
        else {
            Py_INCREF(data);
        }
        r = call_orig(st->streams.py_feed_data, reader, &data, 1, NULL);
        Py_DECREF(data);
        Py_XDECREF(r);
        rc = r == NULL ? -1 : 0;
        goto done;
    }
    if (n == 0) {
        rc = 0;
        goto done;
    }
    old = PyByteArray_GET_SIZE(buffer);
    if (fl_bytebuf_append(&st->streams.pool, buffer, buf, n) < 0) {
        goto done;
    }
    if (wakeup(st, d) == 0) {
        rc = maybe_pause(st, d, old + n);
    }
done:
    Py_DECREF(d);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The op: the awaitable returned by read(n) and drain()               */

enum { OP_NEW, OP_WAIT, OP_RUNNING, OP_DONE };
enum { OPK_READ, OPK_EXACT, OPK_LINE, OPK_UNTIL, OPK_DRAIN };

typedef struct {
    PyObject_HEAD
    fl_state *st;
    PyObject *reader; /* the StreamWriter for drain() */
    PyObject *dict;   /* reader.__dict__ (reads only) */
    PyObject *it;     /* the waiter's __await__() iterator while waiting;
                         drain(): asyncio's drain() coroutine's */
    PyObject *sep;    /* readline(), readuntil(): a non-empty bytes */
    Py_ssize_t n;      /* read(n), readexactly(n) */
    Py_ssize_t offset; /* readline(), readuntil(): where the next search
                          for sep starts */
    int state;
    int kind;
} fl_op;

static PyObject *
op_new(fl_state *st, PyObject *reader, int kind, Py_ssize_t n, int state)
{
    fl_op *op = PyObject_GC_New(fl_op, st->streams.OpType);

    if (op == NULL) {
        return NULL;
    }
    op->st = st;
    op->reader = Py_XNewRef(reader);
    op->dict = NULL;
    op->it = NULL;
    op->sep = NULL;
    op->n = n;
    op->offset = 0;
    op->state = state;
    op->kind = kind;
    PyObject_GC_Track(op);
    if (kind != OPK_DRAIN && (op->dict = odict(reader)) == NULL) {
        Py_DECREF(op);
        return NULL;
    }
    return (PyObject *)op;
}

/* Sends arg into it: 1 yielded (*res), 0 returned (*res), -1 error. */
static int
send_to(PyObject *it, PyObject *arg, PyObject **res)
{
#if FL_PY310
    switch (PyIter_Send(it, arg, res)) {
    case PYGEN_NEXT:
        return 1;
    case PYGEN_RETURN:
        return 0;
    default:
        return -1;
    }
#else
    if (arg == Py_None) {
        *res = Py_TYPE(it)->tp_iternext(it);
    }
    else {
        *res = PyObject_CallMethod(it, "send", "O", arg);
    }
    if (*res != NULL) {
        return 1;
    }
    if (!PyErr_Occurred()) {
        *res = Py_NewRef(Py_None);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        return _PyGen_FetchStopIterationValue(res) < 0 ? -1 : 0;
    }
    return -1;
#endif
}

/* The finally of _wait_for_data(): reader._waiter = None. With failing,
 * an exception is pending and stays the one raised. */
static int
end_wait(fl_op *op, int failing)
{
    PyObject *et = NULL, *ev = NULL, *etb = NULL;
    int rc;

    Py_CLEAR(op->it);
    if (failing) {
        PyErr_Fetch(&et, &ev, &etb);
    }
    rc = dset(op->st, op->dict, FL_S_WAITER, Py_None);
    if (failing) {
        if (rc < 0) {
            PyErr_Clear();
        }
        PyErr_Restore(et, ev, etb);
    }
    return rc;
}

/* bytes(buffer[:k]); del buffer[:k] -- the k is clipped to the buffer.
 * New reference or NULL. */
static PyObject *
take(fl_state *st, PyObject *buffer, Py_ssize_t k)
{
    PyObject *data;
    Py_buffer view;

    Py_INCREF(buffer);
    if (PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(buffer);
        return NULL;
    }
    if (k > view.len) {
        k = view.len;
    }
    data = PyBytes_FromStringAndSize(view.buf, k);
    PyBuffer_Release(&view);
    if (data != NULL && k == view.len && PyByteArray_CheckExact(buffer) &&
        fl_bytebuf_clear(&st->streams.pool, buffer) == 0)
    {
        Py_DECREF(buffer);
        return data;
    }
    if (data != NULL && PySequence_DelSlice(buffer, 0, k) < 0) {
        Py_CLEAR(data);
    }
    Py_DECREF(buffer);
    return data;
}

/* The end of a successful read: take k bytes, then
 * _maybe_resume_transport(). 0 (*res) or -1. */
static int
op_take(fl_op *op, Py_ssize_t k, int resume, PyObject **res)
{
    PyObject *buffer = dget(op->st, op->dict, FL_S_BUFFER), *data;

    if (buffer == NULL) {
        return -1;
    }
    Py_INCREF(buffer);
    data = take(op->st, buffer, k);
    if (data == NULL ||
        (resume && maybe_resume(op->st, op->dict, buffer) < 0))
    {
        Py_XDECREF(data);
        Py_DECREF(buffer);
        return -1;
    }
    Py_DECREF(buffer);
    *res = data;
    return 0;
}

/* readexactly() at EOF: IncompleteReadError(bytes(buffer), n), the buffer
 * cleared. */
static int
op_incomplete(fl_op *op)
{
    PyObject *partial, *exc;

    if (op_take(op, PY_SSIZE_T_MAX, 0, &partial) < 0) {
        return -1;
    }
    exc = op->kind == OPK_UNTIL
              ? PyObject_CallFunction(op->st->streams.IncompleteReadError,
                                      "(OO)", partial, Py_None)
              : PyObject_CallFunction(op->st->streams.IncompleteReadError,
                                      "(On)", partial, op->n);
    Py_DECREF(partial);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

/* raise LimitOverrunError(msg, consumed): -1. */
static int
overrun_error(fl_state *st, const char *msg, Py_ssize_t consumed)
{
    PyObject *exc = PyObject_CallFunction(st->streams.LimitOverrunError,
                                          "(sn)", msg, consumed);

    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

/* readline() past the limit: readuntil()'s LimitOverrunError(msg,
 * consumed) handled as readline() does -- drop the line (or the whole
 * buffer), resume the transport, raise ValueError(msg) in the context of
 * the LimitOverrunError. */
static int
op_overrun(fl_op *op, const char *msg, Py_ssize_t consumed)
{
    fl_state *st = op->st;
    PyObject *buffer, *ctx, *exc;
    int nl, rc = -1;

    ctx = PyObject_CallFunction(st->streams.LimitOverrunError, "(sn)", msg,
                                consumed);
    if (ctx == NULL) {
        return -1;
    }
    buffer = dget(st, op->dict, FL_S_BUFFER);
    if (buffer != NULL) {
        Py_INCREF(buffer);
        nl = PyByteArray_CheckExact(buffer) &&
             consumed < PyByteArray_GET_SIZE(buffer) &&
             PyByteArray_AS_STRING(buffer)[consumed] == '\n';
        rc = PySequence_DelSlice(buffer, 0,
                                 nl ? consumed + 1 : PY_SSIZE_T_MAX);
        if (rc == 0) {
            rc = maybe_resume(st, op->dict, buffer);
        }
        Py_DECREF(buffer);
    }
    if (rc == 0) {
        exc = PyObject_CallFunction(PyExc_ValueError, "(s)", msg);
        if (exc != NULL) {
            PyErr_SetObject(PyExc_ValueError, exc);
            Py_DECREF(exc);
        }
    }
    /* What is raised here is raised in readline()'s `except
     * LimitOverrunError` block: its context is the LimitOverrunError,
     * whose own context is what the implicit chaining of the raise just
     * gave it (an exception being handled where the read runs). */
    {
        PyObject *et, *ev, *etb, *outer;

        PyErr_Fetch(&et, &ev, &etb);
        PyErr_NormalizeException(&et, &ev, &etb);
        if (ev != NULL) {
            outer = PyException_GetContext(ev);
            if (outer != NULL && outer != ctx) {
                PyException_SetContext(ctx, outer);
            }
            else {
                Py_XDECREF(outer);
            }
            PyException_SetContext(ev, Py_NewRef(ctx));
            if (etb != NULL) {
                PyException_SetTraceback(ev, etb);
            }
        }
        PyErr_Restore(et, ev, etb);
    }
    Py_DECREF(ctx);
    return -1;
}

/* reader._limit compared with v: limit < v. 1, 0, -1. */
static int
over(fl_op *op, Py_ssize_t v)
{
    PyObject *limit = dget(op->st, op->dict, FL_S_LIMIT), *o;
    int r;

    if (limit == NULL) {
        return -1;
    }
    if (PyLong_CheckExact(limit)) {
        Py_ssize_t l = PyLong_AsSsize_t(limit);

        if (l != -1 || !PyErr_Occurred()) {
            return v > l;
        }
        PyErr_Clear();
    }
    Py_INCREF(limit);
    o = PyLong_FromSsize_t(v);
    r = o == NULL ? -1 : PyObject_RichCompareBool(o, limit, Py_GT);
    Py_XDECREF(o);
    Py_DECREF(limit);
    return r;
}

static int op_wait(fl_op *op, PyObject **res);

/* Past the limit: readuntil() raises LimitOverrunError, readline()
 * handles it as asyncio's readline() does (op_overrun). -1. */
static int
until_overrun(fl_op *op, const char *msg, Py_ssize_t consumed)
{
    return op->kind == OPK_LINE ? op_overrun(op, msg, consumed)
                                : overrun_error(op->st, msg, consumed);
}

/* readuntil(sep) -- and readline(), readuntil(b'\n') -- on the buffer
 * (asyncio's loop body): 1 when the caller goes on to the EOF check and
 * the wait, else done (0, *res) or failed (-1). */
static int
until_scan(fl_op *op, PyObject *buffer, PyObject **res)
{
    Py_ssize_t seplen = PyBytes_GET_SIZE(op->sep), isep, len;
    Py_buffer view;
    const char *at;
    int r;

    if (PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    len = view.len;
    if (len - op->offset < seplen) {
        PyBuffer_Release(&view);
        return 1;
    }
    at = memmem((char *)view.buf + op->offset, (size_t)(len - op->offset),
                PyBytes_AS_STRING(op->sep), (size_t)seplen);
    isep = at != NULL ? at - (char *)view.buf : -1;
    PyBuffer_Release(&view);
    if (isep >= 0) {
        r = over(op, isep);
        if (r != 0) {
            return r < 0 ? -1
                         : until_overrun(op,
                                         "Separator is found, but chunk is "
                                         "longer than limit",
                                         isep);
        }
        return op_take(op, isep + seplen, 1, res);
    }
    op->offset = len + 1 - seplen;
    r = over(op, op->offset);
    if (r != 0) {
        return r < 0 ? -1
                     : until_overrun(op,
                                     "Separator is not found, and chunk "
                                     "exceed the limit",
                                     op->offset);
    }
    return 1;
}

/* The buffer's state decides: finish, fail or wait. Like op_step. */
static int
op_check(fl_op *op, PyObject **res)
{
    fl_state *st = op->st;
    PyObject *buffer = dget(st, op->dict, FL_S_BUFFER);
    Py_ssize_t len;
    int eof, r;

    if (buffer == NULL) {
        return -1;
    }
    Py_INCREF(buffer);
    len = PyObject_Length(buffer);
    if (len >= 0 && op->sep != NULL) {
        r = until_scan(op, buffer, res);
        Py_DECREF(buffer);
        if (r != 1) {
            return r;
        }
    }
    else {
        Py_DECREF(buffer);
    }
    if (len < 0) {
        return -1;
    }
    if (op->kind == OPK_READ && len > 0) {
        return op_take(op, op->n, 1, res);
    }
    if (op->kind == OPK_EXACT && len >= op->n) {
        return op_take(op, op->n, 1, res);
    }
    eof = dtrue(st, op->dict, FL_S_EOF);
    if (eof < 0) {
        return -1;
    }
    if (!eof) {
        return op_wait(op, res);
    }
    switch (op->kind) {
    case OPK_READ:
        return op_take(op, op->n, 1, res);
    case OPK_EXACT:
    case OPK_UNTIL:
        return op_incomplete(op);
    default: /* readline() returns the partial line */
        return op_take(op, PY_SSIZE_T_MAX, 0, res);
    }
}

/* Resumes a waiting op with arg. Like op_step. */
static int
op_resume(fl_op *op, PyObject *arg, PyObject **res)
{
    PyObject *r;
    int rc = send_to(op->it, arg, &r);

    if (op->kind == OPK_DRAIN) {
        if (rc == 1) {
            op->state = OP_WAIT;
        }
        else {
            Py_CLEAR(op->it);
        }
        *res = rc < 0 ? NULL : r;
        return rc;
    }
    if (rc == 1) {
        op->state = OP_WAIT;
        *res = r;
        return 1;
    }
    if (end_wait(op, rc < 0) < 0 || rc < 0) {
        if (rc == 0) {
            Py_DECREF(r);
        }
        return -1;
    }
    Py_DECREF(r);
    /* read() takes what is there after one wait; the others check again. */
    return op->kind == OPK_READ ? op_take(op, op->n, 1, res)
                                : op_check(op, res);
}

/* o.__await__(): new reference or NULL. */
static PyObject *
await_iter(PyObject *o)
{
    PyAsyncMethods *am = Py_TYPE(o)->tp_as_async;

    if (am != NULL && am->am_await != NULL) {
        return am->am_await(o);
    }
    return PyObject_CallMethod(o, "__await__", NULL);
}

static const char *const wait_names[] = {"read", "readexactly", "readuntil",
                                         "readuntil"};

/* _wait_for_data(name), up to its await. Like op_step. */
static int
op_wait(fl_op *op, PyObject **res)
{
    fl_state *st = op->st;
    PyObject *d = op->dict, *w, *loop, *fut;
    int paused;

    w = dget(st, d, FL_S_WAITER);
    if (w == NULL) {
        return -1;
    }
    if (w != Py_None) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s() called while another coroutine is already "
                     "waiting for incoming data",
                     wait_names[op->kind]);
        return -1;
    }
    paused = dtrue(st, d, FL_S_PAUSED);
    if (paused < 0) {
        return -1;
    }
    if (paused && (dset(st, d, FL_S_PAUSED, Py_False) < 0 ||
                   call_transport(st, d, FL_S_RESUME_READING) < 0))
    {
        return -1;
    }
    loop = dget(st, d, FL_S_LOOP);
    if (loop == NULL) {
        return -1;
    }
    Py_INCREF(loop);
    fut = PyObject_VectorcallMethod(S(st, FL_S_CREATE_FUTURE), &loop,
                                    1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(loop);
    if (fut == NULL) {
        return -1;
    }
    if (dset(st, d, FL_S_WAITER, fut) < 0) {
        Py_DECREF(fut);
        return -1;
    }
    op->it = await_iter(fut);
    Py_DECREF(fut);
    if (op->it == NULL) {
        end_wait(op, 1);
        return -1;
    }
    return op_resume(op, Py_None, res);
}

/* read(n), readexactly(n), readline() from the start: the stream's
 * exception first, as each of them. Like op_step. */
static int drain_start(fl_op *op, PyObject **res);

static int
op_start(fl_op *op, PyObject **res)
{
    PyObject *exc;

    if (op->kind == OPK_DRAIN) {
        return drain_start(op, res);
    }
    exc = dget(op->st, op->dict, FL_S_EXCEPTION);

    if (exc == NULL) {
        return -1;
    }
    if (exc != Py_None) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        return -1;
    }
    return op_check(op, res);
}

/* One step: 1 yielded *res (a future), 0 returned *res, -1 error. */
static int
op_step(fl_op *op, PyObject *arg, PyObject **res)
{
    int state = op->state, rc;

    *res = NULL;
    switch (state) {
    case OP_NEW:
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started "
                            "coroutine");
            return -1;
        }
        break;
    case OP_WAIT:
        break;
    case OP_RUNNING:
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return -1;
    default:
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reuse already awaited coroutine");
        return -1;
    }
    op->state = OP_RUNNING;
    rc = state == OP_NEW ? op_start(op, res) : op_resume(op, arg, res);
    if (rc != 1) {
        op->state = OP_DONE;
    }
    return rc;
}

/* Ends an op from outside (throw, close, finalization). */
static int
op_stop(fl_op *op)
{
    PyObject *it, *r;

    if (op->state == OP_RUNNING) {
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return -1;
    }
    op->state = OP_DONE;
    if (op->kind != OPK_DRAIN) {
        return op->it != NULL ? end_wait(op, 0) : 0;
    }
    /* drain(): closed as a coroutine closes the one it awaits (asyncio's
     * drain() catches nothing, so this runs its finally blocks). */
    it = op->it;
    op->it = NULL;
    if (it == NULL) {
        return 0;
    }
    r = PyObject_CallMethod(it, "close", NULL);
    Py_DECREF(it);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* A step's outcome as iternext (stop: 0) or send() (stop: 1) returns
 * it: the value yielded, or NULL with StopIteration(value) -- iternext
 * may leave a None result without an exception. */
static PyObject *
op_result(int rc, PyObject *res, int stop)
{
    if (rc != 0) {
        return rc == 1 ? res : NULL;
    }
    if (res == Py_None && stop) {
        PyErr_SetNone(PyExc_StopIteration);
    }
    else if (res != Py_None) {
        PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, res);

        if (e != NULL) {
            PyErr_SetObject(PyExc_StopIteration, e);
            Py_DECREF(e);
        }
    }
    Py_DECREF(res);
    return NULL;
}

static PyObject *
op_iternext(fl_op *op)
{
    PyObject *res;
    int rc = op_step(op, Py_None, &res);

    return op_result(rc, res, 0);
}

static PyObject *
op_send(fl_op *op, PyObject *arg)
{
    PyObject *res;
    int rc = op_step(op, arg, &res);

    return op_result(rc, res, 1);
}

#if FL_PY310
static PySendResult
op_am_send(fl_op *op, PyObject *arg, PyObject **res)
{
    int rc = op_step(op, arg, res);

    return rc == 1 ? PYGEN_NEXT : rc == 0 ? PYGEN_RETURN : PYGEN_ERROR;
}
#endif

/* throw()'s exception: *typ a class, *val an instance or NULL; -1 with
 * TypeError as a coroutine's throw() raises. */
static int
throw_args(PyObject **typ, PyObject **val)
{
    if (PyExceptionInstance_Check(*typ)) {
        if (*val != NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "instance exception may not have a separate "
                            "value");
            return -1;
        }
        *val = *typ;
        *typ = (PyObject *)Py_TYPE(*typ);
        return 0;
    }
    if (!PyExceptionClass_Check(*typ)) {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes or instances deriving "
                     "from BaseException, not %s",
                     Py_TYPE(*typ)->tp_name);
        return -1;
    }
    return 0;
}

static PyObject *
op_throw(fl_op *op, PyObject *args)
{
    PyObject *typ, *val = NULL, *tb = NULL, *et, *ev, *etb;
    int done, bad;

    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb)) {
        return NULL;
    }
    if (val == Py_None) {
        val = NULL;
    }
    if (tb == Py_None) {
        tb = NULL;
    }
    if (tb != NULL && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError,
                        "throw() third argument must be a traceback object");
        return NULL;
    }
    done = op->state == OP_DONE;
    bad = throw_args(&typ, &val) < 0;
    /* A bad exception leaves a coroutine that has not started untouched;
     * a waiting one gets the TypeError at its await and ends. */
    if (bad && op->state != OP_WAIT) {
        return NULL;
    }
    PyErr_Fetch(&et, &ev, &etb);
    if (op_stop(op) < 0) {
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(etb);
        return NULL;
    }
    PyErr_Restore(et, ev, etb);
    if (bad) {
        return NULL;
    }
    if (done) {
        /* A finished coroutine: throw() raises as send() does. */
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reuse already awaited coroutine");
        return NULL;
    }
    PyErr_SetObject(typ, val != NULL ? val : Py_None);
    if (tb != NULL) {
        PyErr_Fetch(&et, &ev, &etb);
        PyErr_NormalizeException(&et, &ev, &etb);
        if (ev != NULL) {
            PyException_SetTraceback(ev, tb);
        }
        Py_XDECREF(etb);
        PyErr_Restore(et, ev, Py_NewRef(tb));
    }
    return NULL;
}

static PyObject *
op_close(fl_op *op, PyObject *unused)
{
    if (op_stop(op) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
op_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *
op_get_name(fl_op *op, void *qual)
{
    static const char *const kinds[] = {"read", "readexactly", "readline",
                                        "readuntil"};
    int drain = op->kind == OPK_DRAIN;
    const char *cls = drain ? "StreamWriter." : "StreamReader.";
    const char *name = drain ? "drain" : kinds[op->kind];

    return qual ? PyUnicode_FromFormat("%s%s", cls, name)
                : PyUnicode_FromString(name);
}

/* A suspended read() finalized unfinished runs its finally, as a
 * coroutine does on close(). */
static void
op_finalize(fl_op *op)
{
    PyObject *et, *ev, *etb;

    if (op->state != OP_WAIT) {
        return;
    }
    PyErr_Fetch(&et, &ev, &etb);
    if (op_stop(op) < 0) {
        PyErr_WriteUnraisable((PyObject *)op);
    }
    PyErr_Restore(et, ev, etb);
}

static int
op_traverse(fl_op *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(op->reader);
    Py_VISIT(op->dict);
    Py_VISIT(op->it);
    Py_VISIT(op->sep);
    return 0;
}

static int
op_clear(fl_op *op)
{
    Py_CLEAR(op->reader);
    Py_CLEAR(op->dict);
    Py_CLEAR(op->it);
    Py_CLEAR(op->sep);
    return 0;
}

static void
op_dealloc(fl_op *op)
{
    PyTypeObject *tp = Py_TYPE(op);

    if (PyObject_CallFinalizerFromDealloc((PyObject *)op) < 0) {
        return; /* resurrected */
    }
    PyObject_GC_UnTrack(op);
    op_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef op_methods[] = {
    {"send", (PyCFunction)op_send, METH_O, "send($self, value, /)\n--\n\n"},
    {"throw", (PyCFunction)op_throw, METH_VARARGS,
     "throw($self, typ, val=None, tb=None, /)\n--\n\n"},
    {"close", (PyCFunction)op_close, METH_NOARGS, "close($self, /)\n--\n\n"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef op_getset[] = {
    {"__name__", (getter)op_get_name, NULL, NULL, NULL},
    {"__qualname__", (getter)op_get_name, NULL, NULL, (void *)1},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot op_slots[] = {
    {Py_tp_dealloc, op_dealloc},
    {Py_tp_finalize, op_finalize},
    {Py_tp_traverse, op_traverse},
    {Py_tp_clear, op_clear},
    {Py_tp_iter, op_await},
    {Py_tp_iternext, op_iternext},
    {Py_tp_methods, op_methods},
    {Py_tp_getset, op_getset},
    {Py_am_await, op_await},
#if FL_PY310
    {Py_am_send, op_am_send},
#endif
    {Py_tp_doc, "The coroutine of a native StreamReader.read(n), "
                "readexactly(n), readline(), readuntil() or "
                "StreamWriter.drain()."},
    {0, NULL},
};

static PyType_Spec op_spec = {
    .name = "fastloop._core.StreamOp",
    .basicsize = sizeof(fl_op),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
#if FL_PY310
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION
#endif
    ,
    .slots = op_slots,
};

/* ------------------------------------------------------------------ */
/* The C methods of the reader and the writer                          */

#define STATE(cls) ((fl_state *)PyType_GetModuleState(cls))

/* read(n) and readexactly(n): an op for a positive int n, asyncio's
 * function orig for anything else. */
static PyObject *
read_n(PyObject *self, PyTypeObject *cls, PyObject *const *args,
       size_t nargsf, PyObject *kwnames, int kind)
{
    fl_state *st = STATE(cls);

    if (st == NULL) {
        return NULL;
    }
    if (kwnames == NULL && PyVectorcall_NARGS(nargsf) == 1 &&
        PyLong_CheckExact(args[0]))
    {
        Py_ssize_t n = PyLong_AsSsize_t(args[0]);

        if (n > 0) {
            return op_new(st, self, kind, n, OP_NEW);
        }
        PyErr_Clear(); /* n <= 0 or a huge n: asyncio's */
    }
    return call_orig(kind == OPK_READ ? st->streams.py_read
                                      : st->streams.py_readexactly,
                     self, args, nargsf, kwnames);
}

static PyObject *
reader_read(PyObject *self, PyTypeObject *cls, PyObject *const *args,
            size_t nargsf, PyObject *kwnames)
{
    return read_n(self, cls, args, nargsf, kwnames, OPK_READ);
}

static PyObject *
reader_readexactly(PyObject *self, PyTypeObject *cls, PyObject *const *args,
                   size_t nargsf, PyObject *kwnames)
{
    return read_n(self, cls, args, nargsf, kwnames, OPK_EXACT);
}

/* A readline() or readuntil() op scanning for sep (stolen; NULL: the
 * error of making it). */
static PyObject *
until_op(fl_state *st, PyObject *reader, int kind, PyObject *sep)
{
    PyObject *op;

    if (sep == NULL) {
        return NULL;
    }
    op = op_new(st, reader, kind, 0, OP_NEW);
    if (op == NULL) {
        Py_DECREF(sep);
        return NULL;
    }
    ((fl_op *)op)->sep = sep;
    return op;
}

static PyObject *
reader_readline(PyObject *self, PyTypeObject *cls, PyObject *const *args,
                size_t nargsf, PyObject *kwnames)
{
    fl_state *st = STATE(cls);

    if (st == NULL) {
        return NULL;
    }
    if (kwnames == NULL && PyVectorcall_NARGS(nargsf) == 0) {
        return until_op(st, self, OPK_LINE,
                        PyBytes_FromStringAndSize("\n", 1));
    }
    return call_orig(st->streams.py_readline, self, args, nargsf, kwnames);
}

/* readuntil(separator=b'\n') with one non-empty bytes separator; anything
 * else (a tuple on 3.13+, another bytes-like type, b'', keywords) is
 * asyncio's. */
static PyObject *
reader_readuntil(PyObject *self, PyTypeObject *cls, PyObject *const *args,
                 size_t nargsf, PyObject *kwnames)
{
    fl_state *st = STATE(cls);
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *sep;

    if (st == NULL) {
        return NULL;
    }
    if (kwnames != NULL || nargs > 1) {
        return call_orig(st->streams.py_readuntil, self, args, nargsf,
                         kwnames);
    }
    sep = nargs == 1 ? Py_NewRef(args[0])
                     : PyBytes_FromStringAndSize("\n", 1);
    if (sep == NULL) {
        return NULL;
    }
    if (!PyBytes_CheckExact(sep) || PyBytes_GET_SIZE(sep) == 0) {
        Py_DECREF(sep);
        return call_orig(st->streams.py_readuntil, self, args, nargsf,
                         kwnames);
    }
    return until_op(st, self, OPK_UNTIL, sep);
}

/* Whether o is reader._buffer: 1, or 0 (also when that cannot be told:
 * asyncio's feed_data() then runs, and fails as it would). */
static int
is_buffer(fl_state *st, PyObject *reader, PyObject *o)
{
    PyObject *d = odict(reader);
    int r = d != NULL && PyDict_GetItemWithError(d, S(st, FL_S_BUFFER)) == o;

    Py_XDECREF(d);
    return r;
}

static PyObject *
reader_feed_data(PyObject *self, PyTypeObject *cls, PyObject *const *args,
                 size_t nargsf, PyObject *kwnames)
{
    fl_state *st = STATE(cls);
    Py_buffer view;
    int rc;

    if (st == NULL) {
        return NULL;
    }
    if (kwnames != NULL || PyVectorcall_NARGS(nargsf) != 1 ||
        (PyByteArray_Check(args[0]) && is_buffer(st, self, args[0])) ||
        PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
    {
        /* feed_data(reader._buffer) too: the view taken here would stop
         * the buffer from growing, where asyncio's extend() copies it. */
        PyErr_Clear();
        return call_orig(st->streams.py_feed_data, self, args, nargsf,
                         kwnames);
    }
    rc = feed(st, self, view.buf, view.len, args[0]);
    PyBuffer_Release(&view);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
writer_write(PyObject *self, PyTypeObject *cls, PyObject *const *args,
             size_t nargsf, PyObject *kwnames)
{
    fl_state *st = STATE(cls);
    PyObject *d, *t;
    int rc;

    if (st == NULL) {
        return NULL;
    }
    if (kwnames != NULL || PyVectorcall_NARGS(nargsf) != 1) {
        return call_orig(st->streams.py_write, self, args, nargsf, kwnames);
    }
    d = odict(self);
    if (d == NULL) {
        return NULL;
    }
    t = dget(st, d, FL_S_TRANSPORT);
    Py_XINCREF(t);
    Py_DECREF(d);
    if (t == NULL) {
        return NULL;
    }
    if (Py_TYPE(t) == st->StreamTransportType) {
        PyObject *r = fl_stream_write(t, args[0]);

        Py_XDECREF(r);
        rc = r == NULL ? -1 : 0;
    }
    else {
        rc = call_attr(st, t, FL_S_WRITE, args[0]);
    }
    Py_DECREF(t);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The reader part of drain(): reader.exception() is None. 1, 0, -1. */
static int
reader_ok(fl_state *st, PyObject *reader)
{
    PyObject *d, *v;

    if (reader == Py_None) {
        return 1;
    }
    if (Py_TYPE(reader) != st->streams.ReaderType &&
        (PyObject *)Py_TYPE(reader) != st->streams.aio_reader)
    {
        return 0;
    }
    d = odict(reader);
    if (d == NULL) {
        return -1;
    }
    v = dget(st, d, FL_S_EXCEPTION);
    Py_DECREF(d);
    return v == NULL ? -1 : v == Py_None;
}

/* transport.is_closing(): 1, 0, -1. */
static int
closing(fl_state *st, PyObject *t)
{
    PyObject *v;
    int r;

    if (Py_TYPE(t) == st->StreamTransportType) {
        return ((fl_transport_base *)t)->closing != 0;
    }
    v = PyObject_VectorcallMethod(S(st, FL_S_IS_CLOSING), &t,
                                  1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    r = v == NULL ? -1 : PyObject_IsTrue(v);
    Py_XDECREF(v);
    return r;
}

/* Whether a StreamReaderProtocol lets drain() return at once: neither
 * disconnected nor paused. 1, 0, -1. */
static int
protocol_ok(fl_state *st, PyObject *p)
{
    PyObject *d;
    int bad, i, attrs[2] = {FL_S_CONN_LOST, FL_S_PAUSED};

    if ((PyObject *)Py_TYPE(p) != st->streams.aio_protocol) {
        return 0;
    }
    d = odict(p);
    if (d == NULL) {
        return -1;
    }
    for (i = 0; i < 2; i++) {
        bad = dtrue(st, d, attrs[i]);
        if (bad != 0) {
            Py_DECREF(d);
            return bad < 0 ? -1 : 0;
        }
    }
    Py_DECREF(d);
    return 1;
}

/* Whether a fastloop stream transport that is not closing answers for
 * protocol_ok(p): p is its protocol, of asyncio's class, and the transport
 * has not paused its writing. The protocol's _paused is set and cleared
 * only by the pause_writing()/resume_writing() calls that follow the
 * transport's own flag, and _connection_lost only once it is closing. */
static int
transport_knows(fl_state *st, PyObject *t, PyObject *p)
{
    fl_transport_base *b = (fl_transport_base *)t;

    return Py_TYPE(t) == st->StreamTransportType && b->protocol == p &&
           (PyObject *)Py_TYPE(p) == st->streams.aio_protocol &&
           !b->protocol_paused && !b->closing;
}

/* Whether drain() can return at once: no reader exception, transport
 * not closing, protocol neither paused nor disconnected. 1, 0, -1. */
static int
drain_ready(fl_state *st, PyObject *self)
{
    PyObject *d = odict(self), *o[3];
    int i, ok, keys[3] = {FL_S_READER, FL_S_TRANSPORT, FL_S_PROTOCOL};

    if (d == NULL) {
        return -1;
    }
    for (i = 0; i < 3; i++) {
        o[i] = dget(st, d, keys[i]);
        if (o[i] == NULL) {
            while (--i >= 0) {
                Py_DECREF(o[i]);
            }
            Py_DECREF(d);
            return -1;
        }
        Py_INCREF(o[i]);
    }
    Py_DECREF(d);
    ok = reader_ok(st, o[0]);
    if (ok > 0) {
        ok = closing(st, o[1]);
        ok = ok < 0 ? -1 : !ok;
    }
    if (ok > 0) {
        ok = transport_knows(st, o[1], o[2]) ? 1 : protocol_ok(st, o[2]);
    }
    for (i = 0; i < 3; i++) {
        Py_DECREF(o[i]);
    }
    return ok;
}

static PyObject *
writer_drain(PyObject *self, PyTypeObject *cls, PyObject *const *args,
             size_t nargsf, PyObject *kwnames)
{
    fl_state *st = STATE(cls);

    if (st == NULL) {
        return NULL;
    }
    if (kwnames != NULL || PyVectorcall_NARGS(nargsf) != 0) {
        return call_orig(st->streams.py_drain, self, args, nargsf, kwnames);
    }
    return op_new(st, self, OPK_DRAIN, 0, OP_NEW);
}

/* drain()'s first step: done at once when nothing holds the writer back
 * (checked now, as asyncio's coroutine checks when it starts), else
 * asyncio's drain() does the waiting. Like op_step. */
static int
drain_start(fl_op *op, PyObject **res)
{
    fl_state *st = op->st;
    PyObject *coro;
    int ready = drain_ready(st, op->reader);

    if (ready != 0) {
        *res = ready > 0 ? Py_NewRef(Py_None) : NULL;
        return ready > 0 ? 0 : -1;
    }
    coro = call_orig(st->streams.py_drain, op->reader, NULL, 0, NULL);
    if (coro == NULL) {
        return -1;
    }
    op->it = await_iter(coro);
    Py_DECREF(coro);
    if (op->it == NULL) {
        return -1;
    }
    return op_resume(op, Py_None, res);
}

#define FL_METHOD(name, fn, sig)                                  \
    {name, (PyCFunction)(void (*)(void))(fn),                     \
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS, name sig "\n--\n\n"}

static PyMethodDef reader_methods[] = {
    FL_METHOD("read", reader_read, "($self, n=-1)"),
    FL_METHOD("readexactly", reader_readexactly, "($self, n)"),
    FL_METHOD("readline", reader_readline, "($self)"),
    FL_METHOD("readuntil", reader_readuntil, "($self, separator=b'\\n')"),
    FL_METHOD("feed_data", reader_feed_data, "($self, data)"),
    {NULL, NULL, 0, NULL},
};

static PyMethodDef writer_methods[] = {
    FL_METHOD("write", writer_write, "($self, data)"),
    FL_METHOD("drain", writer_drain, "($self)"),
    {NULL, NULL, 0, NULL},
};

static PyType_Slot reader_slots[] = {
    {Py_tp_methods, reader_methods},
    {Py_tp_doc, "asyncio.StreamReader with read(n), readexactly(n), "
                "readline(), readuntil(separator) and feed_data() in C "
                "(fastloop adopts the readers of asyncio's streams)."},
    {0, NULL},
};

static PyType_Slot writer_slots[] = {
    {Py_tp_methods, writer_methods},
    {Py_tp_doc, "asyncio.StreamWriter with write() and drain() in C "
                "(fastloop adopts the writers of asyncio's streams)."},
    {0, NULL},
};

/* Not subclassable: the C methods read the instance dict directly, which
 * a subclass's properties of the same names would not see. (No
 * Py_TPFLAGS_IMMUTABLETYPE either: __class__ assignment needs mutable
 * types on both sides.) */
static PyType_Spec reader_spec = {
    .name = "fastloop._core.StreamReader",
    .basicsize = 0,
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = reader_slots,
};

static PyType_Spec writer_spec = {
    .name = "fastloop._core.StreamWriter",
    .basicsize = 0,
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = writer_slots,
};

/* ------------------------------------------------------------------ */
/* Adoption and the transport's feed                                   */

static int
guards_hold(fl_state *st)
{
    PyObject *g = st->streams.guards;
    Py_ssize_t i;

    for (i = 0; i < PyTuple_GET_SIZE(g); i++) {
        PyObject *t = PyTuple_GET_ITEM(g, i);
        PyObject *v = PyObject_GetAttr(PyTuple_GET_ITEM(t, 0),
                                       PyTuple_GET_ITEM(t, 1));

        Py_XDECREF(v);
        if (v != PyTuple_GET_ITEM(t, 2)) {
            PyErr_Clear();
            return 0;
        }
    }
    return 1;
}

/* obj.__class__ = to when obj is exactly a from. */
static void
adopt_obj(fl_state *st, PyObject *obj, PyObject *from, PyTypeObject *to)
{
    if (obj != NULL && (PyObject *)Py_TYPE(obj) == from &&
        PyObject_SetAttr(obj, S(st, FL_S_CLASS), (PyObject *)to) < 0)
    {
        PyErr_Clear();
    }
}

/* Whether o is asyncio's StreamWriter over protocol. */
static int
writer_of(fl_state *st, PyObject *o, PyObject *protocol)
{
    PyObject *p;
    int r;

    if ((PyObject *)Py_TYPE(o) != st->streams.aio_writer) {
        return 0;
    }
    p = PyObject_GetAttr(o, S(st, FL_S_PROTOCOL));
    r = p == protocol;
    Py_XDECREF(p);
    return r;
}

/* `self` of the running Python frame f (the current one), new reference;
 * NULL without an error when there is none. */
static PyObject *
frame_self(fl_state *st, PyFrameObject *f)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *v = PyFrame_GetVar(f, S(st, FL_S_SELF));
#else
    PyObject *d = PyEval_GetLocals(), *v;

    (void)f; /* PyEval_GetLocals() reads the current frame, which is f */
    v = d == NULL ? NULL : PyDict_GetItemWithError(d, S(st, FL_S_SELF));
    Py_XINCREF(v);
#endif
    if (v == NULL) {
        PyErr_Clear();
    }
    return v;
}

int
fl_streams_adopt_caller(fl_state *st, PyObject *protocol)
{
    PyFrameObject *f = PyEval_GetFrame();
    PyCodeObject *code;
    PyObject *w;
    int same;

    if (f == NULL || !st->streams.enabled) {
        return 0;
    }
    code = PyFrame_GetCode(f);
    same = (PyObject *)code == st->streams.write_code ||
           (PyObject *)code == st->streams.writelines_code;
    Py_DECREF(code);
    if (!same || (w = frame_self(st, f)) == NULL) {
        return 0;
    }
    same = writer_of(st, w, protocol) && guards_hold(st);
    if (same) {
        adopt_obj(st, w, st->streams.aio_writer, st->streams.WriterType);
        same = Py_TYPE(w) == st->streams.WriterType;
    }
    Py_DECREF(w);
    return same;
}

#if FL_PY313
/* 3.13's StreamReaderProtocol hands the server-side writer to
 * client_connected_cb without keeping it. When the callback was a
 * coroutine function, the writer is among the arguments of the coroutine
 * in the protocol's _task: adopt it from there. Never fails. */
static void
adopt_task_writer(fl_state *st, PyObject *protocol)
{
    PyObject *task, *coro = NULL, *frame = NULL, *locals = NULL,
                     *values = NULL;
    Py_ssize_t i, n;

    task = PyObject_GetAttrString(protocol, "_task");
    if (task == NULL || task == Py_None) {
        goto done;
    }
    coro = PyObject_CallMethod(task, "get_coro", NULL);
    if (coro == NULL || !PyCoro_CheckExact(coro)) {
        goto done;
    }
    frame = PyObject_GetAttrString(coro, "cr_frame");
    if (frame == NULL || !PyFrame_Check(frame)) {
        goto done;
    }
    locals = PyFrame_GetLocals((PyFrameObject *)frame);
    values = locals == NULL ? NULL : PyMapping_Values(locals);
    n = values == NULL ? 0 : PyList_GET_SIZE(values);
    for (i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);

        if (writer_of(st, v, protocol)) {
            adopt_obj(st, v, st->streams.aio_writer, st->streams.WriterType);
            break;
        }
    }
done:
    Py_XDECREF(values);
    Py_XDECREF(locals);
    Py_XDECREF(frame);
    Py_XDECREF(coro);
    Py_XDECREF(task);
    PyErr_Clear();
}
#endif

int
fl_streams_adopt(fl_state *st, PyObject *protocol, PyObject *dr)
{
    fl_streams_state *s = &st->streams;
    PyObject *o;

    if (!s->enabled || (PyObject *)Py_TYPE(protocol) != s->aio_protocol ||
        dr == NULL || !PyMethod_Check(dr) ||
        PyMethod_GET_SELF(dr) != protocol ||
        PyMethod_GET_FUNCTION(dr) != s->py_data_received || !guards_hold(st))
    {
        return 0;
    }
    o = PyObject_GetAttr(protocol, S(st, FL_S_READER_WR));
    if (o != NULL) {
        PyObject *reader = deref(o);

        adopt_obj(st, reader, s->aio_reader, s->ReaderType);
        Py_XDECREF(reader);
        Py_DECREF(o);
    }
    o = PyObject_GetAttr(protocol, S(st, FL_S_WRITER));
    adopt_obj(st, o, s->aio_writer, s->WriterType);
#if FL_PY313
    if (o == NULL || o == Py_None) {
        PyErr_Clear();
        adopt_task_writer(st, protocol);
    }
#endif
    Py_XDECREF(o);
    PyErr_Clear();
    return 1;
}

/* The native reader behind an adopted protocol (new reference), or NULL
 * with *why: 1 no reader (the data is dropped), 0 not a native reader,
 * -1 error. */
static PyObject *
protocol_reader(fl_state *st, PyObject *protocol, int *why)
{
    PyObject *wr = PyObject_GetAttr(protocol, S(st, FL_S_READER_WR));
    PyObject *reader;

    *why = -1;
    if (wr == NULL) {
        return NULL;
    }
    *why = wr == Py_None ? 1 : 0;
    if (!PyWeakref_Check(wr)) {
        Py_DECREF(wr);
        return NULL;
    }
    reader = deref(wr);
    Py_DECREF(wr);
    if (reader == NULL) {
        *why = 1;
        return NULL;
    }
    if (Py_TYPE(reader) != st->streams.ReaderType) {
        Py_DECREF(reader);
        return NULL;
    }
    return reader;
}

int
fl_streams_feed(fl_state *st, PyObject *protocol, const char *buf,
                Py_ssize_t n)
{
    int why, rc;
    PyObject *reader = protocol_reader(st, protocol, &why);

    if (reader == NULL) {
        return why;
    }
    rc = feed(st, reader, buf, n, NULL);
    Py_DECREF(reader);
    return rc < 0 ? -1 : 1;
}

int
fl_streams_room(fl_state *st, PyObject *protocol, Py_ssize_t min,
                fl_streams_slot *slot)
{
    int why, eof;
    PyObject *reader = protocol_reader(st, protocol, &why), *d, *buffer;

    if (reader == NULL) {
        return why < 0 ? -1 : 0;
    }
    d = odict(reader);
    Py_DECREF(reader);
    if (d == NULL) {
        return -1;
    }
    eof = dtrue(st, d, FL_S_EOF);
    buffer = eof != 0 ? NULL : dget(st, d, FL_S_BUFFER);
    if (buffer == NULL || !PyByteArray_CheckExact(buffer)) {
        Py_DECREF(d);
        return eof < 0 || (eof == 0 && buffer == NULL) ? -1 : 0;
    }
    slot->dict = d;
    slot->buffer = Py_NewRef(buffer);
    slot->room = fl_bytebuf_room(&st->streams.pool, buffer, min, &slot->dst);
    return 1;
}

int
fl_streams_commit(fl_state *st, fl_streams_slot *slot, const char *buf,
                  Py_ssize_t n)
{
    int rc = 0;

    if (n > 0) {
        if (buf == NULL) {
            fl_bytebuf_commit(slot->buffer, n);
        }
        else {
            rc = fl_bytebuf_append(&st->streams.pool, slot->buffer, buf, n);
        }
        if (rc == 0) {
            rc = wakeup(st, slot->dict);
        }
        if (rc == 0) {
            rc = maybe_pause(st, slot->dict,
                             PyByteArray_GET_SIZE(slot->buffer));
        }
    }
    Py_CLEAR(slot->buffer);
    Py_CLEAR(slot->dict);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Module setup                                                        */

static PyTypeObject *
add_type(PyObject *mod, PyType_Spec *spec, PyObject *base, const char *name)
{
    PyObject *bases = base ? PyTuple_Pack(1, base) : NULL, *tp;

    if (base != NULL && bases == NULL) {
        return NULL;
    }
    tp = PyType_FromModuleAndSpec(mod, spec, bases);
    Py_XDECREF(bases);
    if (tp == NULL) {
        return NULL;
    }
    if (name != NULL && PyModule_AddObject(mod, name, Py_NewRef(tp)) < 0) {
        Py_DECREF(tp);
        Py_DECREF(tp);
        return NULL;
    }
    return (PyTypeObject *)tp;
}

static int
init_guards(fl_streams_state *s)
{
    PyObject *classes[3] = {s->aio_reader, s->aio_writer, s->aio_protocol};
    Py_ssize_t i, n = (Py_ssize_t)(sizeof(guarded) / sizeof(guarded[0]));

    s->guards = PyTuple_New(n);
    if (s->guards == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *cls = classes[guarded[i].cls];
        PyObject *name = PyUnicode_InternFromString(guarded[i].name);
        PyObject *fn = name ? PyObject_GetAttr(cls, name) : NULL;
        PyObject *t = fn ? PyTuple_Pack(3, cls, name, fn) : NULL;

        Py_XDECREF(name);
        Py_XDECREF(fn);
        if (t == NULL) {
            return -1;
        }
        PyTuple_SET_ITEM(s->guards, i, t);
    }
    return 0;
}

static PyObject *
import_from(PyObject *mod, const char *name)
{
    return PyObject_GetAttrString(mod, name);
}

/* cls.<name>.__code__, new reference or NULL. */
static PyObject *
code_of(PyObject *cls, const char *name)
{
    PyObject *fn = PyObject_GetAttrString(cls, name), *code;

    if (fn == NULL) {
        return NULL;
    }
    code = PyObject_GetAttrString(fn, "__code__");
    Py_DECREF(fn);
    return code;
}

int
fl_streams_init(PyObject *mod, fl_state *st)
{
    fl_streams_state *s = &st->streams;
    PyObject *streams, *exceptions;
    int i, rc;

    for (i = 0; i < FL_S_N; i++) {
        s->str[i] = PyUnicode_InternFromString(names[i]);
        if (s->str[i] == NULL) {
            return -1;
        }
    }
    streams = PyImport_ImportModule("asyncio.streams");
    if (streams == NULL) {
        return -1;
    }
    exceptions = PyImport_ImportModule("asyncio.exceptions");
    if (exceptions == NULL) {
        Py_DECREF(streams);
        return -1;
    }
    s->aio_reader = import_from(streams, "StreamReader");
    s->aio_writer = import_from(streams, "StreamWriter");
    s->aio_protocol = import_from(streams, "StreamReaderProtocol");
    Py_DECREF(streams);
    rc = s->aio_reader == NULL || s->aio_writer == NULL ||
        s->aio_protocol == NULL ||
        (s->py_read = import_from(s->aio_reader, "read")) == NULL ||
        (s->py_readexactly = import_from(s->aio_reader, "readexactly")) ==
            NULL ||
        (s->py_readline = import_from(s->aio_reader, "readline")) == NULL ||
        (s->py_readuntil = import_from(s->aio_reader, "readuntil")) == NULL ||
        (s->IncompleteReadError =
             import_from(exceptions, "IncompleteReadError")) == NULL ||
        (s->LimitOverrunError =
             import_from(exceptions, "LimitOverrunError")) == NULL ||
        (s->py_feed_data = import_from(s->aio_reader, "feed_data")) == NULL ||
        (s->py_write = import_from(s->aio_writer, "write")) == NULL ||
        (s->py_drain = import_from(s->aio_writer, "drain")) == NULL ||
        (s->write_code = code_of(s->aio_writer, "write")) == NULL ||
        (s->writelines_code = code_of(s->aio_writer, "writelines")) == NULL ||
        (s->py_data_received =
             import_from(s->aio_protocol, "data_received")) == NULL ||
        (s->fut_cancelled = import_from(st->aio_Future, "cancelled")) ==
            NULL ||
        (s->fut_set_result = import_from(st->aio_Future, "set_result")) ==
            NULL ||
        init_guards(s) < 0 ||
        (s->OpType = add_type(mod, &op_spec, NULL, "StreamOp")) == NULL ||
        (s->ReaderType = add_type(mod, &reader_spec, s->aio_reader,
                                  "StreamReader")) == NULL ||
        (s->WriterType = add_type(mod, &writer_spec, s->aio_writer,
                                  "StreamWriter")) == NULL
             ? -1
             : 0;
    Py_DECREF(exceptions);
    s->enabled = rc == 0;
    return rc;
}

int
fl_streams_traverse(fl_state *st, visitproc visit, void *arg)
{
    fl_streams_state *s = &st->streams;

    Py_VISIT(s->OpType);
    Py_VISIT(s->ReaderType);
    Py_VISIT(s->WriterType);
    Py_VISIT(s->aio_reader);
    Py_VISIT(s->aio_writer);
    Py_VISIT(s->aio_protocol);
    Py_VISIT(s->guards);
    Py_VISIT(s->py_read);
    Py_VISIT(s->py_readexactly);
    Py_VISIT(s->py_readline);
    Py_VISIT(s->py_readuntil);
    Py_VISIT(s->IncompleteReadError);
    Py_VISIT(s->LimitOverrunError);
    Py_VISIT(s->py_feed_data);
    Py_VISIT(s->py_write);
    Py_VISIT(s->py_drain);
    Py_VISIT(s->write_code);
    Py_VISIT(s->writelines_code);
    Py_VISIT(s->py_data_received);
    Py_VISIT(s->fut_cancelled);
    Py_VISIT(s->fut_set_result);
    return 0;
}

void
fl_streams_clear(fl_state *st)
{
    fl_streams_state *s = &st->streams;
    int i;

    Py_CLEAR(s->OpType);
    Py_CLEAR(s->ReaderType);
    Py_CLEAR(s->WriterType);
    Py_CLEAR(s->aio_reader);
    Py_CLEAR(s->aio_writer);
    Py_CLEAR(s->aio_protocol);
    Py_CLEAR(s->guards);
    Py_CLEAR(s->py_read);
    Py_CLEAR(s->py_readexactly);
    Py_CLEAR(s->py_readline);
    Py_CLEAR(s->py_readuntil);
    Py_CLEAR(s->IncompleteReadError);
    Py_CLEAR(s->LimitOverrunError);
    Py_CLEAR(s->py_feed_data);
    Py_CLEAR(s->py_write);
    Py_CLEAR(s->py_drain);
    Py_CLEAR(s->write_code);
    Py_CLEAR(s->writelines_code);
    Py_CLEAR(s->py_data_received);
    Py_CLEAR(s->fut_cancelled);
    Py_CLEAR(s->fut_set_result);
    for (i = 0; i < FL_S_N; i++) {
        Py_CLEAR(s->str[i]);
    }
    fl_bytebuf_pool_free(&s->pool);
}

/* _core._streams_adopt_reader(reader): moves a reader of exactly
 * asyncio's class to the C class when native streams are on and asyncio's
 * methods are its own (the subprocess streams' readers). Returns whether
 * the reader is native now. */
PyObject *
fl_streams_adopt_reader(PyObject *mod, PyObject *reader)
{
    fl_state *st = (fl_state *)PyModule_GetState(mod);
    fl_streams_state *s = &st->streams;

    if (s->enabled && (PyObject *)Py_TYPE(reader) == s->aio_reader &&
        guards_hold(st))
    {
        adopt_obj(st, reader, s->aio_reader, s->ReaderType);
    }
    return PyBool_FromLong(Py_TYPE(reader) == s->ReaderType);
}

/* _core._native_streams(enabled=None): the previous setting; sets it
 * when given. */
PyObject *
fl_streams_switch(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    fl_state *st = (fl_state *)PyModule_GetState(mod);
    int old = st->streams.enabled, v;

    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError,
                        "_native_streams() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1 && args[0] != Py_None) {
        v = PyObject_IsTrue(args[0]);
        if (v < 0) {
            return NULL;
        }
        st->streams.enabled = v;
    }
    return PyBool_FromLong(old);
}
