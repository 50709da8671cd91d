/*
 * handler_read.c - the read path: cache-aside with tag generations, plus
 * what keeps it fresh under load.
 *
 * One function, entry_state (cache/entry.c), decides what an entry is
 * good for; this file acts on it:
 *   FRESH          answered as HIT (on the event loop for the memory
 *                  provider: no allocation, no lock beyond the shard's);
 *   STALE_EXPIRED  past its TTL, inside stale_while_revalidate, and
 *   STALE_SOFT     soft-purged: answered at once as STALE with Age, and one
 *                  refresh is handed to the server (st->after) to run on a
 *                  database worker after the response is finished;
 *   ERROR_ONLY     inside stale_if_error only: a miss, but answered as
 *                  STALE when the database fails (down, past the statement
 *                  timeout, or the worker pool so busy that the request
 *                  waited longer than the statement timeout), or at once
 *                  while the health prober says it is down;
 *   DEAD           a hard tag bump or past every window: never answered.
 *
 * Misses are coalesced (singleflight.c): the first one of a key queries,
 * the others wait for it (bounded by cache.singleflight_wait_ms) and look
 * again; when the leader found the database unavailable they answer
 * stale-if-error or 503 at once instead of queueing more doomed queries.
 * A provider with a lock op (Redis) extends this across instances: the
 * leader also takes the key's shared lock, or polls for the entry another
 * instance is filling (taking the lock over when its holder is done), and
 * a refresh or a warm-up fill skips a key whose lock another instance
 * holds. A stale key gets one queued refresh at a time (a claim in a
 * second table, which nobody waits on: a refresh may sit in the queue
 * behind requests); once running, the refresh leads the key's flight like
 * a miss, first looks again, and skips the query when another fill got
 * there first.
 *
 * Every fill records the generations read BEFORE its query (DESIGN.md), so
 * a write that commits meanwhile makes the new entry invalid at birth; the
 * waiters of a flight whose entry was born invalid query themselves.
 */
#include "handler_internal.h"

#include "http.h"
#include "log.h"
#include "rowjson.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How often a miss polls for an entry another instance is filling. */
#define REMOTE_POLL_MS 20

struct handler_task {
    struct workers_job job;
    struct singleflight_flight *claim; /* in h->refreshing: one refresh per key */
    struct handler_state st;
};

/* ---- small helpers ------------------------------------------------------ */

static int64_t seconds_ms(int s)
{
    return (int64_t)s * 1000;
}

/* Has the health prober seen the database down? Unknown counts as up. */
static bool db_known_down(struct handler *h)
{
    struct health_status hs;

    if (h->health == NULL)
        return false;
    health_get(h->health, &hs);
    return !hs.db_ok && hs.checked_ms != 0;
}

static void flight_end(struct handler *h, struct singleflight_flight *f, bool unavailable)
{
    if (f == NULL)
        return;
    singleflight_done(h->sf, f, unavailable);
    metrics_singleflight_inflight(h->metrics, -1);
}

static bool within(const void *p, const void *base, size_t len)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return a >= b && a < b + len;
}

/* Copy a request's state for a task that outlives it: values and tags
 * that point into the original's scratch are re-pointed into the copy. */
static void state_copy(struct handler_state *dst, const struct handler_state *src)
{
    memcpy(dst, src, sizeof(*dst));
    for (size_t i = 0; i < ROUTER_MAX_PARAMS; i++)
        if (within(src->m.values[i].s, src->m.scratch, ROUTER_SCRATCH))
            dst->m.values[i].s = dst->m.scratch + (src->m.values[i].s - src->m.scratch);
    for (size_t i = 0; i < src->ntags && i < ENTRY_MAX_TAGS; i++)
        if (within(src->tags[i].s, src->tagbuf, HANDLER_TAGS_MAX))
            dst->tags[i].s = dst->tagbuf + (src->tags[i].s - src->tagbuf);
    dst->after = NULL;
}

/* ---- lookup ------------------------------------------------------------- */

/* Get st's entry and the current generations of its tags (into st->gens).
 * 1: found and decoded (release v); 0: absent or undecodable; -1: provider
 * error (the generations are unknown, so nothing may be stored: the
 * request is no longer cacheable). */
static int fetch(struct handler *h, struct handler_state *st, struct cache_value *v,
                 struct entry_view *e)
{
    struct cache *c = h->cache;
    int rc = c->ops->get(c->self, st->key, st->klen, st->tags, st->ntags, v, st->gens);

    if (rc < 0) {
        st->cacheable = false;
        st->cache_error = true;
        return -1;
    }
    if (rc == 1 && entry_decode(v->data, v->len, e) < 0) {
        c->ops->release(c->self, v);
        return 0;
    }
    return rc;
}

static enum entry_state classify(const struct handler_state *st, const struct entry_view *e,
                                 uint64_t now)
{
    const struct route *r = st->m.route;
    return entry_state(e, st->gens, st->ntags, now, seconds_ms(r->stale_while_revalidate),
                       seconds_ms(r->stale_if_error));
}

static void answer(struct handler *h, struct handler_state *st, const struct rc_request *req,
                   const struct rc_io *io, const struct entry_view *e, uint64_t now, bool stale)
{
    char etag[ENTRY_ETAG_LEN + 1];
    const char *xc = stale ? "STALE" : "HIT";
    struct reply r = {.status = e->status, .x_cache = xc, .etag = etag, .no_cache = true};

    r.age = (long)((now > e->filled_at_ms ? now - e->filled_at_ms : 0) / 1000);
    entry_etag(e->etag, etag);
    if (e->status == 200 && req->if_none_match != NULL &&
        http_etag_matches(req->if_none_match, etag, ENTRY_ETAG_LEN))
        r.status = 304;
    handler_send_reply(io, st, &r, e->body, e->body_len);
    st->cache_result = xc;
    metrics_cache(h->metrics, st->metric_route, stale ? METRICS_STALE : METRICS_HIT);
}

/* Refreshes queued or running at once: half the database workers (at
 * least one), so that the others stay free for misses and writes however
 * many keys go stale together. A key skipped now is refreshed by a later
 * STALE answer. */
static int refresh_limit(const struct handler *h)
{
    return h->cfg->threads > 1 ? h->cfg->threads / 2 : 1;
}

/* Hand one refresh of st's key to the server (st->after), unless one is
 * running, the workers have enough refreshes already, or the database is
 * known to be down. The allocation happens once per stale key and
 * refresh, never on a fresh hit. */
static void schedule_refresh(struct handler *h, struct handler_state *st)
{
    struct singleflight_flight *f;
    struct handler_task *t;

    if (st->after != NULL || atomic_load(&h->refreshes) >= refresh_limit(h) ||
        singleflight_try(h->refreshing, st->key, st->klen, &f) != SINGLEFLIGHT_LEADER)
        return;
    if (atomic_fetch_add(&h->refreshes, 1) >= refresh_limit(h) || db_known_down(h) ||
        (t = malloc(sizeof(*t))) == NULL) {
        atomic_fetch_sub(&h->refreshes, 1);
        singleflight_done(h->refreshing, f, false);
        return;
    }
    memset(&t->job, 0, sizeof(t->job));
    t->claim = f;
    state_copy(&t->st, st);
    st->after = t;
}

/* Answer st's request from the cache if its entry allows it (see the file
 * comment). db_failed: the database just failed this request, so the
 * stale-if-error window counts. True when answered. */
static bool lookup(struct handler *h, struct handler_state *st, const struct rc_request *req,
                   const struct rc_io *io, bool db_failed)
{
    struct cache_value v;
    struct entry_view e;
    bool served = true;
    uint64_t now;
    enum entry_state s;

    if (fetch(h, st, &v, &e) != 1)
        return false;
    now = (uint64_t)rc_wall_ms();
    s = classify(st, &e, now);
    switch (s) {
    case ENTRY_FRESH:
        answer(h, st, req, io, &e, now, false);
        break;
    case ENTRY_STALE_EXPIRED:
    case ENTRY_STALE_SOFT:
        answer(h, st, req, io, &e, now, true);
        if (db_failed) {
            metrics_stale(h->metrics, METRICS_STALE_ERROR);
        } else {
            metrics_stale(h->metrics,
                          s == ENTRY_STALE_SOFT ? METRICS_STALE_SOFT : METRICS_STALE_EXPIRED);
            schedule_refresh(h, st);
        }
        break;
    case ENTRY_ERROR_ONLY:
        if (db_failed || db_known_down(h)) {
            answer(h, st, req, io, &e, now, true);
            metrics_stale(h->metrics, METRICS_STALE_ERROR);
        } else {
            served = false;
        }
        break;
    case ENTRY_DEAD:
    default:
        served = false;
        break;
    }
    h->cache->ops->release(h->cache->self, &v);
    return served;
}

bool handler_read_lookup(struct handler *h, struct handler_state *st, const struct rc_request *req,
                         const struct rc_io *io)
{
    return lookup(h, st, req, io, false);
}

bool handler_read_local(struct handler *h, struct handler_state *st, const struct rc_request *req,
                        const struct rc_io *io)
{
    struct cache *c = h->cache;
    struct cache_value v;
    struct entry_view e;
    uint64_t now;
    bool served = false;

    if (c->ops->get_local(c->self, st->key, st->klen, st->tags, st->ntags, &v, st->gens) != 1)
        return false;
    now = (uint64_t)rc_wall_ms();
    if (entry_decode(v.data, v.len, &e) == 0 && classify(st, &e, now) == ENTRY_FRESH) {
        answer(h, st, req, io, &e, now, false);
        served = true;
    }
    c->ops->release(c->self, &v);
    return served;
}

/* The database cannot answer now: stale-if-error, else 503. */
static void unavailable(struct handler *h, struct handler_state *st, const struct rc_request *req,
                        const struct rc_io *io, const char *message)
{
    if (st->cacheable && lookup(h, st, req, io, true))
        return;
    handler_send_error(io, st, 503, message, NULL);
}

/* ---- fill and store ----------------------------------------------------- */

/* Seconds from a "_ttl" column, or -1 when there is none. */
long handler_ttl_column(struct db_result *res)
{
    size_t len = 0;
    const char *v = db_result_column(res, "_ttl", &len);
    long t = 0;

    if (v == NULL || len == 0 || len > 9)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        t = t * 10 + (v[i] - '0');
    }
    return t;
}

/* Run the route's query and render its answer (200, or 404 when there is
 * no row) into w->body. 0, or the HTTP status of the failure with err. */
static int fill(struct handler *h, struct handler_worker *w, struct handler_state *st,
                struct fill *out, char *err)
{
    const struct route *route = st->m.route;
    struct db_result *res = NULL;
    struct rowjson_result view;
    enum db_status ds;
    int rc;

    ds = handler_exec(h, w, st, true, &res, err);
    if (ds != DB_OK)
        return handler_status_for_db(ds);
    buf_reset(&w->body);
    db_result_view(res, &view);
    rc = rowjson_render(&w->body, route->result, &view);
    if (rc < 0) {
        db_result_free(res);
        log_msg(LOG_ERROR, "response_too_large", "\"route\":\"%s\"", route->name);
        rc_err(err, "the response is too large");
        return 500;
    }
    if (rc == 1) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s not found", route->name);
        buf_reset(&w->body);
        if (http_error_json(&w->body, 404, msg) < 0) {
            db_result_free(res);
            rc_err(err, "out of memory");
            return 500;
        }
    }
    handler_fill_set(out, rc == 1 ? 404 : 200, rc == 1 ? route->negative_ttl : route->ttl, res,
                     &w->body);
    db_result_free(res);
    return 0;
}

void handler_fill_set(struct fill *fl, int status, long ttl, struct db_result *res, const buf *body)
{
    fl->status = status;
    fl->cap = handler_ttl_column(res);
    fl->ttl = fl->cap >= 0 && fl->cap < ttl ? fl->cap : ttl;
    fl->etag = entry_hash(body->data, body->len);
}

/* Store the answer just computed, fresh for its TTL and kept for the
 * longer of the route's two windows after that (never past a "_ttl" cap,
 * so a session is never answered after it expires). st->gens were read
 * before the query: an entry whose tags were bumped meanwhile is born
 * invalid and never answered (the race DESIGN.md closes). */
void handler_store(struct handler *h, struct handler_worker *w, struct handler_state *st,
                   const struct fill *fl)
{
    const struct route *route = st->m.route;
    struct entry_view e;
    uint64_t now = (uint64_t)rc_wall_ms();
    int window = route->stale_while_revalidate > route->stale_if_error
                     ? route->stale_while_revalidate
                     : route->stale_if_error;

    if (fl->ttl <= 0)
        return;
    memset(&e, 0, sizeof(e));
    e.status = fl->status;
    e.filled_at_ms = now;
    e.fresh_until_ms = now + (uint64_t)fl->ttl * 1000;
    e.stale_until_ms = e.fresh_until_ms + (uint64_t)seconds_ms(window);
    if (fl->cap >= 0 && now + (uint64_t)fl->cap * 1000 < e.stale_until_ms)
        e.stale_until_ms = now + (uint64_t)fl->cap * 1000;
    e.etag = fl->etag;
    e.ntags = st->ntags;
    memcpy(e.gens, st->gens, st->ntags * sizeof(uint64_t));
    e.body = w->body.data;
    e.body_len = w->body.len;
    buf_reset(&w->entry);
    if (entry_encode(&w->entry, &e) < 0 ||
        h->cache->ops->set(h->cache->self, st->key, st->klen, w->entry.data, w->entry.len,
                           (int64_t)(e.stale_until_ms - now)) < 0)
        log_msg(LOG_WARN, "cache_set_failed", "\"route\":\"%s\"", route->name);
}

/* ---- the slow stage ----------------------------------------------------- */

/* The key's lock shared across instances (a provider with a lock op):
 * 1 taken (unlock it after the fill), 0 held by another instance, -1 no
 * such op or an error (go on without it). It expires after the longest a
 * fill can take: a connect, then a query and its one retry (db.c). */
static int remote_lock(struct handler *h, struct handler_worker *w, struct handler_state *st)
{
    struct cache *c = h->cache;

    if (c->ops->lock == NULL)
        return -1;
    return c->ops->lock(c->self, st->key, st->klen, w->lock_token,
                        (int64_t)h->cfg->db_connect_timeout_ms +
                            2 * ((int64_t)h->cfg->db_statement_timeout_ms + 1000));
}

static void remote_unlock(struct handler *h, struct handler_worker *w, struct handler_state *st)
{
    (void)h->cache->ops->unlock(h->cache->self, st->key, st->klen, w->lock_token);
}

/* Across instances: take the key's shared lock (*locked), or poll for the
 * entry another instance is filling, bounded by the single-flight wait.
 * A poll that finds no entry tries the lock again: its holder is done
 * (its entry born invalid, or its query failed) or gone, and this request
 * leads instead of waiting out the bound. True when answered. */
static bool remote_flight(struct handler *h, struct handler_worker *w, struct handler_state *st,
                          const struct rc_request *req, const struct rc_io *io, bool *locked)
{
    int64_t deadline = rc_mono_ms() + h->cfg->cache_singleflight_wait_ms;
    int lr = remote_lock(h, w, st);

    while (lr == 0 && rc_mono_ms() < deadline && st->cacheable) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = REMOTE_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        if (lookup(h, st, req, io, false)) {
            metrics_singleflight_wait(h->metrics, 0);
            return true;
        }
        lr = remote_lock(h, w, st);
        if (lr != 0)
            metrics_singleflight_wait(h->metrics, 0);
    }
    *locked = lr == 1;
    if (lr == 0)
        metrics_singleflight_wait(h->metrics, 1);
    return false;
}

static void read_and_answer(struct handler *h, struct handler_worker *w, struct handler_state *st,
                            const struct rc_request *req, const struct rc_io *io,
                            struct singleflight_flight *f, bool locked)
{
    char err[RC_ERRBUF], etag[ENTRY_ETAG_LEN + 1];
    struct fill fl;
    struct reply r = {.age = -1, .no_cache = true};
    int rc = fill(h, w, st, &fl, err);

    if (rc == 0 && st->cacheable)
        handler_store(h, w, st, &fl);
    if (locked)
        remote_unlock(h, w, st);
    /* Waiters look again now: the entry is in place (or the query failed). */
    flight_end(h, f, rc == 503);
    if (rc == 503) {
        unavailable(h, st, req, io, err);
        return;
    }
    if (rc != 0) {
        handler_send_error(io, st, rc, err, NULL);
        return;
    }
    entry_etag(fl.etag, etag);
    if (st->cacheable) {
        r.x_cache = "MISS";
        metrics_cache(h->metrics, st->metric_route, METRICS_MISS);
    } else {
        r.x_cache = "BYPASS";
        metrics_cache(h->metrics, st->metric_route,
                      st->cache_error ? METRICS_CACHE_ERROR : METRICS_BYPASS);
    }
    st->cache_result = r.x_cache;
    r.status = fl.status;
    r.etag = etag;
    if (fl.status == 200 && req->if_none_match != NULL &&
        http_etag_matches(req->if_none_match, etag, ENTRY_ETAG_LEN))
        r.status = 304;
    handler_send_reply(io, st, &r, w->body.data, w->body.len);
}

void handler_read_slow(struct handler *h, struct handler_worker *w, struct handler_state *st,
                       const struct rc_request *req, const struct rc_io *io)
{
    struct singleflight_flight *f = NULL;
    bool locked = false;
    int64_t waited_ms = (rc_mono_us() - st->started_us) / 1000;
    int wait_ms = h->cfg->cache_singleflight_wait_ms;

    /* A remote provider's lookup happens here, off the event loop. */
    if (st->cacheable && !st->looked_up) {
        st->looked_up = true;
        if (lookup(h, st, req, io, false))
            return;
    }
    /* Queued longer than a query may run: the pool is exhausted. Adding
     * this query to the pile helps nobody. */
    if (waited_ms > h->cfg->db_statement_timeout_ms) {
        unavailable(h, st, req, io, "the database is overloaded");
        return;
    }
    if (st->cacheable && wait_ms > 0) {
        enum singleflight_role role = singleflight_begin(h->sf, st->key, st->klen, wait_ms, &f);
        switch (role) {
        case SINGLEFLIGHT_LEADER:
            if (f != NULL)
                metrics_singleflight_inflight(h->metrics, 1);
            /* Another flight may have stored the entry since our lookup. */
            if (lookup(h, st, req, io, false)) {
                flight_end(h, f, false);
                return;
            }
            break;
        case SINGLEFLIGHT_FAILED:
            metrics_singleflight_wait(h->metrics, 0);
            unavailable(h, st, req, io, "the database is unavailable");
            return;
        case SINGLEFLIGHT_SHARED:
        case SINGLEFLIGHT_TIMEOUT:
        default:
            metrics_singleflight_wait(h->metrics, role == SINGLEFLIGHT_TIMEOUT);
            /* The leader's entry, unless its tags were bumped meanwhile. */
            if (lookup(h, st, req, io, false))
                return;
            break;
        }
    }
    if (f != NULL && st->cacheable && h->cache->ops->lock != NULL &&
        remote_flight(h, w, st, req, io, &locked)) {
        flight_end(h, f, false);
        return;
    }
    read_and_answer(h, w, st, req, io, f, locked);
}

/* ---- tasks: refreshes --------------------------------------------------- */

struct workers_job *handler_task_job(struct handler_task *t)
{
    return &t->job;
}

struct handler_task *handler_task_of(struct workers_job *job)
{
    return (struct handler_task *)(void *)((char *)job - offsetof(struct handler_task, job));
}

/* Replace st's stale entry, leading its flight so that misses arriving
 * meanwhile wait for this query: look again (another fill may have got
 * there first; the generations are read here, before the query), then
 * query and store. Skipped when a miss of the key is querying already. */
static void refresh(struct handler *h, struct handler_worker *w, struct handler_state *st)
{
    struct singleflight_flight *f;
    struct cache_value v;
    struct entry_view e;
    struct fill fl;
    char err[RC_ERRBUF];
    int rc, locked;

    if (singleflight_try(h->sf, st->key, st->klen, &f) != SINGLEFLIGHT_LEADER)
        return;
    metrics_singleflight_inflight(h->metrics, 1);
    locked = remote_lock(h, w, st);
    if (locked == 0) {
        flight_end(h, f, false); /* another instance is refreshing it */
        return;
    }
    rc = fetch(h, st, &v, &e);
    if (rc < 0) {
        flight_end(h, f, false); /* the generations are unknown: nothing may be stored */
        goto out;
    }
    if (rc == 1) {
        enum entry_state s = classify(st, &e, (uint64_t)rc_wall_ms());
        h->cache->ops->release(h->cache->self, &v);
        if (s == ENTRY_FRESH) {
            flight_end(h, f, false);
            goto out;
        }
    }
    rc = fill(h, w, st, &fl, err);
    metrics_refresh(h->metrics, rc == 0);
    if (rc == 0)
        handler_store(h, w, st, &fl);
    else
        log_msg(LOG_WARN, "refresh_failed", "\"route\":\"%s\",\"status\":%d", st->m.route->name,
                rc);
    flight_end(h, f, rc == 503);
out:
    if (locked == 1)
        remote_unlock(h, w, st);
}

void handler_task_run(struct handler *h, struct handler_worker *w, struct handler_task *t)
{
    refresh(h, w, &t->st);
    handler_task_free(h, t);
}

void handler_task_free(struct handler *h, struct handler_task *t)
{
    if (t == NULL)
        return;
    singleflight_done(h->refreshing, t->claim, false);
    atomic_fetch_sub(&h->refreshes, 1);
    free(t);
}

/* ---- warm-up ------------------------------------------------------------ */

int handler_warm(struct handler *h, struct handler_worker *w, struct handler_state *st,
                 int route_index, const char *uri, char *errbuf)
{
    const char *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : strlen(uri);
    struct singleflight_flight *f = NULL;
    struct cache_value v;
    struct entry_view e;
    struct fill fl;
    char err[RC_ERRBUF] = "";
    int rc, locked, stored = 0;

    if (h->cache == NULL)
        return rc_err(errbuf, "no cache provider");
    memset(&st->m.values, 0, sizeof(st->m.values));
    st->method = RC_GET;
    st->cacheable = false;
    st->cache_error = false;
    st->after = NULL;
    if (router_match(h->router, RC_GET, uri, plen, q ? q + 1 : NULL, &st->m, err) != ROUTER_OK)
        return rc_err(errbuf, "%.128s: %s", uri, err[0] ? err : "no GET route matches");
    if (st->m.route_index != route_index || st->m.route->ttl <= 0 ||
        !handler_key_and_tags(st->m.route, st))
        return rc_err(errbuf, "%.128s: not a cached GET of the warm entry's route", uri);
    st->cacheable = true;
    st->metric_route = st->m.route_index;
    if (singleflight_try(h->sf, st->key, st->klen, &f) != SINGLEFLIGHT_LEADER)
        return 0; /* a request is filling it right now */
    metrics_singleflight_inflight(h->metrics, 1);
    locked = remote_lock(h, w, st);
    if (locked == 0) {
        flight_end(h, f, false); /* another instance is filling it right now */
        return 0;
    }
    rc = fetch(h, st, &v, &e);
    if (rc < 0) {
        flight_end(h, f, false);
        stored = rc_err(errbuf, "the cache is unavailable");
        goto out;
    }
    if (rc == 1) {
        enum entry_state s = classify(st, &e, (uint64_t)rc_wall_ms());
        h->cache->ops->release(h->cache->self, &v);
        if (s == ENTRY_FRESH) {
            flight_end(h, f, false);
            goto out;
        }
    }
    rc = fill(h, w, st, &fl, err);
    if (rc == 0 && fl.ttl > 0) {
        handler_store(h, w, st, &fl);
        stored = 1;
    }
    flight_end(h, f, rc == 503);
    if (rc != 0)
        stored = rc_err(errbuf, "%.128s: %s", uri, err);
out:
    if (locked == 1)
        remote_unlock(h, w, st);
    return stored;
}
