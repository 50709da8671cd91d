/*
 * entry.c - encode and decode the stored form of a cached response.
 *
 * The layout is documented in entry.h. Every multi-byte field is written and
 * read a byte at a time in little-endian order, never by copying a struct, so
 * the bytes are the same on every architecture and compiler and a value
 * written by one build (or one host, through Redis) is read correctly by
 * another. The fixed header is 40 bytes; the total size is
 * 40 + 8 * ntags + 4 + body_len, and decode insists on exactly that size:
 * truncated values and values with trailing bytes are both refused, because
 * either means the bytes are not what this code wrote.
 *
 * Decode trusts nothing: it checks the magic, the version, the tag count
 * against ENTRY_MAX_TAGS and every length against the bytes remaining before
 * touching them. A refused entry is simply a miss to the caller.
 *
 * entry_hash is XXH64 (seed 0), written out here from its public
 * specification: it mixes far better than FNV-1a, runs at memory speed on
 * 32-byte stripes, and its output is fixed by the spec, so ETags stay
 * stable across builds, architectures and restarts. It is not
 * cryptographic: ETags only need to change when a body changes.
 */
#include "entry.h"

#include <string.h>

#define ENTRY_MAGIC0   'R'
#define ENTRY_MAGIC1   'C'
#define ENTRY_MAGIC2   'E'
#define ENTRY_HDR_LEN  40 /* magic+version, status, flags, ntags, 4 x u64 */
#define ENTRY_BODY_MAX UINT32_MAX

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

int entry_encode(buf *out, const struct entry_view *e)
{
    uint8_t hdr[ENTRY_HDR_LEN + 8 * ENTRY_MAX_TAGS + 4];

    if (e->ntags > ENTRY_MAX_TAGS || e->body_len > ENTRY_BODY_MAX)
        return -1;
    if (e->status < 0 || e->status > UINT16_MAX || e->flags > UINT8_MAX)
        return -1;
    if (e->body_len > 0 && e->body == NULL)
        return -1;

    hdr[0] = ENTRY_MAGIC0;
    hdr[1] = ENTRY_MAGIC1;
    hdr[2] = ENTRY_MAGIC2;
    hdr[3] = ENTRY_VERSION;
    put_u16(hdr + 4, (uint16_t)e->status);
    hdr[6] = (uint8_t)e->flags;
    hdr[7] = (uint8_t)e->ntags;
    put_u64(hdr + 8, e->filled_at_ms);
    put_u64(hdr + 16, e->fresh_until_ms);
    put_u64(hdr + 24, e->stale_until_ms);
    put_u64(hdr + 32, e->etag);
    size_t off = ENTRY_HDR_LEN;
    for (size_t i = 0; i < e->ntags; i++, off += 8)
        put_u64(hdr + off, e->gens[i]);
    put_u32(hdr + off, (uint32_t)e->body_len);
    off += 4;

    /* Reserve everything first so a refusal leaves out unchanged. */
    if (buf_reserve(out, off + e->body_len) < 0)
        return -1;
    if (buf_append(out, hdr, off) < 0 || buf_append(out, e->body, e->body_len) < 0)
        return -1; /* cannot happen after the reserve */
    return 0;
}

int entry_decode(const void *data, size_t len, struct entry_view *e)
{
    const uint8_t *p = data;

    if (p == NULL || len < ENTRY_HDR_LEN)
        return -1;
    if (p[0] != ENTRY_MAGIC0 || p[1] != ENTRY_MAGIC1 || p[2] != ENTRY_MAGIC2 ||
        p[3] != ENTRY_VERSION)
        return -1;
    size_t ntags = p[7];
    if (ntags > ENTRY_MAX_TAGS)
        return -1;
    size_t off = ENTRY_HDR_LEN + 8 * ntags;
    if (len - ENTRY_HDR_LEN < 8 * ntags + 4)
        return -1;
    size_t body_len = get_u32(p + off);
    off += 4;
    if (len - off != body_len)
        return -1; /* truncated body or trailing bytes */

    e->status = get_u16(p + 4);
    e->flags = p[6];
    e->ntags = ntags;
    e->filled_at_ms = get_u64(p + 8);
    e->fresh_until_ms = get_u64(p + 16);
    e->stale_until_ms = get_u64(p + 24);
    e->etag = get_u64(p + 32);
    for (size_t i = 0; i < ntags; i++)
        e->gens[i] = get_u64(p + ENTRY_HDR_LEN + 8 * i);
    for (size_t i = ntags; i < ENTRY_MAX_TAGS; i++)
        e->gens[i] = 0;
    e->body = (const char *)p + off;
    e->body_len = body_len;
    return 0;
}

/* XXH64 constants and rounds, from the xxHash specification. */
#define XXH_P1 0x9E3779B185EBCA87ULL
#define XXH_P2 0xC2B2AE3D27D4EB4FULL
#define XXH_P3 0x165667B19E3779F9ULL
#define XXH_P4 0x85EBCA77C2B2AE63ULL
#define XXH_P5 0x27D4EB2F165667C5ULL

static uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * XXH_P2;
    acc = rotl64(acc, 31);
    return acc * XXH_P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t val)
{
    acc ^= xxh_round(0, val);
    return acc * XXH_P1 + XXH_P4;
}

uint64_t entry_hash(const void *data, size_t len)
{
    const uint8_t *p = data;
    const uint8_t *end = p + len;
    uint64_t h;

    if (len == 0)
        p = end = (const uint8_t *)"";
    if (len >= 32) {
        const uint8_t *limit = end - 32;
        uint64_t v1 = XXH_P1 + XXH_P2, v2 = XXH_P2, v3 = 0, v4 = 0 - XXH_P1;
        do {
            v1 = xxh_round(v1, get_u64(p));
            v2 = xxh_round(v2, get_u64(p + 8));
            v3 = xxh_round(v3, get_u64(p + 16));
            v4 = xxh_round(v4, get_u64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    } else {
        h = XXH_P5;
    }
    h += (uint64_t)len;

    while (end - p >= 8) {
        h ^= xxh_round(0, get_u64(p));
        h = rotl64(h, 27) * XXH_P1 + XXH_P4;
        p += 8;
    }
    if (end - p >= 4) {
        h ^= (uint64_t)get_u32(p) * XXH_P1;
        h = rotl64(h, 23) * XXH_P2 + XXH_P3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)*p * XXH_P5;
        h = rotl64(h, 11) * XXH_P1;
        p++;
    }
    h ^= h >> 33;
    h *= XXH_P2;
    h ^= h >> 29;
    h *= XXH_P3;
    h ^= h >> 32;
    return h;
}

void entry_etag(uint64_t hash, char *out)
{
    static const char hex[] = "0123456789abcdef";

    /* Every hit formats one: a table, not snprintf ("%016" PRIx64). */
    out[0] = '"';
    for (int i = 16; i >= 1; i--) {
        out[i] = hex[hash & 0xf];
        hash >>= 4;
    }
    out[17] = '"';
    out[18] = '\0';
}

bool entry_gens_match(const struct entry_view *e, const uint64_t *gens, size_t n)
{
    if (e->ntags != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (e->gens[i] != gens[i])
            return false;
    return true;
}

enum entry_gens entry_gens_compare(const struct entry_view *e, const uint64_t *gens, size_t n)
{
    enum entry_gens r = ENTRY_GENS_SAME;

    if (e->ntags != n)
        return ENTRY_GENS_HARD;
    for (size_t i = 0; i < n; i++) {
        if (e->gens[i] == gens[i])
            continue;
        if ((e->gens[i] & CACHE_GEN_HARD_MASK) != (gens[i] & CACHE_GEN_HARD_MASK))
            return ENTRY_GENS_HARD;
        r = ENTRY_GENS_SOFT;
    }
    return r;
}

/* End of a window that starts at fresh_until, capped by stale_until. */
static uint64_t window_end(const struct entry_view *e, int64_t ms)
{
    uint64_t end = e->fresh_until_ms;
    if (ms > 0)
        end = (uint64_t)ms > UINT64_MAX - end ? UINT64_MAX : end + (uint64_t)ms;
    return end < e->stale_until_ms ? end : e->stale_until_ms;
}

enum entry_state entry_state(const struct entry_view *e, const uint64_t *gens, size_t n,
                             uint64_t now_ms, int64_t swr_ms, int64_t sie_ms)
{
    enum entry_gens g = entry_gens_compare(e, gens, n);

    if (g == ENTRY_GENS_HARD)
        return ENTRY_DEAD;
    if (now_ms < e->fresh_until_ms && now_ms < e->stale_until_ms)
        return g == ENTRY_GENS_SOFT ? ENTRY_STALE_SOFT : ENTRY_FRESH;
    if (now_ms < window_end(e, swr_ms))
        return g == ENTRY_GENS_SOFT ? ENTRY_STALE_SOFT : ENTRY_STALE_EXPIRED;
    if (now_ms < window_end(e, sie_ms))
        return ENTRY_ERROR_ONLY;
    return ENTRY_DEAD;
}
