/* recv_align: how much the page offset of a receive buffer costs.
 *
 *   cc -O2 -o /tmp/recv_align bench/netlib/recv_align.c
 *   taskset -c 1 /tmp/recv_align [SIZE [ITERATIONS]]
 *
 * One process, one loopback TCP connection: send SIZE bytes (default
 * 64 KiB), recv them into a buffer that starts OFFSET bytes into a page,
 * repeat; prints the process CPU time per message for each OFFSET.  On the
 * AMD EPYC VMs here a buffer 8-24 bytes into a page makes the kernel's copy
 * (_copy_to_iter, `rep movsb`) 2-3x slower, which is where a 256 KiB
 * malloc() puts its block (mmap'd chunk + 16).  See docs/NOTES-perf.md.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double
cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
    size_t msg = argc > 1 ? (size_t)atol(argv[1]) : 65536;
    long dflt = 655360000L / (long)(msg ? msg : 1);
    int iters = argc > 2 ? atoi(argv[2]) : (int)(dflt < 2000 ? 2000 : dflt > 200000 ? 200000 : dflt);
    int offs[] = {0, 8, 16, 24, 32, 48, 64, 256, 2048, 4080};
    int noffs = sizeof(offs) / sizeof(offs[0]);
    struct sockaddr_in a = {0};
    socklen_t al = sizeof(a);
    int one = 1;

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (void *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (void *)&a, &al) < 0) {
        perror("listen");
        return 1;
    }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (void *)&a, sizeof(a)) < 0) {
        perror("connect");
        return 1;
    }
    int s = accept(l, NULL, NULL);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    size_t cap = 256 * 1024;
    char *region = mmap(NULL, cap + 8192, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *src = aligned_alloc(4096, (msg + 4095) / 4096 * 4096);
    if (region == MAP_FAILED || src == NULL) {
        perror("alloc");
        return 1;
    }
    memset(region, 1, cap + 8192);
    memset(src, 7, msg);
    printf("%zu-byte messages, %d per offset: CPU us per message (send + recv)\n",
           msg, iters);
    for (int k = 0; k < noffs; k++) {
        char *dst = region + 4096 + offs[k];
        size_t got = 0, want = 0;
        double c0 = cpu();
        for (int i = 0; i < iters; i++) {
            size_t sent = 0;
            while (sent < msg) {
                ssize_t n = send(c, src + sent, msg - sent, 0);
                if (n < 0) {
                    perror("send");
                    return 1;
                }
                sent += (size_t)n;
                want += (size_t)n;
                while (got < want) {
                    ssize_t r = recv(s, dst, cap, MSG_DONTWAIT);
                    if (r <= 0) {
                        break;
                    }
                    got += (size_t)r;
                }
            }
        }
        while (got < want) {
            ssize_t r = recv(s, dst, cap, 0);
            if (r <= 0) {
                break;
            }
            got += (size_t)r;
        }
        printf("  receive buffer at page offset %4d: %7.2f\n", offs[k],
               (cpu() - c0) / iters * 1e6);
    }
    return 0;
}
