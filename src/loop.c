/* The Loop type: scheduling, the run loop (asyncio's _run_once), tasks. */
#include "fastloop.h"

#include <errno.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include <structmember.h>

/* asyncio's MAXIMUM_SELECT_TIMEOUT: never block longer than a day. */
#define MAX_TIMEOUT_NS (24LL * 3600 * 1000000000LL)
/* Busy-loop I/O polling bounds, see poll_io(). */
#define POLL_INTERVAL 0.0005

double
fl_time(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void loop_dealloc(PyObject *self);

/* Is time() replaced by the loop's class (a subclass's time(), a patched
 * class attribute)? Looked up again whenever the type's version tag (which
 * CPython changes when the class or a base is modified) is not the one
 * seen last; an instance attribute is noticed as it is set
 * (loop_setattro). */
static inline int
type_tag_valid(PyTypeObject *t)
{
#if PY_VERSION_HEX >= 0x030C0000
    return t->tp_version_tag != 0;
#else
    return PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG);
#endif
}

static void
check_time_type(fl_loop *self)
{
    PyTypeObject *t = Py_TYPE(self);

    self->time_type = _PyType_Lookup(t, self->state->str_time) !=
                      self->state->loop_time;
    /* The lookup assigns a tag if the type had none. */
    self->time_tag = type_tag_valid(t) ? t->tp_version_tag : 0;
}

/* The loop's clock for timers, as asyncio's call_later and _run_once read
 * self.time(): *t (the monotonic clock, already read) unless time() is
 * replaced -- mock.patch.object(loop, "time") to move time in a test, a
 * subclass with a virtual clock -- in which case its result. */
static int
clock_now(fl_loop *self, double *t)
{
    PyObject *r;
    double v;
    PyTypeObject *tp = Py_TYPE(self);

    if (self->time_tag == 0 || tp->tp_version_tag != self->time_tag ||
        !type_tag_valid(tp))
    {
        check_time_type(self);
    }
    if (!self->time_attr && !self->time_type) {
        return 0;
    }
    r = PyObject_CallMethodNoArgs((PyObject *)self, self->state->str_time);
    if (r == NULL) {
        return -1;
    }
    v = PyFloat_AsDouble(r);
    Py_DECREF(r);
    if (v == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    *t = v;
    return 0;
}

static int
loop_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    int rc = PyObject_GenericSetAttr(self, name, value);

    if (rc == 0 && PyUnicode_Check(name) &&
        PyUnicode_CompareWithASCIIString(name, "time") == 0)
    {
        ((fl_loop *)self)->time_attr = value != NULL;
    }
    return rc;
}

/* True for instances of any fastloop Loop type (from any module instance)
 * and of their subclasses. */
int
fl_is_loop(PyObject *o)
{
    PyTypeObject *t;

    for (t = Py_TYPE(o); t != NULL; t = t->tp_base) {
        if (t->tp_dealloc == loop_dealloc) {
            return 1;
        }
    }
    return 0;
}

int
fl_loop_check_closed(fl_loop *loop)
{
    if (loop->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    return 0;
}

/* May Task(coro)/Future() be left to find this loop as the running one?
 * Only if it is the loop running in this thread (the loop sets asyncio's
 * running loop around run_forever), and only on 3.12+: before, the C
 * _asyncio's running-loop lookup makes a getpid() system call each time,
 * dearer than the keyword dict it would save. */
static inline int
fl_loop_is_current(fl_loop *loop)
{
#if PY_VERSION_HEX >= 0x030C0000
    return loop->running && loop->thread_id == PyThread_get_thread_ident();
#else
    (void)loop;
    return 0;
#endif
}

/* {"loop": self}, kept for calling Task(coro, loop=self) and
 * Future(loop=self) through tp_call: the C types have no vectorcall, so a
 * keyword-name call would build (and free) a dict every time. Their
 * initialisers only read it. Borrowed reference, or NULL (exception). */
static PyObject *
loop_kwargs(fl_loop *self)
{
    if (self->kw_self == NULL) {
        PyObject *d = PyDict_New();
        if (d == NULL) {
            return NULL;
        }
        if (PyDict_SetItem(d, self->state->str_loop, (PyObject *)self) < 0) {
            Py_DECREF(d);
            return NULL;
        }
        self->kw_self = d;
    }
    return self->kw_self;
}

static int
check_thread(fl_loop *loop)
{
    if (loop->running && loop->thread_id != PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Non-thread-safe operation invoked on an event loop "
                        "other than the current one");
        return -1;
    }
    return 0;
}

/* asyncio's _check_callback (debug mode): no coroutines. */
static int
check_callback_debug(fl_loop *loop, PyObject *cb, const char *method)
{
    PyObject *r;
    int bad;

    r = PyObject_CallOneArg(loop->state->iscoroutine, cb);
    if (r == NULL) {
        return -1;
    }
    bad = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (bad == 0) {
        r = PyObject_CallOneArg(loop->state->iscoroutinefunction, cb);
        if (r == NULL) {
            return -1;
        }
        bad = PyObject_IsTrue(r);
        Py_DECREF(r);
    }
    if (bad < 0) {
        return -1;
    }
    if (bad) {
        PyErr_Format(PyExc_TypeError, "coroutines cannot be used with %s()",
                     method);
        return -1;
    }
    return 0;
}

static int
check_callable(PyObject *cb, const char *method)
{
    if (!PyCallable_Check(cb)) {
        PyErr_Format(PyExc_TypeError,
                     "a callable object was expected by %s(), got %R", method,
                     cb);
        return -1;
    }
    return 0;
}

/* Is the keyword name `name` "context"? The C _asyncio module passes a
 * "context" string of its own (not interned): the last such object is
 * remembered, so that the usual call costs a pointer comparison. */
static inline int
is_context_name(fl_state *st, PyObject *name)
{
    if (name == st->str_context || name == st->str_context_alias) {
        return 1;
    }
    if (PyUnicode_Compare(name, st->str_context) != 0) {
        return 0;
    }
    Py_INCREF(name);
    Py_XSETREF(st->str_context_alias, name);
    return 1;
}

/* The `context=` argument: None means "copy the current one". */
static int
check_context(fl_bound *b, const char *method)
{
    if (b->ctx == Py_None) {
        b->ctx = NULL;
    }
    if (b->ctx != NULL && !PyContext_CheckExact(b->ctx)) {
        PyErr_Format(PyExc_TypeError,
                     "%s(): context must be a contextvars.Context, not %.200s",
                     method, Py_TYPE(b->ctx)->tp_name);
        return -1;
    }
    return 0;
}

/* Binds asyncio's positional-or-keyword parameters (`callback`, `delay`,
 * `when`, `fd`), the extra positional arguments and, where allowed, the
 * `context=` keyword. Keyword names are matched by value: the C _asyncio
 * module passes a non-interned 'context'. Borrowed references. */
int
fl_bind(fl_state *st, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames, const char *const *names, int n, int allow_ctx,
        fl_bound *b, const char *method)
{
    Py_ssize_t i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int j;

    b->ctx = NULL;
    if (nargs >= n &&
        (nkw == 0 || (nkw == 1 && allow_ctx &&
                      is_context_name(st, PyTuple_GET_ITEM(kwnames, 0)))))
    {
        /* The usual calls: all named parameters given by position, and at
         * most `context=` by keyword (the C Task and Future pass it). */
        for (j = 0; j < n; j++) {
            b->p[j] = args[j];
        }
        b->rest = args + n;
        b->nrest = nargs - n;
        if (nkw) {
            b->ctx = args[nargs];
            return check_context(b, method);
        }
        return 0;
    }
    for (j = 0; j < n; j++) {
        b->p[j] = j < nargs ? args[j] : NULL;
    }
    b->rest = args + (nargs > n ? n : nargs);
    b->nrest = nargs > n ? nargs - n : 0;
    for (i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (allow_ctx && is_context_name(st, name)) {
            b->ctx = args[nargs + i];
            continue;
        }
        for (j = 0; j < n; j++) {
            if (PyUnicode_CompareWithASCIIString(name, names[j]) == 0) {
                break;
            }
        }
        if (PyErr_Occurred()) {
            return -1;
        }
        if (j == n) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%S'",
                         method, name);
            return -1;
        }
        if (b->p[j] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'", method,
                         names[j]);
            return -1;
        }
        b->p[j] = args[nargs + i];
    }
    for (j = 0; j < n; j++) {
        if (b->p[j] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s'", method,
                         names[j]);
            return -1;
        }
    }
    return check_context(b, method);
}

static const char *const names_cb[] = {"callback"};
static const char *const names_delay[] = {"delay", "callback"};
static const char *const names_when[] = {"when", "callback"};

/* Common front half of call_soon and call_soon_threadsafe. */
static PyObject *
make_soon(fl_loop *self, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames, const char *method, int threadsafe)
{
    fl_bound b;
    PyObject *h, *cb;

    if (kwnames == NULL && nargs >= 1) {
        /* call_soon(callback, *args): nothing to bind by name. */
        b.p[0] = args[0];
        b.rest = args + 1;
        b.nrest = nargs - 1;
        b.ctx = NULL;
    }
    else if (fl_bind(self->state, args, nargs, kwnames, names_cb, 1, 1, &b,
                     method) < 0)
    {
        return NULL;
    }
    if (self->closed) {
        (void)fl_loop_check_closed(self);
        return NULL;
    }
    cb = b.p[0];
    if (self->debug) {
        if ((!threadsafe && check_thread(self) < 0) ||
            check_callback_debug(self, cb, method) < 0)
        {
            return NULL;
        }
    }
    if (check_callable(cb, method) < 0) {
        return NULL;
    }
    h = fl_handle_new(self->state, self, cb, b.rest, b.nrest, b.ctx);
    if (h == NULL) {
        return NULL;
    }
    if (fl_ready_push(&self->ready, h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

static PyObject *
loop_call_soon(fl_loop *self, PyObject *const *args, size_t nargsf,
               PyObject *kwnames)
{
    return make_soon(self, args, PyVectorcall_NARGS(nargsf), kwnames,
                     "call_soon", 0);
}

static PyObject *
loop_call_soon_threadsafe(fl_loop *self, PyObject *const *args, size_t nargsf,
                          PyObject *kwnames)
{
    PyObject *h = make_soon(self, args, PyVectorcall_NARGS(nargsf), kwnames,
                            "call_soon_threadsafe", 1);

    if (h != NULL) {
        fl_wakeup_signal(self);
    }
    return h;
}

/* Schedules a timer at `when` (loop time). `when_obj` is stored as the
 * handle's _when (call_at keeps the caller's object), or NULL. */
static PyObject *
make_timer(fl_loop *self, double when, PyObject *when_obj, fl_bound *b,
           const char *method)
{
    PyObject *th, *cb = b->p[1];

    if (fl_loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug && (check_thread(self) < 0 ||
                        check_callback_debug(self, cb, method) < 0))
    {
        return NULL;
    }
    if (check_callable(cb, method) < 0) {
        return NULL;
    }
    th = fl_timer_new(self->state, self, when, when_obj, cb, b->rest,
                      b->nrest, b->ctx);
    if (th == NULL) {
        return NULL;
    }
    if (fl_heap_push(&self->timers, th) < 0) {
        Py_DECREF(th);
        return NULL;
    }
    fl_slot_set(th, fl_off.scheduled, Py_NewRef(Py_True));
    self->stats.timers_scheduled++;
    return th;
}

static int
to_seconds(PyObject *o, double *out, const char *what)
{
    double v = PyFloat_AsDouble(o);

    if (v == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (isnan(v)) {
        PyErr_Format(PyExc_ValueError, "%s must not be NaN", what);
        return -1;
    }
    *out = v;
    return 0;
}

static PyObject *
loop_call_later(fl_loop *self, PyObject *const *args, size_t nargsf,
                PyObject *kwnames)
{
    fl_bound b;
    double delay, now;

    if (fl_bind(self->state, args, PyVectorcall_NARGS(nargsf), kwnames,
                names_delay, 2, 1, &b, "call_later") < 0)
    {
        return NULL;
    }
    if (b.p[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "delay must not be None");
        return NULL;
    }
    if (to_seconds(b.p[0], &delay, "delay") < 0) {
        return NULL;
    }
    now = fl_time();
    if (clock_now(self, &now) < 0) {
        return NULL;
    }
    return make_timer(self, now + delay, NULL, &b, "call_later");
}

static PyObject *
loop_call_at(fl_loop *self, PyObject *const *args, size_t nargsf,
             PyObject *kwnames)
{
    fl_bound b;
    double when;

    if (fl_bind(self->state, args, PyVectorcall_NARGS(nargsf), kwnames,
                names_when, 2, 1, &b, "call_at") < 0)
    {
        return NULL;
    }
    if (b.p[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "when cannot be None");
        return NULL;
    }
    if (to_seconds(b.p[0], &when, "when") < 0) {
        return NULL;
    }
    return make_timer(self, when, b.p[0], &b, "call_at");
}

static PyObject *
loop_timer_handle_cancelled(fl_loop *self, PyObject *th)
{
    if (PyObject_TypeCheck(th, self->state->TimerHandleType) &&
        FL_SLOT(th, loop) == (PyObject *)self)
    {
        Py_INCREF(th);
        fl_timer_remove(self, th);
        Py_DECREF(th);
    }
    Py_RETURN_NONE;
}

int
fl_loop_call_soon_handle(fl_loop *loop, PyObject *handle)
{
    return fl_ready_push(&loop->ready, handle);
}

/* ------------------------------------------------------------------ */
/* The run loop                                                        */

/* asyncio's _run_once timeout: 0 when there is work, the earliest timer's
 * distance, or forever (-1). `now` is the monotonic clock; the distance is
 * measured with clock_now, as asyncio's with self.time(). */
static int
poll_timeout(fl_loop *self, double now, int64_t *timeout)
{
    PyObject *first;
    double dt;

    *timeout = 0;
    if (self->ready.len || self->stopping) {
        return 0;
    }
    first = fl_heap_peek(&self->timers);
    if (first == NULL) {
        *timeout = -1;
        return 0;
    }
    if (clock_now(self, &now) < 0) {
        return -1;
    }
    dt = fl_timer_x(first)->when - now;
    if (!(dt > 0)) {
        return 0;
    }
    if (dt * 1e9 >= (double)MAX_TIMEOUT_NS) {
        *timeout = MAX_TIMEOUT_NS;
    }
    else {
        /* Round up: waking a nanosecond early would spin once more. */
        *timeout = (int64_t)ceil(dt * 1e9);
    }
    return 0;
}

/* Polls (or skips the poll). `now` is the loop time at the start of the
 * iteration; *after is set to the time after the poll (`now` if skipped). */
static int
poll_io(fl_loop *self, int64_t timeout, double now, double *after)
{
    int n;

    *after = now;
    self->nevents = self->io_next = 0;
    if (timeout != 0) {
        /* About to sleep: unused free-list memory goes back (handle.c). */
        timeout = fl_handle_freelist_idle(self, now, timeout);
        timeout = fl_bytebuf_idle(&self->state->streams.pool, now, timeout);
    }
    if (timeout == 0 && self->nwatched == 0) {
        /* Nothing to poll but the wake-up fd, whose only job is to end a
         * blocking wait: skip the syscall. */
        return 0;
    }
    if (timeout == 0 && self->ready.len) {
        /* Callbacks are waiting: a non-blocking poll costs a syscall per
         * iteration, which dominates short callback chains (sleep(0),
         * future ping-pong). Poll at least every FL_POLL_EVERY iterations or
         * POLL_INTERVAL seconds, so I/O is never held back for long. */
        if (self->polls_skipped < FL_POLL_EVERY &&
            now - self->last_poll < POLL_INTERVAL)
        {
            self->polls_skipped++;
            return 0;
        }
    }
    self->polls_skipped = 0;
    if (fl_io_flush(self) < 0) {
        return -1;
    }
    /* Release the GIL even for a non-blocking poll: a thread waiting for
     * it (an executor job finishing, call_soon_threadsafe) gets it here
     * instead of after the interpreter's switch interval. */
    Py_BEGIN_ALLOW_THREADS
    n = fl_poller_wait(self->pfd, self->events, self->events_cap, timeout);
    if (n > 0) {
        fl_wakeup_read(self, n);
    }
    Py_END_ALLOW_THREADS
    self->last_poll = *after = fl_time();
    if (n == -EINTR) {
        /* A signal: run Python-level handlers now (^C raises here). */
        return PyErr_CheckSignals() < 0 ? -1 : 0;
    }
    if (n < 0) {
        errno = -n;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->nevents = n;
    self->stats.io_events += (uint64_t)n;
    return fl_io_queue(self);
}

/* Timer lag: how late (seconds) a due timer was collected. */
static inline void
note_lag(fl_stats *s, double lag)
{
    if (!(lag >= 0)) {
        lag = 0; /* due within the clock resolution (or a NaN clock) */
    }
    s->lag_last = lag;
    s->lag_sum += lag;
    s->lag_n++;
    if (lag > s->lag_max) {
        s->lag_max = lag;
    }
}

/* Moves the timers due at `now` to the ready queue. */
static int
collect_timers(fl_loop *self, double now)
{
    double end = now + self->clock_resolution;
    PyObject *th;

    /* !(when >= end), as asyncio's "if handle._when >= end_time: break":
     * a NaN loop time (a replaced time()) or deadline fires the timer
     * instead of never firing it while the loop spins. */
    while ((th = fl_heap_peek(&self->timers)) != NULL &&
           !(fl_timer_x(th)->when >= end))
    {
        note_lag(&self->stats, now - fl_timer_x(th)->when);
        th = fl_heap_pop(&self->timers);
        fl_slot_set(th, fl_off.scheduled, Py_NewRef(Py_False));
        self->n_timers_fired++;
        if (fl_ready_push(&self->ready, th) < 0) {
            Py_DECREF(th);
            return -1;
        }
        Py_DECREF(th);
    }
    return 0;
}

/* Runs a handle, timing it (stats: time_callbacks or a probe). */
static int
run_timed(fl_loop *self, PyObject *h)
{
    double t0 = fl_time(), t1;
    int rc = fl_handle_run(self, h);

    t1 = fl_time();
    if (rc == 0 && t1 - t0 >= self->stats.slow_threshold) {
        fl_stats_record(self, h, t1 - t0, t1);
    }
    return rc;
}

/* Runs up to n handles from the front of the ready queue. The phase's
 * first handle is kept (stats.first_handle) until a second one runs or the
 * phase ends: a slow phase of one handle is that handle's doing. If one
 * raises, *left is set to how many of the n are still queued. */
static int
run_ready(fl_loop *self, Py_ssize_t n, Py_ssize_t *left)
{
    fl_stats *s = &self->stats;
    Py_ssize_t i;

    for (i = 0; i < n; i++) {
        PyObject *h = fl_ready_pop(&self->ready);
        int rc;
        if (h == NULL) {
            break; /* close() from a callback emptied the queue */
        }
        if (fl_handle_cancelled(h)) {
            Py_DECREF(h);
            continue;
        }
        self->n_callbacks++;
        if (++s->phase_handles == 2) {
            Py_CLEAR(s->first_handle);
        }
        if (s->timing) {
            rc = run_timed(self, h);
        }
        else {
            rc = fl_handle_run(self, h);
            if (s->probing && ++s->chunk_n == FL_STATS_PROBE_CHUNK) {
                fl_stats_probe_chunk(self, fl_time());
            }
        }
        if (s->phase_handles == 1 && s->depth == 1 && s->first_handle == NULL)
        {
            s->first_handle = h;
        }
        else {
            Py_DECREF(h);
        }
        if (rc < 0) {
            *left = n - i - 1;
            return -1;
        }
    }
    return 0;
}

/* Closes the callback phase that started at `start` (stats). */
static inline void
end_phase(fl_loop *self, double start, double now)
{
    fl_stats *s = &self->stats;
    double block = now - start;

    s->cb_time += block;
    s->block_last = block;
    if (block > s->block_max) {
        s->block_max = block;
    }
    if (block >= s->slow_threshold) {
        fl_stats_slow_phase(self, block, now);
    }
    if (s->probing && !s->timing) {
        fl_stats_probe_chunk(self, now); /* the phase's last chunk */
    }
    if (s->probing && now >= s->probe_until) {
        s->probing = 0;
        s->timing = s->time_callbacks;
    }
    s->phase_start = 0;
    s->phase_handles = 0;
    Py_CLEAR(s->first_handle);
}

/* The callback phase of an iteration, as asyncio's BaseEventLoop._run_once
 * runs exactly the callbacks that are ready after its poll: first those
 * queued before the poll (nold of them), then the C watchers' callbacks
 * (transports, fl_io_run), then the rest (user watchers' handles, due
 * timers). With set_io_first(True) the C watchers' callbacks come first
 * (libuv's order, as uvloop), except in the first iteration of a run: what
 * was queued while the loop was not running runs before the I/O that
 * arrived meanwhile, as on uvloop too.
 *
 * A callback that raises (KeyboardInterrupt, SystemExit) ends the phase;
 * the handles not run stay queued as in asyncio, and C watchers' events
 * not dispatched yet stay pending with io_pending_at = the handles queued
 * ahead of them, so that the next iteration finishes this one in order. */
static inline int
run_phase(fl_loop *self, Py_ssize_t nold)
{
    Py_ssize_t ntodo = self->ready.len, left = 0;

    if (nold > ntodo) {
        nold = ntodo;
    }
    self->io_pending_at = 0;
    if (self->io_first_now) {
        if (fl_io_run(self) < 0) {
            return -1;
        }
        return run_ready(self, ntodo, &left);
    }
    self->io_first_now = self->io_first;
    if (run_ready(self, nold, &left) < 0) {
        self->io_pending_at = left;
        return -1;
    }
    if (fl_io_run(self) < 0) {
        return -1;
    }
    return run_ready(self, ntodo - nold, &left);
}

/* `*now` is the loop time at the start of the iteration (the previous
 * iteration's end); on return it is the time at its end. */
static int
run_once(fl_loop *self, double *now)
{
    fl_stats *s = &self->stats;
    Py_ssize_t nold = self->ready.len;
    double t0 = *now, t1 = *now;
    int rc, outer = ++s->depth == 1;

    self->n_iterations++;
    if (self->io_next < self->nevents) {
        /* The last iteration was interrupted before all of its I/O
         * callbacks ran (run_phase): finish it, without a poll. */
        nold = self->io_pending_at;
        t1 = t0;
        rc = 0;
    }
    else {
        int64_t timeout;
        double at; /* the timers' clock (clock_now) */
        rc = poll_timeout(self, t0, &timeout);
        if (rc == 0) {
            rc = poll_io(self, timeout, t0, &t1);
        }
        at = t1;
        if (rc == 0 && (rc = clock_now(self, &at)) == 0) {
            rc = collect_timers(self, at);
        }
        if (rc < 0) {
            self->nevents = 0; /* the next poll reports them again */
        }
    }
    if (outer) {
        s->poll_time += t1 - t0;
        s->phase_start = s->chunk_start = t1;
        s->chunk_n = 0;
    }
    if (rc == 0) {
        rc = run_phase(self, nold);
    }
    *now = fl_time();
    if (outer && rc == 0) {
        end_phase(self, t1, *now);
    }
    else if (outer) {
        /* SystemExit and the like: account the phase, keep the error. */
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        end_phase(self, t1, *now);
        PyErr_Restore(et, ev, etb);
    }
    s->depth--;
    return rc;
}

static int
enter_running(fl_loop *self)
{
    if (fl_loop_check_closed(self) < 0) {
        return -1;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "This event loop is already running");
        return -1;
    }
    self->running = 1;
    self->thread_id = PyThread_get_thread_ident();
    return 0;
}

/* _fl_set_running(flag): _run_forever_setup/_cleanup (3.13's API for
 * custom run loops) mark the loop running in this thread, as asyncio's
 * setting of _thread_id does; _run() then runs inside that state. */
static PyObject *
loop_set_running(fl_loop *self, PyObject *flag)
{
    int v = PyObject_IsTrue(flag);

    if (v < 0) {
        return NULL;
    }
    if (v) {
        if (enter_running(self) < 0) {
            return NULL;
        }
        self->run_held = 1;
    }
    else if (self->run_held) {
        self->run_held = 0;
        self->running = 0;
        self->thread_id = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_run(fl_loop *self, PyObject *unused)
{
    double now;
    int rc = 0, held = self->run_held && self->running && !self->in_run &&
                       self->thread_id == PyThread_get_thread_ident();

    if (!held && enter_running(self) < 0) {
        return NULL;
    }
    self->in_run = 1;
    Py_INCREF(self);
    /* The first iteration of a run always polls I/O: "run the loop once"
     * (run_until_complete of a done future, stop() before run_forever)
     * must see what is already pending, as with asyncio. */
    self->polls_skipped = FL_POLL_EVERY;
    self->io_first_now = 0;
    now = fl_time();
    for (;;) {
        rc = run_once(self, &now);
        if (rc < 0 || self->stopping || self->closed) {
            break;
        }
    }
    self->stopping = 0;
    self->in_run = 0;
    if (!held) {
        self->running = 0;
        self->thread_id = 0;
    }
    Py_DECREF(self);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _fl_touch(): the Python sock_* methods sent or connected; see
 * fl_loop_touch(). */
static PyObject *
loop_touch(fl_loop *self, PyObject *unused)
{
    fl_loop_touch(self);
    Py_RETURN_NONE;
}

static PyObject *
loop_run_once(fl_loop *self, PyObject *unused)
{
    int rc, was_running = self->running;
    double now = fl_time();

    if (!was_running && enter_running(self) < 0) {
        return NULL;
    }
    Py_INCREF(self);
    rc = run_once(self, &now);
    if (!was_running) {
        self->running = 0;
        self->thread_id = 0;
    }
    Py_DECREF(self);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_stop(fl_loop *self, PyObject *unused)
{
    self->stopping = 1;
    Py_RETURN_NONE;
}

static PyObject *
loop_is_running(fl_loop *self, PyObject *unused)
{
    return PyBool_FromLong(self->running);
}

static PyObject *
loop_is_closed(fl_loop *self, PyObject *unused)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *
loop_time(fl_loop *self, PyObject *unused)
{
    return PyFloat_FromDouble(fl_time());
}

static PyObject *
loop_get_debug(fl_loop *self, PyObject *unused)
{
    return PyBool_FromLong(self->debug);
}

/* Stores the truth of `flag` in *field (set_debug, set_io_first). */
static int
store_truth(char *field, PyObject *flag)
{
    int v = PyObject_IsTrue(flag);

    if (v < 0) {
        return -1;
    }
    *field = (char)v;
    return 0;
}

static PyObject *
loop_set_debug(fl_loop *self, PyObject *flag)
{
    if (store_truth(&self->debug, flag) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_get_io_first(fl_loop *self, PyObject *unused)
{
    return PyBool_FromLong(self->io_first);
}

static PyObject *
loop_set_io_first(fl_loop *self, PyObject *flag)
{
    if (store_truth(&self->io_first, flag) < 0) {
        return NULL;
    }
    if (!self->io_first) {
        self->io_first_now = 0;
    }
    Py_RETURN_NONE;
}

/* Releases what the loop holds; safe to call repeatedly. */
static void
close_core(fl_loop *self)
{
    self->closed = 1;
    self->nevents = self->io_next = 0;
    /* {"loop": self} is a reference cycle: without it a closed loop goes
     * as soon as its last reference does, not at the next GC pass. */
    Py_CLEAR(self->kw_self);
    fl_ready_clear(&self->ready);
    fl_heap_clear(&self->timers);
    fl_handle_freelist_clear(self);
    /* The reader-buffer pool is the interpreter's: a loop that closes
     * frees it, so a process done with its loops keeps none of it. */
    fl_bytebuf_pool_free(&self->state->streams.pool);
    fl_io_close(self); /* closes the epoll fd first */
    if (self->wakefd >= 0) {
        close(self->wakefd);
        self->wakefd = -1;
    }
}

static PyObject *
loop_close_core(fl_loop *self, PyObject *unused)
{
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot close a running event loop");
        return NULL;
    }
    close_core(self);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Futures and tasks                                                   */

static PyObject *
loop_create_future(fl_loop *self, PyObject *unused)
{
    PyObject *kw;

    if (fl_loop_is_current(self)) {
        /* Future() finds this loop as the running one (see create_task). */
        return PyObject_Vectorcall(self->state->aio_Future, NULL, 0, NULL);
    }
    kw = loop_kwargs(self);
    return kw ? PyObject_Call(self->state->aio_Future, self->state->empty_tuple,
                              kw)
              : NULL;
}

/* create_task through the task factory, as base_events.create_task. */
static PyObject *
create_task_factory(fl_loop *self, PyObject *coro, PyObject *name,
                    PyObject *ctx, PyObject *kwargs)
{
    PyObject *task, *args;

    args = PyTuple_Pack(2, (PyObject *)self, coro);
    if (args == NULL) {
        return NULL;
    }
    if (ctx != NULL && ctx != Py_None) {
        if (kwargs == NULL) {
            kwargs = PyDict_New();
            if (kwargs == NULL) {
                Py_DECREF(args);
                return NULL;
            }
        }
        else {
            Py_INCREF(kwargs);
        }
        if (PyDict_SetItem(kwargs, self->state->str_context, ctx) < 0) {
            Py_DECREF(kwargs);
            Py_DECREF(args);
            return NULL;
        }
        task = PyObject_Call(self->task_factory, args, kwargs);
        Py_DECREF(kwargs);
    }
    else {
        task = PyObject_Call(self->task_factory, args, kwargs);
    }
    Py_DECREF(args);
    if (task != NULL && name != NULL && name != Py_None) {
        PyObject *r = PyObject_CallMethod(task, "set_name", "O", name);
        if (r == NULL) {
            /* asyncio only calls set_name when the task has it. */
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                Py_DECREF(task);
                return NULL;
            }
            PyErr_Clear();
        }
        Py_XDECREF(r);
    }
    return task;
}

/* create_task with keywords or a task factory. */
static PyObject *
create_task_slow(fl_loop *self, PyObject *coro, PyObject *kwargs)
{
    PyObject *name = NULL, *ctx = NULL, *rest = NULL, *task, *args;

    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        rest = PyDict_Copy(kwargs);
        if (rest == NULL) {
            return NULL;
        }
        name = PyDict_GetItemWithError(rest, self->state->str_name);
        ctx = PyDict_GetItemWithError(rest, self->state->str_context);
        Py_XINCREF(name);
        Py_XINCREF(ctx);
        if (PyErr_Occurred()) {
            goto done;
        }
    }
    if (self->task_factory == NULL) {
        PyObject *kw;
        if (rest == NULL) {
            kw = PyDict_New();
        }
        else {
            kw = Py_NewRef(rest);
            /* Task() on 3.9/3.10 has no context= : pass it only if set. */
            if (ctx == Py_None &&
                PyDict_DelItem(kw, self->state->str_context) < 0)
            {
                Py_DECREF(kw);
                goto done;
            }
        }
        if (kw == NULL || PyDict_SetItem(kw, self->state->str_loop,
                                         (PyObject *)self) < 0)
        {
            Py_XDECREF(kw);
            goto done;
        }
        args = PyTuple_Pack(1, coro);
        if (args == NULL) {
            Py_DECREF(kw);
            goto done;
        }
        task = PyObject_Call(self->state->aio_Task, args, kw);
        Py_DECREF(args);
        Py_DECREF(kw);
        Py_XDECREF(rest);
        Py_XDECREF(name);
        Py_XDECREF(ctx);
        return task;
    }
    if (rest != NULL) {
        if ((name && PyDict_DelItem(rest, self->state->str_name) < 0) ||
            (ctx && PyDict_DelItem(rest, self->state->str_context) < 0))
        {
            goto done;
        }
        if (PyDict_GET_SIZE(rest) == 0) {
            Py_CLEAR(rest);
        }
    }
    task = create_task_factory(self, coro, name, ctx, rest);
    Py_XDECREF(rest);
    Py_XDECREF(name);
    Py_XDECREF(ctx);
    return task;
done:
    Py_XDECREF(rest);
    Py_XDECREF(name);
    Py_XDECREF(ctx);
    return NULL;
}

static PyObject *
loop_create_task(fl_loop *self, PyObject *const *args, size_t nargsf,
                 PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), i, nkw;
    PyObject *kwargs, *task;

    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError,
                     "create_task() takes exactly one positional argument "
                     "(%zd given)", nargs);
        return NULL;
    }
    if (fl_loop_check_closed(self) < 0) {
        return NULL;
    }
    nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (self->task_factory == NULL && nkw == 0) {
        /* The common case, Task(coro, loop=self). From a callback of this
         * loop (3.12+), Task(coro) finds the same loop as the running one
         * (asyncio's C Future asks for it only when `loop` is None). */
        PyObject *kw, *t;
        if (fl_loop_is_current(self)) {
            return PyObject_Vectorcall(self->state->aio_Task, args, 1, NULL);
        }
        kw = loop_kwargs(self);
        t = kw ? PyTuple_Pack(1, args[0]) : NULL;
        if (t == NULL) {
            return NULL;
        }
        task = PyObject_Call(self->state->aio_Task, t, kw);
        Py_DECREF(t);
        return task;
    }
    kwargs = PyDict_New();
    if (kwargs == NULL) {
        return NULL;
    }
    for (i = 0; i < nkw; i++) {
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i),
                           args[nargs + i]) < 0)
        {
            Py_DECREF(kwargs);
            return NULL;
        }
    }
    task = create_task_slow(self, args[0], kwargs);
    Py_DECREF(kwargs);
    return task;
}

static PyObject *
loop_set_task_factory(fl_loop *self, PyObject *factory)
{
    if (factory != Py_None && !PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError,
                        "task factory must be a callable or None");
        return NULL;
    }
    Py_XSETREF(self->task_factory,
               factory == Py_None ? NULL : Py_NewRef(factory));
    Py_RETURN_NONE;
}

static PyObject *
loop_get_task_factory(fl_loop *self, PyObject *unused)
{
    return Py_NewRef(self->task_factory ? self->task_factory : Py_None);
}

/* ------------------------------------------------------------------ */
/* Introspection                                                       */

static PyObject *
loop_stats(fl_loop *self, PyObject *unused)
{
    return Py_BuildValue(
        "{s:n,s:n,s:n,s:K,s:K,s:K,s:K,s:s}", "ready", self->ready.len,
        "timers", self->timers.len, "fds_watched", self->nwatched,
        "iterations", (unsigned long long)self->n_iterations, "callbacks",
        (unsigned long long)self->n_callbacks, "timers_fired",
        (unsigned long long)self->n_timers_fired, "timers_cancelled",
        (unsigned long long)self->n_timers_cancelled, "poller",
        fl_poller_name());
}

static PyObject *
get_slow(fl_loop *self, void *c)
{
    return PyFloat_FromDouble(self->slow_callback_duration);
}

static int
set_slow(fl_loop *self, PyObject *v, void *c)
{
    double d;

    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    self->slow_callback_duration = d;
    return 0;
}

static PyObject *
get_thread_id(fl_loop *self, void *c)
{
    if (!self->running) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong(self->thread_id);
}

static PyObject *
get_current_handle(fl_loop *self, void *c)
{
    return Py_NewRef(self->current_handle ? self->current_handle : Py_None);
}

static PyObject *
get_flag(fl_loop *self, void *c)
{
    return PyBool_FromLong(*((char *)self + (Py_ssize_t)c));
}

static int
set_flag(fl_loop *self, PyObject *v, void *c)
{
    int b;

    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    if ((b = PyObject_IsTrue(v)) < 0) {
        return -1;
    }
    *((char *)self + (Py_ssize_t)c) = (char)b;
    return 0;
}

static PyObject *
get_clock_resolution(fl_loop *self, void *c)
{
    return PyFloat_FromDouble(self->clock_resolution);
}

/* Snapshots for code that peeks at asyncio's private queues (monitoring
 * tools read len(loop._ready) and loop._scheduled). Read-only copies. */
static PyObject *
get_ready(fl_loop *self, void *c)
{
    PyObject *l = PyList_New(self->ready.len);
    Py_ssize_t i;

    if (l == NULL) {
        return NULL;
    }
    for (i = 0; i < self->ready.len; i++) {
        PyObject *h = self->ready.items[(self->ready.head + i) &
                                        (self->ready.cap - 1)];
        PyList_SET_ITEM(l, i, Py_NewRef(h));
    }
    return l;
}

static PyObject *
get_scheduled(fl_loop *self, void *c)
{
    PyObject *l = PyList_New(self->timers.len);
    Py_ssize_t i;

    if (l == NULL) {
        return NULL;
    }
    for (i = 0; i < self->timers.len; i++) {
        PyList_SET_ITEM(l, i, Py_NewRef(self->timers.items[i]));
    }
    return l;
}

static PyGetSetDef loop_getset[] = {
    {"_ready", (getter)get_ready, NULL, NULL, NULL},
    {"_scheduled", (getter)get_scheduled, NULL, NULL, NULL},
    {"slow_callback_duration", (getter)get_slow, (setter)set_slow, NULL,
     NULL},
    {"_thread_id", (getter)get_thread_id, NULL, NULL, NULL},
    {"_current_handle", (getter)get_current_handle, NULL, NULL, NULL},
    {"_stopping", (getter)get_flag, (setter)set_flag, NULL,
     (void *)offsetof(fl_loop, stopping)},
    {"_closed", (getter)get_flag, NULL, NULL,
     (void *)offsetof(fl_loop, closed)},
    {"_debug", (getter)get_flag, (setter)set_flag, NULL,
     (void *)offsetof(fl_loop, debug)},
    {"_clock_resolution", (getter)get_clock_resolution, NULL, NULL, NULL},
    {NULL},
};

#define FC (METH_FASTCALL | METH_KEYWORDS)

static PyMethodDef loop_methods[] = {
    {"time", (PyCFunction)loop_time, METH_NOARGS,
     "time($self, /)\n--\n\nReturn the loop's monotonic time."},
    {"call_soon", (PyCFunction)(void (*)(void))loop_call_soon, FC,
     "call_soon($self, callback, *args, context=None)\n--\n\n"},
    {"call_soon_threadsafe",
     (PyCFunction)(void (*)(void))loop_call_soon_threadsafe, FC,
     "call_soon_threadsafe($self, callback, *args, context=None)\n--\n\n"},
    {"call_later", (PyCFunction)(void (*)(void))loop_call_later, FC,
     "call_later($self, delay, callback, *args, context=None)\n--\n\n"},
    {"call_at", (PyCFunction)(void (*)(void))loop_call_at, FC,
     "call_at($self, when, callback, *args, context=None)\n--\n\n"},
    {"_timer_handle_cancelled", (PyCFunction)loop_timer_handle_cancelled,
     METH_O, NULL},
    {"stop", (PyCFunction)loop_stop, METH_NOARGS, "stop($self, /)\n--\n\n"},
    {"is_running", (PyCFunction)loop_is_running, METH_NOARGS,
     "is_running($self, /)\n--\n\n"},
    {"is_closed", (PyCFunction)loop_is_closed, METH_NOARGS,
     "is_closed($self, /)\n--\n\n"},
    {"get_debug", (PyCFunction)loop_get_debug, METH_NOARGS,
     "get_debug($self, /)\n--\n\n"},
    {"set_debug", (PyCFunction)loop_set_debug, METH_O,
     "set_debug($self, enabled, /)\n--\n\n"},
    {"get_io_first", (PyCFunction)loop_get_io_first, METH_NOARGS,
     "get_io_first($self, /)\n--\n\n"
     "True if I/O callbacks run before the callbacks queued earlier."},
    {"set_io_first", (PyCFunction)loop_set_io_first, METH_O,
     "set_io_first($self, enabled, /)\n--\n\n"
     "Run the I/O callbacks of fastloop's stream, datagram and pipe\n"
     "transports and servers before the callbacks queued in earlier\n"
     "iterations (uvloop's order) instead of after them (asyncio's).\n"
     "A run's first iteration keeps asyncio's order."},
    {"create_future", (PyCFunction)loop_create_future, METH_NOARGS,
     "create_future($self, /)\n--\n\n"},
    {"create_task", (PyCFunction)(void (*)(void))loop_create_task, FC,
     "create_task($self, coro, /, *, name=None, context=None, **kwargs)\n"
     "--\n\n"},
    {"set_task_factory", (PyCFunction)loop_set_task_factory, METH_O,
     "set_task_factory($self, factory, /)\n--\n\n"},
    {"get_task_factory", (PyCFunction)loop_get_task_factory, METH_NOARGS,
     "get_task_factory($self, /)\n--\n\n"},
    {"add_reader", (PyCFunction)(void (*)(void))fl_loop_add_reader, FC,
     "add_reader($self, fd, callback, *args)\n--\n\n"},
    {"add_writer", (PyCFunction)(void (*)(void))fl_loop_add_writer, FC,
     "add_writer($self, fd, callback, *args)\n--\n\n"},
    {"remove_reader", (PyCFunction)(void (*)(void))fl_loop_remove_reader, FC,
     "remove_reader($self, fd)\n--\n\n"},
    {"remove_writer", (PyCFunction)(void (*)(void))fl_loop_remove_writer, FC,
     "remove_writer($self, fd)\n--\n\n"},
    {"_run", (PyCFunction)loop_run, METH_NOARGS, NULL},
    {"_fl_set_running", (PyCFunction)loop_set_running, METH_O, NULL},
    {"_run_once", (PyCFunction)loop_run_once, METH_NOARGS, NULL},
    {"_fl_touch", (PyCFunction)loop_touch, METH_NOARGS, NULL},
    {"_close_core", (PyCFunction)loop_close_core, METH_NOARGS, NULL},
    {"_stats", (PyCFunction)loop_stats, METH_NOARGS, NULL},
    {"stats", (PyCFunction)fl_loop_stats, METH_NOARGS,
     "stats($self, /)\n--\n\nLive statistics of the loop as a dict "
     "(docs/statistics.md)."},
    {"reset_stats", (PyCFunction)fl_loop_reset_stats, METH_NOARGS,
     "reset_stats($self, /)\n--\n\nZero the counters, timings and the "
     "slowest-callbacks list."},
    {"configure_stats", (PyCFunction)(void (*)(void))fl_loop_configure_stats,
     METH_VARARGS | METH_KEYWORDS,
     "configure_stats($self, /, *, slow_threshold=None, time_callbacks=None)"
     "\n--\n\nSet the statistics options; returns them as a dict."},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ */
/* Type                                                                */

static PyObject *
loop_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    fl_state *st = NULL;
    PyObject *mod = NULL;
    fl_loop *self;
    PyTypeObject *t;

    /* Find the module through the C base type (subclasses have none). */
    for (t = type; t != NULL && t->tp_dealloc != loop_dealloc;
         t = t->tp_base)
    {
    }
    if (t != NULL) {
        mod = PyType_GetModule(t);
        st = mod == NULL ? NULL : PyModule_GetState(mod);
    }
    if (st == NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "not a fastloop Loop type");
        return NULL;
    }
    /* Subclasses may take their own __init__ arguments. */
    if (type == st->LoopType &&
        (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))))
    {
        PyErr_SetString(PyExc_TypeError, "Loop() takes no arguments");
        return NULL;
    }
    self = (fl_loop *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->state = st;
    self->module = Py_NewRef(mod);
    self->pfd = -1;
    self->wakefd = -1;
    self->slow_callback_duration = 0.1;
    {
        struct timespec res;
        self->clock_resolution =
            clock_getres(CLOCK_MONOTONIC, &res) == 0
                ? (double)res.tv_sec + (double)res.tv_nsec * 1e-9
                : 1e-9;
    }
    check_time_type(self);
    fl_stats_init(self);
    fl_handle_freelist_init(self);
    if (fl_io_init(self) < 0 || fl_wakeup_init(self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
loop_traverse(fl_loop *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->module);
    Py_VISIT(self->current_handle);
    Py_VISIT(self->task_factory);
    Py_VISIT(self->kw_self);
    if (fl_stats_traverse(self, visit, arg) ||
        fl_ready_traverse(&self->ready, visit, arg) ||
        fl_heap_traverse(&self->timers, visit, arg) ||
        fl_io_traverse(self, visit, arg))
    {
        return -1;
    }
    return 0;
}

static int
loop_clear(fl_loop *self)
{
    Py_CLEAR(self->current_handle);
    Py_CLEAR(self->task_factory);
    Py_CLEAR(self->kw_self);
    fl_stats_clear(self);
    fl_ready_clear(&self->ready);
    fl_heap_clear(&self->timers);
    fl_io_close(self);
    return 0;
}

static void
loop_dealloc(PyObject *op)
{
    fl_loop *self = (fl_loop *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject *mod;

    PyObject_GC_UnTrack(op);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs(op);
    }
    loop_clear(self);
    close_core(self);
    fl_ready_free(&self->ready);
    fl_heap_free(&self->timers);
    PyMem_Free(self->fds);
    PyMem_Free(self->dirty);
    PyMem_Free(self->events);
    free(self->rbuf); /* page-aligned: see NOTES-perf.md */
    Py_CLEAR(self->rdata);
    mod = self->module; /* kept to the end: close_core used its state */
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_XDECREF(mod);
}

static PyMemberDef loop_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(fl_loop, weakreflist),
     READONLY},
    {NULL},
};

static PyType_Slot loop_slots[] = {
    {Py_tp_new, loop_new},
    {Py_tp_dealloc, loop_dealloc},
    {Py_tp_setattro, loop_setattro},
    {Py_tp_traverse, loop_traverse},
    {Py_tp_clear, loop_clear},
    {Py_tp_methods, loop_methods},
    {Py_tp_getset, loop_getset},
    {Py_tp_members, loop_members},
    {Py_tp_doc, "The C core of fastloop's event loop."},
    {0, NULL},
};

PyType_Spec fl_loop_spec = {
    .name = "fastloop._core.Loop",
    .basicsize = sizeof(fl_loop),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = loop_slots,
};
