/* socket/bind/listen/connect/accept, 1 MiB each way through write/send/writev/sendmsg and
 * read/recv/readv/recvmsg, MSG_PEEK, MSG_WAITALL, FIONREAD, options, names, half-close. */
#include "t.h"

#define TOTAL (1 << 20)
static int cfd, sfd;

static unsigned char pat(size_t i) { return (unsigned char)(i * 31 ^ i >> 8); }

static void *writer(void *arg) {
    (void)arg;
    static unsigned char buf[TOTAL];
    for (size_t i = 0; i < TOTAL; i++) buf[i] = pat(i);
    size_t off = 0;
    int k = 0;
    while (off < TOTAL) {
        size_t n = TOTAL - off < 7000 ? TOTAL - off : 7000;
        ssize_t w;
        switch (k++ % 4) {
        case 0: w = write(cfd, buf + off, n); break;
        case 1: w = send(cfd, buf + off, n, MSG_NOSIGNAL); break;
        case 2: {
            struct iovec v[2] = { { buf + off, n / 2 }, { buf + off + n / 2, n - n / 2 } };
            w = writev(cfd, v, 2);
            break;
        }
        default: {
            struct iovec v = { buf + off, n };
            struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
            w = sendmsg(cfd, &m, 0);
        }
        }
        CHECK(w > 0);
        off += (size_t)w;
    }
    return NULL;
}

struct ctx { int fd; unsigned char *p; size_t n, off; };
static void *rest(void *x) {
    struct ctx *c = x;
    while (c->off < c->n) { ssize_t w = send(c->fd, c->p + c->off, c->n - c->off, 0); CHECK(w > 0); c->off += (size_t)w; }
    return NULL;
}

int main(void) {
    int port, l = listener(&port);
    int v; socklen_t vl = sizeof v;
    CHECK(getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) == 0 && v == 1);
    cfd = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(cfd >= 0);
    struct sockaddr_in a = loopback(port), peer; socklen_t pl = sizeof peer;
    CHECK(connect(cfd, (struct sockaddr *)&a, sizeof a) == 0);
    sfd = accept4(l, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
    CHECK(sfd >= 0);
    CHECK(pl == sizeof peer && peer.sin_family == AF_INET && peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    CHECK(ntohs(peer.sin_port) == port_of(cfd));
    CHECK(fcntl(sfd, F_GETFD) == FD_CLOEXEC);
    struct sockaddr_in pn; socklen_t pnl = sizeof pn;
    CHECK(getpeername(cfd, (struct sockaddr *)&pn, &pnl) == 0 && ntohs(pn.sin_port) == port);

    /* options */
    int one = 1;
    CHECK(setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    vl = sizeof v;
    CHECK(getsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0 && v == 1 && vl == 4);
    CHECK(setsockopt(cfd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) == 0);
    vl = sizeof v;
    CHECK(getsockopt(cfd, SOL_SOCKET, SO_KEEPALIVE, &v, &vl) == 0 && v == 1);
    vl = sizeof v;
    CHECK(getsockopt(cfd, SOL_SOCKET, SO_TYPE, &v, &vl) == 0 && v == SOCK_STREAM);
    struct tcp_info ti; socklen_t til = sizeof ti;
    CHECK(getsockopt(sfd, IPPROTO_TCP, TCP_INFO, &ti, &til) == 0 && ti.tcpi_state == 1 /* ESTABLISHED */);
    struct linger lg = { 1, 5 }; socklen_t lgl = sizeof lg;
    CHECK(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    memset(&lg, 0, sizeof lg);
    CHECK(getsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, &lgl) == 0 && lg.l_onoff == 1 && lg.l_linger == 5);
    lg.l_onoff = 0;
    CHECK(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);

    /* peek, FIONREAD */
    CHECK(send(cfd, "hello", 5, 0) == 5);
    wait_in(sfd);
    char b[16];
    while (1) { int q = 0; CHECK(ioctl(sfd, FIONREAD, &q) == 0); if (q == 5) break; usleep(1000); }
    CHECK(recv(sfd, b, sizeof b, MSG_PEEK) == 5 && memcmp(b, "hello", 5) == 0);
    CHECK(recv(sfd, b, sizeof b, 0) == 5 && memcmp(b, "hello", 5) == 0);

    /* 1 MiB client -> server with a writer thread */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, writer, NULL) == 0);
    static unsigned char in[65536];
    size_t got = 0;
    int k = 0;
    while (got < TOTAL) {
        ssize_t r;
        switch (k++ % 4) {
        case 0: r = read(sfd, in, sizeof in); break;
        case 1: r = recv(sfd, in, 5000, 0); break;
        case 2: {
            struct iovec v2[2] = { { in, 100 }, { in + 100, 9000 } };
            r = readv(sfd, v2, 2);
            break;
        }
        default: {
            struct iovec v2 = { in, sizeof in };
            struct msghdr m = { .msg_iov = &v2, .msg_iovlen = 1 };
            r = recvmsg(sfd, &m, 0);
        }
        }
        CHECK(r > 0);
        for (ssize_t i = 0; i < r; i++) CHECK(in[i] == pat(got + (size_t)i));
        got += (size_t)r;
    }
    pthread_join(t, NULL);

    /* 200 KB server -> client, read with MSG_WAITALL in one call */
    static unsigned char big[200000], back[200000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = pat(i + 7);
    size_t off = 0;
    while (off < sizeof big) {
        /* the writer alternates with the reader only through the rings: send in pieces */
        ssize_t w = send(sfd, big + off, sizeof big - off, MSG_DONTWAIT);
        if (w < 0) { CHECK(errno == EAGAIN); break; }
        off += (size_t)w;
    }
    pthread_t t2;
    struct ctx cx = { sfd, big, sizeof big, off };
    CHECK(pthread_create(&t2, NULL, rest, &cx) == 0);
    CHECK(recv(cfd, back, sizeof back, MSG_WAITALL) == (ssize_t)sizeof back);
    CHECK(memcmp(big, back, sizeof big) == 0);
    pthread_join(t2, NULL);

    /* half-close: client SHUT_WR -> server reads EOF, can still send */
    CHECK(shutdown(cfd, SHUT_WR) == 0);
    CHECK(recv(sfd, b, sizeof b, 0) == 0);
    CHECK(send(sfd, "bye", 3, 0) == 3);
    wait_in(cfd);
    CHECK(recv(cfd, b, sizeof b, 0) == 3 && memcmp(b, "bye", 3) == 0);
    CHECK(close(sfd) == 0);
    CHECK(recv(cfd, b, sizeof b, 0) == 0);
    CHECK(close(cfd) == 0 && close(l) == 0);
    printf("ok %d bytes\n", TOTAL + (int)sizeof big);
    return 0;
}
