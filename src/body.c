/*
 * body.c - validate a JSON request body against a route's body params and
 * turn its fields into SQL text values (see body.h for the rules).
 *
 * The body is parsed whole by jansson with duplicate keys rejected; without
 * JSON_DECODE_ANY the top level must be an object or array, and jansson
 * refuses trailing garbage, invalid UTF-8, "\u0000" and nesting deeper than
 * its limit, all of which are 400s here. Field checks (unknown, type,
 * bounds, required) are 422s with a message naming the field.
 *
 * Values are copied into the caller's `store`, each followed by a NUL so
 * they can go to libpq as they are. The store may move when it grows, so
 * offsets are recorded first and pointers set only after the last append.
 * A JSON null counts as absent, except for "any" params, where it is the
 * JSON value null.
 */
#include "body.h"

#include "json_util.h"

#include <jansson.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 64 /* bytes of a client's field name echoed in a message */

static int find_body_param(const struct route *r, const char *name)
{
    for (size_t i = 0; i < r->nparams; i++) {
        if (r->params[i].from == PARAM_FROM_BODY && strcmp(r->params[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}

/* "<field>: unknown field (accepted: a, b, c)". */
static int unknown_field(const struct route *r, const char *key, char *errbuf)
{
    size_t o = (size_t)snprintf(errbuf, RC_ERRBUF, "%.*s: unknown field", MAX_NAME, key);
    const char *sep = " (accepted: ";
    bool any = false;

    for (size_t i = 0; i < r->nparams && o < RC_ERRBUF; i++) {
        if (r->params[i].from != PARAM_FROM_BODY)
            continue;
        o += (size_t)snprintf(errbuf + o, RC_ERRBUF - o, "%s%s", sep, r->params[i].name);
        sep = ", ";
        any = true;
    }
    if (o < RC_ERRBUF)
        snprintf(errbuf + o, RC_ERRBUF - o, "%s", any ? ")" : " (this route takes no fields)");
    return 422;
}

static int enum_error(const struct route_param *p, char *errbuf)
{
    size_t o = (size_t)snprintf(errbuf, RC_ERRBUF, "%s: expected one of", p->name);
    for (size_t i = 0; i < p->n_enum && o < RC_ERRBUF; i++)
        o += (size_t)snprintf(errbuf + o, RC_ERRBUF - o, "%s %s", i > 0 ? "," : "",
                              p->enum_values[i]);
    return 422;
}

static int check_string(const struct route_param *p, const char *s, size_t n, char *errbuf)
{
    size_t max = p->max_length > 0 ? p->max_length : 1024;

    if (n > max) {
        rc_err(errbuf, "%s: expected a string of at most %zu bytes", p->name, max);
        return 422;
    }
    if (n < p->min_length) {
        rc_err(errbuf, "%s: expected a string of at least %zu bytes", p->name, p->min_length);
        return 422;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (config_char_allowed(p, c))
            continue;
        if (c >= 0x20 && c < 0x7f)
            rc_err(errbuf, "%s: character '%c' (byte %zu) is not allowed", p->name, c, i);
        else
            rc_err(errbuf, "%s: byte 0x%02x (at %zu) is not allowed", p->name, c, i);
        return 422;
    }
    if (p->n_enum == 0)
        return 0;
    for (size_t i = 0; i < p->n_enum; i++) {
        if (strlen(p->enum_values[i]) == n && memcmp(p->enum_values[i], s, n) == 0)
            return 0;
    }
    return enum_error(p, errbuf);
}

/* Shortest "%.Ng" spelling of d that reads back as d. */
static void format_real(double d, char *out, size_t outsz)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outsz, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

/* Append s[0..n) and a NUL to store; *off = where it starts. */
static int put(buf *store, const char *s, size_t n, size_t *off, char *errbuf)
{
    *off = store->len;
    if (buf_append(store, s, n) < 0 || buf_putc(store, '\0') < 0) {
        rc_err(errbuf, "request body is too large to process");
        return 400;
    }
    return 0;
}

/* Check v against p and render it into store at *off (*len bytes).
 * Returns 0 or an HTTP status with errbuf set. */
static int field_value(const struct route_param *p, json_t *v, buf *store, size_t *off, size_t *len,
                       char *errbuf)
{
    char text[64];
    const char *want = NULL;

    switch (p->type) {
    case PARAM_INT: {
        if (!json_is_integer(v)) {
            want = "an integer";
            break;
        }
        int64_t x = (int64_t)json_integer_value(v);
        if (x < p->min || x > p->max) {
            if (p->max == INT64_MAX)
                rc_err(errbuf, "%s: expected an integer >= %" PRId64 ", got %" PRId64, p->name,
                       p->min, x);
            else
                rc_err(errbuf,
                       "%s: expected an integer from %" PRId64 " to %" PRId64 ", got %" PRId64,
                       p->name, p->min, p->max, x);
            return 422;
        }
        *len = (size_t)snprintf(text, sizeof(text), "%" PRId64, x);
        return put(store, text, *len, off, errbuf);
    }
    case PARAM_STRING: {
        if (!json_is_string(v)) {
            want = "a string";
            break;
        }
        int rc = check_string(p, json_string_value(v), json_string_length(v), errbuf);
        if (rc != 0)
            return rc;
        *len = json_string_length(v);
        return put(store, json_string_value(v), *len, off, errbuf);
    }
    case PARAM_BOOL:
        if (!json_is_boolean(v)) {
            want = "true or false";
            break;
        }
        *len = json_is_true(v) ? 4 : 5;
        return put(store, json_is_true(v) ? "true" : "false", *len, off, errbuf);
    case PARAM_NUMBER:
        if (!json_is_number(v)) {
            want = "a number";
            break;
        }
        if (json_is_integer(v))
            snprintf(text, sizeof(text), "%" PRId64, (int64_t)json_integer_value(v));
        else
            format_real(json_real_value(v), text, sizeof(text));
        *len = strlen(text);
        return put(store, text, *len, off, errbuf);
    case PARAM_OBJECT:
    case PARAM_ANY: {
        if (p->type == PARAM_OBJECT && !json_is_object(v)) {
            want = "an object";
            break;
        }
        char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (dump == NULL) {
            rc_err(errbuf, "%s: cannot be encoded", p->name);
            return 400;
        }
        *len = strlen(dump);
        int rc = put(store, dump, *len, off, errbuf);
        free(dump);
        return rc;
    }
    }
    if (want == NULL)
        want = "a value of another type";
    rc_err(errbuf, "%s: expected %s, got %s", p->name, want, json_type_desc(v));
    return 422;
}

int body_parse(struct router_match *m, const char *body, size_t len, buf *store, char *errbuf)
{
    const struct route *r = m->route;
    size_t off[ROUTER_MAX_PARAMS], vlen[ROUTER_MAX_PARAMS];
    bool stored[ROUTER_MAX_PARAMS] = {false};
    json_error_t jerr;
    json_t *root, *v;
    const char *key;
    int rc = 0;

    if (len == 0) {
        rc_err(errbuf, "request body is empty; expected a JSON object");
        return 400;
    }
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rc_err(errbuf, "request body is not valid JSON: %s (line %d, column %d)", jerr.text,
               jerr.line, jerr.column);
        return 400;
    }
    if (!json_is_object(root)) {
        rc_err(errbuf, "request body must be a JSON object, got %s", json_type_desc(root));
        json_decref(root);
        return 400;
    }
    json_object_foreach(root, key, v)
    {
        if (find_body_param(r, key) < 0) {
            rc = unknown_field(r, key, errbuf); /* key lives in root */
            json_decref(root);
            return rc;
        }
    }
    for (size_t i = 0; i < r->nparams && i < ROUTER_MAX_PARAMS && rc == 0; i++) {
        const struct route_param *p = &r->params[i];
        if (p->from != PARAM_FROM_BODY)
            continue;
        m->values[i].s = NULL;
        m->values[i].len = 0;
        m->values[i].present = false;
        v = json_object_get(root, p->name);
        if (v != NULL && json_is_null(v) && p->type != PARAM_ANY)
            v = NULL;
        if (v != NULL) {
            rc = field_value(p, v, store, &off[i], &vlen[i], errbuf);
            stored[i] = rc == 0;
        } else if (p->required) {
            rc_err(errbuf, "%s: required", p->name);
            rc = 422;
        } else if (p->has_default && p->default_text != NULL) {
            m->values[i].s = p->default_text;
            m->values[i].len = strlen(p->default_text);
            m->values[i].present = true;
        }
    }
    json_decref(root);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < r->nparams && i < ROUTER_MAX_PARAMS; i++) {
        if (stored[i]) {
            m->values[i].s = store->data + off[i];
            m->values[i].len = vlen[i];
            m->values[i].present = true;
        }
    }
    return 0;
}
