/*
 * health.c - the prober thread behind health.h.
 */
#include "health.h"

#include "db.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct health {
    const struct rc_config *cfg;
    struct cache *cache;
    int interval_ms;
    struct db_conn *db;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    struct health_status last;
};

static void probe(struct health *h)
{
    char err[RC_ERRBUF];
    struct health_status st = {0};
    int64_t t0 = rc_mono_us(), t1;

    st.db_ok = db_ping(h->db, err) == DB_OK;
    t1 = rc_mono_us();
    st.db_latency_ms = (double)(t1 - t0) / 1000.0;
    if (h->cache != NULL) {
        st.cache_ok = h->cache->ops->ping(h->cache->self) == 0;
        st.cache_latency_ms = (double)(rc_mono_us() - t1) / 1000.0;
    } else {
        st.cache_ok = true;
    }
    st.checked_ms = rc_mono_ms();
    pthread_mutex_lock(&h->lock);
    if (h->last.db_ok != st.db_ok || h->last.cache_ok != st.cache_ok || h->last.checked_ms == 0)
        log_msg(st.db_ok && st.cache_ok ? LOG_INFO : LOG_WARN, "health", "\"db\":%s,\"cache\":%s",
                st.db_ok ? "true" : "false", st.cache_ok ? "true" : "false");
    h->last = st;
    pthread_mutex_unlock(&h->lock);
}

static void *prober_main(void *arg)
{
    struct health *h = arg;

    for (;;) {
        struct timespec until;
        probe(h);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += h->interval_ms / 1000;
        until.tv_nsec += (long)(h->interval_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&h->lock);
        while (!h->stopping && pthread_cond_timedwait(&h->cond, &h->lock, &until) != ETIMEDOUT)
            ;
        bool stop = h->stopping;
        pthread_mutex_unlock(&h->lock);
        if (stop)
            return NULL;
    }
}

struct health *health_start(const struct rc_config *cfg, struct cache *cache, int interval_ms,
                            char *errbuf)
{
    struct health *h = calloc(1, sizeof(*h));

    if (h == NULL || (h->db = db_conn_open(cfg)) == NULL) {
        free(h);
        rc_err(errbuf, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->cache = cache;
    h->interval_ms = interval_ms;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    if (pthread_create(&h->thread, NULL, prober_main, h) != 0) {
        db_conn_close(h->db);
        pthread_mutex_destroy(&h->lock);
        pthread_cond_destroy(&h->cond);
        free(h);
        rc_err(errbuf, "cannot start the health prober thread");
        return NULL;
    }
    return h;
}

void health_stop(struct health *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    db_conn_close(h->db);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h);
}

void health_get(struct health *h, struct health_status *out)
{
    /* A probe may take up to the connect timeout plus a statement deadline;
     * past that and two intervals more, the prober itself is stuck. */
    int64_t bound = (int64_t)h->interval_ms * 2 + h->cfg->db_connect_timeout_ms +
                    h->cfg->db_statement_timeout_ms + 1000;

    pthread_mutex_lock(&h->lock);
    *out = h->last;
    pthread_mutex_unlock(&h->lock);
    if (out->checked_ms == 0 || rc_mono_ms() - out->checked_ms > bound) {
        out->db_ok = false;
        out->cache_ok = out->cache_ok && out->checked_ms != 0;
    }
}
