/*
 * test_resp.c - resp_command (resp.h) writes exactly the bytes hiredis's
 * redisFormatCommandArgv writes, for any argument bytes and lengths
 * (empty, binary, CRLF inside, lengths across digit boundaries); appends
 * after what the buffer holds; refuses argc < 1 and a full cap without
 * touching the buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/resp.h"

#include <hiredis/hiredis.h>

/* resp_command(argv) appended to `before` equals before + hiredis's bytes. */
static void assert_same_as_hiredis(const char *before, int argc, const char **argv,
                                   const size_t *lens)
{
    char *want = NULL;
    int n = redisFormatCommandArgv(&want, argc, argv, lens);
    size_t blen = strlen(before);
    buf b;

    assert_true(n > 0);
    buf_init(&b, 0);
    assert_int_equal(buf_puts(&b, before), 0);
    assert_int_equal(resp_command(&b, argc, argv, lens), 0);
    assert_int_equal(b.len, blen + (size_t)n);
    assert_memory_equal(b.data, before, blen);
    assert_memory_equal(b.data + blen, want, (size_t)n);
    assert_int_equal(b.data[b.len], '\0');
    redisFreeCommand(want);
    buf_free(&b);
}

static void test_get_and_mget_match_hiredis(void **state)
{
    (void)state;
    const char *get[] = {"GET", "rc:e:user:id=42"};
    size_t get_l[] = {3, 15};
    const char *mget[] = {"MGET", "rc:tag:user:42", "rc:tag:*"};
    size_t mget_l[] = {4, 14, 8};

    assert_same_as_hiredis("", 2, get, get_l);
    assert_same_as_hiredis("*1\r\n$4\r\nPING\r\n", 3, mget, mget_l);
}

static void test_binary_empty_and_crlf_arguments_match_hiredis(void **state)
{
    (void)state;
    const char bin[] = {'a', '\0', '\r', '\n', '$', '*', (char)0xff};
    const char *argv[] = {"SET", "", bin, "x\r\ny"};
    size_t lens[] = {3, 0, sizeof(bin), 4};

    assert_same_as_hiredis("", 4, argv, lens);
}

static void test_lengths_across_digit_boundaries_match_hiredis(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65535, 100000};
    char *big = malloc(100000);
    const char *argv[13];
    size_t lens[13];

    assert_non_null(big);
    memset(big, 'v', 100000);
    argv[0] = "MSET";
    lens[0] = 4;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        argv[1] = big;
        lens[1] = sizes[i];
        assert_same_as_hiredis("", 2, argv, lens); /* one argument of this size */
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        argv[i + 1] = big;
        lens[i + 1] = sizes[i];
    }
    assert_same_as_hiredis("", 13, argv, lens); /* all of them, argc with two digits */
    free(big);
}

static void test_many_arguments_match_hiredis(void **state)
{
    (void)state;
    enum { N = 1000 };
    const char **argv = calloc(N, sizeof(*argv));
    size_t *lens = calloc(N, sizeof(*lens));

    assert_non_null(argv);
    assert_non_null(lens);
    for (int i = 0; i < N; i++) {
        argv[i] = "k";
        lens[i] = 1;
    }
    assert_same_as_hiredis("", N, argv, lens);
    free(argv);
    free(lens);
}

static void test_appends_after_content_across_a_reallocation(void **state)
{
    (void)state;
    char before[300];
    const char *argv[] = {"SET", "rc:e:user:id=42", "v"};
    size_t lens[] = {3, 15, 1};

    /* More than the buffer's first block, so the command lands in a
     * buffer that grew (and moved) after the content before it. */
    memset(before, 'p', sizeof(before) - 1);
    before[sizeof(before) - 1] = '\0';
    assert_same_as_hiredis(before, 3, argv, lens);
}

static void test_a_length_that_overflows_is_refused(void **state)
{
    (void)state;
    const char *argv[] = {"SET", "k", "v"};
    size_t lens[] = {3, 1, SIZE_MAX - 4};
    buf b;

    /* Refused from the lengths alone: nothing is read past argv[2][0]. */
    buf_init(&b, 0);
    assert_int_equal(buf_puts(&b, "abc"), 0);
    assert_int_equal(resp_command(&b, 3, argv, lens), -1);
    lens[2] = SIZE_MAX / 2;
    lens[1] = SIZE_MAX / 2;
    assert_int_equal(resp_command(&b, 3, argv, lens), -1);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    buf_free(&b);
}

static void test_no_arguments_and_a_full_cap_leave_the_buffer_alone(void **state)
{
    (void)state;
    const char *argv[] = {"GET", "key"};
    size_t lens[] = {3, 3};
    buf b;

    buf_init(&b, 0);
    assert_int_equal(buf_puts(&b, "abc"), 0);
    assert_int_equal(resp_command(&b, 0, argv, lens), -1);
    assert_int_equal(b.len, 3);

    /* "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n" is 22 bytes: a cap of 24 leaves 21 after "abc". */
    buf_free(&b);
    buf_init(&b, 24);
    assert_int_equal(buf_puts(&b, "abc"), 0);
    assert_int_equal(resp_command(&b, 2, argv, lens), -1);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    /* Exactly enough room: accepted (the estimate is exact, not padded). */
    buf_free(&b);
    buf_init(&b, 25);
    assert_int_equal(buf_puts(&b, "abc"), 0);
    assert_int_equal(resp_command(&b, 2, argv, lens), 0);
    assert_int_equal(b.len, 25);
    assert_string_equal(b.data + 3, "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_mget_match_hiredis),
        cmocka_unit_test(test_binary_empty_and_crlf_arguments_match_hiredis),
        cmocka_unit_test(test_lengths_across_digit_boundaries_match_hiredis),
        cmocka_unit_test(test_many_arguments_match_hiredis),
        cmocka_unit_test(test_appends_after_content_across_a_reallocation),
        cmocka_unit_test(test_a_length_that_overflows_is_refused),
        cmocka_unit_test(test_no_arguments_and_a_full_cap_leave_the_buffer_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
