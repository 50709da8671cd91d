/*
 * metrics.c - the registry behind metrics.h.
 *
 * Layout: flat arrays of _Atomic uint64_t indexed [route][status] and
 * [route][cache result], plus two fixed-bucket histograms (request and
 * database latency, in seconds as Prometheus expects). Updates are relaxed
 * atomic adds; a scrape reads each series once, so a scrape taken while
 * requests run is a consistent-enough snapshot (each counter is monotonic,
 * which is all Prometheus relies on).
 */
#include "metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const int statuses[] = {200, 201, 204, 304, 400, 401, 403, 404,
                               405, 409, 413, 415, 422, 500, 503};
#define NSTATUS (RC_ARRAY_LEN(statuses) + 1) /* + "other" */

static const char *const pseudo_names[METRICS_NPSEUDO] = {"unmatched", "health", "metrics",
                                                          "admin"};
static const char *const cache_names[METRICS_NCACHE] = {"hit", "miss", "stale", "bypass", "error"};
static const char *const stale_names[METRICS_NSTALE] = {"expired", "soft", "error"};

/* Upper bounds in microseconds; rendered as seconds. */
static const int64_t buckets_us[] = {100,     250,     500,     1000,    2500,   5000,
                                     10000,   25000,   50000,   100000,  250000, 500000,
                                     1000000, 2500000, 5000000, 10000000};
#define NBUCKETS RC_ARRAY_LEN(buckets_us)

struct histogram {
    _Atomic uint64_t counts[NBUCKETS + 1]; /* last: +Inf */
    _Atomic uint64_t sum_us;
};

struct metrics {
    const struct rc_config *cfg;
    size_t nroutes;             /* configured + pseudo */
    _Atomic uint64_t *requests; /* [nroutes][NSTATUS] */
    _Atomic uint64_t *cache;    /* [nroutes][METRICS_NCACHE] */
    struct histogram request_latency;
    struct histogram db_latency;
    _Atomic uint64_t db_queries, db_errors;
    _Atomic uint64_t invalidated_tags, invalidation_failures, bumps_shared;
    _Atomic uint64_t stale[METRICS_NSTALE];
    _Atomic uint64_t sf_waits, sf_timeouts, refreshes, refresh_failures;
    _Atomic int64_t sf_inflight;
    _Atomic uint64_t db_invalidations, db_invalidated_tags, listener_reconnects, warmed;
    _Atomic uint64_t own_notifications, write_through[3]; /* enum metrics_wt */
    struct histogram invalidation_delay;
};

struct metrics *metrics_create(const struct rc_config *cfg)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->cfg = cfg;
    m->nroutes = cfg->nroutes + METRICS_NPSEUDO;
    m->requests = calloc(m->nroutes * NSTATUS, sizeof(*m->requests));
    m->cache = calloc(m->nroutes * METRICS_NCACHE, sizeof(*m->cache));
    if (m->requests == NULL || m->cache == NULL) {
        metrics_free(m);
        return NULL;
    }
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    free(m->requests);
    free(m->cache);
    free(m);
}

static size_t status_index(int status)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(statuses); i++)
        if (statuses[i] == status)
            return i;
    return NSTATUS - 1;
}

static void observe(struct histogram *h, int64_t us)
{
    size_t i = 0;
    if (us < 0)
        us = 0;
    while (i < NBUCKETS && us > buckets_us[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, memory_order_relaxed);
}

void metrics_request(struct metrics *m, int route, int status, int64_t duration_us)
{
    if (m == NULL || route < 0 || (size_t)route >= m->nroutes)
        return;
    atomic_fetch_add_explicit(&m->requests[(size_t)route * NSTATUS + status_index(status)], 1,
                              memory_order_relaxed);
    observe(&m->request_latency, duration_us);
}

void metrics_cache(struct metrics *m, int route, enum metrics_cache_result r)
{
    if (m == NULL || route < 0 || (size_t)route >= m->nroutes || r >= METRICS_NCACHE)
        return;
    atomic_fetch_add_explicit(&m->cache[(size_t)route * METRICS_NCACHE + r], 1,
                              memory_order_relaxed);
}

void metrics_db_query(struct metrics *m, int64_t duration_us, int ok)
{
    if (m == NULL)
        return;
    atomic_fetch_add_explicit(&m->db_queries, 1, memory_order_relaxed);
    if (!ok)
        atomic_fetch_add_explicit(&m->db_errors, 1, memory_order_relaxed);
    observe(&m->db_latency, duration_us);
}

void metrics_invalidation(struct metrics *m, unsigned tags, int ok)
{
    if (m == NULL)
        return;
    atomic_fetch_add_explicit(&m->invalidated_tags, tags, memory_order_relaxed);
    if (!ok)
        atomic_fetch_add_explicit(&m->invalidation_failures, 1, memory_order_relaxed);
}

void metrics_bumps_shared(struct metrics *m, unsigned tags)
{
    if (m == NULL)
        return;
    atomic_fetch_add_explicit(&m->bumps_shared, tags, memory_order_relaxed);
}

void metrics_stale(struct metrics *m, enum metrics_stale_reason r)
{
    if (m == NULL || r >= METRICS_NSTALE)
        return;
    atomic_fetch_add_explicit(&m->stale[r], 1, memory_order_relaxed);
}

void metrics_singleflight_wait(struct metrics *m, int timed_out)
{
    if (m == NULL)
        return;
    atomic_fetch_add_explicit(&m->sf_waits, 1, memory_order_relaxed);
    if (timed_out)
        atomic_fetch_add_explicit(&m->sf_timeouts, 1, memory_order_relaxed);
}

void metrics_singleflight_inflight(struct metrics *m, int delta)
{
    if (m != NULL)
        atomic_fetch_add_explicit(&m->sf_inflight, delta, memory_order_relaxed);
}

void metrics_refresh(struct metrics *m, int ok)
{
    if (m == NULL)
        return;
    atomic_fetch_add_explicit(ok ? &m->refreshes : &m->refresh_failures, 1, memory_order_relaxed);
}

void metrics_db_invalidation(struct metrics *m, unsigned tags, int64_t delay_us)
{
    if (m == NULL)
        return;
    atomic_fetch_add_explicit(&m->db_invalidations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->db_invalidated_tags, tags, memory_order_relaxed);
    if (delay_us >= 0)
        observe(&m->invalidation_delay, delay_us);
}

void metrics_own_notification(struct metrics *m)
{
    if (m != NULL)
        atomic_fetch_add_explicit(&m->own_notifications, 1, memory_order_relaxed);
}

void metrics_write_through(struct metrics *m, enum metrics_wt result)
{
    if (m != NULL)
        atomic_fetch_add_explicit(&m->write_through[result], 1, memory_order_relaxed);
}

void metrics_listener_reconnect(struct metrics *m)
{
    if (m != NULL)
        atomic_fetch_add_explicit(&m->listener_reconnects, 1, memory_order_relaxed);
}

void metrics_warm(struct metrics *m, unsigned n)
{
    if (m != NULL)
        atomic_fetch_add_explicit(&m->warmed, n, memory_order_relaxed);
}

void metrics_totals(struct metrics *m, struct metrics_totals *out)
{
    uint64_t t[METRICS_NCACHE] = {0};
    for (size_t r = 0; r < m->nroutes; r++)
        for (size_t k = 0; k < METRICS_NCACHE; k++)
            t[k] += atomic_load_explicit(&m->cache[r * METRICS_NCACHE + k], memory_order_relaxed);
    out->hits = t[METRICS_HIT];
    out->misses = t[METRICS_MISS];
    out->stale = t[METRICS_STALE];
    out->bypass = t[METRICS_BYPASS];
    out->errors = t[METRICS_CACHE_ERROR];
}

static const char *route_name(struct metrics *m, size_t r)
{
    return r < m->cfg->nroutes ? m->cfg->routes[r].name : pseudo_names[r - m->cfg->nroutes];
}

static int render_histogram(buf *out, const char *name, const char *help, struct histogram *h)
{
    uint64_t cum = 0;
    if (buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name) < 0)
        return -1;
    for (size_t i = 0; i <= NBUCKETS; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        int rc = i < NBUCKETS ? buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
                                           (double)buckets_us[i] / 1e6, (unsigned long long)cum)
                              : buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                                           (unsigned long long)cum);
        if (rc < 0)
            return -1;
    }
    return buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
                      (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6, name,
                      (unsigned long long)cum);
}

static int counter(buf *out, const char *name, const char *help, uint64_t v)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                      (unsigned long long)v);
}

static int gauge(buf *out, const char *name, const char *help, uint64_t v)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name,
                      (unsigned long long)v);
}

static int render_freshness(struct metrics *m, buf *out)
{
    int64_t inflight = atomic_load(&m->sf_inflight);

    if (buf_puts(out, "# HELP respcache_stale_answers_total STALE answers by reason (expired: "
                      "stale-while-revalidate, soft: soft purge, error: stale-if-error).\n"
                      "# TYPE respcache_stale_answers_total counter\n") < 0)
        return -1;
    for (size_t r = 0; r < METRICS_NSTALE; r++)
        if (buf_printf(out, "respcache_stale_answers_total{reason=\"%s\"} %llu\n", stale_names[r],
                       (unsigned long long)atomic_load(&m->stale[r])) < 0)
            return -1;
    if (buf_puts(out, "# HELP respcache_refreshes_total Background refreshes of stale entries by "
                      "result.\n# TYPE respcache_refreshes_total counter\n") < 0 ||
        buf_printf(out, "respcache_refreshes_total{result=\"ok\"} %llu\n",
                   (unsigned long long)atomic_load(&m->refreshes)) < 0 ||
        buf_printf(out, "respcache_refreshes_total{result=\"error\"} %llu\n",
                   (unsigned long long)atomic_load(&m->refresh_failures)) < 0)
        return -1;
    return counter(out, "respcache_singleflight_waits_total",
                   "Misses that waited for another request's query of the same key.",
                   atomic_load(&m->sf_waits)) < 0 ||
                   counter(out, "respcache_singleflight_timeouts_total",
                           "Single-flight waits that ran out and queried themselves.",
                           atomic_load(&m->sf_timeouts)) < 0 ||
                   gauge(out, "respcache_singleflight_inflight",
                         "Coalesced misses in flight: queries others may wait for.",
                         inflight > 0 ? (uint64_t)inflight : 0) < 0 ||
                   counter(out, "respcache_db_invalidations_total",
                           "Notifications from the database trigger (respcache_notify) applied.",
                           atomic_load(&m->db_invalidations)) < 0 ||
                   counter(out, "respcache_db_invalidated_tags_total",
                           "Tags bumped because the database notified them.",
                           atomic_load(&m->db_invalidated_tags)) < 0 ||
                   counter(out, "respcache_db_own_notifications_total",
                           "Notifications of respcache's own writes, bumped by the write "
                           "itself before it answered (the listener skipped them).",
                           atomic_load(&m->own_notifications)) < 0 ||
                   buf_printf(
                       out,
                       "# HELP respcache_write_through_total Writes whose answer was "
                       "stored as their GET route's entry (stored), or not because another "
                       "change to its tags came in between (skipped) or the cache failed "
                       "(error).\n"
                       "# TYPE respcache_write_through_total counter\n"
                       "respcache_write_through_total{result=\"stored\"} %llu\n"
                       "respcache_write_through_total{result=\"skipped\"} %llu\n"
                       "respcache_write_through_total{result=\"error\"} %llu\n",
                       (unsigned long long)atomic_load(&m->write_through[METRICS_WT_STORED]),
                       (unsigned long long)atomic_load(&m->write_through[METRICS_WT_SKIPPED]),
                       (unsigned long long)atomic_load(&m->write_through[METRICS_WT_ERROR])) < 0 ||
                   counter(out, "respcache_listener_reconnects_total",
                           "LISTEN connections re-established after a drop (each bumps \"*\": "
                           "whatever was cached before is unverified).",
                           atomic_load(&m->listener_reconnects)) < 0 ||
                   render_histogram(out, "respcache_invalidation_delay_seconds",
                                    "Time from the commit that notified to the tag bump.",
                                    &m->invalidation_delay) < 0 ||
                   counter(out, "respcache_warmed_entries_total",
                           "Entries stored by the warm-up queries.", atomic_load(&m->warmed)) < 0
               ? -1
               : 0;
}

int metrics_render(struct metrics *m, struct cache *cache, buf *out)
{
    if (buf_puts(out, "# HELP respcache_requests_total Requests answered, by route and status.\n"
                      "# TYPE respcache_requests_total counter\n") < 0)
        return -1;
    for (size_t r = 0; r < m->nroutes; r++)
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t v = atomic_load_explicit(&m->requests[r * NSTATUS + s], memory_order_relaxed);
            char code[8];
            if (v == 0)
                continue;
            if (s < RC_ARRAY_LEN(statuses))
                snprintf(code, sizeof(code), "%d", statuses[s]);
            else
                snprintf(code, sizeof(code), "other");
            if (buf_printf(out, "respcache_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                           route_name(m, r), code, (unsigned long long)v) < 0)
                return -1;
        }
    if (buf_puts(out, "# HELP respcache_cache_requests_total Cacheable GETs by route and result "
                      "(hit, miss, stale, bypass, error).\n"
                      "# TYPE respcache_cache_requests_total counter\n") < 0)
        return -1;
    for (size_t r = 0; r < m->cfg->nroutes; r++) {
        if (m->cfg->routes[r].method != RC_GET)
            continue;
        for (size_t k = 0; k < METRICS_NCACHE; k++) {
            uint64_t v =
                atomic_load_explicit(&m->cache[r * METRICS_NCACHE + k], memory_order_relaxed);
            if (buf_printf(out, "respcache_cache_requests_total{route=\"%s\",result=\"%s\"} %llu\n",
                           route_name(m, r), cache_names[k], (unsigned long long)v) < 0)
                return -1;
        }
    }
    if (render_histogram(out, "respcache_request_duration_seconds",
                         "Time from request read to response written.", &m->request_latency) < 0 ||
        render_histogram(out, "respcache_db_query_duration_seconds",
                         "Database round trips (prepare and execute), including failures.",
                         &m->db_latency) < 0 ||
        counter(out, "respcache_db_queries_total", "Database queries run.",
                atomic_load(&m->db_queries)) < 0 ||
        counter(out, "respcache_db_errors_total", "Database queries that failed.",
                atomic_load(&m->db_errors)) < 0 ||
        counter(out, "respcache_invalidated_tags_total", "Tags bumped by writes and purges.",
                atomic_load(&m->invalidated_tags)) < 0 ||
        counter(out, "respcache_invalidation_failures_total",
                "Writes whose tag bumps failed (answered with X-Cache-Invalidation: failed).",
                atomic_load(&m->invalidation_failures)) < 0 ||
        counter(out, "respcache_invalidated_tags_shared_total",
                "Tags a bump left alone because they had already been bumped for the same "
                "transaction (usually by another instance sharing the cache).",
                atomic_load(&m->bumps_shared)) < 0)
        return -1;
    if (render_freshness(m, out) < 0)
        return -1;
    if (cache != NULL) {
        struct cache_stats st;
        memset(&st, 0, sizeof(st));
        st.breaker = -1;
        cache->ops->stats(cache->self, &st);
        if (gauge(out, "respcache_cache_entries", "Entries in the cache.", st.keys) < 0 ||
            gauge(out, "respcache_cache_bytes", "Bytes used by cached entries.", st.bytes) < 0 ||
            gauge(out, "respcache_cache_max_bytes", "The cache's byte budget.", st.max_bytes) < 0 ||
            counter(out, "respcache_cache_evictions_total",
                    "Entries evicted to stay within the byte budget.", st.evictions) < 0 ||
            counter(out, "respcache_cache_sets_total", "Entries stored.", st.sets) < 0 ||
            counter(out, "respcache_cache_local_hits_total",
                    "Lookups that found their entry in this process's memory, without a round "
                    "trip to Redis (memory: every entry found; tiered: L1 entries proven "
                    "current; redis: none).",
                    st.local_hits) < 0 ||
            counter(out, "respcache_cache_errors_total", "Cache provider errors.", st.errors) < 0)
            return -1;
        if (st.breaker >= 0 && gauge(out, "respcache_redis_breaker_state",
                                     "Redis circuit breaker: 0 closed, 1 open, 2 half-open.",
                                     (uint64_t)st.breaker) < 0)
            return -1;
    }
    return 0;
}
