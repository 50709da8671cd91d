/*
 * config_routes.c - parse and validate the "routes" array of the config
 * (part of the config module; config.h is its contract, param value rules
 * are in config_values.c).
 *
 * A route is checked as a whole before the daemon starts: its path
 * template, its params against the template and against the SQL ($n is
 * params[n-1], every $n in range and every param used), its tag, invalidate
 * and location templates against the params, and its fields against its
 * method (only GET routes are cached and tagged; only writes invalidate,
 * send a Location or take a body). The router, the body parser and the
 * handler then trust the result and never re-check it per request.
 *
 * Every error names the JSON path of the offending value
 * ("routes[2].params[1].max: ..."); unknown keys are errors so that a typo
 * never silently turns into a default.
 */
#include "config_internal.h"

#include "cache/entry.h" /* ENTRY_MAX_TAGS: tags per cached entry */
#include "router.h"      /* ROUTER_MAX_PARAMS: values per match */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES     1024
#define MAX_SEGMENTS   32
#define MAX_PATH_LEN   1024
#define MAX_NAME_LEN   64
#define MAX_TAGS       (ENTRY_MAX_TAGS - 1) /* the global tag "*" takes one slot */
#define MAX_INVALIDATE 16
#define MAX_TMPL_LEN   256
#define MAX_SQL_LEN    65536
#define MAX_TTL        31536000

_Static_assert(ROUTER_MAX_PARAMS <= 32, "sql_scan marks used params in a uint32_t");

/* A path template segment: a literal, or a {name[:type]} reference. */
struct segment {
    bool is_param;
    bool typed; /* {name:int} / {name:string}, not plain {name} */
    enum param_type type;
    const char *text; /* literal text or param name, into route->path */
    size_t len;
};

struct pathinfo {
    size_t nseg;
    bool trailing; /* template ends with '/' */
    struct segment seg[MAX_SEGMENTS];
};

static const char *const method_names[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
static const enum rc_method method_values[] = {RC_GET, RC_POST, RC_PUT, RC_PATCH, RC_DELETE};
static const char *const source_names[] = {"path", "query", "body", "random", NULL};
static const char *const type_names[] = {"string", "int", "bool", "number", "object", "any", NULL};
static const char *const result_names[] = {"object", "array", "value", "none", NULL};

static const char *const route_keys[] = {"name",
                                         "method",
                                         "path",
                                         "params",
                                         "sql",
                                         "result",
                                         "status",
                                         "ttl",
                                         "negative_ttl",
                                         "stale_while_revalidate",
                                         "stale_if_error",
                                         "tags",
                                         "invalidate",
                                         "location",
                                         "write_through",
                                         NULL};
static const char *const param_keys[] = {"name", "from",  "type",       "required",   "default",
                                         "min",  "max",   "min_length", "max_length", "chars",
                                         "enum", "bytes", NULL};

/* ---- small helpers -------------------------------------------------------- */

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static bool is_lower_digit_us(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Route names [a-z0-9_]{1,64}; param names [a-z_][a-z0-9_]{0,63}. */
static bool name_ok(const char *s, size_t n, bool digit_first)
{
    if (n == 0 || n > MAX_NAME_LEN || (!digit_first && s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_lower_digit_us(s[i]))
            return false;
    }
    return true;
}

static bool is_ident(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

static bool is_write(enum rc_method m)
{
    return m != RC_GET;
}

/* ---- path templates ------------------------------------------------------- */

static bool literal_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '-';
}

static int parse_segment(const char *pfx, const char *s, size_t n, struct pathinfo *pi,
                         char *errbuf)
{
    struct segment *sg;

    if (n == 0)
        return rc_err(errbuf, "%s.path: empty segment (\"//\")", pfx);
    if (pi->nseg == MAX_SEGMENTS)
        return rc_err(errbuf, "%s.path: more than %d segments", pfx, MAX_SEGMENTS);
    sg = &pi->seg[pi->nseg];
    if (s[0] != '{') {
        for (size_t i = 0; i < n; i++) {
            if (!literal_char_ok(s[i]))
                return rc_err(errbuf,
                              "%s.path: character '%c' is not allowed in segment \"%.*s\" "
                              "(literals are [A-Za-z0-9._~-]; params are whole {name} segments)",
                              pfx, s[i], (int)n, s);
        }
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return rc_err(errbuf, "%s.path: \".\" and \"..\" segments are not allowed", pfx);
        sg->text = s;
        sg->len = n;
        pi->nseg++;
        return 0;
    }
    if (n < 3 || s[n - 1] != '}')
        return rc_err(errbuf,
                      "%s.path: segment \"%.*s\" must be a whole {name}, {name:int} or "
                      "{name:string}",
                      pfx, (int)n, s);
    const char *name = s + 1, *end = s + n - 1;
    const char *colon = memchr(name, ':', (size_t)(end - name));
    size_t nlen = (size_t)((colon != NULL ? colon : end) - name);
    if (!name_ok(name, nlen, false))
        return rc_err(errbuf,
                      "%s.path: bad param name in \"%.*s\" (expected [a-z_][a-z0-9_]{0,63})", pfx,
                      (int)n, s);
    sg->is_param = true;
    sg->type = PARAM_STRING;
    if (colon != NULL) {
        size_t tl = (size_t)(end - colon - 1);
        sg->typed = true;
        if (tl == 3 && memcmp(colon + 1, "int", 3) == 0)
            sg->type = PARAM_INT;
        else if (!(tl == 6 && memcmp(colon + 1, "string", 6) == 0))
            return rc_err(errbuf, "%s.path: unknown type in \"%.*s\" (expected int or string)", pfx,
                          (int)n, s);
    }
    for (size_t i = 0; i < pi->nseg; i++) {
        if (pi->seg[i].is_param && pi->seg[i].len == nlen &&
            memcmp(pi->seg[i].text, name, nlen) == 0)
            return rc_err(errbuf, "%s.path: param {%.*s} appears twice", pfx, (int)nlen, name);
    }
    sg->text = name;
    sg->len = nlen;
    pi->nseg++;
    return 0;
}

static int parse_path(const char *pfx, const char *path, struct pathinfo *pi, char *errbuf)
{
    size_t n = strlen(path);

    if (path[0] != '/')
        return rc_err(errbuf, "%s.path: expected a template starting with '/', got \"%.*s\"", pfx,
                      CONFIG_MAX_GOT, path);
    if (n > MAX_PATH_LEN)
        return rc_err(errbuf, "%s.path: longer than %d bytes", pfx, MAX_PATH_LEN);
    const char *p = path + 1;
    n--;
    if (n > 0 && p[n - 1] == '/') {
        pi->trailing = true;
        n--;
        if (n == 0)
            return rc_err(errbuf, "%s.path: empty segment (\"//\")", pfx);
    }
    while (n > 0) {
        const char *slash = memchr(p, '/', n);
        size_t sl = slash != NULL ? (size_t)(slash - p) : n;
        if (parse_segment(pfx, p, sl, pi, errbuf) < 0)
            return -1;
        if (slash == NULL)
            break;
        p += sl + 1;
        n -= sl + 1;
        if (n == 0)
            return rc_err(errbuf, "%s.path: empty segment (\"//\")", pfx);
    }
    return 0;
}

static const struct segment *path_param(const struct pathinfo *pi, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < pi->nseg; i++) {
        if (pi->seg[i].is_param && pi->seg[i].len == n && memcmp(pi->seg[i].text, name, n) == 0)
            return &pi->seg[i];
    }
    return NULL;
}

/* Do two templates match the same paths? (Param names and types aside.) */
static bool same_shape(const struct pathinfo *a, const struct pathinfo *b)
{
    if (a->nseg != b->nseg || a->trailing != b->trailing)
        return false;
    for (size_t i = 0; i < a->nseg; i++) {
        const struct segment *x = &a->seg[i], *y = &b->seg[i];
        if (x->is_param != y->is_param)
            return false;
        if (!x->is_param && (x->len != y->len || memcmp(x->text, y->text, x->len) != 0))
            return false;
    }
    return true;
}

/* ---- params --------------------------------------------------------------- */

/* Resolve and check p->type against where the param comes from. */
static int param_type(struct route_param *p, const char *pfx, int given, const struct segment *seg,
                      char *errbuf)
{
    p->type = given >= 0 ? (enum param_type)given : PARAM_STRING;
    switch (p->from) {
    case PARAM_FROM_PATH:
        if (seg == NULL)
            return rc_err(errbuf, "%s: path parameter '%s' does not appear in the path template",
                          pfx, p->name);
        if (given < 0)
            p->type = seg->type;
        else if (seg->typed && p->type != seg->type)
            return rc_err(errbuf, "%s.type: the path template declares {%s:%s}, got \"%s\"", pfx,
                          p->name, type_names[seg->type], type_names[p->type]);
        if (p->type != PARAM_INT && p->type != PARAM_STRING)
            return rc_err(errbuf, "%s.type: path params are int or string, got \"%s\"", pfx,
                          type_names[p->type]);
        return 0;
    case PARAM_FROM_QUERY:
        if (p->type == PARAM_OBJECT || p->type == PARAM_ANY)
            return rc_err(errbuf, "%s.type: %s params come from the body, not the query", pfx,
                          type_names[p->type]);
        break;
    case PARAM_FROM_RANDOM:
        if (p->type != PARAM_STRING)
            return rc_err(errbuf, "%s.type: random params are strings, got \"%s\"", pfx,
                          type_names[p->type]);
        break;
    case PARAM_FROM_BODY:
        break;
    }
    if (seg != NULL)
        return rc_err(errbuf,
                      "%s.from: '%s' is a parameter of the path template; expected \"path\"", pfx,
                      p->name);
    return 0;
}

static int parse_param(struct route *r, const char *pfx, json_t *o, const struct pathinfo *pi,
                       char *errbuf)
{
    struct route_param *p = &r->params[r->nparams];
    const char *name;
    int from, type;
    bool has, req = false;

    r->nparams++; /* owned by r from here on, for config_free */
    if (!json_is_object(o))
        return rc_err(errbuf, "%s: expected an object, got %s", pfx, json_type_desc(o));
    if (config_check_keys(o, pfx, param_keys, errbuf) < 0 ||
        config_get_str(o, pfx, "name", true, &name, errbuf) < 0)
        return -1;
    if (!name_ok(name, strlen(name), false))
        return rc_err(errbuf, "%s.name: expected [a-z_][a-z0-9_]{0,63}, got \"%.*s\"", pfx,
                      CONFIG_MAX_GOT, name);
    for (size_t i = 0; i + 1 < r->nparams; i++) {
        if (strcmp(r->params[i].name, name) == 0)
            return rc_err(errbuf, "%s.name: duplicate param name \"%s\" (also params[%zu])", pfx,
                          name, i);
    }
    if ((p->name = strdup(name)) == NULL)
        return rc_err(errbuf, "out of memory");
    if (config_get_choice(o, pfx, "from", true, source_names, &from, errbuf) < 0 ||
        config_get_choice(o, pfx, "type", false, type_names, &type, errbuf) < 0)
        return -1;
    p->from = (enum param_source)from;
    if (p->from == PARAM_FROM_BODY && (r->method == RC_GET || r->method == RC_DELETE))
        return rc_err(errbuf, "%s.from: body params need a POST, PUT or PATCH route", pfx);
    if (param_type(p, pfx, type, path_param(pi, p->name), errbuf) < 0)
        return -1;

    if (config_get_bool(o, pfx, "required", &has, &req, errbuf) < 0)
        return -1;
    if (has && p->from == PARAM_FROM_PATH && !req)
        return rc_err(errbuf, "%s.required: path params are always required", pfx);
    if (has && p->from == PARAM_FROM_RANDOM)
        return rc_err(errbuf, "%s.required: random params are always generated", pfx);
    p->required = req || p->from == PARAM_FROM_PATH || p->from == PARAM_FROM_RANDOM;

    if (config_param_rules(p, pfx, o, errbuf) < 0)
        return -1;

    json_t *def = json_object_get(o, "default");
    if (def == NULL)
        return 0;
    if (p->from == PARAM_FROM_PATH || p->from == PARAM_FROM_RANDOM)
        return rc_err(errbuf, "%s.default: %s params cannot have a default", pfx,
                      source_names[p->from]);
    if (p->required)
        return rc_err(errbuf, "%s.default: a required param cannot have a default", pfx);
    return config_param_default(p, pfx, def, errbuf);
}

/* ---- SQL ------------------------------------------------------------------ */

/* Mark in *used every $n of sql (bit n-1). Skips quoted strings and
 * identifiers, comments and dollar-quoted strings. Returns -1 with
 * *bad and *bad_len on a $n outside 1..nparams. */
static int sql_scan(const char *sql, size_t nparams, uint32_t *used, const char **bad,
                    size_t *bad_len)
{
    const char *p = sql;
    *used = 0;
    while (*p != '\0') {
        if (*p == '\'' || *p == '"') {
            const char *close = strchr(p + 1, *p);
            p = close != NULL ? close + 1 : p + strlen(p);
        } else if (p[0] == '-' && p[1] == '-') {
            p += strcspn(p, "\n");
        } else if (p[0] == '/' && p[1] == '*') {
            const char *close = strstr(p + 2, "*/");
            p = close != NULL ? close + 2 : p + strlen(p);
        } else if (*p == '$' && (p == sql || !is_ident(p[-1], false))) {
            const char *q = p + 1;
            if (*q >= '0' && *q <= '9') {
                size_t n = 0;
                while (*q >= '0' && *q <= '9') {
                    if (n <= nparams)
                        n = n * 10 + (size_t)(*q - '0');
                    q++;
                }
                if (n < 1 || n > nparams) {
                    *bad = p;
                    *bad_len = (size_t)(q - p);
                    return -1;
                }
                *used |= 1u << (n - 1);
                p = q;
                continue;
            }
            while (is_ident(*q, q == p + 1))
                q++;
            if (*q != '$') {
                p++;
                continue;
            }
            /* $tag$ ... $tag$ */
            size_t tl = (size_t)(q - p + 1);
            const char *close = q + 1;
            while ((close = strchr(close, '$')) != NULL && strncmp(close, p, tl) != 0)
                close++;
            p = close != NULL ? close + tl : p + strlen(p);
        } else {
            p++;
        }
    }
    return 0;
}

static int check_sql(struct route *r, const char *pfx, char *errbuf)
{
    uint32_t used;
    const char *bad;
    size_t bad_len;

    if (sql_scan(r->sql, r->nparams, &used, &bad, &bad_len) < 0)
        return rc_err(errbuf, "%s.sql: %.*s is out of range (the route declares %zu params)", pfx,
                      (int)(bad_len > 12 ? 12 : bad_len), bad, r->nparams);
    for (size_t i = 0; i < r->nparams; i++) {
        if (!(used & (1u << i)))
            return rc_err(errbuf, "%s.params[%zu] '%s' is not used by sql as $%zu", pfx, i,
                          r->params[i].name, i + 1);
    }
    return 0;
}

/* ---- tag and location templates ------------------------------------------- */

static int find_param(const struct route *r, const char *name, size_t n)
{
    for (size_t i = 0; i < r->nparams; i++) {
        if (strlen(r->params[i].name) == n && memcmp(r->params[i].name, name, n) == 0)
            return (int)i;
    }
    return -1;
}

/* Compile src into t: literal text, {param} and (if columns_ok) {row.col}.
 * A referenced param must always have a value (path, random, required or
 * defaulted), otherwise rendering could fail at run time. */
static int parse_tmpl(const struct route *r, const char *where, const char *src, bool columns_ok,
                      struct tmpl *t, char *errbuf)
{
    size_t n = strlen(src), nbrace = 0;

    if (n == 0)
        return rc_err(errbuf, "%s: expected a non-empty template", where);
    if (n > MAX_TMPL_LEN)
        return rc_err(errbuf, "%s: longer than %d bytes", where, MAX_TMPL_LEN);
    for (size_t i = 0; i < n; i++)
        nbrace += src[i] == '{';
    if ((t->source = strdup(src)) == NULL ||
        (t->parts = calloc(2 * nbrace + 1, sizeof(*t->parts))) == NULL)
        return rc_err(errbuf, "out of memory");
    for (const char *p = src; *p != '\0';) {
        struct tmpl_part *part = &t->parts[t->nparts];
        if (*p != '{') {
            size_t len = strcspn(p, "{}");
            if (len == 0)
                return rc_err(errbuf, "%s: unmatched '}' in \"%s\"", where, src);
            for (size_t i = 0; i < len; i++) {
                if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
                    return rc_err(errbuf, "%s: spaces and control characters are not allowed",
                                  where);
            }
            part->kind = TMPL_LITERAL;
            part->len = len;
            if ((part->text = dup_n(p, len)) == NULL)
                return rc_err(errbuf, "out of memory");
            t->nparts++;
            p += len;
            continue;
        }
        const char *close = strchr(p, '}');
        if (close == NULL)
            return rc_err(errbuf, "%s: unclosed '{' in \"%s\"", where, src);
        const char *ref = p + 1;
        size_t len = (size_t)(close - ref);
        if (len > 4 && memcmp(ref, "row.", 4) == 0) {
            if (!columns_ok)
                return rc_err(errbuf,
                              "%s: {%.*s} is only available in invalidate and location templates "
                              "of write routes",
                              where, (int)len, ref);
            bool ok = len - 4 <= 63;
            for (size_t i = 4; i < len && ok; i++)
                ok = is_ident(ref[i], i == 4);
            if (!ok)
                return rc_err(errbuf, "%s: bad column name in {%.*s}", where, (int)len, ref);
            part->kind = TMPL_COLUMN;
            part->len = len - 4;
            part->param = -1;
            if ((part->text = dup_n(ref + 4, len - 4)) == NULL)
                return rc_err(errbuf, "out of memory");
        } else {
            int idx = find_param(r, ref, len);
            if (idx < 0)
                return rc_err(errbuf, "%s: {%.*s} is not a declared param of this route", where,
                              (int)(len > CONFIG_MAX_GOT ? CONFIG_MAX_GOT : len), ref);
            if (!r->params[idx].required && !r->params[idx].has_default)
                return rc_err(errbuf,
                              "%s: {%s} may be absent (make it required or give it a default)",
                              where, r->params[idx].name);
            part->kind = TMPL_PARAM;
            part->param = idx;
        }
        t->nparts++;
        p = close + 1;
    }
    return 0;
}

/* A "tags" or "invalidate" array into *out / *n. */
static int parse_tmpl_list(const struct route *r, const char *pfx, const char *key, json_t *arr,
                           bool columns_ok, struct tmpl **out, size_t *n, char *errbuf)
{
    char where[96];
    size_t count = json_array_size(arr);

    if (count == 0)
        return 0;
    if ((*out = calloc(count, sizeof(**out))) == NULL)
        return rc_err(errbuf, "out of memory");
    for (size_t i = 0; i < count; i++) {
        json_t *v = json_array_get(arr, i);
        snprintf(where, sizeof(where), "%s.%s[%zu]", pfx, key, i);
        *n = i + 1;
        if (!json_is_string(v))
            return rc_err(errbuf, "%s: expected a string, got %s", where, json_type_desc(v));
        if (parse_tmpl(r, where, json_string_value(v), columns_ok, &(*out)[i], errbuf) < 0)
            return -1;
    }
    return 0;
}

/* ---- routes --------------------------------------------------------------- */

static int parse_params(struct route *r, const char *pfx, json_t *o, const struct pathinfo *pi,
                        char *errbuf)
{
    json_t *arr;
    char ppfx[64];

    if (config_get_array(o, pfx, "params", ROUTER_MAX_PARAMS, &arr, errbuf) < 0)
        return -1;
    if (arr != NULL && json_array_size(arr) > 0) {
        if ((r->params = calloc(json_array_size(arr), sizeof(*r->params))) == NULL)
            return rc_err(errbuf, "out of memory");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(ppfx, sizeof(ppfx), "%s.params[%zu]", pfx, i);
            if (parse_param(r, ppfx, json_array_get(arr, i), pi, errbuf) < 0)
                return -1;
            r->has_body |= r->params[i].from == PARAM_FROM_BODY;
        }
    }
    for (size_t i = 0; i < pi->nseg; i++) {
        const struct segment *sg = &pi->seg[i];
        if (sg->is_param && find_param(r, sg->text, sg->len) < 0)
            return rc_err(errbuf, "%s.params: path parameter '%.*s' is not declared", pfx,
                          (int)sg->len, sg->text);
    }
    return 0;
}

/* result, status, ttl, negative_ttl. */
static int parse_response(struct rc_config *cfg, struct route *r, const char *pfx, json_t *o,
                          char *errbuf)
{
    int result;
    bool has;
    int64_t v = 0;

    if (config_get_choice(o, pfx, "result", false, result_names, &result, errbuf) < 0)
        return -1;
    r->result = result < 0 ? RESULT_OBJECT : (enum result_shape)result;
    if (config_get_int(o, pfx, "status", 200, 299, &has, &v, errbuf) < 0)
        return -1;
    r->status = has ? (int)v : r->result == RESULT_NONE ? 204 : 200;
    if (r->result == RESULT_NONE && r->status != 204)
        return rc_err(errbuf, "%s.status: result \"none\" answers 204 No Content, got %d", pfx,
                      r->status);
    if (r->result != RESULT_NONE && r->status == 204)
        return rc_err(errbuf, "%s.status: 204 has no body; use \"result\": \"none\"", pfx);

    static const char *const cache_keys[] = {"ttl", "negative_ttl"};
    for (size_t i = 0; i < RC_ARRAY_LEN(cache_keys); i++) {
        if (is_write(r->method) && json_object_get(o, cache_keys[i]))
            return rc_err(errbuf, "%s.%s: only GET routes are cached", pfx, cache_keys[i]);
    }
    if (config_get_int(o, pfx, "ttl", 0, MAX_TTL, &has, &v, errbuf) < 0)
        return -1;
    r->ttl = has ? (int)v : is_write(r->method) ? 0 : cfg->cache_default_ttl;
    if (config_get_int(o, pfx, "negative_ttl", 0, MAX_TTL, &has, &v, errbuf) < 0)
        return -1;
    r->negative_ttl = has ? (int)v : is_write(r->method) ? 0 : cfg->cache_negative_ttl;
    return 0;
}

/* tags (GET), invalidate and location (writes). */
static int parse_templates(struct route *r, const char *pfx, json_t *o, char *errbuf)
{
    json_t *tags, *inval;
    const char *loc;
    char where[64];

    if (config_get_array(o, pfx, "tags", MAX_TAGS, &tags, errbuf) < 0 ||
        config_get_array(o, pfx, "invalidate", MAX_INVALIDATE, &inval, errbuf) < 0 ||
        config_get_str(o, pfx, "location", false, &loc, errbuf) < 0)
        return -1;
    if (tags != NULL && is_write(r->method))
        return rc_err(errbuf, "%s.tags: only GET routes have tags (writes use invalidate)", pfx);
    if (inval != NULL && !is_write(r->method))
        return rc_err(errbuf, "%s.invalidate: only write routes invalidate (GET routes use tags)",
                      pfx);
    if (loc != NULL && !is_write(r->method))
        return rc_err(errbuf, "%s.location: only write routes send a Location", pfx);
    if (tags != NULL &&
        parse_tmpl_list(r, pfx, "tags", tags, false, &r->tags, &r->ntags, errbuf) < 0)
        return -1;
    if (inval != NULL && parse_tmpl_list(r, pfx, "invalidate", inval, true, &r->invalidate,
                                         &r->ninvalidate, errbuf) < 0)
        return -1;
    if (loc == NULL)
        return 0;
    if ((r->location = calloc(1, sizeof(*r->location))) == NULL)
        return rc_err(errbuf, "out of memory");
    snprintf(where, sizeof(where), "%s.location", pfx);
    return parse_tmpl(r, where, loc, true, r->location, errbuf);
}

/* write_through (writes answering an object): the name of a GET route,
 * resolved by resolve_write_through once all routes are parsed. */
static int parse_write_through(struct route *r, const char *pfx, json_t *o, char *errbuf)
{
    const char *name;

    if (config_get_str(o, pfx, "write_through", false, &name, errbuf) < 0)
        return -1;
    if (name == NULL)
        return 0;
    if (!is_write(r->method) || r->result != RESULT_OBJECT)
        return rc_err(errbuf,
                      "%s.write_through: only a write route whose result is \"object\" can "
                      "store its answer for a GET route",
                      pfx);
    /* A DELETE's RETURNING row is what no longer exists. */
    if (r->method == RC_DELETE)
        return rc_err(errbuf, "%s.write_through: a DELETE has nothing to store for a GET route",
                      pfx);
    if ((r->write_through_name = strdup(name)) == NULL)
        return rc_err(errbuf, "out of memory");
    return 0;
}

/* Parse routes[ri]; all[0..ri) are the templates of the routes before it. */
static int parse_route(struct rc_config *cfg, size_t ri, json_t *o, struct pathinfo *all,
                       char *errbuf)
{
    struct route *r = &cfg->routes[ri];
    struct pathinfo *pi = &all[ri];
    char pfx[32];
    const char *name, *path, *sql;
    int method;

    snprintf(pfx, sizeof(pfx), "routes[%zu]", ri);
    if (!json_is_object(o))
        return rc_err(errbuf, "%s: expected an object, got %s", pfx, json_type_desc(o));
    if (config_check_keys(o, pfx, route_keys, errbuf) < 0 ||
        config_get_str(o, pfx, "name", true, &name, errbuf) < 0)
        return -1;
    if (!name_ok(name, strlen(name), true))
        return rc_err(errbuf, "%s.name: expected [a-z0-9_]{1,64}, got \"%.*s\"", pfx,
                      CONFIG_MAX_GOT, name);
    for (size_t i = 0; i < ri; i++) {
        if (strcmp(cfg->routes[i].name, name) == 0)
            return rc_err(errbuf, "%s.name: duplicate route name \"%s\" (also routes[%zu])", pfx,
                          name, i);
    }
    if ((r->name = strdup(name)) == NULL)
        return rc_err(errbuf, "out of memory");
    if (config_get_choice(o, pfx, "method", true, method_names, &method, errbuf) < 0)
        return -1;
    r->method = method_values[method];
    if (config_get_str(o, pfx, "path", true, &path, errbuf) < 0 ||
        parse_path(pfx, path, pi, errbuf) < 0)
        return -1;
    if ((r->path = strdup(path)) == NULL)
        return rc_err(errbuf, "out of memory");
    /* Segments point into the JSON string; re-point them at our copy. */
    for (size_t i = 0; i < pi->nseg; i++)
        pi->seg[i].text = r->path + (pi->seg[i].text - path);
    for (size_t i = 0; i < ri; i++) {
        if (cfg->routes[i].method == r->method && same_shape(&all[i], pi))
            return rc_err(errbuf, "%s.path: %s %s is already declared by routes[%zu] (%s)", pfx,
                          config_method_name(r->method), path, i, cfg->routes[i].name);
    }
    if (parse_params(r, pfx, o, pi, errbuf) < 0)
        return -1;
    if (config_get_str(o, pfx, "sql", true, &sql, errbuf) < 0)
        return -1;
    if (sql[strspn(sql, " \t\r\n")] == '\0')
        return rc_err(errbuf, "%s.sql: expected a non-empty statement", pfx);
    if (strlen(sql) > MAX_SQL_LEN)
        return rc_err(errbuf, "%s.sql: longer than %d bytes", pfx, MAX_SQL_LEN);
    if ((r->sql = strdup(sql)) == NULL)
        return rc_err(errbuf, "out of memory");
    if (check_sql(r, pfx, errbuf) < 0 || parse_response(cfg, r, pfx, o, errbuf) < 0 ||
        parse_templates(r, pfx, o, errbuf) < 0 || parse_write_through(r, pfx, o, errbuf) < 0)
        return -1;
    return config_route_windows(cfg, r, pfx, o, errbuf);
}

/* Resolve routes[ri].write_through once every route is known: a cached GET
 * route answering an object, each of whose params comes from its path
 * and is a param of the write too (the write supplies it by name). */
static int resolve_write_through(struct rc_config *cfg, size_t ri, char *errbuf)
{
    struct route *r = &cfg->routes[ri];
    const struct route *t = NULL;

    if (r->write_through_name == NULL)
        return 0;
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (strcmp(cfg->routes[i].name, r->write_through_name) == 0)
            t = &cfg->routes[i];
    if (t == NULL)
        return rc_err(errbuf, "routes[%zu].write_through: no route named \"%s\"", ri,
                      r->write_through_name);
    if (t->method != RC_GET || t->result != RESULT_OBJECT || t->ttl <= 0)
        return rc_err(errbuf,
                      "routes[%zu].write_through: \"%s\" must be a cached GET route (ttl > 0) "
                      "whose result is \"object\"",
                      ri, t->name);
    if ((r->write_through_from = calloc(t->nparams ? t->nparams : 1, sizeof(size_t))) == NULL)
        return rc_err(errbuf, "out of memory");
    for (size_t i = 0; i < t->nparams; i++) {
        size_t j = 0;
        if (t->params[i].from != PARAM_FROM_PATH)
            return rc_err(errbuf,
                          "routes[%zu].write_through: param \"%s\" of \"%s\" is not from the "
                          "path; a write cannot know its value",
                          ri, t->params[i].name, t->name);
        while (j < r->nparams && strcmp(r->params[j].name, t->params[i].name) != 0)
            j++;
        if (j == r->nparams)
            return rc_err(errbuf,
                          "routes[%zu].write_through: \"%s\" has a param \"%s\" that this "
                          "route does not have",
                          ri, t->name, t->params[i].name);
        /* Same validation, same normal form: the key the write builds is
         * the key a GET of the same resource builds. */
        if (r->params[j].type != t->params[i].type)
            return rc_err(errbuf,
                          "routes[%zu].write_through: param \"%s\" is %s here but %s in \"%s\"", ri,
                          t->params[i].name, type_names[r->params[j].type],
                          type_names[t->params[i].type], t->name);
        r->write_through_from[i] = j;
    }
    r->write_through = t;
    return 0;
}

int config_routes_parse(struct rc_config *cfg, json_t *routes, char *errbuf)
{
    struct pathinfo *pi;
    size_t n;
    int rc = 0;

    if (!json_is_array(routes))
        return rc_err(errbuf, "routes: expected an array, got %s", json_type_desc(routes));
    if ((n = json_array_size(routes)) == 0)
        return rc_err(errbuf, "routes: expected at least one route");
    if (n > MAX_ROUTES)
        return rc_err(errbuf, "routes: at most %d routes, got %zu", MAX_ROUTES, n);
    cfg->routes = calloc(n, sizeof(*cfg->routes));
    pi = calloc(n, sizeof(*pi));
    if (cfg->routes == NULL || pi == NULL) {
        free(pi);
        return rc_err(errbuf, "out of memory");
    }
    cfg->nroutes = n;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = parse_route(cfg, i, json_array_get(routes, i), pi, errbuf);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = resolve_write_through(cfg, i, errbuf);
    free(pi);
    return rc;
}
