/* poll, select and epoll (LT, ET, ONESHOT, EPOLLOUT, RDHUP) over a socket and a pipe together. */
#include "t.h"

static int c, s, pp[2];

static void *late_send(void *arg) {
    (void)arg;
    usleep(100000);
    CHECK(send(c, "late", 4, 0) == 4);
    return NULL;
}

static void show_epoll(const char *label, int ep, int timeout) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, timeout);
    CHECK(n >= 0);
    /* report which members fired with which bits, order-independently */
    printf("%-24s n=%d", label, n);
    for (int who = 0; who < 2; who++)
        for (int i = 0; i < n; i++)
            if (ev[i].data.fd == (who == 0 ? s : pp[0])) printf(" %s=%#x", who == 0 ? "sock" : "pipe", ev[i].events);
    printf("\n");
}

int main(void) {
    pair(&c, &s);
    CHECK(pipe(pp) == 0);
    char b[64];

    struct pollfd p[2] = { { .fd = s, .events = POLLIN }, { .fd = pp[0], .events = POLLIN } };
    printf("poll idle: %d\n", poll(p, 2, 0));
    CHECK(write(pp[1], "p", 1) == 1);
    { int n = poll(p, 2, 1000); printf("poll pipe: %d sock=%#x pipe=%#x\n", n, p[0].revents, p[1].revents); }
    CHECK(send(c, "abc", 3, 0) == 3);
    wait_in(s);
    { int n = poll(p, 2, 1000); printf("poll both: %d sock=%#x pipe=%#x\n", n, p[0].revents, p[1].revents); }
    struct pollfd po = { .fd = s, .events = POLLOUT | POLLIN | POLLRDHUP };
    { int n = poll(&po, 1, 0); printf("poll out: %d %#x\n", n, po.revents); }

    fd_set r, w; FD_ZERO(&r); FD_ZERO(&w);
    FD_SET(s, &r); FD_SET(pp[0], &r); FD_SET(c, &w);
    struct timeval tv = { 1, 0 };
    int mx = s > pp[0] ? s : pp[0]; if (c > mx) mx = c;
    { int n = select(mx + 1, &r, &w, NULL, &tv); printf("select: %d r.sock=%d r.pipe=%d w.c=%d\n", n, FD_ISSET(s, &r), FD_ISSET(pp[0], &r), FD_ISSET(c, &w)); }

    /* level-triggered: reported while readable */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = s };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
    ev.data.fd = pp[0];
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &ev) == 0);
    show_epoll("LT first", ep, 1000);
    show_epoll("LT again", ep, 0);
    CHECK(read(pp[0], b, 1) == 1 && recv(s, b, sizeof b, 0) == 3);
    show_epoll("LT drained", ep, 0);
    close(ep);

    /* edge-triggered */
    ep = epoll_create1(0);
    ev.events = EPOLLIN | EPOLLET; ev.data.fd = s;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
    ev.data.fd = pp[0];
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &ev) == 0);
    show_epoll("ET nothing", ep, 0);
    CHECK(send(c, "12", 2, 0) == 2);
    CHECK(write(pp[1], "q", 1) == 1);
    wait_in(s);
    show_epoll("ET edge", ep, 1000);
    show_epoll("ET no new edge", ep, 0);
    CHECK(send(c, "34", 2, 0) == 2);
    usleep(20000);
    show_epoll("ET more data", ep, 1000);
    CHECK(recv(s, b, sizeof b, 0) == 4 && read(pp[0], b, 1) == 1);
    show_epoll("ET drained", ep, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, late_send, NULL) == 0);
    double t0 = now_ms();
    show_epoll("ET blocking wait", ep, 3000);
    printf("woke before timeout: %d\n", now_ms() - t0 < 2500);
    pthread_join(t, NULL);
    CHECK(recv(s, b, sizeof b, 0) == 4);
    close(ep);

    /* oneshot, re-armed by MOD */
    ep = epoll_create1(0);
    ev.events = EPOLLIN | EPOLLONESHOT; ev.data.fd = s;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
    CHECK(send(c, "x", 1, 0) == 1);
    show_epoll("ONESHOT first", ep, 1000);
    show_epoll("ONESHOT disarmed", ep, 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) == 0);
    show_epoll("ONESHOT rearmed", ep, 0);
    CHECK(recv(s, b, sizeof b, 0) == 1);
    ev.events = EPOLLOUT; 
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) == 0);
    show_epoll("EPOLLOUT", ep, 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL) == 0);
    show_epoll("after DEL", ep, 0);

    /* peer closes: readable, RDHUP, recv 0 */
    ev.events = EPOLLIN | EPOLLRDHUP; ev.data.fd = s;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
    close(c);
    show_epoll("peer closed", ep, 1000);
    struct pollfd pr = { .fd = s, .events = POLLIN | POLLRDHUP };
    { int n = poll(&pr, 1, 1000); printf("poll peer closed: %d %#x\n", n, pr.revents); }
    printf("recv at EOF: %zd\n", recv(s, b, sizeof b, 0));
    /* a socket closed while in the set disappears from it */
    close(s);
    show_epoll("member closed", ep, 0);
    double t1 = now_ms();
    printf("poll timeout: %d\n", poll(p + 1, 1, 50));
    printf("timeout honoured: %d\n", now_ms() - t1 >= 45);
    return 0;
}
