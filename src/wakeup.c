/* Cross-thread wake-up for call_soon_threadsafe: one eventfd per loop and a
 * pending flag so that a burst of N calls costs one write (libuv async.c).
 * The flag is only touched with the GIL held, which orders it; the fd's
 * counter is reset by the loop's thread right after the poll, before it
 * takes the GIL back (fl_wakeup_read). */
#include "fastloop.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

int
fl_wakeup_init(fl_loop *loop)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), rc;

    if (fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    loop->wakefd = fd;
    loop->wake_pending = 0;
    rc = fl_poller_set(loop->pfd, fd, 0, 0, FL_READ);
    if (rc < 0) {
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Called by call_soon_threadsafe (GIL held). */
int
fl_wakeup_signal(fl_loop *loop)
{
    uint64_t one = 1;
    ssize_t n;

    if (loop->wake_pending || loop->wakefd < 0) {
        return 0;
    }
    loop->wake_pending = 1;
    do {
        n = write(loop->wakefd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is saturated: the loop is awake anyway. */
    return 0;
}

/* Called by the loop's thread right after a poll, *without* the GIL: if
 * the wake-up fd is among the n events, resets its counter. Reading it
 * before taking the GIL back gives the signalling thread, which still
 * holds the GIL (it is inside call_soon_threadsafe), the time to let it go
 * (an executor job finishing, a thread blocking on a lock) -- taking the
 * GIL at once would find it held and cost a contended hand-off (futex
 * wait/wake pairs) per wake-up. Only the loop's thread touches the events
 * array and the fd; wake_pending is left to fl_wakeup_drain (GIL held). */
void
fl_wakeup_read(fl_loop *loop, int n)
{
    uint64_t v;
    ssize_t r;
    int i;

    for (i = 0; i < n; i++) {
        if (loop->events[i].fd == loop->wakefd) {
            do {
                r = read(loop->wakefd, &v, sizeof(v));
            } while (r < 0 && errno == EINTR);
            return;
        }
    }
}

/* The wake-up fd's event, GIL held: its counter was reset by
 * fl_wakeup_read() after the poll, so a call_soon_threadsafe() from now on
 * must write again. A callback it queued before is in the ready queue
 * already and runs in this iteration. */
void
fl_wakeup_drain(fl_loop *loop)
{
    loop->wake_pending = 0;
}
