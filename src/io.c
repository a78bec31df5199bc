/* The fd table: user fd watchers (add_reader/add_writer) and C watchers
 * (transports), their registration with the poller, and the dispatch of
 * poll results. Slots are indexed by fd; the kernel holds fd | gen << 32,
 * and gen is bumped whenever an fd leaves the poller, so an event that was
 * already in the batch for an fd that has since been removed (and perhaps
 * closed and reused) is recognised and dropped. */
#include "fastloop.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

#define EVENTS_CAP 256

int
fl_io_init(fl_loop *loop)
{
    int pfd = fl_poller_create();

    if (pfd < 0) {
        errno = -pfd;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    loop->pfd = pfd;
    loop->events = PyMem_Calloc(EVENTS_CAP, sizeof(fl_event));
    if (loop->events == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    loop->events_cap = EVENTS_CAP;
    return 0;
}

/* Drops every watcher (the loop is closing or being collected). The
 * epoll instance goes first, taking every registration with it, so no
 * EPOLL_CTL_DEL is made: after a fork the instance is shared with the
 * parent, and a child closing or dropping its copy of the loop must not
 * unregister the parent's fds (asyncio's selector.close() only closes the
 * epoll fd too). */
void
fl_io_close(fl_loop *loop)
{
    int fd;

    if (loop->pfd >= 0) {
        close(loop->pfd);
        loop->pfd = -1;
    }

    for (fd = 0; fd < loop->nfds; fd++) {
        fl_fd *s = &loop->fds[fd];
        PyObject *r = s->reader, *w = s->writer, *f = s->fileobj;
        PyObject *owner = NULL;
        if (s->io != NULL) {
            if (s->io->ref_held) {
                owner = s->io->owner;
                s->io->ref_held = 0;
            }
            s->io->wanted = 0;
        }
        s->reader = s->writer = s->fileobj = NULL;
        s->io = NULL;
        s->applied = 0;
        s->gen++;
        Py_XDECREF(r);
        Py_XDECREF(w);
        Py_XDECREF(f);
        Py_XDECREF(owner);
    }
    loop->nwatched = 0;
}

int
fl_io_traverse(fl_loop *loop, visitproc visit, void *arg)
{
    int fd;

    for (fd = 0; fd < loop->nfds; fd++) {
        fl_fd *s = &loop->fds[fd];
        Py_VISIT(s->reader);
        Py_VISIT(s->writer);
        Py_VISIT(s->fileobj);
        if (s->io != NULL && s->io->ref_held) {
            Py_VISIT(s->io->owner);
        }
    }
    return 0;
}

static int
ensure_slot(fl_loop *loop, int fd)
{
    int n = loop->nfds ? loop->nfds : 64;
    fl_fd *fds;

    if (fd < loop->nfds) {
        return 0;
    }
    while (n <= fd) {
        n = n > INT_MAX / 2 ? INT_MAX : n * 2;
    }
    fds = PyMem_Realloc(loop->fds, (size_t)n * sizeof(fl_fd));
    if (fds == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(fds + loop->nfds, 0, (size_t)(n - loop->nfds) * sizeof(fl_fd));
    loop->fds = fds;
    loop->nfds = n;
    return 0;
}

static unsigned
wanted(fl_fd *s)
{
    return (s->reader ? FL_READ : 0) | (s->writer ? FL_WRITE : 0) |
           (s->io ? s->io->wanted : 0);
}

/* Brings the kernel's registration of fd in line with the slot. Returns 0
 * or -errno (the slot is unchanged on failure). */
static int
apply_ex(fl_loop *loop, int fd, int force)
{
    fl_fd *s = &loop->fds[fd];
    unsigned w = wanted(s);
    int rc;

    /* `force` re-asserts an unchanged registration: the fd may have been
     * closed (dropping it from epoll) and its number reused. */
    if (w == s->applied && !(force && w)) {
        return 0;
    }
    rc = fl_poller_set(loop->pfd, fd, s->gen, s->applied, w);
    if (rc < 0) {
        return rc;
    }
    if (s->applied == 0) {
        loop->nwatched++;
    }
    if (w == 0) {
        loop->nwatched--;
        s->gen++;
    }
    s->applied = (uint8_t)w;
    return 0;
}

static int
apply(fl_loop *loop, int fd)
{
    return apply_ex(loop, fd, 0);
}

int
fl_io_flush(fl_loop *loop)
{
    /* Registration is applied eagerly today; see apply(). */
    return 0;
}

/* An int as an fd: -1 with ValueError when negative (as selectors'
 * _fileobj_to_fd) or OverflowError beyond a C int (as epoll.register()). */
static int
fd_from_int(PyObject *i)
{
    int overflow;
    long fd = PyLong_AsLongAndOverflow(i, &overflow);

    if (fd == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow < 0 || (overflow == 0 && fd < 0)) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %R", i);
        return -1;
    }
    if (overflow > 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError,
                        "Python int too large to convert to C int");
        return -1;
    }
    return (int)fd;
}

int
fl_fd_from_object(PyObject *obj)
{
    PyObject *r, *i = NULL;
    int fd;

    if (PyLong_Check(obj)) {
        return fd_from_int(obj);
    }
    r = PyObject_CallMethod(obj, "fileno", NULL);
    if (r != NULL) {
        i = PyNumber_Long(r);
        Py_DECREF(r);
    }
    if (i == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError) ||
            PyErr_ExceptionMatches(PyExc_TypeError) ||
            PyErr_ExceptionMatches(PyExc_ValueError))
        {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "Invalid file object: %R", obj);
        }
        return -1;
    }
    fd = fd_from_int(i);
    Py_DECREF(i);
    return fd;
}

/* asyncio's _ensure_fd_no_transport: the fd of a transport that is not
 * closing cannot be watched by hand (one that is closing can: the two
 * share the fd's registration until the transport lets go of it). */
static int
ensure_no_io(fl_loop *loop, int fd)
{
    PyObject *owner, *r;
    int closing;

    if (fd >= loop->nfds || loop->fds[fd].io == NULL ||
        loop->fds[fd].io->owner == NULL || loop->closed)
    {
        return 0;
    }
    owner = Py_NewRef(loop->fds[fd].io->owner);
    r = PyObject_CallMethod(owner, "is_closing", NULL);
    if (r == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear(); /* a server's accept loop */
        r = Py_NewRef(Py_False);
    }
    closing = r == NULL ? -1 : PyObject_IsTrue(r);
    Py_XDECREF(r);
    if (closing == 0) {
        PyErr_Format(PyExc_RuntimeError,
                     "File descriptor %d is used by transport %R", fd, owner);
    }
    Py_DECREF(owner);
    return closing > 0 ? 0 : -1;
}

static void
cancel_handle(PyObject *h)
{
    PyObject *r = PyObject_CallMethod(h, "cancel", NULL);

    if (r == NULL) {
        PyErr_WriteUnraisable(h);
    }
    Py_XDECREF(r);
}

static const char *const names_fd_cb[] = {"fd", "callback"};

/* add_reader / add_writer: which = FL_READ or FL_WRITE. */
static PyObject *
add_watcher(fl_loop *self, PyObject *const *args, size_t nargsf,
            PyObject *kwnames, unsigned which, const char *method)
{
    PyObject *h, *old, **slotp;
    fl_bound b;
    int fd, rc;

    if (fl_bind(self->state, args, PyVectorcall_NARGS(nargsf), kwnames,
                names_fd_cb, 2, 0, &b, method) < 0)
    {
        return NULL;
    }
    if ((fd = fl_fd_from_object(b.p[0])) < 0 || ensure_no_io(self, fd) < 0 ||
        fl_loop_check_closed(self) < 0)
    {
        return NULL;
    }
    if (!PyCallable_Check(b.p[1])) {
        PyErr_Format(PyExc_TypeError,
                     "a callable object was expected by %s(), got %R", method,
                     b.p[1]);
        return NULL;
    }
    if (ensure_slot(self, fd) < 0) {
        return NULL;
    }
    h = fl_handle_new(self->state, self, b.p[1], b.rest, b.nrest, NULL);
    if (h == NULL) {
        return NULL;
    }
    slotp = which == FL_READ ? &self->fds[fd].reader : &self->fds[fd].writer;
    old = *slotp;
    *slotp = h;
    rc = apply_ex(self, fd, old != NULL);
    slotp = which == FL_READ ? &self->fds[fd].reader : &self->fds[fd].writer;
    if (rc < 0) {
        *slotp = old;
        Py_DECREF(h);
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    Py_XSETREF(self->fds[fd].fileobj, Py_NewRef(b.p[0]));
    if (old != NULL) {
        cancel_handle(old);
        Py_DECREF(old);
    }
    Py_RETURN_NONE;
}

/* The fd of a file object passed to remove_reader/remove_writer. As
 * asyncio's selector (_fileobj_lookup), an object whose fileno() no longer
 * works -- a socket closed while watched -- is found among the objects
 * add_reader/add_writer were given. */
static int
watched_fd(fl_loop *self, PyObject *fdobj)
{
    int fd = fl_fd_from_object(fdobj), i;

    if (fd >= 0 || PyLong_Check(fdobj) ||
        !PyErr_ExceptionMatches(PyExc_ValueError))
    {
        return fd;
    }
    for (i = 0; i < self->nfds; i++) {
        if (self->fds[i].fileobj == fdobj) {
            PyErr_Clear();
            return i;
        }
    }
    return -1;
}

static PyObject *
remove_watcher(fl_loop *self, PyObject *fdobj, unsigned which)
{
    PyObject *old, **slotp;
    int fd, rc;

    if ((fd = watched_fd(self, fdobj)) < 0) {
        /* beyond any fd: never registered (asyncio: KeyError -> False) */
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            Py_RETURN_FALSE;
        }
        return NULL;
    }
    if (ensure_no_io(self, fd) < 0) {
        return NULL;
    }
    if (self->closed || fd >= self->nfds) {
        Py_RETURN_FALSE;
    }
    slotp = which == FL_READ ? &self->fds[fd].reader : &self->fds[fd].writer;
    old = *slotp;
    if (old == NULL) {
        Py_RETURN_FALSE;
    }
    *slotp = NULL;
    rc = apply(self, fd);
    if (rc < 0) {
        /* The fd was closed behind our back: the kernel forgot it. */
        fl_fd *s = &self->fds[fd];
        if (wanted(s) == 0 && s->applied) {
            self->nwatched--;
            s->applied = 0;
            s->gen++;
        }
    }
    if (self->fds[fd].reader == NULL && self->fds[fd].writer == NULL) {
        Py_CLEAR(self->fds[fd].fileobj);
    }
    cancel_handle(old);
    Py_DECREF(old);
    Py_RETURN_TRUE;
}

PyObject *
fl_loop_add_reader(fl_loop *self, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    return add_watcher(self, args, nargsf, kwnames, FL_READ, "add_reader");
}

PyObject *
fl_loop_add_writer(fl_loop *self, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    return add_watcher(self, args, nargsf, kwnames, FL_WRITE, "add_writer");
}

static const char *const names_fd[] = {"fd"};

static PyObject *
remove_bound(fl_loop *self, PyObject *const *args, size_t nargsf,
             PyObject *kwnames, unsigned which, const char *method)
{
    fl_bound b;

    if (fl_bind(self->state, args, PyVectorcall_NARGS(nargsf), kwnames,
                names_fd, 1, 0, &b, method) < 0)
    {
        return NULL;
    }
    if (b.nrest) {
        PyErr_Format(PyExc_TypeError, "%s() takes 1 argument (%zd given)",
                     method, b.nrest + 1);
        return NULL;
    }
    return remove_watcher(self, b.p[0], which);
}

PyObject *
fl_loop_remove_reader(fl_loop *self, PyObject *const *args, size_t nargsf,
                      PyObject *kwnames)
{
    return remove_bound(self, args, nargsf, kwnames, FL_READ,
                        "remove_reader");
}

PyObject *
fl_loop_remove_writer(fl_loop *self, PyObject *const *args, size_t nargsf,
                      PyObject *kwnames)
{
    return remove_bound(self, args, nargsf, kwnames, FL_WRITE,
                        "remove_writer");
}

/* ------------------------------------------------------------------ */
/* C watchers                                                          */

/* A C watcher is *attached* to its fd slot from its first start until
 * fl_io_stop(): while attached the fd belongs to it (add_reader() on it
 * raises RuntimeError, as asyncio's _ensure_fd_no_transport). The loop
 * holds a reference to io->owner only while the watcher wants events, so a
 * paused transport nobody else references can still be collected: its
 * dealloc must call fl_io_stop() to detach. */

static void
release_owner(fl_io *io)
{
    if (io->ref_held) {
        io->ref_held = 0;
        Py_XDECREF(io->owner); /* may free io: keep this last */
    }
}

/* Starts (or changes) a C watcher. Returns 0 or -1 (OSError). */
int
fl_io_start(fl_loop *loop, fl_io *io, unsigned mask)
{
    fl_fd *s;
    unsigned old_wanted = io->wanted;
    int fresh, rc;

    if (ensure_slot(loop, io->fd) < 0) {
        return -1;
    }
    s = &loop->fds[io->fd];
    if (s->io != NULL && s->io != io) {
        PyErr_Format(PyExc_RuntimeError, "fd %d is already watched", io->fd);
        return -1;
    }
    fresh = s->io == NULL;
    s->io = io;
    io->wanted = mask;
    rc = apply(loop, io->fd);
    if (rc < 0) {
        io->wanted = old_wanted;
        if (fresh) {
            s->io = NULL;
        }
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (mask && !io->ref_held) {
        Py_XINCREF(io->owner);
        io->ref_held = 1;
    }
    return 0;
}

static void
unwatch(fl_loop *loop, fl_io *io)
{
    fl_fd *s = &loop->fds[io->fd];

    io->wanted = 0;
    if (apply(loop, io->fd) < 0 && s->applied && wanted(s) == 0) {
        /* The fd was closed behind our back: the kernel forgot it. */
        loop->nwatched--;
        s->applied = 0;
        s->gen++;
    }
}

static int
attached(fl_loop *loop, fl_io *io)
{
    return io->fd >= 0 && io->fd < loop->nfds && loop->fds[io->fd].io == io;
}

/* Stops watching but stays attached. May free the owner (see above). */
void
fl_io_pause(fl_loop *loop, fl_io *io)
{
    if (!attached(loop, io)) {
        if (io->fd >= 0 && ensure_slot(loop, io->fd) == 0 &&
            loop->fds[io->fd].io == NULL && !loop->closed)
        {
            loop->fds[io->fd].io = io;
        }
        PyErr_Clear();
        io->wanted = 0;
        release_owner(io);
        return;
    }
    unwatch(loop, io);
    release_owner(io);
}

/* Stops watching and detaches from the fd. May free the owner. */
void
fl_io_stop(fl_loop *loop, fl_io *io)
{
    fl_loop_touch(loop); /* usually the fd closes next */
    if (!attached(loop, io)) {
        io->wanted = 0;
        release_owner(io);
        return;
    }
    unwatch(loop, io);
    loop->fds[io->fd].io = NULL;
    release_owner(io);
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */

/* asyncio's _process_events for a user watcher: queue the handle, or drop
 * a cancelled one. */
static int
queue_user(fl_loop *loop, int fd, unsigned which)
{
    PyObject *h = which == FL_READ ? loop->fds[fd].reader
                                   : loop->fds[fd].writer;

    if (h == NULL) {
        return 0;
    }
    if (fl_handle_cancelled(h)) {
        PyObject *fdo = PyLong_FromLong(fd), *r;
        if (fdo == NULL) {
            return -1;
        }
        r = remove_watcher(loop, fdo, which);
        Py_DECREF(fdo);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    return fl_ready_push(&loop->ready, h);
}

static int
dispatch_io(fl_loop *loop, fl_io *io, unsigned mask)
{
    PyObject *owner = io->owner;
    int rc;

    /* The callback may stop the watcher and drop the last reference. */
    Py_XINCREF(owner);
    rc = io->cb(io, mask);
    Py_XDECREF(owner);
    return rc;
}

/* The poll results are dispatched in two phases, so that the order is
 * asyncio's (_run_once: the callbacks already queued run before the I/O
 * callbacks of this poll): fl_io_queue drains the wake-up fd and queues the
 * handles of user watchers; fl_io_run, after the previously queued
 * callbacks, calls the C watchers (transports). Each event is checked
 * against the slot's current generation and wanted mask at that time. */
int
fl_io_queue(fl_loop *loop)
{
    int i;

    for (i = 0; i < loop->nevents; i++) {
        fl_event *e = &loop->events[i];
        if (e->fd == loop->wakefd) {
            fl_wakeup_drain(loop);
            continue;
        }
        if (e->fd < 0 || e->fd >= loop->nfds ||
            loop->fds[e->fd].gen != e->gen ||
            (loop->fds[e->fd].reader == NULL &&
             loop->fds[e->fd].writer == NULL))
        {
            continue; /* stale, or only a C watcher (fl_io_run) */
        }
        if ((e->mask & FL_READ) && queue_user(loop, e->fd, FL_READ) < 0) {
            return -1;
        }
        if ((e->mask & FL_WRITE) && queue_user(loop, e->fd, FL_WRITE) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Calls the C watchers of the events from loop->io_next on. io_next moves
 * past each event before its callback runs: if one raises (SystemExit,
 * KeyboardInterrupt), the rest stay pending for the next iteration. */
int
fl_io_run(fl_loop *loop)
{
    while (loop->io_next < loop->nevents && !loop->closed) {
        fl_event *e = &loop->events[loop->io_next++];
        fl_fd *s;
        unsigned m;
        if (e->fd < 0 || e->fd >= loop->nfds || e->fd == loop->wakefd) {
            continue;
        }
        s = &loop->fds[e->fd];
        if (s->gen != e->gen || s->io == NULL) {
            continue; /* stale, or only user watchers (fl_io_queue) */
        }
        m = e->mask & s->io->wanted;
        if (m && dispatch_io(loop, s->io, m) < 0) {
            return -1;
        }
    }
    return 0;
}
