/*
 * pending.h - the tag bumps that could not reach the shared cache, kept
 * until they can be replayed.
 *
 * A bounded set of distinct tags. Adding "*" (the global tag), or more
 * distinct tags than it holds, turns it into "bump everything": one bump of
 * "*" replaces the list, which is always correct (it invalidates a
 * superset) and costs only misses. Thread-safe. pending_begin() keeps the
 * set locked while the caller replays it, so no other thread of the
 * process can go on to use the cache before the replay has landed.
 */
#ifndef RC_CACHE_PENDING_H
#define RC_CACHE_PENDING_H

#include "../common.h"

#include <stdbool.h>
#include <stddef.h>

struct pending;

struct pending *pending_create(size_t max_tags) RC_MUSTCHECK;
void pending_free(struct pending *p); /* accepts NULL */

/* Remember tags[0..n) (copied). */
void pending_add(struct pending *p, const struct rc_str *tags, size_t n);
/* Nothing to replay? One atomic load, no lock. */
bool pending_empty(struct pending *p);

/* If there is something to replay, lock the set and describe it: either
 * *all (bump "*") or tags[0..*n), valid until pending_end(). Returns false
 * (and takes no lock) when the set is empty. */
bool pending_begin(struct pending *p, const struct rc_str **tags, size_t *n, bool *all);
/* After pending_begin: forget the set if it was replayed, then unlock. */
void pending_end(struct pending *p, bool replayed);

#endif
