/*
 * http.h - the HTTP vocabulary, free of any I/O: methods, query strings,
 * percent-decoding, status texts, ETag matching, content types and the JSON
 * error bodies of API.md. server.c and handler.c turn these into bytes.
 */
#ifndef RC_HTTP_H
#define RC_HTTP_H

#include "buf.h"
#include "common.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "GET" -> RC_GET, ...; 0 for anything else (including lower case). */
enum rc_method http_method_parse(const char *s);

/* "GET, HEAD, PATCH" for a method bitmask, in a fixed order. Returns the
 * length written (always NUL-terminated), or -1 if it does not fit. */
int http_allow_header(unsigned methods, char *out, size_t outsz);

/* Percent-decode in[0..n) into out (outsz bytes incl. NUL). '+' becomes a
 * space when plus_is_space. Returns the decoded length, or -1 on a malformed
 * escape, a decoded NUL byte, or when out is too small. */
int http_pct_decode(const char *in, size_t n, char *out, size_t outsz, bool plus_is_space);

/* Iterate over "a=1&b=2" pairs. *cursor starts at the query string (may be
 * NULL or ""). On each call fills the raw (still encoded) name and value
 * spans and returns true; false when done. A pair without '=' has an empty
 * value. Empty pairs ("a=1&&b=2") are skipped. At most 256 pairs are
 * visited: a longer query string reports done. */
struct http_qpair {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
bool http_query_next(const char **cursor, int *count, struct http_qpair *out);

/* Reason phrase for a status ("Not Found"); "Unknown" if unlisted. */
const char *http_status_text(int status);
/* API.md error code for a status ("not_found"); "internal" if unlisted. */
const char *http_error_code(int status);

/* The header block of a FastCGI response, built with memcpy (it is written
 * on every cache hit; snprintf here was a third of a hit's instructions).
 * A header that would not fit is left out whole, and the blank line that
 * ends the block always fits. Usage: n = 0, then the adds, then
 * http_head_end(); data[0..n) is the block. */
struct http_head {
    char data[2048];
    size_t n;
};
/* "Status: NNN Reason\r\n"; status is three digits. */
void http_head_status(struct http_head *h, int status);
/* "<name>: <value>\r\n". */
void http_head_str(struct http_head *h, const char *name, const char *value);
void http_head_num(struct http_head *h, const char *name, uint64_t value);
/* A whole header line given without its CRLF ("Name: value"). */
void http_head_line(struct http_head *h, const char *line);
/* The blank line; returns h->n. */
size_t http_head_end(struct http_head *h);

/* {"error":"<code for status>","message":"<message>"} into b (appended). */
int http_error_json(buf *b, int status, const char *message) RC_MUSTCHECK;

/* Does an If-None-Match header value match the strong etag `etag` (given
 * with its quotes)? Handles lists, "*", and weak W/ prefixes (weak
 * comparison, as RFC 9110 requires for If-None-Match). */
bool http_etag_matches(const char *if_none_match, const char *etag, size_t etag_len);

/* Is the Content-Type application/json (any case, optional parameters,
 * e.g. "application/json; charset=utf-8")? Also accepts "+json" types. */
bool http_content_type_is_json(const char *content_type);

#endif
