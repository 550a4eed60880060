/* errno for bad arguments and wrong states, printed line by line (compared with the kernel). */
#include "t.h"

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    char buf[8];
    int one = 1;
    P("socket bad protocol", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
    P("socket dgram bad protocol", socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP));
    /* Another AF_INET protocol is the kernel's (on Joyride too): a working socket. */
    int lite = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
    P("socket udplite", lite < 0 ? -1 : 0);
    int lproto = 0; socklen_t lpl = sizeof lproto;
    if (lite >= 0) getsockopt(lite, SOL_SOCKET, SO_PROTOCOL, &lproto, &lpl);
    P("  SO_PROTOCOL", lite < 0 ? IPPROTO_UDPLITE : lproto);
    close(lite);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s >= 0);
    struct sockaddr_in a = loopback(0);
    P("bind NULL", bind(s, NULL, sizeof a));
    P("bind short", bind(s, (struct sockaddr *)&a, 3));
    P("bind huge len", bind(s, (struct sockaddr *)&a, 4096));
    struct sockaddr_in a6 = a; a6.sin_family = AF_INET6;
    P("bind wrong family", bind(s, (struct sockaddr *)&a6, sizeof a6));
    P("recv unconnected", recv(s, buf, 1, 0));
    P("send unconnected", send(s, "x", 1, 0));
    struct sockaddr_in n; socklen_t nl = sizeof n;
    P("getpeername unconnected", getpeername(s, (struct sockaddr *)&n, &nl));
    P("getsockname NULL", getsockname(s, NULL, &nl));
    P("getsockname NULL len", getsockname(s, (struct sockaddr *)&n, NULL));
    P("accept not listening", accept(s, NULL, NULL));
    P("shutdown unconnected", shutdown(s, SHUT_RD));
    P("shutdown bad how", shutdown(s, 7));
    P("setsockopt bad level", setsockopt(s, 999, 1, &one, sizeof one));
    P("setsockopt rcvtimeo short", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &one, sizeof one));
    struct timeval bad = { 0, 2000000 };
    P("setsockopt rcvtimeo usec", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &bad, sizeof bad));
    P("setsockopt NULL value", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, NULL, 4));
    int v = -1; socklen_t vl = sizeof v;
    P("getsockopt SO_TYPE", getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &vl));
    printf("  SO_TYPE=%d len=%u\n", v, vl);
    vl = sizeof v;
    P("getsockopt SO_ERROR", getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &vl));
    printf("  SO_ERROR=%d\n", v);
    vl = sizeof v;
    P("getsockopt SO_ACCEPTCONN", getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl));
    printf("  SO_ACCEPTCONN=%d\n", v);
    vl = sizeof v;
    P("getsockopt REUSEADDR", getsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, &vl));
    printf("  SO_REUSEADDR=%d\n", v);

    /* a closed port */
    int tmp = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(bind(tmp, (struct sockaddr *)&a, sizeof a) == 0);
    int dead = port_of(tmp);
    close(tmp);
    struct sockaddr_in d = loopback(dead);
    P("connect refused", connect(s, (struct sockaddr *)&d, sizeof d));
    close(s);

    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    P("F_GETFL nonblock", fcntl(nb, F_GETFL) & (O_NONBLOCK | O_ACCMODE));
    int r = connect(nb, (struct sockaddr *)&d, sizeof d);
    if (r < 0 && errno == EINPROGRESS) {
        struct pollfd p = { .fd = nb, .events = POLLOUT };
        CHECK(poll(&p, 1, 2000) == 1);
        printf("nonblocking connect: pollout=%d pollerr=%d\n", !!(p.revents & POLLOUT), !!(p.revents & POLLERR));
    } else {
        printf("nonblocking connect: %d %s\n", r, strerrorname_np(errno));
    }
    vl = sizeof v;
    P("SO_ERROR after refused", getsockopt(nb, SOL_SOCKET, SO_ERROR, &v, &vl));
    printf("  SO_ERROR=%s\n", v ? strerrorname_np(v) : "0");
    vl = sizeof v;
    getsockopt(nb, SOL_SOCKET, SO_ERROR, &v, &vl);
    printf("  SO_ERROR again=%d\n", v);
    int off = 0;
    P("FIONBIO off", ioctl(nb, FIONBIO, &off));
    P("F_GETFL blocking", fcntl(nb, F_GETFL) & (O_NONBLOCK | O_ACCMODE));
    P("F_SETFL nonblock", fcntl(nb, F_SETFL, O_NONBLOCK));
    P("F_GETFL again", fcntl(nb, F_GETFL) & (O_NONBLOCK | O_ACCMODE));
    P("F_GETFD no cloexec", fcntl(nb, F_GETFD));
    P("F_SETFD cloexec", fcntl(nb, F_SETFD, FD_CLOEXEC));
    P("F_GETFD cloexec", fcntl(nb, F_GETFD));
    close(nb);

    /* addresses in use, double bind, listen on UDP */
    int port, l = listener(&port);
    int s2 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in lp = loopback(port);
    P("bind in use", bind(s2, (struct sockaddr *)&lp, sizeof lp));
    P("bind any port", bind(s2, (struct sockaddr *)&a, sizeof a));
    P("bind twice", bind(s2, (struct sockaddr *)&a, sizeof a));
    close(s2);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    P("listen udp", listen(u, 1));
    P("accept udp", accept(u, NULL, NULL));
    P("sendto udp no dest", sendto(u, "x", 1, 0, NULL, 0));
    close(u);

    /* connected socket: dontwait, timeouts, FIONREAD */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&lp, sizeof lp) == 0);
    int sv = accept(l, NULL, NULL);
    P("recv DONTWAIT empty", recv(c, buf, sizeof buf, MSG_DONTWAIT));
    int q = -1;
    P("FIONREAD empty", ioctl(c, FIONREAD, &q));
    printf("  FIONREAD=%d\n", q);
    P("FIONREAD listener", ioctl(l, FIONREAD, &q));
    P("ioctl TCGETS", ioctl(c, 0x5401, &q));
    struct timeval tv = { 0, 100000 };
    P("set SO_RCVTIMEO", setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    struct timeval tv2; socklen_t tl = sizeof tv2;
    P("get SO_RCVTIMEO", getsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv2, &tl));
    printf("  rcvtimeo=%ld.%06ld len=%u\n", (long)tv2.tv_sec, (long)tv2.tv_usec, tl);
    double t0 = now_ms();
    P("recv times out", recv(c, buf, sizeof buf, 0));
    double dt = now_ms() - t0;
    printf("  waited about the timeout: %d\n", dt >= 90 && dt < 1000);
    P("recv NULL buffer", recv(c, NULL, 4, MSG_DONTWAIT));
    P("send NULL buffer", send(c, NULL, 4, 0));
    P("recv OOB", recv(c, buf, 1, MSG_OOB));

    /* bad fds */
    P("recv -1", recv(-1, buf, 1, 0));
    P("recv closed fd", recv(9999, buf, 1, 0));
    int pp[2];
    CHECK(pipe(pp) == 0);
    P("recv pipe", recv(pp[0], buf, 1, MSG_DONTWAIT));
    P("getsockopt pipe", getsockopt(pp[0], SOL_SOCKET, SO_TYPE, &v, &vl));

    /* epoll errors on a socket */
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = c };
    P("epoll add", epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
    P("epoll add again", epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
    P("epoll mod absent", epoll_ctl(ep, EPOLL_CTL_MOD, sv, &ev));
    P("epoll del absent", epoll_ctl(ep, EPOLL_CTL_DEL, sv, NULL));
    P("epoll add NULL event", epoll_ctl(ep, EPOLL_CTL_ADD, sv, NULL));
    P("epoll_ctl on non-epoll", epoll_ctl(pp[0], EPOLL_CTL_ADD, c, &ev));
    P("epoll del", epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL));
    struct epoll_event out[2];
    P("epoll_wait maxevents 0", epoll_wait(ep, out, 0, 0));

    close(c);
    P("recv after close", recv(c, buf, 1, 0));
    P("close twice", close(c));
    close(sv); close(l); close(ep); close(pp[0]); close(pp[1]);
    return 0;
}
