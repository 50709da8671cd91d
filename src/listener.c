/*
 * listener.c - the LISTEN thread behind listener.h.
 *
 * The thread owns its db_listen connection. It waits for notifications
 * (and for its eventfd, which listener_stop writes) in db_listen_wait;
 * each payload is parsed (notify.c) and its tags bumped through the cache
 * provider, unless one of our own writes bumped them already (ownnotify.h).
 * A payload that cannot be parsed bumps "*": an unknown change must not
 * leave stale data fresh. A lost connection is retried with exponential
 * back-off (100 ms .. 5 s); the first LISTEN after a loss bumps "*" and
 * counts a reconnect, and so does the first LISTEN at start if requests
 * were already answered from the database without it. After a session
 * that lasted STABLE_MS the first retry is at once; one lost sooner (a
 * server restarting in a loop, a pooler dropping it) waits the back-off,
 * which keeps growing, or each new session would empty the cache with "*"
 * as fast as it could reconnect.
 */
#include "listener.h"

#include "db.h"
#include "log.h"
#include "notify.h"
#include "ownnotify.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WAIT_MS        1000
#define STABLE_MS      10000
/* Longest wait for a worker to report a write of its own (ownnotify.h). */
#define OWN_WAIT_MS 250

struct listener {
    const struct rc_config *cfg;
    struct cache *cache;
    struct metrics *metrics;
    struct ownnotify *own; /* may be NULL */
    struct db_listen *db;
    int wake_fd;
    atomic_bool stopping;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool listening; /* under lock: LISTEN has succeeded at least once */
    struct notify_msg msg;
};

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void bump_all(struct listener *l, const char *why)
{
    struct rc_str all = {CACHE_GLOBAL_TAG, 1};
    int ok = l->cache->ops->bump_tags(l->cache->self, &all, 1) == 0;

    metrics_invalidation(l->metrics, 1, ok);
    log_msg(ok ? LOG_INFO : LOG_ERROR, "listener_invalidate_all", "\"reason\":\"%s\",\"ok\":%s",
            why, ok ? "true" : "false");
}

static void on_notify(void *ctx, int pid, const char *payload)
{
    struct listener *l = ctx;
    struct notify_msg *m = &l->msg;
    int64_t delay_us = -1;
    int ok, left;

    /* One of our own writes, whose worker heard it too and bumped its tags
     * before answering: bumping again would only undo what the write made
     * current (ownnotify.h). */
    if (l->own != NULL && payload != NULL &&
        ownnotify_take(l->own, pid, payload, rc_mono_ms(), OWN_WAIT_MS)) {
        metrics_own_notification(l->metrics);
        return;
    }
    if (notify_parse(payload, m) < 0) {
        log_msg(LOG_WARN, "notify_payload_invalid", "\"bytes\":%zu", payload ? strlen(payload) : 0);
        bump_all(l, "invalid payload");
        metrics_db_invalidation(l->metrics, 1, -1);
        return;
    }
    left = cache_bump_once(l->cache, m->tags, m->ntags, &(struct rc_str){m->tx, m->txlen});
    ok = left >= 0;
    metrics_invalidation(l->metrics, (unsigned)m->ntags, ok);
    if (left > 0) /* the writer (or another listener) bumped them after the commit */
        metrics_bumps_shared(l->metrics, (unsigned)left);
    if (!ok)
        log_msg(LOG_ERROR, "notify_invalidate_failed", "\"tags\":%zu", m->ntags);
    if (m->ts_ms > 0) {
        delay_us = wall_us() - (int64_t)(m->ts_ms * 1000.0);
        if (delay_us < 0)
            delay_us = 0; /* clocks of two hosts */
    }
    metrics_db_invalidation(l->metrics, (unsigned)m->ntags, delay_us);
    if (log_enabled(LOG_DEBUG)) {
        char tag[128];
        log_msg(LOG_DEBUG, "notify", "\"tags\":%zu,\"first\":\"%s\",\"delay_ms\":%.3f", m->ntags,
                log_escape(m->tags[0].s, tag, sizeof(tag)), (double)delay_us / 1000.0);
    }
}

/* Sleep ms unless stopped first. */
static void pause_ms(struct listener *l, int ms)
{
    struct pollfd p = {.fd = l->wake_fd, .events = POLLIN};
    (void)poll(&p, 1, ms);
}

/* Could this process have cached an answer the listener did not cover? */
static bool answered_before(struct listener *l)
{
    struct metrics_totals t = {0};
    if (l->metrics == NULL)
        return true;
    metrics_totals(l->metrics, &t);
    return t.misses + t.bypass + t.stale + t.errors > 0;
}

static void *listener_main(void *arg)
{
    struct listener *l = arg;
    char err[RC_ERRBUF];
    int backoff = BACKOFF_MIN_MS;
    int64_t up_since;
    bool ever = false, logged_down = false;

    while (!atomic_load(&l->stopping)) {
        if (db_listen_start(l->db, l->cfg->db_notify_channel, err) < 0) {
            if (!logged_down)
                log_msg(LOG_WARN, "listener_down", "\"error\":\"%s\",\"retry_ms\":%d", err,
                        backoff);
            logged_down = true;
            pause_ms(l, backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        logged_down = false;
        up_since = rc_mono_ms();
        /* Listening again: whatever changed while nobody listened went
         * unheard, so everything cached before now is unverified. */
        if (ever) {
            metrics_listener_reconnect(l->metrics);
            bump_all(l, "reconnected");
        } else if (answered_before(l)) {
            bump_all(l, "first listen after answers");
        }
        log_msg(LOG_INFO, "listener_ready", "\"channel\":\"%s\",\"reconnect\":%s",
                l->cfg->db_notify_channel, ever ? "true" : "false");
        ever = true;
        pthread_mutex_lock(&l->lock);
        l->listening = true;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
        while (!atomic_load(&l->stopping))
            if (db_listen_wait(l->db, l->wake_fd, WAIT_MS, on_notify, l) < 0)
                break;
        if (atomic_load(&l->stopping))
            break;
        /* Until the next LISTEN, changes go unheard (and cached entries
         * are served): after a session that was up, try again at once. */
        if (rc_mono_ms() - up_since >= STABLE_MS) {
            backoff = BACKOFF_MIN_MS;
            continue;
        }
        pause_ms(l, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

struct listener *listener_start(const struct rc_config *cfg, struct cache *cache,
                                struct metrics *metrics, struct ownnotify *own, char *errbuf)
{
    struct listener *l = calloc(1, sizeof(*l));
    pthread_condattr_t ca;

    if (l == NULL || cfg->db_notify_channel == NULL || cache == NULL) {
        free(l);
        rc_err(errbuf, "listener: %s", l ? "no channel or no cache" : "out of memory");
        return NULL;
    }
    l->cfg = cfg;
    l->cache = cache;
    l->metrics = metrics;
    l->own = own;
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->db = db_listen_open(cfg);
    if (l->wake_fd < 0 || l->db == NULL) {
        if (l->wake_fd >= 0)
            close(l->wake_fd);
        db_listen_close(l->db);
        free(l);
        rc_err(errbuf, "listener: cannot set up");
        return NULL;
    }
    atomic_init(&l->stopping, false);
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&l->thread, NULL, listener_main, l) != 0) {
        close(l->wake_fd);
        db_listen_close(l->db);
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->cond);
        free(l);
        rc_err(errbuf, "listener: cannot start its thread");
        return NULL;
    }
    return l;
}

bool listener_wait_ready(struct listener *l, int timeout_ms)
{
    struct timespec until;
    bool ok;

    rc_mono_deadline(&until, timeout_ms);
    pthread_mutex_lock(&l->lock);
    while (!l->listening && pthread_cond_timedwait(&l->cond, &l->lock, &until) == 0)
        ;
    ok = l->listening;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void listener_stop(struct listener *l)
{
    uint64_t one = 1;

    if (l == NULL)
        return;
    atomic_store(&l->stopping, true);
    if (write(l->wake_fd, &one, sizeof(one)) < 0)
        log_msg(LOG_ERROR, "wake_failed", NULL);
    pthread_join(l->thread, NULL);
    db_listen_close(l->db);
    close(l->wake_fd);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l);
}
