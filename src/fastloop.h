/* fastloop internal umbrella header: module state, the loop object, the
 * ready queue, the timer heap and the fd table. Nothing here is public. */
#ifndef FASTLOOP_H
#define FASTLOOP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#include "compat.h"
#include "stats.h"
#include "bytebuf.h"


#define FL_READ 1u
#define FL_WRITE 2u

/* Native asyncio streams (streams.c): interned attribute names. */
enum {
    FL_S_BUFFER, FL_S_EOF, FL_S_WAITER, FL_S_EXCEPTION, FL_S_TRANSPORT,
    FL_S_PAUSED, FL_S_LIMIT, FL_S_LOOP, FL_S_READER, FL_S_PROTOCOL,
    FL_S_CONN_LOST, FL_S_READER_WR, FL_S_WRITER, FL_S_CREATE_FUTURE,
    FL_S_CANCELLED, FL_S_SET_RESULT, FL_S_PAUSE_READING, FL_S_RESUME_READING,
    FL_S_WRITE, FL_S_IS_CLOSING, FL_S_CLASS, FL_S_SELF, FL_S_N
};

typedef struct {
    PyTypeObject *OpType;     /* what read() and drain() return */
    PyTypeObject *ReaderType; /* C subclass of asyncio.StreamReader */
    PyTypeObject *WriterType; /* C subclass of asyncio.StreamWriter */
    PyObject *aio_reader, *aio_writer, *aio_protocol;
    PyObject *guards; /* ((class, name, original function), ...) */
    PyObject *py_read, *py_readexactly, *py_readline, *py_readuntil,
        *py_feed_data,
        *py_write, *py_drain, *py_data_received; /* asyncio's functions */
    PyObject *write_code, *writelines_code; /* StreamWriter's, __code__ */
    PyObject *fut_cancelled, *fut_set_result; /* asyncio.Future's methods */
    PyObject *IncompleteReadError, *LimitOverrunError;
    PyObject *str[FL_S_N];
    fl_bytebuf_pool pool; /* storage of emptied readers' buffers */
    int enabled;
} fl_streams_state;

/* ------------------------------------------------------------------ */
/* Module state. Types and interned names; cached asyncio callables.   */

typedef struct {
    PyTypeObject *LoopType;
    PyTypeObject *HandleType;      /* subclass of asyncio.Handle */
    PyTypeObject *TimerHandleType; /* subclass of asyncio.TimerHandle */
    PyObject *aio_Future;          /* asyncio.Future */
    PyObject *aio_Task;            /* asyncio.Task */
    PyObject *aio_Handle;
    PyObject *aio_TimerHandle;
    PyObject *iscoroutine;         /* asyncio.iscoroutine */
    PyObject *iscoroutinefunction; /* asyncio.iscoroutinefunction */
    PyObject *extract_stack;       /* traceback.extract_stack */
    PyObject *str_context;
    PyObject *str_context_alias;  /* a non-interned "context" seen last */
    PyObject *empty_tuple;        /* the args of a callback without any */
    PyObject *str_loop;
    PyObject *str_name;
    PyObject *str_fileno;
    PyObject *str_callback_error; /* "_fl_callback_error" */
    PyObject *str_slow_callback;  /* "_fl_slow_callback" */
    PyObject *str_time;
    PyObject *loop_time;          /* the Loop type's own time() method */
    PyObject *kw_loop_name_context;
    PyObject *kw_loop_context;
    PyObject *kw_loop_name;
    PyTypeObject *StreamTransportType;
    PyTypeObject *ListenerType;
    PyObject *aio_Transport;
    PyObject *aio_BufferedProtocol;
    PyObject *TransportSocket;     /* asyncio.trsock.TransportSocket */
    PyObject *socket_socket;       /* socket.socket */
    PyObject *set_result_unless_cancelled;
    fl_streams_state streams;
} fl_state;

/* Offsets of asyncio.Handle / TimerHandle __slots__, read from their member
 * descriptors at import. They are properties of the running interpreter's
 * asyncio and identical for every module instance. */
typedef struct {
    Py_ssize_t callback, args, cancelled, loop, source_traceback, repr,
        context, when, scheduled;
    Py_ssize_t timer_extra; /* offset of fl_timer_extra in TimerHandle */
} fl_offsets;

extern fl_offsets fl_off;

#define FL_SLOT(obj, name) \
    (*(PyObject **)((char *)(obj) + fl_off.name))

/* Replace a slot value, stealing `value` (may be NULL). */
static inline void
fl_slot_set(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject **p = (PyObject **)((char *)obj + off);
    PyObject *old = *p;
    *p = value;
    Py_XDECREF(old);
}

/* Extra C fields of a fastloop TimerHandle, appended after asyncio's slots. */
typedef struct {
    double when;      /* deadline, loop time */
    uint64_t seq;     /* FIFO tie-break for equal deadlines */
    Py_ssize_t index; /* position in the owning loop's heap, or -1 */
} fl_timer_extra;

static inline fl_timer_extra *
fl_timer_x(PyObject *th)
{
    return (fl_timer_extra *)((char *)th + fl_off.timer_extra);
}

/* ------------------------------------------------------------------ */
/* Ready queue: ring buffer of strong references to handles.           */

typedef struct {
    PyObject **items;
    Py_ssize_t head; /* index of the first item */
    Py_ssize_t len;
    Py_ssize_t cap; /* power of two */
} fl_ready;

int fl_ready_push(fl_ready *q, PyObject *h); /* steals nothing, increfs */
PyObject *fl_ready_pop(fl_ready *q);         /* new reference or NULL */
void fl_ready_clear(fl_ready *q);
void fl_ready_free(fl_ready *q);
int fl_ready_traverse(fl_ready *q, visitproc visit, void *arg);

/* ------------------------------------------------------------------ */
/* Timer heap: 4-ary min-heap of TimerHandles keyed by (when, seq).     */

typedef struct {
    PyObject **items; /* strong references */
    Py_ssize_t len;
    Py_ssize_t cap;
} fl_heap;

int fl_heap_push(fl_heap *h, PyObject *th);     /* increfs */
PyObject *fl_heap_pop(fl_heap *h);              /* new ref to the min */
PyObject *fl_heap_remove(fl_heap *h, Py_ssize_t i); /* new ref */
static inline PyObject *
fl_heap_peek(fl_heap *h)
{
    return h->len ? h->items[0] : NULL;
}
void fl_heap_clear(fl_heap *h);
void fl_heap_free(fl_heap *h);
int fl_heap_traverse(fl_heap *h, visitproc visit, void *arg);

/* ------------------------------------------------------------------ */
/* Poller interface (poller_epoll.c). No Python API; -errno on error.  */

typedef struct {
    int fd;
    uint32_t gen;
    unsigned mask; /* FL_READ|FL_WRITE; errors/hangups map to both */
} fl_event;

int fl_poller_create(void);
int fl_poller_set(int pfd, int fd, uint32_t gen, unsigned old_mask,
                  unsigned new_mask);
/* Wait up to timeout_ns (-1: forever). Returns the number of events. */
int fl_poller_wait(int pfd, fl_event *out, int cap, int64_t timeout_ns);
const char *fl_poller_name(void);

/* ------------------------------------------------------------------ */
/* fd table.                                                           */

typedef struct fl_io fl_io;
/* Called with the GIL held when the watched fd is ready. Returns 0, or
 * -1 with an exception set that must stop the loop (SystemExit and the
 * like); everything else the callee reports itself. */
typedef int (*fl_io_cb)(fl_io *io, unsigned events);

/* A C-level watcher embedded in its owner (a transport, the wake-up fd).
 * While registered the loop keeps a strong reference to `owner`. */
struct fl_io {
    int fd;
    unsigned wanted; /* FL_READ|FL_WRITE */
    fl_io_cb cb;
    PyObject *owner; /* may be NULL for loop-internal watchers */
    char ref_held;   /* the loop holds a reference to owner */
};

typedef struct {
    PyObject *reader; /* Handle of add_reader(), or NULL */
    PyObject *writer;
    PyObject *fileobj; /* what add_reader/add_writer got last (asyncio's
                          key.fileobj), while either is set */
    fl_io *io;        /* C watcher owning this fd, or NULL */
    uint32_t gen;     /* bumped whenever the fd leaves the poller */
    uint8_t applied;  /* mask the kernel has */
    uint8_t dirty;    /* on the loop's dirty list */
} fl_fd;

/* ------------------------------------------------------------------ */
/* The loop.                                                           */

typedef struct fl_loop {
    PyObject_HEAD
    fl_state *state;
    /* The module whose state that is: held until dealloc, so that the
     * state outlives the loop (the final collection at exit can free a
     * module before a loop it still has to deallocate). */
    PyObject *module;
    fl_ready ready;
    fl_heap timers;
    uint64_t timer_seq;

    int pfd;    /* epoll */
    int wakefd; /* eventfd for call_soon_threadsafe */
    int wake_pending;

    fl_fd *fds;
    int nfds; /* size of fds[] */
    int *dirty;
    int ndirty, dirty_cap;
    fl_event *events;
    int events_cap;
    Py_ssize_t nwatched; /* fds with a reader, writer or io */

    char running;
    char stopping;
    char closed;
    char debug;
    char in_run_once;
    char run_held; /* running set by _fl_set_running (_run_forever_setup) */
    char in_run;   /* inside _run() */
    char io_first; /* set_io_first(): C watchers before older callbacks */
    char io_first_now; /* io_first, except in a run's first iteration */
    char time_attr; /* an instance attribute replaces time() */
    char time_type; /* the loop's class has another time() */
    unsigned int time_tag; /* the class's version tag when time_type was set */
    unsigned long thread_id;
    double slow_callback_duration;
    double clock_resolution;
    PyObject *current_handle; /* debug mode only */
    PyObject *task_factory;
    PyObject *kw_self;     /* {"loop": self}, for Task()/Future() calls */
    PyObject *weakreflist;
    char *rbuf; /* shared read buffer of the stream transports */
    PyObject *rdata; /* bytes kept for reuse by stream.c's read_data */
    int polls_skipped;   /* consecutive non-blocking polls skipped */
    int nevents;         /* events of this iteration's poll in events[] */
    int io_next;         /* events[io_next:nevents] wait for fl_io_run */
    Py_ssize_t io_pending_at; /* interrupted: ready handles ahead of them */
    /* Recycled handle objects (handle.c), [0] Handle, [1] TimerHandle. */
    PyObject *freelist[2]; /* parked handles, timer handles (handle.c) */
    Py_ssize_t nfree[2];
    Py_ssize_t free_low[2];    /* lowest nfree in the decay window */
    Py_ssize_t free_target[2]; /* giving back down to this, or -1 */
    double free_window;        /* loop time the decay window started */
    double last_poll;    /* loop time of the last poll */

    /* Counters for _stats(). */
    uint64_t n_iterations, n_callbacks, n_timers_fired, n_timers_cancelled;
    fl_stats stats; /* stats.c */
} fl_loop;

/* stats.c */
void fl_stats_init(fl_loop *loop);
void fl_stats_clear(fl_loop *loop);
int fl_stats_traverse(fl_loop *loop, visitproc visit, void *arg);
void fl_stats_probe_chunk(fl_loop *loop, double now);
void fl_stats_slow_phase(fl_loop *loop, double block, double now)
    __attribute__((cold));
void fl_stats_record(fl_loop *loop, PyObject *h, double seconds, double at);
PyObject *fl_loop_stats(fl_loop *self, PyObject *unused);
PyObject *fl_loop_reset_stats(fl_loop *self, PyObject *unused);
PyObject *fl_loop_configure_stats(fl_loop *self, PyObject *args,
                                  PyObject *kwargs);

/* loop.c */
typedef struct {
    PyObject *p[2];        /* named parameters, borrowed */
    PyObject *const *rest; /* the extra positional arguments */
    Py_ssize_t nrest;
    PyObject *ctx;         /* context= or NULL */
} fl_bound;
int fl_bind(fl_state *st, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames, const char *const *names, int n, int allow_ctx,
            fl_bound *b, const char *method);
double fl_time(void);

/* The poll timeout (ns, -1: none) shortened to at most `seconds`. */
static inline int64_t
fl_cap_timeout(int64_t timeout, double seconds)
{
    int64_t ns = (int64_t)ceil(seconds * 1e9);

    return (timeout < 0 || ns < timeout) ? ns : timeout;
}
int fl_loop_check_closed(fl_loop *loop);
int fl_is_loop(PyObject *o);
int fl_loop_call_soon_handle(fl_loop *loop, PyObject *handle);
extern PyType_Spec fl_loop_spec;

/* handle.c */
int fl_handle_init_types(PyObject *mod, fl_state *st);
PyObject *fl_handle_new(fl_state *st, fl_loop *loop, PyObject *cb,
                        PyObject *const *args, Py_ssize_t nargs,
                        PyObject *context);
PyObject *fl_timer_new(fl_state *st, fl_loop *loop, double when,
                       PyObject *when_obj, PyObject *cb,
                       PyObject *const *args, Py_ssize_t nargs,
                       PyObject *context);
/* Runs a handle. 0 = ran (errors reported), -1 = fatal (exception set). */
int fl_handle_run(fl_loop *loop, PyObject *handle);
static inline int
fl_handle_cancelled(PyObject *h)
{
    return FL_SLOT(h, cancelled) == Py_True;
}
void fl_timer_remove(fl_loop *loop, PyObject *th);
void fl_handle_freelist_clear(fl_loop *loop);
void fl_handle_freelist_init(fl_loop *loop);
int64_t fl_handle_freelist_idle(fl_loop *loop, double now,
                                int64_t timeout);

/* io.c */
int fl_io_init(fl_loop *loop);
void fl_io_close(fl_loop *loop);
int fl_io_traverse(fl_loop *loop, visitproc visit, void *arg);
int fl_io_flush(fl_loop *loop);
/* Non-blocking polls: while callbacks are queued the loop polls at least
 * every FL_POLL_EVERY iterations (or 0.5 ms, loop.c), not on each. */
#define FL_POLL_EVERY 16

/* The loop wrote to, shut down or closed a descriptor: a peer in this
 * process (a client and its server on one loop) may have I/O ready now, so
 * the next iteration polls, as asyncio's always does. */
static inline void
fl_loop_touch(fl_loop *loop)
{
    loop->polls_skipped = FL_POLL_EVERY;
}

/* fileops.c */
PyObject *fl_sendfile(PyObject *mod, PyObject *const *args, Py_ssize_t nargs);
PyObject *fl_stat(PyObject *mod, PyObject *path);
PyObject *fl_unlink(PyObject *mod, PyObject *path);

int fl_io_queue(fl_loop *loop);
int fl_io_run(fl_loop *loop);
int fl_io_start(fl_loop *loop, fl_io *io, unsigned mask);
void fl_io_stop(fl_loop *loop, fl_io *io);
void fl_io_pause(fl_loop *loop, fl_io *io);
int fl_fd_from_object(PyObject *obj);
PyObject *fl_loop_add_reader(fl_loop *self, PyObject *const *args,
                             size_t nargsf, PyObject *kwnames);
PyObject *fl_loop_add_writer(fl_loop *self, PyObject *const *args,
                             size_t nargsf, PyObject *kwnames);
PyObject *fl_loop_remove_reader(fl_loop *self, PyObject *const *args,
                                size_t nargsf, PyObject *kwnames);
PyObject *fl_loop_remove_writer(fl_loop *self, PyObject *const *args,
                                size_t nargsf, PyObject *kwnames);

/* wakeup.c */
int fl_wakeup_init(fl_loop *loop);
int fl_wakeup_signal(fl_loop *loop);
void fl_wakeup_drain(fl_loop *loop);
void fl_wakeup_read(fl_loop *loop, int n);

/* asyncio reports a callback's error from inside its "except" block, so
 * the exception handler sees it as the one being handled (sys.exc_info(),
 * logger.exception(), the __context__ of an error the handler raises).
 * fl_handling_begin(&s, exc) makes exc the handled exception until
 * fl_handling_end(&s) restores the previous one. */
typedef struct {
    PyObject *type, *value, *tb;
} fl_handling;

static inline void
fl_handling_begin(fl_handling *s, PyObject *exc)
{
    PyErr_GetExcInfo(&s->type, &s->value, &s->tb);
    if (exc != NULL && PyExceptionInstance_Check(exc)) {
        PyErr_SetExcInfo(Py_NewRef((PyObject *)Py_TYPE(exc)), Py_NewRef(exc),
                         PyException_GetTraceback(exc));
    }
}

static inline void
fl_handling_end(fl_handling *s)
{
    PyErr_SetExcInfo(s->type, s->value, s->tb);
}

#endif /* FASTLOOP_H */
