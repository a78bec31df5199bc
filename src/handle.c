/* Handle and TimerHandle: C subclasses of asyncio.Handle and
 * asyncio.TimerHandle. They keep asyncio's own __slots__ (so isinstance,
 * repr, ordering and equality are asyncio's) and override the hot methods
 * cancel() and _run(). The slots are reached through the offsets of their
 * member descriptors, read once at import (fl_off). */
#include "fastloop.h"

#include <math.h>
#include <structmember.h>

fl_offsets fl_off;

/* ------------------------------------------------------------------ */
/* Slot offsets                                                        */

static int
slot_offset(PyObject *cls, const char *name, Py_ssize_t *out)
{
    PyObject *d = PyObject_GetAttrString(cls, name);
    int ok;

    if (d == NULL) {
        return -1;
    }
    ok = Py_IS_TYPE(d, &PyMemberDescr_Type);
    if (ok) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        ok = m->type == T_OBJECT_EX;
        *out = m->offset;
    }
    Py_DECREF(d);
    if (!ok) {
        PyErr_Format(PyExc_ImportError,
                     "fastloop: unexpected layout of asyncio handles (%s)",
                     name);
        return -1;
    }
    return 0;
}

static int
read_offsets(PyObject *h, PyObject *th)
{
    if (slot_offset(h, "_callback", &fl_off.callback) < 0 ||
        slot_offset(h, "_args", &fl_off.args) < 0 ||
        slot_offset(h, "_cancelled", &fl_off.cancelled) < 0 ||
        slot_offset(h, "_loop", &fl_off.loop) < 0 ||
        slot_offset(h, "_source_traceback", &fl_off.source_traceback) < 0 ||
        slot_offset(h, "_repr", &fl_off.repr) < 0 ||
        slot_offset(h, "_context", &fl_off.context) < 0 ||
        slot_offset(th, "_when", &fl_off.when) < 0 ||
        slot_offset(th, "_scheduled", &fl_off.scheduled) < 0)
    {
        return -1;
    }
    fl_off.timer_extra = ((PyTypeObject *)th)->tp_basicsize;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Construction (from the loop's C methods only).                     */

static PyObject *
source_traceback(fl_state *st)
{
    PyObject *frame = (PyObject *)PyEval_GetFrame();
    return PyObject_CallOneArg(st->extract_stack, frame ? frame : Py_None);
}

static inline PyObject *
pack_args(fl_state *st, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *t;
    Py_ssize_t i;

    if (nargs == 0) {
        return Py_NewRef(st->empty_tuple);
    }
    t = PyTuple_New(nargs);

    if (t == NULL) {
        return NULL;
    }
    for (i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(t, i, Py_NewRef(args[i]));
    }
    return t;
}

/* Fills the asyncio.Handle slots of a freshly allocated handle. */
static inline int
init_common(PyObject *h, fl_state *st, fl_loop *loop, PyObject *cb,
            PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    PyObject *t = pack_args(st, args, nargs);

    if (t == NULL) {
        return -1;
    }
    if (context == NULL || context == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL) {
            Py_DECREF(t);
            return -1;
        }
    }
    else {
        Py_INCREF(context);
    }
    FL_SLOT(h, callback) = Py_NewRef(cb);
    FL_SLOT(h, args) = t;
    FL_SLOT(h, cancelled) = Py_NewRef(Py_False);
    FL_SLOT(h, loop) = Py_NewRef((PyObject *)loop);
    FL_SLOT(h, repr) = Py_NewRef(Py_None);
    FL_SLOT(h, context) = context;
    if (loop->debug) {
        PyObject *tb = source_traceback(st);
        if (tb == NULL) {
            return -1;
        }
        FL_SLOT(h, source_traceback) = tb;
    }
    else {
        FL_SLOT(h, source_traceback) = Py_NewRef(Py_None);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Allocation with a per-loop free list. A handle is allocated and freed
 * for every callback (the C Task drops the handle call_soon returns at
 * once), so recycling the memory saves a malloc/free pair and the generic
 * subtype dealloc per callback.
 *
 * The list grows with bursts: it can hold as many handles as were alive
 * at once (a burst of N call_soon() keeps N handles alive until they run),
 * so the next burst reuses that memory instead of allocating (and, on a
 * fresh heap, page-faulting) it again. Memory that stays unused is given
 * back with a delay, as allocators' "decay" does: the loop notes the
 * lowest length of each list during a window of FL_FREE_DECAY seconds;
 * handles below that mark (beyond FL_FREE_KEEP) were not needed in the
 * whole window. When the loop is about to sleep after the window, it frees
 * them, FL_FREE_STEP at a time without sleeping in between (so giving back
 * 200,000 handles delays no event by more than one step, ~0.3 ms). Bursts
 * that recur within the window keep their memory; a one-off burst's is
 * given back 1-2 s after it, while the loop is idle. */

#define FL_FREE_KEEP 256
#define FL_FREE_STEP 4096
#define FL_FREE_DECAY 1.0

/* A parked handle's cleared _callback slot links it to the next one:
 * parking costs no array to grow (a fresh multi-megabyte array would
 * page-fault on this VM's costly faults). */
#define FREE_NEXT(h) (*(PyObject **)((char *)(h) + fl_off.callback))

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <stddef.h>

/* Sanitizer builds poison a parked handle (all but its type pointer and
 * link), so that a use after "free" stays visible to ASan. */
static void
park_poison(PyObject *h, int on)
{
    char *p = (char *)h;
    size_t size = (size_t)Py_TYPE(h)->tp_basicsize;
    size_t type_end = offsetof(PyObject, ob_type) + sizeof(PyTypeObject *);
    size_t link = (size_t)fl_off.callback, link_end = link + sizeof(h);

    if (!on) {
        ASAN_UNPOISON_MEMORY_REGION(p, size);
        return;
    }
    ASAN_POISON_MEMORY_REGION(p, offsetof(PyObject, ob_type));
    if (link > type_end) {
        ASAN_POISON_MEMORY_REGION(p + type_end, link - type_end);
    }
    if (size > link_end) {
        ASAN_POISON_MEMORY_REGION(p + link_end, size - link_end);
    }
}
#else
#define park_poison(h, on) ((void)0)
#endif

static inline PyObject *
alloc_handle(fl_loop *loop, PyTypeObject *tp, int kind)
{
    PyObject *h = loop->freelist[kind];

    if (h == NULL) {
        loop->free_low[kind] = 0;
        return tp->tp_alloc(tp, 0);
    }
    loop->freelist[kind] = FREE_NEXT(h);
    if (--loop->nfree[kind] < loop->free_low[kind]) {
        loop->free_low[kind] = loop->nfree[kind];
    }
    park_poison(h, 0);
    FREE_NEXT(h) = NULL;
    /* Its slots were cleared when it was freed; PyObject_Init sets the
     * type (taking a reference to it) and a reference count of one. */
    (void)PyObject_Init(h, tp);
    PyObject_GC_Track(h);
    return h;
}

static void
park_handle(fl_loop *loop, PyObject *h, int kind)
{
    FREE_NEXT(h) = loop->freelist[kind];
    loop->freelist[kind] = h;
    loop->nfree[kind]++;
    park_poison(h, 1);
}

/* Frees parked handles of `kind` down to `keep`, at most *budget. */
static void
freelist_release(fl_loop *loop, int kind, Py_ssize_t keep,
                 Py_ssize_t *budget)
{
    while (loop->nfree[kind] > keep && (*budget)-- > 0) {
        PyObject *h = loop->freelist[kind];
        loop->freelist[kind] = FREE_NEXT(h);
        loop->nfree[kind]--;
        park_poison(h, 0);
        PyObject_GC_Del(h);
    }
}

/* Starts a new window: the lists' lengths now are the marks to beat. */
static void
decay_window(fl_loop *loop, double now)
{
    loop->free_window = now;
    loop->free_low[0] = loop->nfree[0];
    loop->free_low[1] = loop->nfree[1];
    loop->free_target[0] = loop->free_target[1] = -1;
}

void
fl_handle_freelist_init(fl_loop *loop)
{
    decay_window(loop, fl_time());
}

int64_t
fl_handle_freelist_idle(fl_loop *loop, double now, int64_t timeout)
{
    Py_ssize_t budget = FL_FREE_STEP;
    double wait;
    int k, more = 0;

    if (loop->nfree[0] <= FL_FREE_KEEP && loop->nfree[1] <= FL_FREE_KEEP) {
        decay_window(loop, now);
        return timeout;
    }
    wait = loop->free_window + FL_FREE_DECAY - now;
    if (wait > 0) {
        /* Wake up for the window's end even if nothing else would. */
        return fl_cap_timeout(timeout, wait);
    }
    for (k = 0; k < 2; k++) {
        if (loop->free_target[k] < 0) {
            /* What stayed unused the whole window goes. */
            Py_ssize_t unused = loop->free_low[k] - FL_FREE_KEEP;
            loop->free_target[k] =
                loop->nfree[k] - (unused > 0 ? unused : 0);
        }
        freelist_release(loop, k, loop->free_target[k], &budget);
        more |= loop->nfree[k] > loop->free_target[k];
    }
    if (more) {
        return 0; /* the next iteration frees the next step */
    }
    decay_window(loop, now);
    return fl_cap_timeout(timeout, FL_FREE_DECAY);
}

void
fl_handle_freelist_clear(fl_loop *loop)
{
    Py_ssize_t budget = PY_SSIZE_T_MAX;

    freelist_release(loop, 0, 0, &budget);
    freelist_release(loop, 1, 0, &budget);
}

static int clear_common(PyObject *self, int timer);

static void
dealloc_common(PyObject *self, int kind)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject **wr = (PyObject **)((char *)self + tp->tp_weaklistoffset);
    PyObject *loopobj;

    PyObject_GC_UnTrack(self);
    if (tp->tp_weaklistoffset && *wr != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    /* Keep the loop alive until the memory is parked or freed. */
    loopobj = FL_SLOT(self, loop);
    FL_SLOT(self, loop) = NULL;
    clear_common(self, kind);
    /* tp is exactly our handle type (not subclassable). The module state
     * is not consulted: at interpreter shutdown a handle can outlive it. */
    if (loopobj != NULL && fl_is_loop(loopobj) &&
        !((fl_loop *)loopobj)->closed)
    {
        if (tp->tp_weaklistoffset) {
            *wr = NULL;
        }
        park_handle((fl_loop *)loopobj, self, kind);
    }
    else {
        tp->tp_free(self);
    }
    Py_DECREF(tp);
    Py_XDECREF(loopobj);
}

static void
handle_dealloc(PyObject *self)
{
    dealloc_common(self, 0);
}

static void
timer_dealloc(PyObject *self)
{
    dealloc_common(self, 1);
}

PyObject *
fl_handle_new(fl_state *st, fl_loop *loop, PyObject *cb,
              PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    PyTypeObject *tp = st->HandleType;
    PyObject *h = alloc_handle(loop, tp, 0);

    if (h == NULL) {
        return NULL;
    }
    if (init_common(h, st, loop, cb, args, nargs, context) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

PyObject *
fl_timer_new(fl_state *st, fl_loop *loop, double when, PyObject *when_obj,
             PyObject *cb, PyObject *const *args, Py_ssize_t nargs,
             PyObject *context)
{
    PyTypeObject *tp = st->TimerHandleType;
    PyObject *h = alloc_handle(loop, tp, 1);
    fl_timer_extra *x;

    if (h == NULL) {
        return NULL;
    }
    x = fl_timer_x(h);
    x->when = when;
    x->seq = loop->timer_seq++;
    x->index = -1;
    if (init_common(h, st, loop, cb, args, nargs, context) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    if (when_obj != NULL) {
        FL_SLOT(h, when) = Py_NewRef(when_obj);
    }
    else if ((FL_SLOT(h, when) = PyFloat_FromDouble(when)) == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    FL_SLOT(h, scheduled) = Py_NewRef(Py_False);
    return h;
}

/* ------------------------------------------------------------------ */
/* Running                                                             */

/* Reports a non-fatal exception raised by a callback through the loop's
 * Python-level _fl_callback_error (which calls call_exception_handler).
 * Returns -1 only if that itself raised SystemExit/KeyboardInterrupt. */
static int
report_error(fl_loop *loop, PyObject *h)
{
    PyObject *exc, *tb, *val, *res;
    fl_handling handling;

    PyErr_Fetch(&exc, &val, &tb);
    PyErr_NormalizeException(&exc, &val, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(val, tb);
    }
    /* in Handle._run's "except BaseException" */
    fl_handling_begin(&handling, val);
    res = PyObject_CallMethodObjArgs((PyObject *)loop,
                                     loop->state->str_callback_error, h,
                                     val, NULL);
    fl_handling_end(&handling);
    Py_XDECREF(exc);
    Py_XDECREF(val);
    Py_XDECREF(tb);
    if (res != NULL) {
        Py_DECREF(res);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
    {
        return -1;
    }
    PyErr_WriteUnraisable((PyObject *)loop);
    return 0;
}

/* Calls callback(*args) inside context. Returns the result or NULL. */
static PyObject *
call_in_context(PyObject *cb, PyObject *args, PyObject *ctx)
{
    PyObject *res, *et, *ev, *etb;

    if (PyContext_Enter(ctx) < 0) {
        return NULL;
    }
    res = PyObject_Vectorcall(cb, &PyTuple_GET_ITEM(args, 0),
                              PyTuple_GET_SIZE(args), NULL);
    if (res != NULL) {
        if (PyContext_Exit(ctx) < 0) {
            Py_DECREF(res);
            return NULL;
        }
        return res;
    }
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

static void
log_slow(fl_loop *loop, PyObject *h, double dt)
{
    PyObject *d = PyFloat_FromDouble(dt), *res = NULL;

    if (d != NULL) {
        res = PyObject_CallMethodObjArgs((PyObject *)loop,
                                         loop->state->str_slow_callback, h,
                                         d, NULL);
        Py_DECREF(d);
    }
    if (res == NULL) {
        PyErr_WriteUnraisable((PyObject *)loop);
    }
    Py_XDECREF(res);
}

int
fl_handle_run(fl_loop *loop, PyObject *h)
{
    PyObject *cb = FL_SLOT(h, callback), *args = FL_SLOT(h, args);
    PyObject *ctx = FL_SLOT(h, context), *res, *outer = NULL;
    double t0 = 0;
    int rc = 0, debug = loop->debug; /* set_debug() may run inside */

    if (cb == NULL || cb == Py_None || args == NULL || !PyTuple_Check(args) ||
        ctx == NULL || !PyContext_CheckExact(ctx))
    {
        /* Only a hand-built handle can look like this. */
        PyErr_SetString(PyExc_RuntimeError, "handle is not runnable");
        return report_error(loop, h);
    }
    /* cancel() clears the slots: hold our own references during the call. */
    Py_INCREF(cb);
    Py_INCREF(args);
    Py_INCREF(ctx);
    if (debug) {
        /* A handle's _run() called from a callback: the callback's
         * handle is current again afterwards. */
        outer = loop->current_handle;
        loop->current_handle = Py_NewRef(h);
        t0 = fl_time();
    }
    res = call_in_context(cb, args, ctx);
    if (res != NULL) {
        Py_DECREF(res);
    }
    else if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
             PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
    {
        rc = -1;
    }
    else {
        rc = report_error(loop, h);
    }
    if (debug) {
        double dt = fl_time() - t0;
        Py_XSETREF(loop->current_handle, outer);
        if (rc == 0 && dt >= loop->slow_callback_duration) {
            log_slow(loop, h, dt);
        }
    }
    Py_DECREF(cb);
    Py_DECREF(args);
    Py_DECREF(ctx);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Python-visible methods                                              */

static int
loop_debug(PyObject *loopobj)
{
    PyObject *r;
    int v;

    if (loopobj == NULL || loopobj == Py_None) {
        return 0;
    }
    r = PyObject_CallMethod(loopobj, "get_debug", NULL);
    if (r == NULL) {
        return -1;
    }
    v = PyObject_IsTrue(r);
    Py_DECREF(r);
    return v;
}

/* asyncio.Handle.cancel(), shared by both types. */
static int
cancel_common(PyObject *self)
{
    int dbg;

    if (FL_SLOT(self, cancelled) == Py_True) {
        return 0;
    }
    fl_slot_set(self, fl_off.cancelled, Py_NewRef(Py_True));
    dbg = loop_debug(FL_SLOT(self, loop));
    if (dbg < 0) {
        return -1;
    }
    if (dbg) {
        /* Keep a representation for "Executing <Handle...> took" logs. */
        PyObject *r = PyObject_Repr(self);
        if (r == NULL) {
            return -1;
        }
        fl_slot_set(self, fl_off.repr, r);
    }
    fl_slot_set(self, fl_off.callback, Py_NewRef(Py_None));
    fl_slot_set(self, fl_off.args, Py_NewRef(Py_None));
    return 0;
}

static PyObject *
handle_cancel(PyObject *self, PyObject *unused)
{
    if (cancel_common(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Removes a scheduled timer from its loop's heap (no-op otherwise). */
void
fl_timer_remove(fl_loop *loop, PyObject *th)
{
    fl_timer_extra *x = fl_timer_x(th);

    if (x->index >= 0 && x->index < loop->timers.len &&
        loop->timers.items[x->index] == th)
    {
        PyObject *ref = fl_heap_remove(&loop->timers, x->index);
        fl_slot_set(th, fl_off.scheduled, Py_NewRef(Py_False));
        loop->n_timers_cancelled++;
        Py_DECREF(ref);
    }
}

static PyObject *
timer_cancel(PyObject *self, PyObject *unused)
{
    PyObject *loop = FL_SLOT(self, loop);

    if (FL_SLOT(self, cancelled) != Py_True && loop != NULL &&
        fl_is_loop(loop))
    {
        /* Hold the handle: the heap may own the last reference. */
        Py_INCREF(self);
        fl_timer_remove((fl_loop *)loop, self);
        if (cancel_common(self) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        Py_DECREF(self);
        Py_RETURN_NONE;
    }
    return handle_cancel(self, NULL);
}

static PyObject *
handle_run(PyObject *self, PyObject *unused)
{
    PyObject *loop = FL_SLOT(self, loop);

    if (loop == NULL || !fl_is_loop(loop) ||
        FL_SLOT(self, cancelled) == NULL)
    {
        PyErr_SetString(PyExc_RuntimeError, "handle is not initialised");
        return NULL;
    }
    if (fl_handle_run((fl_loop *)loop, self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* GC support. asyncio's handles are Python classes whose slots are
 * traversed by type_new's subtype_traverse; a C subclass must visit them
 * itself (calling the base's traverse would recurse into ours). */
static int
traverse_common(PyObject *self, visitproc visit, void *arg, int timer)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(FL_SLOT(self, callback));
    Py_VISIT(FL_SLOT(self, args));
    Py_VISIT(FL_SLOT(self, cancelled));
    Py_VISIT(FL_SLOT(self, loop));
    Py_VISIT(FL_SLOT(self, source_traceback));
    Py_VISIT(FL_SLOT(self, repr));
    Py_VISIT(FL_SLOT(self, context));
    if (timer) {
        Py_VISIT(FL_SLOT(self, when));
        Py_VISIT(FL_SLOT(self, scheduled));
    }
    return 0;
}

static int
clear_common(PyObject *self, int timer)
{
    /* Unrolled: this runs once per callback (from dealloc). */
    Py_CLEAR(FL_SLOT(self, callback));
    Py_CLEAR(FL_SLOT(self, args));
    Py_CLEAR(FL_SLOT(self, cancelled));
    Py_CLEAR(FL_SLOT(self, loop));
    Py_CLEAR(FL_SLOT(self, source_traceback));
    Py_CLEAR(FL_SLOT(self, repr));
    Py_CLEAR(FL_SLOT(self, context));
    if (timer) {
        Py_CLEAR(FL_SLOT(self, when));
        Py_CLEAR(FL_SLOT(self, scheduled));
    }
    return 0;
}

static int
handle_traverse(PyObject *self, visitproc visit, void *arg)
{
    return traverse_common(self, visit, arg, 0);
}

static int
handle_clear(PyObject *self)
{
    return clear_common(self, 0);
}

static int
timer_traverse(PyObject *self, visitproc visit, void *arg)
{
    return traverse_common(self, visit, arg, 1);
}

static int
timer_clear(PyObject *self)
{
    return clear_common(self, 1);
}

static PyMethodDef handle_methods[] = {
    {"cancel", handle_cancel, METH_NOARGS, "cancel($self, /)\n--\n\n"},
    {"_run", handle_run, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef timer_methods[] = {
    {"cancel", timer_cancel, METH_NOARGS, "cancel($self, /)\n--\n\n"},
    {"_run", handle_run, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot handle_slots[] = {
    {Py_tp_methods, handle_methods},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_doc, "A callback scheduled by a fastloop Loop."},
    {0, NULL},
};

static PyType_Slot timer_slots[] = {
    {Py_tp_methods, timer_methods},
    {Py_tp_dealloc, timer_dealloc},
    {Py_tp_traverse, timer_traverse},
    {Py_tp_clear, timer_clear},
    {Py_tp_doc, "A timed callback scheduled by a fastloop Loop."},
    {0, NULL},
};

static PyType_Spec handle_spec = {
    .name = "fastloop._core.Handle",
    .basicsize = 0, /* asyncio.Handle's */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = handle_slots,
};

static PyType_Spec timer_spec_tmpl = {
    .name = "fastloop._core.TimerHandle",
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = timer_slots,
};

int
fl_handle_init_types(PyObject *mod, fl_state *st)
{
    PyType_Spec timer_spec = timer_spec_tmpl;
    PyTypeObject *th = (PyTypeObject *)st->aio_TimerHandle;
    PyObject *bases;

    if (!PyType_Check(st->aio_Handle) || !PyType_Check(st->aio_TimerHandle)) {
        PyErr_SetString(PyExc_ImportError, "asyncio handles are not types");
        return -1;
    }
    if (read_offsets(st->aio_Handle, st->aio_TimerHandle) < 0) {
        return -1;
    }
    timer_spec.basicsize = (int)(th->tp_basicsize + sizeof(fl_timer_extra));
    /* 3.9 wants the bases as a tuple. */
    bases = PyTuple_Pack(1, st->aio_Handle);
    if (bases == NULL) {
        return -1;
    }
    st->HandleType =
        (PyTypeObject *)PyType_FromModuleAndSpec(mod, &handle_spec, bases);
    Py_DECREF(bases);
    if (st->HandleType == NULL) {
        return -1;
    }
    bases = PyTuple_Pack(1, st->aio_TimerHandle);
    if (bases == NULL) {
        return -1;
    }
    st->TimerHandleType =
        (PyTypeObject *)PyType_FromModuleAndSpec(mod, &timer_spec, bases);
    Py_DECREF(bases);
    if (st->TimerHandleType == NULL) {
        return -1;
    }
    if (PyModule_AddObject(mod, "Handle",
                           Py_NewRef((PyObject *)st->HandleType)) < 0)
    {
        Py_DECREF(st->HandleType);
        return -1;
    }
    if (PyModule_AddObject(mod, "TimerHandle",
                           Py_NewRef((PyObject *)st->TimerHandleType)) < 0)
    {
        Py_DECREF(st->TimerHandleType);
        return -1;
    }
    return 0;
}
