/* sendfloor: what this host's kernel charges a sender for the fan-out's writes, with no server.
 *
 * usage: sendfloor N FRAMES FRAME_BYTES GAP_MS SECONDS
 *
 * Opens N loopback TCP connections (a forked reader process holds the far ends and reads
 * them all from one epoll loop, as the load client does), then, for SECONDS, writes every
 * connection FRAMES frames of FRAME_BYTES in one send() per turn, a turn starting every
 * GAP_MS (at once if a turn took longer): the fan-out's pattern at the same frames per
 * write, with nothing else in the sending process. On loopback the receiving side's TCP
 * work runs inside the sender's send(), as it does for the server in the fan-out benchmark.
 *
 * Prints one JSON line: sends, frames, the sender's CPU seconds (user and system), CPU
 * microseconds per send and frames per CPU-second: the most any server could reach here
 * at that many frames per write, since it pays at least this for every send.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    return *user + *sys;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* The far ends: connect n sockets, tell the parent, then read everything until all close. */
static void reader(struct sockaddr_in *address, int n, int ready_fd) {
    int epoll = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)address, sizeof *address) < 0)
            die("reader connect");
        struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
    }
    if (write(ready_fd, "r", 1) != 1)
        die("reader ready");
    close(ready_fd);
    static char buffer[1 << 16];
    struct epoll_event events[512];
    int open = n;
    while (open > 0) {
        int count = epoll_wait(epoll, events, 512, -1);
        for (int i = 0; i < count; i++) {
            ssize_t got = read(events[i].data.fd, buffer, sizeof buffer);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                close(events[i].data.fd);
                open--;
            }
        }
    }
    exit(0);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s N FRAMES FRAME_BYTES GAP_MS SECONDS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), frames = atoi(argv[2]), frame_bytes = atoi(argv[3]);
    double gap = atof(argv[4]) / 1000.0, seconds = atof(argv[5]);
    if (n <= 0 || frames <= 0 || frame_bytes < 2 || seconds <= 0) {
        fprintf(stderr, "sendfloor: N, FRAMES, FRAME_BYTES and SECONDS must be positive\n");
        return 2;
    }
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_max < (rlim_t)n + 64) {
        fprintf(stderr, "sendfloor: %d connections need %d descriptors in each process; the limit is %lu\n", n,
                n + 64, (unsigned long)limit.rlim_max);
        return 2;
    }
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
        die("setrlimit");
    signal(SIGPIPE, SIG_IGN);

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(listener, 65535) < 0 || getsockname(listener, (struct sockaddr *)&address, &length) < 0)
        die("listen");

    int ready[2];
    if (pipe(ready) < 0)
        die("pipe");
    pid_t child = fork();
    if (child == 0) {
        close(listener);
        close(ready[0]);
        reader(&address, n, ready[1]);
    }
    close(ready[1]);
    int *fds = malloc(sizeof(int) * n);
    int one = 1;
    for (int i = 0; i < n; i++) {
        fds[i] = accept(listener, NULL, NULL);
        if (fds[i] < 0)
            die("accept");
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as uvloop does */
    }
    char signal_byte;
    if (read(ready[0], &signal_byte, 1) != 1)
        die("ready");

    /* One turn's write: FRAMES unmasked text frames (2- or 4-byte headers) of FRAME_BYTES. */
    size_t size = (size_t)frames * frame_bytes;
    unsigned char *data = malloc(size);
    for (int f = 0; f < frames; f++) {
        unsigned char *frame = data + (size_t)f * frame_bytes;
        memset(frame, 'x', frame_bytes);
        frame[0] = 0x81;
        if (frame_bytes - 2 < 126) {
            frame[1] = frame_bytes - 2;
        } else {
            frame[1] = 126;
            frame[2] = (frame_bytes - 4) >> 8;
            frame[3] = (frame_bytes - 4) & 0xff;
        }
    }

    double user0, sys0, user1, sys1;
    cpu(&user0, &sys0);
    double start = now(), next = start;
    long sends = 0, short_writes = 0;
    while (now() - start < seconds) {
        for (int i = 0; i < n; i++) {
            ssize_t sent = send(fds[i], data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
            sends++;
            if (sent != (ssize_t)size)
                short_writes++; /* a full buffer: the reader fell behind */
        }
        next += gap;
        double wait = next - now();
        if (wait > 0) {
            struct timespec pause = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
            nanosleep(&pause, NULL);
        } else {
            next = now();
        }
    }
    double elapsed = now() - start;
    double used = cpu(&user1, &sys1) - user0 - sys0;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    waitpid(child, NULL, 0);
    printf("{\"connections\": %d, \"frames_per_write\": %d, \"frame_bytes\": %d, \"seconds\": %.2f, "
           "\"sends\": %ld, \"short_writes\": %ld, \"frames\": %ld, \"cpu_user\": %.3f, "
           "\"cpu_system\": %.3f, \"cpu_us_per_send\": %.2f, \"frames_per_cpu_second\": %.0f}\n",
           n, frames, frame_bytes, elapsed, sends, short_writes, sends * frames, user1 - user0,
           sys1 - sys0, used * 1e6 / sends, sends * frames / used);
    return 0;
}
