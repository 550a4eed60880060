/* fork and Joyride sockets (issue 7), for service/tests/compat.rs. Usage: fork SELF_IP ECHO_IP
 * ECHO_PORT, where ECHO_IP:ECHO_PORT is a line echo server on the Linux side and SELF_IP is the
 * address this program's own stack owns. Prints deterministic lines (no pids, ports or times),
 * so the run on the kernel and the run under `joyride run` can be compared line for line;
 * exits non-zero when a CHECK fails.
 *
 *  A  pre-fork server: a listener made before fork, two workers accepting on it (each serves
 *     three connections and exits), the parent as client; after both workers exited the
 *     parent's own copy of the listener still accepts;
 *  B  hand-off: the parent connects, forks, closes its copy at once; the child talks on it;
 *  C  a child that exits without closing leaves the parent's connection working;
 *  D  daemon(): the daemonised grandchild uses a connection made before it, reports on a pipe;
 *  E  fork + exec: a socket marked FD_CLOEXEC is gone in the exec'd image, one without it
 *     works there (and still in the parent afterwards). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"

/* Reads one line (without the newline) into buf. */
static int read_line(int s, char *buf, int cap) {
    int n = 0;
    while (n < cap - 1) {
        char c;
        ssize_t r = read(s, &c, 1);
        if (r <= 0) break;
        if (c == '\n') break;
        buf[n++] = c;
    }
    buf[n] = 0;
    return n;
}

static void say(int s, const char *line) {
    size_t n = strlen(line);
    CHECK(write(s, line, n) == (ssize_t)n);
}

/* Sends `line`, expects it echoed. */
static void echo_check(int s, const char *line) {
    char want[128], got[128];
    snprintf(want, sizeof want, "%s\n", line);
    say(s, want);
    read_line(s, got, sizeof got);
    CHECK(strcmp(got, line) == 0);
}

static int wait_ok(pid_t p) {
    int st;
    CHECK(waitpid(p, &st, 0) == p);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void prefork(const char *self) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l >= 0);
    int one = 1;
    CHECK(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    struct sockaddr_in a = addr("0.0.0.0", 0);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 16) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
    int port = ntohs(a.sin_port);
    pid_t w[2];
    for (int i = 0; i < 2; i++) {
        w[i] = fork();
        CHECK(w[i] >= 0);
        if (w[i] == 0) {
            for (int k = 0; k < 3; k++) {
                int c = accept(l, NULL, NULL);
                CHECK(c >= 0);
                char line[64], out[96];
                read_line(c, line, sizeof line);
                snprintf(out, sizeof out, "%s from worker %d\n", line, i);
                say(c, out);
                close(c);
            }
            _exit(0);
        }
    }
    int served[2] = { 0, 0 };
    for (int k = 0; k < 6; k++) {
        int c = dial(self, port);
        say(c, "hello\n");
        char line[96];
        read_line(c, line, sizeof line);
        int who = -1;
        CHECK(sscanf(line, "hello from worker %d", &who) == 1 && (who == 0 || who == 1));
        served[who]++;
        close(c);
    }
    printf("A workers served %d and %d connections\n", served[0], served[1]);
    CHECK(wait_ok(w[0]) && wait_ok(w[1]));
    /* Both workers exited: the parent's listener is untouched. */
    int c = dial(self, port);
    int s = accept(l, NULL, NULL);
    CHECK(s >= 0);
    say(c, "still listening\n");
    char line[64];
    read_line(s, line, sizeof line);
    printf("A parent after the workers exited: %s\n", line);
    close(s);
    close(c);
    close(l);
}

static void handoff(const char *echo_ip, int echo_port) {
    int s = dial(echo_ip, echo_port);
    pid_t p = fork();
    CHECK(p >= 0);
    if (p == 0) {
        usleep(100 * 1000); /* let the parent's close land first */
        for (int i = 0; i < 100; i++) {
            char line[32];
            snprintf(line, sizeof line, "child line %d", i);
            echo_check(s, line);
        }
        close(s);
        _exit(0);
    }
    close(s);
    printf("B child served the connection the parent closed: %s\n", wait_ok(p) ? "yes" : "no");
}

static void child_exit(const char *echo_ip, int echo_port) {
    int s = dial(echo_ip, echo_port);
    echo_check(s, "before fork");
    pid_t p = fork();
    CHECK(p >= 0);
    if (p == 0) _exit(0); /* exits holding the socket */
    CHECK(wait_ok(p));
    usleep(200 * 1000); /* the service notices the exit */
    echo_check(s, "after the child exited");
    printf("C parent's connection survives the child's exit: yes\n");
    close(s);
}

static void daemonised(const char *echo_ip, int echo_port) {
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    int s = dial(echo_ip, echo_port);
    pid_t p = fork();
    CHECK(p >= 0);
    if (p == 0) {
        close(pipefd[0]);
        CHECK(daemon(1, 1) == 0); /* the child exits here; the grandchild goes on */
        echo_check(s, "from the daemon");
        say(pipefd[1], "ok");
        _exit(0);
    }
    close(pipefd[1]);
    close(s);
    CHECK(wait_ok(p));
    char buf[8] = { 0 };
    ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
    printf("D daemon used the inherited connection: %s\n", n == 2 ? buf : "no");
    close(pipefd[0]);
}

static void exec_cloexec(const char *self, const char *echo_ip, int echo_port) {
    int s = dial(echo_ip, echo_port);
    CHECK(fcntl(s, F_SETFD, FD_CLOEXEC) == 0);
    int kept = dial(echo_ip, echo_port);
    echo_check(kept, "before the exec");
    char num[16], num2[16];
    snprintf(num, sizeof num, "%d", s);
    snprintf(num2, sizeof num2, "%d", kept);
    pid_t p = fork();
    CHECK(p >= 0);
    if (p == 0) {
        execl(self, self, "--probe", num, num2, (char *)NULL);
        _exit(127);
    }
    CHECK(wait_ok(p));
    echo_check(s, "after the exec");
    echo_check(kept, "parent after the exec'd child used it");
    close(s);
    close(kept);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && strcmp(argv[1], "--probe") == 0) {
        /* In the exec'd image: the FD_CLOEXEC socket's number must be closed, the other one
         * must still be the connected socket. */
        errno = 0;
        int r = fcntl(atoi(argv[2]), F_GETFD);
        printf("E FD_CLOEXEC socket after exec: %s\n", r < 0 && errno == EBADF ? "closed" : "open");
        int kept = atoi(argv[3]);
        int type = 0;
        socklen_t tl = sizeof type;
        CHECK(getsockopt(kept, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM);
        for (int i = 0; i < 50; i++) echo_check(kept, "from the exec'd image");
        printf("E socket without FD_CLOEXEC after exec: works\n");
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: fork SELF_IP ECHO_IP ECHO_PORT\n");
        return 2;
    }
    int echo_port = atoi(argv[3]);
    prefork(argv[1]);
    handoff(argv[2], echo_port);
    child_exit(argv[2], echo_port);
    daemonised(argv[2], echo_port);
    exec_cloexec("/proc/self/exe", argv[2], echo_port);
    printf("done\n");
    return 0;
}
