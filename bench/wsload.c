/* wsload: N WebSocket viewers in one epoll loop; counts frames, sequence gaps and latency.
 *
 * usage: wsload HOST PORT PATH N SECONDS [FIRST]
 *   PATH "@file": one path per line; viewer i uses line FIRST + i (its own identity).
 *   Runs until SECONDS after "ready" or until SIGUSR1, then prints the results.
 * Prints "ready N" once every connection is open, then after SECONDS (counted from ready)
 * one JSON line of results. Frames carry "seq":N and "ts":MICROSECONDS (CLOCK_REALTIME),
 * plainly or inside a JSON string (Pusher's `data`).
 * With WSLOAD_SUBSCRIBE=CHANNEL set, each connection speaks Pusher: it sends pusher:subscribe
 * and counts as open once the subscription succeeded.
 * With WSLOAD_VOTE=POLL:OPTION,OPTION,... set, every viewer votes once (vote_poll) for option
 * (FIRST + i) modulo the options, the viewers spread over WSLOAD_VOTE_SECONDS (default 5)
 * from the moment SIGUSR2 arrives. Each viewer keeps the last poll_vote total of every
 * option and, for its own option, each total it heard with the time; they are written to
 * WSLOAD_VOTES_OUT, one line per viewer: "INDEX SENT_US LAST... COUNT VOTES TIME...".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS 200000 /* 50 us each: up to 10 s */
#define BUCKET_US 50

typedef struct {
    int fd;
    int state; /* 0 connecting, 1 handshaking, 2 open, 3 dead */
    const char *path;
    char *buf;
    size_t len, cap;
    long long next_seq;
    long long frames;
    int counted; /* included in open_count */
} conn_t;

static long long histogram[BUCKETS];
static conn_t *conns_base;
static volatile sig_atomic_t stop_requested;

static void request_stop(int sig) { (void)sig; stop_requested = 1; }
static long long total_frames, gaps, samples, max_us, open_count, dead_count, bytes_in;
static long long last_count = -1, count_updates, count_disagreements;
static long long *last_count_of; /* per connection: the last viewer count it saw */
static const char *subscribe_channel; /* Pusher mode */

/* vote mode */
#define MAX_OPTIONS 16
#define HEARD_CAP 128
static long long poll_id, options[MAX_OPTIONS];
static int option_count, first_index;
static volatile sig_atomic_t vote_requested;
static long long vote_start, vote_window_us = 5000000, votes_sent, vote_frames, error_frames;
static long long *sent_at;        /* per connection: when its vote left, 0 if not yet */
static long long *last_votes;     /* per connection and option: the last total heard */
static int *heard_count;          /* per connection: totals heard for its own option */
static long long (*heard)[HEARD_CAP][2];

static void request_vote(int sig) { (void)sig; vote_requested = 1; }

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* The number after "key": or, in Pusher mode (inside a JSON string), after \"key\": */
static long long find_number(const char *data, size_t len, const char *name) {
    char key[64];
    int klen = subscribe_channel ? snprintf(key, sizeof key, "\\\"%s\\\":", name)
                                 : snprintf(key, sizeof key, "\"%s\":", name);
    const char *p = memmem(data, len, key, klen);
    if (!p) return -1;
    return strtoll(p + klen, NULL, 10);
}

/* One masked text frame (the zero mask leaves the payload as it is). */
static int send_text(int fd, const char *text) {
    unsigned char frame[1024];
    size_t len = strlen(text);
    if (len > 125) return -1;
    frame[0] = 0x81;
    frame[1] = 0x80 | (unsigned char)len;
    memset(frame + 2, 0, 4);
    memcpy(frame + 6, text, len);
    return write(fd, frame, 6 + len) == (ssize_t)(6 + len) ? 0 : -1;
}

static int option_index(long long option) {
    for (int k = 0; k < option_count; k++)
        if (options[k] == option) return k;
    return -1;
}

/* A poll_vote: remember the option's total; for the viewer's own option, when it came. */
static void on_vote_frame(conn_t *c, const char *payload, size_t len) {
    long long option = find_number(payload, len, "option_id");
    long long votes = find_number(payload, len, "votes");
    int k = option_index(option);
    if (k < 0 || votes < 0) return;
    long i = c - conns_base;
    vote_frames++;
    last_votes[i * option_count + k] = votes;
    if (k == (first_index + i) % option_count && heard_count[i] < HEARD_CAP) {
        heard[i][heard_count[i]][0] = votes;
        heard[i][heard_count[i]][1] = now_us();
        heard_count[i]++;
    }
}

static void on_message(conn_t *c, const char *payload, size_t len) {
    if (!c->counted) { /* Pusher: open once subscribed */
        if (memmem(payload, len, "subscription_succeeded", 22)) { c->counted = 1; open_count++; }
        return;
    }
    if (option_count) {
        size_t head = len < 40 ? len : 40;
        if (memmem(payload, head, "\"poll_vote\"", 11)) { on_vote_frame(c, payload, len); return; }
        if (memmem(payload, head, "\"error\"", 7)) {
            if (!error_frames++) fprintf(stderr, "error frame: %.*s\n", (int)len, payload);
            return;
        }
    }
    /* The measured events carry "seq" near their start: look for it first, so the bulk of
       the frames costs one short search (the client shares the server's cores). */
    long long seq = find_number(payload, len, "seq");
    if (seq < 0) {
        long long seen = find_number(payload, len, "current_viewers");
        if (seen >= 0) { /* viewer_count_updated: remember what this viewer was told */
            count_updates++;
            last_count_of[c - conns_base] = seen;
        }
        return; /* connected, counts: not part of the measured stream */
    }
    c->frames++;
    total_frames++;
    {
        if (c->next_seq >= 0 && seq > c->next_seq) gaps += seq - c->next_seq;
        c->next_seq = seq + 1;
    }
    long long ts = find_number(payload, len, "ts");
    if (ts > 0) {
        long long latency = now_us() - ts;
        if (latency < 0) latency = 0;
        long long bucket = latency / BUCKET_US;
        if (bucket >= BUCKETS) bucket = BUCKETS - 1;
        histogram[bucket]++;
        samples++;
        if (latency > max_us) max_us = latency;
    }
}

static void parse_frames(conn_t *c) {
    size_t off = 0;
    while (c->len - off >= 2) {
        unsigned char *b = (unsigned char *)c->buf + off;
        size_t plen = b[1] & 0x7f, head = 2;
        if (plen == 126) {
            if (c->len - off < 4) break;
            plen = ((size_t)b[2] << 8) | b[3];
            head = 4;
        } else if (plen == 127) {
            if (c->len - off < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = (plen << 8) | b[2 + i];
            head = 10;
        }
        if (c->len - off < head + plen) break;
        if ((b[0] & 0x0f) == 0x1) on_message(c, (char *)b + head, plen);
        if ((b[0] & 0x0f) == 0x8) { c->state = 3; }
        off += head + plen;
    }
    if (off) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
}

static void grow(conn_t *c, size_t need) {
    if (c->len + need <= c->cap) return;
    size_t cap = c->cap ? c->cap : 4096;
    while (cap < c->len + need) cap *= 2;
    c->buf = realloc(c->buf, cap);
    c->cap = cap;
}

static void send_due_votes(int n) {
    static int next = 0;
    char text[128];
    long long now = now_us();
    while (next < n && vote_start + vote_window_us * (long long)next / n <= now) {
        conn_t *c = &conns_base[next];
        if (c->state == 2 && c->counted) {
            snprintf(text, sizeof text,
                     "{\"event\":\"vote_poll\",\"data\":{\"poll_id\":%lld,\"option_id\":%lld}}",
                     poll_id, options[(first_index + next) % option_count]);
            sent_at[next] = now_us();
            if (send_text(c->fd, text) == 0) votes_sent++;
        }
        next++;
    }
}

static void write_votes(const char *path, int n) {
    FILE *f = fopen(path, "w");
    if (!f) { perror("votes"); return; }
    for (int i = 0; i < n; i++) {
        fprintf(f, "%d %lld", first_index + i, sent_at[i]);
        for (int k = 0; k < option_count; k++) fprintf(f, " %lld", last_votes[i * option_count + k]);
        fprintf(f, " %d", heard_count[i]);
        for (int h = 0; h < heard_count[i]; h++) fprintf(f, " %lld %lld", heard[i][h][0], heard[i][h][1]);
        fputc('\n', f);
    }
    fclose(f);
}

static long long percentile(double q) {
    long long target = (long long)(q * samples), seen = 0;
    for (int i = 0; i < BUCKETS; i++) {
        seen += histogram[i];
        if (seen > target) return (long long)i * BUCKET_US + BUCKET_US / 2;
    }
    return max_us;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: wsload HOST PORT PATH N SECONDS [FIRST]\n");
        return 2;
    }
    int first = argc == 7 ? atoi(argv[6]) : 0;
    signal(SIGUSR1, request_stop);
    signal(SIGUSR2, request_vote);
    subscribe_channel = getenv("WSLOAD_SUBSCRIBE");
    const char *vote = getenv("WSLOAD_VOTE"), *votes_out = getenv("WSLOAD_VOTES_OUT");
    if (vote) { /* POLL:OPTION,OPTION,... */
        char *rest;
        poll_id = strtoll(vote, &rest, 10);
        while (*rest == ':' || *rest == ',') {
            if (option_count == MAX_OPTIONS) break;
            options[option_count++] = strtoll(rest + 1, &rest, 10);
        }
        first_index = first;
        if (getenv("WSLOAD_VOTE_SECONDS")) vote_window_us = (long long)(atof(getenv("WSLOAD_VOTE_SECONDS")) * 1e6);
    }
    char subscribe[256];
    if (subscribe_channel)
        snprintf(subscribe, sizeof subscribe,
                 "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\"}}",
                 subscribe_channel);
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]), n = atoi(argv[4]);
    double seconds = atof(argv[5]);
    conn_t *conns = calloc(n, sizeof(conn_t));
    conns_base = conns;
    last_count_of = calloc(n, sizeof(long long));
    for (int i = 0; i < n; i++) last_count_of[i] = -1;
    if (option_count) {
        sent_at = calloc(n, sizeof(long long));
        last_votes = calloc((size_t)n * option_count, sizeof(long long));
        heard_count = calloc(n, sizeof(int));
        heard = calloc(n, sizeof *heard);
        for (long i = 0; i < (long)n * option_count; i++) last_votes[i] = -1;
    }
    int ep = epoll_create1(0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    char **paths = NULL;
    int path_count = 0;
    if (path[0] == '@') { /* one path per viewer, e.g. each with its own token */
        FILE *f = fopen(path + 1, "r");
        if (!f) { perror("paths"); return 2; }
        paths = calloc(n, sizeof(char *));
        char line[4096];
        int index = 0;
        while (path_count < n && fgets(line, sizeof line, f)) {
            if (index++ < first) continue;
            line[strcspn(line, "\r\n")] = 0;
            paths[path_count++] = strdup(line);
        }
        fclose(f);
    }
    char request[8192];
    int started = 0, batch = 200;
    long long ready_at = 0, deadline = 0;
    static char chunk[1 << 16];
    struct epoll_event events[1024];
    for (;;) {
        /* open connections in batches so the accept queue never overflows */
        while (started < n && started - (open_count + dead_count) < batch) {
            conn_t *c = &conns[started];
            c->next_seq = -1;
            c->path = paths ? paths[started % path_count] : path;
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            connect(c->fd, (struct sockaddr *)&addr, sizeof addr);
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = started};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            started++;
        }
        if (!ready_at && open_count + dead_count == n) {
            ready_at = now_us();
            deadline = ready_at + (long long)(seconds * 1e6);
            printf("ready %lld\n", open_count);
            fflush(stdout);
        }
        if (stop_requested || (ready_at && now_us() >= deadline)) break;
        if (vote_requested && !vote_start) vote_start = now_us();
        int voting = vote_start && now_us() <= vote_start + vote_window_us + 1000;
        if (vote_start) send_due_votes(n);
        int k = epoll_wait(ep, events, 1024, voting ? 1 : 50);
        for (int i = 0; i < k; i++) {
            conn_t *c = &conns[events[i].data.u32];
            if (c->state == 0 && (events[i].events & EPOLLOUT)) {
                int rlen = snprintf(request, sizeof request,
                                    "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                                    c->path, host, port);
                if (write(c->fd, request, rlen) != rlen) { c->state = 3; dead_count++; continue; }
                c->state = 1;
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = events[i].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            for (;;) {
                ssize_t got = read(c->fd, chunk, sizeof chunk);
                if (got <= 0) {
                    if (got < 0 && errno == EAGAIN) break;
                    if (c->counted) open_count--;
                    if (c->state == 1 || c->state == 2) dead_count++;
                    c->state = 3;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    break;
                }
                bytes_in += got;
                grow(c, got);
                memcpy(c->buf + c->len, chunk, got);
                c->len += got;
                if (c->state == 1) {
                    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
                    if (!end) continue;
                    if (c->len < 12 || memcmp(c->buf + 9, "101", 3) != 0) {
                        c->state = 3; dead_count++;
                        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                        close(c->fd);
                        break;
                    }
                    size_t head = end + 4 - c->buf;
                    memmove(c->buf, c->buf + head, c->len - head);
                    c->len -= head;
                    c->state = 2;
                    if (subscribe_channel) {
                        if (send_text(c->fd, subscribe) != 0) { c->state = 3; dead_count++; break; }
                    } else {
                        c->counted = 1;
                        open_count++;
                    }
                }
                if (c->state == 2) parse_frames(c);
                /* a short read drained the socket: epoll (level-triggered) reports it again
                   when more arrives, so skip the read that would only say EAGAIN */
                if ((size_t)got < sizeof chunk) break;
            }
        }
    }
    long long min_frames = -1, max_frames = 0;
    for (int i = 0; i < n; i++) {
        if (conns[i].state != 2 || !conns[i].counted) continue;
        if (last_count < 0) last_count = last_count_of[i];
        else if (last_count_of[i] != last_count) count_disagreements++;
        if (min_frames < 0 || conns[i].frames < min_frames) min_frames = conns[i].frames;
        if (conns[i].frames > max_frames) max_frames = conns[i].frames;
    }
    if (option_count && votes_out) write_votes(votes_out, n);
    printf("{\"open\": %lld, \"dead\": %lld, \"frames\": %lld, \"gaps\": %lld, "
           "\"votes_sent\": %lld, \"vote_frames\": %lld, \"error_frames\": %lld, "
           "\"min_frames\": %lld, \"max_frames\": %lld, \"bytes\": %lld, \"samples\": %lld, "
           "\"p50_us\": %lld, \"p99_us\": %lld, \"max_us\": %lld, \"last_count\": %lld, "
           "\"count_updates\": %lld, \"count_disagreements\": %lld}\n",
           open_count, dead_count, total_frames, gaps, votes_sent, vote_frames, error_frames,
           min_frames, max_frames, bytes_in,
           samples, percentile(0.50), percentile(0.99), max_us, last_count, count_updates,
           count_disagreements);
    return 0;
}
