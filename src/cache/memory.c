/*
 * memory.c - the embedded cache provider: sharded hash + LRU under a byte
 * budget, plus a fixed table of tag generation counters.
 *
 * Structure. The key space is split over `shards` (a power of two) by the
 * high 32 bits of the key's 64-bit hash. Each shard is independent: its own
 * mutex, its own chained hash table (indexed by the low bits of the same
 * hash, doubled when it holds more items than buckets, never shrunk), its
 * own intrusive doubly-linked LRU list (head = most recently used) and its
 * own share of the budget, max_bytes / shards. Two requests contend only if
 * their keys land in the same shard, and then only for a few pointer moves.
 *
 * Items. One malloc holds the item header, the key and the value, so a set
 * is one allocation and a get none. An item is immutable once published and
 * reference-counted: the table holds one reference, every get() takes one
 * more (under the shard lock) and the caller drops it with release(), so a
 * body is written to the client without holding any lock. Replacing,
 * deleting, evicting or expiring an item only unlinks it and drops the
 * table's reference; whoever drops the last reference frees it. Frees are
 * done after the shard lock is released.
 *
 * Budget. An item is charged value + key + ITEM_OVERHEAD (its header, an
 * estimate of malloc's own header, and its bucket slot), so max_bytes is an
 * honest bound on what the cache holds, not just the payload. A set evicts
 * from the LRU tail of its shard until the shard is back under budget; an
 * item larger than a whole shard's budget is refused (and any older value
 * of that key dropped, so the key does not go on serving what the caller
 * meant to replace). Items kept alive by readers after eviction are not
 * charged: they are gone from the cache, and a reader holds one only while
 * it writes a response.
 *
 * Expiry. TTLs run on the monotonic clock. get() treats an expired item as
 * absent and unlinks it; tick() sweeps each shard with a persistent bucket
 * cursor, examining at most MEM_SWEEP_ITEMS items (and MEM_SWEEP_BUCKETS
 * buckets) per shard per call, so no call holds a lock for long.
 *
 * Trade-off: a table doubling rehashes a shard under its lock (amortised
 * O(1); sharding keeps each pause proportional to items / shards) instead
 * of rehashing incrementally as Redis's dict.c does; purge(NULL) swaps each
 * shard's table out in O(1) and frees the old items after unlocking.
 *
 * Tag generations. A fixed array of `tag_slots` 64-bit atomic counters,
 * indexed by hash(tag) & (tag_slots - 1), plus one separate counter for the
 * global tag "*", which therefore never shares a slot with another tag.
 * Reads are lock-free acquire loads, bumps are release fetch-adds. Two tags
 * that collide share a counter: bumping one also invalidates entries of the
 * other. Collisions thus cost extra misses, never a stale read, because a
 * counter only moves forward and an entry is served only if every counter
 * it recorded is unchanged. A soft purge adds CACHE_GEN_SOFT_UNIT instead
 * of 1 (see cache.h), which readers tell apart from a hard bump. That
 * bounded memory, O(1) per tag and no
 * locking are worth the occasional spurious miss; size tag_slots well above
 * the number of live tags to keep them rare.
 */
#include "memory.h"
#include "entry.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MEM_MAX_SHARDS      4096u
#define MEM_MAX_TAG_SLOTS   (1u << 24)
#define MEM_INIT_BUCKETS    16
#define MEM_MAX_BUCKETS     ((size_t)1 << 30)
#define MEM_SWEEP_ITEMS     1024 /* items examined per shard per tick */
#define MEM_SWEEP_BUCKETS   4096 /* buckets examined per shard per tick */
#define MEM_PURGE_BUCKETS   256  /* buckets scanned per lock hold in purge */
#define MEM_MALLOC_OVERHEAD 16   /* glibc's chunk header, roughly */

struct item {
    struct item *hnext;         /* hash chain; after unlink, the free list */
    struct item *lprev, *lnext; /* LRU list, head = most recently used */
    uint64_t hash;
    int64_t expires_ms; /* monotonic */
    uint64_t charge;    /* bytes counted against the shard budget */
    size_t vlen;
    uint32_t klen;
    _Atomic uint32_t refs; /* the table's reference + one per reader */
    char key[];            /* klen key bytes, then vlen value bytes */
};

#define ITEM_OVERHEAD (sizeof(struct item) + MEM_MALLOC_OVERHEAD + sizeof(struct item *))

/* Counters live in their shard, so hot paths never bounce a shared cache
 * line between cores; stats() sums them. */
struct shard {
    alignas(64) pthread_mutex_t lock;
    struct item **buckets;
    size_t mask; /* nbuckets - 1 */
    size_t count;
    uint64_t bytes;
    struct item *lru_head, *lru_tail;
    size_t sweep; /* tick()'s bucket cursor */
    _Atomic uint64_t gets, hits, misses, sets, deletes, errors, evictions;
};

struct mem {
    struct shard *shards;
    unsigned nshards;
    uint64_t max_bytes;
    uint64_t shard_budget;
    _Atomic uint64_t *slots;
    uint32_t slot_mask;
    _Atomic uint64_t global_gen; /* the tag "*" */
};

static void stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint8_t *item_value(struct item *it)
{
    return (uint8_t *)it->key + it->klen;
}

/* Drop one reference; the last one frees. */
static void item_unref(struct item *it)
{
    if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) == 1)
        free(it);
}

/* Drop the table's reference of every unlinked item on a free list. */
static void free_list(struct item *it)
{
    while (it) {
        struct item *next = it->hnext;
        item_unref(it);
        it = next;
    }
}

static struct shard *shard_for(struct mem *m, uint64_t h)
{
    return &m->shards[(h >> 32) & (m->nshards - 1)];
}

/* The slot that points at key's item, or the NULL slot ending its chain. */
static struct item **find_slot(struct shard *sh, uint64_t h, const char *key, size_t klen)
{
    struct item **pp = &sh->buckets[h & sh->mask];
    for (; *pp; pp = &(*pp)->hnext) {
        struct item *it = *pp;
        if (it->hash == h && it->klen == klen && (klen == 0 || memcmp(it->key, key, klen) == 0))
            return pp;
    }
    return pp;
}

/* The slot that points at it, which must be linked in sh. */
static struct item **slot_of(struct shard *sh, struct item *it)
{
    struct item **pp = &sh->buckets[it->hash & sh->mask];
    while (*pp != it)
        pp = &(*pp)->hnext;
    return pp;
}

static void lru_remove(struct shard *sh, struct item *it)
{
    if (it->lprev)
        it->lprev->lnext = it->lnext;
    else
        sh->lru_head = it->lnext;
    if (it->lnext)
        it->lnext->lprev = it->lprev;
    else
        sh->lru_tail = it->lprev;
    it->lprev = it->lnext = NULL;
}

static void lru_push(struct shard *sh, struct item *it)
{
    it->lprev = NULL;
    it->lnext = sh->lru_head;
    if (sh->lru_head)
        sh->lru_head->lprev = it;
    else
        sh->lru_tail = it;
    sh->lru_head = it;
}

/* Unlink *pp from the table and LRU and push it on *dead; the caller drops
 * the table's reference (free_list) after unlocking. *pp then points at the
 * next item of the chain, so scans can continue from the same slot. */
static void shard_unlink(struct shard *sh, struct item **pp, struct item **dead)
{
    struct item *it = *pp;
    *pp = it->hnext;
    lru_remove(sh, it);
    sh->count--;
    sh->bytes -= it->charge;
    it->hnext = *dead;
    *dead = it;
}

/* Double the bucket array. On allocation failure the chains just get
 * longer, which costs speed, not correctness. */
static void shard_grow(struct shard *sh)
{
    size_t n = (sh->mask + 1) * 2;
    if (n > MEM_MAX_BUCKETS)
        return;
    struct item **nb = calloc(n, sizeof *nb);
    if (nb == NULL)
        return;
    for (size_t i = 0; i <= sh->mask; i++) {
        struct item *it = sh->buckets[i];
        while (it) {
            struct item *next = it->hnext;
            size_t j = it->hash & (n - 1);
            it->hnext = nb[j];
            nb[j] = it;
            it = next;
        }
    }
    free(sh->buckets);
    sh->buckets = nb;
    sh->mask = n - 1;
}

/* The tag table: zeroed pages straight from the kernel, so a counter's
 * page becomes resident when a bump first writes it, not before; and small
 * pages, so one bump does not make 2 MiB of it resident where transparent
 * huge pages are on for every mapping. NULL when out of memory. */
static _Atomic uint64_t *slots_map(size_t n)
{
    size_t bytes = n * sizeof(_Atomic uint64_t);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_NOHUGEPAGE
    (void)madvise(p, bytes, MADV_NOHUGEPAGE);
#endif
    return p;
}

static _Atomic uint64_t *tag_slot(struct mem *m, const struct rc_str *t)
{
    if (t->len == 1 && t->s[0] == CACHE_GLOBAL_TAG[0])
        return &m->global_gen;
    return &m->slots[entry_hash(t->s, t->len) & m->slot_mask];
}

static int mem_tag_gens(void *self, const struct rc_str *tags, size_t ntags, uint64_t *gens)
{
    struct mem *m = self;
    for (size_t i = 0; i < ntags; i++)
        gens[i] = atomic_load_explicit(tag_slot(m, &tags[i]), memory_order_acquire);
    return 0;
}

static int mem_bump_tags(void *self, const struct rc_str *tags, size_t ntags)
{
    struct mem *m = self;
    for (size_t i = 0; i < ntags; i++)
        atomic_fetch_add_explicit(tag_slot(m, &tags[i]), 1, memory_order_release);
    return 0;
}

/* Soft purge: the high part of the counter moves, the hard part does not,
 * so entries that recorded the old value turn stale, not dead (cache.h). */
static int mem_bump_tags_soft(void *self, const struct rc_str *tags, size_t ntags)
{
    struct mem *m = self;
    for (size_t i = 0; i < ntags; i++)
        atomic_fetch_add_explicit(tag_slot(m, &tags[i]), CACHE_GEN_SOFT_UNIT, memory_order_release);
    return 0;
}

/* The hit path: one lock hold of a few pointer moves, no allocation, and
 * no syscall (clock_gettime(CLOCK_MONOTONIC) is served by the vDSO). */
static int mem_get(void *self, const char *key, size_t klen, const struct rc_str *tags,
                   size_t ntags, struct cache_value *val, uint64_t *gens)
{
    struct mem *m = self;
    uint64_t h = entry_hash(key, klen);
    struct shard *sh = shard_for(m, h);
    int64_t now = rc_mono_ms();
    struct item *dead = NULL, *found = NULL;

    pthread_mutex_lock(&sh->lock);
    struct item **pp = find_slot(sh, h, key, klen);
    struct item *it = *pp;
    if (it != NULL) {
        if (now >= it->expires_ms) {
            shard_unlink(sh, pp, &dead);
        } else {
            if (sh->lru_head != it) {
                lru_remove(sh, it);
                lru_push(sh, it);
            }
            atomic_fetch_add_explicit(&it->refs, 1, memory_order_relaxed);
            found = it;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    free_list(dead);

    stat_add(&sh->gets, 1);
    stat_add(found ? &sh->hits : &sh->misses, 1);
    mem_tag_gens(m, tags, ntags, gens);
    if (found == NULL) {
        val->data = NULL;
        val->len = 0;
        val->ref = NULL;
        return 0;
    }
    val->data = item_value(found);
    val->len = found->vlen;
    val->ref = found;
    return 1;
}

static void mem_release(void *self, struct cache_value *val)
{
    (void)self;
    if (val == NULL || val->ref == NULL)
        return;
    item_unref(val->ref);
    val->ref = NULL;
    val->data = NULL;
    val->len = 0;
}

static int mem_set(void *self, const char *key, size_t klen, const void *data, size_t len,
                   int64_t ttl_ms)
{
    struct mem *m = self;
    uint64_t h = entry_hash(key, klen);
    struct shard *sh = shard_for(m, h);
    struct item *dead = NULL;
    uint64_t evicted = 0;

    if (ttl_ms <= 0 || klen > UINT32_MAX || klen > SIZE_MAX - ITEM_OVERHEAD ||
        len > SIZE_MAX - ITEM_OVERHEAD - klen) {
        stat_add(&sh->errors, 1);
        return -1;
    }
    uint64_t charge = (uint64_t)ITEM_OVERHEAD + klen + len;
    if (charge > m->shard_budget) {
        /* Refused, not an error; the older value must not outlive it. */
        pthread_mutex_lock(&sh->lock);
        struct item **pp = find_slot(sh, h, key, klen);
        if (*pp)
            shard_unlink(sh, pp, &dead);
        pthread_mutex_unlock(&sh->lock);
        free_list(dead);
        return 0;
    }

    struct item *it = malloc(sizeof *it + klen + len);
    if (it == NULL) {
        stat_add(&sh->errors, 1);
        return -1;
    }
    it->hash = h;
    it->charge = charge;
    it->klen = (uint32_t)klen;
    it->vlen = len;
    atomic_init(&it->refs, 1);
    if (klen)
        memcpy(it->key, key, klen);
    if (len)
        memcpy(it->key + klen, data, len);
    int64_t now = rc_mono_ms();
    it->expires_ms = ttl_ms > INT64_MAX - now ? INT64_MAX : now + ttl_ms;

    pthread_mutex_lock(&sh->lock);
    struct item **pp = find_slot(sh, h, key, klen);
    if (*pp)
        shard_unlink(sh, pp, &dead);
    pp = &sh->buckets[h & sh->mask];
    it->hnext = *pp;
    *pp = it;
    lru_push(sh, it);
    sh->count++;
    sh->bytes += charge;
    while (sh->bytes > m->shard_budget && sh->lru_tail != it) {
        struct item *victim = sh->lru_tail;
        if (now < victim->expires_ms)
            evicted++;
        shard_unlink(sh, slot_of(sh, victim), &dead);
    }
    if (sh->count > sh->mask + 1)
        shard_grow(sh);
    pthread_mutex_unlock(&sh->lock);
    free_list(dead);

    stat_add(&sh->sets, 1);
    if (evicted)
        stat_add(&sh->evictions, evicted);
    return 0;
}

static int mem_del(void *self, const char *key, size_t klen)
{
    struct mem *m = self;
    uint64_t h = entry_hash(key, klen);
    struct shard *sh = shard_for(m, h);
    struct item *dead = NULL;

    pthread_mutex_lock(&sh->lock);
    struct item **pp = find_slot(sh, h, key, klen);
    if (*pp)
        shard_unlink(sh, pp, &dead);
    pthread_mutex_unlock(&sh->lock);
    if (dead) {
        free_list(dead);
        stat_add(&sh->deletes, 1);
    }
    return 0;
}

/* Delete the items of sh whose key matches pattern (all if NULL), a few
 * buckets per lock hold. Doubling the table between two holds only moves
 * items to a bucket index >= their old one, so none is skipped. */
static uint64_t shard_purge_match(struct shard *sh, const char *pattern)
{
    uint64_t n = 0;
    size_t i = 0;

    for (;;) {
        struct item *dead = NULL;
        pthread_mutex_lock(&sh->lock);
        if (i > sh->mask) {
            pthread_mutex_unlock(&sh->lock);
            break;
        }
        size_t stop = i + MEM_PURGE_BUCKETS;
        for (; i <= sh->mask && i < stop; i++) {
            struct item **pp = &sh->buckets[i];
            while (*pp) {
                struct item *it = *pp;
                if (pattern == NULL || cache_glob_match(pattern, it->key, it->klen)) {
                    shard_unlink(sh, pp, &dead);
                    n++;
                } else {
                    pp = &it->hnext;
                }
            }
        }
        pthread_mutex_unlock(&sh->lock);
        free_list(dead);
    }
    return n;
}

/* Delete every item of sh: swap in an empty table under the lock, free the
 * old items after. */
static uint64_t shard_purge_all(struct shard *sh)
{
    struct item **fresh = calloc(MEM_INIT_BUCKETS, sizeof *fresh);
    if (fresh == NULL)
        return shard_purge_match(sh, NULL);

    pthread_mutex_lock(&sh->lock);
    struct item **old = sh->buckets;
    size_t nold = sh->mask + 1;
    uint64_t n = sh->count;
    sh->buckets = fresh;
    sh->mask = MEM_INIT_BUCKETS - 1;
    sh->count = 0;
    sh->bytes = 0;
    sh->lru_head = sh->lru_tail = NULL;
    sh->sweep = 0;
    pthread_mutex_unlock(&sh->lock);

    for (size_t i = 0; i < nold; i++)
        free_list(old[i]);
    free(old);
    return n;
}

static int mem_purge(void *self, const char *pattern, uint64_t *deleted)
{
    struct mem *m = self;
    uint64_t total = 0;

    for (unsigned i = 0; i < m->nshards; i++) {
        struct shard *sh = &m->shards[i];
        uint64_t n = pattern ? shard_purge_match(sh, pattern) : shard_purge_all(sh);
        if (n)
            stat_add(&sh->deletes, n);
        total += n;
    }
    if (deleted)
        *deleted = total;
    return 0;
}

/* Bounded incremental sweep of expired items, resuming where the last call
 * stopped in each shard. */
static void mem_tick(void *self)
{
    struct mem *m = self;
    int64_t now = rc_mono_ms();

    for (unsigned s = 0; s < m->nshards; s++) {
        struct shard *sh = &m->shards[s];
        struct item *dead = NULL;
        size_t items = 0, nb = 0;

        pthread_mutex_lock(&sh->lock);
        size_t i = sh->sweep;
        while (sh->count > 0 && items < MEM_SWEEP_ITEMS && nb < MEM_SWEEP_BUCKETS &&
               nb <= sh->mask) {
            struct item **pp = &sh->buckets[i & sh->mask];
            while (*pp) {
                struct item *it = *pp;
                items++;
                if (now >= it->expires_ms)
                    shard_unlink(sh, pp, &dead);
                else
                    pp = &it->hnext;
            }
            i++;
            nb++;
        }
        sh->sweep = i & sh->mask;
        pthread_mutex_unlock(&sh->lock);
        free_list(dead);
    }
}

static void mem_stats(void *self, struct cache_stats *out)
{
    struct mem *m = self;

    memset(out, 0, sizeof *out);
    out->breaker = -1; /* no network, no breaker */
    for (unsigned i = 0; i < m->nshards; i++) {
        struct shard *sh = &m->shards[i];
        out->gets += atomic_load_explicit(&sh->gets, memory_order_relaxed);
        out->hits += atomic_load_explicit(&sh->hits, memory_order_relaxed);
        out->misses += atomic_load_explicit(&sh->misses, memory_order_relaxed);
        out->sets += atomic_load_explicit(&sh->sets, memory_order_relaxed);
        out->deletes += atomic_load_explicit(&sh->deletes, memory_order_relaxed);
        out->errors += atomic_load_explicit(&sh->errors, memory_order_relaxed);
        out->evictions += atomic_load_explicit(&sh->evictions, memory_order_relaxed);
        pthread_mutex_lock(&sh->lock);
        out->keys += sh->count;
        out->bytes += sh->bytes;
        pthread_mutex_unlock(&sh->lock);
    }
    out->max_bytes = m->max_bytes;
    out->local_hits = out->hits;
}

static int mem_ping(void *self)
{
    (void)self;
    return 0;
}

/* Free everything. Assumes no reference is outstanding; an item a reader
 * still holds is leaked rather than freed under it. Also tears down a
 * partially built provider (nshards = shards initialised). */
static void mem_close(void *self)
{
    struct mem *m = self;
    if (m == NULL)
        return;
    for (unsigned i = 0; m->shards && i < m->nshards; i++) {
        struct shard *sh = &m->shards[i];
        for (size_t b = 0; sh->buckets && b <= sh->mask; b++)
            free_list(sh->buckets[b]);
        free(sh->buckets);
        pthread_mutex_destroy(&sh->lock);
    }
    free(m->shards);
    if (m->slots != NULL)
        munmap((void *)m->slots, ((size_t)m->slot_mask + 1) * sizeof *m->slots);
    free(m);
}

static const struct cache_ops mem_ops = {
    .name = "memory",
    .get = mem_get,
    .release = mem_release,
    .set = mem_set,
    .del = mem_del,
    .tag_gens = mem_tag_gens,
    .bump_tags = mem_bump_tags,
    .purge = mem_purge,
    .stats = mem_stats,
    .ping = mem_ping,
    .tick = mem_tick,
    .close = mem_close,
    .bump_tags_soft = mem_bump_tags_soft,
};

static bool is_pow2(uint64_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

struct cache *cache_memory_create(uint64_t max_bytes, unsigned shards, unsigned tag_slots,
                                  char *errbuf)
{
    if (max_bytes == 0) {
        rc_err(errbuf, "memory cache: max_bytes must be > 0");
        return NULL;
    }
    if (!is_pow2(shards) || shards > MEM_MAX_SHARDS) {
        rc_err(errbuf, "memory cache: shards must be a power of two in 1..%u, got %u",
               MEM_MAX_SHARDS, shards);
        return NULL;
    }
    if (!is_pow2(tag_slots) || tag_slots > MEM_MAX_TAG_SLOTS) {
        rc_err(errbuf, "memory cache: tag_slots must be a power of two in 1..%u, got %u",
               MEM_MAX_TAG_SLOTS, tag_slots);
        return NULL;
    }
    if (max_bytes / shards <= ITEM_OVERHEAD) {
        rc_err(errbuf,
               "memory cache: max_bytes %" PRIu64 " leaves no room for an item in %u shards",
               max_bytes, shards);
        return NULL;
    }

    struct cache *c = malloc(sizeof *c);
    struct mem *m = calloc(1, sizeof *m);
    if (c == NULL || m == NULL)
        goto oom;
    m->max_bytes = max_bytes;
    m->shard_budget = max_bytes / shards;
    m->slot_mask = tag_slots - 1;
    atomic_init(&m->global_gen, 0);
    m->slots = slots_map(tag_slots);
    m->shards = aligned_alloc(alignof(struct shard), sizeof *m->shards * shards);
    if (m->slots == NULL || m->shards == NULL)
        goto oom;
    for (unsigned i = 0; i < shards; i++) {
        struct shard *sh = &m->shards[i];
        memset(sh, 0, sizeof *sh);
        sh->buckets = calloc(MEM_INIT_BUCKETS, sizeof *sh->buckets);
        if (sh->buckets == NULL || pthread_mutex_init(&sh->lock, NULL) != 0) {
            free(sh->buckets);
            goto oom;
        }
        sh->mask = MEM_INIT_BUCKETS - 1;
        atomic_init(&sh->gets, 0);
        atomic_init(&sh->hits, 0);
        atomic_init(&sh->misses, 0);
        atomic_init(&sh->sets, 0);
        atomic_init(&sh->deletes, 0);
        atomic_init(&sh->errors, 0);
        atomic_init(&sh->evictions, 0);
        m->nshards = i + 1;
    }
    c->ops = &mem_ops;
    c->self = m;
    return c;

oom:
    rc_err(errbuf, "memory cache: out of memory");
    free(c);
    mem_close(m);
    return NULL;
}

/* Iterative glob with single-star backtracking: on a mismatch, retry from
 * the last '*' with one more byte absorbed by it. Earlier stars never need
 * revisiting, so the cost is O(pattern * len) at worst, never exponential. */
bool cache_glob_match(const char *pattern, const char *s, size_t len)
{
    size_t plen = strlen(pattern);
    size_t p = 0, i = 0;
    size_t star_p = SIZE_MAX, star_i = 0;

    while (i < len) {
        if (p < plen) {
            char c = pattern[p];
            if (c == '*') {
                star_p = p++;
                star_i = i;
                continue;
            }
            if (c == '?') {
                p++;
                i++;
                continue;
            }
            size_t adv = 1;
            if (c == '\\' && p + 1 < plen) {
                c = pattern[p + 1];
                adv = 2;
            }
            if (c == s[i]) {
                p += adv;
                i++;
                continue;
            }
        }
        if (star_p == SIZE_MAX)
            return false;
        p = star_p + 1;
        i = ++star_i;
    }
    while (p < plen && pattern[p] == '*')
        p++;
    return p == plen;
}
