/* 64-byte TCP ping-pong between two threads of one process; prints the median and p99 round
 * trip in microseconds. Not a correctness test (its numbers differ by stack): run by the
 * ignored test `pingpong_latency`. */
#include "t.h"

#define N 20000
static int c, s;
static double rtt[N];

static void *echo(void *arg) {
    (void)arg;
    char b[64];
    for (int i = 0; i < N; i++) {
        CHECK(recv(s, b, 64, MSG_WAITALL) == 64);
        CHECK(send(s, b, 64, 0) == 64);
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void) {
    pair(&c, &s);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, echo, NULL) == 0);
    char b[64] = { 0 };
    for (int i = 0; i < N; i++) {
        double t0 = now_ms();
        CHECK(send(c, b, 64, 0) == 64);
        CHECK(recv(c, b, 64, MSG_WAITALL) == 64);
        rtt[i] = (now_ms() - t0) * 1000.0;
    }
    pthread_join(t, NULL);
    qsort(rtt, N, sizeof rtt[0], cmp);
    printf("rtt_us p50=%.1f p99=%.1f\n", rtt[N / 2], rtt[N * 99 / 100]);
    return 0;
}
