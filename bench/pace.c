/*
 * bench/pace.c - an open-loop HTTP/1.1 load generator for latency at a
 * given rate, the measurement wrk cannot make: wrk's pauses are whole
 * milliseconds on its event loop's clock, so a "paced" wrk releases its
 * requests in bursts at each millisecond tick, and it times a request from
 * the moment it was written, so a server that stalls delays the requests
 * behind the stall without counting it (coordinated omission).
 *
 * pace sends requests on a fixed schedule, one every 1/RATE seconds (the
 * constant-throughput model of wrk2), over CONNS kept-alive connections.
 * A request whose time has come while every connection still waits for
 * an answer queues, and its latency is counted from its scheduled time,
 * not from when it could be written. The clock is CLOCK_MONOTONIC and
 * the wait is epoll_pwait2's nanosecond timeout.
 *
 *   pace -c CONNS -r RATE -d SECONDS [-w WARMUP_SECONDS] [-n IDS]
 *        [-s SEED] [-p PATH_FORMAT] HOST:PORT
 *
 * PATH_FORMAT takes one %d: a uniform id in 1..IDS (default
 * "/api/users/%d", 10000). Prints one JSON object on stdout: requests
 * measured, the rate achieved, non-2xx answers, socket errors, and the
 * latency percentiles in microseconds. Exits 1 when the run could not be
 * made (no connection, the server fell 100,000 requests behind, or more
 * than 1% of the answers were errors), after printing what it saw; with
 * no server at all it gives up 2 s after the run's end. Exits 2 on bad
 * arguments (PATH_FORMAT must hold exactly one %d and no other %).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (256 * 1024)
#define QUEUE_MAX 100000
#define REQ_MAX   512

typedef struct conn {
    int fd;
    int busy;          /* a request is out */
    uint64_t sched_ns; /* its scheduled time */
    char req[REQ_MAX]; /* what is left to write */
    size_t req_len, req_off;
    char *rbuf;
    size_t rlen;
} conn_t;

static struct {
    struct addrinfo *ai;
    const char *host;
    const char *path_fmt;
    uint32_t ids;
    uint64_t rng;
    uint64_t *lat; /* measured latencies, ns */
    size_t nlat, caplat;
    uint64_t measure_from, non2xx, errors, reconnects;
} P = {.path_fmt = "/api/users/%d", .ids = 10000, .rng = 88172645463325252ULL};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint32_t next_id(void)
{
    P.rng ^= P.rng << 13;
    P.rng ^= P.rng >> 7;
    P.rng ^= P.rng << 17;
    return (uint32_t)(P.rng % P.ids) + 1;
}

static int conn_open(conn_t *c, int ep)
{
    int one = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    c->fd = socket(P.ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, P.ai->ai_addr, P.ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->busy = 0;
    c->rlen = 0;
    return 0;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->busy = 0;
    c->rlen = 0;
}

/* Writes what is left of the request; 0 done or waiting, -1 failed. */
static int conn_write(conn_t *c)
{
    while (c->req_off < c->req_len) {
        ssize_t n = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return errno == EAGAIN ? 0 : conn_write(c);
            return -1;
        }
        c->req_off += (size_t)n;
    }
    return 0;
}

static int conn_send(conn_t *c, uint64_t sched)
{
    int n = 4;
    memcpy(c->req, "GET ", 4);
    n += snprintf(c->req + n, sizeof(c->req) - (size_t)n, P.path_fmt, (int)next_id());
    n += snprintf(c->req + n, sizeof(c->req) - (size_t)n,
                  " HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n\r\n", P.host);
    if (n >= (int)sizeof(c->req))
        return -1;
    c->req_len = (size_t)n;
    c->req_off = 0;
    c->busy = 1;
    c->sched_ns = sched;
    return conn_write(c);
}

static const char *find_header(const char *head, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (eol == NULL)
            return NULL;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            return p + nl + 1;
        p = eol + 2;
    }
    return NULL;
}

/*
 * Length of the complete response at the start of buf: >0 its size, 0 not
 * complete yet, -1 malformed. *status gets the status code, *close whether
 * the server will close the connection after it.
 */
static long response_len(const char *buf, size_t len, int *status, int *close_after)
{
    const char *hend = memmem(buf, len, "\r\n\r\n", 4), *v;
    size_t hlen;
    if (hend == NULL)
        return len > 16384 ? -1 : 0;
    hlen = (size_t)(hend - buf) + 4;
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(buf + 9);
    v = find_header(buf, hlen, "Connection");
    *close_after = v != NULL && strncasecmp(v + strspn(v, " "), "close", 5) == 0;
    if ((v = find_header(buf, hlen, "Content-Length")) != NULL) {
        char *e;
        long cl = strtol(v, &e, 10);
        if (cl < 0 || e == v)
            return -1;
        return (size_t)cl > len - hlen ? 0 : (long)hlen + cl;
    }
    if ((v = find_header(buf, hlen, "Transfer-Encoding")) != NULL) {
        size_t off = hlen;
        for (;;) { /* chunks: size CRLF data CRLF ... 0 CRLF CRLF */
            const char *eol = memmem(buf + off, len - off, "\r\n", 2);
            char *e;
            unsigned long sz;
            if (eol == NULL)
                return 0;
            sz = strtoul(buf + off, &e, 16);
            if (e == buf + off || sz > RBUF_SIZE) /* more than a response may hold */
                return -1;
            off = (size_t)(eol - buf) + 2;
            if (sz == 0)
                return len - off >= 2 ? (long)off + 2 : 0; /* no trailers sent */
            if (len - off < sz + 2)
                return 0;
            off += sz + 2;
        }
    }
    return *status == 204 || *status == 304 ? (long)hlen : -1;
}

static void record(uint64_t sched, uint64_t done)
{
    if (sched < P.measure_from)
        return;
    if (P.nlat == P.caplat) {
        size_t cap = P.caplat ? P.caplat * 2 : 65536;
        uint64_t *n = realloc(P.lat, cap * sizeof(*n));
        if (n == NULL) {
            fprintf(stderr, "pace: out of memory\n");
            exit(1);
        }
        P.lat = n;
        P.caplat = cap;
    }
    P.lat[P.nlat++] = done - sched;
}

/* Reads what arrived; completes responses. 0 fine, -1 the connection failed. */
static int conn_read(conn_t *c)
{
    for (;;) {
        ssize_t n;
        long rl;
        int status = 0, close_after = 0;
        if (c->rlen == RBUF_SIZE)
            return -1;
        n = read(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN ? 0 : errno == EINTR ? conn_read(c) : -1;
        c->rlen += (size_t)n;
        rl = response_len(c->rbuf, c->rlen, &status, &close_after);
        if (rl < 0 || (rl > 0 && !c->busy))
            return -1;
        if (rl == 0)
            continue;
        record(c->sched_ns, now_ns());
        if (status < 200 || status > 299)
            P.non2xx++;
        c->busy = 0;
        memmove(c->rbuf, c->rbuf + rl, c->rlen - (size_t)rl);
        c->rlen -= (size_t)rl;
        if (close_after || c->rlen > 0) /* nothing more may come unasked */
            return -1;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(double p)
{
    size_t i;
    if (P.nlat == 0)
        return 0;
    i = (size_t)(p / 100.0 * (double)P.nlat + 0.999999);
    i = i == 0 ? 0 : i - 1;
    return (double)P.lat[i < P.nlat ? i : P.nlat - 1] / 1000.0;
}

/* The path format is handed to snprintf with one int: exactly one "%d". */
static int path_fmt_ok(const char *f)
{
    const char *p = strchr(f, '%');
    return p != NULL && p[1] == 'd' && strchr(p + 2, '%') == NULL && strlen(f) < REQ_MAX / 2;
}

static void usage(void)
{
    fprintf(stderr, "usage: pace -c CONNS -r RATE -d SECONDS [-w WARMUP] [-n IDS] [-s SEED] "
                    "[-p PATH_FORMAT] HOST:PORT\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int opt, nconns = 0, ep, failed = 0;
    double rate = 0, dur = 0, warm = 0;
    conn_t *cs;
    uint64_t *queue, qhead = 0, qtail = 0, interval, start, next, end;
    uint64_t late = 0, max_queue = 0;
    unsigned cursor = 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    char host[256], *colon;

    while ((opt = getopt(argc, argv, "c:r:d:w:n:s:p:")) != -1) {
        switch (opt) {
        case 'c':
            nconns = atoi(optarg);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        case 'd':
            dur = atof(optarg);
            break;
        case 'w':
            warm = atof(optarg);
            break;
        case 'n':
            P.ids = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 's':
            P.rng = strtoull(optarg, NULL, 10) | 1;
            break;
        case 'p':
            P.path_fmt = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1 || nconns < 1 || nconns > 4096 || rate <= 0 || rate > 1e7 || dur <= 0 ||
        dur > 600 || warm < 0 || warm > 600 || P.ids == 0)
        usage();
    if (!path_fmt_ok(P.path_fmt)) {
        fprintf(stderr, "pace: -p takes a path with exactly one %%d and no other %%\n");
        return 2;
    }
    snprintf(host, sizeof(host), "%s", argv[optind]);
    if ((colon = strrchr(host, ':')) == NULL)
        usage();
    *colon = '\0';
    P.host = argv[optind];
    if (getaddrinfo(host, colon + 1, &hints, &P.ai) != 0) {
        fprintf(stderr, "pace: cannot resolve %s\n", argv[optind]);
        return 1;
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    cs = calloc((size_t)nconns, sizeof(*cs));
    queue = calloc(QUEUE_MAX, sizeof(*queue));
    if (ep < 0 || cs == NULL || queue == NULL) {
        fprintf(stderr, "pace: out of memory or descriptors\n");
        return 1;
    }
    for (int i = 0; i < nconns; i++) {
        cs[i].fd = -1;
        if ((cs[i].rbuf = malloc(RBUF_SIZE)) == NULL) {
            fprintf(stderr, "pace: out of memory\n");
            return 1;
        }
        if (conn_open(&cs[i], ep) < 0) {
            fprintf(stderr, "pace: cannot connect to %s: %s\n", argv[optind], strerror(errno));
            return 1;
        }
    }

    interval = (uint64_t)(1e9 / rate);
    start = now_ns() + 50000000ULL; /* let the connections finish first */
    P.measure_from = start + (uint64_t)(warm * 1e9);
    end = P.measure_from + (uint64_t)(dur * 1e9);
    next = start;
    for (;;) {
        struct epoll_event evs[256];
        struct timespec to;
        uint64_t now = now_ns();
        int n;

        while (next <= now && next < end) { /* due: queue it */
            if (qtail - qhead == QUEUE_MAX) {
                fprintf(stderr, "pace: the server fell %d requests behind\n", QUEUE_MAX);
                failed = 1;
                goto out;
            }
            queue[qtail++ % QUEUE_MAX] = next;
            next += interval;
        }
        if (qtail - qhead > max_queue)
            max_queue = qtail - qhead;
        for (int i = 0; i < nconns && qhead < qtail; i++) { /* dispatch, in turns */
            conn_t *c = &cs[cursor++ % (unsigned)nconns];
            if (c->busy)
                continue;
            if (c->fd < 0 && conn_open(c, ep) < 0) {
                P.errors++;
                continue;
            }
            if (now - queue[qhead % QUEUE_MAX] > interval)
                late++;
            if (conn_send(c, queue[qhead % QUEUE_MAX]) < 0) {
                P.errors++;
                conn_close(c);
                continue;
            }
            qhead++;
        }
        if (next >= end) {
            int out = 0;
            for (int i = 0; i < nconns; i++)
                out += cs[i].busy;
            if (out == 0 && qhead == qtail)
                break;
            /* 2 s for the last answers; requests never sent (no connection
             * could be made) fail then too, so a dead server ends the run */
            if (now > end + 2000000000ULL) {
                P.errors += (uint64_t)out + (qtail - qhead);
                break;
            }
        }
        {
            uint64_t wait = next < end && next > now ? next - now : 0;
            if (next >= end)
                wait = 1000000; /* only answers are awaited now */
            to.tv_sec = (time_t)(wait / 1000000000ULL);
            to.tv_nsec = (long)(wait % 1000000000ULL);
        }
        n = epoll_pwait2(ep, evs, 256, &to, NULL);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "pace: epoll_pwait2: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            int bad = 0;
            if (c->fd < 0)
                continue;
            if (evs[i].events & (EPOLLERR | EPOLLHUP))
                bad = !(evs[i].events & EPOLLIN);
            if (!bad && (evs[i].events & EPOLLOUT) && c->busy && conn_write(c) < 0)
                bad = 1;
            if (!bad && (evs[i].events & EPOLLIN) && conn_read(c) < 0)
                bad = 1;
            if (bad) {
                if (c->busy)
                    P.errors++;
                else
                    P.reconnects++;
                conn_close(c);
            }
        }
    }
out:
    qsort(P.lat, P.nlat, sizeof(*P.lat), cmp_u64);
    printf("{\"requests\": %zu, \"rate_target\": %.1f, \"rps\": %.1f, \"non2xx\": %llu, "
           "\"errors\": %llu, \"reconnects\": %llu, \"late\": %llu, \"max_queue\": %llu, "
           "\"latency_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, "
           "\"max\": %.1f}}\n",
           P.nlat, rate, (double)P.nlat / dur, (unsigned long long)P.non2xx,
           (unsigned long long)P.errors, (unsigned long long)P.reconnects, (unsigned long long)late,
           (unsigned long long)max_queue, pct_us(50), pct_us(90), pct_us(99), pct_us(99.9),
           pct_us(100));
    if (!failed && P.nlat > 0 && (P.non2xx + P.errors) * 100 > P.nlat)
        failed = 1;
    return failed || P.nlat == 0;
}
