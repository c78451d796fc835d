/* sendfloor: what this host's kernel charges a sender for the fan-out's writes, with no server.
 *
 * usage: sendfloor N FRAMES FRAME_BYTES GAP_MS SECONDS
 * build: gcc -O2 -o sendfloor bench/sendfloor.c -lm   (bench/fanout.py builds and runs it)
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
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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

#define MAX_FRAME_BYTES 65539       /* a 16-bit payload length and its 4-byte header */
#define MAX_WRITE_BYTES (16 << 20) /* one turn's write to one socket */

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

/* A whole number in [low, high], or -1 (with a message) for anything else. */
static long whole(const char *text, const char *name, long low, long high) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < low || value > high) {
        fprintf(stderr, "sendfloor: %s must be a whole number from %ld to %ld, not '%s'\n", name,
                low, high, text);
        return -1;
    }
    return value;
}

/* A finite number in [low, high], or NAN (with a message). */
static double number(const char *text, const char *name, double low, double high) {
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(value) || value < low || value > high) {
        fprintf(stderr, "sendfloor: %s must be a number from %g to %g, not '%s'\n", name, low,
                high, text);
        return NAN;
    }
    return value;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s N FRAMES FRAME_BYTES GAP_MS SECONDS\n", argv[0]);
        return 2;
    }
    long n = whole(argv[1], "N", 1, 1000000);
    long frames = whole(argv[2], "FRAMES", 1, 100000);
    long frame_bytes = whole(argv[3], "FRAME_BYTES", 2, MAX_FRAME_BYTES);
    double gap = number(argv[4], "GAP_MS", 0, 60000) / 1000.0;
    double seconds = number(argv[5], "SECONDS", 0.001, 3600);
    if (n < 0 || frames < 0 || frame_bytes < 0 || isnan(gap) || isnan(seconds))
        return 2;
    size_t size = (size_t)frames * (size_t)frame_bytes;
    if (size > MAX_WRITE_BYTES) {
        fprintf(stderr, "sendfloor: a write of FRAMES × FRAME_BYTES = %zu bytes is over %d\n", size,
                MAX_WRITE_BYTES);
        return 2;
    }
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_max < (rlim_t)n + 64) {
        fprintf(stderr,
                "sendfloor: %ld connections need %ld descriptors in each process; the limit is %lu\n",
                n, n + 64, (unsigned long)limit.rlim_max);
        return 2;
    }
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
        die("setrlimit");
    signal(SIGPIPE, SIG_IGN);
    int *fds = malloc(sizeof(int) * n);
    unsigned char *data = malloc(size);
    if (fds == NULL || data == NULL)
        die("malloc");

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
    if (child < 0)
        die("fork");
    if (child == 0) {
        close(listener);
        close(ready[0]);
        reader(&address, (int)n, ready[1]);
    }
    close(ready[1]);
    /* Accept while watching the reader: it writes one byte once every connection is made,
       and its end of the pipe closes if it dies first (out of ports, say), which would
       otherwise leave accept() waiting for ever. */
    int one = 1, connected = 0;
    for (long i = 0; i < n; i++) {
        struct pollfd watch[2] = {{.fd = listener, .events = POLLIN}, {.fd = ready[0], .events = POLLIN}};
        while (!connected) {
            if (poll(watch, 2, -1) < 0 && errno != EINTR)
                die("poll");
            if (watch[1].revents) {
                char signal_byte;
                if (read(ready[0], &signal_byte, 1) != 1) {
                    fprintf(stderr, "sendfloor: the reader ended after %ld of %ld connections\n", i, n);
                    waitpid(child, NULL, 0);
                    return 1;
                }
                connected = 1; /* every connection is made: the rest wait in the backlog */
            }
            if (watch[0].revents)
                break;
        }
        fds[i] = accept(listener, NULL, NULL);
        if (fds[i] < 0)
            die("accept");
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as uvloop does */
    }
    if (!connected) {
        char signal_byte;
        if (read(ready[0], &signal_byte, 1) != 1) {
            fprintf(stderr, "sendfloor: the reader ended before it was ready\n");
            waitpid(child, NULL, 0);
            return 1;
        }
    }

    /* One turn's write: FRAMES unmasked text frames (2- or 4-byte headers) of FRAME_BYTES. */
    for (long f = 0; f < frames; f++) {
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

    /* At least one turn; a turn that would start past SECONDS does not. */
    double user0, sys0, user1, sys1;
    cpu(&user0, &sys0);
    double start = now(), next = start;
    long sends = 0, short_writes = 0, delivered = 0;
    do {
        for (long i = 0; i < n; i++) {
            ssize_t sent = send(fds[i], data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
            sends++;
            if (sent == (ssize_t)size) {
                delivered += frames;
            } else {
                short_writes++; /* a full buffer: the reader fell behind; its frames not counted */
                if (sent > 0)
                    delivered += sent / frame_bytes;
            }
        }
        next += gap;
        double wait = fmin(next, start + seconds) - now();
        if (wait > 0) {
            struct timespec pause = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
            nanosleep(&pause, NULL);
        } else {
            next = now();
        }
    } while (now() - start < seconds);
    double elapsed = now() - start;
    double used = cpu(&user1, &sys1) - user0 - sys0;
    if (used <= 0)
        used = 1e-6; /* below the clock's resolution: a bound, not a division by zero */
    for (long i = 0; i < n; i++)
        close(fds[i]);
    waitpid(child, NULL, 0);
    printf("{\"connections\": %ld, \"frames_per_write\": %ld, \"frame_bytes\": %ld, \"seconds\": %.2f, "
           "\"sends\": %ld, \"short_writes\": %ld, \"frames\": %ld, \"cpu_user\": %.3f, "
           "\"cpu_system\": %.3f, \"cpu_us_per_send\": %.2f, \"frames_per_cpu_second\": %.0f}\n",
           n, frames, frame_bytes, elapsed, sends, short_writes, delivered, user1 - user0,
           sys1 - sys0, used * 1e6 / sends, delivered / used);
    return 0;
}
