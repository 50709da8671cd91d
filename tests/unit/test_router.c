/*
 * test_router.c - unit tests for router.c: template compilation, matching
 * (404 vs 405, HEAD, literal preference, strict paths, percent-decoding),
 * typed param validation, query normalisation, cache keys and templates.
 * Routes are built in C here; no config parsing is involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http.h"
#include "router.h"

#include <stdio.h>
#include <string.h>

static char *status_enum[] = {"queued", "running", "done", "failed"};
static char *mode_enum[] = {"soft"};

/* Allow the bytes of a class such as "A-Za-z0-9_-" in p->chars. */
static void set_chars(struct route_param *p, const char *cls)
{
    memset(p->chars, 0, sizeof(p->chars));
    p->has_chars = true;
    for (size_t i = 0; cls[i] != '\0'; i++) {
        unsigned char lo = (unsigned char)cls[i], hi = lo;
        if (cls[i + 1] == '-' && cls[i + 2] != '\0') {
            hi = (unsigned char)cls[i + 2];
            i += 2;
        }
        for (unsigned c = lo; c <= hi; c++)
            p->chars[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
}

#define ID_PARAM(nm)                                                                               \
    {                                                                                              \
        .name = nm, .from = PARAM_FROM_PATH, .type = PARAM_INT, .required = true, .min = 1,        \
        .max = INT64_MAX                                                                           \
    }

static struct route_param p_user[] = {ID_PARAM("id")};
static struct route_param p_user_patch[] = {
    ID_PARAM("id"),
    {.name = "email", .from = PARAM_FROM_BODY, .type = PARAM_STRING},
};
static struct route_param p_user_jobs[] = {
    ID_PARAM("id"),
    {.name = "limit",
     .from = PARAM_FROM_QUERY,
     .type = PARAM_INT,
     .min = 1,
     .max = 100,
     .has_default = true,
     .default_text = "20"},
    {.name = "status",
     .from = PARAM_FROM_QUERY,
     .type = PARAM_STRING,
     .enum_values = status_enum,
     .n_enum = 4},
};
static struct route_param p_session[] = {
    {.name = "token",
     .from = PARAM_FROM_PATH,
     .type = PARAM_STRING,
     .required = true,
     .min_length = 16,
     .max_length = 128},
};
static struct route_param p_tag[] = {
    {.name = "tag", .from = PARAM_FROM_PATH, .type = PARAM_STRING, .required = true},
    {.name = "mode",
     .from = PARAM_FROM_QUERY,
     .type = PARAM_STRING,
     .enum_values = mode_enum,
     .n_enum = 1},
};
static struct route_param p_search[] = {
    {.name = "q", .from = PARAM_FROM_QUERY, .type = PARAM_STRING, .required = true},
    {.name = "exact", .from = PARAM_FROM_QUERY, .type = PARAM_BOOL},
    {.name = "score", .from = PARAM_FROM_QUERY, .type = PARAM_NUMBER},
    {.name = "offset", .from = PARAM_FROM_QUERY, .type = PARAM_INT, .min = -10, .max = 10},
    {.name = "token", .from = PARAM_FROM_RANDOM, .random_bytes = 16},
};
static struct route_param p_job[] = {ID_PARAM("job_id")};

enum {
    R_USER,
    R_USER_ME,
    R_USER_PATCH,
    R_USER_DELETE,
    R_USER_JOBS,
    R_SESSION,
    R_TAG_DELETE,
    R_SETTINGS,
    R_THINGS,
    R_SEARCH,
    R_ROOT,
    R_JOB_OF,
    R_COUNT
};

static struct route routes[] = {
    [R_USER] = {.name = "user",
                .method = RC_GET,
                .path = "/api/users/{id:int}",
                .params = p_user,
                .nparams = 1},
    [R_USER_ME] = {.name = "user_me", .method = RC_GET, .path = "/api/users/me"},
    [R_USER_PATCH] = {.name = "user_patch",
                      .method = RC_PATCH,
                      .path = "/api/users/{id:int}",
                      .params = p_user_patch,
                      .nparams = 2},
    [R_USER_DELETE] = {.name = "user_delete",
                       .method = RC_DELETE,
                       .path = "/api/users/{id}",
                       .params = p_user,
                       .nparams = 1},
    [R_USER_JOBS] = {.name = "user_jobs",
                     .method = RC_GET,
                     .path = "/api/users/{id:int}/jobs",
                     .params = p_user_jobs,
                     .nparams = 3},
    [R_SESSION] = {.name = "session",
                   .method = RC_GET,
                   .path = "/api/sessions/{token}",
                   .params = p_session,
                   .nparams = 1},
    [R_TAG_DELETE] = {.name = "tag_delete",
                      .method = RC_DELETE,
                      .path = "/cache/tags/{tag:string}",
                      .params = p_tag,
                      .nparams = 2},
    [R_SETTINGS] = {.name = "settings", .method = RC_GET, .path = "/api/settings"},
    [R_THINGS] = {.name = "things", .method = RC_GET, .path = "/api/things/"},
    [R_SEARCH] = {.name = "search",
                  .method = RC_GET,
                  .path = "/api/search",
                  .params = p_search,
                  .nparams = 5},
    [R_ROOT] = {.name = "root", .method = RC_GET, .path = "/"},
    [R_JOB_OF] = {.name = "job_of",
                  .method = RC_GET,
                  .path = "/api/{job_id:int}/users/me",
                  .params = p_job,
                  .nparams = 1},
};

struct fixture {
    struct router *r;
    struct router_match m;
    char err[RC_ERRBUF];
};

static int setup(void **state)
{
    static struct fixture f;
    set_chars(&p_session[0], "A-Za-z0-9_-");
    f.err[0] = '\0';
    f.r = router_create(routes, R_COUNT, f.err);
    if (f.r == NULL) {
        fprintf(stderr, "router_create: %s\n", f.err);
        return -1;
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    router_free(f->r);
    return 0;
}

/* Match with the path and query given as one "path?query" string. */
static enum router_status go(struct fixture *f, enum rc_method method, const char *url)
{
    const char *q = strchr(url, '?');
    size_t plen = q != NULL ? (size_t)(q - url) : strlen(url);
    f->err[0] = '\0';
    return router_match(f->r, method, url, plen, q != NULL ? q + 1 : NULL, &f->m, f->err);
}

static const char *key(struct fixture *f)
{
    static char out[512];
    assert_true(router_cache_key(&f->m, out, sizeof(out)) >= 0);
    return out;
}

static void assert_value(const struct rc_value *v, const char *want)
{
    if (want == NULL) {
        assert_false(v->present);
        return;
    }
    assert_true(v->present);
    assert_int_equal(v->len, strlen(want));
    assert_memory_equal(v->s, want, v->len);
    assert_int_equal(v->s[v->len], '\0'); /* NUL-terminated for libpq */
}

static void test_int_id_validation_table(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *url;
        enum router_status want;
    } cases[] = {
        {"/api/users/1", ROUTER_OK},
        {"/api/users/9223372036854775807", ROUTER_OK},
        {"/api/users/42", ROUTER_OK},
        {"/api/users/0", ROUTER_BAD_REQUEST},
        {"/api/users/01", ROUTER_BAD_REQUEST},
        {"/api/users/-1", ROUTER_BAD_REQUEST},
        {"/api/users/-0", ROUTER_BAD_REQUEST},
        {"/api/users/9223372036854775808", ROUTER_BAD_REQUEST},
        {"/api/users/99999999999999999999", ROUTER_BAD_REQUEST},
        {"/api/users/1a", ROUTER_BAD_REQUEST},
        {"/api/users/%201", ROUTER_BAD_REQUEST},
        {"/api/users/1%20", ROUTER_BAD_REQUEST},
        {"/api/users/+1", ROUTER_BAD_REQUEST},
        {"/api/users/%2B1", ROUTER_BAD_REQUEST},
        {"/api/users/1.0", ROUTER_BAD_REQUEST},
        {"/api/users/abc", ROUTER_BAD_REQUEST},
        /* Empty id: an id position left empty is a bad id (API.md). */
        {"/api/users//", ROUTER_NOT_FOUND}, /* two empty segments: no template */
        {"/api/users/", ROUTER_BAD_REQUEST},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        enum router_status st = go(f, RC_GET, cases[i].url);
        if (st != cases[i].want)
            fail_msg("%s: expected status %d, got %d (%s)", cases[i].url, cases[i].want, st,
                     f->err);
        if (st == ROUTER_BAD_REQUEST)
            assert_string_equal(f->err, "id: expected an integer from 1 to 9223372036854775807");
    }
    /* An empty id inside a path is a bad id too, not a missing route. */
    assert_int_equal(go(f, RC_GET, "/api/users//jobs"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "id: expected an integer from 1 to 9223372036854775807");
    assert_int_equal(go(f, RC_GET, "/api/users/9223372036854775807"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_USER);
    assert_ptr_equal(f->m.route, &routes[R_USER]);
    assert_value(&f->m.values[0], "9223372036854775807");
}

static void test_negative_int_allowed_only_when_min_below_zero(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_GET, "/api/search?q=x&offset=-10"), ROUTER_OK);
    assert_value(&f->m.values[3], "-10");
    assert_int_equal(go(f, RC_GET, "/api/search?q=x&offset=0"), ROUTER_OK);
    assert_value(&f->m.values[3], "0");
    assert_int_equal(go(f, RC_GET, "/api/search?q=x&offset=-11"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "offset: expected an integer from -10 to 10");
    assert_int_equal(go(f, RC_GET, "/api/search?q=x&offset=-0"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_GET, "/api/search?q=x&offset=-"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_GET, "/api/search?q=x&offset=--1"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_GET, "/api/search?q=x&offset=+1"), ROUTER_BAD_REQUEST);
}

static void test_string_chars_length_utf8(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_GET, "/api/sessions/abcdefghij_-ABC09"), ROUTER_OK);
    assert_value(&f->m.values[0], "abcdefghij_-ABC09");
    /* 15 bytes: too short; 129: too long; 128: fine. */
    assert_int_equal(go(f, RC_GET, "/api/sessions/abcdefghijklmno"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "token: expected a string of 16 to 128 bytes");
    char url[256] = "/api/sessions/";
    memset(url + strlen(url), 'a', 129);
    assert_int_equal(go(f, RC_GET, url), ROUTER_BAD_REQUEST);
    url[strlen(url) - 1] = '\0';
    assert_int_equal(go(f, RC_GET, url), ROUTER_OK);
    /* A byte outside the class, raw or encoded. */
    assert_int_equal(go(f, RC_GET, "/api/sessions/abcdefghijklmnop.q"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "token: contains a character that is not allowed");
    assert_int_equal(go(f, RC_GET, "/api/sessions/abcdefghijklmnop%21"), ROUTER_BAD_REQUEST);
    /* Default max_length is 1024 and UTF-8 must be well formed. */
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/caf%C3%A9"), ROUTER_OK);
    assert_value(&f->m.values[0], "caf\xc3\xa9");
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/caf%C3"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "tag: expected valid UTF-8");
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/%C0%AF"), ROUTER_BAD_REQUEST);    /* overlong */
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/%ED%A0%80"), ROUTER_BAD_REQUEST); /* surrogate */
    char big[1200] = "/cache/tags/";
    memset(big + strlen(big), 'x', 1025);
    assert_int_equal(go(f, RC_DELETE, big), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "tag: expected a string of 0 to 1024 bytes");
}

static void test_string_enum(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_GET, "/api/users/7/jobs?status=running"), ROUTER_OK);
    assert_value(&f->m.values[2], "running");
    assert_int_equal(go(f, RC_GET, "/api/users/7/jobs?status=Running"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "status: expected one of queued, running, done, failed");
    assert_int_equal(go(f, RC_GET, "/api/users/7/jobs?status=runnin"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_GET, "/api/users/7/jobs?status=runningg"), ROUTER_BAD_REQUEST);
}

static void test_not_found_vs_method_not_allowed(void **state)
{
    struct fixture *f = *state;
    char allow[64];
    assert_int_equal(go(f, RC_GET, "/api/nope"), ROUTER_NOT_FOUND);
    assert_int_equal(f->m.allowed, 0);
    assert_null(f->m.route);
    assert_int_equal(go(f, RC_GET, "/api/users/1/nope"), ROUTER_NOT_FOUND);
    assert_int_equal(go(f, RC_GET, "api/users/1"), ROUTER_NOT_FOUND);
    assert_int_equal(go(f, RC_GET, ""), ROUTER_NOT_FOUND);

    assert_int_equal(go(f, RC_POST, "/api/users/1"), ROUTER_METHOD_NOT_ALLOWED);
    assert_int_equal(f->m.allowed, RC_GET | RC_HEAD | RC_PATCH | RC_DELETE);
    assert_int_equal(http_allow_header(f->m.allowed, allow, sizeof(allow)), 24);
    assert_string_equal(allow, "GET, HEAD, PATCH, DELETE");
    assert_int_equal(go(f, RC_PUT, "/api/settings"), ROUTER_METHOD_NOT_ALLOWED);
    assert_int_equal(f->m.allowed, RC_GET | RC_HEAD);
    assert_int_equal(go(f, RC_GET, "/cache/tags/x"), ROUTER_METHOD_NOT_ALLOWED);
    assert_int_equal(f->m.allowed, RC_DELETE);
    /* 405 is decided on the path shape alone: a bad id does not matter. */
    assert_int_equal(go(f, RC_POST, "/api/users/abc"), ROUTER_METHOD_NOT_ALLOWED);
}

static void test_head_matches_get_route(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_HEAD, "/api/users/5"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_USER);
    assert_string_equal(key(f), "user:5");
    assert_int_equal(go(f, RC_HEAD, "/api/settings"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_SETTINGS);
    /* HEAD does not match a route that has no GET. */
    assert_int_equal(go(f, RC_HEAD, "/cache/tags/x"), ROUTER_METHOD_NOT_ALLOWED);
}

static void test_literal_preferred_over_param(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_GET, "/api/users/me"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_USER_ME);
    assert_string_equal(key(f), "user_me");
    assert_int_equal(go(f, RC_GET, "/api/users/%6De"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_USER_ME);
    assert_int_equal(go(f, RC_GET, "/api/users/mee"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_GET, "/api/users/3"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_USER);
    /* "me" has no PATCH: the param route with PATCH takes it, and "me" is
     * not an id. */
    assert_int_equal(go(f, RC_PATCH, "/api/users/me"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_PATCH, "/api/users/3"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_USER_PATCH);
    assert_value(&f->m.values[1], NULL); /* body param left for body.c */
    /* The earliest difference decides: "/api/users/me/.." style templates. */
    assert_int_equal(go(f, RC_GET, "/api/9/users/me"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_JOB_OF);
    assert_value(&f->m.values[0], "9");
}

static void test_path_segments_percent_decoded(void **state)
{
    struct fixture *f = *state;
    /* A literal compares against the decoded segment. */
    assert_int_equal(go(f, RC_GET, "/api/%75sers/12"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_USER);
    assert_value(&f->m.values[0], "12");
    /* %2F is data inside one segment, never a separator. */
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/user%2F42"), ROUTER_OK);
    assert_value(&f->m.values[0], "user/42");
    assert_string_equal(key(f), "tag_delete:user%2F42:");
    assert_int_equal(go(f, RC_GET, "/api%2Fusers/12"), ROUTER_NOT_FOUND);
    /* '+' in a path is a plus, not a space. */
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/a+b"), ROUTER_OK);
    assert_value(&f->m.values[0], "a+b");
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/a%20b"), ROUTER_OK);
    assert_value(&f->m.values[0], "a b");
}

static void test_path_bad_escapes_and_nul_rejected(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/a%00b"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "path: invalid percent-encoding");
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/a%zz"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/a%4"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/%"), ROUTER_BAD_REQUEST);
    /* A raw NUL inside path_len is rejected too, not truncated. */
    const char raw[] = "/cache/tags/a\0b";
    f->err[0] = '\0';
    assert_int_equal(router_match(f->r, RC_DELETE, raw, sizeof(raw) - 1, NULL, &f->m, f->err),
                     ROUTER_BAD_REQUEST);
    /* path_len bounds the path: the rest of the string is not read. */
    assert_int_equal(router_match(f->r, RC_GET, "/api/users/12/jobs", 12, NULL, &f->m, f->err),
                     ROUTER_OK);
    assert_int_equal(f->m.route_index, R_USER);
    assert_value(&f->m.values[0], "1");
}

static void test_dot_and_empty_segments_not_found(void **state)
{
    struct fixture *f = *state;
    static const char *urls[] = {
        "/api/users/../users/1", "/api/users/./1",  "/api/./users/1",     "/api/users/1/..",
        "/api/users/%2E%2E",     "/api/users/%2e",  "/cache/tags/..",     "/cache/tags/.",
        "//api/users/1",         "/api//users/1",   "/api/users/1//",     "//",
        "/api/settings/",        "/api/settings//", "/cache/tags/%2e%2E",
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(urls); i++) {
        enum router_status st = go(f, RC_GET, urls[i]);
        if (st != ROUTER_NOT_FOUND)
            fail_msg("%s: expected 404 (ROUTER_NOT_FOUND), got %d", urls[i], st);
    }
    /* But dots inside a segment are data. */
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/..."), ROUTER_OK);
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/a..b"), ROUTER_OK);
}

static void test_trailing_slash_only_when_template_has_one(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_GET, "/api/things/"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_THINGS);
    assert_int_equal(go(f, RC_GET, "/api/things"), ROUTER_NOT_FOUND);
    assert_int_equal(go(f, RC_GET, "/api/users/1/"), ROUTER_NOT_FOUND);
    assert_int_equal(go(f, RC_GET, "/"), ROUTER_OK);
    assert_int_equal(f->m.route_index, R_ROOT);
    assert_string_equal(key(f), "root");
}

static void test_query_default_gives_same_key_as_explicit(void **state)
{
    struct fixture *f = *state;
    char k1[128], k2[128], k3[128];
    assert_int_equal(go(f, RC_GET, "/api/users/42/jobs?limit=20"), ROUTER_OK);
    assert_true(router_cache_key(&f->m, k1, sizeof(k1)) > 0);
    assert_int_equal(go(f, RC_GET, "/api/users/42/jobs"), ROUTER_OK);
    assert_value(&f->m.values[1], "20");
    assert_true(router_cache_key(&f->m, k2, sizeof(k2)) > 0);
    assert_int_equal(go(f, RC_GET, "/api/users/42/jobs?limit="), ROUTER_OK);
    assert_true(router_cache_key(&f->m, k3, sizeof(k3)) > 0);
    assert_string_equal(k1, "user_jobs:42:20:");
    assert_string_equal(k2, k1);
    assert_string_equal(k3, k1);
    assert_int_equal(go(f, RC_GET, "/api/users/42/jobs?limit=21"), ROUTER_OK);
    assert_string_equal(key(f), "user_jobs:42:21:");
}

static void test_query_int_must_be_canonical(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?limit=020"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "limit: expected an integer from 1 to 100");
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?limit=101"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?limit=0"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?limit=+20"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?limit=%2B20"), ROUTER_BAD_REQUEST);
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?limit=2%30"), ROUTER_OK);
    assert_value(&f->m.values[1], "20");
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?limit=%zz"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "limit: invalid percent-encoding");
}

static void test_undeclared_query_params_ignored_and_not_in_key(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_GET, "/api/users/42/jobs?utm=x&limit=5&LIMIT=7&_=123&%zz=1&x"),
                     ROUTER_OK);
    assert_value(&f->m.values[1], "5");
    assert_string_equal(key(f), "user_jobs:42:5:");
    assert_int_equal(go(f, RC_GET, "/api/users/42?limit=5&status=done"), ROUTER_OK);
    assert_string_equal(key(f), "user:42");
    /* Body and random params are never read from the query. */
    assert_int_equal(go(f, RC_PATCH, "/api/users/42?email=a@b"), ROUTER_OK);
    assert_value(&f->m.values[1], NULL);
    assert_int_equal(go(f, RC_GET, "/api/search?q=x&token=abc"), ROUTER_OK);
    assert_value(&f->m.values[4], NULL);
    /* Names are percent-decoded before comparison. */
    assert_int_equal(go(f, RC_GET, "/api/users/42/jobs?%6Cimit=9"), ROUTER_OK);
    assert_value(&f->m.values[1], "9");
}

static void test_duplicate_declared_query_param_rejected(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?limit=5&limit=5"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "limit: given more than once");
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?limit=5&l%69mit=6"), ROUTER_BAD_REQUEST);
    /* Undeclared duplicates are fine. */
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?x=1&x=2"), ROUTER_OK);
}

static void test_empty_query_value_is_absent(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?status="), ROUTER_OK);
    assert_value(&f->m.values[2], NULL);
    assert_string_equal(key(f), "user_jobs:1:20:");
    assert_int_equal(go(f, RC_GET, "/api/users/1/jobs?status"), ROUTER_OK);
    assert_value(&f->m.values[2], NULL);
    assert_int_equal(go(f, RC_GET, "/api/search?q="), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "q: required");
    assert_int_equal(go(f, RC_GET, "/api/search"), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "q: required");
    assert_int_equal(go(f, RC_GET, "/api/search?q=hello+world"), ROUTER_OK);
    assert_value(&f->m.values[0], "hello world");
    assert_value(&f->m.values[1], NULL);
    assert_value(&f->m.values[2], NULL);
    assert_value(&f->m.values[3], NULL);
    assert_string_equal(key(f), "search:hello%20world:::");
}

static void test_bool_and_number_params(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *in;
        const char *want;
    } bools[] = {{"true", "true"}, {"1", "true"}, {"false", "false"}, {"0", "false"},
                 {"TRUE", NULL},   {"yes", NULL}, {"01", NULL},       {"truee", NULL}};
    char url[128];
    for (size_t i = 0; i < RC_ARRAY_LEN(bools); i++) {
        snprintf(url, sizeof(url), "/api/search?q=x&exact=%s", bools[i].in);
        enum router_status st = go(f, RC_GET, url);
        if (bools[i].want == NULL) {
            assert_int_equal(st, ROUTER_BAD_REQUEST);
            assert_string_equal(f->err, "exact: expected true or false");
        } else {
            assert_int_equal(st, ROUTER_OK);
            assert_value(&f->m.values[1], bools[i].want);
        }
    }
    static const char *good[] = {"0", "-0", "1.5", "-12.25e-3", "1E9", "0.0", "123"};
    static const char *bad[] = {"01", "1.", ".5", "+1", "1e", "1e%2B", "NaN", "0x10", "1 ", "--1"};
    for (size_t i = 0; i < RC_ARRAY_LEN(good); i++) {
        snprintf(url, sizeof(url), "/api/search?q=x&score=%s", good[i]);
        if (go(f, RC_GET, url) != ROUTER_OK)
            fail_msg("score=%s: expected OK, got %s", good[i], f->err);
        assert_value(&f->m.values[2], good[i]);
    }
    /* A '+' must be sent as %2B: a raw one is a space in a query. */
    assert_int_equal(go(f, RC_GET, "/api/search?q=x&score=1e%2B3"), ROUTER_OK);
    assert_value(&f->m.values[2], "1e+3");
    assert_int_equal(go(f, RC_GET, "/api/search?q=x&score=1e+3"), ROUTER_BAD_REQUEST);
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        snprintf(url, sizeof(url), "/api/search?q=x&score=%s", bad[i]);
        if (go(f, RC_GET, url) != ROUTER_BAD_REQUEST)
            fail_msg("score=%s: expected a bad request", bad[i]);
    }
}

static void test_cache_key_escaping(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/a:b%25c%20d~e.f_g-h%C3%A9?mode=soft"),
                     ROUTER_OK);
    assert_string_equal(key(f), "tag_delete:a%3Ab%25c%20d~e.f_g-h%C3%A9:soft");
    /* Values with ':' cannot collide with the separator. */
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/x:soft"), ROUTER_OK);
    assert_string_equal(key(f), "tag_delete:x%3Asoft:");
}

static void test_cache_key_too_small(void **state)
{
    struct fixture *f = *state;
    char out[32];
    assert_int_equal(go(f, RC_GET, "/api/users/42/jobs?limit=5"), ROUTER_OK);
    /* "user_jobs:42:5:" is 15 bytes. */
    assert_int_equal(router_cache_key(&f->m, out, 16), 15);
    assert_string_equal(out, "user_jobs:42:5:");
    assert_int_equal(router_cache_key(&f->m, out, 15), -1);
    assert_string_equal(out, "");
    assert_int_equal(router_cache_key(&f->m, out, 5), -1);
    assert_string_equal(out, "");
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/%20"), ROUTER_OK);
    /* "tag_delete:%20:" is 15 bytes: the escape needs all three. */
    assert_int_equal(router_cache_key(&f->m, out, 14), -1);
    assert_int_equal(router_cache_key(&f->m, out, 16), 15);
}

static void test_scratch_overflow_is_bad_request(void **state)
{
    struct fixture *f = *state;
    static char url[ROUTER_SCRATCH + 64];
    /* One segment larger than the scratch area. */
    strcpy(url, "/cache/tags/");
    memset(url + strlen(url), 'a', ROUTER_SCRATCH);
    assert_int_equal(go(f, RC_DELETE, url), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "path too long");
    /* A path that fits, then a query value that does not. */
    static char q[ROUTER_SCRATCH + 64];
    strcpy(q, "/api/search?q=");
    memset(q + strlen(q), 'b', ROUTER_SCRATCH - 10);
    assert_int_equal(go(f, RC_GET, q), ROUTER_BAD_REQUEST);
    assert_string_equal(f->err, "query string too long");
    /* Many segments: 404, nothing is read past the last template length. */
    char deep[256] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "/a");
    assert_int_equal(go(f, RC_GET, deep), ROUTER_NOT_FOUND);
}

static const char *col_lookup(void *ctx, const char *name, size_t *len)
{
    (void)ctx;
    if (strcmp(name, "user_id") == 0) {
        *len = 2;
        return "77";
    }
    return NULL;
}

static void test_render_params_and_columns(void **state)
{
    struct fixture *f = *state;
    char out[64];
    struct tmpl_part parts[] = {
        {.kind = TMPL_LITERAL, .text = "user:", .len = 5},
        {.kind = TMPL_PARAM, .param = 0},
        {.kind = TMPL_LITERAL, .text = ":jobs:", .len = 6},
        {.kind = TMPL_COLUMN, .text = "user_id", .len = 7},
    };
    struct tmpl t = {.source = "user:{id}:jobs:{row.user_id}", .parts = parts, .nparts = 4};
    assert_int_equal(go(f, RC_GET, "/api/users/42"), ROUTER_OK);
    assert_int_equal(router_render(&t, &f->m, col_lookup, NULL, out, sizeof(out)), 15);
    assert_string_equal(out, "user:42:jobs:77");
    /* Exactly fits, then one byte short. */
    assert_int_equal(router_render(&t, &f->m, col_lookup, NULL, out, 16), 15);
    assert_int_equal(router_render(&t, &f->m, col_lookup, NULL, out, 15), -1);
    assert_string_equal(out, "");
    /* No column function, or an unknown column. */
    assert_int_equal(router_render(&t, &f->m, NULL, NULL, out, sizeof(out)), -1);
    parts[3].text = "missing";
    assert_int_equal(router_render(&t, &f->m, col_lookup, NULL, out, sizeof(out)), -1);
    /* Values are inserted verbatim (decoded, not escaped). */
    struct tmpl_part tag_parts[] = {
        {.kind = TMPL_LITERAL, .text = "tag=", .len = 4},
        {.kind = TMPL_PARAM, .param = 0},
    };
    struct tmpl t2 = {.source = "tag={tag}", .parts = tag_parts, .nparts = 2};
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/a%2Fb%20c"), ROUTER_OK);
    assert_int_equal(router_render(&t2, &f->m, NULL, NULL, out, sizeof(out)), 9);
    assert_string_equal(out, "tag=a/b c");
    /* An absent param fails the render. */
    tag_parts[1].param = 1;
    assert_int_equal(router_render(&t2, &f->m, NULL, NULL, out, sizeof(out)), -1);
    assert_int_equal(go(f, RC_DELETE, "/cache/tags/x?mode=soft"), ROUTER_OK);
    assert_int_equal(router_render(&t2, &f->m, NULL, NULL, out, sizeof(out)), 8);
    assert_string_equal(out, "tag=soft");
}

static void expect_create_error(struct route *rs, size_t n, const char *substr)
{
    char err[RC_ERRBUF] = "";
    struct router *r = router_create(rs, n, err);
    if (r != NULL) {
        router_free(r);
        fail_msg("router_create accepted routes that should fail with \"%s\"", substr);
    }
    if (strstr(err, substr) == NULL)
        fail_msg("expected an error containing \"%s\", got \"%s\"", substr, err);
}

static void test_create_rejects_bad_and_ambiguous_templates(void **state)
{
    (void)state;
    struct route_param id = ID_PARAM("id");
    struct route_param uid = ID_PARAM("uid");
    struct route_param str = {.name = "id", .from = PARAM_FROM_PATH, .type = PARAM_STRING};
    struct route_param obj = {.name = "o", .from = PARAM_FROM_QUERY, .type = PARAM_OBJECT};
    struct route rs[2] = {
        {.name = "a", .method = RC_GET, .path = "/x/{id}", .params = &id, .nparams = 1},
        {.name = "b", .method = RC_GET, .path = "/x/{uid:int}", .params = &uid, .nparams = 1},
    };
    expect_create_error(rs, 2, "same method and same paths");
    rs[1].method = RC_DELETE;
    char err[RC_ERRBUF];
    struct router *r = router_create(rs, 2, err);
    assert_non_null(r);
    router_free(r);

    struct route one = {.name = "c", .method = RC_GET, .path = "x", .params = &id, .nparams = 1};
    expect_create_error(&one, 1, "must start with '/'");
    one.path = "/x//{id}";
    expect_create_error(&one, 1, "empty segment");
    one.path = "/x/v{id}";
    expect_create_error(&one, 1, "not allowed in a literal segment");
    one.path = "/x/{id}x";
    expect_create_error(&one, 1, "whole segment");
    one.path = "/x/{id:float}";
    expect_create_error(&one, 1, "int or string");
    one.path = "/x/{nope}";
    expect_create_error(&one, 1, "no params[] entry");
    one.path = "/x";
    expect_create_error(&one, 1, "is not in the path");
    one.path = "/x/{id}/{id}";
    expect_create_error(&one, 1, "appears twice");
    one.path = "/x/../{id}";
    expect_create_error(&one, 1, "'.' or '..'");
    one.path = "/x/{id:int}";
    one.params = &str;
    expect_create_error(&one, 1, "{:int}");
    one.path = "/x";
    one.params = &obj;
    expect_create_error(&one, 1, "object/any");
    router_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_id_validation_table),
        cmocka_unit_test(test_negative_int_allowed_only_when_min_below_zero),
        cmocka_unit_test(test_string_chars_length_utf8),
        cmocka_unit_test(test_string_enum),
        cmocka_unit_test(test_not_found_vs_method_not_allowed),
        cmocka_unit_test(test_head_matches_get_route),
        cmocka_unit_test(test_literal_preferred_over_param),
        cmocka_unit_test(test_path_segments_percent_decoded),
        cmocka_unit_test(test_path_bad_escapes_and_nul_rejected),
        cmocka_unit_test(test_dot_and_empty_segments_not_found),
        cmocka_unit_test(test_trailing_slash_only_when_template_has_one),
        cmocka_unit_test(test_query_default_gives_same_key_as_explicit),
        cmocka_unit_test(test_query_int_must_be_canonical),
        cmocka_unit_test(test_undeclared_query_params_ignored_and_not_in_key),
        cmocka_unit_test(test_duplicate_declared_query_param_rejected),
        cmocka_unit_test(test_empty_query_value_is_absent),
        cmocka_unit_test(test_bool_and_number_params),
        cmocka_unit_test(test_cache_key_escaping),
        cmocka_unit_test(test_cache_key_too_small),
        cmocka_unit_test(test_scratch_overflow_is_bad_request),
        cmocka_unit_test(test_render_params_and_columns),
        cmocka_unit_test(test_create_rejects_bad_and_ambiguous_templates),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
