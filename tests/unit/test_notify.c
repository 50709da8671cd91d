/* test_notify.c - the payloads of sql/respcache_notify.sql: accepted as
 * sent, and anything that does not name its tags exactly is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "notify.h"

static struct notify_msg msg;

static void test_notify_parses_tags_and_timestamp(void **state)
{
    (void)state;
    assert_int_equal(
        notify_parse("{\"tags\":[\"user:42\",\"user:42:jobs\"],\"ts\":1700000000123.456}", &msg),
        0);
    assert_int_equal(msg.ntags, 2);
    assert_int_equal(msg.tags[0].len, 7);
    assert_memory_equal(msg.tags[0].s, "user:42", 7);
    assert_memory_equal(msg.tags[1].s, "user:42:jobs", 12);
    assert_true(msg.ts_ms > 1700000000123.4 && msg.ts_ms < 1700000000123.5);

    assert_int_equal(notify_parse("{\"tags\":[\"*\"]}", &msg), 0);
    assert_int_equal(msg.ntags, 1);
    assert_true(msg.ts_ms < 0); /* no timestamp: no delay observation */
    assert_int_equal(notify_parse("{\"tags\":[\"settings\"],\"ts\":1700000000000,\"x\":1}", &msg),
                     0);
}

static void test_notify_refuses_what_does_not_name_its_tags(void **state)
{
    (void)state;
    const char *bad[] = {
        NULL,
        "",
        "not json",
        "[\"user:1\"]",
        "{\"tags\":[]}",
        "{\"tags\":\"user:1\"}",
        "{\"tag\":[\"user:1\"]}",
        "{\"tags\":[\"user:1\", 7]}",
        "{\"tags\":[\"\"]}",
        "{\"tags\":[\"a\\nb\"]}",
        "{\"tags\":[\"a\"],\"tags\":[\"b\"]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (notify_parse(bad[i], &msg) != -1)
            fail_msg("payload %zu (%s) must be refused", i, bad[i] ? bad[i] : "NULL");
        assert_int_equal(msg.ntags, 0);
    }
}

static void test_notify_bounds(void **state)
{
    (void)state;
    char big[NOTIFY_MAX_PAYLOAD + 64];
    size_t o = 0;

    /* 257 tags: one too many */
    o += (size_t)snprintf(big + o, sizeof(big) - o, "{\"tags\":[");
    for (int i = 0; i <= NOTIFY_MAX_TAGS; i++)
        o += (size_t)snprintf(big + o, sizeof(big) - o, "%s\"t%d\"", i ? "," : "", i);
    snprintf(big + o, sizeof(big) - o, "]}");
    assert_int_equal(notify_parse(big, &msg), -1);

    /* a tag of 257 bytes */
    memset(big, 0, sizeof(big));
    strcpy(big, "{\"tags\":[\"");
    memset(big + strlen(big), 'x', NOTIFY_MAX_TAG_LEN + 1);
    strcat(big, "\"]}");
    assert_int_equal(notify_parse(big, &msg), -1);

    /* over PostgreSQL's payload limit */
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "{\"tags\":[\"a\"]}", 14);
    assert_int_equal(notify_parse(big, &msg), -1);
}

/* tx names the transaction ("<txid>.<start in µs>"); an older trigger
 * sends none, and anything but a short string of [0-9A-Za-z._-] counts as
 * none, so the tags are still bumped, only not once between instances. */
static void test_notify_transaction_name(void **state)
{
    static const char *none[] = {
        "{\"tags\":[\"user:1\"]}",
        "{\"tags\":[\"user:1\"],\"tx\":7}", /* a number: not what our trigger sends */
        "{\"tags\":[\"user:1\"],\"tx\":\"\"}",
        "{\"tags\":[\"user:1\"],\"tx\":\"7/8\"}", /* '/' ends it in a marker key */
        "{\"tags\":[\"user:1\"],\"tx\":\"7 8\"}",
        "{\"tags\":[\"user:1\"],\"tx\":\"7:8\"}",
        "{\"tags\":[\"user:1\"],\"tx\":null}",
        "{\"tags\":[\"user:1\"],\"tx\":\"12345678901234567890123456789012345678901234567890"
        "123456789012345\"}", /* 65 bytes */
    };
    (void)state;
    assert_int_equal(notify_parse("{\"tags\":[\"user:1\"],\"tx\":\"7821.1700000000120004\"}", &msg),
                     0);
    assert_int_equal(msg.txlen, 21);
    assert_string_equal(msg.tx, "7821.1700000000120004");
    assert_int_equal(notify_parse("{\"tags\":[\"user:1\"],\"tx\":\"123456789012345678901234567890"
                                  "12345678901234567890123456789_-.aZ\"}",
                                  &msg),
                     0);
    assert_int_equal(msg.txlen, 64); /* the longest */
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        assert_int_equal(notify_parse("{\"tags\":[\"user:1\"],\"tx\":\"9\"}", &msg), 0);
        assert_int_equal(msg.txlen, 1);
        assert_int_equal(notify_parse(none[i], &msg), 0);
        assert_int_equal(msg.txlen, 0);
        assert_string_equal(msg.tx, "");
    }
    /* a refused payload leaves no tx behind */
    assert_int_equal(notify_parse("{\"tags\":[\"user:1\"],\"tx\":\"9\"}", &msg), 0);
    assert_int_equal(notify_parse("{\"tx\":\"9\"}", &msg), -1);
    assert_int_equal(msg.txlen, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_parses_tags_and_timestamp),
        cmocka_unit_test(test_notify_refuses_what_does_not_name_its_tags),
        cmocka_unit_test(test_notify_transaction_name),
        cmocka_unit_test(test_notify_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
