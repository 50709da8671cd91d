/*
 * config.h - the daemon's settings and declared routes.
 *
 * One JSON file (jansson), environment variables on top, validated before
 * anything starts. Settings are declared once in a table in config.c (name,
 * type, default, environment variable, bounds, help); parsing, env overrides,
 * error messages and --help/--print-config all derive from that table.
 * Every error names the JSON path and what was expected, e.g.
 *   "routes[3].params[1].max: expected an integer >= min (1), got 0".
 *
 * File format (all keys optional except "routes"; unknown keys are errors):
 *
 * {
 *   "listen": "127.0.0.1:9000" | "unix:/run/respcache.sock",  (env RESPCACHE_LISTEN)
 *   "threads": 4,                   database workers (env RESPCACHE_THREADS, 1..256)
 *   "loops": 1,                     event loops (env RESPCACHE_LOOPS, 1..64)
 *   "log_level": "info",            debug|info|warn|error (env LOG_LEVEL)
 *   "log_file": null,               append logs here, reopened on SIGHUP (env RESPCACHE_LOG_FILE)
 *   "admin_token": null,            (env RESPCACHE_ADMIN_TOKEN)
 *   "max_body_bytes": 1048576,      (env RESPCACHE_MAX_BODY_BYTES)
 *   "io_timeout_ms": 5000,          FastCGI socket read/write bound
 *   "database": {
 *     "url": "postgresql:///respcache",     (env DATABASE_URL)
 *     "connect_timeout_ms": 2000,           (env DATABASE_CONNECT_TIMEOUT_MS)
 *     "statement_timeout_ms": 5000          (env DATABASE_STATEMENT_TIMEOUT_MS)
 *   },
 *   "cache": {
 *     "provider": "memory",                 memory|none (env CACHE_PROVIDER)
 *     "default_ttl": 60,                    seconds (env CACHE_DEFAULT_TTL)
 *     "negative_ttl": 30,                   seconds (env CACHE_NEGATIVE_TTL)
 *     "memory_max_bytes": 268435456,        (env CACHE_MEMORY_MAX_BYTES)
 *     "memory_shards": 64,                  power of two (env CACHE_MEMORY_SHARDS)
 *     "tag_slots": 262144,                  power of two (env CACHE_TAG_SLOTS)
 *     "redis_url": null,                    (env REDIS_URL)
 *     "redis_key_prefix": "rc:"             (env REDIS_KEY_PREFIX)
 *   },
 *   "routes": [ route, ... ]
 * }
 *
 * route:
 * {
 *   "name": "user",                 unique, [a-z0-9_]{1,64}; metric label and
 *                                   first part of the cache key
 *   "method": "GET",                GET|POST|PUT|PATCH|DELETE (GET implies HEAD)
 *   "path": "/api/users/{id:int}",  literal segments and {name} / {name:int} /
 *                                   {name:string} segments ({name} = string)
 *   "params": [                     SQL parameter $n is params[n-1]
 *     {"name": "id", "from": "path"},
 *     {"name": "limit", "from": "query", "type": "int", "min": 1, "max": 100,
 *      "default": 20},
 *     {"name": "status", "from": "query", "type": "string",
 *      "enum": ["queued", "running", "done", "failed"]},
 *     {"name": "email", "from": "body", "type": "string", "required": true,
 *      "max_length": 320},
 *     {"name": "token", "from": "random", "bytes": 32}
 *   ],
 *   "sql": "SELECT ... WHERE id = $1",
 *   "result": "object",            object: first row as an object, 404 if none
 *                                  array:  all rows as an array
 *                                  value:  first column of the first row, raw
 *                                          (404 if no row)
 *                                  none:   204 No Content, 404 if no row
 *   "status": 200,                 success status (201 for creates)
 *   "ttl": 3600,                   GET only; default cache.default_ttl; 0 = not cached
 *   "negative_ttl": 30,            GET only; TTL of a cached 404; 0 = not cached
 *   "tags": ["user:{id}"],         GET only; tag templates filled from params
 *   "invalidate": ["user:{id}", "user:{row.user_id}:jobs"],
 *                                  writes only; {p} = param p, {row.c} = column c
 *                                  of the first result row
 *   "location": "/api/users/{row.id}"   optional Location header template
 * }
 *
 * Param fields: "name" ([a-z_][a-z0-9_]{0,63}), "from" (path|query|body|random),
 * "type" (int|string|bool|number|object|any; default string, or the template's
 * type for path params), "required" (body: default false; path: always true),
 * "default" (query/body; a JSON value of the param's type), "min"/"max" (int
 * bounds; ids default to 1..INT64_MAX), "min_length"/"max_length" (string,
 * bytes), "chars" (string: allowed characters as a class body such as
 * "A-Za-z0-9_-"), "enum" (string: allowed values), "bytes" (random: number of
 * CSPRNG bytes, 16..64, rendered base64url without padding).
 *
 * Result columns whose name starts with "_" are left out of the JSON body but
 * can be used by {row._x} templates. A column named "_ttl" (seconds) caps the
 * entry's TTL (sessions that expire sooner than the route TTL).
 */
#ifndef RC_CONFIG_H
#define RC_CONFIG_H

#include "common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

enum rc_method {
    RC_GET = 1 << 0,
    RC_HEAD = 1 << 1,
    RC_POST = 1 << 2,
    RC_PUT = 1 << 3,
    RC_PATCH = 1 << 4,
    RC_DELETE = 1 << 5,
};

enum param_source { PARAM_FROM_PATH, PARAM_FROM_QUERY, PARAM_FROM_BODY, PARAM_FROM_RANDOM };

enum param_type {
    PARAM_STRING,
    PARAM_INT,
    PARAM_BOOL,
    PARAM_NUMBER,
    PARAM_OBJECT, /* JSON object, passed to SQL as JSON text */
    PARAM_ANY,    /* any JSON value, passed to SQL as JSON text */
};

enum result_shape { RESULT_OBJECT, RESULT_ARRAY, RESULT_VALUE, RESULT_NONE };

struct route_param {
    char *name;
    enum param_source from;
    enum param_type type;
    bool required;
    bool has_default;
    char *default_text; /* default rendered as SQL text (int "20", string as-is) */
    int64_t min, max;   /* PARAM_INT bounds (inclusive) */
    size_t min_length;  /* PARAM_STRING, bytes */
    size_t max_length;  /* PARAM_STRING, bytes; 0 = 1024 */
    bool has_chars;
    uint8_t chars[32];  /* bitmap of allowed bytes when has_chars */
    char **enum_values; /* PARAM_STRING, NULL if none */
    size_t n_enum;
    size_t random_bytes; /* PARAM_FROM_RANDOM */
};

/* A tag / location template compiled into literal and reference parts. */
enum tmpl_part_kind { TMPL_LITERAL, TMPL_PARAM, TMPL_COLUMN };

struct tmpl_part {
    enum tmpl_part_kind kind;
    char *text; /* literal text, or column name for TMPL_COLUMN */
    size_t len; /* strlen(text) */
    int param;  /* index into route->params for TMPL_PARAM */
};

struct tmpl {
    char *source; /* as written in the config, for messages */
    struct tmpl_part *parts;
    size_t nparts;
};

struct route {
    char *name;
    enum rc_method method; /* exactly one bit; GET routes also answer HEAD */
    char *path;            /* template as written */
    struct route_param *params;
    size_t nparams;
    char *sql;
    enum result_shape result;
    int status;
    int ttl;          /* seconds; 0 = not cached */
    int negative_ttl; /* seconds; 0 = 404s not cached */
    struct tmpl *tags;
    size_t ntags;
    struct tmpl *invalidate;
    size_t ninvalidate;
    struct tmpl *location; /* NULL when absent */
    bool has_body;         /* any param from body */
};

struct rc_config {
    char *listen;
    int threads;
    int loops;
    char *log_level;
    char *log_file;
    char *admin_token;
    int max_body_bytes;
    int io_timeout_ms;

    char *database_url;
    int db_connect_timeout_ms;
    int db_statement_timeout_ms;

    char *cache_provider;
    int cache_default_ttl;
    int cache_negative_ttl;
    int64_t cache_memory_max_bytes;
    int cache_memory_shards;
    int cache_tag_slots;
    char *redis_url;
    char *redis_key_prefix;

    struct route *routes;
    size_t nroutes;
};

/* Load `path`, apply environment overrides (from `getenv`-like `env`, NULL
 * means the process environment), validate. Returns NULL and fills errbuf
 * with "<json path>: <what was expected>" on any error. */
struct rc_config *config_load(const char *path, char *errbuf) RC_MUSTCHECK;
/* Same, from a JSON string already in memory (used by tests). */
struct rc_config *config_load_string(const char *json, const char *origin,
                                     const char *(*env)(const char *name),
                                     char *errbuf) RC_MUSTCHECK;
void config_free(struct rc_config *cfg);

/* Print every setting with its current value (secrets masked) to `out`. */
void config_print(const struct rc_config *cfg, FILE *out);
/* Print the settings table (name, env var, default, help) for --help. */
void config_print_help(FILE *out);

const char *config_method_name(enum rc_method m);
/* Is byte c allowed by the param's "chars" class (true if no class)? */
bool config_char_allowed(const struct route_param *p, unsigned char c);

#endif
