/*
 * handler_write.c - the write path: read and check the body, run the
 * route's statement (one transaction), invalidate, optionally store the
 * answer for the route's GET twin (write-through), answer.
 *
 * Invalidation. After the commit the worker bumps, in one call, the tags
 * of the route's invalidate templates and the tags of the notifications
 * its own transaction sent (tables' respcache_notify triggers, cascades
 * included; db_own_notifies). It records those notifications in the
 * ownnotify table first, so the listener thread, which receives them too,
 * does not bump the same tags a second time a few ms later (ownnotify.h).
 * The bump carries the transaction's name from those notifications, so on
 * a shared cache the other instances' listeners, which hear them too, bump
 * these tags only if this bump has not (cache.h, bump_tags_once).
 *
 * Write-through (route.write_through). A PATCH that answers the row it
 * wrote already holds what the next GET of that row would query. Storing
 * it under the GET's key is safe only if nothing else changed the row's
 * tags meanwhile; the tag generations tell: they are read before the
 * statement (g0) and again after the bump (g1). The answer is stored, with
 * g1, only if every tag moved by exactly our own bump (g1 = g0 + 1 for a
 * tag we bumped, g1 = g0 for the others; on a shared cache the +1 may be
 * another instance's bump of our own transaction, made after its commit
 * too, which is as good). Any other change that committed
 * after g0 was read bumped a tag before g1 was read (then the check fails
 * and nothing is stored) or bumps it later (then the entry is born valid
 * and dies with that bump, as any filled entry would). The statement's
 * snapshot is taken after g0 was read, so the answer includes every change
 * whose bump g0 saw. From the bump to the store the write holds the key's
 * single-flight, so a reader that misses meanwhile waits for the entry.
 * Write-throughs of one entry in this process take turns (write_turn), so
 * two PATCHes of a hot row do not each see the other's bump and both skip.
 */
#include "handler_internal.h"

#include "body.h"
#include "log.h"
#include "notify.h"
#include "ownnotify.h"
#include "rowjson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Tags deduplicated while the set is this small; past it (a cascade over
 * many rows) a tag may be bumped twice, which only costs write-through. */
#define BUMP_DEDUPE_MAX 64

struct tagref {
    size_t off, len;
};

/* ---- the request body and random params ---------------------------------- */

/* Read the whole request body into w->reqbody. 0, 413 or 400. */
static int read_body(struct handler *h, struct handler_worker *w, struct handler_state *st,
                     const struct rc_io *io)
{
    size_t max = (size_t)h->cfg->max_body_bytes;

    buf_reset(&w->reqbody);
    for (;;) {
        char chunk[16384];
        long n = io->read(io->ctx, chunk, sizeof(chunk));
        if (n < 0)
            return 400;
        if (n == 0)
            break;
        if (w->reqbody.len + (size_t)n > max)
            return 413;
        if (buf_append(&w->reqbody, chunk, (size_t)n) < 0)
            return 413;
    }
    st->body_consumed = true;
    return 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Fill random params from the OS CSPRNG, base64url without padding, into
 * the match's scratch. 0 or -1. */
static int fill_random(struct router_match *m)
{
    const struct route *route = m->route;

    for (size_t i = 0; i < route->nparams; i++) {
        const struct route_param *p = &route->params[i];
        unsigned char raw[64];
        size_t n = p->random_bytes, got = 0, o = 0;
        char *out;

        if (p->from != PARAM_FROM_RANDOM)
            continue;
        if (n == 0 || n > sizeof(raw) || m->scratch_used + (n * 4 + 2) / 3 + 1 > ROUTER_SCRATCH)
            return -1;
        while (got < n) {
            ssize_t r = getrandom(raw + got, n - got, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return -1;
            got += (size_t)r;
        }
        out = m->scratch + m->scratch_used;
        for (size_t j = 0; j < n; j += 3) {
            uint32_t v = (uint32_t)raw[j] << 16;
            size_t left = n - j;
            if (left > 1)
                v |= (uint32_t)raw[j + 1] << 8;
            if (left > 2)
                v |= raw[j + 2];
            out[o++] = b64url[(v >> 18) & 63];
            out[o++] = b64url[(v >> 12) & 63];
            if (left > 1)
                out[o++] = b64url[(v >> 6) & 63];
            if (left > 2)
                out[o++] = b64url[v & 63];
        }
        out[o] = '\0';
        m->values[i].s = out;
        m->values[i].len = o;
        m->values[i].present = true;
        m->scratch_used += o + 1;
    }
    return 0;
}

/* ---- the set of tags to bump --------------------------------------------- */

static void bumps_reset(struct handler_worker *w)
{
    buf_reset(&w->bumptext);
    buf_reset(&w->bumpidx);
}

static size_t bumps_count(const struct handler_worker *w)
{
    return w->bumpidx.len / sizeof(struct tagref);
}

static bool bumps_has(const struct handler_worker *w, const char *s, size_t len)
{
    const struct tagref *t = (const struct tagref *)(const void *)w->bumpidx.data;
    for (size_t i = 0, n = bumps_count(w); i < n; i++)
        if (t[i].len == len && memcmp(w->bumptext.data + t[i].off, s, len) == 0)
            return true;
    return false;
}

static int bumps_add(struct handler_worker *w, const char *s, size_t len)
{
    struct tagref t = {w->bumptext.len, len};

    if (bumps_count(w) < BUMP_DEDUPE_MAX && bumps_has(w, s, len))
        return 0;
    if (buf_append(&w->bumptext, s, len) < 0 || buf_append(&w->bumpidx, &t, sizeof(t)) < 0)
        return -1;
    return 0;
}

/* Bump the whole set in one provider call. True on success (or nothing). */
static bool bumps_apply(struct handler *h, struct handler_worker *w)
{
    const struct tagref *t = (const struct tagref *)(const void *)w->bumpidx.data;
    size_t n = bumps_count(w);
    struct rc_str *v;
    bool ok;
    int left;

    if (n == 0)
        return true;
    buf_reset(&w->bumpvec);
    if (buf_reserve(&w->bumpvec, n * sizeof(*v)) == 0) {
        v = (struct rc_str *)(void *)w->bumpvec.data;
        for (size_t i = 0; i < n; i++)
            v[i] = (struct rc_str){w->bumptext.data + t[i].off, t[i].len};
    } else { /* out of memory: everything, which needs none */
        static const struct rc_str all = {CACHE_GLOBAL_TAG, 1};
        v = (struct rc_str *)&all;
        n = 1;
    }
    /* Bumped after the commit: with the transaction's name, so that the
     * other instances' listeners, hearing the same notifications, leave
     * these tags (and the answer written through under them) alone. */
    left = cache_bump_once(h->cache, v, n, &w->own_tx);
    ok = left >= 0;
    metrics_invalidation(h->metrics, (unsigned)n, ok);
    if (left > 0) /* another instance's listener was first: its bump counts */
        metrics_bumps_shared(h->metrics, (unsigned)left);
    return ok;
}

/* The route's invalidate templates, rendered with the params and the
 * result row. False if one could not be rendered. */
static bool add_route_tags(struct handler_worker *w, struct handler_state *st,
                           struct db_result *res)
{
    const struct route *route = st->m.route;
    char tag[HANDLER_TAGS_MAX];
    bool ok = true;

    for (size_t i = 0; i < route->ninvalidate; i++) {
        int len =
            router_render(&route->invalidate[i], &st->m, db_result_column, res, tag, sizeof(tag));
        if (len < 0 || bumps_add(w, tag, (size_t)len) < 0) {
            log_msg(LOG_ERROR, "invalidate_render_failed", "\"route\":\"%s\",\"template\":%d",
                    route->name, (int)i);
            ok = false;
        }
    }
    return ok;
}

struct own_ctx {
    struct handler_worker *w;
    bool ok;
    bool first; /* no payload seen yet */
};

/* A notification our own transaction sent: its tags join the set and its
 * payload is kept for release_own. One that cannot be parsed bumps
 * everything, as the listener would. */
static void on_own_notify(void *ctx, int pid, const char *payload)
{
    struct own_ctx *c = ctx;
    struct notify_msg *m = c->w->nmsg;

    (void)pid; /* db_own_notifies passes only this session's */
    if (payload == NULL)
        return;
    if (buf_append(&c->w->ownpay, payload, strlen(payload) + 1) < 0)
        c->ok = false;
    if (notify_parse(payload, m) < 0) {
        c->w->own_tx.len = 0;
        c->first = false;
        if (bumps_add(c->w, CACHE_GLOBAL_TAG, 1) < 0)
            c->ok = false;
        return;
    }
    if (c->first) { /* one transaction: every payload names the same one */
        memcpy(c->w->own_txbuf, m->tx, m->txlen + 1);
        c->w->own_tx = (struct rc_str){c->w->own_txbuf, m->txlen};
    } else if (c->w->own_tx.len != m->txlen || memcmp(c->w->own_tx.s, m->tx, m->txlen) != 0) {
        c->w->own_tx.len = 0;
    }
    c->first = false;
    for (size_t i = 0; i < m->ntags; i++)
        if (bumps_add(c->w, m->tags[i].s, m->tags[i].len) < 0)
            c->ok = false;
}

/* Right after the commit: start the set of tags to bump with what the
 * write's own transaction notified (cascades included). w->own_ok says
 * whether every payload and tag was kept. */
static void collect_own(struct handler_worker *w)
{
    struct own_ctx oc = {w, true, true};

    bumps_reset(w);
    w->own_tx = (struct rc_str){w->own_txbuf, 0};
    buf_reset(&w->ownpay);
    (void)db_own_notifies(w->db, on_own_notify, &oc);
    w->own_ok = oc.ok;
    if (!oc.ok) { /* a tag we could not keep: everything, to be safe */
        bumps_reset(w);
        (void)bumps_add(w, CACHE_GLOBAL_TAG, 1);
    }
}

/* After the bump: tell the listener which of its notifications need no
 * bump of its own (only if ours succeeded and covered every tag), then
 * let it stop waiting for this session (ownnotify_take). */
static void release_own(struct handler *h, struct handler_worker *w, int pid, bool bumped)
{
    if (h->own == NULL || pid == 0)
        return;
    if (bumped && w->own_ok)
        for (size_t off = 0; off < w->ownpay.len;) {
            const char *p = w->ownpay.data + off;
            if (ownnotify_put(h->own, pid, p, rc_mono_ms()) < 0)
                log_msg(LOG_WARN, "own_notify_untracked", NULL);
            off += strlen(p) + 1;
        }
    buf_reset(&w->ownpay);
    ownnotify_end(h->own, pid);
}

/* Bump what the committed write changed: what collect_own found, and the
 * route's tags when the write found its row. False when a tag could not
 * be rendered or the provider failed (the answer then says so). */
static bool invalidate(struct handler *h, struct handler_worker *w, struct handler_state *st,
                       struct db_result *res, bool found)
{
    bool ok = true;

    if (h->cache == NULL)
        return true;
    if (found)
        ok = add_route_tags(w, st, res);
    if (!bumps_apply(h, w)) {
        log_msg(LOG_ERROR, "invalidate_failed", "\"route\":\"%s\"", st->m.route->name);
        return false;
    }
    return ok;
}

/* ---- write-through ----------------------------------------------------------- */

/* Wait for this process's turn to write through the entry ws names. Two
 * writes of one entry that overlap would each see the other's bump and
 * both store nothing, so the next read queries; taking turns, each reads
 * the generations the previous one left and stores its answer. PostgreSQL
 * orders the writes of one row the same way (its row lock), so the wait
 * costs little. Bounded by the statement timeout; past it the write goes
 * unordered, which is still safe (the generation check decides). NULL: no
 * turn to give back (singleflight_done accepts it). */
static struct singleflight_flight *write_turn(struct handler *h, const struct handler_state *ws)
{
    int64_t until = rc_mono_ms() + h->cfg->db_statement_timeout_ms;

    for (;;) {
        struct singleflight_flight *f;
        int64_t left = until - rc_mono_ms();

        if (left <= 0)
            return NULL;
        switch (singleflight_begin(h->writing, ws->key, ws->klen, (int)left, &f)) {
        case SINGLEFLIGHT_LEADER:
            return f;
        case SINGLEFLIGHT_SHARED:
        case SINGLEFLIGHT_FAILED:
            continue; /* the write before us is done: our turn, unless another took it */
        default:
            return NULL;
        }
    }
}

/* Before the statement: the GET twin's key and tags (its params are the
 * write's params of the same names), this process's turn to write that
 * entry (*turn, NULL when there is no turn to give back) and the tags'
 * generations, into w->wt. 1 ready; 0 the route writes nothing through;
 * -1 it cannot this time (a param absent, a key too long, the provider
 * failed), which the caller counts once the write has succeeded. */
static int write_through_begin(struct handler *h, struct handler_worker *w,
                               const struct handler_state *st, struct singleflight_flight **turn)
{
    const struct route *t = st->m.route->write_through, *r = st->m.route;
    struct handler_state *ws = w->wt;

    *turn = NULL;
    if (t == NULL || h->cache == NULL || ws == NULL)
        return 0;
    ws->m.route = t;
    ws->m.route_index = (int)(t - h->cfg->routes);
    ws->m.scratch_used = 0;
    for (size_t i = 0; i < t->nparams; i++) {
        const struct rc_value *v = &st->m.values[r->write_through_from[i]];
        if (!v->present) /* an optional param the GET needs */
            return -1;
        ws->m.values[i] = *v; /* points into st: lives as long */
    }
    if (!handler_key_and_tags(t, ws))
        return -1;
    *turn = write_turn(h, ws);
    if (h->cache->ops->tag_gens(h->cache->self, ws->tags, ws->ntags, ws->gens) < 0) {
        /* Nothing will be stored: nothing to keep others waiting for. */
        singleflight_done(h->writing, *turn, false);
        *turn = NULL;
        return -1;
    }
    return 1;
}

/* After the commit and the bump: store the answer in w->body as the GET
 * twin's entry, if no other change moved its tags (see the top). */
static void write_through_end(struct handler *h, struct handler_worker *w, struct db_result *res)
{
    struct handler_state *ws = w->wt;
    uint64_t now[ENTRY_MAX_TAGS];
    const struct route *t = ws->m.route;
    struct fill fl;

    if (h->cache->ops->tag_gens(h->cache->self, ws->tags, ws->ntags, now) < 0) {
        metrics_write_through(h->metrics, METRICS_WT_ERROR);
        return;
    }
    for (size_t i = 0; i < ws->ntags; i++) {
        uint64_t want = ws->gens[i] + (bumps_has(w, ws->tags[i].s, ws->tags[i].len) ? 1 : 0);
        if (now[i] != want) {
            metrics_write_through(h->metrics, METRICS_WT_SKIPPED);
            return;
        }
    }
    memcpy(ws->gens, now, ws->ntags * sizeof(now[0]));
    handler_fill_set(&fl, 200, t->ttl, res, &w->body);
    handler_store(h, w, ws, &fl);
    metrics_write_through(h->metrics, METRICS_WT_STORED);
}

/* ---- the write ---------------------------------------------------------------- */

void handler_write_slow(struct handler *h, struct handler_worker *w, struct handler_state *st,
                        const struct rc_io *io)
{
    const struct route *route = st->m.route;
    struct db_result *res = NULL;
    struct rowjson_result view;
    char err[RC_ERRBUF], location[1024];
    enum db_status ds;
    struct singleflight_flight *flight = NULL, *turn;
    bool wt, bumped;
    int rc, pid, wtb;
    struct reply r = {.age = -1, .status = route->status};

    if (route->has_body) {
        rc = read_body(h, w, st, io);
        if (rc == 413) {
            snprintf(err, sizeof(err), "request body larger than %d bytes", h->cfg->max_body_bytes);
            handler_send_error(io, st, 413, err, NULL);
            return;
        }
        if (rc != 0) {
            handler_send_error(io, st, 400, "could not read the request body", NULL);
            return;
        }
        buf_reset(&w->store);
        rc = body_parse(&st->m, w->reqbody.data ? w->reqbody.data : "", w->reqbody.len, &w->store,
                        err);
        if (rc != 0) {
            handler_send_error(io, st, rc, err, NULL);
            return;
        }
    }
    if (fill_random(&st->m) < 0) {
        handler_send_error(io, st, 500, "could not generate a token", NULL);
        return;
    }
    wtb = write_through_begin(h, w, st, &turn);
    wt = wtb > 0;
    /* The listener may hear this write's notifications before this thread
     * has bumped their tags: tell it to wait for them (on the session that
     * runs the statement; writes never retry on another). */
    pid = db_backend_pid(w->db);
    if (h->own == NULL || !db_listening(w->db))
        pid = 0;
    else
        ownnotify_begin(h->own, pid);
    ds = handler_exec(h, w, st, false, &res, err);
    if (ds != DB_OK) {
        release_own(h, w, pid, false);
        singleflight_done(h->writing, turn, false);
        handler_send_error(io, st, handler_status_for_db(ds), err, NULL);
        return;
    }
    collect_own(w);
    buf_reset(&w->body);
    db_result_view(res, &view);
    rc = rowjson_render(&w->body, route->result, &view);
    if (rc == 1) {
        char msg[128];
        /* A trigger may have fired all the same. */
        release_own(h, w, pid, invalidate(h, w, st, res, false));
        singleflight_done(h->writing, turn, false);
        db_result_free(res);
        snprintf(msg, sizeof(msg), "%s: no such resource", route->name);
        handler_send_error(io, st, 404, msg, NULL);
        return;
    }
    /* Readers that miss between the bump and the store wait for the entry,
     * as for another reader's query, instead of querying themselves. Never
     * waits: a reader's query already running keeps its flight. */
    if (wt && rc == 0 &&
        singleflight_try(h->sf, w->wt->key, w->wt->klen, &flight) != SINGLEFLIGHT_LEADER)
        flight = NULL;
    /* The change has committed: invalidate before answering, even if the
     * body cannot be rendered, so no reader sees the old data after this. */
    bumped = invalidate(h, w, st, res, true);
    release_own(h, w, pid, bumped);
    if (wtb < 0 && rc == 0) /* a write that succeeded and could not write through */
        metrics_write_through(h->metrics, METRICS_WT_ERROR);
    if (!bumped) {
        r.extra = "X-Cache-Invalidation: failed";
        if (wt && rc == 0)
            metrics_write_through(h->metrics, METRICS_WT_ERROR);
    } else if (wt && rc == 0) {
        write_through_end(h, w, res);
    }
    singleflight_done(h->sf, flight, false);
    singleflight_done(h->writing, turn, false);
    if (rc < 0) {
        db_result_free(res);
        handler_send_error(io, st, 500, "the response is too large", NULL);
        return;
    }
    if (route->location != NULL && router_render(route->location, &st->m, db_result_column, res,
                                                 location, sizeof(location)) >= 0)
        r.location = location;
    db_result_free(res);
    if (route->result == RESULT_NONE)
        r.status = 204;
    handler_send_reply(io, st, &r, w->body.data, w->body.len);
}
