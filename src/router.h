/*
 * router.h - match a request path to a declared route, extract and validate
 * its path and query parameters, and build the normalised cache key.
 *
 * No I/O and no allocation per request: all decoded values live in the
 * caller's router_match (a fixed scratch area), so the hit path can use one
 * on its stack or in its connection struct.
 */
#ifndef RC_ROUTER_H
#define RC_ROUTER_H

#include "common.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>

#define ROUTER_MAX_PARAMS 16
#define ROUTER_SCRATCH    4096

struct router;

/* One parameter value as SQL text. present=false means SQL NULL. */
struct rc_value {
    const char *s;
    size_t len;
    bool present;
};

struct router_match {
    const struct route *route;
    int route_index;
    unsigned allowed;                          /* method bitmask of all routes on this path */
    struct rc_value values[ROUTER_MAX_PARAMS]; /* aligned with route->params */
    size_t scratch_used;
    char scratch[ROUTER_SCRATCH];
};

enum router_status {
    ROUTER_OK = 0,
    ROUTER_NOT_FOUND,          /* no template matches the path: 404 */
    ROUTER_METHOD_NOT_ALLOWED, /* path matches, method does not: 405, see allowed */
    ROUTER_BAD_REQUEST,        /* a path or query param is invalid: 400, errbuf says why */
};

/* Compile the routes' path templates. Fails (NULL + errbuf) on templates
 * that are ambiguous: two routes with the same method and equivalent path. */
struct router *router_create(const struct route *routes, size_t nroutes, char *errbuf) RC_MUSTCHECK;
void router_free(struct router *r);

/* Match `method` and path[0..path_len) (raw, still percent-encoded, without
 * the query string). HEAD matches GET routes. Path values are
 * percent-decoded per segment. For a matched route, query params are read
 * from `query` (raw, may be NULL): undeclared names are ignored, declared
 * ones validated, defaults filled in; a name given twice is a bad request.
 * Empty query values count as absent. Body and random params are left
 * absent (present=false) for the caller to fill. */
enum router_status router_match(const struct router *r, enum rc_method method, const char *path,
                                size_t path_len, const char *query, struct router_match *m,
                                char *errbuf);

/* Write the cache key "<route name>:<v1>:<v2>..." for the path and query
 * params (declaration order; bytes outside [A-Za-z0-9._~-] as %XX; absent
 * values empty) into out. Returns the length, or -1 if outsz is too small. */
int router_cache_key(const struct router_match *m, char *out, size_t outsz);

/* Column lookup for {row.c} template parts: returns the column's text value
 * (NULL for SQL NULL / unknown column) and its length. */
typedef const char *(*router_column_fn)(void *ctx, const char *name, size_t *len);

/* Render a tag or location template. Param parts take m->values, column
 * parts call col(ctx, ...) (col may be NULL: then such parts fail). Returns
 * the length written (NUL-terminated), or -1 when a referenced value is
 * absent or out is too small. Values are inserted verbatim. */
int router_render(const struct tmpl *t, const struct router_match *m, router_column_fn col,
                  void *ctx, char *out, size_t outsz);

#endif
