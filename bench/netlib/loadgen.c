/* loadgen: a small, cheap load generator for bench/net.py.
 *
 * One thread, one epoll set (level-triggered), N connections to one server.
 * It has to cost much less CPU per request than the server under test, so
 * that the server is the bottleneck: no allocation after start-up, one recv
 * and one send per readiness event, checks by memcmp.
 *
 *   loadgen (--tcp HOST:PORT | --unix PATH) --mode echo|connect|http
 *           [-c CONNS] [-s SIZE] [-p DEPTH] [-w WARMUP_S] [-t DURATION_S]
 *           [-n REQUESTS] [--path /]
 *
 * Modes:
 *   echo     every connection keeps DEPTH messages of SIZE bytes in flight
 *            (DEPTH 1: ping-pong) and checks that every byte comes back in
 *            order; a request is one message echoed back in full.
 *   connect  every one of CONNS slots connects, sends SIZE bytes, reads the
 *            SIZE-byte echo, closes, and starts again: a request is one
 *            connection.
 *   http     HTTP/1.1 keep-alive: DEPTH GET requests in flight per
 *            connection (1: no pipelining); a request is one complete
 *            response (status 200 and Content-Length checked).
 *
 * Load runs for WARMUP_S seconds untimed, then the line "START" is printed
 * (and flushed: bench/net.py samples the server's counters on it), then the
 * timed window lasts DURATION_S seconds (or until REQUESTS requests were
 * completed in it, with -n), then one line
 *   RESULT requests=... bytes=... seconds=... rps=... mibps=... errors=...
 *          user_s=... sys_s=... conns=... total_requests=...
 * is printed on stdout, with a human summary on stderr.  bytes counts what
 * was received in the window; user_s/sys_s are this process's CPU time in
 * the window; total_requests counts the warm-up too.  The exit status is 1 if any error happened (connection
 * reset, wrong data, bad response), 2 on a usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { MODE_ECHO, MODE_CONNECT, MODE_HTTP };
enum { ST_FREE, ST_CONNECTING, ST_ACTIVE };

#define RBUF_SIZE (256 * 1024)
#define HBUF_SIZE (16 * 1024)

struct conn {
    int fd;
    int state;
    int want_out;     /* EPOLLOUT registered */
    uint64_t target;  /* bytes of the outgoing stream queued so far */
    uint64_t sent;    /* bytes of it sent */
    uint64_t recvd;   /* bytes received */
    uint64_t done;    /* requests completed on this connection */
    /* http */
    long body_left;   /* > 0: inside a body; 0: reading headers */
    int hlen;
    char *hbuf;
};

static int mode = MODE_ECHO;
static int nconns = 10;
static long msg_size = 64;
static long depth = 1;
static double warmup_s = 0.5, duration_s = 2.0;
static uint64_t req_limit = 0;
static const char *path = "/";
static const char *tcp_spec, *unix_spec;

static struct sockaddr_storage addr;
static socklen_t addrlen;
static int family;

static int epfd;
static struct conn *conns;
static char *sbuf;            /* the outgoing stream: msg repeated */
static size_t sbuf_len;       /* a multiple of the period, >= 2 periods */
static size_t period;         /* msg_size (echo/connect) or request length */
static char *rbuf;

static int running = 1;       /* still starting new requests */
static uint64_t total_req, total_bytes, errors;
static int live;              /* connections not dead */

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
cpu_times(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6;
    *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static void
fail(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: loadgen (--tcp HOST:PORT | --unix PATH) "
            "--mode echo|connect|http [-c CONNS] [-s SIZE] [-p DEPTH]\n"
            "               [-w WARMUP_S] [-t DURATION_S] [-n REQUESTS] "
            "[--path /]\n");
    exit(2);
}

static void
resolve(void)
{
    memset(&addr, 0, sizeof(addr));
    if (unix_spec != NULL) {
        struct sockaddr_un *un = (struct sockaddr_un *)&addr;
        if (strlen(unix_spec) >= sizeof(un->sun_path)) {
            fprintf(stderr, "loadgen: unix path too long\n");
            exit(2);
        }
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, unix_spec);
        addrlen = sizeof(*un);
        family = AF_UNIX;
        return;
    }
    char host[256];
    const char *colon = strrchr(tcp_spec, ':');
    if (colon == NULL || (size_t)(colon - tcp_spec) >= sizeof(host)) {
        usage();
    }
    memcpy(host, tcp_spec, colon - tcp_spec);
    host[colon - tcp_spec] = 0;
    struct addrinfo hints = {0}, *res;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "loadgen: %s: %s\n", tcp_spec, gai_strerror(rc));
        exit(2);
    }
    memcpy(&addr, res->ai_addr, res->ai_addrlen);
    addrlen = res->ai_addrlen;
    family = res->ai_family;
    freeaddrinfo(res);
}

static void
ep_set(struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev;
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) {
        fail("epoll_ctl");
    }
}

static void
conn_dead(struct conn *c, const char *why, int err)
{
    if (running || err) {
        /* Any failure while the load runs is an error (a wrong byte, a
         * reset, an early close). */
        errors++;
        fprintf(stderr, "loadgen: connection %ld: %s%s%s\n",
                (long)(c - conns), why, err ? ": " : "",
                err ? strerror(err) : "");
    }
    close(c->fd);
    c->fd = -1;
    c->state = ST_FREE;
    live--;
}

/* Start a connection in slot c.  Returns 0, or -1 if it died. */
static int
conn_open(struct conn *c)
{
    int one = 1;
    c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail("socket");
    }
    if (family != AF_UNIX) {
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    c->target = c->sent = c->recvd = c->done = 0;
    c->body_left = 0;
    c->hlen = 0;
    c->want_out = 1;
    c->state = ST_CONNECTING;
    live++;
    if (connect(c->fd, (struct sockaddr *)&addr, addrlen) < 0 &&
        errno != EINPROGRESS) {
        conn_dead(c, "connect", errno);
        return -1;
    }
    ep_set(c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT);
    return 0;
}

/* Send what is queued; keeps EPOLLOUT registered only while blocked. */
static int
conn_flush(struct conn *c)
{
    while (c->sent < c->target) {
        size_t off = c->sent % period;
        size_t len = sbuf_len - off;
        if (len > c->target - c->sent) {
            len = c->target - c->sent;
        }
        ssize_t n = send(c->fd, sbuf + off, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->want_out) {
                    c->want_out = 1;
                    ep_set(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
                }
                return 0;
            }
            conn_dead(c, "send", errno);
            return -1;
        }
        c->sent += (uint64_t)n;
    }
    if (c->want_out) {
        c->want_out = 0;
        ep_set(c, EPOLL_CTL_MOD, EPOLLIN);
    }
    return 0;
}

static void
complete(struct conn *c, uint64_t n)
{
    c->done += n;
    total_req += n;
}

/* Echo/connect: check n received bytes against the stream. */
static int
check_echo(struct conn *c, const char *data, size_t n)
{
    while (n > 0) {
        size_t off = c->recvd % period;
        size_t len = sbuf_len - off;
        if (len > n) {
            len = n;
        }
        if (c->recvd + len > c->sent) {
            conn_dead(c, "received more than was sent", 0);
            return -1;
        }
        if (memcmp(data, sbuf + off, len) != 0) {
            conn_dead(c, "echoed data differs from what was sent", 0);
            return -1;
        }
        c->recvd += len;
        data += len;
        n -= len;
    }
    return 0;
}

static int
parse_headers(struct conn *c, int hdrlen)
{
    char *h = c->hbuf;
    h[hdrlen - 1] = 0; /* the last '\n' */
    if (strncmp(h, "HTTP/1.1 200 ", 13) != 0 &&
        strncmp(h, "HTTP/1.0 200 ", 13) != 0) {
        char *eol = strchr(h, '\r');
        if (eol) {
            *eol = 0;
        }
        fprintf(stderr, "loadgen: unexpected status line: %.80s\n", h);
        conn_dead(c, "bad response", 0);
        return -1;
    }
    for (char *p = strchr(h, '\n'); p != NULL; p = strchr(p + 1, '\n')) {
        if (strncasecmp(p + 1, "content-length:", 15) == 0) {
            c->body_left = strtol(p + 16, NULL, 10);
            return 0;
        }
    }
    conn_dead(c, "response without Content-Length", 0);
    return -1;
}

/* HTTP: consume n received bytes; returns the responses completed or -1. */
static long
http_consume(struct conn *c, const char *data, size_t n)
{
    long completed = 0;
    while (n > 0) {
        if (c->body_left > 0) {
            size_t k = (size_t)c->body_left < n ? (size_t)c->body_left : n;
            c->body_left -= (long)k;
            data += k;
            n -= k;
            if (c->body_left == 0) {
                completed++;
            }
            continue;
        }
        int old = c->hlen;
        size_t room = HBUF_SIZE - 1 - (size_t)old;
        size_t k = n < room ? n : room;
        memcpy(c->hbuf + old, data, k);
        c->hlen += (int)k;
        int from = old > 3 ? old - 3 : 0;
        char *end = memmem(c->hbuf + from, (size_t)(c->hlen - from),
                           "\r\n\r\n", 4);
        if (end == NULL) {
            if ((size_t)c->hlen >= HBUF_SIZE - 1) {
                conn_dead(c, "response headers too long", 0);
                return -1;
            }
            data += k;
            n -= k;
            continue;
        }
        int hdrlen = (int)(end - c->hbuf) + 4;
        size_t used = (size_t)(hdrlen - old);
        data += used;
        n -= used;
        c->hlen = 0;
        if (parse_headers(c, hdrlen) < 0) {
            return -1;
        }
        if (c->body_left == 0) {
            completed++;
        }
    }
    return completed;
}

static void
on_event(struct conn *c, uint32_t ev)
{
    if (c->state == ST_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t len = sizeof(err);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                conn_dead(c, "connect", err);
                return;
            }
            c->state = ST_ACTIVE;
            /* The first requests. */
            if (running) {
                c->target = (mode == MODE_CONNECT ? 1 : depth) * period;
            }
            if (conn_flush(c) < 0) {
                return;
            }
        }
        else {
            return;
        }
    }
    if (ev & EPOLLOUT) {
        if (conn_flush(c) < 0) {
            return;
        }
    }
    if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
        return;
    }
    ssize_t n;
    do {
        n = recv(c->fd, rbuf, RBUF_SIZE, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        conn_dead(c, "recv", errno);
        return;
    }
    if (n == 0) {
        conn_dead(c, "the server closed the connection", 0);
        return;
    }
    total_bytes += (uint64_t)n;
    long newly;
    if (mode == MODE_HTTP) {
        newly = http_consume(c, rbuf, (size_t)n);
        if (newly < 0) {
            return;
        }
    }
    else {
        if (check_echo(c, rbuf, (size_t)n) < 0) {
            return;
        }
        newly = (long)(c->recvd / period - c->done);
    }
    if (newly == 0) {
        return;
    }
    complete(c, (uint64_t)newly);
    if (mode == MODE_CONNECT) {
        /* One request per connection: close, then open the next one. */
        close(c->fd);
        c->fd = -1;
        c->state = ST_FREE;
        live--;
        if (running) {
            conn_open(c);
        }
        return;
    }
    if (running) {
        c->target += (uint64_t)newly * period;
        conn_flush(c);
    }
}

int
main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--tcp") == 0 && v) {
            tcp_spec = v;
        }
        else if (strcmp(a, "--unix") == 0 && v) {
            unix_spec = v;
        }
        else if (strcmp(a, "--mode") == 0 && v) {
            if (strcmp(v, "echo") == 0) {
                mode = MODE_ECHO;
            }
            else if (strcmp(v, "connect") == 0) {
                mode = MODE_CONNECT;
            }
            else if (strcmp(v, "http") == 0) {
                mode = MODE_HTTP;
            }
            else {
                usage();
            }
        }
        else if (strcmp(a, "-c") == 0 && v) {
            nconns = atoi(v);
        }
        else if (strcmp(a, "-s") == 0 && v) {
            msg_size = atol(v);
        }
        else if (strcmp(a, "-p") == 0 && v) {
            depth = atol(v);
        }
        else if (strcmp(a, "-w") == 0 && v) {
            warmup_s = atof(v);
        }
        else if (strcmp(a, "-t") == 0 && v) {
            duration_s = atof(v);
        }
        else if (strcmp(a, "-n") == 0 && v) {
            req_limit = strtoull(v, NULL, 10);
        }
        else if (strcmp(a, "--path") == 0 && v) {
            path = v;
        }
        else {
            usage();
        }
        i++;
    }
    if ((tcp_spec == NULL) == (unix_spec == NULL) || nconns < 1 ||
        msg_size < 1 || depth < 1 || duration_s <= 0 || warmup_s < 0) {
        usage();
    }
    signal(SIGPIPE, SIG_IGN);
    resolve();

    if (mode == MODE_HTTP) {
        char req[1024];
        int len = snprintf(req, sizeof(req),
                           "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path,
                           tcp_spec ? tcp_spec : "localhost");
        if (len <= 0 || (size_t)len >= sizeof(req)) {
            usage();
        }
        period = (size_t)len;
        sbuf_len = period * (size_t)(depth + 1);
        sbuf = malloc(sbuf_len);
        for (size_t off = 0; off < sbuf_len; off += period) {
            memcpy(sbuf + off, req, period);
        }
    }
    else {
        /* The message: a pattern that is not periodic within itself, so
         * that a dropped or repeated chunk is caught. */
        period = (size_t)msg_size;
        size_t k = RBUF_SIZE / period;
        if (k < 1) {
            k = 1;
        }
        if (k > (size_t)depth) {
            k = (size_t)depth;
        }
        sbuf_len = period * (k + 1);
        sbuf = aligned_alloc(4096, (sbuf_len + 4095) / 4096 * 4096);
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < period; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            sbuf[i] = (char)('A' + x % 58);
        }
        for (size_t off = period; off < sbuf_len; off += period) {
            memcpy(sbuf + off, sbuf, period);
        }
    }
    /* Page-aligned: a receive buffer that starts 8-24 bytes into a page
     * (where malloc puts a 256 KiB block) makes the kernel's copy out of
     * page-aligned TCP data 2-3x slower on the AMD EPYC VMs here (see
     * docs/NOTES-perf.md); the client must stay cheap. */
    rbuf = aligned_alloc(4096, RBUF_SIZE);
    conns = calloc((size_t)nconns, sizeof(*conns));
    if (sbuf == NULL || rbuf == NULL || conns == NULL) {
        fail("malloc");
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        fail("epoll_create1");
    }
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        if (mode == MODE_HTTP) {
            conns[i].hbuf = malloc(HBUF_SIZE);
            if (conns[i].hbuf == NULL) {
                fail("malloc");
            }
        }
        conn_open(&conns[i]);
    }

    struct epoll_event evs[512];
    double t0 = now();
    double t_start = t0 + warmup_s, t_end = t_start + duration_s;
    int timing = 0;
    uint64_t req0 = 0, bytes0 = 0;
    double u0 = 0, s0 = 0, w0 = 0;
    if (warmup_s == 0) {
        goto start_window;
    }
    for (;;) {
        double t = now();
        if (!timing && t >= t_start) {
        start_window:
            timing = 1;
            req0 = total_req;
            bytes0 = total_bytes;
            cpu_times(&u0, &s0);
            printf("START\n");
            fflush(stdout);
            w0 = t = now();
            t_end = w0 + duration_s;
        }
        if (timing && (t >= t_end ||
                       (req_limit && total_req - req0 >= req_limit))) {
            break;
        }
        if (live == 0) {
            break;
        }
        double left = (timing ? t_end : t_start) - t;
        int ms = (int)(left * 1000) + 1;
        int n = epoll_wait(epfd, evs, 512, ms);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->state != ST_FREE) {
                on_event(c, evs[i].events);
            }
        }
    }
    double w1 = now(), u1, s1;
    cpu_times(&u1, &s1);
    running = 0;
    uint64_t req = total_req - req0, bytes = total_bytes - bytes0;
    double secs = timing ? w1 - w0 : 0;
    double rps = secs > 0 ? req / secs : 0;
    double mibps = secs > 0 ? bytes / secs / (1024.0 * 1024.0) : 0;
    printf("RESULT requests=%llu bytes=%llu seconds=%.6f rps=%.1f mibps=%.3f "
           "errors=%llu user_s=%.4f sys_s=%.4f conns=%d total_requests=%llu\n",
           (unsigned long long)req, (unsigned long long)bytes, secs, rps,
           mibps, (unsigned long long)errors, u1 - u0, s1 - s0, live,
           (unsigned long long)total_req);
    fflush(stdout);
    fprintf(stderr,
            "loadgen: %.0f requests/s, %.2f MiB/s (%llu requests in %.2f s, "
            "%d connections, %llu errors)\n",
            rps, mibps, (unsigned long long)req, secs, live,
            (unsigned long long)errors);
    for (int i = 0; i < nconns; i++) {
        if (conns[i].fd >= 0) {
            close(conns[i].fd);
        }
    }
    return errors || req == 0 ? 1 : 0;
}
