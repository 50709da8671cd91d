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
 *     "provider": "memory",                 memory|redis|tiered|none (env CACHE_PROVIDER)
 *     "default_ttl": 60,                    seconds (env CACHE_DEFAULT_TTL)
 *     "negative_ttl": 30,                   seconds (env CACHE_NEGATIVE_TTL)
 *     "memory_max_bytes": 268435456,        (env CACHE_MEMORY_MAX_BYTES)
 *     "memory_shards": 64,                  power of two (env CACHE_MEMORY_SHARDS)
 *     "tag_slots": 0,                       power of two; 0: from the budget (env CACHE_TAG_SLOTS)
 *     "redis_url": null,                    redis://, rediss:// or unix: (env REDIS_URL)
 *     "redis_key_prefix": "rc:",            (env REDIS_KEY_PREFIX)
 *     "redis_connect_timeout_ms": 500,      (env REDIS_CONNECT_TIMEOUT_MS)
 *     "redis_command_timeout_ms": 500,      (env REDIS_COMMAND_TIMEOUT_MS)
 *     "redis_tls_ca_file": null,            (env REDIS_TLS_CA_FILE)
 *     "redis_tls_cert_file": null,          client certificate (env REDIS_TLS_CERT_FILE)
 *     "redis_tls_key_file": null,           its key (env REDIS_TLS_KEY_FILE)
 *     "redis_tls_verify": 1,                0 skips certificate checks (env REDIS_TLS_VERIFY)
 *     "redis_breaker_failures": 5,          (env REDIS_BREAKER_FAILURES)
 *     "redis_breaker_open_ms": 1000,        (env REDIS_BREAKER_OPEN_MS)
 *     "tiered_l1_ttl_max": 10               seconds (env CACHE_TIERED_L1_TTL_MAX)
 *   },
 *   "routes": [ route, ... ],
 *   "entities": {                   optional: TTLs and windows declared once
 *     "user": {"ttl": 3600, "negative_ttl": 30, "stale_while_revalidate": 60,
 *              "stale_if_error": 600},
 *     "user:jobs": {"ttl": 300}, ...
 *   },
 *   "warm": [                       optional: fill the cache in the background at start
 *     {"route": "user", "sql": "SELECT id FROM users ORDER BY id", "limit": 1000}
 *   ]
 * }
 *
 * Freshness (see README "Freshness"):
 * "database.notify_channel" (default "respcache_invalidate", env
 * DATABASE_NOTIFY_CHANNEL; null disables) is LISTENed to for tags to bump;
 * "cache.stale_while_revalidate", "cache.stale_if_error" (seconds, default
 * 0) and "cache.singleflight_wait_ms" (default 3000) are the defaults of the
 * windows and of the single-flight wait; "warm_concurrency" (default 2)
 * bounds the warm-up.
 *
 * A tag template names an entity by its ':'-separated segments that contain
 * no {reference}: "user:{id}" names "user", "user:{id}:jobs" names
 * "user:jobs", "settings" names "settings". A GET route's ttl,
 * negative_ttl, stale_while_revalidate and stale_if_error each default to
 * the smallest value set among the entities its tags name, else to the
 * cache.* default; a value the route sets itself wins. Entity keys are
 * [a-z0-9_:.-]{1,64}; values are seconds (0..31536000).
 *
 * A warm entry names a GET route with a ttl; its sql returns one column per
 * path or query param of the route (by the param's name; NULL or absent
 * query params take their default), and at most "limit" rows (1..100000,
 * default 1000) are warmed.
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
 *   "stale_while_revalidate": 60,  GET only; seconds past the TTL answered STALE while
 *                                  one refresh runs (default: entities, cache.*)
 *   "stale_if_error": 600,         GET only; seconds past the TTL answered STALE when
 *                                  PostgreSQL is down, too slow or the pool exhausted
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
    int ttl;                    /* seconds; 0 = not cached */
    int negative_ttl;           /* seconds; 0 = 404s not cached */
    int stale_while_revalidate; /* seconds past ttl answered STALE while one refresh runs */
    int stale_if_error;         /* seconds past ttl answered STALE when the database fails */
    struct tmpl *tags;
    size_t ntags;
    struct tmpl *invalidate;
    size_t ninvalidate;
    struct tmpl *location; /* NULL when absent */
    bool has_body;         /* any param from body */
    /* Write-through (writes only): the cached GET route whose entry the
     * write's answer becomes; its params are the write's params of the
     * same names. NULL: none. */
    const struct route *write_through;
    char *write_through_name;   /* as written; NULL when absent */
    size_t *write_through_from; /* [i]: this route's param for the GET's param i */
};

/* An entity: TTL and windows declared once, inherited by every GET route
 * whose tags name it (see "entities" above). -1: not set. */
struct rc_entity {
    char *name;
    int ttl, negative_ttl, stale_while_revalidate, stale_if_error;
};

/* A warm-up query: its rows' columns, by param name, fill route's path and
 * query params; at most limit rows. */
struct rc_warm {
    int route; /* index into routes: a cached GET route */
    char *sql;
    int limit;
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
    int warm_concurrency;

    char *database_url;
    int db_connect_timeout_ms;
    int db_statement_timeout_ms;
    char *db_notify_channel; /* NULL: no LISTEN */

    char *cache_provider;
    int cache_default_ttl;
    int cache_negative_ttl;
    int cache_stale_while_revalidate;
    int cache_stale_if_error;
    int cache_singleflight_wait_ms;
    int64_t cache_memory_max_bytes;
    int cache_memory_shards;
    int cache_tag_slots; /* resolved: never 0 after loading */
    char *redis_url;
    char *redis_key_prefix;
    int redis_connect_timeout_ms;
    int redis_command_timeout_ms;
    char *redis_tls_ca_file;
    char *redis_tls_cert_file;
    char *redis_tls_key_file;
    int redis_tls_verify;
    int redis_breaker_failures;
    int redis_breaker_open_ms;
    int tiered_l1_ttl_max;

    struct route *routes;
    size_t nroutes;

    struct rc_entity *entities; /* "entities", in file order */
    size_t nentities;
    struct rc_warm *warm; /* "warm", in file order */
    size_t nwarm;
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

/* cache.tag_slots 0 (the default) sizes the memory provider's tag table
 * from its byte budget: one counter per TAG_SLOT_BYTES, a power of two in
 * TAG_SLOTS_MIN..TAG_SLOTS_MAX. Tags that share a counter invalidate each
 * other's entries (extra misses, never stale reads), about (live tags /
 * counters) of the time per bump; an entry costs some hundreds of bytes
 * (362 for a demo user), so even a budget full of entries with a tag each
 * leaves a few counters per tag. The table is 1/16 of the budget, on top
 * of it, and its pages become resident as bumps first write them (memory.c
 * maps it with small pages). In the bench's 95/5 mix over 100,000 users,
 * the share of reads that missed: 0.4% with 262,144 counters (the old
 * fixed default), 0.09% with 1,048,576, 0.03% with 4,194,304. */
#define TAG_SLOT_BYTES    128
#define TAG_SLOTS_MIN     4096
#define TAG_SLOTS_SET_MIN 16 /* smallest a config may set */
#define TAG_SLOTS_MAX     (1 << 24)
int config_auto_tag_slots(int64_t memory_max_bytes);

/* Print every setting with its current value (secrets masked) to `out`. */
void config_print(const struct rc_config *cfg, FILE *out);
/* Print the settings table (name, env var, default, help) for --help. */
void config_print_help(FILE *out);

/* The entity a tag template names (see "entities" above) into out, NUL-
 * terminated; its length, 0 when it names none or it does not fit. */
size_t config_tag_entity(const char *tmpl, char *out, size_t outsz);

const char *config_method_name(enum rc_method m);
/* Is byte c allowed by the param's "chars" class (true if no class)? */
bool config_char_allowed(const struct route_param *p, unsigned char c);

#endif
