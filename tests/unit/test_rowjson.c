/* test_rowjson.c - query results to JSON, without a database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rowjson.h"

#include <string.h>

/* A fake result: ncols columns, rows of text values (NULL = SQL NULL). */
struct fake {
    size_t nrows, ncols;
    const char *const *names;
    const unsigned *oids;
    const char *const *cells; /* row-major */
};

static const char *f_name(void *ctx, size_t col)
{
    return ((struct fake *)ctx)->names[col];
}

static unsigned f_type(void *ctx, size_t col)
{
    return ((struct fake *)ctx)->oids[col];
}

static const char *f_value(void *ctx, size_t row, size_t col, size_t *len)
{
    struct fake *f = ctx;
    const char *v = f->cells[row * f->ncols + col];
    *len = v ? strlen(v) : 0;
    return v;
}

static void render(struct fake *f, enum result_shape shape, int want_rc, const char *want)
{
    struct rowjson_result r = {f->nrows, f->ncols, f, f_name, f_type, f_value};
    buf b;
    buf_init(&b, 0);
    int rc = rowjson_render(&b, shape, &r);
    assert_int_equal(rc, want_rc);
    if (want != NULL)
        assert_string_equal(b.len ? b.data : "", want);
    buf_free(&b);
}

static void value_is(enum rowjson_kind k, const char *in, const char *want)
{
    buf b;
    buf_init(&b, 0);
    assert_int_equal(rowjson_value(&b, k, in, in ? strlen(in) : 0), 0);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_types_map_to_json(void **state)
{
    (void)state;
    static const char *const names[] = {"id", "ok", "score", "n", "doc", "at", "name", "gone"};
    static const unsigned oids[] = {20, 16, 701, 1700, 3802, 1184, 25, 23};
    static const char *const cells[] = {
        "42",        "t", "1.5", "12.50", "{\"a\": [1, 2]}", "2026-11-21 19:46:00.123456+00",
        "Ann \"A\"", NULL};
    struct fake f = {1, 8, names, oids, cells};
    render(&f, RESULT_OBJECT, 0,
           "{\"id\":42,\"ok\":true,\"score\":1.5,\"n\":12.50,\"doc\":{\"a\": [1, 2]},"
           "\"at\":\"2026-11-21T19:46:00.123456Z\",\"name\":\"Ann \\\"A\\\"\",\"gone\":null}");
}

static void test_timestamptz_fraction_padded_to_microseconds(void **state)
{
    (void)state;
    value_is(RJ_TIMESTAMPTZ, "2026-11-21 19:46:00+00", "\"2026-11-21T19:46:00.000000Z\"");
    value_is(RJ_TIMESTAMPTZ, "2026-11-21 19:46:00.5+00", "\"2026-11-21T19:46:00.500000Z\"");
    value_is(RJ_TIMESTAMPTZ, "2026-01-02 03:04:05.000001+00", "\"2026-01-02T03:04:05.000001Z\"");
}

static void test_timestamptz_not_utc_or_special_passes_as_string(void **state)
{
    (void)state;
    value_is(RJ_TIMESTAMPTZ, "infinity", "\"infinity\"");
    value_is(RJ_TIMESTAMPTZ, "2026-11-21 19:46:00+02", "\"2026-11-21 19:46:00+02\"");
    value_is(RJ_TIMESTAMPTZ, "0044-03-15 12:00:00+00 BC", "\"0044-03-15 12:00:00+00 BC\"");
}

static void test_non_finite_numbers_become_strings(void **state)
{
    (void)state;
    value_is(RJ_FLOAT, "NaN", "\"NaN\"");
    value_is(RJ_FLOAT, "Infinity", "\"Infinity\"");
    value_is(RJ_FLOAT, "-Infinity", "\"-Infinity\"");
    value_is(RJ_FLOAT, "1e+20", "1e+20");
    value_is(RJ_INT, "-7", "-7");
    value_is(RJ_FLOAT, ".5", "\".5\"");
}

static void test_null_and_bool(void **state)
{
    (void)state;
    value_is(RJ_INT, NULL, "null");
    value_is(RJ_BOOL, "f", "false");
    value_is(RJ_BOOL, "t", "true");
}

static void test_hidden_columns_are_left_out(void **state)
{
    (void)state;
    static const char *const names[] = {"token", "_ttl", "user_id"};
    static const unsigned oids[] = {25, 23, 20};
    static const char *const cells[] = {"abc", "60", "7"};
    struct fake f = {1, 3, names, oids, cells};
    render(&f, RESULT_OBJECT, 0, "{\"token\":\"abc\",\"user_id\":7}");
}

static void test_shapes(void **state)
{
    (void)state;
    static const char *const names[] = {"id"};
    static const unsigned oids[] = {20};
    static const char *const cells[] = {"1", "2"};
    struct fake two = {2, 1, names, oids, cells};
    struct fake none = {0, 1, names, oids, cells};
    render(&two, RESULT_ARRAY, 0, "[{\"id\":1},{\"id\":2}]");
    render(&none, RESULT_ARRAY, 0, "[]");
    render(&two, RESULT_OBJECT, 0, "{\"id\":1}");
    render(&none, RESULT_OBJECT, 1, NULL);
    render(&two, RESULT_VALUE, 0, "1");
    render(&none, RESULT_VALUE, 1, NULL);
    render(&two, RESULT_NONE, 0, "");
    render(&none, RESULT_NONE, 1, NULL);
}

static void test_value_shape_embeds_json(void **state)
{
    (void)state;
    static const char *const names[] = {"settings"};
    static const unsigned oids[] = {3802};
    static const char *const cells[] = {"{\"theme\": \"dark\"}"};
    struct fake f = {1, 1, names, oids, cells};
    render(&f, RESULT_VALUE, 0, "{\"theme\": \"dark\"}");
}

static void test_invalid_utf8_text_stays_valid_json(void **state)
{
    (void)state;
    value_is(RJ_STRING,
             "a\xff"
             "b",
             "\"a\xef\xbf\xbd"
             "b\"");
}

static void test_cap_reached_is_an_error(void **state)
{
    (void)state;
    static const char *const names[] = {"name"};
    static const unsigned oids[] = {25};
    static const char *const cells[] = {"a long enough value"};
    struct fake f = {1, 1, names, oids, cells};
    struct rowjson_result r = {1, 1, &f, f_name, f_type, f_value};
    buf b;
    buf_init(&b, 8);
    assert_int_equal(rowjson_render(&b, RESULT_OBJECT, &r), -1);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_map_to_json),
        cmocka_unit_test(test_timestamptz_fraction_padded_to_microseconds),
        cmocka_unit_test(test_timestamptz_not_utc_or_special_passes_as_string),
        cmocka_unit_test(test_non_finite_numbers_become_strings),
        cmocka_unit_test(test_null_and_bool),
        cmocka_unit_test(test_hidden_columns_are_left_out),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_value_shape_embeds_json),
        cmocka_unit_test(test_invalid_utf8_text_stays_valid_json),
        cmocka_unit_test(test_cap_reached_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
