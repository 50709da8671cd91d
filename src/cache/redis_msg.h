/*
 * redis_msg.h - the invalidation messages instances publish to each other
 * (tiered provider): what a bump or a purge looks like on the channel.
 *
 *   "b\n" then, per tag, "<decimal length>:<tag bytes>"   tags were bumped
 *   "p\n<pattern>"                                         keys were purged
 *
 * Length-prefixed, so a tag may hold any byte. Parsing is strict and
 * bounded: anything else is REDIS_MSG_UNKNOWN, which a subscriber must
 * treat as "something may have been invalidated" (drop everything).
 */
#ifndef RC_CACHE_REDIS_MSG_H
#define RC_CACHE_REDIS_MSG_H

#include "../buf.h"
#include "../common.h"

#include <stddef.h>

#define REDIS_MSG_PATTERN_MAX 1024

enum redis_msg_kind { REDIS_MSG_BUMP, REDIS_MSG_PURGE, REDIS_MSG_UNKNOWN };

int redis_msg_bump(buf *out, const struct rc_str *tags, size_t n) RC_MUSTCHECK;
int redis_msg_purge(buf *out, const char *pattern) RC_MUSTCHECK;

/* Parse msg[0..len). BUMP: tags[0..*ntags) point into msg (at most max;
 * more is UNKNOWN). PURGE: pattern NUL-terminated in pattern[] (at most
 * REDIS_MSG_PATTERN_MAX bytes, no NUL inside). */
enum redis_msg_kind redis_msg_parse(const char *msg, size_t len, struct rc_str *tags, size_t max,
                                    size_t *ntags, char pattern[REDIS_MSG_PATTERN_MAX + 1]);

#endif
