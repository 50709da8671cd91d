/*
 * tiered.c - L1 memory in front of L2 Redis, kept coherent by pub/sub.
 *
 * What L1 holds. An L1 item is an L2 entry (entry.h bytes, recorded with
 * Redis generations) followed by a trailer: the generations of the same
 * tags in L1's own tag table at the moment the read that filled it began
 * (the "snapshot"), and their count. L1's tag table is bumped by every
 * local write (synchronously, after Redis) and by every bump any instance
 * publishes (the subscriber thread). An L1 item is served only if its
 * snapshot equals L1's current generations, so a bump that reached this
 * process after the snapshot invalidates it, as in the single-tier design.
 *
 * When L1 may serve (tiered_get):
 *   1. the subscription is up and quiet: no byte of a message is waiting
 *      in its socket or being applied (cache_redis_sub_quiet);
 *   2. L1's generations are read, the item looked up and its snapshot
 *      compared; the entry must still be fresh;
 *   3. the subscription's epoch is unchanged (no drop in between).
 * Otherwise the read goes to Redis (one round trip, as the redis
 * provider). A valid, fresh entry read from Redis fills L1 under the
 * snapshot taken in step 2, before the Redis read: a bump landing in
 * between is in Redis (entry not valid, not filled) or arrives later
 * through the subscription (filled item invalid). L1 TTL = min(fresh
 * time left, tiered_l1_ttl_max).
 *
 * Subscription down: L1 is not used at all. On every (re)subscription the
 * subscriber bumps L1's global generation before reporting itself up, so
 * nothing filled before or during the gap is ever served.
 *
 * Read-your-writes across instances: a write answers after Redis executed
 * its INCRs and PUBLISH (or found them done for its transaction by another
 * instance's script, which published them) and after one more round trip,
 * the fence (l2_fence). Redis queues the message to every subscriber in
 * the pass that runs the script and writes all queued replies before it
 * waits for input again; the writer's own reply is one of them, and not
 * necessarily the last (Redis 7 writes the most recently queued client
 * first). A PING sent once that reply has arrived is read in a later
 * pass, so its answer proves that every subscriber's socket has the
 * message. From then on another instance either still has the bytes in
 * its socket (step 1 sends the read to Redis) or has applied them (step 2
 * rejects the item). Without the fence a Redis descheduled between those
 * writes (CPU contention, a VM's stolen time) let a read through another
 * instance on the same host be answered from L1, stale (seen in CI).
 * Across hosts the remaining window is the difference between the
 * network delays from Redis to the two instances.
 *
 * The handler sees one provider: get() answers from L1 or L2 (so the
 * provider is `remote`), and get_local() from L1 alone, which costs no
 * network round trip (the zero-timeout poll of step 1 is its one system
 * call), so an L1 hit is answered on the event loop like a memory hit. On
 * an L1 hit the generations it reports are the entry's own, which Redis
 * still has, because L1 just proved no bump happened since.
 */
#include "tiered.h"

#include "entry.h"
#include "redis.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* An L2 value's ref is tagged with this bit; L1 refs are untagged. Both are
 * malloc'd pointers, so the bit is free. */
#define REF_L2 ((uintptr_t)1)

struct tiered {
    struct cache *l1, *l2;
    int64_t l1_ttl_max_ms;
    _Atomic uint64_t gets, l1_hits, l2_hits, misses, errors, l1_fills;
};

static void stat_add(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* The trailer of an L1 item: u64 gens[n] (native order: it never leaves
 * the process), then u8 n. Returns the entry's length, or -1 when the
 * trailer is malformed (cannot happen for items we wrote). */
static long l1_split(const struct cache_value *v, const uint64_t **snap, size_t *n)
{
    size_t k, trailer;
    if (v->len < 1)
        return -1;
    k = v->data[v->len - 1];
    trailer = 1 + k * sizeof(uint64_t);
    if (k > ENTRY_MAX_TAGS || v->len < trailer)
        return -1;
    *snap = (const uint64_t *)(const void *)(v->data + v->len - trailer);
    *n = k;
    return (long)(v->len - trailer);
}

/* Step 2 of the header comment: the item's snapshot against now[]. */
static bool l1_valid(const uint64_t *snap, size_t n, const uint64_t *now, size_t ntags)
{
    uint64_t s;
    if (n != ntags)
        return false;
    for (size_t i = 0; i < n; i++) {
        memcpy(&s, &snap[i], sizeof(s)); /* the trailer may be unaligned */
        if (s != now[i])
            return false;
    }
    return true;
}

static int l1_try(struct tiered *t, const char *key, size_t klen, size_t ntags, const uint64_t *now,
                  uint64_t epoch, struct cache_value *val, uint64_t *gens)
{
    struct cache *l1 = t->l1;
    struct cache_value v;
    struct entry_view e;
    const uint64_t *snap;
    size_t n;

    if (l1->ops->get(l1->self, key, klen, NULL, 0, &v, NULL) != 1)
        return 0;
    long elen = l1_split(&v, &snap, &n);
    if (elen >= 0 && l1_valid(snap, n, now, ntags) && entry_decode(v.data, (size_t)elen, &e) == 0 &&
        e.ntags == ntags && (uint64_t)rc_wall_ms() < e.fresh_until_ms &&
        cache_redis_sub_epoch(t->l2) == epoch) {
        memcpy(gens, e.gens, ntags * sizeof(*gens));
        val->data = v.data;
        val->len = (size_t)elen;
        val->ref = v.ref;
        return 1;
    }
    l1->ops->release(l1->self, &v);
    return 0;
}

/* Copy a valid, fresh L2 entry into L1 under the snapshot snap. */
static void l1_fill(struct tiered *t, const char *key, size_t klen, const struct cache_value *v,
                    const uint64_t *gens, size_t ntags, const uint64_t *snap, uint64_t epoch)
{
    struct cache *l1 = t->l1;
    struct entry_view e;
    int64_t now = rc_wall_ms(), ttl;
    size_t trailer = 1 + ntags * sizeof(uint64_t);
    uint8_t *item;

    if (entry_decode(v->data, v->len, &e) < 0 || !entry_gens_match(&e, gens, ntags) ||
        (uint64_t)now >= e.fresh_until_ms || v->len > SIZE_MAX - trailer)
        return;
    ttl = (int64_t)(e.fresh_until_ms - (uint64_t)now);
    if (ttl > t->l1_ttl_max_ms)
        ttl = t->l1_ttl_max_ms;
    item = malloc(v->len + trailer);
    if (item == NULL)
        return;
    memcpy(item, v->data, v->len);
    memcpy(item + v->len, snap, ntags * sizeof(uint64_t));
    item[v->len + trailer - 1] = (uint8_t)ntags;
    if (cache_redis_sub_epoch(t->l2) == epoch &&
        l1->ops->set(l1->self, key, klen, item, v->len + trailer, ttl) == 0)
        stat_add(&t->l1_fills);
    free(item);
}

/* Steps 1-3 of the header comment: 1 with an L1 hit, else 0. */
static int ti_get_local(void *self, const char *key, size_t klen, const struct rc_str *tags,
                        size_t ntags, struct cache_value *val, uint64_t *gens)
{
    struct tiered *t = self;
    uint64_t now[ENTRY_MAX_TAGS], epoch = 0;

    if (ntags > ENTRY_MAX_TAGS || !cache_redis_sub_quiet(t->l2, &epoch))
        return 0;
    (void)t->l1->ops->tag_gens(t->l1->self, tags, ntags, now);
    if (l1_try(t, key, klen, ntags, now, epoch, val, gens) != 1)
        return 0; /* counted by the get() that follows */
    stat_add(&t->gets);
    stat_add(&t->l1_hits);
    return 1;
}

static int ti_get(void *self, const char *key, size_t klen, const struct rc_str *tags, size_t ntags,
                  struct cache_value *val, uint64_t *gens)
{
    struct tiered *t = self;
    uint64_t now[ENTRY_MAX_TAGS], epoch = 0;
    bool use_l1 = ntags <= ENTRY_MAX_TAGS && cache_redis_sub_quiet(t->l2, &epoch);
    int rc;

    stat_add(&t->gets);
    if (use_l1) {
        (void)t->l1->ops->tag_gens(t->l1->self, tags, ntags, now);
        if (l1_try(t, key, klen, ntags, now, epoch, val, gens) == 1) {
            stat_add(&t->l1_hits);
            return 1;
        }
    }
    rc = t->l2->ops->get(t->l2->self, key, klen, tags, ntags, val, gens);
    if (rc < 0) {
        stat_add(&t->errors);
        return rc;
    }
    if (rc == 0) {
        stat_add(&t->misses);
        return 0;
    }
    stat_add(&t->l2_hits);
    if (use_l1)
        l1_fill(t, key, klen, val, gens, ntags, now, epoch);
    val->ref = (void *)((uintptr_t)val->ref | REF_L2);
    return 1;
}

/* Hand a value back to the tier it came from. Both providers release by
 * ref alone, so data and len need not be the ones they handed out. */
static void ti_release(void *self, struct cache_value *val)
{
    struct tiered *t = self;
    uintptr_t ref;

    if (val == NULL || val->ref == NULL)
        return;
    ref = (uintptr_t)val->ref;
    if (ref & REF_L2) {
        val->ref = (void *)(ref & ~REF_L2);
        t->l2->ops->release(t->l2->self, val);
    } else {
        t->l1->ops->release(t->l1->self, val);
    }
    val->ref = NULL;
}

/* A new entry goes to Redis only: L1 is filled by the next read, which
 * proves its validity on the way (see the header comment). */
static int ti_set(void *self, const char *key, size_t klen, const void *data, size_t len,
                  int64_t ttl_ms)
{
    struct tiered *t = self;
    return t->l2->ops->set(t->l2->self, key, klen, data, len, ttl_ms);
}

static int ti_del(void *self, const char *key, size_t klen)
{
    struct tiered *t = self;
    (void)t->l1->ops->del(t->l1->self, key, klen);
    return t->l2->ops->del(t->l2->self, key, klen);
}

static int ti_tag_gens(void *self, const struct rc_str *tags, size_t ntags, uint64_t *gens)
{
    struct tiered *t = self;
    return t->l2->ops->tag_gens(t->l2->self, tags, ntags, gens);
}

/* After a bump or purge Redis published: one PING round trip, so that
 * every subscriber's socket has the message before the write answers (the
 * header comment). Its failure changes nothing the op reported: the
 * message was queued with the op's reply, and a subscription that lost
 * it is a dropped one, whose L1 does not serve. */
static void l2_fence(struct tiered *t)
{
    (void)t->l2->ops->ping(t->l2->self);
}

/* Redis first (INCR + PUBLISH), then L1, whatever Redis said: a local
 * reader that fills L1 in between does so from a Redis that already has
 * the bump, or under a snapshot the L1 bump then invalidates. */
static int ti_bump_tags(void *self, const struct rc_str *tags, size_t ntags)
{
    struct tiered *t = self;
    int rc = t->l2->ops->bump_tags(t->l2->self, tags, ntags);
    (void)t->l1->ops->bump_tags(t->l1->self, tags, ntags);
    if (rc == 0)
        l2_fence(t);
    return rc;
}

/* Once in Redis (the first instance to try bumps and publishes); L1 is
 * this process's own, so it is bumped every time. Returns what Redis
 * left alone, as the redis provider. */
static int ti_bump_tags_once(void *self, const struct rc_str *tags, size_t ntags,
                             const struct rc_str *token)
{
    struct tiered *t = self;
    int rc = cache_bump_once(t->l2, tags, ntags, token);
    (void)t->l1->ops->bump_tags(t->l1->self, tags, ntags);
    if (rc >= 0)
        l2_fence(t);
    return rc;
}

/* Soft in Redis (the handler answers STALE from there); L1 cannot serve
 * a stale entry, so its items of these tags simply stop being served. */
static int ti_bump_tags_soft(void *self, const struct rc_str *tags, size_t ntags)
{
    struct tiered *t = self;
    int rc = t->l2->ops->bump_tags_soft(t->l2->self, tags, ntags);
    (void)t->l1->ops->bump_tags(t->l1->self, tags, ntags);
    if (rc == 0)
        l2_fence(t);
    return rc;
}

static int ti_lock(void *self, const char *key, size_t klen, uint64_t token, int64_t ttl_ms)
{
    struct tiered *t = self;
    return t->l2->ops->lock(t->l2->self, key, klen, token, ttl_ms);
}

static int ti_unlock(void *self, const char *key, size_t klen, uint64_t token)
{
    struct tiered *t = self;
    return t->l2->ops->unlock(t->l2->self, key, klen, token);
}

static int ti_purge(void *self, const char *pattern, uint64_t *deleted)
{
    static const struct rc_str all = {CACHE_GLOBAL_TAG, 1};
    struct tiered *t = self;
    uint64_t local = 0;
    int rc = t->l2->ops->purge(t->l2->self, pattern, deleted);

    if (pattern == NULL)
        (void)t->l1->ops->bump_tags(t->l1->self, &all, 1);
    (void)t->l1->ops->purge(t->l1->self, pattern, &local);
    if (rc == 0)
        l2_fence(t);
    return rc;
}

/* Hits of both tiers, L1's also as local_hits; keys and bytes are
 * Redis's (the shared truth), evictions L1's (the only tier this process
 * bounds). */
static void ti_stats(void *self, struct cache_stats *out)
{
    struct tiered *t = self;
    struct cache_stats l1;

    t->l2->ops->stats(t->l2->self, out);
    t->l1->ops->stats(t->l1->self, &l1);
    out->gets = atomic_load(&t->gets);
    out->hits = atomic_load(&t->l1_hits) + atomic_load(&t->l2_hits);
    out->local_hits = atomic_load(&t->l1_hits);
    out->misses = atomic_load(&t->misses);
    out->errors += l1.errors;
    out->evictions = l1.evictions;
}

static int ti_ping(void *self)
{
    struct tiered *t = self;
    return t->l2->ops->ping(t->l2->self);
}

static void ti_tick(void *self)
{
    struct tiered *t = self;
    t->l1->ops->tick(t->l1->self);
    t->l2->ops->tick(t->l2->self);
}

static void ti_close(void *self)
{
    struct tiered *t = self;
    if (t == NULL)
        return;
    cache_free(t->l2); /* stops the subscriber, which writes to L1 */
    cache_free(t->l1);
    free(t);
}

static const struct cache_ops tiered_ops = {
    .name = "tiered",
    .remote = true,
    .get = ti_get,
    .release = ti_release,
    .set = ti_set,
    .del = ti_del,
    .tag_gens = ti_tag_gens,
    .bump_tags = ti_bump_tags,
    .purge = ti_purge,
    .stats = ti_stats,
    .ping = ti_ping,
    .tick = ti_tick,
    .close = ti_close,
    .bump_tags_soft = ti_bump_tags_soft,
    .bump_tags_once = ti_bump_tags_once,
    .lock = ti_lock,
    .unlock = ti_unlock,
    .get_local = ti_get_local,
};

/* ---- the subscriber's callbacks (its thread) ---------------------------- */

static void on_bump(void *arg, const struct rc_str *tags, size_t ntags)
{
    struct tiered *t = arg;
    (void)t->l1->ops->bump_tags(t->l1->self, tags, ntags);
}

static void on_purge(void *arg, const char *pattern)
{
    struct tiered *t = arg;
    uint64_t n;
    (void)t->l1->ops->purge(t->l1->self, pattern, &n);
}

static void on_reset(void *arg)
{
    static const struct rc_str all = {CACHE_GLOBAL_TAG, 1};
    struct tiered *t = arg;
    (void)t->l1->ops->bump_tags(t->l1->self, &all, 1);
}

struct cache *cache_tiered_create(struct cache *l1, struct cache *l2, int64_t l1_ttl_max_ms,
                                  char *errbuf)
{
    struct tiered *t = calloc(1, sizeof(*t));
    struct cache *c = malloc(sizeof(*c));
    struct redis_sub_fns fns = {on_bump, on_purge, on_reset, NULL};

    if (t == NULL || c == NULL) {
        rc_err(errbuf, "tiered cache: out of memory");
        goto fail;
    }
    t->l1 = l1;
    t->l2 = l2;
    t->l1_ttl_max_ms = l1_ttl_max_ms > 0 ? l1_ttl_max_ms : 1;
    fns.arg = t;
    if (cache_redis_subscribe(l2, &fns, errbuf) < 0)
        goto fail;
    c->ops = &tiered_ops;
    c->self = t;
    return c;
fail:
    free(t);
    free(c);
    cache_free(l2);
    cache_free(l1);
    return NULL;
}
