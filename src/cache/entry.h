/*
 * entry.h - the stored form of a cached response.
 *
 * Layout (little-endian, fixed header then variable parts):
 *   magic "RCE" + version byte (1)
 *   u16 status, u8 flags, u8 ntags
 *   u64 filled_at_ms, u64 fresh_until_ms, u64 stale_until_ms (wall clock)
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

#endif
