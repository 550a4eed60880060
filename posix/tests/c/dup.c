/* dup, dup2 onto a chosen number, F_DUPFD, dup2 over a socket; the socket lives until its
 * last descriptor closes. */
#include "t.h"

int main(void) {
    int c, s;
    pair(&c, &s);
    char b[16];
    P("dup2 onto 100", dup2(c, 100));
    P("send on 100", send(100, "a", 1, 0));
    P("close original", close(c));
    P("send on 100 after close", send(100, "b", 1, 0));
    P("F_DUPFD from 200", fcntl(100, F_DUPFD, 200) >= 200);
    int d = fcntl(100, F_DUPFD_CLOEXEC, 200);
    P("F_DUPFD_CLOEXEC flags", fcntl(d, F_GETFD));
    int e = dup(100);
    P("dup works", e >= 0);
    P("send on dup", send(e, "c", 1, 0));
    wait_in(s);
    usleep(20000);
    P("peer got", recv(s, b, 3, MSG_WAITALL));
    int flags = fcntl(100, F_GETFL);
    P("nonblock shared: set on dup", fcntl(e, F_SETFL, flags | O_NONBLOCK));
    P("nonblock shared: seen on 100", (fcntl(100, F_GETFL) & O_NONBLOCK) != 0);
    P("recv 100 nonblocking", recv(100, b, 1, 0));
    close(100); close(200); close(d);
    P("peer still connected", recv(s, b, 1, MSG_DONTWAIT));
    close(e);
    wait_in(s);
    P("peer sees EOF after last close", recv(s, b, 1, 0));
    /* dup2 a pipe over a socket number: the number now names the pipe */
    int pp[2];
    CHECK(pipe(pp) == 0);
    P("dup2 pipe over socket", dup2(pp[1], s) == s);
    P("write goes to pipe", write(s, "z", 1));
    P("pipe read", read(pp[0], b, 1));
    P("recv on it now", recv(s, b, 1, 0));
    close(s);
    return 0;
}
