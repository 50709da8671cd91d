/* test_memory.c - the embedded provider: storage, LRU budget, TTL, tag
 * generations (including the fill race), purge, glob, and concurrency. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <unistd.h>

#include "cache/entry.h"
#include "cache/memory.h"

static struct cache *mk(uint64_t max_bytes, unsigned shards, unsigned tag_slots)
{
    char err[RC_ERRBUF] = "";
    struct cache *c = cache_memory_create(max_bytes, shards, tag_slots, err);
    if (c == NULL)
        fail_msg("cache_memory_create failed: %s", err);
    return c;
}

static int put(struct cache *c, const char *key, const void *data, size_t len, int64_t ttl)
{
    return c->ops->set(c->self, key, strlen(key), data, len, ttl);
}

static int get(struct cache *c, const char *key, struct cache_value *v)
{
    uint64_t g[1];
    return c->ops->get(c->self, key, strlen(key), NULL, 0, v, g);
}

/* 1 if key is present (and releases it at once). */
static int has(struct cache *c, const char *key)
{
    struct cache_value v;
    int rc = get(c, key, &v);
    if (rc == 1)
        c->ops->release(c->self, &v);
    return rc;
}

static struct cache_stats stats(struct cache *c)
{
    struct cache_stats s;
    c->ops->stats(c->self, &s);
    return s;
}

static void test_memory_create_rejects_bad_args(void **state)
{
    (void)state;
    char err[RC_ERRBUF];
    struct {
        uint64_t max;
        unsigned shards, slots;
    } bad[] = {
        {0, 1, 1},
        {1 << 20, 0, 1},
        {1 << 20, 3, 1},
        {1 << 20, 8192, 1},
        {1 << 20, 1, 0},
        {1 << 20, 1, 1000},
        {1 << 20, 1, 1u << 25},
        {1000, 64, 1}, /* no room for one item per shard */
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        struct cache *c = cache_memory_create(bad[i].max, bad[i].shards, bad[i].slots, err);
        if (c != NULL)
            fail_msg("case %zu was accepted", i);
        assert_true(strncmp(err, "memory cache: ", 14) == 0);
    }
    struct cache *c = mk(1 << 20, 4096, 1u << 10);
    assert_string_equal(c->ops->name, "memory");
    assert_int_equal(c->ops->ping(c->self), 0);
    cache_free(c);
    cache_free(NULL);
}

static void test_memory_set_get_release(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 20, 4, 64);
    struct cache_value v;
    assert_int_equal(get(c, "k", &v), 0);
    assert_null(v.ref);
    assert_int_equal(put(c, "k", "hello", 5, 60000), 0);
    assert_int_equal(get(c, "k", &v), 1);
    assert_int_equal(v.len, 5);
    assert_memory_equal(v.data, "hello", 5);
    c->ops->release(c->self, &v);
    assert_null(v.ref);
    assert_int_equal(put(c, "", "", 0, 60000), 0); /* empty key and value */
    assert_int_equal(get(c, "", &v), 1);
    assert_int_equal(v.len, 0);
    c->ops->release(c->self, &v);
    struct cache_stats s = stats(c);
    assert_int_equal(s.gets, 3);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.sets, 2);
    assert_int_equal(s.keys, 2);
    assert_true(s.bytes > 5);
    assert_int_equal(s.max_bytes, 1 << 20);
    assert_int_equal(put(c, "k", "x", 1, 0), -1); /* ttl must be > 0 */
    assert_int_equal(stats(c).errors, 1);
    cache_free(c);
}

static void test_memory_replace_while_reference_held_keeps_old_bytes(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 20, 1, 64);
    struct cache_value old, cur;
    assert_int_equal(put(c, "k", "old value", 9, 60000), 0);
    assert_int_equal(get(c, "k", &old), 1);
    assert_int_equal(put(c, "k", "new", 3, 60000), 0);
    assert_int_equal(get(c, "k", &cur), 1);
    assert_memory_equal(cur.data, "new", 3);
    /* The replaced blob is still intact for its reader (ASan would flag a
     * use after free here). */
    assert_int_equal(old.len, 9);
    assert_memory_equal(old.data, "old value", 9);
    assert_int_equal(c->ops->del(c->self, "k", 1), 0);
    assert_memory_equal(cur.data, "new", 3);
    c->ops->release(c->self, &old);
    c->ops->release(c->self, &cur);
    assert_int_equal(has(c, "k"), 0);
    assert_int_equal(stats(c).keys, 0);
    assert_int_equal(stats(c).bytes, 0);
    cache_free(c);
}

static void test_memory_del_removes_key(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 20, 2, 64);
    assert_int_equal(put(c, "a", "1", 1, 60000), 0);
    assert_int_equal(put(c, "b", "2", 1, 60000), 0);
    assert_int_equal(c->ops->del(c->self, "a", 1), 0);
    assert_int_equal(c->ops->del(c->self, "missing", 7), 0);
    assert_int_equal(has(c, "a"), 0);
    assert_int_equal(has(c, "b"), 1);
    assert_int_equal(stats(c).deletes, 1);
    cache_free(c);
}

static void test_memory_ttl_expiry(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 20, 1, 64);
    assert_int_equal(put(c, "short", "x", 1, 20), 0);
    assert_int_equal(put(c, "long", "y", 1, 60000), 0);
    assert_int_equal(has(c, "short"), 1);
    usleep(40 * 1000);
    assert_int_equal(has(c, "short"), 0);
    assert_int_equal(has(c, "long"), 1);
    assert_int_equal(stats(c).keys, 1); /* get removed the expired item */
    cache_free(c);
}

static void test_memory_tick_sweeps_expired(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 22, 2, 64);
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(put(c, key, "v", 1, i % 2 ? 20 : 60000), 0);
    }
    assert_int_equal(stats(c).keys, 3000);
    usleep(40 * 1000);
    for (int i = 0; i < 10; i++) /* bounded work per call: may take a few */
        c->ops->tick(c->self);
    assert_int_equal(stats(c).keys, 1500);
    cache_free(c);
}

/* Values of 10000 bytes in a 55000-byte single shard: five fit whatever
 * the per-item overhead (under 1 KiB), a sixth forces exactly one eviction. */
static void test_memory_budget_evicts_least_recently_used(void **state)
{
    (void)state;
    struct cache *c = mk(55000, 1, 64);
    static char val[10000];
    char key[8];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(put(c, key, val, sizeof val, 60000), 0);
    }
    assert_int_equal(stats(c).evictions, 0);
    assert_int_equal(has(c, "k0"), 1); /* k0 becomes most recently used */
    assert_int_equal(put(c, "k5", val, sizeof val, 60000), 0);
    struct cache_stats s = stats(c);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.keys, 5);
    assert_true(s.bytes <= 55000);
    assert_true(s.bytes >= 5 * sizeof val); /* overhead is counted too */
    assert_int_equal(has(c, "k1"), 0);      /* the LRU tail went */
    assert_int_equal(has(c, "k0"), 1);
    for (int i = 2; i <= 5; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(has(c, key), 1);
    }
    cache_free(c);
}

static void test_memory_budget_holds_across_shards(void **state)
{
    (void)state;
    struct cache *c = mk(64 * 1024, 8, 64);
    char key[16], val[700];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_int_equal(put(c, key, val, sizeof val, 60000), 0);
        assert_true(stats(c).bytes <= 64 * 1024);
    }
    struct cache_stats s = stats(c);
    assert_true(s.evictions > 0);
    assert_int_equal(s.keys + s.evictions, 2000);
    cache_free(c);
}

static void test_memory_oversized_item_refused(void **state)
{
    (void)state;
    struct cache *c = mk(64 * 1024, 4, 64); /* 16 KiB per shard */
    static char big[20000];
    assert_int_equal(put(c, "big", "small", 5, 60000), 0);
    assert_int_equal(put(c, "big", big, sizeof big, 60000), 0);
    assert_int_equal(has(c, "big"), 0); /* not stored, older value dropped */
    struct cache_stats s = stats(c);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.keys, 0);
    assert_int_equal(s.bytes, 0);
    cache_free(c);
}

static const struct rc_str T_GLOBAL = {"*", 1};
static const struct rc_str T_USER1 = {"user:1", 6};
static const struct rc_str T_USER2 = {"user:2", 6};

static void test_memory_bump_changes_gens(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 20, 1, 1024);
    struct rc_str tags[] = {T_GLOBAL, T_USER1, T_USER2};
    uint64_t g[3], h[3];
    assert_int_equal(c->ops->tag_gens(c->self, tags, 3, g), 0);
    assert_true(g[0] == 0 && g[1] == 0 && g[2] == 0); /* generations start at 0 */
    assert_int_equal(c->ops->bump_tags(c->self, &tags[1], 1), 0);
    assert_int_equal(c->ops->tag_gens(c->self, tags, 3, h), 0);
    assert_true(h[0] == g[0]);
    assert_true(h[1] == g[1] + 1);
    /* get() reports the same generations, found or not. */
    struct cache_value v;
    uint64_t k[3];
    assert_int_equal(c->ops->get(c->self, "nope", 4, tags, 3, &v, k), 0);
    assert_memory_equal(k, h, sizeof h);
    cache_free(c);
}

/* The memory cache is this process's own: a bump of a transaction another
 * instance may also have bumped still counts here (cache_bump_once falls
 * back to bump_tags), and so does the same token twice. */
static void test_memory_bump_once_counts_every_bump(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 20, 1, 1024);
    struct rc_str tags[] = {T_USER1, T_USER2};
    uint64_t g[2], h[2];
    assert_null(c->ops->bump_tags_once);
    assert_int_equal(c->ops->tag_gens(c->self, tags, 2, g), 0);
    const struct rc_str tx = {"77.1700000000000000", 19}, none = {"", 0};
    assert_int_equal(cache_bump_once(c, tags, 2, &tx), 0);
    assert_int_equal(cache_bump_once(c, tags, 2, &tx), 0);
    assert_int_equal(cache_bump_once(c, &tags[1], 1, &none), 0);
    assert_int_equal(cache_bump_once(c, &tags[1], 1, NULL), 0);
    assert_int_equal(c->ops->tag_gens(c->self, tags, 2, h), 0);
    assert_true(h[0] == g[0] + 2);
    assert_true(h[1] == g[1] + 4);
    cache_free(c);
}

static void test_memory_global_tag_never_shares_a_slot(void **state)
{
    (void)state;
    /* One slot: every ordinary tag collides with every other, never with "*". */
    struct cache *c = mk(1 << 20, 1, 1);
    struct rc_str tags[] = {T_GLOBAL, T_USER1, T_USER2, {"**", 2}, {"", 0}};
    uint64_t g[5];
    assert_int_equal(c->ops->bump_tags(c->self, &tags[1], 1), 0);
    assert_int_equal(c->ops->tag_gens(c->self, tags, 5, g), 0);
    assert_true(g[0] == 0);
    assert_true(g[1] == 1);
    assert_true(g[2] == 1); /* collision: extra invalidation, documented */
    assert_true(g[3] == 1 && g[4] == 1);
    assert_int_equal(c->ops->bump_tags(c->self, &tags[0], 1), 0);
    assert_int_equal(c->ops->tag_gens(c->self, tags, 5, g), 0);
    assert_true(g[0] == 1);
    assert_true(g[1] == 1);
    cache_free(c);
}

/* Encode an entry recording gens[0..n) and store it under key. */
static void store_entry(struct cache *c, const char *key, const uint64_t *gens, size_t n)
{
    struct entry_view e;
    memset(&e, 0, sizeof e);
    e.status = 200;
    e.body = "{\"id\":1}";
    e.body_len = 8;
    e.etag = entry_hash(e.body, e.body_len);
    e.ntags = n;
    memcpy(e.gens, gens, n * sizeof *gens);
    buf b;
    buf_init(&b, 0);
    assert_int_equal(entry_encode(&b, &e), 0);
    assert_int_equal(put(c, key, b.data, b.len, 60000), 0);
    buf_free(&b);
}

/* 1 if key holds an entry that is valid against the current generations. */
static int servable(struct cache *c, const char *key, const struct rc_str *tags, size_t n)
{
    struct cache_value v;
    struct entry_view e;
    uint64_t now[ENTRY_MAX_TAGS];
    assert_int_equal(c->ops->get(c->self, key, strlen(key), tags, n, &v, now), 1);
    assert_int_equal(entry_decode(v.data, v.len, &e), 0);
    int ok = entry_gens_match(&e, now, n);
    c->ops->release(c->self, &v);
    return ok;
}

static void test_memory_fill_race_entry_born_stale_is_never_served(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 20, 4, 1024);
    struct rc_str tags[] = {T_GLOBAL, T_USER1};
    uint64_t before[2];

    /* A miss reads the generations before querying the database... */
    assert_int_equal(c->ops->tag_gens(c->self, tags, 2, before), 0);
    /* ...a write commits and bumps the tag while the query runs... */
    assert_int_equal(c->ops->bump_tags(c->self, &tags[1], 1), 0);
    /* ...and the slow reader stores the old result with the old gens. */
    store_entry(c, "GET /users/1", before, 2);
    assert_false(servable(c, "GET /users/1", tags, 2));

    /* A fill that read the generations after the write is served. */
    uint64_t after[2];
    assert_int_equal(c->ops->tag_gens(c->self, tags, 2, after), 0);
    store_entry(c, "GET /users/1", after, 2);
    assert_true(servable(c, "GET /users/1", tags, 2));

    /* Bumping the global tag invalidates it too (DELETE /cache). */
    assert_int_equal(c->ops->bump_tags(c->self, &tags[0], 1), 0);
    assert_false(servable(c, "GET /users/1", tags, 2));
    cache_free(c);
}

static enum entry_gens compare_stored(struct cache *c, const char *key, const struct rc_str *tags,
                                      size_t n)
{
    struct cache_value v;
    struct entry_view e;
    uint64_t now[ENTRY_MAX_TAGS];
    assert_int_equal(c->ops->get(c->self, key, strlen(key), tags, n, &v, now), 1);
    assert_int_equal(entry_decode(v.data, v.len, &e), 0);
    enum entry_gens g = entry_gens_compare(&e, now, n);
    c->ops->release(c->self, &v);
    return g;
}

static void test_memory_soft_bump_is_stale_then_hard_bump_is_dead(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 20, 4, 1024);
    struct rc_str tags[] = {T_GLOBAL, T_USER1};
    uint64_t g[2], g2[2];

    assert_non_null(c->ops->bump_tags_soft);
    assert_int_equal(c->ops->tag_gens(c->self, tags, 2, g), 0);
    store_entry(c, "user:1", g, 2);
    assert_int_equal(compare_stored(c, "user:1", tags, 2), ENTRY_GENS_SAME);

    assert_int_equal(c->ops->bump_tags_soft(c->self, &tags[1], 1), 0);
    assert_int_equal(c->ops->tag_gens(c->self, tags, 2, g2), 0);
    assert_true(g2[1] == g[1] + CACHE_GEN_SOFT_UNIT);
    assert_int_equal(compare_stored(c, "user:1", tags, 2), ENTRY_GENS_SOFT);

    /* The refresh records the new generations and is valid again. */
    store_entry(c, "user:1", g2, 2);
    assert_int_equal(compare_stored(c, "user:1", tags, 2), ENTRY_GENS_SAME);

    /* A hard bump after a soft one: dead, not stale. */
    assert_int_equal(c->ops->bump_tags_soft(c->self, &tags[0], 1), 0);
    assert_int_equal(c->ops->bump_tags(c->self, &tags[1], 1), 0);
    assert_int_equal(compare_stored(c, "user:1", tags, 2), ENTRY_GENS_HARD);
    cache_free(c);
}

static void test_memory_purge_pattern_deletes_matching_keys(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 24, 4, 64);
    char key[32];
    for (int i = 0; i < 3000; i++) { /* enough to span several scan chunks */
        snprintf(key, sizeof key, "user:%d", i);
        assert_int_equal(put(c, key, "u", 1, 60000), 0);
        snprintf(key, sizeof key, "job:%d", i);
        assert_int_equal(put(c, key, "j", 1, 60000), 0);
    }
    assert_int_equal(put(c, "user*", "s", 1, 60000), 0);
    uint64_t n = 0;
    assert_int_equal(c->ops->purge(c->self, "user\\*", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(c->ops->purge(c->self, "user:*", &n), 0);
    assert_int_equal(n, 3000);
    assert_int_equal(c->ops->purge(c->self, "job:?", &n), 0);
    assert_int_equal(n, 10);
    assert_int_equal(has(c, "user:7"), 0);
    assert_int_equal(has(c, "job:7"), 0);
    assert_int_equal(has(c, "job:77"), 1);
    struct cache_stats s = stats(c);
    assert_int_equal(s.keys, 2990);
    assert_int_equal(s.deletes, 3011);
    cache_free(c);
}

static void test_memory_purge_all_empties_cache(void **state)
{
    (void)state;
    struct cache *c = mk(1 << 22, 8, 64);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(put(c, key, "v", 1, 60000), 0);
    }
    struct cache_value held;
    assert_int_equal(get(c, "k5", &held), 1);
    uint64_t n = 0;
    assert_int_equal(c->ops->purge(c->self, NULL, &n), 0);
    assert_int_equal(n, 1000);
    assert_memory_equal(held.data, "v", 1); /* a held value outlives purge */
    c->ops->release(c->self, &held);
    struct cache_stats s = stats(c);
    assert_int_equal(s.keys, 0);
    assert_int_equal(s.bytes, 0);
    assert_int_equal(has(c, "k1"), 0);
    assert_int_equal(put(c, "k1", "again", 5, 60000), 0);
    assert_int_equal(has(c, "k1"), 1);
    c->ops->tick(c->self);
    cache_free(c);
}

static void test_memory_glob_match_cases(void **state)
{
    (void)state;
    struct {
        const char *pat, *s;
        bool want;
    } cases[] = {
        {"", "", true},
        {"", "a", false},
        {"*", "", true},
        {"*", "anything", true},
        {"abc", "abc", true},
        {"abc", "ab", false},
        {"ab", "abc", false},
        {"a*", "abc", true},
        {"*c", "abc", true},
        {"*b*", "abc", true},
        {"a**c", "ac", true},
        {"a?c", "abc", true},
        {"a?c", "ac", false},
        {"??", "ab", true},
        {"user:*:jobs", "user:42:jobs", true},
        {"user:*:jobs", "user:42:jobs:x", false},
        {"*a*b", "xaxxb", true},
        {"*a*b", "xaxxbc", false},
        {"a\\*c", "a*c", true},
        {"a\\*c", "abc", false},
        {"\\?", "?", true},
        {"\\?", "x", false},
        {"\\\\", "\\", true},
        {"a\\", "a\\", true}, /* a trailing backslash is literal */
        {"GET /api/users*", "GET /api/users/1?x=2", true},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        bool got = cache_glob_match(cases[i].pat, cases[i].s, strlen(cases[i].s));
        if (got != cases[i].want)
            fail_msg("glob [%s] on [%s]: expected %d", cases[i].pat, cases[i].s, cases[i].want);
    }
    assert_true(cache_glob_match("a?b", "a\0b", 3)); /* length-delimited key */
    assert_false(cache_glob_match("ab", "ab\0", 3));
}

static void test_memory_glob_match_is_not_exponential(void **state)
{
    (void)state;
    static char s[20000];
    memset(s, 'a', sizeof s);
    int64_t t0 = rc_mono_ms();
    assert_false(cache_glob_match("*a*a*a*a*a*a*a*a*a*a*b", s, sizeof s));
    assert_true(cache_glob_match("*a*a*a*a*a*a*a*a*a*a*", s, sizeof s));
    assert_true(rc_mono_ms() - t0 < 2000);
}

/* Concurrency: threads get/set/delete/bump/purge/tick overlapping keys. A
 * value is [len:u32][fill byte]*, so a reader can check the blob it holds
 * is whole and unchanged. Run under -fsanitize=thread or address. */
#define MT_THREADS 4
#define MT_ITERS   20000
#define MT_KEYS    48

struct mt_arg {
    struct cache *c;
    uint64_t seed;
    int bad;
};

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static int value_ok(const struct cache_value *v)
{
    if (v->len < 4)
        return 0;
    uint32_t n = (uint32_t)v->data[0] | (uint32_t)v->data[1] << 8 | (uint32_t)v->data[2] << 16 |
                 (uint32_t)v->data[3] << 24;
    if (n != v->len)
        return 0;
    for (size_t i = 4; i < v->len; i++)
        if (v->data[i] != (uint8_t)n)
            return 0;
    return 1;
}

static void *mt_worker(void *p)
{
    struct mt_arg *a = p;
    struct cache *c = a->c;
    uint8_t val[3000];
    char key[16];
    struct rc_str tags[] = {T_GLOBAL, T_USER1, T_USER2};
    uint64_t gens[3];

    for (int it = 0; it < MT_ITERS; it++) {
        uint64_t r = rng(&a->seed);
        snprintf(key, sizeof key, "k%u", (unsigned)(r >> 8) % MT_KEYS);
        unsigned op = (unsigned)(r >> 40) % 1000;
        if (op < 500) {
            struct cache_value v;
            int rc = c->ops->get(c->self, key, strlen(key), tags, 3, &v, gens);
            if (rc == 1) {
                if (!value_ok(&v))
                    a->bad++;
                if (op < 20) { /* replace it while holding it */
                    if (c->ops->set(c->self, key, strlen(key), "\x04\0\0\0", 4, 1000) != 0)
                        a->bad++;
                    if (!value_ok(&v))
                        a->bad++;
                }
                c->ops->release(c->self, &v);
            }
        } else if (op < 850) {
            uint32_t n = 4 + (uint32_t)(rng(&a->seed) % (sizeof val - 4));
            val[0] = (uint8_t)n;
            val[1] = (uint8_t)(n >> 8);
            val[2] = (uint8_t)(n >> 16);
            val[3] = (uint8_t)(n >> 24);
            memset(val + 4, (uint8_t)n, n - 4);
            int64_t ttl = op < 600 ? 1 : 60000;
            if (c->ops->set(c->self, key, strlen(key), val, n, ttl) != 0)
                a->bad++;
        } else if (op < 900) {
            c->ops->bump_tags(c->self, &tags[1 + op % 2], 1);
        } else if (op < 950) {
            c->ops->del(c->self, key, strlen(key));
        } else if (op < 990) {
            c->ops->tag_gens(c->self, tags, 3, gens);
            struct cache_stats s;
            c->ops->stats(c->self, &s);
        } else if (op < 996) {
            c->ops->tick(c->self);
        } else {
            uint64_t n;
            c->ops->purge(c->self, op % 2 ? "k1*" : NULL, &n);
        }
    }
    return NULL;
}

static void test_memory_concurrent_get_set_bump_is_safe(void **state)
{
    (void)state;
    struct cache *c = mk(32 * 1024, 4, 16); /* small: constant eviction */
    pthread_t th[MT_THREADS];
    struct mt_arg args[MT_THREADS];
    struct rc_str u1[] = {T_USER1};
    uint64_t g0, g1;
    c->ops->tag_gens(c->self, u1, 1, &g0);
    for (int i = 0; i < MT_THREADS; i++) {
        args[i] = (struct mt_arg){.c = c, .seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1)};
        assert_int_equal(pthread_create(&th[i], NULL, mt_worker, &args[i]), 0);
    }
    for (int i = 0; i < MT_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].bad, 0);
    }
    c->ops->tag_gens(c->self, u1, 1, &g1);
    assert_true(g1 > g0);
    struct cache_stats s = stats(c);
    assert_true(s.bytes <= 32 * 1024);
    assert_true(s.hits > 0 && s.evictions > 0); /* the paths were exercised */
    assert_int_equal(s.errors, 0);
    cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_create_rejects_bad_args),
        cmocka_unit_test(test_memory_bump_once_counts_every_bump),
        cmocka_unit_test(test_memory_set_get_release),
        cmocka_unit_test(test_memory_replace_while_reference_held_keeps_old_bytes),
        cmocka_unit_test(test_memory_del_removes_key),
        cmocka_unit_test(test_memory_ttl_expiry),
        cmocka_unit_test(test_memory_tick_sweeps_expired),
        cmocka_unit_test(test_memory_budget_evicts_least_recently_used),
        cmocka_unit_test(test_memory_budget_holds_across_shards),
        cmocka_unit_test(test_memory_oversized_item_refused),
        cmocka_unit_test(test_memory_bump_changes_gens),
        cmocka_unit_test(test_memory_global_tag_never_shares_a_slot),
        cmocka_unit_test(test_memory_fill_race_entry_born_stale_is_never_served),
        cmocka_unit_test(test_memory_soft_bump_is_stale_then_hard_bump_is_dead),
        cmocka_unit_test(test_memory_purge_pattern_deletes_matching_keys),
        cmocka_unit_test(test_memory_purge_all_empties_cache),
        cmocka_unit_test(test_memory_glob_match_cases),
        cmocka_unit_test(test_memory_glob_match_is_not_exponential),
        cmocka_unit_test(test_memory_concurrent_get_set_bump_is_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
