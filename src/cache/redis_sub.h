/*
 * redis_sub.h - inside the redis provider: the subscription thread of the
 * tiered provider (redis_sub.c), and the connection it drives, which
 * redis_link.c provides so that hiredis stays in the provider's own files.
 *
 * Not a public interface: tiered.c uses redis.h's cache_redis_subscribe,
 * cache_redis_sub_quiet and cache_redis_sub_epoch.
 */
#ifndef RC_CACHE_REDIS_SUB_H
#define RC_CACHE_REDIS_SUB_H

#include "../common.h"
#include "rconn.h"
#include "redis.h"

#include <stdbool.h>
#include <stdint.h>

/* Bumps kept for replay while Redis is away; a replay is published as one
 * message, so a subscriber must take this many tags at once. */
#define REDIS_PENDING_MAX 1024

struct redis;      /* the provider (redis_int.h) */
struct redis_link; /* a logged-in, subscribed connection (redis_link.c) */
struct redis_sub;  /* the subscriber (redis_sub.c) */

/* ---- redis_link.c ---- */

/* Connect, log in and SUBSCRIBE to the provider's channel. NULL + err. */
struct redis_link *redis_link_open(struct redis *r, char *err) RC_MUSTCHECK;
void redis_link_close(struct redis_link *l); /* accepts NULL */
struct rconn *redis_link_conn(struct redis_link *l);
/* Send PING (its answer arrives through the sink's pong). */
int redis_link_ping(struct redis_link *l, int64_t deadline, char *err) RC_MUSTCHECK;

struct redis_link_sink {
    void (*message)(void *arg, const char *payload, size_t len);
    void (*pong)(void *arg);
    void *arg;
};
/* Read what has arrived (waiting for at least one byte until deadline) and
 * hand every complete reply to the sink. *partial: an incomplete one is
 * buffered. 0, or -1 + err (the link is then unusable). */
int redis_link_read(struct redis_link *l, const struct redis_link_sink *sink, int64_t deadline,
                    bool *partial, char *err) RC_MUSTCHECK;

const char *redis_where(const struct redis *r);
int redis_command_timeout_ms(const struct redis *r);

/* ---- redis_sub.c ---- */

struct redis_sub *redis_sub_start(struct redis *r, const struct redis_sub_fns *fns,
                                  char *errbuf) RC_MUSTCHECK;
void redis_sub_stop(struct redis_sub *s); /* joins the thread; accepts NULL */
bool redis_sub_quiet(struct redis_sub *s, uint64_t *epoch);
uint64_t redis_sub_epoch(struct redis_sub *s);

#endif
