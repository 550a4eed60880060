/* A hostile Joyride application (for service/tests/joyride_run.rs): under `joyride run` it
 * opens sockets (so the service gives it a region), connects one to IP:PORT, then
 *  1. writes random 64-byte entries into its command ring and advances the ring head by a
 *     plausible amount (garbage commands), ringing every eventfd it holds;
 *  2. scribbles random bytes over its whole shared region (impossible ring indices: poison);
 * prints "scribbled", then stays alive for HOLD seconds so the test can check that the
 * service reclaimed its sockets while the process still exists. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void ring_all_eventfds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    char path[64], target[256];
    if (!d) return;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = 0;
        if (strstr(target, "eventfd")) {
            uint64_t one = 1;
            /* The raw syscall: the shim would treat a Joyride socket's eventfd as a socket. */
            (void)!syscall(SYS_write, fd, &one, 8);
        }
    }
    closedir(d);
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    int hold = atoi(argv[3]);
    signal(SIGPIPE, SIG_IGN);
    rng ^= (uint64_t)getpid() << 20;
    int s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (s[i] < 0) { perror("socket"); return 1; }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    if (connect(s[0], (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    /* Find the region: the memfd mapping named joyride-ipc. */
    FILE *m = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long lo = 0, hi = 0;
    while (m && fgets(line, sizeof line, m)) {
        if (strstr(line, "joyride-ipc")) {
            unsigned long l, h;
            if (sscanf(line, "%lx-%lx", &l, &h) == 2 && (lo == 0 || l < lo)) { lo = l; hi = h; }
        }
    }
    if (m) fclose(m);
    if (!lo) { fprintf(stderr, "region not found\n"); return 1; }
    unsigned char *r = (unsigned char *)lo;
    size_t len = hi - lo;
    if (mprotect(r, len, PROT_READ | PROT_WRITE) < 0) { perror("mprotect"); return 1; }
    printf("region bytes=%zu\n", len);
    fflush(stdout);
    /* 1. Garbage commands: the ring header says how many entries it has (offset 28). */
    uint32_t entries = *(volatile uint32_t *)(r + 28);
    if (entries == 0 || entries > 65536) entries = 256;
    volatile uint32_t *head = (volatile uint32_t *)(r + 256);
    for (int round = 0; round < 20; round++) {
        uint32_t h = *head;
        for (int k = 0; k < 8; k++) {
            unsigned char *e = r + 256 + 128 + 64 * ((h + k) % entries);
            for (int b = 0; b < 64; b += 8) { uint64_t v = next(); memcpy(e + b, &v, 8); }
            /* Half of them keep a plausible opcode and socket index, to reach deeper checks. */
            if (k % 2) { e[8] = 1 + next() % 14; e[9] = 0; e[12] = next() % 4; e[13] = e[14] = e[15] = 0; }
        }
        __atomic_store_n(head, h + 8, __ATOMIC_RELEASE);
        ring_all_eventfds();
        usleep(20000);
    }
    printf("garbage sent\n");
    fflush(stdout);
    /* 2. Scribble over everything. */
    for (int round = 0; round < 5; round++) {
        /* The header, rings and socket table in full; the data rings a word per 4 KiB. */
        size_t dense = len < (4u << 20) ? len : (4u << 20);
        for (size_t i = 0; i + 8 <= dense; i += 8) { uint64_t v = next(); memcpy(r + i, &v, 8); }
        for (size_t i = dense; i + 8 <= len; i += 4096) { uint64_t v = next(); memcpy(r + i, &v, 8); }
        ring_all_eventfds();
        usleep(50000);
    }
    printf("scribbled\n");
    fflush(stdout);
    sleep(hold);
    return 0;
}
