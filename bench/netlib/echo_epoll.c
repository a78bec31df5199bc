/* echo_epoll: the plain-C ceiling for bench/net.py's Protocol echo cases.
 *
 * The same work an event loop does for an asyncio.Protocol echo server, and
 * nothing else: one thread, one level-triggered epoll set, accept4 on a
 * non-blocking listening socket (TCP_NODELAY on accepted TCP sockets, as
 * the loops set it), one recv per readiness event into one shared
 * page-aligned 256 KiB buffer (asyncio's max_size), a send of what was read
 * at once, and only what the kernel did not take is copied into a
 * per-connection queue and sent on EPOLLOUT (reading stops meanwhile, as a
 * paused protocol would).  No interpreter, no allocation per request.
 *
 *   echo_epoll --listen tcp:HOST:PORT|unix:PATH
 *
 * It speaks server.py's protocol: prints "READY <addr>" (tcp: HOST:PORT,
 * unix: PATH) once listening, serves until SIGTERM or SIGINT, then prints
 * "STATS errors=N" (N: unexpected errors on accepted connections) and
 * exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_SIZE (256 * 1024)
#define MAX_EVENTS 256

struct conn {
    int fd;
    char *q;        /* unsent bytes (NULL: nothing queued) */
    size_t qlen, qoff;
};

static volatile sig_atomic_t stopping;
static long errors;
static int ep;
static char *rbuf;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static int listen_on(const char *spec, char *addr, size_t addrlen)
{
    int fd;
    if (strncmp(spec, "tcp:", 4) == 0) {
        char host[256];
        const char *colon = strrchr(spec + 4, ':');
        if (!colon || (size_t)(colon - spec - 4) >= sizeof host)
            return -1;
        memcpy(host, spec + 4, colon - spec - 4);
        host[colon - spec - 4] = 0;
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
        if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
            return -1;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
            return -1;
        socklen_t sl = sizeof sin;
        getsockname(fd, (struct sockaddr *)&sin, &sl);
        snprintf(addr, addrlen, "%s:%d", host, ntohs(sin.sin_port));
    } else if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(spec + 5) >= sizeof sun.sun_path)
            return -1;
        strcpy(sun.sun_path, spec + 5);
        unlink(sun.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
            return -1;
        snprintf(addr, addrlen, "%s", spec + 5);
    } else {
        return -1;
    }
    if (listen(fd, 1024) < 0)
        return -1;
    return fd;
}

static void conn_close(struct conn *c, int err)
{
    if (err && err != ECONNRESET && err != EPIPE)
        errors++;
    close(c->fd);  /* the last reference: leaves the epoll set too */
    free(c->q);
    free(c);
}

static int watch(struct conn *c, int op, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(ep, op, c->fd, &ev);
}

static void do_accept(int lfd, int tcp)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (tcp) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        struct conn *c = calloc(1, sizeof *c);
        c->fd = fd;
        if (watch(c, EPOLL_CTL_ADD, EPOLLIN) < 0)
            conn_close(c, errno);
    }
}

/* Send buf[0:n]; queue what the kernel did not take.  -1: connection gone. */
static int send_or_queue(struct conn *c, const char *buf, size_t n)
{
    ssize_t k = send(c->fd, buf, n, MSG_NOSIGNAL);
    if (k < 0) {
        if (errno != EAGAIN)
            return -1;
        k = 0;
    }
    if ((size_t)k == n)
        return 0;
    c->qlen = n - k;
    c->qoff = 0;
    c->q = malloc(c->qlen);
    memcpy(c->q, buf + k, c->qlen);
    return watch(c, EPOLL_CTL_MOD, EPOLLOUT);
}

static void on_readable(struct conn *c)
{
    ssize_t n = recv(c->fd, rbuf, READ_SIZE, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        conn_close(c, n < 0 ? errno : 0);
        return;
    }
    if (n > 0 && send_or_queue(c, rbuf, n) < 0)
        conn_close(c, errno);
}

static void on_writable(struct conn *c)
{
    ssize_t k = send(c->fd, c->q + c->qoff, c->qlen - c->qoff, MSG_NOSIGNAL);
    if (k < 0) {
        if (errno != EAGAIN)
            conn_close(c, errno);
        return;
    }
    c->qoff += k;
    if (c->qoff < c->qlen)
        return;
    free(c->q);
    c->q = NULL;
    if (watch(c, EPOLL_CTL_MOD, EPOLLIN) < 0)
        conn_close(c, errno);
}

int main(int argc, char **argv)
{
    const char *spec = NULL;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            spec = argv[++i];
    if (!spec) {
        fprintf(stderr, "usage: echo_epoll --listen tcp:HOST:PORT|unix:PATH\n");
        return 2;
    }
    char addr[512];
    int lfd = listen_on(spec, addr, sizeof addr);
    if (lfd < 0) {
        fprintf(stderr, "echo_epoll: cannot listen on %s: %s\n", spec, strerror(errno));
        return 1;
    }
    if (posix_memalign((void **)&rbuf, 4096, READ_SIZE) != 0)
        return 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(EPOLL_CLOEXEC);
    static int listener_tag;
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    int tcp = strncmp(spec, "tcp:", 4) == 0;
    printf("READY %s\n", addr);
    fflush(stdout);

    struct epoll_event evs[MAX_EVENTS];
    while (!stopping) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listener_tag) {
                do_accept(lfd, tcp);
                continue;
            }
            struct conn *c = evs[i].data.ptr;
            if (c->q)
                on_writable(c);
            else
                on_readable(c);
        }
    }
    printf("STATS errors=%ld\n", errors);
    fflush(stdout);
    return 0;
}
