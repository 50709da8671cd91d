/*
 * rowjson.c - query results to JSON; see rowjson.h for the type mapping.
 *
 * The one subtle part is timestamptz: PostgreSQL prints "2026-11-21
 * 19:46:00.12+00" (fraction trimmed, omitted when zero). API.md promises a
 * fixed RFC 3339 form, so the fraction is padded to six digits. Anything that
 * does not parse as a plain UTC timestamp (infinity, BC dates, years past
 * 9999) is passed through as a string rather than guessed at.
 */
#include "rowjson.h"

#include <string.h>

/* pg_type OIDs, stable across PostgreSQL versions (catalog pg_type.dat). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_TIMESTAMPTZ = 1184,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802,
};

enum rowjson_kind rowjson_kind(unsigned oid)
{
    switch (oid) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        return RJ_INT;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        return RJ_FLOAT;
    case OID_BOOL:
        return RJ_BOOL;
    case OID_JSON:
    case OID_JSONB:
        return RJ_JSON;
    case OID_TIMESTAMPTZ:
        return RJ_TIMESTAMPTZ;
    default:
        return RJ_STRING;
    }
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Is s[0..n) a JSON number (RFC 8259 grammar)? */
static bool json_number_ok(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return false;
    if (s[i] == '0') {
        i++;
    } else if (is_digit(s[i])) {
        while (i < n && is_digit(s[i]))
            i++;
    } else {
        return false;
    }
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t start = i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    return i == n;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

/* "YYYY-MM-DD HH:MM:SS[.f{1,6}]+00" -> "YYYY-MM-DDTHH:MM:SS.ffffffZ".
 * Returns false when the text is not in exactly that form. */
static bool timestamptz_rfc3339(const char *s, size_t n, char *out /* >= 28 */)
{
    size_t i = 19, nf = 0;
    if (n < 22 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || s[10] != ' ' || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    memcpy(out, s, 19);
    out[10] = 'T';
    out[19] = '.';
    if (s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i]) && nf < 6)
            out[20 + nf++] = s[i++];
        if (nf == 0)
            return false;
    }
    while (nf < 6)
        out[20 + nf++] = '0';
    /* Offset must be UTC: "+00" (db.c sets TimeZone=UTC), optionally ":00". */
    if (!((n - i == 3 && memcmp(s + i, "+00", 3) == 0) ||
          (n - i == 6 && memcmp(s + i, "+00:00", 6) == 0)))
        return false;
    out[26] = 'Z';
    out[27] = '\0';
    return true;
}

int rowjson_value(buf *out, enum rowjson_kind kind, const char *val, size_t len)
{
    char ts[28];

    if (val == NULL)
        return buf_append(out, "null", 4);
    switch (kind) {
    case RJ_INT:
    case RJ_FLOAT:
        if (json_number_ok(val, len))
            return buf_append(out, val, len);
        return buf_json_str(out, val, len); /* NaN, Infinity */
    case RJ_BOOL:
        if (len == 1 && val[0] == 't')
            return buf_append(out, "true", 4);
        if (len == 1 && val[0] == 'f')
            return buf_append(out, "false", 5);
        return buf_json_str(out, val, len);
    case RJ_JSON:
        /* The server validated json/jsonb on input; embed as is. */
        return buf_append(out, val, len);
    case RJ_TIMESTAMPTZ:
        if (timestamptz_rfc3339(val, len, ts)) {
            if (buf_putc(out, '"') < 0 || buf_append(out, ts, 27) < 0)
                return -1;
            return buf_putc(out, '"');
        }
        return buf_json_str(out, val, len);
    case RJ_STRING:
    default:
        return buf_json_str(out, val, len);
    }
}

static int render_cell(buf *out, const struct rowjson_result *r, size_t row, size_t col)
{
    size_t len = 0;
    const char *v = r->value(r->ctx, row, col, &len);
    return rowjson_value(out, rowjson_kind(r->type_oid(r->ctx, col)), v, len);
}

static int render_object(buf *out, const struct rowjson_result *r, size_t row)
{
    bool first = true;
    if (buf_putc(out, '{') < 0)
        return -1;
    for (size_t c = 0; c < r->ncols; c++) {
        const char *name = r->name(r->ctx, c);
        if (name[0] == '_')
            continue;
        if (!first && buf_putc(out, ',') < 0)
            return -1;
        first = false;
        if (buf_json_str(out, name, strlen(name)) < 0 || buf_putc(out, ':') < 0 ||
            render_cell(out, r, row, c) < 0)
            return -1;
    }
    return buf_putc(out, '}');
}

int rowjson_render(buf *out, enum result_shape shape, const struct rowjson_result *r)
{
    switch (shape) {
    case RESULT_OBJECT:
        if (r->nrows == 0)
            return 1;
        return render_object(out, r, 0);
    case RESULT_ARRAY:
        if (buf_putc(out, '[') < 0)
            return -1;
        for (size_t i = 0; i < r->nrows; i++) {
            if (i > 0 && buf_putc(out, ',') < 0)
                return -1;
            if (render_object(out, r, i) < 0)
                return -1;
        }
        return buf_putc(out, ']');
    case RESULT_VALUE:
        if (r->nrows == 0 || r->ncols == 0)
            return 1;
        return render_cell(out, r, 0, 0);
    case RESULT_NONE:
    default:
        return r->nrows == 0 ? 1 : 0;
    }
}
