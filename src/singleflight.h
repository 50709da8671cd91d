/*
 * singleflight.h - one database query per key at a time, per process.
 *
 * Concurrent misses on one cache key elect a leader: it runs the query and
 * stores the entry; the others wait (bounded) for it to finish and then
 * look the key up again. A waiter whose bound passes, or who finds no
 * usable entry after the leader (the query failed, or its tags were bumped
 * while it ran), queries itself: waiting never turns into hanging.
 *
 * The same table deduplicates background refreshes (stale-while-
 * revalidate, soft purge): singleflight_try claims a key without ever
 * waiting, so a stale entry served by many requests is refreshed once.
 *
 * Keys are hashed to a fixed number of stripes, each with its own mutex
 * and condition variable, so unrelated keys rarely contend and nothing is
 * locked process-wide. A flight is allocated per leader (a miss already
 * pays a database round trip), never on a hit.
 */
#ifndef RC_SINGLEFLIGHT_H
#define RC_SINGLEFLIGHT_H

#include "common.h"

#include <stdbool.h>
#include <stddef.h>

struct singleflight;
struct singleflight_flight;

enum singleflight_role {
    SINGLEFLIGHT_LEADER,  /* run the query, then singleflight_done(*f) */
    SINGLEFLIGHT_SHARED,  /* waited for another caller's flight to finish: look again */
    SINGLEFLIGHT_FAILED,  /* the flight waited for found the database unavailable: do not
                             query again now (answer stale-if-error, or 503) */
    SINGLEFLIGHT_TIMEOUT, /* waited the whole bound in vain: query yourself */
    SINGLEFLIGHT_BUSY,    /* singleflight_try only: a flight is already running */
};

struct singleflight *singleflight_create(void) RC_MUSTCHECK;
/* Accepts NULL. No flight may be running. */
void singleflight_free(struct singleflight *sf);

/* Lead the flight for key[0..klen), or wait at most wait_ms for the one
 * running to finish. wait_ms <= 0 never waits (TIMEOUT when a flight is
 * running). On LEADER, *f must be passed to singleflight_done; it may be
 * NULL when out of memory, then nothing is coalesced (done accepts NULL). */
enum singleflight_role singleflight_begin(struct singleflight *sf, const char *key, size_t klen,
                                          int wait_ms, struct singleflight_flight **f);
/* Lead the flight for key if none is running (LEADER, *f set), else BUSY.
 * Never waits. */
enum singleflight_role singleflight_try(struct singleflight *sf, const char *key, size_t klen,
                                        struct singleflight_flight **f);
/* End a flight and wake its waiters; unavailable: its query found the
 * database unavailable (its waiters get FAILED). Accepts NULL. */
void singleflight_done(struct singleflight *sf, struct singleflight_flight *f, bool unavailable);
/* Flights running now (a gauge for /metrics). */
long singleflight_inflight(struct singleflight *sf);

#endif
