/*
 * redis_url.c - the Redis URL syntax of redis_url.h.
 *
 * The parser walks the string once, left to right: scheme, optional
 * userinfo, host and port (or the socket path), the "/db" path and the
 * query. Every component is copied into a fixed-size field of struct
 * redis_url, and one that does not fit is an error rather than a silent
 * truncation (a truncated password or socket path would fail later, far
 * from its cause).
 */
#include "redis_url.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SYNTAX "redis://[user:password@]host[:port][/db], rediss://... or unix:/path"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into out (NUL-terminated). -1 on a bad escape, a
 * decoded NUL or when it does not fit. */
static int pct_decode(const char *s, size_t n, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return -1;
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            if (c == '\0')
                return -1;
            i += 2;
        }
        if (o + 1 >= outsz)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Decimal integer s[0..n) in [lo, hi]. */
static int parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
    long v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_userinfo(const char *s, size_t n, struct redis_url *u, char *errbuf)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;

    if (colon == NULL)
        return rc_err(errbuf, "redis URL: a user name needs a password (user:password@)");
    if (pct_decode(s, ulen, u->user, sizeof(u->user)) < 0)
        return rc_err(errbuf, "redis URL: bad user name (percent-escapes, at most %d bytes)",
                      REDIS_URL_USER_MAX - 1);
    if (pct_decode(colon + 1, n - ulen - 1, u->password, sizeof(u->password)) < 0)
        return rc_err(errbuf, "redis URL: bad password (percent-escapes, at most %d bytes)",
                      REDIS_URL_PASSWORD_MAX - 1);
    u->has_password = u->password[0] != '\0';
    if (u->user[0] != '\0' && !u->has_password)
        return rc_err(errbuf, "redis URL: a user name needs a password (user:password@)");
    return 0;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* host[:port] or [v6][:port], authority s[0..n) after any userinfo. */
static int parse_hostport(const char *s, size_t n, struct redis_url *u, char *errbuf)
{
    size_t hlen, i = 0;
    const char *h;

    u->port = REDIS_DEFAULT_PORT;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return rc_err(errbuf, "redis URL: unterminated IPv6 address (missing ']')");
        h = s + 1;
        hlen = (size_t)(close - h);
        for (size_t k = 0; k < hlen; k++) {
            if (hexval(h[k]) < 0 && h[k] != ':' && h[k] != '.')
                return rc_err(errbuf, "redis URL: bad IPv6 address");
        }
        i = (size_t)(close - s) + 1;
    } else {
        h = s;
        while (i < n && s[i] != ':')
            i++;
        hlen = i;
        for (size_t k = 0; k < hlen; k++) {
            if (!host_char(h[k]))
                return rc_err(errbuf, "redis URL: bad character in the host name");
        }
    }
    if (hlen == 0)
        return rc_err(errbuf, "redis URL: expected a host, as in " SYNTAX);
    if (hlen >= sizeof(u->host))
        return rc_err(errbuf, "redis URL: host name longer than %d bytes", REDIS_URL_HOST_MAX - 1);
    memcpy(u->host, h, hlen);
    u->host[hlen] = '\0';
    if (i < n) {
        if (s[i] != ':' || parse_int(s + i + 1, n - i - 1, 1, 65535, &u->port) < 0)
            return rc_err(errbuf, "redis URL: expected a port from 1 to 65535 after the host");
    }
    return 0;
}

/* "db=N" pairs after '?'. */
static int parse_query(const char *q, struct redis_url *u, char *errbuf)
{
    while (*q != '\0') {
        size_t n = strcspn(q, "&");
        if (n > 3 && strncmp(q, "db=", 3) == 0) {
            if (parse_int(q + 3, n - 3, 0, REDIS_URL_DB_MAX, &u->db) < 0)
                return rc_err(errbuf, "redis URL: db must be an integer from 0 to %d",
                              REDIS_URL_DB_MAX);
        } else if (n > 0) {
            return rc_err(errbuf, "redis URL: unknown query parameter \"%.*s\" (only db=N)",
                          (int)(n < 32 ? n : 32), q);
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

static int parse_unix(const char *s, struct redis_url *u, char *errbuf)
{
    size_t plen;

    u->transport = REDIS_UNIX;
    if (strncmp(s, "//", 2) == 0) {
        const char *auth = s + 2;
        size_t alen = strcspn(auth, "/");
        const char *at = NULL;
        for (size_t k = 0; k < alen; k++) {
            if (auth[k] == '@')
                at = auth + k;
        }
        if (at != NULL) {
            if (parse_userinfo(auth, (size_t)(at - auth), u, errbuf) < 0)
                return -1;
            if (at + 1 != auth + alen)
                return rc_err(errbuf, "redis URL: unix://user:password@/path takes no host");
        } else if (alen != 0) {
            return rc_err(errbuf, "redis URL: unix:// takes no host; use unix:///path");
        }
        s = auth + alen;
    }
    plen = strcspn(s, "?#");
    if (plen == 0 || s[0] != '/')
        return rc_err(errbuf, "redis URL: expected an absolute socket path, as in unix:/path");
    if (pct_decode(s, plen, u->path, sizeof(u->path)) < 0)
        return rc_err(errbuf, "redis URL: socket path longer than %d bytes or badly escaped",
                      REDIS_URL_PATH_MAX - 1);
    s += plen;
    if (*s == '#')
        return rc_err(errbuf, "redis URL: unexpected '#'");
    return *s == '?' ? parse_query(s + 1, u, errbuf) : 0;
}

int redis_url_parse(const char *url, struct redis_url *u, char *errbuf)
{
    const char *s, *auth, *at = NULL;
    size_t alen;

    memset(u, 0, sizeof(*u));
    if (url == NULL || url[0] == '\0')
        return rc_err(errbuf, "redis URL: empty; expected " SYNTAX);
    for (s = url; *s != '\0'; s++) {
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return rc_err(errbuf, "redis URL: unexpected space or control character");
    }
    if (strncasecmp(url, "unix:", 5) == 0)
        return parse_unix(url + 5, u, errbuf);
    if (strncasecmp(url, "redis://", 8) == 0) {
        s = url + 8;
    } else if (strncasecmp(url, "rediss://", 9) == 0) {
        s = url + 9;
        u->tls = true;
    } else {
        return rc_err(errbuf, "redis URL: expected " SYNTAX);
    }
    u->transport = REDIS_TCP;
    auth = s;
    alen = strcspn(auth, "/?#");
    for (size_t k = 0; k < alen; k++) {
        if (auth[k] == '@')
            at = auth + k;
    }
    if (at != NULL) {
        if (parse_userinfo(auth, (size_t)(at - auth), u, errbuf) < 0)
            return -1;
        if (parse_hostport(at + 1, alen - (size_t)(at + 1 - auth), u, errbuf) < 0)
            return -1;
    } else if (parse_hostport(auth, alen, u, errbuf) < 0) {
        return -1;
    }
    s = auth + alen;
    if (*s == '/') {
        size_t n = strcspn(s + 1, "?#");
        if (n > 0 && parse_int(s + 1, n, 0, REDIS_URL_DB_MAX, &u->db) < 0)
            return rc_err(errbuf, "redis URL: the path must be a database number from 0 to %d",
                          REDIS_URL_DB_MAX);
        s += 1 + n;
    }
    if (*s == '#')
        return rc_err(errbuf, "redis URL: unexpected '#'");
    return *s == '?' ? parse_query(s + 1, u, errbuf) : 0;
}

void redis_url_describe(const struct redis_url *u, char *out, size_t outsz)
{
    if (u->transport == REDIS_UNIX)
        snprintf(out, outsz, "unix:%s", u->path);
    else if (strchr(u->host, ':') != NULL)
        snprintf(out, outsz, "[%s]:%d", u->host, u->port);
    else
        snprintf(out, outsz, "%s:%d", u->host, u->port);
}
