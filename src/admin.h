/*
 * admin.h - the operational endpoints of API.md: GET /health, GET /metrics,
 * and the admin routes under /cache (stats, purge all, purge a tag, purge
 * keys by pattern).
 *
 * Admin routes need "Authorization: Bearer <token>" equal to the configured
 * admin token, compared in constant time; with no token configured they do
 * not exist (404), never open. The module builds a reply (status, body,
 * headers) and leaves the writing to the handler, so it has no I/O.
 */
#ifndef RC_ADMIN_H
#define RC_ADMIN_H

#include "buf.h"
#include "cache/cache.h"
#include "common.h"
#include "config.h"
#include "health.h"
#include "metrics.h"

#include <stdbool.h>

struct admin;

enum admin_endpoint {
    ADMIN_NONE = 0,
    ADMIN_HEALTH,
    ADMIN_METRICS,
    ADMIN_CACHE_STATS, /* GET /cache/stats */
    ADMIN_CACHE_ALL,   /* DELETE /cache */
    ADMIN_CACHE_TAG,   /* DELETE /cache/tags/{tag} */
    ADMIN_CACHE_KEYS,  /* DELETE /cache/keys?pattern= */
};

struct admin_reply {
    int status;
    const char *content_type; /* NULL: JSON */
    const char *allow;        /* 405 */
    bool retry_after;         /* 503 */
    buf body;
};

/* metrics and health may be NULL (tests); cache NULL means provider none. */
struct admin *admin_create(const struct rc_config *cfg, struct cache *cache,
                           struct metrics *metrics, struct health *health) RC_MUSTCHECK;
void admin_free(struct admin *a);

/* Which endpoint a raw path (no query) names; ADMIN_NONE for API paths. */
enum admin_endpoint admin_match(const char *path, size_t len);

/* Should this request run on a database worker rather than the event
 * loop? Purges walk or round-trip the whole provider; a remote provider's
 * stats need the network. Health and metrics never wait. */
bool admin_needs_worker(const struct admin *a, enum admin_endpoint e);

/* Answer the request into *out (initialises out->body; the caller frees it
 * with buf_free). authorization is the raw header value (may be NULL). */
void admin_handle(struct admin *a, enum admin_endpoint e, enum rc_method method, const char *path,
                  size_t path_len, const char *query, const char *authorization,
                  struct admin_reply *out);

/* Constant-time: does the header say "Bearer <token>"? */
bool admin_token_ok(const char *authorization, const char *token);

#endif
