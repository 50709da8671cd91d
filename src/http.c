/*
 * http.c - the HTTP vocabulary of http.h: method names, the Allow header,
 * percent-decoding, query-string iteration, status texts, API.md error
 * codes and bodies, If-None-Match matching and Content-Type checks.
 *
 * Everything here is pure: no I/O, no allocation (except through the
 * caller's buf in http_error_json), no global mutable state. Input comes
 * from the network, so every scan is bounded by an explicit length or by
 * the string's NUL, never by the shape we hope the input has; the query
 * iterator additionally stops after HTTP_QUERY_MAX_PAIRS pairs so a hostile
 * query string costs at most one linear pass.
 *
 * Trade-off: the parsers are deliberately lenient where leniency is harmless
 * (unknown If-None-Match list elements are skipped, not rejected) and strict
 * where a mistake would change meaning (a truncated or non-hex escape, or a
 * decoded NUL, fails the whole decode instead of passing bytes through).
 */
#include "http.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#define HTTP_QUERY_MAX_PAIRS 256

/* The methods in the order the Allow header lists them. */
static const struct {
    enum rc_method method;
    const char *name;
} methods[] = {
    {RC_GET, "GET"}, {RC_HEAD, "HEAD"},   {RC_POST, "POST"},
    {RC_PUT, "PUT"}, {RC_PATCH, "PATCH"}, {RC_DELETE, "DELETE"},
};

/* One table for reason phrases and API.md error codes (code is NULL for
 * statuses that are not errors). Phrases follow RFC 9110. */
static const struct {
    int status;
    const char *text;
    const char *code;
} statuses[] = {
    {200, "OK", NULL},
    {201, "Created", NULL},
    {202, "Accepted", NULL},
    {204, "No Content", NULL},
    {301, "Moved Permanently", NULL},
    {302, "Found", NULL},
    {303, "See Other", NULL},
    {304, "Not Modified", NULL},
    {307, "Temporary Redirect", NULL},
    {308, "Permanent Redirect", NULL},
    {400, "Bad Request", "bad_request"},
    {401, "Unauthorized", "unauthorized"},
    {403, "Forbidden", "forbidden"},
    {404, "Not Found", "not_found"},
    {405, "Method Not Allowed", "method_not_allowed"},
    {406, "Not Acceptable", "not_acceptable"},
    {408, "Request Timeout", "request_timeout"},
    {409, "Conflict", "conflict"},
    {410, "Gone", "gone"},
    {411, "Length Required", "length_required"},
    {412, "Precondition Failed", "precondition_failed"},
    {413, "Content Too Large", "payload_too_large"},
    {414, "URI Too Long", "uri_too_long"},
    {415, "Unsupported Media Type", "unsupported_media_type"},
    {422, "Unprocessable Content", "unprocessable"},
    {429, "Too Many Requests", "too_many_requests"},
    {431, "Request Header Fields Too Large", "header_too_large"},
    {500, "Internal Server Error", "internal"},
    {501, "Not Implemented", "not_implemented"},
    {502, "Bad Gateway", "bad_gateway"},
    {503, "Service Unavailable", "unavailable"},
    {504, "Gateway Timeout", "gateway_timeout"},
};

enum rc_method http_method_parse(const char *s)
{
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < RC_ARRAY_LEN(methods); i++) {
        if (strcmp(s, methods[i].name) == 0)
            return methods[i].method;
    }
    return 0;
}

int http_allow_header(unsigned mask, char *out, size_t outsz)
{
    size_t len = 0;

    if (out == NULL || outsz == 0)
        return -1;
    out[0] = '\0';
    for (size_t i = 0; i < RC_ARRAY_LEN(methods); i++) {
        if (!(mask & (unsigned)methods[i].method))
            continue;
        const char *sep = len > 0 ? ", " : "";
        size_t need = strlen(sep) + strlen(methods[i].name);
        if (len + need + 1 > outsz) {
            out[0] = '\0';
            return -1;
        }
        memcpy(out + len, sep, strlen(sep));
        len += strlen(sep);
        memcpy(out + len, methods[i].name, strlen(methods[i].name));
        len += strlen(methods[i].name);
        out[len] = '\0';
    }
    return (int)len;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int http_pct_decode(const char *in, size_t n, char *out, size_t outsz, bool plus_is_space)
{
    size_t o = 0;

    if (out == NULL || outsz == 0 || (in == NULL && n > 0) || n > INT_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (n - i < 3)
                goto fail;
            int hi = hex_value((unsigned char)in[i + 1]);
            int lo = hex_value((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                goto fail;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        /* A NUL, raw or decoded, would silently truncate the value for
         * every C-string consumer downstream (libpq among them). */
        if (c == '\0')
            goto fail;
        if (o + 1 >= outsz)
            goto fail;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (int)o;
fail:
    out[0] = '\0';
    return -1;
}

bool http_query_next(const char **cursor, int *count, struct http_qpair *out)
{
    const char *p;

    if (cursor == NULL || count == NULL || out == NULL || *cursor == NULL)
        return false;
    p = *cursor;
    while (*p == '&')
        p++;
    if (*p == '\0' || *count >= HTTP_QUERY_MAX_PAIRS) {
        *cursor = NULL;
        return false;
    }
    out->name = p;
    while (*p != '\0' && *p != '&' && *p != '=')
        p++;
    out->name_len = (size_t)(p - out->name);
    if (*p == '=') {
        p++;
        out->value = p;
        while (*p != '\0' && *p != '&')
            p++;
        out->value_len = (size_t)(p - out->value);
    } else {
        out->value = p;
        out->value_len = 0;
    }
    (*count)++;
    *cursor = p;
    return true;
}

const char *http_status_text(int status)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(statuses); i++) {
        if (statuses[i].status == status)
            return statuses[i].text;
    }
    return "Unknown";
}

const char *http_error_code(int status)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(statuses); i++) {
        if (statuses[i].status == status && statuses[i].code != NULL)
            return statuses[i].code;
    }
    return "internal";
}

/* Room left for headers: the final blank line is always kept free. */
static size_t head_room(const struct http_head *h)
{
    return sizeof(h->data) - 2 - h->n;
}

static void head_add(struct http_head *h, const char *name, size_t nlen, const char *v, size_t vlen)
{
    if (nlen + vlen + 4 > head_room(h))
        return;
    memcpy(h->data + h->n, name, nlen);
    h->n += nlen;
    if (nlen > 0) {
        memcpy(h->data + h->n, ": ", 2);
        h->n += 2;
    }
    memcpy(h->data + h->n, v, vlen);
    h->n += vlen;
    memcpy(h->data + h->n, "\r\n", 2);
    h->n += 2;
}

void http_head_status(struct http_head *h, int status)
{
    const char *text = http_status_text(status);
    size_t tlen = strlen(text);
    char line[64];

    line[0] = (char)('0' + status / 100 % 10);
    line[1] = (char)('0' + status / 10 % 10);
    line[2] = (char)('0' + status % 10);
    line[3] = ' ';
    if (tlen > sizeof(line) - 4)
        tlen = sizeof(line) - 4;
    memcpy(line + 4, text, tlen);
    head_add(h, "Status", 6, line, 4 + tlen);
}

void http_head_str(struct http_head *h, const char *name, const char *value)
{
    head_add(h, name, strlen(name), value, strlen(value));
}

void http_head_num(struct http_head *h, const char *name, uint64_t value)
{
    char d[20];
    size_t i = sizeof(d);

    do {
        d[--i] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0 && i > 0);
    head_add(h, name, strlen(name), d + i, sizeof(d) - i);
}

void http_head_line(struct http_head *h, const char *line)
{
    head_add(h, "", 0, line, strlen(line));
}

size_t http_head_end(struct http_head *h)
{
    memcpy(h->data + h->n, "\r\n", 2);
    h->n += 2;
    return h->n;
}

int http_error_json(buf *b, int status, const char *message)
{
    size_t start = b->len;

    if (message == NULL)
        message = http_status_text(status);
    if (buf_puts(b, "{\"error\":\"") < 0 || buf_puts(b, http_error_code(status)) < 0 ||
        buf_puts(b, "\",\"message\":") < 0 || buf_json_str(b, message, strlen(message)) < 0 ||
        buf_putc(b, '}') < 0) {
        /* Leave the buffer as it was: no half-written body. */
        b->len = start;
        if (b->data != NULL && start < b->alloc)
            b->data[start] = '\0';
        return -1;
    }
    return 0;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Drop a weak "W/" prefix: If-None-Match uses the weak comparison. */
static void strip_weak(const char **s, size_t *n)
{
    if (*n >= 2 && (*s)[0] == 'W' && (*s)[1] == '/') {
        *s += 2;
        *n -= 2;
    }
}

bool http_etag_matches(const char *if_none_match, const char *etag, size_t etag_len)
{
    const char *p = if_none_match;

    if (p == NULL || etag == NULL)
        return false;
    strip_weak(&etag, &etag_len);
    for (;;) {
        while (is_ows(*p) || *p == ',')
            p++;
        if (*p == '\0')
            return false;
        if (*p == '*') {
            const char *q = p + 1;
            while (is_ows(*q))
                q++;
            if (*q == '\0' || *q == ',')
                return true;
        } else {
            if (p[0] == 'W' && p[1] == '/')
                p += 2;
            if (*p == '"') {
                const char *close = strchr(p + 1, '"');
                if (close == NULL)
                    return false; /* unterminated: nothing valid follows */
                size_t n = (size_t)(close - p) + 1;
                if (n == etag_len && memcmp(p, etag, n) == 0)
                    return true;
                p = close + 1;
            }
        }
        /* Skip whatever remains of this element (junk included). */
        while (*p != '\0' && *p != ',')
            p++;
    }
}

/* RFC 9110 tchar, the characters of a media type's type and subtype. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool span_ieq(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && strncasecmp(s, lit, n) == 0;
}

bool http_content_type_is_json(const char *ct)
{
    const char *type, *sub;
    size_t type_len, sub_len;

    if (ct == NULL)
        return false;
    while (is_ows(*ct))
        ct++;
    type = ct;
    while (is_tchar((unsigned char)*ct))
        ct++;
    type_len = (size_t)(ct - type);
    if (*ct != '/' || !span_ieq(type, type_len, "application"))
        return false;
    sub = ++ct;
    while (is_tchar((unsigned char)*ct))
        ct++;
    sub_len = (size_t)(ct - sub);
    while (is_ows(*ct))
        ct++;
    if (*ct != '\0' && *ct != ';')
        return false;
    if (span_ieq(sub, sub_len, "json"))
        return true;
    /* Structured syntax suffix (RFC 6839): "vnd.api+json" and the like. */
    return sub_len > 5 && span_ieq(sub + sub_len - 5, 5, "+json");
}
