/* Live loop statistics: the cold half (recording slow callbacks, building
 * the stats() dict, reset and options). The hot half — counters, the
 * per-iteration timing and the timer lag — is inline in loop.c's run loop.
 * See stats.h and docs/statistics.md for the design and its cost. */
#include "fastloop.h"

#include <math.h>

void
fl_stats_init(fl_loop *loop)
{
    fl_stats *s = &loop->stats;

    s->slow_threshold = 0.01;
    s->reset_at = fl_time();
}

static void
clear_top(fl_stats *s)
{
    while (s->ntop > 0) {
        s->ntop--;
        Py_CLEAR(s->top[s->ntop].name);
    }
}

void
fl_stats_clear(fl_loop *loop)
{
    Py_CLEAR(loop->stats.first_handle);
    clear_top(&loop->stats);
}

int
fl_stats_traverse(fl_loop *loop, visitproc visit, void *arg)
{
    Py_VISIT(loop->stats.first_handle);
    return 0;
}

/* The name of a handle's callback, from the Python layer
 * (_fl_callback_name; fastloop/_stats.py). Never raises. */
static PyObject *
callback_name(fl_loop *loop, PyObject *h)
{
    PyObject *name = PyObject_CallMethod((PyObject *)loop,
                                         "_fl_callback_name", "O", h);

    if (name != NULL && PyUnicode_Check(name)) {
        return name;
    }
    if (name == NULL) {
        /* A bare _core.Loop has no Python layer: no name, no noise. */
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_WriteUnraisable((PyObject *)loop);
        }
        PyErr_Clear();
    }
    Py_XDECREF(name);
    return PyUnicode_FromString(Py_TYPE(h)->tp_name);
}

/* Enters a slow callback into the top list (slowest first), if it is
 * slower than the list's last entry or the list is not full. */
void
fl_stats_record(fl_loop *loop, PyObject *h, double seconds, double at)
{
    fl_stats *s = &loop->stats;
    PyObject *name;
    int i;

    if (PyErr_Occurred()) {
        return; /* SystemExit and the like are on their way out */
    }
    if (s->ntop == FL_STATS_TOP && seconds <= s->top[s->ntop - 1].seconds) {
        return;
    }
    name = callback_name(loop, h);
    if (name == NULL) {
        PyErr_Clear();
        return;
    }
    if (s->ntop == FL_STATS_TOP) {
        s->ntop--;
        Py_CLEAR(s->top[s->ntop].name);
    }
    for (i = s->ntop; i > 0 && s->top[i - 1].seconds < seconds; i--) {
        s->top[i] = s->top[i - 1];
    }
    s->top[i].seconds = seconds;
    s->top[i].at = at;
    s->top[i].name = name;
    s->ntop++;
}

/* True if this iteration's poll returned events for C watchers
 * (transports), whose callbacks ran in the callback phase untimed. */
static int
io_callbacks_ran(fl_loop *loop)
{
    int i;

    for (i = 0; i < loop->nevents; i++) {
        int fd = loop->events[i].fd;
        if (fd != loop->wakefd && fd >= 0 && fd < loop->nfds &&
            loop->fds[fd].io != NULL)
        {
            return 1;
        }
    }
    return 0;
}

/* A callback phase took at least slow_threshold. With exactly one handle
 * and no transport callbacks in it, the phase's duration is that
 * callback's: record it. Otherwise, unless callbacks are timed already or
 * a probe is on, arm a probe (at most one per window + cooldown) to catch
 * a slow callback that comes back: stage 1 reads the clock once per chunk
 * of FL_STATS_PROBE_CHUNK callbacks (fl_stats_probe_chunk); a slow chunk
 * starts stage 2, which times every callback. A clock read costs ~50 ns
 * here, about what a short callback costs: timing every callback of a
 * burst of small ones for a whole window, as the first probe did, slowed
 * such a loop by a third. */
void
fl_stats_slow_phase(fl_loop *loop, double block, double now)
{
    fl_stats *s = &loop->stats;

    s->slow_phases++;
    if (s->timing) {
        return;
    }
    if (s->phase_handles == 1 && s->first_handle != NULL &&
        !io_callbacks_ran(loop))
    {
        fl_stats_record(loop, s->first_handle, block, now);
        return;
    }
    if (!s->probing && now >= s->probe_next) {
        s->probe_until = now + FL_STATS_PROBE_WINDOW;
        s->probe_next = s->probe_until + FL_STATS_PROBE_COOLDOWN;
        s->probing = 1;
    }
}

/* Probe stage 1: a chunk of callbacks ended at `now` (or the phase did).
 * If it took slow_threshold, one of them may be the slow callback: time
 * every callback (stage 2) for a window from now. */
void
fl_stats_probe_chunk(fl_loop *loop, double now)
{
    fl_stats *s = &loop->stats;

    if (s->chunk_n > 0 && now - s->chunk_start >= s->slow_threshold) {
        s->timing = 1;
        s->probe_until = now + FL_STATS_PROBE_WINDOW;
        s->probe_next = s->probe_until + FL_STATS_PROBE_COOLDOWN;
    }
    s->chunk_start = now;
    s->chunk_n = 0;
}

/* ------------------------------------------------------------------ */
/* Python API                                                          */

static int
set_item(PyObject *d, const char *key, PyObject *v)
{
    int rc;

    if (v == NULL) {
        return -1;
    }
    rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

static int
set_u64(PyObject *d, const char *key, uint64_t v)
{
    return set_item(d, key, PyLong_FromUnsignedLongLong(v));
}

static int
set_f(PyObject *d, const char *key, double v)
{
    return set_item(d, key, PyFloat_FromDouble(v));
}

static int
set_n(PyObject *d, const char *key, Py_ssize_t v)
{
    return set_item(d, key, PyLong_FromSsize_t(v));
}

static PyObject *
slowest_list(fl_stats *s)
{
    PyObject *l = PyList_New(s->ntop);
    int i;

    for (i = 0; l != NULL && i < s->ntop; i++) {
        PyObject *e = Py_BuildValue("{s:O,s:d,s:d}", "name", s->top[i].name,
                                    "seconds", s->top[i].seconds, "at",
                                    s->top[i].at);
        if (e == NULL) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, i, e);
    }
    return l;
}

/* Adds one to d[key]. */
static int
count_kind(PyObject *d, const char *key)
{
    PyObject *k = PyUnicode_FromString(key), *old, *v;
    int rc;

    if (k == NULL) {
        return -1;
    }
    old = PyDict_GetItemWithError(d, k);
    if (old == NULL && PyErr_Occurred()) {
        Py_DECREF(k);
        return -1;
    }
    v = PyLong_FromSsize_t(old ? PyLong_AsSsize_t(old) + 1 : 1);
    rc = v == NULL ? -1 : PyDict_SetItem(d, k, v);
    Py_XDECREF(v);
    Py_DECREF(k);
    return rc;
}

/* Short name of a type: "StreamTransport" for fastloop._core.StreamTransport. */
static const char *
short_type_name(PyObject *o)
{
    const char *n = Py_TYPE(o)->tp_name, *dot = strrchr(n, '.');

    return dot ? dot + 1 : n;
}

/* The fd table: user watchers and, by owner type, the C watchers
 * (transports, listeners, pipes; paused ones included). */
static int
add_fd_counts(fl_loop *loop, PyObject *d)
{
    PyObject *kinds = PyDict_New();
    Py_ssize_t readers = 0, writers = 0;
    int fd;

    if (kinds == NULL) {
        return -1;
    }
    for (fd = 0; fd < loop->nfds; fd++) {
        fl_fd *f = &loop->fds[fd];
        readers += f->reader != NULL;
        writers += f->writer != NULL;
        if (f->io != NULL && f->io->owner != NULL &&
            count_kind(kinds, short_type_name(f->io->owner)) < 0)
        {
            Py_DECREF(kinds);
            return -1;
        }
    }
    if (set_n(d, "readers", readers) < 0 || set_n(d, "writers", writers) < 0 ||
        set_n(d, "fds_watched", loop->nwatched) < 0)
    {
        Py_DECREF(kinds);
        return -1;
    }
    return set_item(d, "transports", kinds);
}

static int
add_counters(fl_loop *loop, PyObject *d, double now)
{
    fl_stats *s = &loop->stats;

    return (set_f(d, "time", now) < 0 ||
            set_f(d, "since_reset", now - s->reset_at) < 0 ||
            set_u64(d, "iterations", loop->n_iterations) < 0 ||
            set_u64(d, "callbacks_run", loop->n_callbacks) < 0 ||
            set_u64(d, "io_events", s->io_events) < 0 ||
            set_u64(d, "timers_scheduled", s->timers_scheduled) < 0 ||
            set_u64(d, "timers_fired", loop->n_timers_fired) < 0 ||
            set_u64(d, "timers_cancelled", loop->n_timers_cancelled) < 0 ||
            set_f(d, "poll_seconds", s->poll_time) < 0 ||
            set_f(d, "callback_seconds", s->cb_time) < 0)
               ? -1
               : 0;
}

static int
add_lag(fl_loop *loop, PyObject *d, double now)
{
    fl_stats *s = &loop->stats;
    double current = s->phase_start > 0 ? now - s->phase_start : 0.0;

    return (set_f(d, "lag", s->lag_last) < 0 ||
            set_f(d, "lag_max", s->lag_max) < 0 ||
            set_f(d, "lag_mean", s->lag_n ? s->lag_sum / s->lag_n : 0.0) < 0 ||
            set_f(d, "block", s->block_last) < 0 ||
            set_f(d, "block_current", current) < 0 ||
            set_f(d, "block_max",
                  current > s->block_max ? current : s->block_max) < 0 ||
            set_u64(d, "slow_iterations", s->slow_phases) < 0 ||
            set_item(d, "slowest", slowest_list(s)) < 0)
               ? -1
               : 0;
}

static int
add_config(fl_loop *loop, PyObject *d)
{
    fl_stats *s = &loop->stats;

    return (set_f(d, "slow_threshold", s->slow_threshold) < 0 ||
            set_item(d, "time_callbacks",
                     PyBool_FromLong(s->time_callbacks)) < 0 ||
            set_item(d, "probing", PyBool_FromLong(s->probing)) < 0 ||
            set_n(d, "probe_stage",
                  s->probing ? (s->timing ? 2 : 1) : 0) < 0)
               ? -1
               : 0;
}

PyObject *
fl_loop_stats(fl_loop *self, PyObject *unused)
{
    PyObject *d = PyDict_New();
    double now = fl_time();

    if (d == NULL) {
        return NULL;
    }
    if (add_counters(self, d, now) < 0 || add_lag(self, d, now) < 0 ||
        set_n(d, "ready", self->ready.len) < 0 ||
        set_n(d, "timers", self->timers.len) < 0 ||
        set_n(d, "free_handles", self->nfree[0] + self->nfree[1]) < 0 ||
        set_n(d, "stream_buffer_pool",
              self->state->streams.pool.total) < 0 ||
        add_fd_counts(self, d) < 0 || add_config(self, d) < 0 ||
        set_item(d, "poller", PyUnicode_FromString(fl_poller_name())) < 0)
    {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

PyObject *
fl_loop_reset_stats(fl_loop *self, PyObject *unused)
{
    fl_stats *s = &self->stats;

    self->n_iterations = self->n_callbacks = 0;
    self->n_timers_fired = self->n_timers_cancelled = 0;
    s->timers_scheduled = s->io_events = s->slow_phases = s->lag_n = 0;
    s->poll_time = s->cb_time = 0;
    s->block_last = s->block_max = 0;
    s->lag_last = s->lag_max = s->lag_sum = 0;
    s->probe_next = 0;
    clear_top(s);
    s->reset_at = fl_time();
    Py_RETURN_NONE;
}

static PyObject *
config_dict(fl_stats *s)
{
    return Py_BuildValue("{s:d,s:O}", "slow_threshold", s->slow_threshold,
                         "time_callbacks",
                         s->time_callbacks ? Py_True : Py_False);
}

PyObject *
fl_loop_configure_stats(fl_loop *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"slow_threshold", "time_callbacks", NULL};
    fl_stats *s = &self->stats;
    PyObject *thr = Py_None, *timed = Py_None;
    double t = s->slow_threshold;
    int on = s->time_callbacks;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OO:configure_stats",
                                     kwlist, &thr, &timed))
    {
        return NULL;
    }
    if (thr != Py_None) {
        t = PyFloat_AsDouble(thr);
        if (t == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        if (!(t > 0) || isinf(t)) {
            PyErr_SetString(PyExc_ValueError,
                            "slow_threshold must be a positive number of "
                            "seconds");
            return NULL;
        }
    }
    if (timed != Py_None && (on = PyObject_IsTrue(timed)) < 0) {
        return NULL;
    }
    s->slow_threshold = t;
    s->time_callbacks = (char)on;
    s->timing = (char)on;
    if (on) {
        s->probing = 0; /* every callback is timed anyway */
    }
    return config_dict(s);
}
