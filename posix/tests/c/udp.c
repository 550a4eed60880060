/* UDP: sendto/recvfrom with source addresses, connect + send/recv, truncation (MSG_TRUNC),
 * FIONREAD, poll, sendmsg/recvmsg, errors. */
#include "t.h"

static int bound(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(u >= 0);
    struct sockaddr_in a = loopback(0);
    CHECK(bind(u, (struct sockaddr *)&a, sizeof a) == 0);
    return u;
}

int main(void) {
    int a = bound(), b = bound();
    struct sockaddr_in to = loopback(port_of(b)), from;
    socklen_t fl = sizeof from;
    char buf[64];
    P("sendto", sendto(a, "hello", 5, 0, (struct sockaddr *)&to, sizeof to));
    wait_in(b);
    int q = -1;
    P("FIONREAD", ioctl(b, FIONREAD, &q));
    printf("  next datagram=%d\n", q);
    P("recvfrom", recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl));
    printf("  from right port=%d len=%u data=%.5s\n", ntohs(from.sin_port) == port_of(a), fl, buf);
    P("recvfrom empty", recvfrom(b, buf, sizeof buf, MSG_DONTWAIT, NULL, NULL));

    struct sockaddr_in ta = loopback(port_of(a));
    P("connect", connect(b, (struct sockaddr *)&ta, sizeof ta));
    P("send connected", send(b, "0123456789", 10, 0));
    wait_in(a);
    P("recv truncated", recv(a, buf, 4, 0));
    P("send again", send(b, "0123456789", 10, 0));
    wait_in(a);
    P("recv MSG_TRUNC", recv(a, buf, 4, MSG_TRUNC));
    P("send third", send(b, "abcdef", 6, 0));
    wait_in(a);
    struct iovec v[2] = { { buf, 2 }, { buf + 2, 2 } };
    struct sockaddr_in mf; 
    struct msghdr m = { .msg_name = &mf, .msg_namelen = sizeof mf, .msg_iov = v, .msg_iovlen = 2 };
    P("recvmsg short", recvmsg(a, &m, 0));
    printf("  flags MSG_TRUNC=%d namelen=%u data=%.4s\n", !!(m.msg_flags & MSG_TRUNC), m.msg_namelen, buf);
    P("recv peek", (send(b, "xy", 2, 0), wait_in(a), recv(a, buf, sizeof buf, MSG_PEEK)));
    P("recv after peek", recv(a, buf, sizeof buf, 0));
    struct iovec sv = { "msg", 3 };
    struct msghdr sm = { .msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &sv, .msg_iovlen = 1 };
    P("sendmsg to b", sendmsg(a, &sm, 0));
    wait_in(b); /* delivery through a service is asynchronous; the kernel's loopback is not */
    struct pollfd p = { .fd = b, .events = POLLIN | POLLOUT };
    { int n = poll(&p, 1, 1000); printf("poll: %d %#x\n", n, p.revents); }
    P("recv on b", recv(b, buf, sizeof buf, 0));
    static char huge[70000];
    P("sendto too big", sendto(a, huge, sizeof huge, 0, (struct sockaddr *)&to, sizeof to));
    int tcp_only = 1;
    P("TCP_NODELAY on udp", setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &tcp_only, sizeof tcp_only));
    close(a); close(b);
    return 0;
}
