/* The epoll backend of the poller interface (fastloop.h). Level-triggered,
 * like asyncio's selectors. The kernel holds fd | gen << 32, never a
 * pointer, so a stale event can be recognised and dropped. No Python API
 * here: every function returns >= 0 or -errno and may run without the GIL. */
#include "fastloop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

int
fl_poller_create(void)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static uint32_t
to_epoll(unsigned mask)
{
    return ((mask & FL_READ) ? EPOLLIN : 0) | ((mask & FL_WRITE) ? EPOLLOUT : 0);
}

int
fl_poller_set(int pfd, int fd, uint32_t gen, unsigned old_mask,
              unsigned new_mask)
{
    struct epoll_event ev = {0};
    int op, rc;

    ev.events = to_epoll(new_mask);
    ev.data.u64 = (uint64_t)(uint32_t)fd | ((uint64_t)gen << 32);
    if (new_mask == 0) {
        op = EPOLL_CTL_DEL;
    }
    else {
        op = old_mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    }
    rc = epoll_ctl(pfd, op, fd, &ev);
    if (rc == 0) {
        return 0;
    }
    /* Our view of the kernel can be wrong when a watched fd was closed
     * (the kernel dropped it) and the number was reused: retry the other
     * way round. */
    if (errno == ENOENT && op == EPOLL_CTL_MOD) {
        rc = epoll_ctl(pfd, EPOLL_CTL_ADD, fd, &ev);
    }
    else if (errno == EEXIST && op == EPOLL_CTL_ADD) {
        rc = epoll_ctl(pfd, EPOLL_CTL_MOD, fd, &ev);
    }
    else if ((errno == ENOENT || errno == EBADF) && op == EPOLL_CTL_DEL) {
        return 0;
    }
    return rc == 0 ? 0 : -errno;
}

int
fl_poller_wait(int pfd, fl_event *out, int cap, int64_t timeout_ns)
{
    struct epoll_event evs[256];
    struct timespec ts, *tsp = NULL;
    int n, i;

    if (cap > 256) {
        cap = 256;
    }
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
#ifdef SYS_epoll_pwait2
    n = epoll_pwait2(pfd, evs, cap, tsp, NULL);
    if (n < 0 && errno == ENOSYS)
#endif
    {
        int ms = -1;
        if (tsp != NULL) {
            /* Round up so that a timer never fires early. */
            int64_t m = (timeout_ns + 999999) / 1000000;
            ms = m > 0x7fffffff ? 0x7fffffff : (int)m;
        }
        n = epoll_wait(pfd, evs, cap, ms);
    }
    if (n < 0) {
        return -errno;
    }
    for (i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        unsigned m = 0;
        if (e & (EPOLLIN | EPOLLPRI)) {
            m |= FL_READ;
        }
        if (e & EPOLLOUT) {
            m |= FL_WRITE;
        }
        if (e & (EPOLLERR | EPOLLHUP)) {
            m |= FL_READ | FL_WRITE;
        }
        out[i].fd = (int)(uint32_t)evs[i].data.u64;
        out[i].gen = (uint32_t)(evs[i].data.u64 >> 32);
        out[i].mask = m;
    }
    return n;
}

const char *
fl_poller_name(void)
{
    return "epoll";
}
