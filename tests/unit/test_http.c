/*
 * test_http.c - unit tests for http.c: methods, Allow header, percent
 * decoding, query iteration (including its bound), status texts and error
 * codes, JSON error bodies, If-None-Match and Content-Type checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http.h"

#include <stdio.h>
#include <string.h>

static void test_method_parse_exact_upper_case(void **state)
{
    (void)state;
    assert_int_equal(http_method_parse("GET"), RC_GET);
    assert_int_equal(http_method_parse("HEAD"), RC_HEAD);
    assert_int_equal(http_method_parse("POST"), RC_POST);
    assert_int_equal(http_method_parse("PUT"), RC_PUT);
    assert_int_equal(http_method_parse("PATCH"), RC_PATCH);
    assert_int_equal(http_method_parse("DELETE"), RC_DELETE);
    assert_int_equal(http_method_parse("get"), 0);
    assert_int_equal(http_method_parse("GETX"), 0);
    assert_int_equal(http_method_parse("OPTIONS"), 0);
    assert_int_equal(http_method_parse(""), 0);
    assert_int_equal(http_method_parse(NULL), 0);
}

static void test_allow_header_fixed_order(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(http_allow_header(RC_DELETE | RC_GET | RC_PATCH | RC_HEAD, out, sizeof(out)),
                     (int)strlen("GET, HEAD, PATCH, DELETE"));
    assert_string_equal(out, "GET, HEAD, PATCH, DELETE");
    assert_int_equal(http_allow_header(RC_PUT | RC_POST, out, sizeof(out)), 9);
    assert_string_equal(out, "POST, PUT");
    assert_int_equal(http_allow_header(0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    /* Exactly fits "GET, HEAD" + NUL; one byte less fails. */
    assert_int_equal(http_allow_header(RC_GET | RC_HEAD, out, 10), 9);
    assert_int_equal(http_allow_header(RC_GET | RC_HEAD, out, 9), -1);
    assert_string_equal(out, "");
}

static void test_pct_decode_cases(void **state)
{
    char out[32];
    (void)state;
    assert_int_equal(http_pct_decode("a%20b", 5, out, sizeof(out), false), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(http_pct_decode("%2f%2F", 6, out, sizeof(out), false), 2);
    assert_string_equal(out, "//");
    assert_int_equal(http_pct_decode("a+b", 3, out, sizeof(out), false), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(http_pct_decode("a+b", 3, out, sizeof(out), true), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(http_pct_decode("%2B", 3, out, sizeof(out), true), 1);
    assert_string_equal(out, "+");
    assert_int_equal(http_pct_decode("%C3%A9", 6, out, sizeof(out), false), 2);
    assert_string_equal(out, "\xc3\xa9");
    assert_int_equal(http_pct_decode("", 0, out, sizeof(out), false), 0);
    assert_string_equal(out, "");
    /* Only n bytes are read, even when more follow. */
    assert_int_equal(http_pct_decode("abc%41", 3, out, sizeof(out), false), 3);
    assert_string_equal(out, "abc");

    /* Malformed or truncated escapes. */
    assert_int_equal(http_pct_decode("%", 1, out, sizeof(out), false), -1);
    assert_int_equal(http_pct_decode("%4", 2, out, sizeof(out), false), -1);
    assert_int_equal(http_pct_decode("ab%4", 4, out, sizeof(out), false), -1);
    assert_int_equal(http_pct_decode("%zz", 3, out, sizeof(out), false), -1);
    assert_int_equal(http_pct_decode("%4g", 3, out, sizeof(out), false), -1);
    assert_int_equal(http_pct_decode("%g4", 3, out, sizeof(out), false), -1);
    /* A truncated escape at the very end. */
    assert_int_equal(http_pct_decode("%41%4", 5, out, sizeof(out), false), -1);
    /* Decoded or raw NUL. */
    assert_int_equal(http_pct_decode("a%00b", 5, out, sizeof(out), false), -1);
    assert_int_equal(http_pct_decode("a\0b", 3, out, sizeof(out), false), -1);

    /* Output bounds: outsz counts the NUL. */
    assert_int_equal(http_pct_decode("abcd", 4, out, 5, false), 4);
    assert_int_equal(http_pct_decode("abcd", 4, out, 4, false), -1);
    assert_int_equal(http_pct_decode("%41%42", 6, out, 3, false), 2);
    assert_int_equal(http_pct_decode("a", 1, out, 0, false), -1);
}

struct pair {
    const char *name;
    const char *value;
};

static void assert_pairs(const char *query, const struct pair *want, size_t nwant)
{
    const char *cur = query;
    int count = 0;
    struct http_qpair q;
    size_t i = 0;

    while (http_query_next(&cur, &count, &q)) {
        assert_true(i < nwant);
        assert_int_equal(q.name_len, strlen(want[i].name));
        assert_memory_equal(q.name, want[i].name, q.name_len);
        assert_int_equal(q.value_len, strlen(want[i].value));
        if (q.value_len > 0)
            assert_memory_equal(q.value, want[i].value, q.value_len);
        i++;
    }
    assert_int_equal(i, nwant);
    /* Done stays done. */
    assert_false(http_query_next(&cur, &count, &q));
}

static void test_query_iteration_pairs(void **state)
{
    (void)state;
    const struct pair p1[] = {{"a", "1"}, {"b", "2"}};
    assert_pairs("a=1&b=2", p1, 2);
    const struct pair p2[] = {{"a", "1"}, {"b", ""}, {"c", ""}, {"d", "x=y"}};
    assert_pairs("&&a=1&&b&c=&d=x=y&&", p2, 4);
    const struct pair p3[] = {{"", "v"}, {"a%20b", "c+d"}};
    assert_pairs("=v&a%20b=c+d", p3, 2);
    assert_pairs("", NULL, 0);
    assert_pairs("&&&", NULL, 0);
    assert_pairs(NULL, NULL, 0);
}

static void test_query_iteration_stops_after_256_pairs(void **state)
{
    char query[300 * 8];
    size_t o = 0;
    const char *cur = query;
    int count = 0, seen = 0;
    struct http_qpair q;
    (void)state;

    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(query + o, sizeof(query) - o, "%sk%d=v", i ? "&" : "", i);
    while (http_query_next(&cur, &count, &q)) {
        seen++;
        assert_true(seen <= 256);
    }
    assert_int_equal(seen, 256);
    assert_int_equal(count, 256);
    /* The last pair reported is the 256th. */
    assert_int_equal(q.name_len, 4);
    assert_memory_equal(q.name, "k255", 4);
    assert_false(http_query_next(&cur, &count, &q));
}

static void test_status_texts(void **state)
{
    static const struct {
        int status;
        const char *text;
    } want[] = {
        {200, "OK"},
        {201, "Created"},
        {204, "No Content"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {409, "Conflict"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    (void)state;
    for (size_t i = 0; i < RC_ARRAY_LEN(want); i++)
        assert_string_equal(http_status_text(want[i].status), want[i].text);
    assert_string_equal(http_status_text(299), "Unknown");
}

static void test_error_codes_match_api_md(void **state)
{
    static const struct {
        int status;
        const char *code;
    } want[] = {
        {400, "bad_request"},       {401, "unauthorized"},       {403, "forbidden"},
        {404, "not_found"},         {405, "method_not_allowed"}, {409, "conflict"},
        {413, "payload_too_large"}, {414, "uri_too_long"},       {415, "unsupported_media_type"},
        {422, "unprocessable"},     {429, "too_many_requests"},  {500, "internal"},
        {503, "unavailable"},       {504, "gateway_timeout"},
    };
    (void)state;
    for (size_t i = 0; i < RC_ARRAY_LEN(want); i++)
        assert_string_equal(http_error_code(want[i].status), want[i].code);
    assert_string_equal(http_error_code(200), "internal");
    assert_string_equal(http_error_code(599), "internal");
}

static void test_error_json_exact_output(void **state)
{
    buf b;
    (void)state;
    buf_init(&b, 0);
    assert_int_equal(http_error_json(&b, 404, "user 42 not found"), 0);
    assert_string_equal(b.data, "{\"error\":\"not_found\",\"message\":\"user 42 not found\"}");
    buf_reset(&b);
    assert_int_equal(http_error_json(&b, 400, "say \"hi\"\n\\"), 0);
    assert_string_equal(b.data,
                        "{\"error\":\"bad_request\",\"message\":\"say \\\"hi\\\"\\n\\\\\"}");
    buf_reset(&b);
    /* Appends to what is there; NULL message uses the reason phrase. */
    assert_int_equal(buf_puts(&b, "x"), 0);
    assert_int_equal(http_error_json(&b, 503, NULL), 0);
    assert_string_equal(b.data, "x{\"error\":\"unavailable\",\"message\":\"Service Unavailable\"}");
    buf_free(&b);
}

static void test_error_json_too_small_leaves_buffer_unchanged(void **state)
{
    buf b;
    (void)state;
    buf_init(&b, 20);
    assert_int_equal(buf_puts(&b, "abc"), 0);
    assert_int_equal(http_error_json(&b, 500, "a long message that does not fit"), -1);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "abc", 4);
    buf_free(&b);
}

static void test_etag_matching(void **state)
{
    const char *tag = "\"abc123\"";
    size_t n = strlen(tag);
    (void)state;
    assert_true(http_etag_matches("\"abc123\"", tag, n));
    assert_true(http_etag_matches("*", tag, n));
    assert_true(http_etag_matches("  * ", tag, n));
    assert_true(http_etag_matches("\"x\", \"abc123\"", tag, n));
    assert_true(http_etag_matches("\"x\",\"y\" ,  \"abc123\" ,", tag, n));
    assert_true(http_etag_matches("W/\"abc123\"", tag, n));
    assert_true(http_etag_matches("\"x\", W/\"abc123\"", tag, n));
    assert_true(http_etag_matches("\"abc123\"", "W/\"abc123\"", n + 2));
    /* Junk elements are skipped, not fatal. */
    assert_true(http_etag_matches("bogus, \"abc123\"", tag, n));

    assert_false(http_etag_matches("\"abc124\"", tag, n));
    assert_false(http_etag_matches("\"abc12\"", tag, n));
    assert_false(http_etag_matches("\"abc1234\"", tag, n));
    assert_false(http_etag_matches("abc123", tag, n));
    assert_false(http_etag_matches("\"x\", \"y\"", tag, n));
    assert_false(http_etag_matches("\"abc123", tag, n));
    assert_false(http_etag_matches("w/\"abc\"", "\"abc\"", 5));
    assert_false(http_etag_matches("**", tag, n));
    assert_false(http_etag_matches("", tag, n));
    assert_false(http_etag_matches(NULL, tag, n));
    assert_false(http_etag_matches(",,,", tag, n));
}

static void test_content_type_json(void **state)
{
    (void)state;
    assert_true(http_content_type_is_json("application/json"));
    assert_true(http_content_type_is_json("Application/JSON; charset=utf-8"));
    assert_true(http_content_type_is_json("application/json;charset=UTF-8"));
    assert_true(http_content_type_is_json("  application/json  "));
    assert_true(http_content_type_is_json("application/json ; charset=utf-8"));
    assert_true(http_content_type_is_json("application/vnd.api+json"));
    assert_true(http_content_type_is_json("application/problem+JSON; x=y"));

    assert_false(http_content_type_is_json("text/plain"));
    assert_false(http_content_type_is_json("application/jsonx"));
    assert_false(http_content_type_is_json("application/json x"));
    assert_false(http_content_type_is_json("application/xjson"));
    assert_false(http_content_type_is_json("application/+json"));
    assert_false(http_content_type_is_json("application/json+xml"));
    assert_false(http_content_type_is_json("text/json"));
    assert_false(http_content_type_is_json("applicationx/json"));
    assert_false(http_content_type_is_json("application"));
    assert_false(http_content_type_is_json(""));
    assert_false(http_content_type_is_json(NULL));
}

static void test_head_block(void **state)
{
    struct http_head h = {.n = 0};
    const char *want = "Status: 200 OK\r\nContent-Type: application/json\r\n"
                       "Content-Length: 0\r\nAge: 18446744073709551615\r\n"
                       "X-Extra: a b\r\n\r\n";
    (void)state;

    http_head_status(&h, 200);
    http_head_str(&h, "Content-Type", "application/json");
    http_head_num(&h, "Content-Length", 0);
    http_head_num(&h, "Age", UINT64_MAX);
    http_head_line(&h, "X-Extra: a b");
    assert_int_equal(http_head_end(&h), strlen(want));
    assert_memory_equal(h.data, want, strlen(want));

    h.n = 0;
    http_head_status(&h, 503);
    http_head_num(&h, "Retry-After", 1);
    http_head_end(&h);
    assert_int_equal(h.n, strlen("Status: 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n"));
    assert_memory_equal(h.data, "Status: 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n", h.n);
}

static void test_head_too_long_is_left_out_whole(void **state)
{
    struct http_head h = {.n = 0};
    char big[sizeof(h.data)];
    (void)state;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    http_head_status(&h, 404);
    size_t before = h.n;
    http_head_str(&h, "X-Big", big); /* cannot fit: nothing of it is written */
    assert_int_equal(h.n, before);
    big[sizeof(h.data) - 2 - before - strlen("X-Big: \r\n")] = '\0'; /* fits exactly */
    http_head_str(&h, "X-Big", big);
    assert_int_equal(h.n, sizeof(h.data) - 2);
    http_head_num(&h, "Age", 1); /* full: left out */
    assert_int_equal(http_head_end(&h), sizeof(h.data));
    assert_memory_equal(h.data + sizeof(h.data) - 5, "x\r\n\r\n", 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_parse_exact_upper_case),
        cmocka_unit_test(test_allow_header_fixed_order),
        cmocka_unit_test(test_pct_decode_cases),
        cmocka_unit_test(test_query_iteration_pairs),
        cmocka_unit_test(test_query_iteration_stops_after_256_pairs),
        cmocka_unit_test(test_status_texts),
        cmocka_unit_test(test_error_codes_match_api_md),
        cmocka_unit_test(test_error_json_exact_output),
        cmocka_unit_test(test_error_json_too_small_leaves_buffer_unchanged),
        cmocka_unit_test(test_etag_matching),
        cmocka_unit_test(test_content_type_json),
        cmocka_unit_test(test_head_block),
        cmocka_unit_test(test_head_too_long_is_left_out_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
