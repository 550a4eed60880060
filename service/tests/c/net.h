/* Helpers shared by the compat test programs (fork.c, semantics.c): a CHECK that names the
 * failing process, an IPv4 address from text, a blocking TCP connect. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "[%d] %s:%d: CHECK failed: %s (errno %s)\n", getpid(), __FILE__, __LINE__, #c, strerrorname_np(errno)); exit(1); } } while (0)

static struct sockaddr_in addr(const char *ip, int port) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    CHECK(inet_pton(AF_INET, ip, &a.sin_addr) == 1);
    return a;
}

static int dial(const char *ip, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s >= 0);
    struct sockaddr_in a = addr(ip, port);
    CHECK(connect(s, (struct sockaddr *)&a, sizeof a) == 0);
    return s;
}
