/*
 * notify.h - the payload of the notifications sql/respcache_notify.sql
 * publishes on the LISTEN channel:
 *
 *   {"tags":["user:42","user:42:jobs"],"ts":1700000000123.456,
 *    "tx":"7821.1700000000120004"}
 *
 * tags: the tags whose generations to bump ("*" = everything); ts: when
 * the row changed, in milliseconds since the Unix epoch (the trigger's
 * clock_timestamp(), about the commit of a short transaction), for the
 * invalidation delay histogram; optional. tx: names the transaction,
 * its id (txid_current()) and its start (now(), in µs since the epoch;
 * an id alone comes back after a failover or a restore), which lets the
 * instances sharing a cache bump its tags once between them (cache.h,
 * bump_tags_once); at most NOTIFY_MAX_TX of [0-9A-Za-z._-], anything else
 * is ignored; optional, as triggers loaded before it was added do not
 * send it. I/O-free, so it is unit-tested.
 */
#ifndef RC_NOTIFY_H
#define RC_NOTIFY_H

#include "common.h"

#include <stddef.h>

#define NOTIFY_MAX_TAGS    256
#define NOTIFY_MAX_TAG_LEN 256
#define NOTIFY_MAX_PAYLOAD 8000 /* PostgreSQL's limit */
#define NOTIFY_MAX_TX      64

struct notify_msg {
    size_t ntags;
    struct rc_str tags[NOTIFY_MAX_TAGS]; /* point into buf */
    double ts_ms;                        /* < 0: absent */
    size_t txlen;                        /* 0: absent */
    char tx[NOTIFY_MAX_TX + 1];
    char buf[NOTIFY_MAX_PAYLOAD];
};

/* Parse payload into out. -1 when it is not such an object, has no tags,
 * a tag that is not a non-empty printable string of at most
 * NOTIFY_MAX_TAG_LEN bytes, or more than NOTIFY_MAX_TAGS tags: the caller
 * then cannot know what changed (and should invalidate everything). */
int notify_parse(const char *payload, struct notify_msg *out) RC_MUSTCHECK;

#endif
