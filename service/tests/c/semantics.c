/* Readiness and process semantics real servers rely on (issue 7), for service/tests/compat.rs.
 * Usage: semantics SELF_IP ECHO_IP ECHO_PORT (a line echo server on the Linux side). Prints
 * deterministic lines, compared between the kernel and `joyride run`; exits non-zero when a
 * CHECK fails.
 *
 *  nested   an epoll fd holding a socket, inside another epoll, poll() and select()
 *  mixed    one epoll set: a socket with a pipe, eventfd, timerfd, signalfd and AF_UNIX pair
 *  twosets  one socket in two epoll sets
 *  numbers  dup2 onto 1000 and select() on it; RLIMIT_NOFILE gives EMFILE
 *  handler  socket calls from inside a signal handler
 *  reuse    SO_REUSEPORT: two processes listen on one port, both get connections
 *  loop     127.0.0.1 and the host's own address reach a local listener
 *  udploop  UDP to 127.0.0.1 and to the host's own address: source addresses, and a closed
 *           port (ignored by an unconnected sender, ECONNREFUSED for a connected one)
 *  crash    a process killed holding connections: the peer sees FIN, or RST where data was
 *           left unread
 *  spawn    posix_spawn (vfork + exec): a socket passed as the child's stdout
 *  backlog  listen() with odd backlogs; how many connections a backlog of 2 completes */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"

static int listener(int *port, int reuseport) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l >= 0);
    int one = 1;
    CHECK(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    if (reuseport) CHECK(setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
    struct sockaddr_in a = addr("0.0.0.0", *port);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 64) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
    *port = ntohs(a.sin_port);
    return l;
}

static void drain(int s) {
    char b[256];
    CHECK(read(s, b, sizeof b) > 0);
}

/* Waits (up to 2 s) until the socket has bytes to read, without reading them. */
static void await_data(int s) {
    struct pollfd p = { .fd = s, .events = POLLIN };
    CHECK(poll(&p, 1, 2000) == 1);
}

static void nested(const char *echo_ip, int echo_port) {
    int s = dial(echo_ip, echo_port);
    int inner = epoll_create1(EPOLL_CLOEXEC), outer = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = { .events = EPOLLIN, .data.u64 = 7 };
    CHECK(epoll_ctl(inner, EPOLL_CTL_ADD, s, &e) == 0);
    e.data.u64 = 42;
    CHECK(epoll_ctl(outer, EPOLL_CTL_ADD, inner, &e) == 0);
    struct epoll_event got[4];
    printf("nested: outer before data %d\n", epoll_wait(outer, got, 4, 100));
    struct pollfd p = { .fd = inner, .events = POLLIN };
    printf("nested: poll(inner) before data %d\n", poll(&p, 1, 0));
    CHECK(write(s, "x\n", 2) == 2);
    int n = epoll_wait(outer, got, 4, 2000);
    printf("nested: outer after data %d data=%llu\n", n, n > 0 ? (unsigned long long)got[0].data.u64 : 0ULL);
    p.revents = 0;
    n = poll(&p, 1, 0);
    printf("nested: poll(inner) %d revents=%#x\n", n, p.revents);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(inner, &r);
    struct timeval tv = { 0, 0 };
    n = select(inner + 1, &r, NULL, NULL, &tv);
    printf("nested: select(inner) %d isset=%d\n", n, FD_ISSET(inner, &r) != 0);
    n = epoll_wait(inner, got, 4, 0);
    printf("nested: inner %d data=%llu\n", n, n > 0 ? (unsigned long long)got[0].data.u64 : 0ULL);
    drain(s);
    printf("nested: outer after read %d\n", epoll_wait(outer, got, 4, 50));
    close(outer);
    close(inner);
    close(s);
}

static void mixed(const char *echo_ip, int echo_port) {
    int s = dial(echo_ip, echo_port);
    int pp[2], up[2];
    CHECK(pipe(pp) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, up) == 0);
    int ev = eventfd(0, EFD_NONBLOCK);
    int tf = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    CHECK(sigprocmask(SIG_BLOCK, &m, NULL) == 0);
    int sf = signalfd(-1, &m, SFD_NONBLOCK);
    CHECK(ev >= 0 && tf >= 0 && sf >= 0);
    int ep = epoll_create1(0);
    int fds[6] = { s, pp[0], up[0], ev, tf, sf };
    const char *names[6] = { "socket", "pipe", "unix", "eventfd", "timerfd", "signalfd" };
    for (int i = 0; i < 6; i++) {
        struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };
        CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e) == 0);
    }
    struct epoll_event got[8];
    printf("mixed: nothing ready %d\n", epoll_wait(ep, got, 8, 50));
    CHECK(write(s, "y\n", 2) == 2);
    await_data(s);
    CHECK(write(pp[1], "p", 1) == 1);
    CHECK(write(up[1], "u", 1) == 1);
    uint64_t one = 1;
    CHECK(write(ev, &one, 8) == 8);
    struct itimerspec its = { .it_value = { 0, 1000000 } };
    CHECK(timerfd_settime(tf, 0, &its, NULL) == 0);
    usleep(20000);
    CHECK(kill(getpid(), SIGUSR1) == 0);
    int seen = 0;
    for (int tries = 0; tries < 20 && seen != 0x3f; tries++) {
        int n = epoll_wait(ep, got, 8, 100);
        for (int i = 0; i < n; i++) seen |= 1 << got[i].data.u32;
    }
    printf("mixed: ready:");
    for (int i = 0; i < 6; i++)
        if (seen & (1 << i)) printf(" %s", names[i]);
    printf("\n");
    /* Level-triggered: the socket stays ready until read; reading clears it. */
    drain(s);
    int n = epoll_wait(ep, got, 8, 0), sock_again = 0;
    for (int i = 0; i < n; i++) sock_again |= got[i].data.u32 == 0;
    printf("mixed: socket after read reported: %d\n", sock_again);
    struct signalfd_siginfo si;
    CHECK(read(sf, &si, sizeof si) == sizeof si); /* consume SIGUSR1 before unblocking it */
    close(ep);
    close(s);
    close(pp[0]); close(pp[1]); close(up[0]); close(up[1]); close(ev); close(tf); close(sf);
    CHECK(sigprocmask(SIG_UNBLOCK, &m, NULL) == 0);
}

static void twosets(const char *echo_ip, int echo_port) {
    int s = dial(echo_ip, echo_port);
    int a = epoll_create1(0), b = epoll_create1(0);
    struct epoll_event e = { .events = EPOLLIN, .data.u32 = 1 };
    CHECK(epoll_ctl(a, EPOLL_CTL_ADD, s, &e) == 0);
    e.events = EPOLLIN | EPOLLET;
    e.data.u32 = 2;
    CHECK(epoll_ctl(b, EPOLL_CTL_ADD, s, &e) == 0);
    CHECK(write(s, "z\n", 2) == 2);
    struct epoll_event got[2];
    int na = epoll_wait(a, got, 2, 2000);
    int nb = epoll_wait(b, got, 2, 2000);
    int nb2 = epoll_wait(b, got, 2, 50); /* edge-triggered: no second report */
    int na2 = epoll_wait(a, got, 2, 0);  /* level-triggered: still ready */
    printf("twosets: lt %d %d, et %d %d\n", na, na2, nb, nb2);
    CHECK(epoll_ctl(a, EPOLL_CTL_DEL, s, NULL) == 0);
    printf("twosets: after DEL from lt set: lt %d\n", epoll_wait(a, got, 2, 0));
    close(a);
    close(b);
    close(s);
}

static void numbers(const char *echo_ip, int echo_port) {
    int s = dial(echo_ip, echo_port);
    CHECK(dup2(s, 1000) == 1000);
    close(s);
    CHECK(write(1000, "n\n", 2) == 2);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(1000, &r);
    struct timeval tv = { 2, 0 };
    int n = select(1001, &r, NULL, NULL, &tv);
    printf("numbers: select on fd 1000: %d isset=%d\n", n, FD_ISSET(1000, &r) != 0);
    drain(1000);
    close(1000);
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    lim = old;
    lim.rlim_cur = 64;
    CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0);
    int made = 0, err = 0, fds[80];
    for (int i = 0; i < 80; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0) { err = errno; break; }
        CHECK(fds[i] < 64);
        made++;
    }
    printf("numbers: RLIMIT_NOFILE 64: stopped with %s\n", strerrorname_np(err));
    for (int i = 0; i < made; i++) close(fds[i]);
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
}

static int handler_sock = -1;
static volatile sig_atomic_t handler_ret = 0;
static void on_alarm(int sig) {
    (void)sig;
    int e = errno;
    handler_ret = send(handler_sock, "from handler\n", 13, MSG_NOSIGNAL);
    errno = e;
}

static void handler(const char *echo_ip, int echo_port) {
    handler_sock = dial(echo_ip, echo_port);
    struct sigaction sa = { .sa_handler = on_alarm };
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    alarm(1);
    /* Blocked in recv when the handler sends: the echo then ends the recv (EINTR or data). */
    char buf[64];
    ssize_t n;
    int eintr = 0;
    do {
        n = recv(handler_sock, buf, sizeof buf - 1, 0);
        if (n < 0 && errno == EINTR) eintr = 1;
    } while (n < 0 && errno == EINTR);
    CHECK(n > 0);
    buf[n] = 0;
    printf("handler: send from a handler returned %d, recv interrupted %d, got %s", (int)handler_ret, eintr, buf);
    signal(SIGALRM, SIG_DFL);
    close(handler_sock);
}

static void reuse(const char *self) {
    int port = 0;
    int first = listener(&port, 1);
    close(first); /* learn a free port, then let two processes share it */
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        CHECK(kids[i] >= 0);
        if (kids[i] == 0) {
            close(ready[0]);
            int p = port;
            int l = listener(&p, 1);
            CHECK(write(ready[1], "r", 1) == 1);
            int served = 0;
            for (;;) {
                int c = accept(l, NULL, NULL);
                CHECK(c >= 0);
                char b[8];
                int n = read(c, b, sizeof b);
                close(c);
                if (n == 1 && b[0] == 'q') break;
                served++;
                usleep(5000); /* a busy worker: the next connection is another's to take */
            }
            _exit(served > 0 ? 0 : 3);
        }
    }
    close(ready[1]);
    char b[2];
    CHECK(read(ready[0], b, 1) == 1 && read(ready[0], b, 1) == 1);
    for (int k = 0; k < 40; k++) {
        int c = dial(self, port);
        CHECK(write(c, "hi", 2) == 2);
        close(c);
    }
    /* One 'q' per listener: keep sending until both quit (a 'q' lands wherever the hash puts
     * it; a listener that quit no longer gets any). */
    int quit = 0;
    for (int k = 0; k < 200 && quit < 2; k++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = addr(self, port);
        if (connect(c, (struct sockaddr *)&a, sizeof a) == 0) {
            CHECK(write(c, "q", 1) == 1);
        }
        close(c);
        for (int i = 0; i < 2; i++) {
            int st;
            if (kids[i] > 0 && waitpid(kids[i], &st, WNOHANG) == kids[i]) {
                CHECK(WIFEXITED(st));
                if (WEXITSTATUS(st) == 0) quit++;
                else { printf("reuse: a listener got no connection\n"); quit = 9; }
                kids[i] = -1;
            }
        }
        usleep(10000);
    }
    printf("reuse: both SO_REUSEPORT listeners got connections: %s\n", quit == 2 ? "yes" : "no");
    for (int i = 0; i < 2; i++)
        if (kids[i] > 0) { kill(kids[i], SIGKILL); waitpid(kids[i], NULL, 0); }
    close(ready[0]);
}

static void loop(const char *self) {
    int port = 0;
    int l = listener(&port, 0);
    const char *to[2] = { "127.0.0.1", self };
    for (int i = 0; i < 2; i++) {
        int c = dial(to[i], port);
        int s = accept(l, NULL, NULL);
        CHECK(s >= 0);
        CHECK(write(c, "ping", 4) == 4);
        char b[8] = { 0 };
        CHECK(read(s, b, 4) == 4);
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        CHECK(getpeername(s, (struct sockaddr *)&peer, &pl) == 0);
        char ip[32];
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        printf("loop: to %s: got %s, peer is %s\n", i ? "own address" : "127.0.0.1", b, i ? (strcmp(ip, self) == 0 ? "own address" : ip) : ip);
        close(c);
        close(s);
    }
    close(l);
}

static const char *ip_name(struct sockaddr_in *a, const char *self) {
    static char ip[32];
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    return strcmp(ip, self) == 0 ? "own address" : ip;
}

static const char *res(ssize_t r, int e) {
    static char b[64];
    snprintf(b, sizeof b, "%zd %s", r, r < 0 ? strerrorname_np(e) : "-");
    return b;
}

static void udploop(const char *self) {
    const char *to[2] = { "127.0.0.1", self };
    for (int i = 0; i < 2; i++) {
        const char *what = i ? "own address" : "127.0.0.1";
        /* A server bound to the address, a wildcard client; both answer. */
        int srv = socket(AF_INET, SOCK_DGRAM, 0), cli = socket(AF_INET, SOCK_DGRAM, 0);
        CHECK(srv >= 0 && cli >= 0);
        struct sockaddr_in a = addr(to[i], 0), from;
        CHECK(bind(srv, (struct sockaddr *)&a, sizeof a) == 0);
        socklen_t al = sizeof a;
        CHECK(getsockname(srv, (struct sockaddr *)&a, &al) == 0);
        CHECK(sendto(cli, "ping", 4, 0, (struct sockaddr *)&a, sizeof a) == 4);
        char b[8] = { 0 };
        socklen_t fl = sizeof from;
        CHECK(recvfrom(srv, b, sizeof b, 0, (struct sockaddr *)&from, &fl) == 4);
        printf("udploop: to %s: got %s from %s", what, b, ip_name(&from, self));
        CHECK(sendto(srv, "pong", 4, 0, (struct sockaddr *)&from, fl) == 4);
        memset(b, 0, sizeof b);
        fl = sizeof from;
        CHECK(recvfrom(cli, b, sizeof b, 0, (struct sockaddr *)&from, &fl) == 4);
        printf(", answer %s from %s\n", b, ip_name(&from, self));
        /* The port closes: an unconnected sender ignores the port unreachable. */
        close(srv);
        struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
        CHECK(setsockopt(cli, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
        errno = 0;
        ssize_t r = sendto(cli, "x", 1, 0, (struct sockaddr *)&a, sizeof a);
        printf("udploop: to %s, closed port: unconnected send %s", what, res(r, errno));
        errno = 0;
        r = recv(cli, b, sizeof b, 0);
        printf(", recv %s\n", res(r, errno));
        /* A connected sender gets ECONNREFUSED (POLLERR), once. */
        CHECK(connect(cli, (struct sockaddr *)&a, sizeof a) == 0);
        errno = 0;
        r = send(cli, "x", 1, 0);
        printf("udploop: to %s, closed port: connected send %s", what, res(r, errno));
        struct pollfd pf = { .fd = cli, .events = POLLIN };
        int n = poll(&pf, 1, 1000);
        printf(", poll %d%s", n, pf.revents & POLLERR ? " POLLERR" : "");
        errno = 0;
        r = recv(cli, b, sizeof b, 0);
        printf(", recv %s", res(r, errno));
        errno = 0;
        r = recv(cli, b, sizeof b, 0);
        printf(", recv %s\n", res(r, errno));
        close(cli);
    }
}

static void crash(const char *self) {
    int port = 0;
    int l = listener(&port, 0);
    int sync[2];
    CHECK(pipe(sync) == 0);
    pid_t p = fork();
    CHECK(p >= 0);
    if (p == 0) {
        int quiet = dial(self, port), unread = dial(self, port);
        CHECK(write(sync[1], "c", 1) == 1);
        pause(); /* killed here, holding both */
        (void)quiet; (void)unread;
        _exit(0);
    }
    int a = accept(l, NULL, NULL), b = accept(l, NULL, NULL);
    CHECK(a >= 0 && b >= 0);
    char c;
    CHECK(read(sync[0], &c, 1) == 1);
    CHECK(write(b, "data the child never reads", 26) == 26); /* unread at the kill */
    usleep(100000);
    CHECK(kill(p, SIGKILL) == 0);
    CHECK(waitpid(p, NULL, 0) == p);
    char buf[8];
    struct pollfd pf[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
    for (int i = 0; i < 40 && (pf[0].revents == 0 || pf[1].revents == 0); i++) poll(pf, 2, 50);
    errno = 0;
    ssize_t ra = read(a, buf, sizeof buf);
    int ea = errno;
    errno = 0;
    ssize_t rb = read(b, buf, sizeof buf);
    int eb = errno;
    printf("crash: idle connection: read %zd %s; connection with unread data: read %zd %s\n",
           ra, ra < 0 ? strerrorname_np(ea) : "-", rb, rb < 0 ? strerrorname_np(eb) : "-");
    close(a); close(b); close(l); close(sync[0]); close(sync[1]);
}

static void spawn(const char *self, const char *echo_ip, int echo_port) {
    int s = dial(echo_ip, echo_port);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, s, 1);
    /* The child writes with write(2): stdio's own writes are glibc-internal calls that no
     * LD_PRELOAD shim sees (posix/README.md). */
    char *argv[] = { (char *)self, "--write-stdout", "spawned child writes to the socket", NULL };
    extern char **environ;
    pid_t p;
    CHECK(posix_spawn(&p, self, &fa, NULL, argv, environ) == 0);
    int st;
    CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char got[128];
    int n = 0;
    while (n < (int)sizeof got - 1) {
        ssize_t r = read(s, got + n, 1);
        if (r <= 0 || got[n] == '\n') break;
        n++;
    }
    got[n] = 0;
    printf("spawn: echoed back: %s\n", got);
    posix_spawn_file_actions_destroy(&fa);
    close(s);
}

static void backlog(const char *self) {
    int values[] = { 0, -1, 1, 100000 };
    for (int i = 0; i < 4; i++) {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = addr("0.0.0.0", 0);
        CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
        errno = 0;
        int r = listen(l, values[i]);
        printf("backlog: listen(%d) = %d %s\n", values[i], r, r < 0 ? strerrorname_np(errno) : "-");
        close(l);
    }
    /* Linux's accept queue holds backlog + 1; further SYNs are dropped (the client retries). */
    int port = 0;
    int l = listener(&port, 0);
    CHECK(listen(l, 2) == 0);
    int c[6], done = 0;
    for (int i = 0; i < 6; i++) {
        c[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = addr(self, port);
        int r = connect(c[i], (struct sockaddr *)&a, sizeof a);
        CHECK(r == 0 || errno == EINPROGRESS);
        usleep(20000);
    }
    usleep(300000);
    for (int i = 0; i < 6; i++) {
        struct pollfd p = { .fd = c[i], .events = POLLOUT };
        int err = 0;
        socklen_t el = sizeof err;
        if (poll(&p, 1, 0) == 1 && getsockopt(c[i], SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
            done++;
    }
    printf("backlog: listen(2), 6 connects, no accept: %d established within 0.4 s\n", done);
    for (int i = 0; i < 6; i++) close(c[i]);
    close(l);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "--write-stdout") == 0) {
        size_t n = strlen(argv[2]);
        return write(1, argv[2], n) == (ssize_t)n && write(1, "\n", 1) == 1 ? 0 : 1;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: semantics SELF_IP ECHO_IP ECHO_PORT\n");
        return 2;
    }
    int port = atoi(argv[3]);
    nested(argv[2], port);
    mixed(argv[2], port);
    twosets(argv[2], port);
    numbers(argv[2], port);
    handler(argv[2], port);
    reuse(argv[1]);
    loop(argv[1]);
    udploop(argv[1]);
    crash(argv[1]);
    spawn("/proc/self/exe", argv[2], port);
    backlog(argv[1]);
    printf("done\n");
    return 0;
}
