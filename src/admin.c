/*
 * admin.c - health, metrics and cache administration; see admin.h.
 *
 * Purges are tag-generation bumps where possible: DELETE /cache bumps the
 * global generation ("*"), DELETE /cache/tags/{tag} bumps one tag; both are
 * O(1) whatever the number of entries. ?mode=soft bumps the tag's soft part
 * instead (cache.h): its entries turn stale, not dead, and are answered
 * STALE while one refresh each replaces them, so a purge after a deploy
 * does not send every reader to the database at once. Only DELETE
 * /cache/keys walks the keyspace, incrementally (the provider's purge holds
 * one shard lock at a time, or SCANs in batches for Redis).
 */
#include "admin.h"

#include "http.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TAG_MAX     256
#define PATTERN_MAX 512

struct admin {
    const struct rc_config *cfg;
    struct cache *cache;
    struct metrics *metrics;
    struct health *health;
};

struct admin *admin_create(const struct rc_config *cfg, struct cache *cache,
                           struct metrics *metrics, struct health *health)
{
    struct admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->cfg = cfg;
    a->cache = cache;
    a->metrics = metrics;
    a->health = health;
    return a;
}

void admin_free(struct admin *a)
{
    free(a);
}

static bool path_is(const char *path, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(path, lit, n) == 0;
}

enum admin_endpoint admin_match(const char *path, size_t len)
{
    if (path_is(path, len, "/health"))
        return ADMIN_HEALTH;
    if (path_is(path, len, "/metrics"))
        return ADMIN_METRICS;
    if (path_is(path, len, "/cache"))
        return ADMIN_CACHE_ALL;
    if (path_is(path, len, "/cache/stats"))
        return ADMIN_CACHE_STATS;
    if (path_is(path, len, "/cache/keys"))
        return ADMIN_CACHE_KEYS;
    if (len > 12 && memcmp(path, "/cache/tags/", 12) == 0)
        return ADMIN_CACHE_TAG;
    return ADMIN_NONE;
}

bool admin_needs_worker(const struct admin *a, enum admin_endpoint e)
{
    switch (e) {
    case ADMIN_CACHE_ALL:
    case ADMIN_CACHE_TAG:
    case ADMIN_CACHE_KEYS:
        return a->cache != NULL;
    case ADMIN_CACHE_STATS:
        return a->cache != NULL && a->cache->ops->remote;
    default:
        return false;
    }
}

bool admin_token_ok(const char *authorization, const char *token)
{
    static const char prefix[] = "Bearer ";
    size_t tlen, glen;
    const char *given;
    unsigned char diff = 0;

    /* The scheme name is case-insensitive (RFC 9110 11.1); the token is not. */
    if (authorization == NULL || token == NULL ||
        strncasecmp(authorization, prefix, sizeof(prefix) - 1) != 0)
        return false;
    given = authorization + sizeof(prefix) - 1;
    glen = strlen(given);
    tlen = strlen(token);
    /* Time depends on the given length only, never on where they differ. */
    for (size_t i = 0; i < glen; i++)
        diff |= (unsigned char)(given[i] ^ token[i % (tlen ? tlen : 1)]);
    return diff == 0 && glen == tlen && tlen > 0;
}

static void error_reply(struct admin_reply *out, int status, const char *message)
{
    out->status = status;
    buf_reset(&out->body);
    if (http_error_json(&out->body, status, message) < 0)
        out->status = 500;
    out->retry_after = status == 503;
}

static void health_reply(struct admin *a, struct admin_reply *out)
{
    struct health_status st = {0};
    const char *status;

    if (a->health != NULL)
        health_get(a->health, &st);
    status = !st.db_ok ? "down" : !st.cache_ok ? "degraded" : "ok";
    if (buf_printf(&out->body,
                   "{\"status\":\"%s\",\"db\":{\"ok\":%s,\"latency_ms\":%.3f},"
                   "\"cache\":{\"provider\":\"%s\",\"ok\":%s,\"latency_ms\":%.3f}}",
                   status, st.db_ok ? "true" : "false", st.db_latency_ms, a->cfg->cache_provider,
                   st.cache_ok ? "true" : "false", st.cache_latency_ms) < 0) {
        error_reply(out, 500, "out of memory");
        return;
    }
    out->status = st.db_ok ? 200 : 503;
    out->retry_after = !st.db_ok;
}

static void stats_reply(struct admin *a, struct admin_reply *out)
{
    struct metrics_totals t = {0};
    struct cache_stats cs;
    double rate;

    memset(&cs, 0, sizeof(cs));
    if (a->metrics != NULL)
        metrics_totals(a->metrics, &t);
    if (a->cache != NULL)
        a->cache->ops->stats(a->cache->self, &cs);
    rate = t.hits + t.misses + t.stale > 0
               ? (double)(t.hits + t.stale) / (double)(t.hits + t.misses + t.stale)
               : 0.0;
    if (buf_printf(&out->body,
                   "{\"provider\":\"%s\",\"hits\":%llu,\"misses\":%llu,\"stale\":%llu,"
                   "\"sets\":%llu,\"deletes\":%llu,\"errors\":%llu,\"hit_rate\":%.4f,"
                   "\"keys\":%llu,\"bytes\":%llu,\"evictions\":%llu}",
                   a->cfg->cache_provider, (unsigned long long)t.hits, (unsigned long long)t.misses,
                   (unsigned long long)t.stale, (unsigned long long)cs.sets,
                   (unsigned long long)cs.deletes, (unsigned long long)(cs.errors + t.errors), rate,
                   (unsigned long long)cs.keys, (unsigned long long)cs.bytes,
                   (unsigned long long)cs.evictions) < 0) {
        error_reply(out, 500, "out of memory");
        return;
    }
    out->status = 200;
}

static void bump_reply(struct admin *a, const char *tag, size_t len, struct admin_reply *out,
                       bool echo_tag, bool soft)
{
    struct rc_str t = {tag, len};

    if (a->cache != NULL && (soft ? a->cache->ops->bump_tags_soft(a->cache->self, &t, 1)
                                  : a->cache->ops->bump_tags(a->cache->self, &t, 1)) < 0) {
        if (a->metrics != NULL)
            metrics_invalidation(a->metrics, 1, 0);
        error_reply(out, 503, "the cache is unavailable; nothing was invalidated");
        return;
    }
    if (a->metrics != NULL)
        metrics_invalidation(a->metrics, 1, 1);
    log_msg(LOG_INFO, "admin_invalidate", "\"tags\":1,\"mode\":\"%s\"", soft ? "soft" : "hard");
    if (echo_tag) {
        if (buf_puts(&out->body, "{\"tag\":") < 0 || buf_json_str(&out->body, tag, len) < 0 ||
            buf_puts(&out->body, soft ? ",\"invalidated\":true,\"mode\":\"soft\"}"
                                      : ",\"invalidated\":true}") < 0) {
            error_reply(out, 500, "out of memory");
            return;
        }
    } else if (buf_puts(&out->body, "{\"invalidated\":true}") < 0) {
        error_reply(out, 500, "out of memory");
        return;
    }
    out->status = 200;
}

/* The value of query parameter `name` (percent-decoded into out), or -1
 * when absent, -2 when malformed or too long, -3 when given twice. */
static int query_value(const char *query, const char *name, char *out, size_t outsz)
{
    const char *cur = query;
    int count = 0, found = -1;
    struct http_qpair q;

    while (http_query_next(&cur, &count, &q)) {
        if (q.name_len != strlen(name) || memcmp(q.name, name, q.name_len) != 0)
            continue;
        if (found >= 0)
            return -3;
        found = http_pct_decode(q.value, q.value_len, out, outsz, true);
        if (found < 0)
            return -2;
    }
    return found;
}

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static void cache_route(struct admin *a, enum admin_endpoint e, const char *path, size_t path_len,
                        const char *query, struct admin_reply *out)
{
    char value[PATTERN_MAX + 1];
    int n;

    switch (e) {
    case ADMIN_CACHE_STATS:
        stats_reply(a, out);
        return;
    case ADMIN_CACHE_ALL:
        bump_reply(a, CACHE_GLOBAL_TAG, 1, out, false, false);
        return;
    case ADMIN_CACHE_TAG:
        n = http_pct_decode(path + 12, path_len - 12, value, TAG_MAX + 1, false);
        if (n <= 0 || !printable(value, (size_t)n) || strchr(value, '/') != NULL) {
            error_reply(out, 400, "tag: expected 1 to 256 printable bytes");
            return;
        }
        {
            char mode[16];
            int m = query_value(query, "mode", mode, sizeof(mode));
            bool soft = m == 4 && memcmp(mode, "soft", 4) == 0;
            if (m != -1 && !soft && !(m == 4 && memcmp(mode, "hard", 4) == 0)) {
                error_reply(out, 400, "mode: expected hard or soft");
                return;
            }
            if (soft && a->cache != NULL && a->cache->ops->bump_tags_soft == NULL) {
                char msg[160];
                snprintf(msg, sizeof(msg),
                         "mode=soft is not supported by the %s cache provider; use the default "
                         "hard purge",
                         a->cache->ops->name);
                error_reply(out, 400, msg);
                return;
            }
            bump_reply(a, value, (size_t)n, out, true, soft);
        }
        return;
    case ADMIN_CACHE_KEYS: {
        uint64_t deleted = 0;
        n = query_value(query, "pattern", value, sizeof(value));
        if (n <= 0 || !printable(value, (size_t)n)) {
            error_reply(out, 400,
                        n == -3 ? "pattern: given more than once"
                                : "pattern: expected a glob such as user:* "
                                  "(1 to 512 printable bytes)");
            return;
        }
        if (a->cache != NULL && a->cache->ops->purge(a->cache->self, value, &deleted) < 0) {
            error_reply(out, 503, "the cache is unavailable; some keys may remain");
            return;
        }
        log_msg(LOG_INFO, "admin_purge_keys", "\"deleted\":%llu", (unsigned long long)deleted);
        if (buf_printf(&out->body, "{\"deleted\":%llu}", (unsigned long long)deleted) < 0) {
            error_reply(out, 500, "out of memory");
            return;
        }
        out->status = 200;
        return;
    }
    default:
        error_reply(out, 404, "no such resource");
        return;
    }
}

void admin_handle(struct admin *a, enum admin_endpoint e, enum rc_method method, const char *path,
                  size_t path_len, const char *query, const char *authorization,
                  struct admin_reply *out)
{
    enum rc_method want;

    memset(out, 0, sizeof(*out));
    buf_init(&out->body, 1u << 20);

    if (e == ADMIN_HEALTH || e == ADMIN_METRICS) {
        if (method != RC_GET && method != RC_HEAD) {
            out->allow = "GET, HEAD";
            error_reply(out, 405, "method not allowed; this resource allows GET, HEAD");
            return;
        }
        if (e == ADMIN_HEALTH) {
            health_reply(a, out);
            return;
        }
        if (a->metrics == NULL || metrics_render(a->metrics, a->cache, &out->body) < 0) {
            error_reply(out, 500, "metrics unavailable");
            return;
        }
        out->status = 200;
        out->content_type = "text/plain; version=0.0.4; charset=utf-8";
        return;
    }

    /* /cache...: absent without a token, then authentication, then method. */
    if (a->cfg->admin_token == NULL || a->cfg->admin_token[0] == '\0') {
        error_reply(out, 404, "no such resource");
        return;
    }
    if (!admin_token_ok(authorization, a->cfg->admin_token)) {
        error_reply(out, 401, "admin routes need Authorization: Bearer <admin token>");
        return;
    }
    want = e == ADMIN_CACHE_STATS ? RC_GET : RC_DELETE;
    if (method != want && !(want == RC_GET && method == RC_HEAD)) {
        out->allow = want == RC_GET ? "GET, HEAD" : "DELETE";
        error_reply(out, 405,
                    want == RC_GET ? "method not allowed; this resource allows GET, HEAD"
                                   : "method not allowed; this resource allows DELETE");
        return;
    }
    cache_route(a, e, path, path_len, query, out);
}
