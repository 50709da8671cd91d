/* test_entry.c - encode/decode of stored entries, hostile input, hashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/entry.h"

static const char BODY[] = "{\"id\":42,\"name\":\"Ada\"}";

static struct entry_view sample(void)
{
    struct entry_view e;
    memset(&e, 0, sizeof e);
    e.status = 200;
    e.flags = 0x5a;
    e.filled_at_ms = 1700000000123ULL;
    e.fresh_until_ms = 1700000060123ULL;
    e.stale_until_ms = 0xFFFFFFFFFFFFFFF0ULL;
    e.etag = entry_hash(BODY, sizeof BODY - 1);
    e.ntags = 3;
    e.gens[0] = 7;
    e.gens[1] = 0x0102030405060708ULL;
    e.gens[2] = 0;
    e.body = BODY;
    e.body_len = sizeof BODY - 1;
    return e;
}

static void encode_sample(buf *b)
{
    struct entry_view e = sample();
    buf_init(b, 0);
    assert_int_equal(entry_encode(b, &e), 0);
}

static void test_entry_round_trip(void **state)
{
    (void)state;
    struct entry_view in = sample(), out;
    buf b;
    encode_sample(&b);
    assert_int_equal(b.len, 40 + 8 * 3 + 4 + in.body_len);
    assert_int_equal(entry_decode(b.data, b.len, &out), 0);
    assert_int_equal(out.status, in.status);
    assert_int_equal(out.flags, in.flags);
    assert_true(out.filled_at_ms == in.filled_at_ms);
    assert_true(out.fresh_until_ms == in.fresh_until_ms);
    assert_true(out.stale_until_ms == in.stale_until_ms);
    assert_true(out.etag == in.etag);
    assert_int_equal(out.ntags, 3);
    assert_memory_equal(out.gens, in.gens, 3 * sizeof(uint64_t));
    assert_int_equal(out.body_len, in.body_len);
    assert_memory_equal(out.body, BODY, in.body_len);
    assert_ptr_equal(out.body, b.data + b.len - in.body_len);
    buf_free(&b);
}

static void test_entry_round_trip_empty_body_and_max_tags(void **state)
{
    (void)state;
    struct entry_view in = sample(), out;
    in.body = NULL;
    in.body_len = 0;
    in.ntags = ENTRY_MAX_TAGS;
    for (size_t i = 0; i < ENTRY_MAX_TAGS; i++)
        in.gens[i] = i * 1000003;
    buf b;
    buf_init(&b, 0);
    assert_int_equal(entry_encode(&b, &in), 0);
    assert_int_equal(entry_decode(b.data, b.len, &out), 0);
    assert_int_equal(out.ntags, ENTRY_MAX_TAGS);
    assert_true(entry_gens_match(&out, in.gens, ENTRY_MAX_TAGS));
    assert_int_equal(out.body_len, 0);
    buf_free(&b);
}

static void test_entry_encode_is_little_endian_layout(void **state)
{
    (void)state;
    struct entry_view e = sample();
    e.status = 0x0102;
    e.ntags = 1;
    e.gens[0] = 0x1122334455667788ULL;
    e.body = "xy";
    e.body_len = 2;
    buf b;
    buf_init(&b, 0);
    assert_int_equal(entry_encode(&b, &e), 0);
    const uint8_t *p = (const uint8_t *)b.data;
    assert_memory_equal(p, "RCE\x01", 4);
    assert_int_equal(p[4], 0x02);
    assert_int_equal(p[5], 0x01);
    assert_int_equal(p[6], 0x5a);
    assert_int_equal(p[7], 1);
    assert_memory_equal(p + 40, "\x88\x77\x66\x55\x44\x33\x22\x11", 8);
    assert_memory_equal(p + 48, "\x02\x00\x00\x00xy", 6);
    assert_int_equal(b.len, 54);
    buf_free(&b);
}

static void test_entry_encode_rejects_bad_fields(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    struct entry_view e = sample();
    e.ntags = ENTRY_MAX_TAGS + 1;
    assert_int_equal(entry_encode(&b, &e), -1);
    e = sample();
    e.status = 70000;
    assert_int_equal(entry_encode(&b, &e), -1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_entry_encode_cap_refusal_leaves_buffer_unchanged(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 50);
    assert_int_equal(buf_puts(&b, "prefix"), 0);
    struct entry_view e = sample();
    assert_int_equal(entry_encode(&b, &e), -1);
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "prefix");
    buf_free(&b);
}

static void test_entry_decode_rejects_truncated(void **state)
{
    (void)state;
    struct entry_view out;
    buf b;
    encode_sample(&b);
    for (size_t n = 0; n < b.len; n++) {
        /* A fresh copy of exactly n bytes, so ASan sees any overread. */
        char *copy = malloc(n ? n : 1);
        memcpy(copy, b.data, n);
        if (entry_decode(copy, n, &out) != -1)
            fail_msg("a %zu-byte prefix of a %zu-byte entry was accepted", n, b.len);
        free(copy);
    }
    assert_int_equal(entry_decode(NULL, 0, &out), -1);
    buf_free(&b);
}

static void test_entry_decode_rejects_wrong_magic(void **state)
{
    (void)state;
    struct entry_view out;
    buf b;
    encode_sample(&b);
    for (int i = 0; i < 3; i++) {
        char saved = b.data[i];
        b.data[i] ^= 0x20;
        assert_int_equal(entry_decode(b.data, b.len, &out), -1);
        b.data[i] = saved;
    }
    assert_int_equal(entry_decode(b.data, b.len, &out), 0);
    buf_free(&b);
}

static void test_entry_decode_rejects_wrong_version(void **state)
{
    (void)state;
    struct entry_view out;
    buf b;
    encode_sample(&b);
    b.data[3] = ENTRY_VERSION + 1;
    assert_int_equal(entry_decode(b.data, b.len, &out), -1);
    b.data[3] = 0;
    assert_int_equal(entry_decode(b.data, b.len, &out), -1);
    buf_free(&b);
}

static void test_entry_decode_rejects_too_many_tags(void **state)
{
    (void)state;
    struct entry_view out;
    /* A header claiming 17 tags, followed by room for them and a body. */
    size_t n = 40 + 8 * 17 + 4;
    uint8_t *p = calloc(1, n);
    memcpy(p, "RCE\x01", 4);
    p[7] = ENTRY_MAX_TAGS + 1;
    assert_int_equal(entry_decode(p, n, &out), -1);
    p[7] = 255;
    assert_int_equal(entry_decode(p, n, &out), -1);
    free(p);
}

static void test_entry_decode_rejects_body_len_past_end(void **state)
{
    (void)state;
    struct entry_view out;
    buf b;
    encode_sample(&b);
    size_t off = 40 + 8 * 3;
    b.data[off] = (char)(b.data[off] + 1); /* one more byte than present */
    assert_int_equal(entry_decode(b.data, b.len, &out), -1);
    memcpy(b.data + off, "\xff\xff\xff\xff", 4);
    assert_int_equal(entry_decode(b.data, b.len, &out), -1);
    buf_free(&b);
}

static void test_entry_decode_rejects_trailing_bytes(void **state)
{
    (void)state;
    struct entry_view out;
    buf b;
    encode_sample(&b);
    assert_int_equal(buf_putc(&b, 'x'), 0);
    assert_int_equal(entry_decode(b.data, b.len, &out), -1);
    buf_free(&b);
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_entry_decode_survives_random_garbage(void **state)
{
    (void)state;
    struct entry_view out;
    uint64_t x = 0x2545F4914F6CDD1DULL;
    buf valid;
    encode_sample(&valid);
    int accepted = 0;

    for (int iter = 0; iter < 100000; iter++) {
        size_t n = (size_t)(rng_next(&x) % 200);
        uint8_t *p = malloc(n ? n : 1);
        if (iter % 2 == 0) {
            for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)rng_next(&x);
            if (n >= 8 && iter % 4 == 0) {
                memcpy(p, "RCE\x01", 4); /* get past the magic check */
                p[7] = (uint8_t)(rng_next(&x) % 20);
            }
        } else {
            /* Mutate a valid entry: flip a few bytes, cut or extend it. */
            size_t copy = n < valid.len ? n : valid.len;
            memcpy(p, valid.data, copy);
            for (size_t i = copy; i < n; i++)
                p[i] = (uint8_t)rng_next(&x);
            for (int k = 0; k < 3 && n > 0; k++)
                p[rng_next(&x) % n] ^= (uint8_t)(1u << (rng_next(&x) % 8));
        }
        if (entry_decode(p, n, &out) == 0) {
            accepted++;
            assert_true(out.ntags <= ENTRY_MAX_TAGS);
            assert_true(out.body >= (const char *)p);
            assert_true(out.body + out.body_len == (const char *)p + n);
        }
        free(p);
    }
    assert_true(accepted > 0); /* the mutations kept some entries valid */
    buf_free(&valid);
}

static void test_entry_hash_is_stable(void **state)
{
    (void)state;
    /* Published XXH64 (seed 0) test vectors: the ETag must never change
     * between builds or architectures. */
    assert_true(entry_hash("", 0) == 0xEF46DB3751D8E999ULL);
    assert_true(entry_hash(NULL, 0) == 0xEF46DB3751D8E999ULL);
    assert_true(entry_hash("a", 1) == 0xD24EC4F1A98C6E5BULL);
    assert_true(entry_hash("abc", 3) == 0x44BC2CF5AD770999ULL);
    const char *s = "Nobody inspects the spammish repetition";
    assert_true(entry_hash(s, strlen(s)) == 0xFBCEA83C8A378BF1ULL);
}

static void test_entry_hash_depends_on_every_byte(void **state)
{
    (void)state;
    char a[100];
    memset(a, 'q', sizeof a);
    uint64_t h = entry_hash(a, sizeof a);
    for (size_t i = 0; i < sizeof a; i++) {
        a[i] ^= 1;
        assert_true(entry_hash(a, sizeof a) != h);
        a[i] ^= 1;
    }
    assert_true(entry_hash(a, sizeof a - 1) != h);
}

static void test_entry_etag_format(void **state)
{
    (void)state;
    char out[ENTRY_ETAG_LEN + 1];
    entry_etag(0x00ab00cd00ef0012ULL, out);
    assert_string_equal(out, "\"00ab00cd00ef0012\"");
    entry_etag(UINT64_MAX, out);
    assert_string_equal(out, "\"ffffffffffffffff\"");
    assert_int_equal(strlen(out), ENTRY_ETAG_LEN);
}

static void test_entry_gens_match(void **state)
{
    (void)state;
    struct entry_view e = sample();
    uint64_t gens[ENTRY_MAX_TAGS];
    memcpy(gens, e.gens, sizeof gens);
    assert_true(entry_gens_match(&e, gens, 3));
    assert_false(entry_gens_match(&e, gens, 2)); /* count differs */
    assert_false(entry_gens_match(&e, gens, 4));
    gens[2]++;
    assert_false(entry_gens_match(&e, gens, 3));
    gens[2]--;
    gens[0]++; /* the global tag moved */
    assert_false(entry_gens_match(&e, gens, 3));
    e.ntags = 0;
    assert_true(entry_gens_match(&e, NULL, 0));
}

static void test_entry_gens_soft_part_is_stale_not_dead(void **state)
{
    (void)state;
    struct entry_view e = sample();
    uint64_t gens[ENTRY_MAX_TAGS];

    memcpy(gens, e.gens, sizeof gens);
    assert_int_equal(entry_gens_compare(&e, gens, 3), ENTRY_GENS_SAME);
    gens[1] += CACHE_GEN_SOFT_UNIT; /* a soft purge */
    assert_int_equal(entry_gens_compare(&e, gens, 3), ENTRY_GENS_SOFT);
    assert_false(entry_gens_match(&e, gens, 3)); /* not valid as fresh */
    gens[2] += 1;                                /* and a hard bump of another tag */
    assert_int_equal(entry_gens_compare(&e, gens, 3), ENTRY_GENS_HARD);
    memcpy(gens, e.gens, sizeof gens);
    gens[0] += 3 * CACHE_GEN_SOFT_UNIT + 1; /* soft and hard on one tag */
    assert_int_equal(entry_gens_compare(&e, gens, 3), ENTRY_GENS_HARD);
    assert_int_equal(entry_gens_compare(&e, gens, 2), ENTRY_GENS_HARD); /* count */
}

static void test_entry_gens_hard_wrap_counts_as_hard(void **state)
{
    (void)state;
    struct entry_view e = sample();
    uint64_t gens[ENTRY_MAX_TAGS];

    e.gens[0] = CACHE_GEN_HARD_MASK; /* 2^40 - 1 hard bumps */
    memcpy(gens, e.gens, sizeof gens);
    gens[0] += 1; /* carries into the soft part; the hard part still moved */
    assert_int_equal(entry_gens_compare(&e, gens, 3), ENTRY_GENS_HARD);
}

/* An entry filled at t=1000 s, fresh for 60 s, kept until t=1700 s. */
static struct entry_view windowed(void)
{
    struct entry_view e = sample();
    e.filled_at_ms = 1000000;
    e.fresh_until_ms = 1060000;
    e.stale_until_ms = 1700000;
    return e;
}

static void test_entry_state_fresh_expired_error_dead(void **state)
{
    (void)state;
    struct entry_view e = windowed();
    const uint64_t *g = e.gens;

    /* swr 30 s, sie 600 s (capped by stale_until at 1700 s) */
    assert_int_equal(entry_state(&e, g, 3, 1059999, 30000, 600000), ENTRY_FRESH);
    assert_int_equal(entry_state(&e, g, 3, 1060000, 30000, 600000), ENTRY_STALE_EXPIRED);
    assert_int_equal(entry_state(&e, g, 3, 1089999, 30000, 600000), ENTRY_STALE_EXPIRED);
    assert_int_equal(entry_state(&e, g, 3, 1090000, 30000, 600000), ENTRY_ERROR_ONLY);
    assert_int_equal(entry_state(&e, g, 3, 1659999, 30000, 600000), ENTRY_ERROR_ONLY);
    assert_int_equal(entry_state(&e, g, 3, 1660000, 30000, 600000), ENTRY_DEAD);
    /* no windows: expired is dead */
    assert_int_equal(entry_state(&e, g, 3, 1060000, 0, 0), ENTRY_DEAD);
    /* windows never reach past stale_until (a session's expires_at) */
    assert_int_equal(entry_state(&e, g, 3, 1700000, 10000000, 10000000), ENTRY_DEAD);
    assert_int_equal(entry_state(&e, g, 3, 1699999, 10000000, 10000000), ENTRY_STALE_EXPIRED);
    /* an entry written without windows (stale_until == fresh_until) */
    e.stale_until_ms = e.fresh_until_ms;
    assert_int_equal(entry_state(&e, g, 3, 1060000, 30000, 600000), ENTRY_DEAD);
}

static void test_entry_state_invalidation_stays_hard(void **state)
{
    (void)state;
    struct entry_view e = windowed();
    uint64_t gens[ENTRY_MAX_TAGS];

    memcpy(gens, e.gens, sizeof gens);
    gens[1]++;
    /* fresh by time, inside both windows: still never answered */
    assert_int_equal(entry_state(&e, gens, 3, 1000001, 30000, 600000), ENTRY_DEAD);
    assert_int_equal(entry_state(&e, gens, 3, 1070000, 30000, 600000), ENTRY_DEAD);
    assert_int_equal(entry_state(&e, gens, 3, 1200000, 30000, 600000), ENTRY_DEAD);
}

static void test_entry_state_soft_purge(void **state)
{
    (void)state;
    struct entry_view e = windowed();
    uint64_t gens[ENTRY_MAX_TAGS];

    memcpy(gens, e.gens, sizeof gens);
    gens[0] += CACHE_GEN_SOFT_UNIT; /* soft purge of everything */
    assert_int_equal(entry_state(&e, gens, 3, 1000001, 0, 0), ENTRY_STALE_SOFT);
    assert_int_equal(entry_state(&e, gens, 3, 1070000, 30000, 0), ENTRY_STALE_SOFT);
    assert_int_equal(entry_state(&e, gens, 3, 1100000, 30000, 600000), ENTRY_ERROR_ONLY);
    assert_int_equal(entry_state(&e, gens, 3, 1060000, 0, 0), ENTRY_DEAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entry_round_trip),
        cmocka_unit_test(test_entry_round_trip_empty_body_and_max_tags),
        cmocka_unit_test(test_entry_encode_is_little_endian_layout),
        cmocka_unit_test(test_entry_encode_rejects_bad_fields),
        cmocka_unit_test(test_entry_encode_cap_refusal_leaves_buffer_unchanged),
        cmocka_unit_test(test_entry_decode_rejects_truncated),
        cmocka_unit_test(test_entry_decode_rejects_wrong_magic),
        cmocka_unit_test(test_entry_decode_rejects_wrong_version),
        cmocka_unit_test(test_entry_decode_rejects_too_many_tags),
        cmocka_unit_test(test_entry_decode_rejects_body_len_past_end),
        cmocka_unit_test(test_entry_decode_rejects_trailing_bytes),
        cmocka_unit_test(test_entry_decode_survives_random_garbage),
        cmocka_unit_test(test_entry_hash_is_stable),
        cmocka_unit_test(test_entry_hash_depends_on_every_byte),
        cmocka_unit_test(test_entry_etag_format),
        cmocka_unit_test(test_entry_gens_match),
        cmocka_unit_test(test_entry_gens_soft_part_is_stale_not_dead),
        cmocka_unit_test(test_entry_gens_hard_wrap_counts_as_hard),
        cmocka_unit_test(test_entry_state_fresh_expired_error_dead),
        cmocka_unit_test(test_entry_state_invalidation_stays_hard),
        cmocka_unit_test(test_entry_state_soft_purge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
