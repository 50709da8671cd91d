/*
 * tiered.h - the memory provider as L1 in front of Redis as L2.
 *
 * L1 serves an entry only while it can prove the entry is still valid:
 * every tag bump of every instance reaches its L1 tag table through Redis
 * pub/sub (cache_redis_subscribe), and while the subscription is down or
 * has messages in flight, L1 is skipped. See tiered.c.
 */
#ifndef RC_CACHE_TIERED_H
#define RC_CACHE_TIERED_H

#include "cache.h"

/* Takes ownership of l1 (a memory provider) and l2 (a redis provider
 * created with publish = true), also on failure. l1_ttl_max_ms caps how
 * long an entry lives in L1. */
struct cache *cache_tiered_create(struct cache *l1, struct cache *l2, int64_t l1_ttl_max_ms,
                                  char *errbuf) RC_MUSTCHECK;

#endif
