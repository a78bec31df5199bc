/* Live loop statistics (src/stats.c, docs/statistics.md).
 *
 * The always-on part costs no clock read the loop did not already make: an
 * iteration reads the clock once at its end (that reading is also the start
 * of the next iteration, its poll timeout and its poll-skipping test) and
 * once after a real poll (also used to collect due timers). Callbacks are
 * timed one by one only when enabled (configure_stats(time_callbacks=True))
 * or during a short probe armed by a slow callback phase; the probe first
 * reads the clock once per FL_STATS_PROBE_CHUNK callbacks and times them
 * one by one only once a chunk was slow. */
#ifndef FASTLOOP_STATS_H
#define FASTLOOP_STATS_H

#include <stdint.h>

#define FL_STATS_TOP 10
#define FL_STATS_PROBE_WINDOW 1.0   /* seconds a probe stage lasts */
#define FL_STATS_PROBE_COOLDOWN 9.0 /* seconds before the next probe */
#define FL_STATS_PROBE_CHUNK 16     /* callbacks per clock read, stage 1 */

typedef struct {
    double seconds;
    double at;      /* loop time the callback ended */
    PyObject *name; /* str */
} fl_slow_cb;

typedef struct {
    uint64_t timers_scheduled, io_events, slow_phases, lag_n;
    double poll_time, cb_time;
    double reset_at;
    double phase_start;         /* start of the open callback phase */
    Py_ssize_t phase_handles;   /* handles run in the open phase */
    PyObject *first_handle;     /* the phase's only handle so far, or NULL */
    double block_last, block_max;
    double lag_last, lag_max, lag_sum;
    double slow_threshold;
    double probe_until, probe_next; /* loop times */
    double chunk_start;         /* probe stage 1: the chunk's start */
    int chunk_n;                /* probe stage 1: callbacks in the chunk */
    char time_callbacks;        /* option */
    char probing;               /* a probe (either stage) is on */
    char timing;                /* time_callbacks, or probe stage 2 */
    int depth;                  /* nesting of run_once */
    int ntop;
    fl_slow_cb top[FL_STATS_TOP]; /* slowest first */
} fl_stats;

#endif /* FASTLOOP_STATS_H */
