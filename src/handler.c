/*
 * handler.c - routing, the fast stage and responses. The read path
 * (cache-aside with tag generations, stale answers, single-flight) is
 * handler_read.c; the write path (mutation, invalidation, write-through)
 * is handler_write.c. See handler.h for the two stages and DESIGN.md for
 * why generations make invalidation race-free.
 *
 * The hit path (handler_fast on a fresh entry) does: route match and param
 * validation into the connection's scratch, key and tag rendering into the
 * same scratch, one provider get (a shard lock and lock-free generation
 * reads for the memory provider), an entry decode that only reads the
 * header, and two writes to the FastCGI stream. No heap allocation.
 */
#include "handler_internal.h"

#include "http.h"
#include "log.h"
#include "notify.h"
#include "rowjson.h"
#include "workers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_TYPE "application/json; charset=utf-8"

struct handler *handler_create(const struct rc_config *cfg, struct cache *cache,
                               struct metrics *metrics, struct health *health,
                               struct ownnotify *own, char *errbuf)
{
    struct handler *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        rc_err(errbuf, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->cache = cache;
    h->metrics = metrics;
    h->health = health;
    h->own = own;
    h->router = router_create(cfg->routes, cfg->nroutes, errbuf);
    if (h->router == NULL) {
        free(h);
        return NULL;
    }
    h->sf = singleflight_create();
    h->refreshing = singleflight_create();
    h->writing = singleflight_create();
    if (h->sf == NULL || h->refreshing == NULL || h->writing == NULL) {
        router_free(h->router);
        singleflight_free(h->sf);
        singleflight_free(h->refreshing);
        singleflight_free(h->writing);
        free(h);
        rc_err(errbuf, "out of memory");
        return NULL;
    }
    h->admin = admin_create(cfg, cache, metrics, health);
    if (h->admin == NULL) {
        router_free(h->router);
        singleflight_free(h->sf);
        singleflight_free(h->refreshing);
        singleflight_free(h->writing);
        free(h);
        rc_err(errbuf, "out of memory");
        return NULL;
    }
    return h;
}

void handler_free(struct handler *h)
{
    if (h == NULL)
        return;
    router_free(h->router);
    admin_free(h->admin);
    singleflight_free(h->sf);
    singleflight_free(h->refreshing);
    singleflight_free(h->writing);
    free(h);
}

struct handler_worker *handler_worker_create(struct handler *h)
{
    struct handler_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->h = h;
    w->db = db_conn_open(h->cfg);
    if (w->db == NULL) {
        free(w);
        return NULL;
    }
    /* Unique per worker and process: the pointer and the clocks. A lock
     * token only has to differ from every other holder's. */
    w->lock_token = (uint64_t)(uintptr_t)w ^ (uint64_t)rc_wall_ms() << 20 ^ (uint64_t)rc_mono_us();
    buf_init(&w->body, MAX_RESPONSE_BYTES);
    buf_init(&w->entry, MAX_RESPONSE_BYTES + 4096);
    buf_init(&w->reqbody, (size_t)h->cfg->max_body_bytes + 1);
    buf_init(&w->store, (size_t)h->cfg->max_body_bytes * 2 + 4096);
    buf_init(&w->bumptext, HANDLER_BUMP_TEXT_MAX);
    buf_init(&w->bumpidx, HANDLER_BUMP_TEXT_MAX);
    buf_init(&w->bumpvec, HANDLER_BUMP_TEXT_MAX);
    buf_init(&w->ownpay, HANDLER_OWN_PAYLOADS_MAX);
    w->wt = calloc(1, sizeof(*w->wt));
    w->nmsg = calloc(1, sizeof(*w->nmsg));
    if (w->wt == NULL || w->nmsg == NULL) {
        handler_worker_free(w);
        return NULL;
    }
    return w;
}

struct handler *handler_worker_handler(struct handler_worker *w)
{
    return w->h;
}

void handler_worker_listen_own(struct handler_worker *w)
{
    db_listen_own(w->db, w->h->own != NULL);
}

void handler_worker_idle(struct handler_worker *w)
{
    int64_t now = rc_mono_ms();

    if (now - w->drained_ms < WORKERS_IDLE_MS)
        return;
    w->drained_ms = now;
    db_idle(w->db);
}

void handler_worker_free(struct handler_worker *w)
{
    if (w == NULL)
        return;
    db_conn_close(w->db);
    buf_free(&w->body);
    buf_free(&w->entry);
    buf_free(&w->reqbody);
    buf_free(&w->store);
    buf_free(&w->bumptext);
    buf_free(&w->bumpidx);
    buf_free(&w->bumpvec);
    buf_free(&w->ownpay);
    free(w->wt);
    free(w->nmsg);
    free(w);
}

/* ---- responses ---------------------------------------------------------- */

void handler_send_reply(const struct rc_io *io, struct handler_state *st, const struct reply *r,
                        const char *body, size_t blen)
{
    struct http_head h;
    bool has_body = r->status != 204 && r->status != 304;

    h.n = 0;
    st->status = r->status;
    http_head_status(&h, r->status);
    if (has_body) {
        http_head_str(&h, "Content-Type", r->content_type ? r->content_type : JSON_TYPE);
        http_head_num(&h, "Content-Length", blen);
    }
    if (r->no_cache)
        http_head_str(&h, "Cache-Control", "no-cache");
    if (r->etag != NULL)
        http_head_str(&h, "ETag", r->etag);
    if (r->x_cache != NULL)
        http_head_str(&h, "X-Cache", r->x_cache);
    if (r->age >= 0)
        http_head_num(&h, "Age", (uint64_t)r->age);
    if (r->allow != NULL)
        http_head_str(&h, "Allow", r->allow);
    if (r->location != NULL)
        http_head_str(&h, "Location", r->location);
    if (r->retry_after)
        http_head_str(&h, "Retry-After", "1");
    if (r->status == 401)
        http_head_str(&h, "WWW-Authenticate", "Bearer");
    if (r->extra != NULL)
        http_head_line(&h, r->extra);

    if (io->write(io->ctx, h.data, http_head_end(&h)) < 0)
        return;
    if (has_body && st->method != RC_HEAD && blen > 0)
        (void)io->write(io->ctx, body, blen);
}

/* An error answer; allocation is fine here, errors are not the hit path. */
void handler_send_error(const struct rc_io *io, struct handler_state *st, int status,
                        const char *message, const char *allow)
{
    buf b;
    struct reply r = {.status = status, .age = -1, .allow = allow, .retry_after = status == 503};

    buf_init(&b, 8192);
    if (http_error_json(&b, status, message) < 0) {
        buf_free(&b);
        handler_send_reply(io, st, &r, "{\"error\":\"internal\",\"message\":\"out of memory\"}",
                           47);
        return;
    }
    handler_send_reply(io, st, &r, b.data, b.len);
    buf_free(&b);
}

int handler_status_for_db(enum db_status s)
{
    switch (s) {
    case DB_UNAVAILABLE:
        return 503;
    case DB_CONFLICT:
        return 409;
    case DB_INVALID:
        return 422;
    default:
        return 500;
    }
}

/* ---- the fast stage ----------------------------------------------------- */

/* Parse CONTENT_LENGTH; -1 when malformed. Absent means 0. */
static long long content_length(const char *s)
{
    long long v = 0;
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (1LL << 40))
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* Build the cache key and tag list of a GET into st. False when they do
 * not fit or a tag references an absent param: then the request bypasses
 * the cache. */
bool handler_key_and_tags(const struct route *route, struct handler_state *st)
{
    size_t used = 0;
    int n = router_cache_key(&st->m, st->key, sizeof(st->key));

    if (n < 0)
        return false;
    st->klen = (size_t)n;
    st->tags[0].s = CACHE_GLOBAL_TAG;
    st->tags[0].len = 1;
    st->ntags = 1;
    for (size_t i = 0; i < route->ntags && st->ntags < ENTRY_MAX_TAGS; i++) {
        n = router_render(&route->tags[i], &st->m, NULL, NULL, st->tagbuf + used,
                          sizeof(st->tagbuf) - used);
        if (n < 0)
            return false;
        st->tags[st->ntags].s = st->tagbuf + used;
        st->tags[st->ntags].len = (size_t)n;
        st->ntags++;
        used += (size_t)n + 1;
    }
    return true;
}

/* Count and (at debug level, or for 5xx) log a finished request. */
static void request_done(struct handler *h, struct handler_state *st, const struct rc_request *req)
{
    int64_t us = rc_mono_us() - st->started_us;
    enum log_level lvl = st->status >= 500 ? LOG_WARN : LOG_DEBUG;

    metrics_request(h->metrics, st->metric_route, st->status, us);
    if (log_enabled(lvl)) {
        char rid[64];
        const char *name =
            st->metric_route < (int)h->cfg->nroutes ? h->cfg->routes[st->metric_route].name : "-";
        log_msg(lvl, "request",
                "\"route\":\"%s\",\"method\":\"%s\",\"status\":%d,\"duration_ms\":%.3f,"
                "\"cache\":\"%s\",\"request_id\":\"%s\"",
                name, st->method ? config_method_name(st->method) : "other", st->status,
                (double)us / 1000.0, st->cache_result ? st->cache_result : "-",
                log_escape(req->request_id ? req->request_id : "", rid, sizeof(rid)));
    }
}

static void send_admin(struct handler *h, struct handler_state *st, const struct rc_request *req,
                       const struct rc_io *io)
{
    const char *uri = req->uri ? req->uri : "";
    const char *q = strchr(uri, '?');
    size_t path_len = q ? (size_t)(q - uri) : strlen(uri);
    struct admin_reply ar;
    struct reply r = {.age = -1};

    admin_handle(h->admin, (enum admin_endpoint)st->admin, st->method, uri, path_len,
                 q ? q + 1 : NULL, req->authorization, &ar);
    r.status = ar.status;
    r.content_type = ar.content_type;
    r.allow = ar.allow;
    r.retry_after = ar.retry_after;
    r.no_cache = st->admin == ADMIN_HEALTH || st->admin == ADMIN_METRICS;
    handler_send_reply(io, st, &r, ar.body.data, ar.body.len);
    buf_free(&ar.body);
}

static enum handler_next fast(struct handler *h, struct handler_state *st,
                              const struct rc_request *req, const struct rc_io *io)
{
    char err[RC_ERRBUF];
    const char *uri = req->uri ? req->uri : "";
    const char *q = strchr(uri, '?');
    size_t path_len = q ? (size_t)(q - uri) : strlen(uri);
    const struct route *route;
    enum router_status rs;
    enum admin_endpoint ae;

    st->cacheable = false;
    st->looked_up = false;
    st->body_consumed = false;
    st->cache_result = NULL;
    st->cache_error = false;
    st->after = NULL;
    st->status = 0;
    st->method = req->method ? http_method_parse(req->method) : 0;
    st->metric_route = (int)h->cfg->nroutes + METRICS_UNMATCHED;
    err[0] = '\0';

    ae = admin_match(uri, path_len);
    st->admin = (int)ae;
    if (ae != ADMIN_NONE) {
        st->metric_route = (int)h->cfg->nroutes + (ae == ADMIN_HEALTH    ? METRICS_HEALTH
                                                   : ae == ADMIN_METRICS ? METRICS_METRICS
                                                                         : METRICS_ADMIN);
        if (admin_needs_worker(h->admin, ae))
            return HANDLER_NEEDS_WORKER;
        send_admin(h, st, req, io);
        return HANDLER_DONE;
    }

    rs = router_match(h->router, st->method, uri, path_len, q ? q + 1 : NULL, &st->m, err);
    switch (rs) {
    case ROUTER_OK:
        break;
    case ROUTER_NOT_FOUND:
        handler_send_error(io, st, 404, "no such resource", NULL);
        return HANDLER_DONE;
    case ROUTER_METHOD_NOT_ALLOWED: {
        char allow[64];
        if (http_allow_header(st->m.allowed, allow, sizeof(allow)) < 0)
            allow[0] = '\0';
        snprintf(err, sizeof(err), "method not allowed; this resource allows %s", allow);
        handler_send_error(io, st, 405, err, allow);
        return HANDLER_DONE;
    }
    case ROUTER_BAD_REQUEST:
    default:
        handler_send_error(io, st, 400, err[0] ? err : "bad request", NULL);
        return HANDLER_DONE;
    }
    route = st->m.route;
    st->metric_route = st->m.route_index;

    if (route->method == RC_GET) {
        if (h->cache != NULL && (route->ttl > 0 || route->negative_ttl > 0) &&
            handler_key_and_tags(route, st)) {
            st->cacheable = true;
            st->looked_up = false;
            if (!h->cache->ops->remote) {
                st->looked_up = true;
                if (handler_read_lookup(h, st, req, io))
                    return HANDLER_DONE;
            } else if (h->cache->ops->get_local != NULL && handler_read_local(h, st, req, io)) {
                return HANDLER_DONE; /* a fresh L1 hit; anything else goes to a worker */
            }
        }
        return HANDLER_NEEDS_WORKER;
    }

    /* Writes: refuse what can be refused without reading the body. */
    long long clen = content_length(req->content_length);
    if (clen < 0) {
        handler_send_error(io, st, 400, "malformed Content-Length", NULL);
        return HANDLER_DONE;
    }
    if (clen > h->cfg->max_body_bytes) {
        snprintf(err, sizeof(err), "request body larger than %d bytes", h->cfg->max_body_bytes);
        handler_send_error(io, st, 413, err, NULL);
        return HANDLER_DONE;
    }
    if (route->has_body && !http_content_type_is_json(req->content_type)) {
        handler_send_error(io, st, 415,
                           "the request body must be JSON (Content-Type: application/json)", NULL);
        return HANDLER_DONE;
    }
    return HANDLER_NEEDS_WORKER;
}

/* ---- the slow stage ------------------------------------------------------ */

enum db_status handler_exec(struct handler *h, struct handler_worker *w, struct handler_state *st,
                            bool idempotent, struct db_result **res, char *err)
{
    int64_t t0 = rc_mono_us();
    enum db_status ds =
        db_exec(w->db, st->m.route_index, st->m.route, st->m.values, idempotent, res, err);
    metrics_db_query(h->metrics, rc_mono_us() - t0, ds == DB_OK);
    return ds;
}

enum handler_next handler_fast(struct handler *h, struct handler_state *st,
                               const struct rc_request *req, const struct rc_io *io)
{
    st->started_us = rc_mono_us();
    if (fast(h, st, req, io) == HANDLER_NEEDS_WORKER)
        return HANDLER_NEEDS_WORKER;
    request_done(h, st, req);
    return HANDLER_DONE;
}

void handler_slow(struct handler *h, struct handler_worker *w, struct handler_state *st,
                  const struct rc_request *req, const struct rc_io *io)
{
    if (st->admin != ADMIN_NONE)
        send_admin(h, st, req, io);
    else if (st->m.route->method == RC_GET)
        handler_read_slow(h, w, st, req, io);
    else
        handler_write_slow(h, w, st, io);
    request_done(h, st, req);
}
