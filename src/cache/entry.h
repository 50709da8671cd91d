/*
 * entry.h - the stored form of a cached response.
 *
 * Layout (little-endian, fixed header then variable parts):
 *   magic "RCE" + version byte (1)
 *   u16 status, u8 flags, u8 ntags
 *   u64 filled_at_ms, u64 fresh_until_ms, u64 stale_until_ms (wall clock;
 *                            stale_until is the last instant the entry may
 *                            be answered at all, STALE included)
 *   u64 etag hash
 *   u64 gens[ntags]          generations of the entry's tags at fill time,
 *                            gens[0] being the global tag "*"
 *   u32 body_len, body bytes
 * Stored bytes are untrusted (another version, a foreign writer, a
 * truncated value): decode checks every length and returns -1, never reads
 * out of bounds.
 */
#ifndef RC_CACHE_ENTRY_H
#define RC_CACHE_ENTRY_H

#include "../buf.h"
#include "../common.h"
#include "cache.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENTRY_VERSION  1
#define ENTRY_MAX_TAGS 16
#define ENTRY_ETAG_LEN 18 /* quotes + 16 hex digits */

struct entry_view {
    int status;
    unsigned flags;
    uint64_t filled_at_ms;
    uint64_t fresh_until_ms;
    uint64_t stale_until_ms;
    uint64_t etag;
    size_t ntags;
    uint64_t gens[ENTRY_MAX_TAGS];
    const char *body; /* points into the decoded bytes */
    size_t body_len;
};

/* Append the encoded entry to out. -1 if ntags > ENTRY_MAX_TAGS or body is
 * over 4 GiB or out refuses to grow. */
int entry_encode(buf *out, const struct entry_view *e) RC_MUSTCHECK;
/* Decode data[0..len) into e (body points into data). 0 or -1. */
int entry_decode(const void *data, size_t len, struct entry_view *e) RC_MUSTCHECK;
/* 64-bit hash of a body, for the strong ETag. Stable across builds. */
uint64_t entry_hash(const void *data, size_t len);
/* Write "\"<16 lower-case hex>\"" + NUL into out (>= ENTRY_ETAG_LEN + 1). */
void entry_etag(uint64_t hash, char *out);
/* Are the entry's recorded generations those in gens[0..n)? False when the
 * counts differ. */
bool entry_gens_match(const struct entry_view *e, const uint64_t *gens, size_t n);

/* How the recorded generations compare with the current ones (see
 * cache.h: the low bits are hard, the high bits soft). */
enum entry_gens {
    ENTRY_GENS_SAME, /* equal */
    ENTRY_GENS_SOFT, /* only soft parts differ: soft-purged */
    ENTRY_GENS_HARD, /* a hard part or the tag count differs: invalid */
};
enum entry_gens entry_gens_compare(const struct entry_view *e, const uint64_t *gens, size_t n);

/* What a reader may do with an entry (the entry state machine; one
 * function, entry_state, decides it). */
enum entry_state {
    ENTRY_FRESH,         /* answer it: HIT */
    ENTRY_STALE_EXPIRED, /* past fresh_until, inside stale-while-revalidate:
                            answer STALE, refresh once */
    ENTRY_STALE_SOFT,    /* a tag was soft-purged: answer STALE, refresh once */
    ENTRY_ERROR_ONLY,    /* answer it (STALE) only if the database fails,
                            inside stale-if-error; otherwise a miss */
    ENTRY_DEAD,          /* never answer: a hard bump, or past every window */
};

/* The entry's state at wall-clock now_ms given the current generations and
 * the route's windows (ms after fresh_until; both end by stale_until).
 * Invalidation stays hard: a hard generation change is ENTRY_DEAD whatever
 * the windows say. */
enum entry_state entry_state(const struct entry_view *e, const uint64_t *gens, size_t n,
                             uint64_t now_ms, int64_t swr_ms, int64_t sie_ms);

#endif
