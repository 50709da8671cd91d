/*
 * test_config.c - config loading: a full valid file, defaults, environment
 * overrides, printing, and the error messages (each must name the JSON path
 * of the offending value, or the environment variable).
 *
 * Configs are written with single quotes for readability; q() turns them
 * into double quotes (a JSON single quote is written \u0027).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

static const char *env_names[8];
static const char *env_values[8];
static size_t env_count;

static const char *fake_env(const char *name)
{
    for (size_t i = 0; i < env_count; i++) {
        if (strcmp(env_names[i], name) == 0)
            return env_values[i];
    }
    return NULL;
}

static void set_env(const char *name, const char *value)
{
    env_names[env_count] = name;
    env_values[env_count] = value;
    env_count++;
}

static int reset_env(void **state)
{
    (void)state;
    env_count = 0;
    return 0;
}

static char *q(const char *sq)
{
    char *s = strdup(sq);
    for (char *p = s; *p != '\0'; p++) {
        if (*p == '\'')
            *p = '"';
    }
    return s;
}

static struct rc_config *load(const char *sq, char *errbuf)
{
    char *json = q(sq);
    errbuf[0] = '\0';
    struct rc_config *cfg = config_load_string(json, "test.json", fake_env, errbuf);
    free(json);
    return cfg;
}

static struct rc_config *load_ok(const char *sq)
{
    char errbuf[RC_ERRBUF];
    struct rc_config *cfg = load(sq, errbuf);
    if (cfg == NULL)
        fail_msg("expected the config to load, got error \"%s\"", errbuf);
    return cfg;
}

static void expect_error(const char *sq, const char *needle)
{
    char errbuf[RC_ERRBUF];
    struct rc_config *cfg = load(sq, errbuf);
    if (cfg != NULL) {
        config_free(cfg);
        fail_msg("expected an error containing \"%s\", but the config loaded", needle);
    }
    if (strstr(errbuf, needle) == NULL)
        fail_msg("expected an error containing \"%s\", got \"%s\"", needle, errbuf);
}

/* A valid route to put before the one under test. */
#define R0          "{'name':'r0','method':'GET','path':'/r0','sql':'SELECT 1'}"
#define ROUTES(...) "{'routes':[" R0 "," __VA_ARGS__ "]}"
/* routes[1] = a GET on /x with the given extra members. */
#define GET1(extra) ROUTES("{'name':'r1','method':'GET','path':'/x','sql':'SELECT 1'" extra "}")
/* routes[1] = a GET on /x/{id} with params and sql. */
#define GETP(params, sql)                                                                          \
    ROUTES("{'name':'r1','method':'GET','path':'/x/{id}','params':[" params "],'sql':'" sql "'}")

static const char full_config[] =
    "{"
    " 'listen': 'unix:/run/respcache.sock', 'threads': 8, 'loops': 2, 'log_level': 'debug',"
    " 'admin_token': 'sekrit-admin-token', 'max_body_bytes': 65536, 'io_timeout_ms': 1000,"
    " 'database': {'url': 'postgresql://app:hunter2@db.example/respcache',"
    "              'connect_timeout_ms': 500, 'statement_timeout_ms': 2500},"
    " 'cache': {'provider': 'memory', 'default_ttl': 120, 'negative_ttl': 10,"
    "           'memory_max_bytes': 1048576, 'memory_shards': 16, 'tag_slots': 1024,"
    "           'redis_url': 'redis://:redpass@cache:6379/0', 'redis_key_prefix': 'demo:'},"
    " 'routes': ["
    "  {'name': 'user_jobs', 'method': 'GET', 'path': '/api/users/{id:int}/jobs',"
    "   'params': [{'name': 'id', 'from': 'path'},"
    "              {'name': 'limit', 'from': 'query', 'type': 'int', 'min': 1, 'max': 100,"
    "               'default': 20},"
    "              {'name': 'status', 'from': 'query',"
    "               'enum': ['queued', 'running', 'done', 'failed']}],"
    "   'sql': 'SELECT * FROM jobs WHERE user_id = $1 AND ($3::text IS NULL OR status = $3)"
    " ORDER BY id DESC LIMIT $2',"
    "   'result': 'array', 'ttl': 300, 'tags': ['user:{id}:jobs', 'user:{id}']},"
    "  {'name': 'create_job', 'method': 'POST', 'path': '/api/users/{user_id}/jobs',"
    "   'params': [{'name': 'user_id', 'from': 'path', 'type': 'int'},"
    "              {'name': 'payload', 'from': 'body', 'type': 'object', 'required': true},"
    "              {'name': 'note', 'from': 'body', 'max_length': 200, 'chars': 'A-Za-z0-9 _-'}],"
    "   'sql': 'INSERT INTO jobs (user_id, payload, note) VALUES ($1, $2, $3) RETURNING *',"
    "   'status': 201,"
    "   'invalidate': ['user:{user_id}:jobs', 'job:{row.id}'],"
    "   'location': '/api/jobs/{row.id}'},"
    "  {'name': 'create_session', 'method': 'POST', 'path': '/api/sessions',"
    "   'params': [{'name': 'token', 'from': 'random', 'bytes': 32},"
    "              {'name': 'user_id', 'from': 'body', 'type': 'int', 'required': true}],"
    "   'sql': 'INSERT INTO sessions (token, user_id) VALUES ($1, $2) RETURNING *',"
    "   'status': 201, 'invalidate': ['session:{token}']},"
    "  {'name': 'delete_user', 'method': 'DELETE', 'path': '/api/users/{id:int}',"
    "   'params': [{'name': 'id', 'from': 'path'}],"
    "   'sql': 'DELETE FROM users WHERE id = $1 RETURNING id',"
    "   'result': 'none', 'invalidate': ['user:{id}', 'user:{id}:jobs']}"
    " ]"
    "}";

/* ---- valid configs ---------------------------------------------------- */

static void test_full_config_loads_settings(void **state)
{
    (void)state;
    struct rc_config *c = load_ok(full_config);
    assert_string_equal(c->listen, "unix:/run/respcache.sock");
    assert_int_equal(c->threads, 8);
    assert_int_equal(c->loops, 2);
    assert_string_equal(c->log_level, "debug");
    assert_string_equal(c->admin_token, "sekrit-admin-token");
    assert_int_equal(c->max_body_bytes, 65536);
    assert_int_equal(c->io_timeout_ms, 1000);
    assert_string_equal(c->database_url, "postgresql://app:hunter2@db.example/respcache");
    assert_int_equal(c->db_connect_timeout_ms, 500);
    assert_int_equal(c->db_statement_timeout_ms, 2500);
    assert_string_equal(c->cache_provider, "memory");
    assert_int_equal(c->cache_default_ttl, 120);
    assert_int_equal(c->cache_negative_ttl, 10);
    assert_int_equal(c->cache_memory_max_bytes, 1048576);
    assert_int_equal(c->cache_memory_shards, 16);
    assert_int_equal(c->cache_tag_slots, 1024);
    assert_string_equal(c->redis_url, "redis://:redpass@cache:6379/0");
    assert_string_equal(c->redis_key_prefix, "demo:");
    assert_int_equal(c->nroutes, 4);
    config_free(c);
}

static void test_full_config_get_route_params_and_tags(void **state)
{
    (void)state;
    struct rc_config *c = load_ok(full_config);
    const struct route *r = &c->routes[0];

    assert_string_equal(r->name, "user_jobs");
    assert_int_equal(r->method, RC_GET);
    assert_string_equal(r->path, "/api/users/{id:int}/jobs");
    assert_int_equal(r->result, RESULT_ARRAY);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->ttl, 300);
    assert_int_equal(r->negative_ttl, 10); /* cache.negative_ttl */
    assert_false(r->has_body);
    assert_int_equal(r->nparams, 3);

    const struct route_param *id = &r->params[0];
    assert_int_equal(id->from, PARAM_FROM_PATH);
    assert_int_equal(id->type, PARAM_INT); /* from the template */
    assert_true(id->required);
    assert_true(id->min == 1 && id->max == INT64_MAX);

    const struct route_param *limit = &r->params[1];
    assert_int_equal(limit->from, PARAM_FROM_QUERY);
    assert_true(limit->min == 1 && limit->max == 100);
    assert_true(limit->has_default);
    assert_string_equal(limit->default_text, "20");
    assert_false(limit->required);

    const struct route_param *status = &r->params[2];
    assert_int_equal(status->type, PARAM_STRING);
    assert_int_equal(status->n_enum, 4);
    assert_string_equal(status->enum_values[3], "failed");
    assert_int_equal(status->max_length, 1024);

    assert_int_equal(r->ntags, 2);
    assert_string_equal(r->tags[0].source, "user:{id}:jobs");
    assert_int_equal(r->tags[0].nparts, 3);
    assert_int_equal(r->tags[0].parts[0].kind, TMPL_LITERAL);
    assert_string_equal(r->tags[0].parts[0].text, "user:");
    assert_int_equal(r->tags[0].parts[0].len, 5);
    assert_int_equal(r->tags[0].parts[1].kind, TMPL_PARAM);
    assert_int_equal(r->tags[0].parts[1].param, 0);
    assert_string_equal(r->tags[0].parts[2].text, ":jobs");
    assert_int_equal(r->tags[1].nparts, 2);
    assert_int_equal(r->ninvalidate, 0);
    assert_null(r->location);
    config_free(c);
}

static void test_full_config_write_routes(void **state)
{
    (void)state;
    struct rc_config *c = load_ok(full_config);
    const struct route *post = &c->routes[1];

    assert_int_equal(post->method, RC_POST);
    assert_int_equal(post->status, 201);
    assert_int_equal(post->result, RESULT_OBJECT);
    assert_true(post->has_body);
    assert_int_equal(post->ttl, 0);
    assert_int_equal(post->params[0].type, PARAM_INT);
    assert_int_equal(post->params[1].type, PARAM_OBJECT);
    assert_true(post->params[1].required);
    assert_false(post->params[2].required);
    assert_int_equal(post->params[2].max_length, 200);
    assert_true(post->params[2].has_chars);
    assert_true(config_char_allowed(&post->params[2], 'q'));
    assert_true(config_char_allowed(&post->params[2], 'Z'));
    assert_true(config_char_allowed(&post->params[2], ' '));
    assert_true(config_char_allowed(&post->params[2], '-'));
    assert_false(config_char_allowed(&post->params[2], '/'));
    assert_false(config_char_allowed(&post->params[2], 0xc3));
    assert_true(config_char_allowed(&post->params[1], '/')); /* no class: all allowed */

    assert_int_equal(post->ninvalidate, 2);
    const struct tmpl *job = &post->invalidate[1];
    assert_int_equal(job->nparts, 2);
    assert_int_equal(job->parts[1].kind, TMPL_COLUMN);
    assert_string_equal(job->parts[1].text, "id");
    assert_int_equal(job->parts[1].len, 2);
    assert_non_null(post->location);
    assert_string_equal(post->location->source, "/api/jobs/{row.id}");
    assert_int_equal(post->location->parts[1].kind, TMPL_COLUMN);

    const struct route *sess = &c->routes[2];
    assert_int_equal(sess->params[0].from, PARAM_FROM_RANDOM);
    assert_int_equal(sess->params[0].random_bytes, 32);
    assert_int_equal(sess->params[0].type, PARAM_STRING);
    assert_int_equal(sess->invalidate[0].parts[1].kind, TMPL_PARAM);
    assert_int_equal(sess->invalidate[0].parts[1].param, 0);

    const struct route *del = &c->routes[3];
    assert_int_equal(del->method, RC_DELETE);
    assert_int_equal(del->result, RESULT_NONE);
    assert_int_equal(del->status, 204);
    assert_false(del->has_body);
    config_free(c);
}

static void test_defaults_applied(void **state)
{
    (void)state;
    struct rc_config *c = load_ok("{'routes':[" R0 "]}");
    assert_null(c->listen); /* --listen or an inherited socket */
    assert_int_equal(c->threads, 4);
    assert_int_equal(c->loops, 1);
    assert_string_equal(c->log_level, "info");
    assert_null(c->admin_token);
    assert_int_equal(c->max_body_bytes, 1048576);
    assert_int_equal(c->io_timeout_ms, 5000);
    assert_string_equal(c->database_url, "postgresql:///respcache");
    assert_int_equal(c->db_connect_timeout_ms, 2000);
    assert_int_equal(c->db_statement_timeout_ms, 5000);
    assert_string_equal(c->cache_provider, "memory");
    assert_int_equal(c->cache_default_ttl, 60);
    assert_int_equal(c->cache_negative_ttl, 30);
    assert_int_equal(c->cache_memory_max_bytes, 268435456);
    assert_int_equal(c->cache_memory_shards, 64);
    assert_int_equal(c->cache_tag_slots, 2097152); /* 0: one per 128 bytes of the budget */
    assert_null(c->redis_url);
    assert_string_equal(c->redis_key_prefix, "rc:");
    assert_int_equal(c->redis_connect_timeout_ms, 500);
    assert_int_equal(c->redis_command_timeout_ms, 500);
    assert_null(c->redis_tls_ca_file);
    assert_null(c->redis_tls_cert_file);
    assert_null(c->redis_tls_key_file);
    assert_int_equal(c->redis_tls_verify, 1);
    assert_int_equal(c->redis_breaker_failures, 5);
    assert_int_equal(c->redis_breaker_open_ms, 1000);
    assert_int_equal(c->tiered_l1_ttl_max, 10);

    const struct route *r = &c->routes[0];
    assert_int_equal(r->result, RESULT_OBJECT);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->ttl, 60);
    assert_int_equal(r->negative_ttl, 30);
    assert_int_equal(r->nparams, 0);
    assert_int_equal(r->ntags, 0);
    config_free(c);
}

static void test_param_defaults_by_source(void **state)
{
    (void)state;
    struct rc_config *c =
        load_ok(ROUTES("{'name':'r1','method':'PUT','path':'/s/{key}','params':["
                       "{'name':'key','from':'path','chars':'a-z_'},"
                       "{'name':'value','from':'body','type':'any','default':{'a':[1,2.5,null]}},"
                       "{'name':'n','from':'query','type':'int'},"
                       "{'name':'ratio','from':'body','type':'number','default':0.1},"
                       "{'name':'on','from':'body','type':'bool','default':false},"
                       "{'name':'label','from':'query','default':'x y'}],"
                       "'sql':'SELECT $1, $2, $3, $4, $5, $6'}"));
    const struct route *r = &c->routes[1];
    assert_int_equal(r->params[0].type, PARAM_STRING);
    assert_true(r->params[0].required);
    assert_string_equal(r->params[1].default_text, "{\"a\":[1,2.5,null]}");
    assert_true(r->params[2].min == INT64_MIN && r->params[2].max == INT64_MAX);
    assert_false(r->params[2].has_default);
    assert_null(r->params[2].default_text);
    assert_string_equal(r->params[3].default_text, "0.1");
    assert_string_equal(r->params[4].default_text, "false");
    assert_string_equal(r->params[5].default_text, "x y");
    assert_true(r->has_body);
    config_free(c);
}

static void test_sql_placeholders_in_quotes_and_comments_are_ignored(void **state)
{
    (void)state;
    struct rc_config *c =
        load_ok(GETP("{'name':'id','from':'path'}",
                     "SELECT \\u0027$2\\u0027, \\\"$3\\\" -- $4\\n, $$ $5 $$, $q$ $6 $q$ /* $7 */ "
                     "FROM t WHERE id = $1"));
    config_free(c);
}

static void test_chars_class_escapes_and_dashes(void **state)
{
    (void)state;
    struct rc_config *c =
        load_ok(GETP("{'name':'id','from':'path','chars':'-a-c\\\\]\\\\-x-'}", "SELECT $1"));
    const struct route_param *p = &c->routes[1].params[0];
    const char *yes = "-abc]x";
    const char *no = "dwX\\^";
    for (const char *s = yes; *s != '\0'; s++)
        assert_true(config_char_allowed(p, (unsigned char)*s));
    for (const char *s = no; *s != '\0'; s++)
        assert_false(config_char_allowed(p, (unsigned char)*s));
    config_free(c);
}

/* ---- environment ------------------------------------------------------ */

static void test_env_overrides_file_and_route_ttl_default(void **state)
{
    (void)state;
    set_env("CACHE_DEFAULT_TTL", "120");
    set_env("DATABASE_URL", "postgresql://env@h/db");
    set_env("RESPCACHE_ADMIN_TOKEN", "from-env-token");
    set_env("CACHE_PROVIDER", "none");
    set_env("CACHE_MEMORY_MAX_BYTES", "2199023255552"); /* 2 TiB: out of range */
    char errbuf[RC_ERRBUF];
    struct rc_config *c = load("{'database':{'url':'postgresql:///file'},'cache':{'default_ttl':5},"
                               "'routes':[" R0 "]}",
                               errbuf);
    assert_null(c);
    assert_non_null(strstr(errbuf, "CACHE_MEMORY_MAX_BYTES: expected an integer"));

    env_count = 4;
    c = load_ok("{'database':{'url':'postgresql:///file'},'cache':{'default_ttl':5},"
                "'routes':[" R0 "]}");
    assert_int_equal(c->cache_default_ttl, 120);
    assert_int_equal(c->routes[0].ttl, 120);
    assert_string_equal(c->database_url, "postgresql://env@h/db");
    assert_string_equal(c->admin_token, "from-env-token");
    assert_string_equal(c->cache_provider, "none");
    config_free(c);
}

static void test_redis_settings_from_file_and_env(void **state)
{
    (void)state;
    struct rc_config *c =
        load_ok("{'cache':{'provider':'tiered','redis_url':'rediss://app:pw@r.example:6390/2',"
                "'redis_connect_timeout_ms':250,'redis_command_timeout_ms':100,"
                "'redis_tls_ca_file':'/etc/ca.pem','redis_tls_verify':0,"
                "'redis_breaker_failures':3,'redis_breaker_open_ms':2000,"
                "'tiered_l1_ttl_max':5},'routes':[" R0 "]}");
    assert_string_equal(c->cache_provider, "tiered");
    assert_string_equal(c->redis_url, "rediss://app:pw@r.example:6390/2");
    assert_int_equal(c->redis_connect_timeout_ms, 250);
    assert_int_equal(c->redis_command_timeout_ms, 100);
    assert_string_equal(c->redis_tls_ca_file, "/etc/ca.pem");
    assert_int_equal(c->redis_tls_verify, 0);
    assert_int_equal(c->redis_breaker_failures, 3);
    assert_int_equal(c->redis_breaker_open_ms, 2000);
    assert_int_equal(c->tiered_l1_ttl_max, 5);
    config_free(c);

    set_env("CACHE_PROVIDER", "redis");
    set_env("REDIS_URL", "unix:/run/redis.sock");
    set_env("REDIS_COMMAND_TIMEOUT_MS", "50");
    set_env("REDIS_TLS_CERT_FILE", "/etc/client.pem");
    set_env("REDIS_TLS_KEY_FILE", "/etc/client.key");
    set_env("REDIS_BREAKER_FAILURES", "7");
    set_env("REDIS_BREAKER_OPEN_MS", "300");
    set_env("CACHE_TIERED_L1_TTL_MAX", "60");
    c = load_ok("{'routes':[" R0 "]}");
    assert_string_equal(c->cache_provider, "redis");
    assert_string_equal(c->redis_url, "unix:/run/redis.sock");
    assert_int_equal(c->redis_command_timeout_ms, 50);
    assert_string_equal(c->redis_tls_cert_file, "/etc/client.pem");
    assert_string_equal(c->redis_tls_key_file, "/etc/client.key");
    assert_int_equal(c->redis_breaker_failures, 7);
    assert_int_equal(c->redis_breaker_open_ms, 300);
    assert_int_equal(c->tiered_l1_ttl_max, 60);
    config_free(c);
}

static void test_redis_settings_bounds(void **state)
{
    (void)state;
    expect_error("{'cache':{'redis_tls_verify':2},'routes':[" R0 "]}",
                 "cache.redis_tls_verify: expected an integer from 0 to 1, got 2");
    expect_error("{'cache':{'redis_command_timeout_ms':0},'routes':[" R0 "]}",
                 "cache.redis_command_timeout_ms: expected an integer from 1 to 60000");
    expect_error("{'cache':{'redis_breaker_failures':0},'routes':[" R0 "]}",
                 "cache.redis_breaker_failures: expected an integer from 1 to 1000");
    expect_error("{'cache':{'tiered_l1_ttl_max':0},'routes':[" R0 "]}",
                 "cache.tiered_l1_ttl_max: expected an integer from 1 to 86400");
    expect_error("{'cache':{'redis_tls_ca_file':''},'routes':[" R0 "]}",
                 "cache.redis_tls_ca_file: expected a non-empty string");
    set_env("REDIS_CONNECT_TIMEOUT_MS", "fast");
    expect_error("{'routes':[" R0 "]}", "REDIS_CONNECT_TIMEOUT_MS: expected an integer");
}

static void test_env_invalid_value_names_the_variable(void **state)
{
    (void)state;
    char errbuf[RC_ERRBUF];
    set_env("CACHE_DEFAULT_TTL", "abc");
    assert_null(load("{'routes':[" R0 "]}", errbuf));
    assert_string_equal(errbuf,
                        "CACHE_DEFAULT_TTL: expected an integer from 0 to 31536000, got \"abc\"");
}

static void test_env_rejects_trailing_junk_and_bad_choices(void **state)
{
    (void)state;
    set_env("RESPCACHE_THREADS", "4x");
    expect_error("{'routes':[" R0 "]}", "RESPCACHE_THREADS: expected an integer from 1 to 256");
    env_count = 0;
    set_env("RESPCACHE_THREADS", " 4");
    expect_error("{'routes':[" R0 "]}", "RESPCACHE_THREADS: expected an integer");
    env_count = 0;
    set_env("CACHE_MEMORY_SHARDS", "48");
    expect_error("{'routes':[" R0 "]}",
                 "CACHE_MEMORY_SHARDS: expected a power of two from 1 to 1024, got 48");
    env_count = 0;
    set_env("LOG_LEVEL", "verbose");
    expect_error("{'routes':[" R0 "]}",
                 "LOG_LEVEL: expected one of debug, info, warn, error, got \"verbose\"");
    env_count = 0;
    set_env("RESPCACHE_LISTEN", "localhost");
    expect_error("{'routes':[" R0 "]}", "RESPCACHE_LISTEN: expected host:port or unix:/path");
}

static void test_env_empty_admin_token_disables_admin(void **state)
{
    (void)state;
    set_env("RESPCACHE_ADMIN_TOKEN", "");
    struct rc_config *c = load_ok("{'admin_token':'file-token','routes':[" R0 "]}");
    assert_null(c->admin_token);
    config_free(c);
}

/* ---- files and syntax ------------------------------------------------- */

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_config_XXXXXX";
    char errbuf[RC_ERRBUF];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char *json = q("{'routes':[" R0 "]}");
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    free(json);
    struct rc_config *c = config_load(path, errbuf);
    if (c == NULL)
        fail_msg("config_load: %s", errbuf);
    assert_string_equal(c->routes[0].name, "r0");
    config_free(c);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    const char *bad = "{\n  \"threads\": 4,\n  \"loops\": ,\n}\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    assert_null(config_load(path, errbuf));
    char want[128];
    snprintf(want, sizeof(want), "%s:3:", path);
    if (strstr(errbuf, want) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", want, errbuf);
    unlink(path);

    assert_null(config_load(path, errbuf));
    assert_non_null(strstr(errbuf, path));
}

static void test_malformed_json_reports_line_and_column(void **state)
{
    (void)state;
    expect_error("{\n 'threads': 4,\n 'routes': [\n   {'name': 'x' 'method': 'GET'}\n ]\n}",
                 "test.json:4:");
    expect_error("{'threads': 4, 'threads': 5, 'routes':[" R0 "]}", "duplicate");
    expect_error("[]", "test.json: expected a JSON object at the top level");
    expect_error("{'routes':[" R0 "]} trailing", "test.json:1:");
}

/* ---- error cases: settings -------------------------------------------- */

static void test_unknown_keys_are_named_at_every_level(void **state)
{
    (void)state;
    expect_error("{'thread':4,'routes':[" R0 "]}", "thread: unknown key");
    expect_error("{'database':{'uri':'x'},'routes':[" R0 "]}", "database.uri: unknown key");
    expect_error("{'cache':{'ttl':5},'routes':[" R0 "]}", "cache.ttl: unknown key");
    expect_error("{'cache.provider':'none','routes':[" R0 "]}", "cache.provider: unknown key");
    expect_error(GET1(",'ttll':5"), "routes[1].ttll: unknown key");
    expect_error(GETP("{'name':'id','from':'path','maxx':3}", "SELECT $1"),
                 "routes[1].params[0].maxx: unknown key");
}

static void test_wrong_json_types_are_named(void **state)
{
    (void)state;
    expect_error("{'threads':'4','routes':[" R0 "]}",
                 "threads: expected an integer from 1 to 256, got a string");
    expect_error("{'threads':4.0,'routes':[" R0 "]}", "threads: expected an integer");
    expect_error("{'listen':9000,'routes':[" R0 "]}",
                 "listen: expected a string or null, got an integer");
    expect_error("{'database':'postgresql:///x','routes':[" R0 "]}",
                 "database: expected an object");
    expect_error("{'cache':{'redis_url':5},'routes':[" R0 "]}",
                 "cache.redis_url: expected a string or null");
    expect_error("{'routes':{}}", "routes: expected an array");
    expect_error("{'routes':[5]}", "routes[0]: expected an object");
    expect_error(GET1(",'ttl':'60'"), "routes[1].ttl: expected an integer");
    expect_error(GET1(",'tags':'x'"), "routes[1].tags: expected an array");
    expect_error(GET1(",'tags':[5]"), "routes[1].tags[0]: expected a string");
    expect_error(GETP("{'name':'id','from':'path','required':'yes'}", "SELECT $1"),
                 "routes[1].params[0].required: expected true or false");
    expect_error(GETP("'id'", "SELECT $1"), "routes[1].params[0]: expected an object");
}

static void test_setting_values_are_validated(void **state)
{
    (void)state;
    expect_error("{'cache':{'provider':'memcached'},'routes':[" R0 "]}",
                 "cache.provider: expected one of memory, redis, tiered, none, got \"memcached\"");
    expect_error("{'log_level':'trace','routes':[" R0 "]}", "log_level: expected one of");
    expect_error("{'threads':0,'routes':[" R0 "]}",
                 "threads: expected an integer from 1 to 256, got 0");
    expect_error("{'cache':{'memory_shards':48},'routes':[" R0 "]}",
                 "cache.memory_shards: expected a power of two from 1 to 1024, got 48");
    expect_error("{'cache':{'tag_slots':1000},'routes':[" R0 "]}",
                 "cache.tag_slots: expected a power of two");
    expect_error("{'cache':{'default_ttl':-1},'routes':[" R0 "]}", "cache.default_ttl:");
    expect_error("{'listen':'127.0.0.1:99999','routes':[" R0 "]}",
                 "listen: expected host:port or unix:/path");
    expect_error("{'admin_token':'','routes':[" R0 "]}", "admin_token: expected a non-empty");
    expect_error("{'database':{'url':null},'routes':[" R0 "]}", "database.url: expected a string");
}

/* ---- error cases: routes ---------------------------------------------- */

static void test_routes_required_and_non_empty(void **state)
{
    (void)state;
    expect_error("{'threads':4}", "routes: required");
    expect_error("{'routes':[]}", "routes: expected at least one route");
    expect_error(ROUTES("{'method':'GET','path':'/x','sql':'SELECT 1'}"),
                 "routes[1].name: required");
    expect_error(ROUTES("{'name':'r1','method':'GET','path':'/x'}"), "routes[1].sql: required");
    expect_error(ROUTES("{'name':'r1','method':'GET','path':'/x','sql':' \\n '}"),
                 "routes[1].sql: expected a non-empty statement");
}

static void test_route_name_method_and_result_are_checked(void **state)
{
    (void)state;
    expect_error(ROUTES("{'name':'User','method':'GET','path':'/x','sql':'SELECT 1'}"),
                 "routes[1].name: expected [a-z0-9_]{1,64}");
    expect_error(ROUTES("{'name':'r0','method':'GET','path':'/x','sql':'SELECT 1'}"),
                 "routes[1].name: duplicate route name \"r0\" (also routes[0])");
    expect_error(ROUTES("{'name':'r1','method':'HEAD','path':'/x','sql':'SELECT 1'}"),
                 "routes[1].method: expected one of GET, POST, PUT, PATCH, DELETE");
    expect_error(GET1(",'result':'rows'"), "routes[1].result: expected one of object, array");
    expect_error(GET1(",'status':404"), "routes[1].status: expected an integer from 200 to 299");
    expect_error(GET1(",'status':204"), "routes[1].status: 204 has no body");
    expect_error(GET1(",'result':'none','status':200"), "routes[1].status: result \"none\"");
    expect_error(GET1(",'ttl':31536001"), "routes[1].ttl: expected an integer from 0 to 31536000");
}

static void test_bad_path_templates(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"api/x", "routes[1].path: expected a template starting with '/'"},
        {"/api//x", "routes[1].path: empty segment"},
        {"/api/x y", "routes[1].path: character ' ' is not allowed"},
        {"/api/{id", "routes[1].path: segment \"{id\" must be a whole"},
        {"/api/x{id}", "routes[1].path: character '{' is not allowed"},
        {"/api/{Id}", "routes[1].path: bad param name"},
        {"/api/{id:uuid}", "routes[1].path: unknown type"},
        {"/api/{id}/{id}", "routes[1].path: param {id} appears twice"},
        {"/api/../x", "routes[1].path: \".\" and \"..\" segments are not allowed"},
    };
    char json[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(json, sizeof(json),
                 ROUTES("{'name':'r1','method':'GET','path':'%s','sql':'SELECT 1'}"), cases[i][0]);
        expect_error(json, cases[i][1]);
    }
}

static void test_same_method_and_path_twice_is_an_error(void **state)
{
    (void)state;
    expect_error("{'routes':["
                 "{'name':'a','method':'GET','path':'/u/{id:int}',"
                 " 'params':[{'name':'id','from':'path'}],'sql':'SELECT $1'},"
                 "{'name':'b','method':'GET','path':'/u/{uid}',"
                 " 'params':[{'name':'uid','from':'path'}],'sql':'SELECT $1'}]}",
                 "routes[1].path: GET /u/{uid} is already declared by routes[0] (a)");
    struct rc_config *c = load_ok("{'routes':["
                                  "{'name':'a','method':'GET','path':'/u','sql':'SELECT 1'},"
                                  "{'name':'b','method':'POST','path':'/u','sql':'SELECT 1'},"
                                  "{'name':'c','method':'GET','path':'/u/','sql':'SELECT 1'}]}");
    config_free(c);
}

static void test_path_params_must_be_declared_and_match(void **state)
{
    (void)state;
    expect_error(ROUTES("{'name':'r1','method':'GET','path':'/x/{id}','sql':'SELECT 1'}"),
                 "routes[1].params: path parameter 'id' is not declared");
    expect_error(GETP("{'name':'id','from':'query'}", "SELECT $1"),
                 "routes[1].params[0].from: 'id' is a parameter of the path template");
    expect_error(GETP("{'name':'id','from':'path'},{'name':'x','from':'path'}", "SELECT $1, $2"),
                 "routes[1].params[1]: path parameter 'x' does not appear in the path template");
    expect_error(ROUTES("{'name':'r1','method':'GET','path':'/x/{id:int}',"
                        "'params':[{'name':'id','from':'path','type':'string'}],"
                        "'sql':'SELECT $1'}"),
                 "routes[1].params[0].type: the path template declares {id:int}");
    expect_error(GETP("{'name':'id','from':'path','type':'bool'}", "SELECT $1"),
                 "routes[1].params[0].type: path params are int or string");
    expect_error(GETP("{'name':'id','from':'path','required':false}", "SELECT $1"),
                 "routes[1].params[0].required: path params are always required");
    expect_error(GETP("{'name':'id','from':'path','default':'x'}", "SELECT $1"),
                 "routes[1].params[0].default: path params cannot have a default");
    expect_error(GETP("{'name':'id','from':'path'},{'name':'id','from':'query'}", "SELECT $1, $2"),
                 "routes[1].params[1].name: duplicate param name \"id\"");
}

static void test_sql_placeholders_must_match_params(void **state)
{
    (void)state;
    expect_error(GETP("{'name':'id','from':'path'}", "SELECT $1, $3"),
                 "routes[1].sql: $3 is out of range (the route declares 1 params)");
    expect_error(GETP("{'name':'id','from':'path'}", "SELECT $0 + $1"),
                 "routes[1].sql: $0 is out of range");
    expect_error(GETP("{'name':'id','from':'path'},{'name':'x','from':'query'}", "SELECT $1"),
                 "routes[1].params[1] 'x' is not used by sql as $2");
    expect_error(ROUTES("{'name':'r1','method':'GET','path':'/x','sql':'SELECT $1'}"),
                 "routes[1].sql: $1 is out of range (the route declares 0 params)");
}

static void test_param_fields_are_checked(void **state)
{
    (void)state;
    expect_error(GETP("{'name':'id','from':'path'},{'name':'Q','from':'query'}", "SELECT $1, $2"),
                 "routes[1].params[1].name: expected [a-z_][a-z0-9_]{0,63}");
    expect_error(GETP("{'name':'id','from':'path'},{'name':'q','from':'header'}", "SELECT $1, $2"),
                 "routes[1].params[1].from: expected one of path, query, body, random");
    expect_error(GETP("{'name':'id','from':'path'},{'name':'q'}", "SELECT $1, $2"),
                 "routes[1].params[1].from: required");
    expect_error(GETP("{'name':'id','from':'path'},{'name':'q','from':'query','type':'object'}",
                      "SELECT $1, $2"),
                 "routes[1].params[1].type: object params come from the body");
    expect_error(GETP("{'name':'id','from':'path'},{'name':'q','from':'body'}", "SELECT $1, $2"),
                 "routes[1].params[1].from: body params need a POST, PUT or PATCH route");
    expect_error(GETP("{'name':'id','from':'path','max_length':10,'min':1}", "SELECT $1"),
                 "routes[1].params[0].min: only int params have min and max");
    expect_error(GETP("{'name':'id','from':'path','type':'int','max_length':10}", "SELECT $1"),
                 "routes[1].params[0].max_length: only string params have max_length");
    expect_error(GETP("{'name':'id','from':'path','type':'int','min':5,'max':4}", "SELECT $1"),
                 "routes[1].params[0].max: expected an integer >= min (5), got 4");
    expect_error(GETP("{'name':'id','from':'path','min_length':5,'max_length':4}", "SELECT $1"),
                 "routes[1].params[0].min_length: expected an integer <= max_length (4), got 5");
    expect_error(GETP("{'name':'id','from':'path','enum':[]}", "SELECT $1"),
                 "routes[1].params[0].enum: expected a non-empty array of strings");
    expect_error(GETP("{'name':'id','from':'path','enum':['a',1]}", "SELECT $1"),
                 "routes[1].params[0].enum[1]: expected a string");
    expect_error(GETP("{'name':'id','from':'path','enum':['a','a']}", "SELECT $1"),
                 "routes[1].params[0].enum[1]: duplicate value");
    expect_error(GETP("{'name':'id','from':'path','bytes':16}", "SELECT $1"),
                 "routes[1].params[0].bytes: only random params have bytes");
}

static void test_too_many_params_is_an_error(void **state)
{
    (void)state;
    char json[4096], params[3072], sql[256];
    size_t o = 0, s = 0;
    s += (size_t)snprintf(sql, sizeof(sql), "SELECT 1");
    for (int i = 0; i < 17; i++) {
        o += (size_t)snprintf(params + o, sizeof(params) - o, "%s{'name':'p%d','from':'query'}",
                              i > 0 ? "," : "", i);
        s += (size_t)snprintf(sql + s, sizeof(sql) - s, ",$%d", i + 1);
    }
    snprintf(json, sizeof(json),
             ROUTES("{'name':'r1','method':'GET','path':'/x','params':[%s],'sql':'%s'}"), params,
             sql);
    expect_error(json, "routes[1].params: expected at most 16 elements, got 17");
}

static void test_bad_chars_classes(void **state)
{
    (void)state;
    expect_error(GETP("{'name':'id','from':'path','chars':'z-a'}", "SELECT $1"),
                 "routes[1].params[0].chars: range z-a is reversed");
    expect_error(GETP("{'name':'id','from':'path','chars':'a-z-9'}", "SELECT $1"),
                 "routes[1].params[0].chars: '-' must be first, last or escaped");
    expect_error(GETP("{'name':'id','from':'path','chars':'^a-z'}", "SELECT $1"),
                 "routes[1].params[0].chars: negated classes are not supported");
    expect_error(GETP("{'name':'id','from':'path','chars':''}", "SELECT $1"),
                 "routes[1].params[0].chars: expected a non-empty character class");
    expect_error(GETP("{'name':'id','from':'path','chars':'a\\\\'}", "SELECT $1"),
                 "routes[1].params[0].chars: trailing backslash");
    expect_error(GETP("{'name':'id','from':'path','chars':'a-\\u00e9'}", "SELECT $1"),
                 "routes[1].params[0].chars: only printable ASCII");
}

static void test_tag_slots_follow_the_budget(void **state)
{
    (void)state;
    struct rc_config *c = load_ok("{'cache':{'memory_max_bytes':1048576},'routes':[" R0 "]}");
    assert_int_equal(c->cache_tag_slots, 8192);
    config_free(c);
    /* Rounded up to a power of two. */
    c = load_ok("{'cache':{'memory_max_bytes':1000000},'routes':[" R0 "]}");
    assert_int_equal(c->cache_tag_slots, 8192);
    config_free(c);
    /* At least TAG_SLOTS_MIN, at most TAG_SLOTS_MAX. */
    c = load_ok("{'cache':{'memory_max_bytes':65536},'routes':[" R0 "]}");
    assert_int_equal(c->cache_tag_slots, TAG_SLOTS_MIN);
    config_free(c);
    c = load_ok("{'cache':{'memory_max_bytes':1099511627776},'routes':[" R0 "]}");
    assert_int_equal(c->cache_tag_slots, TAG_SLOTS_MAX);
    config_free(c);
    /* An explicit size wins, and 0 asks for the default. */
    c = load_ok("{'cache':{'memory_max_bytes':1048576,'tag_slots':64},'routes':[" R0 "]}");
    assert_int_equal(c->cache_tag_slots, 64);
    config_free(c);
    c = load_ok("{'cache':{'tag_slots':0},'routes':[" R0 "]}");
    assert_int_equal(c->cache_tag_slots, 2097152);
    config_free(c);
    expect_error("{'cache':{'tag_slots':33554432},'routes':[" R0 "]}",
                 "cache.tag_slots: expected a power of two");
    expect_error("{'cache':{'tag_slots':8},'routes':[" R0 "]}",
                 "cache.tag_slots: expected 0 (from the budget) or a power of two from 16");
}

static void test_defaults_must_satisfy_the_param(void **state)
{
    (void)state;
    expect_error(GETP("{'name':'id','from':'path'},"
                      "{'name':'limit','from':'query','type':'int','min':1,'max':100,"
                      "'default':500}",
                      "SELECT $1, $2"),
                 "routes[1].params[1].default: expected an integer from 1 to 100 (min/max), got "
                 "500");
    expect_error(GETP("{'name':'id','from':'path'},"
                      "{'name':'limit','from':'query','type':'int','default':'20'}",
                      "SELECT $1, $2"),
                 "routes[1].params[1].default: expected an integer, got a string");
    expect_error(GETP("{'name':'id','from':'path'},"
                      "{'name':'s','from':'query','enum':['a','b'],'default':'c'}",
                      "SELECT $1, $2"),
                 "routes[1].params[1].default: expected one of a, b");
    expect_error(GETP("{'name':'id','from':'path'},"
                      "{'name':'s','from':'query','max_length':2,'default':'abc'}",
                      "SELECT $1, $2"),
                 "routes[1].params[1].default: expected a string of at most 2 bytes");
    expect_error(GETP("{'name':'id','from':'path'},"
                      "{'name':'s','from':'query','chars':'a-z','default':'aB'}",
                      "SELECT $1, $2"),
                 "routes[1].params[1].default: byte 1 (0x42) is not allowed by chars");
    expect_error(GETP("{'name':'id','from':'path'},"
                      "{'name':'s','from':'query','required':true,'default':'a'}",
                      "SELECT $1, $2"),
                 "routes[1].params[1].default: a required param cannot have a default");
}

static void test_random_params_need_bytes_in_range(void **state)
{
    (void)state;
    expect_error(ROUTES("{'name':'r1','method':'POST','path':'/s',"
                        "'params':[{'name':'t','from':'random','bytes':8}],'sql':'SELECT $1'}"),
                 "routes[1].params[0].bytes: expected an integer from 16 to 64, got 8");
    expect_error(ROUTES("{'name':'r1','method':'POST','path':'/s',"
                        "'params':[{'name':'t','from':'random','bytes':65}],'sql':'SELECT $1'}"),
                 "routes[1].params[0].bytes: expected an integer from 16 to 64, got 65");
    expect_error(ROUTES("{'name':'r1','method':'POST','path':'/s',"
                        "'params':[{'name':'t','from':'random'}],'sql':'SELECT $1'}"),
                 "routes[1].params[0].bytes: required for random params");
    expect_error(
        ROUTES("{'name':'r1','method':'POST','path':'/s','params':"
               "[{'name':'t','from':'random','type':'int','bytes':16}],'sql':'SELECT $1'}"),
        "routes[1].params[0].type: random params are strings");
}

static void test_tags_and_invalidate_belong_to_the_right_methods(void **state)
{
    (void)state;
    expect_error(ROUTES("{'name':'r1','method':'POST','path':'/x','sql':'SELECT 1',"
                        "'tags':['x']}"),
                 "routes[1].tags: only GET routes have tags");
    expect_error(GET1(",'invalidate':['x']"), "routes[1].invalidate: only write routes invalidate");
    expect_error(ROUTES("{'name':'r1','method':'DELETE','path':'/x','sql':'SELECT 1',"
                        "'ttl':5}"),
                 "routes[1].ttl: only GET routes are cached");
    expect_error(ROUTES("{'name':'r1','method':'PATCH','path':'/x','sql':'SELECT 1',"
                        "'negative_ttl':5}"),
                 "routes[1].negative_ttl: only GET routes are cached");
    expect_error(GET1(",'location':'/y'"), "routes[1].location: only write routes");
}

static void test_tag_templates_are_checked(void **state)
{
    (void)state;
    expect_error(ROUTES("{'name':'r1','method':'GET','path':'/x/{id}','params':"
                        "[{'name':'id','from':'path'}],'sql':'SELECT $1',"
                        "'tags':['user:{id}','user:{row.id}']}"),
                 "routes[1].tags[1]: {row.id} is only available in invalidate and location");
    expect_error(ROUTES("{'name':'r1','method':'GET','path':'/x/{id}','params':"
                        "[{'name':'id','from':'path'}],'sql':'SELECT $1','tags':['user:{uid}']}"),
                 "routes[1].tags[0]: {uid} is not a declared param");
    expect_error(ROUTES("{'name':'r1','method':'GET','path':'/x/{id}','params':"
                        "[{'name':'id','from':'path'},{'name':'s','from':'query'}],"
                        "'sql':'SELECT $1, $2','tags':['x:{s}']}"),
                 "routes[1].tags[0]: {s} may be absent");
    expect_error(ROUTES("{'name':'r1','method':'GET','path':'/x/{id}','params':"
                        "[{'name':'id','from':'path'}],'sql':'SELECT $1','tags':['user:{id']}"),
                 "routes[1].tags[0]: unclosed '{'");
    expect_error(ROUTES("{'name':'r1','method':'GET','path':'/x/{id}','params':"
                        "[{'name':'id','from':'path'}],'sql':'SELECT $1','tags':['user}']}"),
                 "routes[1].tags[0]: unmatched '}'");
    expect_error(GET1(",'tags':['']"), "routes[1].tags[0]: expected a non-empty template");
    expect_error(GET1(",'tags':['a b']"), "routes[1].tags[0]: spaces and control characters");
    expect_error(ROUTES("{'name':'r1','method':'POST','path':'/x','sql':'SELECT 1',"
                        "'invalidate':['job:{row.1d}']}"),
                 "routes[1].invalidate[0]: bad column name");
    expect_error(ROUTES("{'name':'r1','method':'POST','path':'/x','sql':'SELECT 1',"
                        "'location':'/x/{nope}'}"),
                 "routes[1].location: {nope} is not a declared param");
    expect_error(GET1(",'tags':['a','b','c','d','e','f','g','h','i','j','k','l','m','n','o','p']"),
                 "routes[1].tags: expected at most 15 elements, got 16");
}

/* ---- printing and small lookups --------------------------------------- */

static char *capture(void (*fn)(const struct rc_config *, FILE *), const struct rc_config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    fn(c, f);
    fclose(f);
    return text;
}

static void print_help(const struct rc_config *c, FILE *f)
{
    (void)c;
    config_print_help(f);
}

static void test_print_config_masks_secrets(void **state)
{
    (void)state;
    struct rc_config *c = load_ok(full_config);
    char *text = capture(config_print, c);
    assert_non_null(strstr(text, "threads"));
    assert_non_null(strstr(text, "cache.memory_shards"));
    assert_non_null(strstr(text, "postgresql://app:****@db.example/respcache"));
    assert_non_null(strstr(text, "redis://:****@cache:6379/0"));
    assert_non_null(strstr(text, "user_jobs"));
    if (strstr(text, "hunter2") || strstr(text, "redpass") || strstr(text, "sekrit"))
        fail_msg("a secret was printed:\n%s", text);
    free(text);
    config_free(c);

    set_env("DATABASE_URL", "host=db password=hunter2 dbname=x");
    c = load_ok("{'routes':[" R0 "]}");
    text = capture(config_print, c);
    assert_non_null(strstr(text, "host=db password=**** dbname=x"));
    assert_null(strstr(text, "hunter2"));
    free(text);
    config_free(c);
}

static void test_print_help_lists_every_setting(void **state)
{
    (void)state;
    char *text = capture(print_help, NULL);
    assert_non_null(strstr(text, "database.url"));
    assert_non_null(strstr(text, "DATABASE_URL"));
    assert_non_null(strstr(text, "CACHE_DEFAULT_TTL"));
    assert_non_null(strstr(text, "RESPCACHE_ADMIN_TOKEN"));
    assert_non_null(strstr(text, "a power of two from 1 to 1024"));
    free(text);
}

static void test_free_accepts_null_and_method_names(void **state)
{
    (void)state;
    config_free(NULL);
    assert_string_equal(config_method_name(RC_GET), "GET");
    assert_string_equal(config_method_name(RC_HEAD), "HEAD");
    assert_string_equal(config_method_name(RC_PATCH), "PATCH");
    assert_string_equal(config_method_name(RC_DELETE), "DELETE");
}

#define T(f) cmocka_unit_test_setup(f, reset_env)

/* ---- freshness: entities, windows, warm-up ---------------------------- */

static void test_tag_names_entity_by_literal_segments(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(config_tag_entity("user:{id}", out, sizeof out), 4);
    assert_string_equal(out, "user");
    assert_int_equal(config_tag_entity("user:{id}:jobs", out, sizeof out), 9);
    assert_string_equal(out, "user:jobs");
    assert_int_equal(config_tag_entity("settings", out, sizeof out), 8);
    assert_string_equal(out, "settings");
    assert_int_equal(config_tag_entity("{kind}:{id}", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(config_tag_entity("org-{id}:team", out, sizeof out), 4);
    assert_string_equal(out, "team");
    assert_int_equal(config_tag_entity("averyveryverylongname", out, 8), 0);
}

#define ENTITY_ROUTES                                                                              \
    "'routes':["                                                                                   \
    "{'name':'user','method':'GET','path':'/u/{id:int}','params':[{'name':'id','from':'path'}],"   \
    " 'sql':'SELECT $1','tags':['user:{id}']},"                                                    \
    "{'name':'dash','method':'GET','path':'/d/{id:int}','params':[{'name':'id','from':'path'}],"   \
    " 'sql':'SELECT $1','tags':['user:{id}','user:{id}:jobs']},"                                   \
    "{'name':'own','method':'GET','path':'/o/{id:int}','params':[{'name':'id','from':'path'}],"    \
    " 'sql':'SELECT $1','tags':['user:{id}:jobs'],'ttl':7,'stale_if_error':0},"                    \
    "{'name':'plain','method':'GET','path':'/p','sql':'SELECT 1','tags':['other']}]"

static void test_entities_give_route_ttls_and_windows(void **state)
{
    (void)state;
    struct rc_config *c = load_ok(
        "{'cache':{'default_ttl':60,'negative_ttl':30,'stale_while_revalidate':5,"
        "'stale_if_error':9},"
        "'entities':{'user':{'ttl':3600,'stale_while_revalidate':60,'stale_if_error':600},"
        "'user:jobs':{'ttl':300,'negative_ttl':10,'stale_while_revalidate':30}}," ENTITY_ROUTES
        "}");
    const struct route *user = &c->routes[0], *dash = &c->routes[1], *own = &c->routes[2],
                       *plain = &c->routes[3];
    assert_int_equal(c->nentities, 2);
    /* one entity: its values, the cache defaults for what it leaves out */
    assert_int_equal(user->ttl, 3600);
    assert_int_equal(user->negative_ttl, 30);
    assert_int_equal(user->stale_while_revalidate, 60);
    assert_int_equal(user->stale_if_error, 600);
    /* two entities: the smallest of each value that is set */
    assert_int_equal(dash->ttl, 300);
    assert_int_equal(dash->negative_ttl, 10);
    assert_int_equal(dash->stale_while_revalidate, 30);
    assert_int_equal(dash->stale_if_error, 600);
    /* the route's own values win */
    assert_int_equal(own->ttl, 7);
    assert_int_equal(own->stale_if_error, 0);
    assert_int_equal(own->stale_while_revalidate, 30);
    /* no entity named: the cache defaults */
    assert_int_equal(plain->ttl, 60);
    assert_int_equal(plain->negative_ttl, 30);
    assert_int_equal(plain->stale_while_revalidate, 5);
    assert_int_equal(plain->stale_if_error, 9);
    config_free(c);
}

static void test_entity_and_window_errors(void **state)
{
    (void)state;
    expect_error("{'entities':[]," ENTITY_ROUTES "}", "entities: expected an object");
    expect_error("{'entities':{'User':{}}," ENTITY_ROUTES "}",
                 "entities: bad entity name \"User\"");
    expect_error("{'entities':{'user':{'tll':1}}," ENTITY_ROUTES "}",
                 "entities.user.tll: unknown key");
    expect_error("{'entities':{'user':{'ttl':-1}}," ENTITY_ROUTES "}",
                 "entities.user.ttl: expected an integer from 0 to 31536000");
    expect_error("{'entities':{'user':{'stale_if_error':'x'}}," ENTITY_ROUTES "}",
                 "entities.user.stale_if_error: expected an integer");
    expect_error(GET1(",'stale_while_revalidate':-5"),
                 "routes[1].stale_while_revalidate: expected an integer from 0");
    expect_error(ROUTES("{'name':'r1','method':'POST','path':'/x','sql':'SELECT 1',"
                        "'stale_if_error':5}"),
                 "routes[1].stale_if_error: only GET routes are cached");
}

static void test_warm_entries_are_checked(void **state)
{
    (void)state;
    struct rc_config *c =
        load_ok("{'warm_concurrency':3,'warm':[{'route':'user','sql':'SELECT id FROM users',"
                "'limit':50},{'route':'dash','sql':'SELECT 1 AS id'}]," ENTITY_ROUTES "}");
    assert_int_equal(c->warm_concurrency, 3);
    assert_int_equal(c->nwarm, 2);
    assert_int_equal(c->warm[0].route, 0);
    assert_int_equal(c->warm[0].limit, 50);
    assert_string_equal(c->warm[0].sql, "SELECT id FROM users");
    assert_int_equal(c->warm[1].route, 1);
    assert_int_equal(c->warm[1].limit, 1000);
    config_free(c);

    expect_error("{'warm':{}," ENTITY_ROUTES "}", "warm: expected an array");
    expect_error("{'warm':[{'route':'nope','sql':'SELECT 1'}]," ENTITY_ROUTES "}",
                 "warm[0].route: no route is named \"nope\"");
    expect_error("{'warm':[{'route':'user'}]," ENTITY_ROUTES "}", "warm[0].sql");
    expect_error("{'warm':[{'route':'user','sql':'SELECT 1','limit':0}]," ENTITY_ROUTES "}",
                 "warm[0].limit: expected an integer from 1 to 100000");
    expect_error("{'warm':[{'route':'user','sql':'SELECT 1','rows':5}]," ENTITY_ROUTES "}",
                 "warm[0].rows: unknown key");
    expect_error("{'warm':[{'route':'r1','sql':'SELECT 1'}],'routes':[" R0 ","
                 "{'name':'r1','method':'GET','path':'/x','sql':'SELECT 1','ttl':0}]}",
                 "warm[0].route: \"r1\" is not a cached GET route");
    expect_error("{'warm_concurrency':0," ENTITY_ROUTES "}",
                 "warm_concurrency: expected an integer");
}

static void test_notify_channel_setting(void **state)
{
    (void)state;
    struct rc_config *c = load_ok("{'routes':[" R0 "]}");
    assert_string_equal(c->db_notify_channel, "respcache_invalidate");
    assert_int_equal(c->cache_singleflight_wait_ms, 3000);
    config_free(c);
    c = load_ok("{'database':{'notify_channel':null},'routes':[" R0 "]}");
    assert_null(c->db_notify_channel);
    config_free(c);
    expect_error("{'database':{'notify_channel':'Bad-Name'},'routes':[" R0 "]}",
                 "database.notify_channel: expected a lower-case SQL identifier or null");
    set_env("DATABASE_NOTIFY_CHANNEL", "");
    c = load_ok("{'routes':[" R0 "]}");
    assert_null(c->db_notify_channel);
    config_free(c);
}

/* ---- write_through ---------------------------------------------------- */

/* A cached GET of one user, and a PATCH of it that names it. */
#define WT_USER                                                                                    \
    "{'name':'user','method':'GET','path':'/u/{id:int}','params':[{'name':'id','from':'path'}],"   \
    " 'sql':'SELECT * FROM users WHERE id = $1','tags':['user:{id}']}"
#define WT_PATCH(extra)                                                                            \
    "{'name':'patch_user','method':'PATCH','path':'/u/{id:int}',"                                  \
    " 'params':[{'name':'id','from':'path'},{'name':'email','from':'body'}],"                      \
    " 'sql':'UPDATE users SET email = $2 WHERE id = $1 RETURNING *',"                              \
    " 'invalidate':['user:{id}']" extra "}"
#define WT_NAMES(target) WT_PATCH(",'write_through':'" target "'")

static void test_write_through_names_a_cached_get_route(void **state)
{
    (void)state;
    struct rc_config *c = load_ok(ROUTES(WT_USER "," WT_NAMES("user")));
    const struct route *get = &c->routes[1], *patch = &c->routes[2];

    assert_string_equal(patch->name, "patch_user");
    assert_non_null(patch->write_through_name);
    assert_string_equal(patch->write_through_name, "user");
    if (patch->write_through != get)
        fail_msg("routes[2].write_through must point at routes[1] (user)");
    assert_null(get->write_through);
    assert_null(get->write_through_name);
    assert_null(c->routes[0].write_through);

    char *text = capture(config_print, c);
    assert_non_null(strstr(text, "write_through user"));
    free(text);
    config_free(c);

    /* a PUT answering an object may name it too */
    c = load_ok(ROUTES(WT_USER ",{'name':'put_user','method':'PUT','path':'/u/{id:int}',"
                               "'params':[{'name':'id','from':'path'}],'sql':'SELECT $1',"
                               "'write_through':'user'}"));
    if (c->routes[2].write_through != &c->routes[1])
        fail_msg("the PUT's write_through must point at routes[1] (user)");
    config_free(c);
}

static void test_write_through_target_may_come_later(void **state)
{
    (void)state;
    struct rc_config *c = load_ok(ROUTES(WT_NAMES("user") "," WT_USER));
    const struct route *patch = &c->routes[1], *get = &c->routes[2];

    assert_string_equal(get->name, "user");
    if (patch->write_through != get)
        fail_msg("routes[1].write_through must point at routes[2] (user), declared after it");
    assert_string_equal(patch->write_through_name, "user");
    config_free(c);
}

static void test_write_through_only_on_writes_answering_an_object(void **state)
{
    (void)state;
    expect_error(ROUTES(WT_USER ",{'name':'user2','method':'GET','path':'/v/{id:int}',"
                                "'params':[{'name':'id','from':'path'}],'sql':'SELECT $1',"
                                "'write_through':'user'}"),
                 "routes[2].write_through: only a write route whose result is \"object\"");
    expect_error(ROUTES(WT_USER "," WT_PATCH(",'result':'array','write_through':'user'")),
                 "routes[2].write_through: only a write route whose result is \"object\"");
    expect_error(ROUTES(WT_USER "," WT_PATCH(",'result':'none','write_through':'user'")),
                 "routes[2].write_through: only a write route whose result is \"object\"");
    expect_error(ROUTES(WT_USER "," WT_PATCH(",'write_through':7")),
                 "routes[2].write_through: expected a string");
}

static void test_write_through_target_must_exist(void **state)
{
    (void)state;
    expect_error(ROUTES(WT_USER "," WT_NAMES("nope")),
                 "routes[2].write_through: no route named \"nope\"");
    expect_error(ROUTES(WT_USER "," WT_NAMES("User")),
                 "routes[2].write_through: no route named \"User\"");
}

static void test_write_through_target_must_be_a_cached_object_get(void **state)
{
    (void)state;
    const char *const must = "must be a cached GET route (ttl > 0) whose result is \"object\"";
    char want[256];

    /* another write, and the route itself */
    snprintf(want, sizeof(want), "routes[2].write_through: \"post_user\" %s", must);
    expect_error(ROUTES(WT_USER "," WT_NAMES(
                     "post_user") ","
                                  "{'name':'post_user','method':'POST','path':'/u/{id:int}',"
                                  "'params':[{'name':'id','from':'path'}],'sql':'SELECT $1'}"),
                 want);
    snprintf(want, sizeof(want), "routes[2].write_through: \"patch_user\" %s", must);
    expect_error(ROUTES(WT_USER "," WT_NAMES("patch_user")), want);

    /* a GET that is not cached: ttl 0 of its own, or from cache.default_ttl */
    snprintf(want, sizeof(want), "routes[2].write_through: \"user\" %s", must);
    expect_error(
        ROUTES(
            "{'name':'user','method':'GET','path':'/u/{id:int}',"
            "'params':[{'name':'id','from':'path'}],'sql':'SELECT $1','ttl':0}," WT_NAMES("user")),
        want);
    expect_error("{'cache':{'default_ttl':0},'routes':[" R0 "," WT_USER "," WT_NAMES("user") "]}",
                 want);

    /* a GET answering an array or a value */
    expect_error(ROUTES("{'name':'user','method':'GET','path':'/u/{id:int}',"
                        "'params':[{'name':'id','from':'path'}],'sql':'SELECT $1',"
                        "'result':'array'}," WT_NAMES("user")),
                 want);
    expect_error(ROUTES("{'name':'user','method':'GET','path':'/u/{id:int}',"
                        "'params':[{'name':'id','from':'path'}],'sql':'SELECT $1',"
                        "'result':'value'}," WT_NAMES("user")),
                 want);
}

static void test_write_through_target_params_come_from_the_write_path(void **state)
{
    (void)state;
    /* a query param: the write cannot know which value the GET's key has */
    expect_error(ROUTES("{'name':'user','method':'GET','path':'/u/{id:int}',"
                        "'params':[{'name':'id','from':'path'},{'name':'fields','from':'query'}],"
                        "'sql':'SELECT $1, $2'}," WT_NAMES("user")),
                 "routes[2].write_through: param \"fields\" of \"user\" is not from the path");

    /* a path param the write does not have */
    expect_error(ROUTES("{'name':'user','method':'GET','path':'/o/{org}/u/{id:int}',"
                        "'params':[{'name':'org','from':'path'},{'name':'id','from':'path'}],"
                        "'sql':'SELECT $1, $2'}," WT_NAMES("user")),
                 "routes[2].write_through: \"user\" has a param \"org\" that this route does "
                 "not have");
    /* the same, named differently */
    expect_error(
        ROUTES("{'name':'user','method':'GET','path':'/u/{uid:int}',"
               "'params':[{'name':'uid','from':'path'}],'sql':'SELECT $1'}," WT_NAMES("user")),
        "routes[2].write_through: \"user\" has a param \"uid\" that this route does "
        "not have");
}

static void test_write_through_maps_params_by_name(void **state)
{
    (void)state;
    /* The GET's params (org, id) sit at 2 and 0 among the PUT's. */
    struct rc_config *c =
        load_ok(ROUTES("{'name':'member','method':'GET','path':'/o/{org}/m/{id:int}',"
                       "'params':[{'name':'org','from':'path'},{'name':'id','from':'path'}],"
                       "'sql':'SELECT $1, $2','tags':['m:{id}']},"
                       "{'name':'put_member','method':'PUT','path':'/m/{id:int}/o/{org}',"
                       "'params':[{'name':'id','from':'path'},{'name':'note','from':'body'},"
                       "{'name':'org','from':'path'}],"
                       "'sql':'SELECT $1, $2, $3','invalidate':['m:{id}'],"
                       "'write_through':'member'}"));
    const struct route *put = &c->routes[2];

    assert_ptr_equal(put->write_through, &c->routes[1]);
    assert_non_null(put->write_through_from);
    assert_int_equal(put->write_through_from[0], 2);
    assert_int_equal(put->write_through_from[1], 0);
    config_free(c);
}

static void test_write_through_not_on_a_delete(void **state)
{
    (void)state;
    expect_error(ROUTES(WT_USER
                        ","
                        "{'name':'del_user','method':'DELETE','path':'/u/{id:int}',"
                        "'params':[{'name':'id','from':'path'}],"
                        "'sql':'DELETE FROM users WHERE id = $1 RETURNING *','result':'object',"
                        "'invalidate':['user:{id}'],'write_through':'user'}"),
                 "routes[2].write_through: a DELETE has nothing to store for a GET route");
}

static void test_write_through_params_have_the_same_type(void **state)
{
    (void)state;
    /* the GET's id is a string, the PATCH's an int: the keys could differ */
    expect_error(ROUTES("{'name':'user','method':'GET','path':'/u/{id}',"
                        "'params':[{'name':'id','from':'path'}],"
                        "'sql':'SELECT $1'}," WT_NAMES("user")),
                 "routes[2].write_through: param \"id\" is int here but string in \"user\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_full_config_loads_settings),
        T(test_full_config_get_route_params_and_tags),
        T(test_full_config_write_routes),
        T(test_defaults_applied),
        T(test_tag_slots_follow_the_budget),
        T(test_param_defaults_by_source),
        T(test_sql_placeholders_in_quotes_and_comments_are_ignored),
        T(test_chars_class_escapes_and_dashes),
        T(test_env_overrides_file_and_route_ttl_default),
        T(test_env_invalid_value_names_the_variable),
        T(test_redis_settings_from_file_and_env),
        T(test_redis_settings_bounds),
        T(test_env_rejects_trailing_junk_and_bad_choices),
        T(test_env_empty_admin_token_disables_admin),
        T(test_load_file),
        T(test_malformed_json_reports_line_and_column),
        T(test_unknown_keys_are_named_at_every_level),
        T(test_wrong_json_types_are_named),
        T(test_setting_values_are_validated),
        T(test_routes_required_and_non_empty),
        T(test_route_name_method_and_result_are_checked),
        T(test_bad_path_templates),
        T(test_same_method_and_path_twice_is_an_error),
        T(test_path_params_must_be_declared_and_match),
        T(test_sql_placeholders_must_match_params),
        T(test_param_fields_are_checked),
        T(test_too_many_params_is_an_error),
        T(test_bad_chars_classes),
        T(test_defaults_must_satisfy_the_param),
        T(test_random_params_need_bytes_in_range),
        T(test_tags_and_invalidate_belong_to_the_right_methods),
        T(test_tag_templates_are_checked),
        T(test_print_config_masks_secrets),
        T(test_print_help_lists_every_setting),
        T(test_free_accepts_null_and_method_names),
        T(test_tag_names_entity_by_literal_segments),
        T(test_entities_give_route_ttls_and_windows),
        T(test_entity_and_window_errors),
        T(test_warm_entries_are_checked),
        T(test_notify_channel_setting),
        T(test_write_through_names_a_cached_get_route),
        T(test_write_through_target_may_come_later),
        T(test_write_through_params_have_the_same_type),
        T(test_write_through_not_on_a_delete),
        T(test_write_through_maps_params_by_name),
        T(test_write_through_only_on_writes_answering_an_object),
        T(test_write_through_target_must_exist),
        T(test_write_through_target_must_be_a_cached_object_get),
        T(test_write_through_target_params_come_from_the_write_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
