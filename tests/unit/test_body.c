/*
 * test_body.c - request body validation: what a client may send to a write
 * route, what becomes of each field (SQL text), and which status and
 * message each mistake gets (400 for unreadable bodies, 422 for fields).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "body.h"
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* params: $1 id (path), then the body fields in this order. */
static const char route_config[] =
    "{\"routes\": [{\"name\": \"things\", \"method\": \"POST\", \"path\": \"/t/{id:int}\","
    " \"params\": ["
    "  {\"name\": \"id\", \"from\": \"path\"},"
    "  {\"name\": \"email\", \"from\": \"body\", \"required\": true, \"max_length\": 320},"
    "  {\"name\": \"name\", \"from\": \"body\", \"min_length\": 2, \"max_length\": 10,"
    "   \"chars\": \"a-z_\"},"
    "  {\"name\": \"plan\", \"from\": \"body\", \"enum\": [\"free\", \"pro\"], \"default\": "
    "\"free\"},"
    "  {\"name\": \"count\", \"from\": \"body\", \"type\": \"int\", \"min\": 1, \"max\": 100},"
    "  {\"name\": \"flag\", \"from\": \"body\", \"type\": \"bool\"},"
    "  {\"name\": \"ratio\", \"from\": \"body\", \"type\": \"number\"},"
    "  {\"name\": \"payload\", \"from\": \"body\", \"type\": \"object\"},"
    "  {\"name\": \"value\", \"from\": \"body\", \"type\": \"any\"}],"
    " \"sql\": \"SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9\"}]}";

enum { P_ID, P_EMAIL, P_NAME, P_PLAN, P_COUNT, P_FLAG, P_RATIO, P_PAYLOAD, P_VALUE };

struct fixture {
    struct rc_config *cfg;
    struct router_match m;
    buf store;
    char errbuf[RC_ERRBUF];
};

static const char *no_env(const char *name)
{
    (void)name;
    return NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->cfg = config_load_string(route_config, "test", no_env, f->errbuf);
    if (f->cfg == NULL)
        fail_msg("config: %s", f->errbuf);
    f->m.route = &f->cfg->routes[0];
    f->m.values[P_ID].s = "7";
    f->m.values[P_ID].len = 1;
    f->m.values[P_ID].present = true;
    buf_init(&f->store, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    buf_free(&f->store);
    config_free(f->cfg);
    free(f);
    return 0;
}

static int parse(struct fixture *f, const char *body)
{
    f->errbuf[0] = '\0';
    return body_parse(&f->m, body, strlen(body), &f->store, f->errbuf);
}

/* body must fail with `status` and a message containing `needle`. */
static void expect_fail(struct fixture *f, const char *body, int status, const char *needle)
{
    int rc = parse(f, body);
    if (rc != status || strstr(f->errbuf, needle) == NULL)
        fail_msg("body %.60s: expected %d with \"%s\", got %d \"%s\"", body, status, needle, rc,
                 f->errbuf);
}

static void assert_value(const struct rc_value *v, const char *text)
{
    if (!v->present)
        fail_msg("expected value \"%s\", got absent", text);
    if (v->len != strlen(text) || memcmp(v->s, text, v->len) != 0)
        fail_msg("expected value \"%s\", got \"%.*s\"", text, (int)v->len, v->s);
    assert_int_equal(v->s[v->len], '\0'); /* libpq wants C strings */
}

static void test_valid_body_fills_every_field_as_sql_text(void **state)
{
    struct fixture *f = *state;
    /* A large payload makes the store grow (move) after the first values. */
    char body[8192];
    char big[4096];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(body, sizeof(body),
             "{\"email\": \"a@b.example\", \"name\": \"bob_b\", \"plan\": \"pro\", \"count\": 42,"
             " \"flag\": true, \"ratio\": 0.1, \"payload\": {\"k\": [1, 2.5, null, \"%s\"]},"
             " \"value\": \"caf\\u00e9\"}",
             big);
    assert_int_equal(parse(f, body), 0);
    assert_value(&f->m.values[P_ID], "7"); /* not a body param: untouched */
    assert_value(&f->m.values[P_EMAIL], "a@b.example");
    assert_value(&f->m.values[P_NAME], "bob_b");
    assert_value(&f->m.values[P_PLAN], "pro");
    assert_value(&f->m.values[P_COUNT], "42");
    assert_value(&f->m.values[P_FLAG], "true");
    assert_value(&f->m.values[P_RATIO], "0.1");
    char want[4200];
    snprintf(want, sizeof(want), "{\"k\":[1,2.5,null,\"%s\"]}", big);
    assert_value(&f->m.values[P_PAYLOAD], want);
    assert_value(&f->m.values[P_VALUE], "\"caf\xc3\xa9\"");
}

static void test_absent_optional_is_null_and_default_is_filled(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "{\"email\": \"a@b\"}"), 0);
    assert_value(&f->m.values[P_EMAIL], "a@b");
    assert_value(&f->m.values[P_PLAN], "free");
    assert_false(f->m.values[P_NAME].present);
    assert_false(f->m.values[P_COUNT].present);
    assert_false(f->m.values[P_PAYLOAD].present);
    assert_false(f->m.values[P_VALUE].present);
}

static void test_null_is_absent_except_for_any(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "{\"email\": \"a@b\", \"plan\": null, \"count\": null,"
                              " \"value\": null}"),
                     0);
    assert_value(&f->m.values[P_PLAN], "free");
    assert_false(f->m.values[P_COUNT].present);
    assert_value(&f->m.values[P_VALUE], "null");
    expect_fail(f, "{\"email\": null}", 422, "email: required");
}

static void test_object_and_any_pass_through_as_compact_json(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "{\"email\": \"e\", \"payload\": { \"b\" : 1, \"a\" : {\"c\": [ ]} },"
                              " \"value\": [1, {\"x\": \"/\"}]}"),
                     0);
    assert_value(&f->m.values[P_PAYLOAD], "{\"b\":1,\"a\":{\"c\":[]}}"); /* key order kept */
    assert_value(&f->m.values[P_VALUE], "[1,{\"x\":\"/\"}]");
    assert_int_equal(parse(f, "{\"email\": \"e\", \"value\": 12}"), 0);
    assert_value(&f->m.values[P_VALUE], "12");
}

static void test_unknown_field_is_422_naming_it(void **state)
{
    struct fixture *f = *state;
    expect_fail(f, "{\"email\": \"e\", \"emial\": \"x\"}", 422, "emial: unknown field");
    expect_fail(f, "{\"email\": \"e\", \"id\": 8}", 422, "id: unknown field"); /* a path param */
    assert_non_null(strstr(f->errbuf, "email, name, plan"));
}

static void test_wrong_types_are_422(void **state)
{
    struct fixture *f = *state;
    expect_fail(f, "{\"email\": \"e\", \"count\": \"5\"}", 422,
                "count: expected an integer, got a string");
    expect_fail(f, "{\"email\": \"e\", \"count\": 5.0}", 422, "count: expected an integer");
    expect_fail(f, "{\"email\": \"e\", \"payload\": \"{}\"}", 422,
                "payload: expected an object, got a string");
    expect_fail(f, "{\"email\": \"e\", \"payload\": [1]}", 422, "payload: expected an object");
    expect_fail(f, "{\"email\": 5}", 422, "email: expected a string, got an integer");
    expect_fail(f, "{\"email\": \"e\", \"flag\": 1}", 422, "flag: expected true or false");
    expect_fail(f, "{\"email\": \"e\", \"ratio\": \"1\"}", 422, "ratio: expected a number");
}

static void test_missing_required_is_422(void **state)
{
    struct fixture *f = *state;
    expect_fail(f, "{}", 422, "email: required");
    expect_fail(f, "{\"name\": \"bob\"}", 422, "email: required");
}

static void test_string_rules_are_422(void **state)
{
    struct fixture *f = *state;
    char body[512];
    char email[322];
    memset(email, 'e', 321);
    email[321] = '\0';
    snprintf(body, sizeof(body), "{\"email\": \"%s\"}", email);
    expect_fail(f, body, 422, "email: expected a string of at most 320 bytes");
    email[320] = '\0';
    snprintf(body, sizeof(body), "{\"email\": \"%s\"}", email);
    assert_int_equal(parse(f, body), 0);

    expect_fail(f, "{\"email\": \"e\", \"name\": \"b\"}", 422,
                "name: expected a string of at least 2 bytes");
    expect_fail(f, "{\"email\": \"e\", \"name\": \"Bob\"}", 422,
                "name: character 'B' (byte 0) is not allowed");
    expect_fail(f, "{\"email\": \"e\", \"name\": \"b\\u00e9b\"}", 422,
                "name: byte 0xc3 (at 1) is not allowed");
    expect_fail(f, "{\"email\": \"e\", \"plan\": \"gold\"}", 422,
                "plan: expected one of free, pro");
}

static void test_int_bounds_are_422(void **state)
{
    struct fixture *f = *state;
    expect_fail(f, "{\"email\": \"e\", \"count\": 0}", 422,
                "count: expected an integer from 1 to 100, got 0");
    expect_fail(f, "{\"email\": \"e\", \"count\": 101}", 422, "got 101");
    expect_fail(f, "{\"email\": \"e\", \"count\": 99999999999999999999}", 400, "not valid JSON");
}

static void test_unreadable_bodies_are_400(void **state)
{
    struct fixture *f = *state;
    expect_fail(f, "", 400, "request body is empty");
    expect_fail(f, "[1, 2]", 400, "request body must be a JSON object");
    expect_fail(f, "\"email\"", 400, "not valid JSON");
    expect_fail(f, "{\"email\": ", 400, "not valid JSON");
    expect_fail(f, "{\"email\": \"e\"} x", 400, "not valid JSON");
    expect_fail(f, "{\"email\": \"e\"}{}", 400, "not valid JSON");
    expect_fail(f, "{\"email\": \"e\", \"email\": \"f\"}", 400, "duplicate");
    expect_fail(f, "{\"email\": \"a\xff\"}", 400, "not valid JSON");
    expect_fail(f, "{\"email\": \"a\\u0000b\"}", 400, "not valid JSON");

    const char nul_body[] = "{\"email\": \"e\"}\0";
    f->errbuf[0] = '\0';
    assert_int_equal(body_parse(&f->m, nul_body, sizeof(nul_body) - 1, &f->store, f->errbuf), 400);
}

static void test_deep_nesting_is_an_error_not_a_crash(void **state)
{
    struct fixture *f = *state;
    size_t depth = 100000;
    char *body = malloc(depth * 2 + 64);
    size_t o = (size_t)sprintf(body, "{\"email\": \"e\", \"value\": ");
    memset(body + o, '[', depth);
    o += depth;
    memset(body + o, ']', depth);
    o += depth;
    strcpy(body + o, "}");
    expect_fail(f, body, 400, "not valid JSON");

    /* Moderate nesting inside an object field is fine. */
    o = (size_t)sprintf(body, "{\"email\": \"e\", \"value\": ");
    memset(body + o, '[', 500);
    o += 500;
    memset(body + o, ']', 500);
    o += 500;
    strcpy(body + o, "}");
    assert_int_equal(parse(f, body), 0);
    assert_int_equal(f->m.values[P_VALUE].len, 1000);
    free(body);
}

static void test_store_cap_is_respected(void **state)
{
    struct fixture *f = *state;
    buf_free(&f->store);
    buf_init(&f->store, 8);
    expect_fail(f, "{\"email\": \"0123456789\"}", 400, "too large");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_valid_body_fills_every_field_as_sql_text),
        T(test_absent_optional_is_null_and_default_is_filled),
        T(test_null_is_absent_except_for_any),
        T(test_object_and_any_pass_through_as_compact_json),
        T(test_unknown_field_is_422_naming_it),
        T(test_wrong_types_are_422),
        T(test_missing_required_is_422),
        T(test_string_rules_are_422),
        T(test_int_bounds_are_422),
        T(test_unreadable_bodies_are_400),
        T(test_deep_nesting_is_an_error_not_a_crash),
        T(test_store_cap_is_respected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
