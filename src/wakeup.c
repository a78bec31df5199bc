/* Cross-thread wake-up for call_soon_threadsafe: one eventfd per loop and a
 * pending flag so that a burst of N calls costs one write (libuv async.c).
 * Everything here runs with the GIL held, which orders the flag. */
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

void
fl_wakeup_drain(fl_loop *loop)
{
    uint64_t v;
    ssize_t n;

    do {
        n = read(loop->wakefd, &v, sizeof(v));
    } while (n < 0 && errno == EINTR);
    loop->wake_pending = 0;
}
