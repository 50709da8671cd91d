/*
 * cache.h - the cache provider interface.
 *
 * A provider stores opaque encoded entries (see entry.h) under string keys
 * with a TTL, and keeps one generation counter per tag. Callers never test
 * which provider they hold: they go through `ops`, the way hiredis plugs
 * transports in through redisContextFuncs.
 *
 * Tag generations are the invalidation mechanism (DESIGN.md): a reader gets
 * the entry and the current generations of its tags together; the entry is
 * valid only if the generations recorded in it equal the current ones. A
 * bump is O(1) whatever the number of entries. The tag "*" is the global
 * generation that every entry records first; bumping it invalidates all.
 *
 * A generation has two parts. The low CACHE_GEN_HARD_BITS bits are the hard
 * part: bump_tags adds 1 (Redis INCR), and an entry whose recorded hard
 * part differs is dead. The high bits are the soft part: bump_tags_soft
 * adds CACHE_GEN_SOFT_UNIT (Redis INCRBY), and an entry whose recorded
 * generations differ only there was soft-purged: it may be answered as
 * STALE while one refresh replaces it. Both parts only move forward, so
 * the +1 of every provider stays exactly right for hard invalidation.
 *
 * Thread safety: every op may be called from any thread concurrently.
 */
#ifndef RC_CACHE_H
#define RC_CACHE_H

#include "../common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_GLOBAL_TAG "*"

#define CACHE_GEN_HARD_BITS 40
#define CACHE_GEN_HARD_MASK ((UINT64_C(1) << CACHE_GEN_HARD_BITS) - 1)
#define CACHE_GEN_SOFT_UNIT (UINT64_C(1) << CACHE_GEN_HARD_BITS)

/* A value handed out by get(); the bytes stay valid until release(). */
struct cache_value {
    const uint8_t *data;
    size_t len;
    void *ref; /* provider's handle; opaque */
};

struct cache_stats {
    uint64_t gets, hits, misses; /* provider-level lookups */
    uint64_t local_hits;         /* hits found in this process's memory: no round trip */
    uint64_t sets, deletes, errors, evictions;
    uint64_t keys, bytes;
    uint64_t max_bytes; /* 0 when the provider has no budget */
    int breaker;        /* circuit breaker: -1 none, 0 closed, 1 open, 2 half-open */
};

struct cache_ops {
    const char *name; /* "memory", "redis", ... */
    /* get() may wait on the network: the handler then never calls it from
     * an event loop, only from a database worker (a hit costs a hand-off
     * but a slow Redis never stalls the loop's other connections). */
    bool remote;
    /* Look key up and read the generations of tags[0..ntags) in one go.
     * Returns 1 (found: *val set, release it), 0 (absent or expired), -1
     * (provider error; treat as a miss). gens[] is filled when >= 0. */
    int (*get)(void *self, const char *key, size_t klen, const struct rc_str *tags, size_t ntags,
               struct cache_value *val, uint64_t *gens);
    void (*release)(void *self, struct cache_value *val);
    /* Store a copy of data[0..len) for ttl_ms (> 0). 0 or -1. */
    int (*set)(void *self, const char *key, size_t klen, const void *data, size_t len,
               int64_t ttl_ms);
    int (*del)(void *self, const char *key, size_t klen);
    int (*tag_gens)(void *self, const struct rc_str *tags, size_t ntags, uint64_t *gens);
    int (*bump_tags)(void *self, const struct rc_str *tags, size_t ntags);
    /* Delete keys matching a glob pattern ('*' and '?'); NULL pattern means
     * every key. *deleted receives the count. Incremental, never blocking
     * all readers for the whole scan. */
    int (*purge)(void *self, const char *pattern, uint64_t *deleted);
    void (*stats)(void *self, struct cache_stats *out);
    int (*ping)(void *self);
    /* Periodic housekeeping (expired-entry sweep), called about once a
     * second from the main thread; may be NULL. */
    void (*tick)(void *self);
    void (*close)(void *self);

    /* Optional ops (NULL when the provider has none). */

    /* Soft purge: add CACHE_GEN_SOFT_UNIT to each tag's generation. 0 or -1.
     * NULL: DELETE /cache/tags/{tag}?mode=soft answers 400 for this
     * provider. */
    int (*bump_tags_soft)(void *self, const struct rc_str *tags, size_t ntags);
    /* A short lock shared by every process using this cache, so that
     * concurrent misses on one key run one query across instances (Redis:
     * SET <prefix>lock:<key> <token> NX PX ttl_ms). 1: taken; 0: held by
     * someone else (the caller polls get() for the entry, bounded, then
     * queries itself); -1: error (the caller queries without it). unlock
     * deletes the lock only while token still holds it (compare-and-delete,
     * e.g. a Lua script), so a lock that expired and was taken over is never
     * released by its former holder. NULL: single-flight is per process. */
    int (*lock)(void *self, const char *key, size_t klen, uint64_t token, int64_t ttl_ms);
    int (*unlock)(void *self, const char *key, size_t klen, uint64_t token);
    /* A remote provider's get() from this process's memory alone (tiered:
     * L1), never waiting on the network, so the handler calls it on the
     * event loop. 1: found (*val and gens[] set, as get()); 0: not here,
     * get() from a worker decides. */
    int (*get_local)(void *self, const char *key, size_t klen, const struct rc_str *tags,
                     size_t ntags, struct cache_value *val, uint64_t *gens);
    /* bump_tags, once per token among every process sharing this cache: a
     * tag already bumped with this token within CACHE_ONCE_TTL_MS is left
     * as it is. The token names a committed transaction (notify.h, tx):
     * its writer and every instance's listener each try to bump its tags
     * after the commit, and one bump after the commit is all it needs, so
     * the writer's write-through entry survives the other instances'
     * listeners. Only a bump made after the token's commit may carry it.
     * Returns how many tags it left alone (>= 0), or -1. NULL: the cache
     * is this process's own (memory), and every bump counts; use
     * cache_bump_once(). */
    int (*bump_tags_once)(void *self, const struct rc_str *tags, size_t ntags,
                          const struct rc_str *token);
};

struct cache {
    const struct cache_ops *ops;
    void *self;
};

void cache_free(struct cache *c); /* calls ops->close; accepts NULL */

/* How long a token of bump_tags_once is remembered, per tag. Past it, a
 * listener that lags this much bumps again: one extra miss, never stale. */
#define CACHE_ONCE_TTL_MS 10000

/* bump_tags_once when the provider has it and a token (len > 0), else bump_tags:
 * -1 on failure, else the tags left alone as already bumped (0 for
 * bump_tags). */
int cache_bump_once(struct cache *c, const struct rc_str *tags, size_t ntags,
                    const struct rc_str *token);

#endif
