/* Shared helpers for the posix test programs. Each program prints deterministic lines (no port
 * numbers, no timings) so its output under the kernel and under libjoyride.so can be compared,
 * and exits non-zero when a CHECK fails. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK failed: %s (errno %s)\n", __FILE__, __LINE__, #c, strerrorname_np(errno)); exit(1); } } while (0)
/* Print a call's result and errno name. */
#define P(label, expr) do { errno = 0; long _r = (long)(expr); printf("%-28s %ld %s\n", label, _r, _r < 0 ? strerrorname_np(errno) : "-"); fflush(stdout); } while (0)

static inline struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    return a;
}

static inline int port_of(int fd) {
    struct sockaddr_in a; socklen_t l = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
    return ntohs(a.sin_port);
}

static inline int listener(int *port) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l >= 0);
    int one = 1;
    CHECK(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    struct sockaddr_in a = loopback(0);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 16) == 0);
    *port = port_of(l);
    return l;
}

/* A connected TCP pair over loopback: *c is the connecting end, *s the accepted one. */
static inline void pair(int *c, int *s) {
    int port, l = listener(&port);
    *c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(*c >= 0);
    struct sockaddr_in a = loopback(port);
    CHECK(connect(*c, (struct sockaddr *)&a, sizeof a) == 0);
    *s = accept(l, NULL, NULL);
    CHECK(*s >= 0);
    close(l);
}

static inline double now_ms(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Waits (poll, 2 s) until fd is readable. */
static inline void wait_in(int fd) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    CHECK(poll(&p, 1, 2000) == 1);
}
