/*
 * memory.h - the embedded provider: sharded hash + LRU under a byte budget,
 * and a fixed table of tag generation counters.
 */
#ifndef RC_CACHE_MEMORY_H
#define RC_CACHE_MEMORY_H

#include "cache.h"

/* shards and tag_slots must be powers of two. max_bytes bounds the sum of
 * stored values plus per-entry overhead. */
struct cache *cache_memory_create(uint64_t max_bytes, unsigned shards, unsigned tag_slots,
                                  char *errbuf) RC_MUSTCHECK;

/* Glob match used by purge ('*' any run, '?' one byte, '\\' escapes). */
bool cache_glob_match(const char *pattern, const char *s, size_t len);

#endif
