/* Threads: close() of a socket another thread is blocked in recv() on (Linux leaves the recv
 * running on the still-open socket), shutdown() waking it, accept in another thread, and a
 * blocking connect that other threads' calls wake up meanwhile (it must keep waiting). */
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

/* Closes fresh sockets while the main thread is blocked in connect (each close wakes every
 * sleeping thread of the process, so they re-check). */
static void *poker(void *arg) {
    (void)arg;
    for (int i = 0; i < 10; i++) {
        usleep(20000);
        close(socket(AF_INET, SOCK_STREAM, 0));
    }
    return NULL;
}

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
    close(c); close(afd); close(lfd);

    /* A listener whose accept queue is full (backlog 0, one connection waiting) drops the next
     * SYN, so a blocking connect to it waits: SO_SNDTIMEO ends it with EINPROGRESS, as Linux
     * does, however often other threads wake the process meanwhile. */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = loopback(0);
    CHECK(bind(lfd, (struct sockaddr *)&any, sizeof any) == 0);
    CHECK(listen(lfd, 0) == 0);
    a = loopback(port_of(lfd));
    int first = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(first, (struct sockaddr *)&a, sizeof a) == 0);
    usleep(50000);
    c = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { .tv_sec = 0, .tv_usec = 300000 };
    CHECK(setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0);
    CHECK(pthread_create(&t, NULL, poker, NULL) == 0);
    P("connect, queue full, woken", connect(c, (struct sockaddr *)&a, sizeof a));
    pthread_join(t, NULL);
    close(c); close(first); close(lfd);
    return 0;
}
