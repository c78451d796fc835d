/* httpload: HTTP/1.1 requests from CLIENTS keep-alive connections in one epoll loop.
 *
 * usage: httpload HOST PORT REQUESTS CLIENTS SECONDS RATE
 *   REQUESTS: a file of whole requests, each preceded by its length in bytes on a line of
 *   its own ("123\n" then 123 bytes). Each is sent once, in file order, by whichever
 *   connection is free; running out ends the run early (the caller renders enough).
 *   RATE 0: closed loop (each connection sends its next request when the last is answered).
 *   RATE > 0: paced; connection i's requests fall due every CLIENTS / RATE seconds from
 *   i / RATE, and each latency counts from when its request fell due, so a request sent late
 *   behind a slow answer is charged its wait (no coordinated omission).
 * After SECONDS no request is sent; answers still under way are waited for (30 s at most).
 * A connection the server closes is opened again when it next has a request to send (a
 * server closes keep-alive connections idle for its timeout); a request under way on it is
 * counted as answered with code 0, a failure.
 * Prints one JSON line: {"ok", "codes", "elapsed", "per_second", "p50_ms", "p99_ms",
 * "max_ms", "mean_ms", "sent", "unanswered", "reconnects"}; "ok" counts 2xx answers,
 * latencies are of every answer.
 * It is compiled so that the load costs its host a small part of what a Python client
 * costs: on a 2-core host the client shares a core with the database.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUCKET_US 50
#define BUCKETS 1200000 /* 50 us each: up to 60 s */
#define DRAIN_SECONDS 30.0

typedef struct {
    int fd;
    int busy;             /* a request is under way */
    double due;           /* when the next (paced) or current request fell due */
    const char *out;      /* what is left to write of the current request */
    size_t out_len;
    char *in;             /* the answer read so far */
    size_t in_len, in_cap;
} conn_t;

static long long histogram[BUCKETS];
static long long codes[600], answers, sent, reconnects;
static double latency_sum, latency_max;
static char *requests;
static size_t requests_size, cursor;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static int connect_to(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
    return fd; /* connected while blocking (loopback: at once); non-blocking from now on */
}

/* The next request of the file, or 0 when none is left. */
static int next_request(conn_t *c) {
    if (cursor >= requests_size) return 0;
    char *end;
    long len = strtol(requests + cursor, &end, 10);
    if (*end != '\n' || len <= 0 || (size_t)(end + 1 - requests) + len > requests_size) {
        fprintf(stderr, "malformed requests file at byte %zu\n", cursor);
        exit(2);
    }
    c->out = end + 1;
    c->out_len = (size_t)len;
    cursor = (size_t)(end + 1 - requests) + len;
    return 1;
}

static void record(double latency, int code) {
    long long bucket = (long long)(latency * 1e6 / BUCKET_US);
    if (bucket >= BUCKETS) bucket = BUCKETS - 1;
    if (bucket < 0) bucket = 0;
    histogram[bucket]++;
    latency_sum += latency;
    if (latency > latency_max) latency_max = latency;
    answers++;
    codes[code >= 100 && code < 600 ? code : 0]++;
}

static double percentile(double q) {
    long long want = (long long)(q * answers), seen = 0;
    for (long long b = 0; b < BUCKETS; b++) {
        seen += histogram[b];
        if (seen > want) return (b + 0.5) * BUCKET_US / 1000.0;
    }
    return (BUCKETS * (double)BUCKET_US) / 1000.0;
}

static const char *server_host;
static int server_port, ep;

/* Connection i (re)opened and watched for answers. */
static void open_conn(conn_t *c, unsigned i) {
    c->fd = connect_to(server_host, server_port);
    c->in_len = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

/* The server closed connection c (or it failed): a request under way on it is a failure. */
static int lost_conn(conn_t *c, int rate_paced, double interval) {
    int was_busy = c->busy;
    if (c->busy) {
        double done = now_s();
        record(done - c->due, 0);
        c->busy = 0;
        c->due = rate_paced ? c->due + interval : done;
    }
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->out_len = 0;
    c->in_len = 0;
    reconnects++;
    return was_busy;
}

/* Writes what it can of the current request. -1: the connection failed. */
static int flush_out(conn_t *c) {
    while (c->out_len > 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        c->out += n;
        c->out_len -= (size_t)n;
    }
    return 0;
}

/* The length of a whole answer at the start of c->in (0: not all here yet; -1: one this
 * client cannot read, such as a chunked body). Sets *code. */
static long whole_answer(conn_t *c, int *code) {
    char *head_end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (head_end == NULL) return 0;
    if (c->in_len < 12 || strncmp(c->in, "HTTP/1.", 7) != 0) return -1;
    *code = atoi(c->in + 9);
    long body = 0;
    for (char *line = c->in; line < head_end; line = memchr(line, '\n', head_end - line) + 1) {
        if (strncasecmp(line, "content-length:", 15) == 0) body = atol(line + 15);
        if (strncasecmp(line, "transfer-encoding:", 18) == 0) return -1;
        if (memchr(line, '\n', head_end - line) == NULL) break;
    }
    size_t total = (size_t)(head_end + 4 - c->in) + (size_t)body;
    return c->in_len >= total ? (long)total : 0;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: httpload HOST PORT REQUESTS CLIENTS SECONDS RATE\n");
        return 2;
    }
    server_host = argv[1];
    server_port = atoi(argv[2]);
    int clients = atoi(argv[4]);
    double seconds = atof(argv[5]), rate = atof(argv[6]);
    FILE *file = fopen(argv[3], "rb");
    if (file == NULL) die("requests file");
    struct stat st;
    if (fstat(fileno(file), &st) < 0) die("stat");
    requests_size = (size_t)st.st_size;
    requests = malloc(requests_size + 1);
    if (fread(requests, 1, requests_size, file) != requests_size) die("read");
    requests[requests_size] = 0;
    fclose(file);

    ep = epoll_create1(0);
    conn_t *conns = calloc((size_t)clients, sizeof *conns);
    for (int i = 0; i < clients; i++) {
        conns[i].in_cap = 65536;
        conns[i].in = malloc(conns[i].in_cap);
        open_conn(&conns[i], (unsigned)i);
    }
    double interval = rate > 0 ? clients / rate : 0, started = now_s();
    double stop_at = started + seconds, give_up_at = stop_at + DRAIN_SECONDS;
    for (int i = 0; i < clients; i++) conns[i].due = started + (rate > 0 ? i / rate : 0);
    struct epoll_event events[256];
    int in_flight = 0, exhausted = 0;
    for (;;) {
        double now = now_s();
        double wake = give_up_at; /* the next paced request due, if sooner */
        for (int i = 0; i < clients; i++) {
            conn_t *c = &conns[i];
            if (c->busy || exhausted) continue;
            /* Paced: every request due before the end is sent, however late. */
            if (rate > 0 ? c->due >= stop_at : now >= stop_at) continue;
            if (c->due > now) {
                if (c->due < wake) wake = c->due;
                continue;
            }
            if (!next_request(c)) {
                exhausted = 1; /* out of requests: the run ends here */
                fprintf(stderr, "httpload: ran out of requests after %lld\n", sent);
                continue;
            }
            if (c->fd < 0) open_conn(c, (unsigned)i);
            if (rate <= 0) c->due = now;
            c->busy = 1;
            c->in_len = 0;
            in_flight++;
            sent++;
            if (flush_out(c) < 0) {
                in_flight -= lost_conn(c, rate > 0, interval);
                continue;
            }
            if (c->out_len > 0) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (unsigned)i};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
        /* Closed loop: sending until the end. Paced: until the last request due before the
         * end went; not "until the end", or a run whose last due request went a little before
         * it would wait for an event that never comes. */
        int sending = !exhausted && now < stop_at;
        if (rate > 0) {
            sending = 0;
            for (int i = 0; i < clients && !sending && !exhausted; i++)
                sending = conns[i].due < stop_at;
        }
        if (!sending && in_flight == 0) break;
        if (now >= give_up_at) break;
        double until = (sending && rate > 0 ? wake : give_up_at) - now;
        /* Rounded up: waking a little late costs the request that much latency (it is
         * counted from when it fell due); waking early would spin. */
        int timeout_ms = rate > 0 || !sending ? (int)ceil(until * 1000) : 1000;
        if (timeout_ms < 0) timeout_ms = 0;
        int n = epoll_wait(ep, events, 256, timeout_ms);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int e = 0; e < n; e++) {
            conn_t *c = &conns[events[e].data.u32];
            if (c->fd < 0) continue; /* lost earlier in this batch of events */
            if (events[e].events & EPOLLOUT) {
                if (flush_out(c) < 0) {
                    in_flight -= lost_conn(c, rate > 0, interval);
                    continue;
                }
                if (c->out_len == 0) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = events[e].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (!(events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            int closed = 0;
            for (;;) {
                if (c->in_cap - c->in_len < 4096) {
                    c->in_cap *= 2;
                    c->in = realloc(c->in, c->in_cap);
                }
                ssize_t got = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
                if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (got <= 0) {
                    closed = 1; /* an answer read with the close still counts, below */
                    break;
                }
                c->in_len += (size_t)got;
            }
            int code = 0;
            long whole = whole_answer(c, &code);
            if (whole < 0) {
                fprintf(stderr, "an answer this client cannot read\n");
                exit(2);
            }
            if (whole > 0 && c->busy) {
                double done = now_s();
                record(done - c->due, code);
                memmove(c->in, c->in + whole, c->in_len - (size_t)whole);
                c->in_len -= (size_t)whole;
                c->busy = 0;
                in_flight--;
                c->due = rate > 0 ? c->due + interval : done;
            }
            if (closed) in_flight -= lost_conn(c, rate > 0, interval);
        }
    }
    double elapsed = now_s() - started;
    long long ok = 0;
    for (int code = 200; code < 300; code++) ok += codes[code];
    printf("{\"ok\": %lld, \"codes\": {", ok);
    int first = 1;
    for (int code = 0; code < 600; code++) {
        if (!codes[code]) continue;
        printf("%s\"%d\": %lld", first ? "" : ", ", code, codes[code]);
        first = 0;
    }
    printf("}, \"elapsed\": %.6f, \"per_second\": %.3f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"max_ms\": %.3f, \"mean_ms\": %.3f, \"sent\": %lld, \"unanswered\": %d, "
           "\"reconnects\": %lld}\n",
           elapsed, ok / elapsed, percentile(0.50), percentile(0.99), 1000 * latency_max,
           answers ? 1000 * latency_sum / answers : 0.0, sent, in_flight, reconnects);
    return 0;
}
