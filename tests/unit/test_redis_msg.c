/*
 * test_redis_msg.c - the invalidation messages of the tiered provider
 * (redis_msg.h) round-trip, and anything malformed is UNKNOWN (which makes
 * a subscriber drop its whole L1); and the pending-bump set (pending.h):
 * dedupe, "*" and overflow turn it into "bump everything", replay clears.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cache/pending.h"
#include "cache/redis_msg.h"
#include "cache/redis_reader.h"

#include <hiredis/hiredis.h>

#define S(x)                                                                                       \
    {                                                                                              \
        x, sizeof(x) - 1                                                                           \
    }

static void test_bump_round_trips_any_bytes(void **state)
{
    (void)state;
    const struct rc_str tags[] = {S("user:42"), {"a\nb:c\0d", 7}, S("*"), {"", 0}};
    struct rc_str got[8];
    char pattern[REDIS_MSG_PATTERN_MAX + 1];
    size_t n = 0;
    buf b;

    buf_init(&b, 0);
    assert_int_equal(redis_msg_bump(&b, tags, 4), 0);
    assert_int_equal(redis_msg_parse(b.data, b.len, got, 8, &n, pattern), REDIS_MSG_BUMP);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(got[i].len, tags[i].len);
        assert_memory_equal(got[i].s, tags[i].s, tags[i].len);
    }
    buf_free(&b);
}

static void test_purge_round_trips(void **state)
{
    (void)state;
    char pattern[REDIS_MSG_PATTERN_MAX + 1];
    size_t n;
    buf b;

    buf_init(&b, 0);
    assert_int_equal(redis_msg_purge(&b, "user:*"), 0);
    assert_int_equal(redis_msg_parse(b.data, b.len, NULL, 0, &n, pattern), REDIS_MSG_PURGE);
    assert_string_equal(pattern, "user:*");
    buf_free(&b);
}

static void expect_unknown(const char *msg, size_t len)
{
    struct rc_str got[2];
    char pattern[REDIS_MSG_PATTERN_MAX + 1];
    size_t n;
    if (redis_msg_parse(msg, len, got, 2, &n, pattern) != REDIS_MSG_UNKNOWN)
        fail_msg("expected %.*s to be UNKNOWN", (int)len, msg);
}

static void test_malformed_is_unknown(void **state)
{
    (void)state;
    expect_unknown("", 0);
    expect_unknown("b", 1);
    expect_unknown("x\n", 2);
    expect_unknown("b\n5:abc", 7);      /* length past the end */
    expect_unknown("b\n:abc", 6);       /* no length */
    expect_unknown("b\n3abc", 6);       /* no colon */
    expect_unknown("b\n1:a1:b1:c", 11); /* more tags than the caller holds */
    expect_unknown("b\n99999999:a", 12);
    expect_unknown("p\nab\0c", 6); /* NUL in a pattern */
}

static void test_too_long_pattern_is_refused(void **state)
{
    (void)state;
    char big[REDIS_MSG_PATTERN_MAX + 2];
    buf b;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_init(&b, 0);
    assert_int_equal(redis_msg_purge(&b, big), -1);
    buf_free(&b);
}

static void test_pending_dedupes_and_replays(void **state)
{
    (void)state;
    struct pending *p = pending_create(4);
    const struct rc_str a[] = {S("user:1"), S("user:2"), S("user:1")};
    const struct rc_str *tags;
    size_t n;
    bool all;

    assert_true(pending_empty(p));
    assert_false(pending_begin(p, &tags, &n, &all));
    pending_add(p, a, 3);
    assert_false(pending_empty(p));
    assert_true(pending_begin(p, &tags, &n, &all));
    assert_false(all);
    assert_int_equal(n, 2);
    assert_string_equal(tags[0].s, "user:1");
    assert_string_equal(tags[1].s, "user:2");
    pending_end(p, false); /* replay failed: kept */
    assert_false(pending_empty(p));
    assert_true(pending_begin(p, &tags, &n, &all));
    pending_end(p, true);
    assert_true(pending_empty(p));
    pending_free(p);
}

static void test_pending_overflow_and_global_mean_all(void **state)
{
    (void)state;
    struct pending *p = pending_create(2);
    const struct rc_str three[] = {S("a"), S("b"), S("c")};
    const struct rc_str star[] = {S("*")};
    const struct rc_str *tags;
    size_t n;
    bool all;

    pending_add(p, three, 3);
    assert_true(pending_begin(p, &tags, &n, &all));
    assert_true(all);
    assert_int_equal(n, 0);
    pending_end(p, true);
    assert_true(pending_empty(p));

    pending_add(p, three, 1);
    pending_add(p, star, 1);
    assert_true(pending_begin(p, &tags, &n, &all));
    assert_true(all);
    pending_end(p, true);
    pending_free(p);
}

/* A pub/sub message cut at an element boundary leaves no unparsed byte
 * behind, yet it is not complete: the subscriber must stay busy. */
static void test_reader_partial_at_an_element_boundary(void **state)
{
    (void)state;
    static const char head[] = "*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n", tail[] = "$3\r\nb\nx\r\n";
    redisReader *r = redisReaderCreate();
    void *m = NULL;

    assert_non_null(r);
    assert_false(redis_reader_partial(r));
    for (size_t cut = 1; cut < sizeof(head) - 1; cut++) { /* every cut, boundaries included */
        redisReaderFree(r);
        r = redisReaderCreate();
        assert_int_equal(redisReaderFeed(r, head, cut), REDIS_OK);
        assert_int_equal(redisReaderGetReply(r, &m), REDIS_OK);
        assert_null(m);
        assert_true(redis_reader_partial(r));
    }
    assert_int_equal(redisReaderFeed(r, head + sizeof(head) - 2, 1), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &m), REDIS_OK);
    assert_null(m);
    assert_true(redis_reader_partial(r)); /* pos == len here: only ridx tells */
    assert_int_equal(redisReaderFeed(r, tail, sizeof(tail) - 1), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &m), REDIS_OK);
    assert_non_null(m);
    freeReplyObject(m);
    assert_false(redis_reader_partial(r));
    /* The subscriber asks until there is no reply: that last, empty ask
     * leaves ridx at 0 with no type, and must not count as partial (or the
     * subscription would never be quiet again, and L1 never used). */
    assert_int_equal(redisReaderGetReply(r, &m), REDIS_OK);
    assert_null(m);
    assert_false(redis_reader_partial(r));
    /* A top-level bulk cut in two is partial too. */
    assert_int_equal(redisReaderFeed(r, "$5\r\nab", 6), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &m), REDIS_OK);
    assert_null(m);
    assert_true(redis_reader_partial(r));
    assert_int_equal(redisReaderFeed(r, "cde\r\n", 5), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &m), REDIS_OK);
    assert_non_null(m);
    freeReplyObject(m);
    assert_int_equal(redisReaderGetReply(r, &m), REDIS_OK);
    assert_false(redis_reader_partial(r));
    redisReaderFree(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bump_round_trips_any_bytes),
        cmocka_unit_test(test_purge_round_trips),
        cmocka_unit_test(test_malformed_is_unknown),
        cmocka_unit_test(test_too_long_pattern_is_refused),
        cmocka_unit_test(test_pending_dedupes_and_replays),
        cmocka_unit_test(test_pending_overflow_and_global_mean_all),
        cmocka_unit_test(test_reader_partial_at_an_element_boundary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
