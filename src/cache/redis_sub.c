/*
 * redis_sub.c - the tiered provider's subscriber: one thread, one
 * connection SUBSCRIBEd to prefix "invalidate", applying every bump and
 * purge any instance publishes to this process's L1 (through callbacks).
 *
 * Up and down. The state is one counter, the epoch: odd while subscribed
 * and resynchronised, even while not. On every (re)subscription the thread
 * first calls on_reset (L1 drops everything: messages sent while we were
 * not listening are lost), then makes the epoch odd. On any failure it
 * makes the epoch even before closing the socket, then reconnects with a
 * backoff (SUB_BACKOFF_MIN doubling to SUB_BACKOFF_MAX).
 *
 * A silently dead link (no RST, e.g. a partition) is noticed by a PING
 * every SUB_PING_MS that must be answered within the command timeout, so
 * L1 relies on a dead subscription for at most about that long.
 *
 * Quiet. redis_sub_quiet() tells a reader whether a message may be on its
 * way into L1: bytes waiting in the socket (a zero-timeout poll), or bytes
 * taken from it and not yet applied (busy). busy is set before the read
 * and cleared after the messages are applied, so a reader that polls after
 * the read sees busy, and one that sees busy cleared also sees the bumps.
 */
#include "redis_sub.h"

#include "../log.h"
#include "redis_msg.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUB_PING_MS     1000
#define SUB_BACKOFF_MIN 100
#define SUB_BACKOFF_MAX 2000
#define SUB_MAX_TAGS    (REDIS_PENDING_MAX + 1)

struct redis_sub {
    struct redis *r;
    struct redis_sub_fns fns;
    pthread_t thread;
    int wake[2];
    _Atomic bool stop;
    _Atomic uint64_t epoch; /* odd: subscribed and resynchronised */
    _Atomic int fd;         /* the subscription's socket, -1 when down */
    _Atomic int busy;       /* bytes taken from the socket, not yet applied */
    int64_t ping_deadline;  /* 0: no PING outstanding */
};

static void log_failure(const char *event, const char *err)
{
    char e[RC_ERRBUF * 2];
    log_msg(LOG_WARN, event, "\"error\":\"%s\"", log_escape(err, e, sizeof(e)));
}

/* Sleep up to ms, or until redis_sub_stop(). True when stopping. */
static bool sub_sleep(struct redis_sub *s, int ms)
{
    struct pollfd p = {.fd = s->wake[0], .events = POLLIN};
    if (atomic_load(&s->stop))
        return true;
    (void)poll(&p, 1, ms);
    return atomic_load(&s->stop);
}

/* Apply one published message. One this version does not understand may
 * have been an invalidation: forget everything. */
static void on_message(void *arg, const char *p, size_t n)
{
    struct redis_sub *s = arg;
    struct rc_str tags[SUB_MAX_TAGS];
    char pattern[REDIS_MSG_PATTERN_MAX + 1];
    size_t nt;

    switch (redis_msg_parse(p, n, tags, SUB_MAX_TAGS, &nt, pattern)) {
    case REDIS_MSG_BUMP:
        s->fns.on_bump(s->fns.arg, tags, nt);
        return;
    case REDIS_MSG_PURGE:
        s->fns.on_purge(s->fns.arg, pattern);
        return;
    case REDIS_MSG_UNKNOWN:
        break;
    }
    log_msg(LOG_WARN, "redis_unknown_message", "\"bytes\":%zu", n);
    s->fns.on_reset(s->fns.arg);
}

static void on_pong(void *arg)
{
    struct redis_sub *s = arg;
    s->ping_deadline = 0;
}

/* Read and apply messages until the link fails or stop. */
static void sub_loop(struct redis_sub *s, struct redis_link *l, char *err)
{
    const struct redis_link_sink sink = {on_message, on_pong, s};
    int timeout_ms = redis_command_timeout_ms(s->r);
    int64_t next_ping = rc_mono_ms() + SUB_PING_MS;

    s->ping_deadline = 0;
    while (!atomic_load(&s->stop)) {
        int64_t now = rc_mono_ms();
        bool partial = false;

        if (s->ping_deadline != 0 && now >= s->ping_deadline) {
            rc_err(err, "no answer to PING within %d ms", timeout_ms);
            return;
        }
        if (s->ping_deadline == 0 && now >= next_ping) {
            if (redis_link_ping(l, now + timeout_ms, err) < 0)
                return;
            s->ping_deadline = now + timeout_ms;
            next_ping = now + SUB_PING_MS;
        }
        int64_t until = s->ping_deadline != 0 ? s->ping_deadline : next_ping;
        int w = rconn_wait(redis_link_conn(l), s->wake[0], (int)(until > now ? until - now : 0));
        if (w == 2)
            return;
        if (w < 0) {
            rc_err(err, "poll: %s", strerror(errno));
            return;
        }
        if (w == 0)
            continue;
        atomic_store(&s->busy, 1);
        if (redis_link_read(l, &sink, rc_mono_ms() + timeout_ms, &partial, err) < 0)
            return;
        /* A message cut in two keeps the subscription busy until its end
         * has arrived and been applied. */
        if (!partial)
            atomic_store(&s->busy, 0);
    }
}

static void *sub_main(void *arg)
{
    struct redis_sub *s = arg;
    int backoff = SUB_BACKOFF_MIN;
    bool quiet_failures = false;

    while (!atomic_load(&s->stop)) {
        char err[RC_ERRBUF] = "";
        struct redis_link *l = redis_link_open(s->r, err);

        if (l == NULL) {
            if (!quiet_failures)
                log_failure("redis_subscribe_failed", err);
            quiet_failures = true;
            if (sub_sleep(s, backoff))
                break;
            backoff = backoff * 2 > SUB_BACKOFF_MAX ? SUB_BACKOFF_MAX : backoff * 2;
            continue;
        }
        backoff = SUB_BACKOFF_MIN;
        quiet_failures = false;
        atomic_store(&s->busy, 0);
        atomic_store(&s->fd, rconn_fd(redis_link_conn(l)));
        s->fns.on_reset(s->fns.arg);
        atomic_fetch_add(&s->epoch, 1); /* odd: up */
        log_msg(LOG_INFO, "redis_subscribed", "\"server\":\"%s\"", redis_where(s->r));
        sub_loop(s, l, err);
        atomic_fetch_add(&s->epoch, 1); /* even: down, before the fd goes */
        atomic_store(&s->fd, -1);
        redis_link_close(l);
        if (!atomic_load(&s->stop))
            log_failure("redis_subscription_lost", err);
    }
    return NULL;
}

struct redis_sub *redis_sub_start(struct redis *r, const struct redis_sub_fns *fns, char *errbuf)
{
    struct redis_sub *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        rc_err(errbuf, "redis: out of memory");
        return NULL;
    }
    s->r = r;
    s->fns = *fns;
    atomic_init(&s->stop, false);
    atomic_init(&s->epoch, 0);
    atomic_init(&s->fd, -1);
    atomic_init(&s->busy, 0);
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc_err(errbuf, "redis: pipe: %s", strerror(errno));
        free(s);
        return NULL;
    }
    if (pthread_create(&s->thread, NULL, sub_main, s) != 0) {
        rc_err(errbuf, "redis: cannot start the subscriber thread");
        close(s->wake[0]);
        close(s->wake[1]);
        free(s);
        return NULL;
    }
    return s;
}

void redis_sub_stop(struct redis_sub *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop, true);
    if (write(s->wake[1], "x", 1) < 0) {
        /* A fresh pipe of ours cannot be full; the thread also checks
         * stop at least every SUB_PING_MS. */
    }
    pthread_join(s->thread, NULL);
    close(s->wake[0]);
    close(s->wake[1]);
    free(s);
}

bool redis_sub_quiet(struct redis_sub *s, uint64_t *epoch)
{
    uint64_t e = atomic_load(&s->epoch);
    int fd = atomic_load(&s->fd);

    if ((e & 1) == 0 || fd < 0)
        return false;
    /* The poll is the one syscall an L1 hit costs: without it a message
     * already delivered to this host could be overtaken by the read. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) != 0 || atomic_load(&s->busy) != 0)
        return false;
    *epoch = e;
    return true;
}

uint64_t redis_sub_epoch(struct redis_sub *s)
{
    return atomic_load(&s->epoch);
}
