/*
 * redis.h - the shared cache provider: entries and tag generations in
 * Redis, reached over rconn (TCP, unix socket or TLS) with hiredis's
 * formatter and reply parser.
 *
 * Keys (prefix = cache.redis_key_prefix):
 *   prefix "e:" key     an encoded entry (entry.h), SET with PX ttl
 *   prefix "tag:" tag   a tag's generation, an INCR counter (absent = 0)
 *   prefix "meta:run_id" the run_id of the Redis process that last reset
 *                       the generations (see redis_conn.c: restarts)
 *   channel prefix "invalidate"   bumps and purges, when publishing
 *
 * The tiered provider (tiered.c) also uses the subscription below: a
 * thread of the provider's own subscribes to the channel and hands every
 * bump and purge published by any instance to callbacks.
 */
#ifndef RC_CACHE_REDIS_H
#define RC_CACHE_REDIS_H

#include "cache.h"

/* Longest key prefix, in bytes (config.c bounds cache.redis_key_prefix the
 * same); cache_redis_create() refuses a longer one. */
#define REDIS_KEY_PREFIX_MAX 64

struct redis_options {
    const char *url; /* redis_url.h syntax */
    const char *key_prefix;
    int connect_timeout_ms;
    int command_timeout_ms;
    const char *tls_ca_file; /* NULL: the system's trust store */
    const char *tls_cert_file;
    const char *tls_key_file;
    bool tls_verify;
    unsigned breaker_failures;
    int breaker_open_ms;
    bool publish; /* also PUBLISH every bump and purge (tiered) */
};

/* Connects once to check the URL, credentials, TLS and database: NULL +
 * errbuf when one of them is wrong. An unreachable server is not an error
 * (the provider starts degraded and reconnects); it is logged. */
struct cache *cache_redis_create(const struct redis_options *o, char *errbuf) RC_MUSTCHECK;

/* ---- subscription (tiered) ------------------------------------------- */

struct redis_sub_fns {
    /* Tags bumped by some instance. */
    void (*on_bump)(void *arg, const struct rc_str *tags, size_t ntags);
    /* Keys matching pattern were purged by some instance. */
    void (*on_purge)(void *arg, const char *pattern);
    /* Messages may have been missed (the subscription was re-established,
     * or one could not be understood): forget everything. */
    void (*on_reset)(void *arg);
    void *arg;
};

/* Start the subscriber thread of c (a redis provider). Callbacks run on
 * that thread. on_reset runs before the subscription is reported up. */
int cache_redis_subscribe(struct cache *c, const struct redis_sub_fns *fns,
                          char *errbuf) RC_MUSTCHECK;

/* Is the subscription up with nothing received but not yet applied? Then
 * *epoch identifies this stretch of subscription: if
 * cache_redis_sub_epoch() still equals it afterwards, no message was lost
 * in between. One poll() with a zero timeout. */
bool cache_redis_sub_quiet(struct cache *c, uint64_t *epoch);
uint64_t cache_redis_sub_epoch(struct cache *c);

/* The circuit breaker's state (breaker.h enum), for metrics. */
int cache_redis_breaker_state(struct cache *c);

#endif
