/*
 * test_redis_url.c - the Redis URL syntax (redis_url.h): every accepted
 * form, the defaults, percent-decoding, and the errors, which must say
 * what is wrong and never contain the password.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cache/redis_url.h"

static struct redis_url parse_ok(const char *url)
{
    struct redis_url u;
    char err[RC_ERRBUF] = "";
    if (redis_url_parse(url, &u, err) != 0)
        fail_msg("expected \"%s\" to parse, got \"%s\"", url, err);
    return u;
}

static void expect_error(const char *url, const char *needle)
{
    struct redis_url u;
    char err[RC_ERRBUF] = "";
    if (redis_url_parse(url, &u, err) == 0)
        fail_msg("expected \"%s\" to be refused", url);
    if (strstr(err, needle) == NULL)
        fail_msg("\"%s\": expected an error containing \"%s\", got \"%s\"", url, needle, err);
    if (strstr(err, "s3cret") != NULL)
        fail_msg("\"%s\": the error leaks the password: \"%s\"", url, err);
}

static void test_tcp_defaults(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://cache.example");
    assert_int_equal(u.transport, REDIS_TCP);
    assert_false(u.tls);
    assert_string_equal(u.host, "cache.example");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_false(u.has_password);
    assert_string_equal(u.user, "");
}

static void test_tcp_full_with_acl_user(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://app:s3cret@10.0.0.5:6380/3");
    assert_string_equal(u.host, "10.0.0.5");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "s3cret");
    assert_true(u.has_password);
}

static void test_password_only_is_default_user(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://:s3cret@localhost/");
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s3cret");
    assert_int_equal(u.db, 0);
}

static void test_percent_decoding_in_credentials(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://us%40er:p%3Aw%2Fd%25@h:1");
    assert_string_equal(u.user, "us@er");
    assert_string_equal(u.password, "p:w/d%");
}

static void test_rediss_is_tls(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("REDISS://h.example:6390/1");
    assert_true(u.tls);
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 1);
}

static void test_ipv6_in_brackets(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://[::1]:7000");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    char d[64];
    redis_url_describe(&u, d, sizeof(d));
    assert_string_equal(d, "[::1]:7000");
}

static void test_db_query_parameter(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("redis://h?db=9");
    assert_int_equal(u.db, 9);
}

static void test_unix_forms(void **state)
{
    (void)state;
    struct redis_url u = parse_ok("unix:/run/redis/redis.sock");
    assert_int_equal(u.transport, REDIS_UNIX);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    u = parse_ok("unix:///tmp/r.sock?db=2");
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_int_equal(u.db, 2);
    u = parse_ok("unix://app:s3cret@/tmp/r.sock");
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "s3cret");
    char d[64];
    redis_url_describe(&u, d, sizeof(d));
    assert_string_equal(d, "unix:/tmp/r.sock");
}

static void test_errors_name_the_problem(void **state)
{
    (void)state;
    expect_error("", "empty");
    expect_error("http://h", "expected redis://");
    expect_error("redis://", "expected a host");
    expect_error("redis://h:0", "port from 1 to 65535");
    expect_error("redis://h:70000", "port from 1 to 65535");
    expect_error("redis://h:12x", "port from 1 to 65535");
    expect_error("redis://h/abc", "database number");
    expect_error("redis://h/-1", "database number");
    expect_error("redis://h?foo=1", "unknown query parameter");
    expect_error("redis://h?db=x", "db must be an integer");
    expect_error("redis://app@h", "needs a password");
    expect_error("redis://app:@h", "needs a password");
    expect_error("redis://:s3cret%zz@h", "bad password");
    expect_error("redis://[::1:6379", "IPv6");
    expect_error("redis://h o", "space");
    expect_error("redis://ho$t", "bad character");
    expect_error("unix:relative.sock", "absolute socket path");
    expect_error("unix://host/tmp/r.sock", "takes no host");
    expect_error("redis://h#frag", "'#'");
}

static void test_too_long_parts_are_refused_not_truncated(void **state)
{
    (void)state;
    char url[1200];
    memset(url, 0, sizeof(url));
    strcpy(url, "unix:/");
    memset(url + 6, 'a', 200);
    expect_error(url, "socket path longer than");
    strcpy(url, "redis://");
    memset(url + 8, 'h', 300);
    expect_error(url, "host name longer than");
    strcpy(url, "redis://:");
    memset(url + 9, 'p', 600);
    strcat(url, "@h");
    expect_error(url, "bad password");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_defaults),
        cmocka_unit_test(test_tcp_full_with_acl_user),
        cmocka_unit_test(test_password_only_is_default_user),
        cmocka_unit_test(test_percent_decoding_in_credentials),
        cmocka_unit_test(test_rediss_is_tls),
        cmocka_unit_test(test_ipv6_in_brackets),
        cmocka_unit_test(test_db_query_parameter),
        cmocka_unit_test(test_unix_forms),
        cmocka_unit_test(test_errors_name_the_problem),
        cmocka_unit_test(test_too_long_parts_are_refused_not_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
