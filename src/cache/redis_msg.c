/*
 * redis_msg.c - encoding and strict parsing of the invalidation messages
 * of redis_msg.h. Pure: no I/O.
 */
#include "redis_msg.h"

#include <string.h>

#define TAG_LEN_DIGITS 7 /* a tag is far shorter than 10 MB */

int redis_msg_bump(buf *out, const struct rc_str *tags, size_t n)
{
    if (buf_puts(out, "b\n") < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (buf_printf(out, "%zu:", tags[i].len) < 0 || buf_append(out, tags[i].s, tags[i].len) < 0)
            return -1;
    }
    return 0;
}

int redis_msg_purge(buf *out, const char *pattern)
{
    if (strlen(pattern) > REDIS_MSG_PATTERN_MAX)
        return -1;
    if (buf_puts(out, "p\n") < 0 || buf_puts(out, pattern) < 0)
        return -1;
    return 0;
}

static enum redis_msg_kind parse_bump(const char *p, size_t n, struct rc_str *tags, size_t max,
                                      size_t *ntags)
{
    size_t i = 2, nt = 0;

    while (i < n) {
        size_t len = 0, digits = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && digits < TAG_LEN_DIGITS) {
            len = len * 10 + (size_t)(p[i++] - '0');
            digits++;
        }
        if (digits == 0 || i >= n || p[i] != ':' || len > n - i - 1 || nt == max)
            return REDIS_MSG_UNKNOWN;
        tags[nt].s = p + i + 1;
        tags[nt++].len = len;
        i += 1 + len;
    }
    *ntags = nt;
    return REDIS_MSG_BUMP;
}

enum redis_msg_kind redis_msg_parse(const char *msg, size_t len, struct rc_str *tags, size_t max,
                                    size_t *ntags, char pattern[REDIS_MSG_PATTERN_MAX + 1])
{
    *ntags = 0;
    if (len < 2 || msg[1] != '\n')
        return REDIS_MSG_UNKNOWN;
    if (msg[0] == 'b')
        return parse_bump(msg, len, tags, max, ntags);
    if (msg[0] == 'p' && len - 2 <= REDIS_MSG_PATTERN_MAX &&
        memchr(msg + 2, '\0', len - 2) == NULL) {
        memcpy(pattern, msg + 2, len - 2);
        pattern[len - 2] = '\0';
        return REDIS_MSG_PURGE;
    }
    return REDIS_MSG_UNKNOWN;
}
