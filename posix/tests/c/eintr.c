/* Signals: a blocking recv interrupted by a handler without SA_RESTART fails with EINTR; with
 * SA_RESTART it is restarted and completes; SO_RCVTIMEO makes it EINTR even with SA_RESTART. */
#include "t.h"

static volatile sig_atomic_t hits;
static void on_alarm(int sig) { (void)sig; hits++; }
static int c, s;

static void arm(int restart) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = restart ? SA_RESTART : 0;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    struct itimerval it = { { 0, 0 }, { 0, 100000 } };
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

static void *late(void *arg) { (void)arg; usleep(400000); CHECK(send(s, "ok", 2, 0) == 2); return NULL; }

int main(void) {
    pair(&c, &s);
    char b[8];
    arm(0);
    P("recv, no SA_RESTART", recv(c, b, sizeof b, 0));
    printf("handler ran: %d\n", hits);
    arm(0);
    int port, l = listener(&port);
    P("accept, no SA_RESTART", accept(l, NULL, NULL));
    arm(1);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, late, NULL) == 0);
    P("recv, SA_RESTART", recv(c, b, sizeof b, 0));
    printf("handler ran: %d\n", hits);
    pthread_join(t, NULL);
    struct timeval tv = { 5, 0 };
    CHECK(setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    arm(1);
    P("recv, SA_RESTART + timeout", recv(c, b, sizeof b, 0));
    arm(0);
    struct pollfd p = { .fd = c, .events = POLLIN };
    P("poll", poll(&p, 1, 5000));
    arm(0);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = c }, out;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) == 0);
    P("epoll_wait", epoll_wait(ep, &out, 1, 5000));
    printf("handler ran: %d\n", hits);
    return 0;
}
