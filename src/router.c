/*
 * router.c - path templates, typed path and query parameters, cache keys
 * and tag/location templates (see router.h for the contract).
 *
 * router_create() compiles every route's template ("/api/users/{id:int}")
 * into a fixed array of segments, each a literal (pointing into the
 * template) or a reference to the route's path param. router_match() then:
 *
 *   1. splits the raw path on '/' and percent-decodes every segment once
 *      into m->scratch (NUL-terminated, so values can go to libpq as is);
 *   2. compares the decoded segments with every compiled route: a literal
 *      must equal the decoded segment byte for byte (so "%75sers" matches
 *      "users", and a "%2F" inside a segment is data that can never match a
 *      literal), a param matches any segment - types are checked after the
 *      match so a malformed id is a 400, never a 404 (API.md);
 *   3. among the routes whose shape matches and whose method fits, picks
 *      the most specific one: at the first position where two templates
 *      differ, a literal beats a param (/api/users/me before
 *      /api/users/{id}); router_create() rejects the equivalent templates
 *      that would otherwise tie;
 *   4. validates path params and the declared query params into canonical
 *      text, fills defaults, and leaves body/random params absent.
 *
 * Paths are strict: they start with '/', have no "." or ".." segments
 * (raw or percent-encoded), and are never normalised, so one resource has
 * exactly one path and one cache key. An empty segment never matches a
 * literal; it can fill a param position, where validation rejects it, so
 * "/api/users//jobs" is a 400 like any other bad id (API.md). A trailing
 * slash matches templates that have one; failing that it is read as an
 * empty final segment ("/api/users/" is a bad id, not a missing route).
 * Malformed percent-encoding, a decoded NUL, or a path that does not fit
 * the scratch area is a 400.
 *
 * Trade-off: matching is a linear scan over the routes with a segment
 * comparison each, not a trie. Route tables are tens of entries, the
 * comparisons are memcmp on short strings, and the scan allocates nothing;
 * a trie would add code and allocation for no measurable gain at this size.
 */
#include "router.h"

#include "http.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTER_MAX_SEGS   32
#define ROUTER_MAX_STRING 1024 /* max_length when the config leaves it 0 */
#define ROUTER_NAME_MAX   64   /* longest declared param name (config.h) */

/* A compiled template segment: literal (lit != NULL) or path param. */
struct seg {
    const char *lit; /* into route->path, not NUL-terminated */
    size_t len;
    int param; /* index into route->params when lit == NULL */
};

struct compiled {
    const struct route *route;
    struct seg segs[ROUTER_MAX_SEGS];
    size_t nsegs;
    bool trailing; /* template ends with '/' */
};

struct router {
    struct compiled *routes;
    size_t nroutes;
};

/* A decoded request path segment, living in the match's scratch. */
struct rseg {
    const char *s;
    size_t len;
};

/* ---- router_create ---------------------------------------------------- */

/* Bytes a literal template segment may contain: RFC 3986 pchar minus the
 * percent sign (literals are written decoded) and minus the braces that
 * introduce params. */
static bool literal_char_ok(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static bool name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int find_param(const struct route *rt, const char *name, size_t len, enum param_source from)
{
    for (size_t i = 0; i < rt->nparams; i++) {
        const struct route_param *p = &rt->params[i];
        if (p->from == from && p->name != NULL && strlen(p->name) == len &&
            memcmp(p->name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

/* Compile one segment s[0..n) of route `ri`'s template. */
static int compile_segment(struct compiled *c, size_t ri, const char *s, size_t n, char *errbuf)
{
    const struct route *rt = c->route;
    struct seg *sg = &c->segs[c->nsegs];

    if (c->nsegs >= ROUTER_MAX_SEGS)
        return rc_err(errbuf, "routes[%zu] (%s): path has more than %d segments", ri, rt->name,
                      ROUTER_MAX_SEGS);
    if (n == 0)
        return rc_err(errbuf, "routes[%zu] (%s): path \"%s\" has an empty segment", ri, rt->name,
                      rt->path);
    if (s[0] != '{') {
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return rc_err(errbuf, "routes[%zu] (%s): path \"%s\" has a '.' or '..' segment", ri,
                          rt->name, rt->path);
        for (size_t i = 0; i < n; i++) {
            if (!literal_char_ok((unsigned char)s[i]))
                return rc_err(errbuf,
                              "routes[%zu] (%s): path \"%s\": character '%c' not allowed in a "
                              "literal segment (write params as whole segments: {name})",
                              ri, rt->name, rt->path, s[i]);
        }
        sg->lit = s;
        sg->len = n;
        sg->param = -1;
        c->nsegs++;
        return 0;
    }

    /* "{name}", "{name:int}" or "{name:string}", the whole segment. */
    if (n < 3 || s[n - 1] != '}')
        return rc_err(errbuf, "routes[%zu] (%s): path \"%s\": a param must be a whole segment", ri,
                      rt->name, rt->path);
    const char *name = s + 1;
    const char *end = s + n - 1;
    const char *colon = memchr(name, ':', (size_t)(end - name));
    size_t name_len = (size_t)((colon != NULL ? colon : end) - name);
    bool want_int = false;
    if (colon != NULL) {
        size_t tl = (size_t)(end - colon - 1);
        if (tl == 3 && memcmp(colon + 1, "int", 3) == 0)
            want_int = true;
        else if (!(tl == 6 && memcmp(colon + 1, "string", 6) == 0))
            return rc_err(errbuf, "routes[%zu] (%s): path \"%s\": param type must be int or string",
                          ri, rt->name, rt->path);
    }
    if (name_len == 0 || name_len > ROUTER_NAME_MAX)
        return rc_err(errbuf, "routes[%zu] (%s): path \"%s\": bad param name", ri, rt->name,
                      rt->path);
    for (size_t i = 0; i < name_len; i++) {
        if (!name_char_ok((unsigned char)name[i]))
            return rc_err(errbuf, "routes[%zu] (%s): path \"%s\": bad param name", ri, rt->name,
                          rt->path);
    }
    int idx = find_param(rt, name, name_len, PARAM_FROM_PATH);
    if (idx < 0)
        return rc_err(errbuf, "routes[%zu] (%s): path param \"%.*s\" has no params[] entry", ri,
                      rt->name, (int)name_len, name);
    for (size_t i = 0; i < c->nsegs; i++) {
        if (c->segs[i].lit == NULL && c->segs[i].param == idx)
            return rc_err(errbuf, "routes[%zu] (%s): path param \"%.*s\" appears twice", ri,
                          rt->name, (int)name_len, name);
    }
    if (want_int && rt->params[idx].type != PARAM_INT)
        return rc_err(errbuf, "routes[%zu] (%s): path param \"%.*s\" is {:int} but typed otherwise",
                      ri, rt->name, (int)name_len, name);
    sg->lit = NULL;
    sg->len = 0;
    sg->param = idx;
    c->nsegs++;
    return 0;
}

static int compile_route(struct compiled *c, size_t ri, char *errbuf)
{
    const struct route *rt = c->route;
    const char *path = rt->path;

    if (rt->name == NULL || path == NULL || path[0] != '/')
        return rc_err(errbuf, "routes[%zu]: path must start with '/'", ri);
    if (rt->nparams > ROUTER_MAX_PARAMS)
        return rc_err(errbuf, "routes[%zu] (%s): more than %d params", ri, rt->name,
                      ROUTER_MAX_PARAMS);
    if (rt->nparams > 0 && rt->params == NULL)
        return rc_err(errbuf, "routes[%zu] (%s): params missing", ri, rt->name);

    const char *p = path + 1;
    size_t n = strlen(p);
    if (n > 0 && p[n - 1] == '/') {
        c->trailing = true;
        n--;
    }
    if (n == 0 && c->trailing)
        return rc_err(errbuf, "routes[%zu] (%s): path \"%s\" has an empty segment", ri, rt->name,
                      path);
    while (n > 0) {
        const char *slash = memchr(p, '/', n);
        size_t sl = slash != NULL ? (size_t)(slash - p) : n;
        if (compile_segment(c, ri, p, sl, errbuf) < 0)
            return -1;
        if (slash == NULL)
            break;
        p += sl + 1;
        n -= sl + 1;
        if (n == 0)
            return rc_err(errbuf, "routes[%zu] (%s): path \"%s\" has an empty segment", ri,
                          rt->name, path);
    }

    for (size_t i = 0; i < rt->nparams; i++) {
        const struct route_param *prm = &rt->params[i];
        bool used = false;
        if (prm->from != PARAM_FROM_PATH && prm->from != PARAM_FROM_QUERY)
            continue;
        if (prm->type == PARAM_OBJECT || prm->type == PARAM_ANY)
            return rc_err(errbuf,
                          "routes[%zu] (%s): param \"%s\": object/any types are for body params",
                          ri, rt->name, prm->name);
        if (prm->from == PARAM_FROM_QUERY)
            continue;
        for (size_t k = 0; k < c->nsegs; k++)
            used |= c->segs[k].lit == NULL && c->segs[k].param == (int)i;
        if (!used)
            return rc_err(errbuf, "routes[%zu] (%s): path param \"%s\" is not in the path \"%s\"",
                          ri, rt->name, prm->name, path);
    }
    return 0;
}

/* Do two templates match exactly the same set of paths? */
static bool same_shape(const struct compiled *a, const struct compiled *b)
{
    if (a->nsegs != b->nsegs || a->trailing != b->trailing)
        return false;
    for (size_t i = 0; i < a->nsegs; i++) {
        const struct seg *x = &a->segs[i], *y = &b->segs[i];
        if ((x->lit == NULL) != (y->lit == NULL))
            return false;
        if (x->lit != NULL && (x->len != y->len || memcmp(x->lit, y->lit, x->len) != 0))
            return false;
    }
    return true;
}

struct router *router_create(const struct route *routes, size_t nroutes, char *errbuf)
{
    struct router *r;

    if (routes == NULL && nroutes > 0) {
        rc_err(errbuf, "routes missing");
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (nroutes > 0 && (r->routes = calloc(nroutes, sizeof(*r->routes))) == NULL)) {
        rc_err(errbuf, "out of memory");
        router_free(r);
        return NULL;
    }
    r->nroutes = nroutes;
    for (size_t i = 0; i < nroutes; i++) {
        r->routes[i].route = &routes[i];
        if (compile_route(&r->routes[i], i, errbuf) < 0) {
            router_free(r);
            return NULL;
        }
        for (size_t j = 0; j < i; j++) {
            if (routes[j].method == routes[i].method && same_shape(&r->routes[j], &r->routes[i])) {
                rc_err(errbuf,
                       "routes[%zu] (%s): same method and same paths as routes[%zu] (%s): "
                       "\"%s\" vs \"%s\"",
                       i, routes[i].name, j, routes[j].name, routes[i].path, routes[j].path);
                router_free(r);
                return NULL;
            }
        }
    }
    return r;
}

void router_free(struct router *r)
{
    if (r == NULL)
        return;
    free(r->routes);
    free(r);
}

/* ---- parameter validation ----------------------------------------------- */

/* Strict decimal: no sign unless '-', no leading zeros, no "-0", no
 * whitespace, no int64 overflow. The accepted text is therefore already the
 * canonical form of the value. */
static bool parse_int64(const char *s, size_t n, int64_t *out)
{
    bool neg = false;
    size_t i = 0;
    uint64_t v = 0, limit;

    if (n == 0)
        return false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (n == 1)
            return false;
    }
    if (s[i] == '0' && (neg || n - i > 1))
        return false;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (!neg)
        *out = (int64_t)v;
    else if (v == (uint64_t)INT64_MAX + 1)
        *out = INT64_MIN;
    else
        *out = -(int64_t)v;
    return true;
}

/* JSON number grammar (RFC 8259 section 6). */
static bool is_json_number(const char *s, size_t n)
{
    size_t i = 0;

    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return false;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return false;
    }
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    return i == n;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t extra;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            extra = 1, cp = c & 0x1Fu, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2, cp = c & 0x0Fu, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3, cp = c & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += extra + 1;
    }
    return true;
}

/* Same test as config_char_allowed(), inlined: the router must not depend
 * on config.c, and this runs per byte on the hit path. */
static bool char_allowed(const struct route_param *p, unsigned char c)
{
    return !p->has_chars || (p->chars[c >> 3] & (1u << (c & 7))) != 0;
}

static int enum_error(const struct route_param *p, char *errbuf)
{
    size_t o;
    int w;

    if (errbuf == NULL)
        return -1;
    w = snprintf(errbuf, RC_ERRBUF, "%s: expected one of ", p->name);
    o = w > 0 ? (size_t)w : 0;
    for (size_t i = 0; i < p->n_enum && o < RC_ERRBUF; i++) {
        w = snprintf(errbuf + o, RC_ERRBUF - o, "%s%s", i > 0 ? ", " : "", p->enum_values[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    return -1;
}

/* Check s[0..n) (decoded, NUL-terminated at s[n]) against p and store the
 * canonical text in *v. Returns 0, or -1 with errbuf set. The message never
 * echoes the value: it ends up in a response body. */
static int validate(const struct route_param *p, const char *s, size_t n, struct rc_value *v,
                    char *errbuf)
{
    switch (p->type) {
    case PARAM_INT: {
        int64_t x;
        if (!parse_int64(s, n, &x) || x < p->min || x > p->max)
            return rc_err(errbuf, "%s: expected an integer from %" PRId64 " to %" PRId64, p->name,
                          p->min, p->max);
        break;
    }
    case PARAM_BOOL:
        if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 1 && s[0] == '1')) {
            s = "true";
            n = 4;
        } else if ((n == 5 && memcmp(s, "false", 5) == 0) || (n == 1 && s[0] == '0')) {
            s = "false";
            n = 5;
        } else {
            return rc_err(errbuf, "%s: expected true or false", p->name);
        }
        break;
    case PARAM_NUMBER:
        if (!is_json_number(s, n))
            return rc_err(errbuf, "%s: expected a number", p->name);
        break;
    case PARAM_STRING: {
        size_t max = p->max_length > 0 ? p->max_length : ROUTER_MAX_STRING;
        if (n < p->min_length || n > max)
            return rc_err(errbuf, "%s: expected a string of %zu to %zu bytes", p->name,
                          p->min_length, max);
        if (!utf8_valid((const unsigned char *)s, n))
            return rc_err(errbuf, "%s: expected valid UTF-8", p->name);
        for (size_t i = 0; i < n; i++) {
            if (!char_allowed(p, (unsigned char)s[i]))
                return rc_err(errbuf, "%s: contains a character that is not allowed", p->name);
        }
        if (p->n_enum > 0) {
            size_t i;
            for (i = 0; i < p->n_enum; i++) {
                if (strlen(p->enum_values[i]) == n && memcmp(p->enum_values[i], s, n) == 0)
                    break;
            }
            if (i == p->n_enum)
                return enum_error(p, errbuf);
        }
        break;
    }
    default:
        return rc_err(errbuf, "%s: type not allowed here", p->name);
    }
    v->s = s;
    v->len = n;
    v->present = true;
    return 0;
}

/* ---- router_match --------------------------------------------------------- */

/* Split and decode path[0..len) (starts with '/') into segs. */
static enum router_status split_path(const char *path, size_t len, struct router_match *m,
                                     struct rseg *segs, size_t *nsegs, bool *trailing, char *errbuf)
{
    const char *p = path + 1;
    size_t n = len - 1;

    *nsegs = 0;
    *trailing = false;
    if (n == 0)
        return ROUTER_OK; /* "/" */
    if (p[n - 1] == '/') {
        *trailing = true;
        n--;
        if (n == 0) { /* "//": one empty segment, then the trailing '/' */
            segs[0].s = "";
            segs[0].len = 0;
            *nsegs = 1;
            return ROUTER_OK;
        }
    }
    for (;;) {
        const char *slash = memchr(p, '/', n);
        size_t sl = slash != NULL ? (size_t)(slash - p) : n;
        /* An empty segment can only fill a param position, where its
         * validation makes it a 400 (API.md: an empty id is a bad id). */
        if (*nsegs == ROUTER_MAX_SEGS)
            return ROUTER_NOT_FOUND;
        size_t room = ROUTER_SCRATCH - m->scratch_used;
        if (sl + 1 > room) {
            rc_err(errbuf, "path too long");
            return ROUTER_BAD_REQUEST;
        }
        char *out = m->scratch + m->scratch_used;
        int d = http_pct_decode(p, sl, out, room, false);
        if (d < 0) {
            rc_err(errbuf, "path: invalid percent-encoding");
            return ROUTER_BAD_REQUEST;
        }
        if ((d == 1 && out[0] == '.') || (d == 2 && out[0] == '.' && out[1] == '.'))
            return ROUTER_NOT_FOUND;
        segs[*nsegs].s = out;
        segs[*nsegs].len = (size_t)d;
        (*nsegs)++;
        m->scratch_used += (size_t)d + 1;
        if (slash == NULL)
            return ROUTER_OK;
        p += sl + 1;
        n -= sl + 1;
        if (n == 0) { /* "a//" : an empty segment before the trailing '/' */
            if (*nsegs == ROUTER_MAX_SEGS)
                return ROUTER_NOT_FOUND;
            segs[*nsegs].s = m->scratch + m->scratch_used - 1; /* the previous NUL */
            segs[*nsegs].len = 0;
            (*nsegs)++;
            return ROUTER_OK;
        }
    }
}

static bool shape_matches(const struct compiled *c, const struct rseg *segs, size_t nsegs,
                          bool trailing)
{
    if (c->nsegs != nsegs || c->trailing != trailing)
        return false;
    for (size_t i = 0; i < nsegs; i++) {
        const struct seg *sg = &c->segs[i];
        if (sg->lit != NULL && (sg->len != segs[i].len || memcmp(sg->lit, segs[i].s, sg->len) != 0))
            return false;
    }
    return true;
}

/* Is a preferred over b? Both match the same path, so they have the same
 * number of segments; the first literal-vs-param difference decides. */
static bool more_specific(const struct compiled *a, const struct compiled *b)
{
    for (size_t i = 0; i < a->nsegs; i++) {
        bool la = a->segs[i].lit != NULL, lb = b->segs[i].lit != NULL;
        if (la != lb)
            return la;
    }
    return false;
}

static bool method_fits(enum rc_method route_method, enum rc_method method)
{
    return route_method == method || (method == RC_HEAD && route_method == RC_GET);
}

/* Read the route's declared query params from the raw query string. */
static enum router_status read_query(const struct route *rt, const char *query,
                                     struct router_match *m, char *errbuf)
{
    const char *cur = query;
    int count = 0;
    struct http_qpair q;
    unsigned seen = 0;
    char name[ROUTER_NAME_MAX + 1];

    while (http_query_next(&cur, &count, &q)) {
        if (q.name_len == 0)
            continue;
        /* A name that does not decode, or decodes longer than any declared
         * name, cannot be declared: ignore it like any undeclared name. */
        int nl = http_pct_decode(q.name, q.name_len, name, sizeof(name), true);
        if (nl <= 0)
            continue;
        int idx = find_param(rt, name, (size_t)nl, PARAM_FROM_QUERY);
        if (idx < 0)
            continue;
        const struct route_param *p = &rt->params[idx];
        if (seen & (1u << idx)) {
            rc_err(errbuf, "%s: given more than once", p->name);
            return ROUTER_BAD_REQUEST;
        }
        seen |= 1u << idx;
        size_t room = ROUTER_SCRATCH - m->scratch_used;
        if (q.value_len + 1 > room) {
            rc_err(errbuf, "query string too long");
            return ROUTER_BAD_REQUEST;
        }
        char *out = m->scratch + m->scratch_used;
        int d = http_pct_decode(q.value, q.value_len, out, room, true);
        if (d < 0) {
            rc_err(errbuf, "%s: invalid percent-encoding", p->name);
            return ROUTER_BAD_REQUEST;
        }
        if (d == 0)
            continue; /* empty value = absent */
        m->scratch_used += (size_t)d + 1;
        if (validate(p, out, (size_t)d, &m->values[idx], errbuf) < 0)
            return ROUTER_BAD_REQUEST;
    }

    for (size_t i = 0; i < rt->nparams; i++) {
        const struct route_param *p = &rt->params[i];
        struct rc_value *v = &m->values[i];
        if (p->from != PARAM_FROM_QUERY || v->present)
            continue;
        if (p->has_default && p->default_text != NULL) {
            v->s = p->default_text;
            v->len = strlen(p->default_text);
            v->present = true;
        } else if (p->required) {
            rc_err(errbuf, "%s: required", p->name);
            return ROUTER_BAD_REQUEST;
        }
    }
    return ROUTER_OK;
}

enum router_status router_match(const struct router *r, enum rc_method method, const char *path,
                                size_t path_len, const char *query, struct router_match *m,
                                char *errbuf)
{
    struct rseg segs[ROUTER_MAX_SEGS];
    size_t nsegs;
    bool trailing;
    const struct compiled *best = NULL;
    unsigned allowed = 0;
    enum router_status st;

    /* Not memset: the 4 KiB scratch needs no clearing, values[] does. */
    m->route = NULL;
    m->route_index = -1;
    m->allowed = 0;
    m->scratch_used = 0;
    for (size_t i = 0; i < ROUTER_MAX_PARAMS; i++)
        m->values[i] = (struct rc_value){NULL, 0, false};

    if (r == NULL || path == NULL || path_len == 0 || path[0] != '/')
        return ROUTER_NOT_FOUND;
    st = split_path(path, path_len, m, segs, &nsegs, &trailing, errbuf);
    if (st != ROUTER_OK)
        return st;

    for (int pass = 0; pass < 2 && allowed == 0; pass++) {
        if (pass == 1) {
            /* No template ends in '/': read "/api/users/" as an empty
             * final segment, so an id position left empty is a 400. */
            if (!trailing || nsegs == ROUTER_MAX_SEGS)
                break;
            segs[nsegs].s = "";
            segs[nsegs].len = 0;
            nsegs++;
            trailing = false;
        }
        for (size_t i = 0; i < r->nroutes; i++) {
            const struct compiled *c = &r->routes[i];
            if (!shape_matches(c, segs, nsegs, trailing))
                continue;
            allowed |= (unsigned)c->route->method;
            if (c->route->method == RC_GET)
                allowed |= RC_HEAD;
            if (method_fits(c->route->method, method) && (best == NULL || more_specific(c, best)))
                best = c;
        }
    }
    m->allowed = allowed;
    if (allowed == 0)
        return ROUTER_NOT_FOUND;
    if (best == NULL)
        return ROUTER_METHOD_NOT_ALLOWED;

    m->route = best->route;
    m->route_index = (int)(best - r->routes);
    for (size_t i = 0; i < nsegs; i++) {
        const struct seg *sg = &best->segs[i];
        if (sg->lit != NULL)
            continue;
        if (validate(&best->route->params[sg->param], segs[i].s, segs[i].len, &m->values[sg->param],
                     errbuf) < 0)
            return ROUTER_BAD_REQUEST;
    }
    return read_query(best->route, query, m, errbuf);
}

/* ---- keys and templates ------------------------------------------------------ */

static bool key_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '-';
}

int router_cache_key(const struct router_match *m, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    const struct route *rt;
    size_t o, n;

    if (out == NULL || outsz == 0)
        return -1;
    if (m == NULL || m->route == NULL || m->route->name == NULL)
        goto fail;
    rt = m->route;
    n = strlen(rt->name);
    if (n + 1 > outsz)
        goto fail;
    memcpy(out, rt->name, n);
    o = n;
    for (size_t i = 0; i < rt->nparams && i < ROUTER_MAX_PARAMS; i++) {
        const struct rc_value *v = &m->values[i];
        if (rt->params[i].from != PARAM_FROM_PATH && rt->params[i].from != PARAM_FROM_QUERY)
            continue;
        if (o + 2 > outsz)
            goto fail;
        out[o++] = ':';
        if (!v->present)
            continue;
        for (size_t k = 0; k < v->len; k++) {
            unsigned char c = (unsigned char)v->s[k];
            if (key_unreserved(c)) {
                if (o + 2 > outsz)
                    goto fail;
                out[o++] = (char)c;
            } else {
                if (o + 4 > outsz)
                    goto fail;
                out[o++] = '%';
                out[o++] = hex[c >> 4];
                out[o++] = hex[c & 15];
            }
        }
    }
    if (o > INT_MAX)
        goto fail;
    out[o] = '\0';
    return (int)o;
fail:
    out[0] = '\0';
    return -1;
}

int router_render(const struct tmpl *t, const struct router_match *m, router_column_fn col,
                  void *ctx, char *out, size_t outsz)
{
    size_t o = 0;

    if (out == NULL || outsz == 0)
        return -1;
    if (t == NULL || (t->nparts > 0 && t->parts == NULL))
        goto fail;
    for (size_t i = 0; i < t->nparts; i++) {
        const struct tmpl_part *part = &t->parts[i];
        const char *s = NULL;
        size_t n = 0;
        switch (part->kind) {
        case TMPL_LITERAL:
            s = part->text;
            n = part->len;
            break;
        case TMPL_PARAM:
            if (m == NULL || m->route == NULL || part->param < 0 ||
                (size_t)part->param >= m->route->nparams || part->param >= ROUTER_MAX_PARAMS ||
                !m->values[part->param].present)
                goto fail;
            s = m->values[part->param].s;
            n = m->values[part->param].len;
            break;
        case TMPL_COLUMN:
            if (col == NULL)
                goto fail;
            s = col(ctx, part->text, &n);
            if (s == NULL)
                goto fail;
            break;
        default:
            goto fail;
        }
        if (n > 0 && s == NULL)
            goto fail;
        if (n >= outsz - o)
            goto fail;
        if (n > 0)
            memcpy(out + o, s, n);
        o += n;
    }
    if (o > INT_MAX)
        goto fail;
    out[o] = '\0';
    return (int)o;
fail:
    out[0] = '\0';
    return -1;
}
