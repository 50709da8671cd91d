/* test_buf.c - growth, the hard cap, and JSON string escaping of buf.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

/* Assert that b holds exactly the bytes of lit (a string literal). */
#define assert_buf_eq(b, lit)                                                                      \
    do {                                                                                           \
        assert_int_equal((b)->len, sizeof(lit) - 1);                                               \
        assert_memory_equal((b)->data, lit, sizeof(lit) - 1);                                      \
        assert_int_equal((b)->data[(b)->len], '\0');                                               \
    } while (0)

static void test_buf_append_grows_past_initial_allocation(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(buf_putc(&b, (char)('a' + i % 26)), 0);
    assert_int_equal(b.len, 10000);
    assert_true(b.alloc > b.len);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    assert_int_equal(b.data[b.len], '\0');
    buf_free(&b);
    assert_null(b.data);
}

static void test_buf_reset_keeps_allocation(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_puts(&b, "hello world"), 0);
    char *data = b.data;
    size_t alloc = b.alloc;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.alloc, alloc);
    assert_string_equal(b.data, "");
    buf_free(&b);
}

static void test_buf_cap_refusal_leaves_buffer_unchanged(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "12345678"), 0);
    assert_int_equal(buf_puts(&b, "abc"), -1);
    assert_buf_eq(&b, "12345678");
    assert_int_equal(buf_printf(&b, "%d", 123), -1);
    assert_buf_eq(&b, "12345678");
    assert_int_equal(buf_reserve(&b, 3), -1);
    assert_int_equal(buf_puts(&b, "90"), 0); /* exactly at the cap is fine */
    assert_buf_eq(&b, "1234567890");
    assert_int_equal(buf_putc(&b, 'x'), -1);
    assert_buf_eq(&b, "1234567890");
    assert_int_equal(buf_append(&b, "", 0), 0);
    buf_free(&b);
}

static void test_buf_reserve_rejects_size_overflow(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_puts(&b, "x"), 0);
    assert_int_equal(buf_reserve(&b, SIZE_MAX), -1);
    assert_int_equal(buf_reserve(&b, SIZE_MAX - 1), -1);
    assert_buf_eq(&b, "x");
    buf_free(&b);
}

static void test_buf_printf_appends_long_output(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_printf(&b, "%s=%d;", "a", 1), 0);
    char big[300];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, 4 + 2 + 299);
    assert_memory_equal(b.data, "a=1;[", 5);
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(strlen(b.data), b.len);
    buf_free(&b);
}

static void check_json(const char *in, size_t n, const char *want)
{
    buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_json_str(&b, in, n), 0);
    if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0)
        fail_msg("json of %zu bytes: expected [%s], got [%s]", n, want, b.data);
    buf_free(&b);
}

static void test_buf_json_str_escapes_quote_backslash_and_controls(void **state)
{
    (void)state;
    check_json("", 0, "\"\"");
    check_json("plain", 5, "\"plain\"");
    check_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    check_json("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    check_json("\x01\x1f", 2, "\"\\u0001\\u001f\"");
    check_json("a\0b", 3, "\"a\\u0000b\"");
    check_json("\x7f/", 2, "\"\x7f/\"");
}

static void test_buf_json_str_passes_valid_utf8(void **state)
{
    (void)state;
    const char *s = "\xc3\xa9"          /* U+00E9 */
                    "\xe2\x82\xac"      /* U+20AC */
                    "\xed\x9f\xbf"      /* U+D7FF, last before surrogates */
                    "\xee\x80\x80"      /* U+E000, first after */
                    "\xf0\x9f\x98\x80"  /* U+1F600 */
                    "\xf4\x8f\xbf\xbf"; /* U+10FFFF */
    buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_json_str(&b, s, strlen(s)), 0);
    assert_int_equal(b.len, strlen(s) + 2);
    assert_memory_equal(b.data + 1, s, strlen(s));
    buf_free(&b);
}

#define FFFD "\xef\xbf\xbd"

static void test_buf_json_str_replaces_each_invalid_byte(void **state)
{
    (void)state;
    check_json("\x80", 1, "\"" FFFD "\"");                            /* lone continuation */
    check_json("\xc0\x80", 2, "\"" FFFD FFFD "\"");                   /* overlong NUL */
    check_json("\xc1\xbf", 2, "\"" FFFD FFFD "\"");                   /* overlong */
    check_json("\xe0\x80\xaf", 3, "\"" FFFD FFFD FFFD "\"");          /* overlong 3-byte */
    check_json("\xf0\x80\x80\xaf", 4, "\"" FFFD FFFD FFFD FFFD "\""); /* overlong 4-byte */
    check_json("\xed\xa0\x80", 3, "\"" FFFD FFFD FFFD "\"");          /* surrogate D800 */
    check_json("\xed\xbf\xbf", 3, "\"" FFFD FFFD FFFD "\"");          /* surrogate DFFF */
    check_json("\xf4\x90\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\""); /* U+110000 */
    check_json("\xf5\x80", 2, "\"" FFFD FFFD "\"");                   /* lead over F4 */
    check_json("\xff\xfe", 2, "\"" FFFD FFFD "\"");
    check_json("a\xe2\x82", 3, "\"a" FFFD FFFD "\""); /* truncated at end */
    check_json("\xe2\x82"
               "b",
               3, "\"" FFFD FFFD "b\""); /* truncated mid */
    check_json("\xc3\xa9\xc3", 3, "\"\xc3\xa9" FFFD "\"");
}

static void test_buf_json_str_cap_refusal_leaves_buffer_unchanged(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 12);
    assert_int_equal(buf_puts(&b, "[1,"), 0);
    assert_int_equal(buf_json_str(&b, "\n\n\n\n", 4), -1); /* 10 bytes, 9 left */
    assert_int_equal(buf_json_str(&b, "\x01\x02", 2), -1); /* 14 bytes */
    assert_buf_eq(&b, "[1,");
    assert_int_equal(buf_json_str(&b, "\n\n", 2), 0); /* 6 bytes fit */
    assert_buf_eq(&b, "[1,\"\\n\\n\"");
    buf_free(&b);
}

/* Minimal strict checker: a JSON string literal whose content is valid
 * UTF-8 with no raw control characters and only known escapes. */
static int valid_json_string(const unsigned char *p, size_t n)
{
    if (n < 2 || p[0] != '"' || p[n - 1] != '"')
        return 0;
    for (size_t i = 1; i < n - 1;) {
        unsigned char c = p[i];
        if (c < 0x20 || c == '"')
            return 0;
        if (c == '\\') {
            if (i + 1 >= n - 1)
                return 0;
            unsigned char e = p[i + 1];
            if (e == 'u') {
                if (i + 5 >= n - 1)
                    return 0;
                i += 6;
            } else if (strchr("\"\\/bfnrt", e) && e) {
                i += 2;
            } else {
                return 0;
            }
            continue;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c < 0xC2 || c > 0xF4 || i + need > n - 1)
            return 0;
        uint32_t cp = c & (need == 2 ? 0x1F : need == 3 ? 0x0F : 0x07);
        for (size_t k = 1; k < need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += need;
    }
    return 1;
}

static void test_buf_json_str_output_valid_for_random_bytes(void **state)
{
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    unsigned char in[64];
    buf b;
    buf_init(&b, 0);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(iter % 64);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* Bias toward bytes that start or continue UTF-8 sequences. */
            in[i] =
                (x & 3) == 0 ? (unsigned char)(0x80 | (x >> 8 & 0x7F)) : (unsigned char)(x >> 8);
        }
        buf_reset(&b);
        assert_int_equal(buf_json_str(&b, (const char *)in, n), 0);
        if (!valid_json_string((const unsigned char *)b.data, b.len))
            fail_msg("iteration %d produced invalid JSON string", iter);
    }
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_grows_past_initial_allocation),
        cmocka_unit_test(test_buf_reset_keeps_allocation),
        cmocka_unit_test(test_buf_cap_refusal_leaves_buffer_unchanged),
        cmocka_unit_test(test_buf_reserve_rejects_size_overflow),
        cmocka_unit_test(test_buf_printf_appends_long_output),
        cmocka_unit_test(test_buf_json_str_escapes_quote_backslash_and_controls),
        cmocka_unit_test(test_buf_json_str_passes_valid_utf8),
        cmocka_unit_test(test_buf_json_str_replaces_each_invalid_byte),
        cmocka_unit_test(test_buf_json_str_cap_refusal_leaves_buffer_unchanged),
        cmocka_unit_test(test_buf_json_str_output_valid_for_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
