/* Threads: close() of a socket another thread is blocked in recv() on (Linux leaves the recv
 * running on the still-open socket), shutdown() waking it, accept in another thread. */
#include "t.h"

static int fd;
static ssize_t got;
static int err;

static void *reader(void *arg) {
    (void)arg;
    char b[16];
    got = recv(fd, b, sizeof b, 0);
    err = errno;
    return NULL;
}

static int lfd, afd;
static void *acceptor(void *arg) { (void)arg; afd = accept(lfd, NULL, NULL); return NULL; }

int main(void) {
    int c, s;
    pair(&c, &s);
    fd = c;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reader, NULL) == 0);
    usleep(200000);
    P("close while blocked", close(c));
    usleep(200000);
    printf("reader still blocked: %d\n", got == 0 && err == 0);
    CHECK(send(s, "hi", 2, 0) == 2);
    pthread_join(t, NULL);
    printf("reader got %zd\n", got);

    pair(&c, &s);
    fd = c; got = 0; err = 0;
    CHECK(pthread_create(&t, NULL, reader, NULL) == 0);
    usleep(200000);
    P("shutdown while blocked", shutdown(c, SHUT_RDWR));
    pthread_join(t, NULL);
    printf("reader after shutdown %zd\n", got);
    close(c); close(s);

    int port;
    lfd = listener(&port);
    CHECK(pthread_create(&t, NULL, acceptor, NULL) == 0);
    usleep(100000);
    c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(port);
    P("connect to blocked acceptor", connect(c, (struct sockaddr *)&a, sizeof a));
    pthread_join(t, NULL);
    P("accepted in other thread", afd >= 0);
    P("send", send(afd, "x", 1, 0));
    char b[4];
    P("recv", recv(c, b, 1, 0));
    return 0;
}
