/*
 * config.c - the settings table, loading (file, then environment) and
 * printing of the configuration.
 *
 * Every setting is one row of settings[] below, the way PgBouncer declares
 * bouncer_params[]: its JSON path, type, place in struct rc_config, default,
 * environment variable, bounds, flags and help. Defaults, the file walk,
 * environment overrides, every error message, --print-config and --help are
 * all driven by that table, so adding a setting is adding a row.
 *
 * The file is walked key by key rather than looked up setting by setting,
 * so a misspelt or unknown key is an error instead of being silently
 * ignored. Environment variables are applied after the file. The "routes"
 * array is validated last (its defaults come from cache settings, which the
 * environment may have changed) by config_routes.c, with the param value
 * rules in config_values.c. Loading is all or nothing: any error frees
 * everything and returns NULL with the JSON path (or the environment
 * variable) and what was expected in errbuf.
 */
#include "config_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum set_type { SET_STRING, SET_INT, SET_INT64 };

#define SET_NULLABLE 0x01u /* may be null: unset */
#define SET_SECRET   0x02u /* never printed */
#define SET_URL      0x04u /* a password inside the URL is masked when printed */
#define SET_POW2     0x08u /* integer must be a power of two */

struct setting {
    const char *path; /* "database.url": section "database", key "url" */
    enum set_type type;
    size_t offset; /* into struct rc_config: char *, int or int64_t */
    const char *sdef;
    int64_t idef;
    const char *env;
    int64_t min, max; /* integers: value bounds; strings: length bounds in bytes */
    unsigned flags;
    const char *const *choices;  /* strings: allowed values, NULL-terminated */
    bool (*check)(const char *); /* strings: extra syntax check */
    const char *expect;          /* what check wants, for messages */
    const char *help;
};

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const providers[] = {"memory", "redis", "tiered", "none", NULL};

static bool listen_ok(const char *v);
static bool channel_ok(const char *v);

#define OFF(f) offsetof(struct rc_config, f)
/* Rows: path, [type,] field, default, env, bounds (value or length), flags,
 * [choices,] help. */
#define STR(path, field, def, env, lo, hi, flags, choices, help)                                   \
    {                                                                                              \
        path, SET_STRING, OFF(field), def, 0, env, lo, hi, flags, choices, NULL, NULL, help        \
    }
#define NUM(path, type, field, def, env, lo, hi, flags, help)                                      \
    {                                                                                              \
        path, type, OFF(field), NULL, def, env, lo, hi, flags, NULL, NULL, NULL, help              \
    }

static const struct setting settings[] = {
    {"listen", SET_STRING, OFF(listen), NULL, 0, "RESPCACHE_LISTEN", 1, 256, SET_NULLABLE, NULL,
     listen_ok, "host:port or unix:/path",
     "FastCGI listen address; null: --listen, or the socket inherited on fd 0 or 3"},
    NUM("threads", SET_INT, threads, 4, "RESPCACHE_THREADS", 1, 256, 0, "database worker threads"),
    NUM("loops", SET_INT, loops, 1, "RESPCACHE_LOOPS", 1, 64, 0,
        "event loops owning the FastCGI connections"),
    STR("log_level", log_level, "info", "LOG_LEVEL", 1, 16, 0, log_levels, "lowest level logged"),
    STR("log_file", log_file, NULL, "RESPCACHE_LOG_FILE", 1, 4096, SET_NULLABLE, NULL,
        "append logs to this file instead of stderr; SIGHUP reopens it (log rotation)"),
    STR("admin_token", admin_token, NULL, "RESPCACHE_ADMIN_TOKEN", 1, 1024,
        SET_NULLABLE | SET_SECRET, NULL,
        "Bearer token for the admin routes; null (or an empty variable) disables them"),
    NUM("max_body_bytes", SET_INT, max_body_bytes, 1048576, "RESPCACHE_MAX_BODY_BYTES", 64,
        64 * 1048576, 0, "largest accepted request body (413 above)"),
    NUM("io_timeout_ms", SET_INT, io_timeout_ms, 5000, "RESPCACHE_IO_TIMEOUT_MS", 10, 600000, 0,
        "bound on one FastCGI socket read or write"),
    NUM("warm_concurrency", SET_INT, warm_concurrency, 2, "RESPCACHE_WARM_CONCURRENCY", 1, 64, 0,
        "warm-up queries run at once at start (each on its own PostgreSQL connection)"),
    STR("database.url", database_url, "postgresql:///respcache", "DATABASE_URL", 1, 4096, SET_URL,
        NULL, "libpq connection string or URI"),
    NUM("database.connect_timeout_ms", SET_INT, db_connect_timeout_ms, 2000,
        "DATABASE_CONNECT_TIMEOUT_MS", 100, 300000, 0, "bound on connecting to PostgreSQL"),
    NUM("database.statement_timeout_ms", SET_INT, db_statement_timeout_ms, 5000,
        "DATABASE_STATEMENT_TIMEOUT_MS", 1, 3600000, 0,
        "PostgreSQL statement_timeout for every query"),
    {"database.notify_channel", SET_STRING, OFF(db_notify_channel), "respcache_invalidate", 0,
     "DATABASE_NOTIFY_CHANNEL", 1, 63, SET_NULLABLE, NULL, channel_ok,
     "a lower-case SQL identifier or null",
     "LISTEN channel of sql/respcache_notify.sql's trigger (tags to invalidate); null: no "
     "listener"},
    STR("cache.provider", cache_provider, "memory", "CACHE_PROVIDER", 1, 16, 0, providers,
        "where responses are cached (none disables caching)"),
    NUM("cache.default_ttl", SET_INT, cache_default_ttl, 60, "CACHE_DEFAULT_TTL", 0, 31536000, 0,
        "seconds a GET response stays fresh when its route sets no ttl"),
    NUM("cache.negative_ttl", SET_INT, cache_negative_ttl, 30, "CACHE_NEGATIVE_TTL", 0, 31536000, 0,
        "seconds a 404 stays cached when its route sets no negative_ttl"),
    NUM("cache.stale_while_revalidate", SET_INT, cache_stale_while_revalidate, 0,
        "CACHE_STALE_WHILE_REVALIDATE", 0, 31536000, 0,
        "seconds past its TTL an entry is answered STALE while one refresh runs (routes and "
        "entities may set their own)"),
    NUM("cache.stale_if_error", SET_INT, cache_stale_if_error, 0, "CACHE_STALE_IF_ERROR", 0,
        31536000, 0,
        "seconds past its TTL an entry is answered STALE when PostgreSQL fails (routes and "
        "entities may set their own)"),
    NUM("cache.singleflight_wait_ms", SET_INT, cache_singleflight_wait_ms, 3000,
        "CACHE_SINGLEFLIGHT_WAIT_MS", 0, 600000, 0,
        "how long concurrent misses on one key wait for the one query running before querying "
        "themselves; 0: no coalescing"),
    NUM("cache.memory_max_bytes", SET_INT64, cache_memory_max_bytes, 268435456,
        "CACHE_MEMORY_MAX_BYTES", 65536, INT64_C(1) << 40, 0, "byte budget of the memory cache"),
    NUM("cache.memory_shards", SET_INT, cache_memory_shards, 64, "CACHE_MEMORY_SHARDS", 1, 1024,
        SET_POW2, "lock shards of the memory cache"),
    NUM("cache.tag_slots", SET_INT, cache_tag_slots, 0, "CACHE_TAG_SLOTS", 0, TAG_SLOTS_MAX,
        SET_POW2,
        "counters of the memory provider's tag generation table; 0: one per 128 bytes "
        "of cache.memory_max_bytes"),
    STR("cache.redis_url", redis_url, NULL, "REDIS_URL", 1, 4096, SET_NULLABLE | SET_URL, NULL,
        "Redis server (providers redis, tiered): redis://[user:password@]host[:port][/db], "
        "rediss://... (TLS) or unix:/path[?db=N]"),
    STR("cache.redis_key_prefix", redis_key_prefix, "rc:", "REDIS_KEY_PREFIX", 0, 64, 0, NULL,
        "prefix of every Redis key, for sharing one Redis"),
    NUM("cache.redis_connect_timeout_ms", SET_INT, redis_connect_timeout_ms, 500,
        "REDIS_CONNECT_TIMEOUT_MS", 10, 60000, 0, "bound on connecting to Redis (TCP and TLS)"),
    NUM("cache.redis_command_timeout_ms", SET_INT, redis_command_timeout_ms, 500,
        "REDIS_COMMAND_TIMEOUT_MS", 1, 60000, 0, "bound on one Redis round trip"),
    STR("cache.redis_tls_ca_file", redis_tls_ca_file, NULL, "REDIS_TLS_CA_FILE", 1, 4096,
        SET_NULLABLE, NULL, "CA certificates (PEM) for rediss://; null: the system's"),
    STR("cache.redis_tls_cert_file", redis_tls_cert_file, NULL, "REDIS_TLS_CERT_FILE", 1, 4096,
        SET_NULLABLE, NULL, "client certificate (PEM) for rediss://, with redis_tls_key_file"),
    STR("cache.redis_tls_key_file", redis_tls_key_file, NULL, "REDIS_TLS_KEY_FILE", 1, 4096,
        SET_NULLABLE, NULL, "private key (PEM) of redis_tls_cert_file"),
    NUM("cache.redis_tls_verify", SET_INT, redis_tls_verify, 1, "REDIS_TLS_VERIFY", 0, 1, 0,
        "1: check the rediss:// server's certificate and name; 0: do not (unsafe)"),
    NUM("cache.redis_breaker_failures", SET_INT, redis_breaker_failures, 5,
        "REDIS_BREAKER_FAILURES", 1, 1000, 0,
        "consecutive Redis failures that open the circuit breaker (requests then bypass Redis)"),
    NUM("cache.redis_breaker_open_ms", SET_INT, redis_breaker_open_ms, 1000,
        "REDIS_BREAKER_OPEN_MS", 10, 600000, 0,
        "how long the breaker stays open before one request probes Redis again"),
    NUM("cache.tiered_l1_ttl_max", SET_INT, tiered_l1_ttl_max, 10, "CACHE_TIERED_L1_TTL_MAX", 1,
        86400, 0, "seconds an entry may live in the tiered provider's in-process L1"),
};

/* ---- field access --------------------------------------------------------- */

static char **str_at(struct rc_config *cfg, const struct setting *s)
{
    return (char **)(void *)((char *)cfg + s->offset);
}

static const char *str_get(const struct rc_config *cfg, const struct setting *s)
{
    return *(char *const *)(const void *)((const char *)cfg + s->offset);
}

static int64_t int_get(const struct rc_config *cfg, const struct setting *s)
{
    const void *p = (const char *)cfg + s->offset;
    return s->type == SET_INT64 ? *(const int64_t *)p : *(const int *)p;
}

static void int_put(struct rc_config *cfg, const struct setting *s, int64_t v)
{
    void *p = (char *)cfg + s->offset;
    if (s->type == SET_INT64)
        *(int64_t *)p = v;
    else
        *(int *)p = (int)v;
}

/* ---- validation ----------------------------------------------------------- */

static bool listen_ok(const char *v)
{
    if (strncmp(v, "unix:", 5) == 0)
        return v[5] != '\0';
    const char *colon = strrchr(v, ':');
    if (colon == NULL || colon == v || colon[1] == '\0')
        return false;
    long port = 0;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            return false;
        port = port * 10 + (*p - '0');
    }
    return port >= 1 && port <= 65535;
}

/* A LISTEN channel: [a-z_][a-z0-9_]*, so it needs no quoting. */
static bool channel_ok(const char *v)
{
    for (const char *p = v; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_' || (p > v && *p >= '0' && *p <= '9')))
            return false;
    return v[0] != '\0';
}

/* "an integer from 1 to 256", "a power of two from 1 to 1024". */
static void int_expect(const struct setting *s, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s from %" PRId64 " to %" PRId64,
             (s->flags & SET_POW2) ? "a power of two" : "an integer", s->min, s->max);
}

/* "a string", "a string or null", "one of memory, none". */
static void str_expect(const struct setting *s, char *out, size_t outsz)
{
    size_t o;
    if (s->expect != NULL) {
        snprintf(out, outsz, "%s", s->expect);
        return;
    }
    if (s->choices == NULL) {
        snprintf(out, outsz, "a string%s", (s->flags & SET_NULLABLE) ? " or null" : "");
        return;
    }
    o = (size_t)snprintf(out, outsz, "one of");
    for (size_t i = 0; s->choices[i] != NULL && o < outsz; i++)
        o += (size_t)snprintf(out + o, outsz - o, "%s %s", i > 0 ? "," : "", s->choices[i]);
}

static int set_int(struct rc_config *cfg, const struct setting *s, const char *name, int64_t v,
                   char *errbuf)
{
    char want[96];
    if (v < s->min || v > s->max || ((s->flags & SET_POW2) && (v & (v - 1)) != 0)) {
        int_expect(s, want, sizeof(want));
        return rc_err(errbuf, "%s: expected %s, got %" PRId64, name, want, v);
    }
    int_put(cfg, s, v);
    return 0;
}

/* Store a string value (NULL = null, only for SET_NULLABLE) after checking
 * its length, choices and syntax. */
static int set_str(struct rc_config *cfg, const struct setting *s, const char *name, const char *v,
                   char *errbuf)
{
    char want[96];
    char *copy = NULL;

    if (v != NULL) {
        size_t len = strlen(v);
        if ((int64_t)len < s->min)
            return rc_err(errbuf, "%s: expected a non-empty string", name);
        if ((int64_t)len > s->max)
            return rc_err(errbuf, "%s: expected a string of at most %" PRId64 " bytes", name,
                          s->max);
        if (s->choices != NULL) {
            size_t i;
            for (i = 0; s->choices[i] != NULL; i++) {
                if (strcmp(s->choices[i], v) == 0)
                    break;
            }
            if (s->choices[i] == NULL) {
                str_expect(s, want, sizeof(want));
                return rc_err(errbuf, "%s: expected %s, got \"%.*s\"", name, want, CONFIG_MAX_GOT,
                              v);
            }
        }
        if (s->check != NULL && !s->check(v))
            return rc_err(errbuf, "%s: expected %s, got \"%.*s\"", name, s->expect, CONFIG_MAX_GOT,
                          v);
        copy = strdup(v);
        if (copy == NULL)
            return rc_err(errbuf, "out of memory");
    }
    free(*str_at(cfg, s));
    *str_at(cfg, s) = copy;
    return 0;
}

static int apply_json(struct rc_config *cfg, const struct setting *s, json_t *v, char *errbuf)
{
    char want[96];

    if (s->type == SET_STRING) {
        if (json_is_null(v) && (s->flags & SET_NULLABLE))
            return set_str(cfg, s, s->path, NULL, errbuf);
        if (!json_is_string(v)) {
            if (s->choices != NULL)
                str_expect(s, want, sizeof(want));
            else
                snprintf(want, sizeof(want), "a string%s",
                         (s->flags & SET_NULLABLE) ? " or null" : "");
            return rc_err(errbuf, "%s: expected %s, got %s", s->path, want, json_type_desc(v));
        }
        return set_str(cfg, s, s->path, json_string_value(v), errbuf);
    }
    if (!json_is_integer(v)) {
        int_expect(s, want, sizeof(want));
        return rc_err(errbuf, "%s: expected %s, got %s", s->path, want, json_type_desc(v));
    }
    return set_int(cfg, s, s->path, (int64_t)json_integer_value(v), errbuf);
}

/* An environment value. An empty value for a nullable setting means null
 * (RESPCACHE_ADMIN_TOKEN= turns the admin routes off). */
static int apply_env(struct rc_config *cfg, const struct setting *s, const char *v, char *errbuf)
{
    char want[96];

    if (s->type == SET_STRING) {
        if (v[0] == '\0' && (s->flags & SET_NULLABLE))
            return set_str(cfg, s, s->env, NULL, errbuf);
        return set_str(cfg, s, s->env, v, errbuf);
    }
    char *end;
    long long n;
    errno = 0;
    n = strtoll(v, &end, 10);
    if ((v[0] < '0' || v[0] > '9') && v[0] != '-')
        end = (char *)v; /* no leading blanks or '+' */
    if (end == v || *end != '\0' || errno == ERANGE) {
        int_expect(s, want, sizeof(want));
        return rc_err(errbuf, "%s: expected %s, got \"%.*s\"", s->env, want, CONFIG_MAX_GOT, v);
    }
    return set_int(cfg, s, s->env, (int64_t)n, errbuf);
}

/* ---- loading -------------------------------------------------------------- */

/* A setting by its full path. Top-level keys never match a dotted path, so
 * {"cache.provider": ...} at the top is an unknown key. */
static const struct setting *setting_find(const char *path)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(settings); i++) {
        if (strcmp(settings[i].path, path) == 0)
            return &settings[i];
    }
    return NULL;
}

/* Is `key` a section ("database", "cache"): a prefix of some setting path? */
static bool is_section(const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < RC_ARRAY_LEN(settings); i++) {
        if (strncmp(settings[i].path, key, n) == 0 && settings[i].path[n] == '.')
            return true;
    }
    return false;
}

static int set_defaults(struct rc_config *cfg, char *errbuf)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];
        if (s->type != SET_STRING) {
            int_put(cfg, s, s->idef);
        } else if (s->sdef != NULL) {
            if ((*str_at(cfg, s) = strdup(s->sdef)) == NULL)
                return rc_err(errbuf, "out of memory");
        }
    }
    return 0;
}

static int load_section(struct rc_config *cfg, const char *section, json_t *obj, char *errbuf)
{
    const char *key;
    json_t *v;
    char path[160];

    if (!json_is_object(obj))
        return rc_err(errbuf, "%s: expected an object, got %s", section, json_type_desc(obj));
    json_object_foreach(obj, key, v)
    {
        const struct setting *s;
        snprintf(path, sizeof(path), "%s.%s", section, key);
        s = strchr(key, '.') == NULL ? setting_find(path) : NULL;
        if (s == NULL)
            return rc_err(errbuf, "%s.%.*s: unknown key", section, CONFIG_MAX_GOT, key);
        if (apply_json(cfg, s, v, errbuf) < 0)
            return -1;
    }
    return 0;
}

static int load_settings(struct rc_config *cfg, json_t *root, json_t **routes, char *errbuf)
{
    const char *key;
    json_t *v;

    json_object_foreach(root, key, v)
    {
        const struct setting *s;
        if (strcmp(key, "routes") == 0) {
            *routes = v;
            continue;
        }
        if (strcmp(key, "entities") == 0 || strcmp(key, "warm") == 0)
            continue; /* config_fresh.c, around the routes */
        if (is_section(key)) {
            if (load_section(cfg, key, v, errbuf) < 0)
                return -1;
            continue;
        }
        s = strchr(key, '.') == NULL ? setting_find(key) : NULL;
        if (s == NULL)
            return rc_err(errbuf, "%.*s: unknown key", CONFIG_MAX_GOT, key);
        if (apply_json(cfg, s, v, errbuf) < 0)
            return -1;
    }
    return 0;
}

static const char *process_env(const char *name)
{
    return getenv(name);
}

static struct rc_config *load_json(json_t *root, const char *origin,
                                   const char *(*env)(const char *), char *errbuf)
{
    struct rc_config *cfg = calloc(1, sizeof(*cfg));
    json_t *routes = NULL;

    if (cfg == NULL) {
        rc_err(errbuf, "out of memory");
        return NULL;
    }
    if (env == NULL)
        env = process_env;
    if (set_defaults(cfg, errbuf) < 0)
        goto fail;
    if (!json_is_object(root)) {
        rc_err(errbuf, "%s: expected a JSON object at the top level, got %s", origin,
               json_type_desc(root));
        goto fail;
    }
    if (load_settings(cfg, root, &routes, errbuf) < 0)
        goto fail;
    for (size_t i = 0; i < RC_ARRAY_LEN(settings); i++) {
        const char *v = settings[i].env != NULL ? env(settings[i].env) : NULL;
        if (v != NULL && apply_env(cfg, &settings[i], v, errbuf) < 0)
            goto fail;
    }
    if (cfg->cache_tag_slots == 0) {
        cfg->cache_tag_slots = config_auto_tag_slots(cfg->cache_memory_max_bytes);
    } else if (cfg->cache_tag_slots < TAG_SLOTS_SET_MIN) {
        rc_err(
            errbuf,
            "cache.tag_slots: expected 0 (from the budget) or a power of two from %d to %d, got %d",
            TAG_SLOTS_SET_MIN, TAG_SLOTS_MAX, cfg->cache_tag_slots);
        goto fail;
    }
    if (routes == NULL) {
        rc_err(errbuf, "routes: required (an array of at least one route)");
        goto fail;
    }
    if (config_entities_parse(cfg, json_object_get(root, "entities"), errbuf) < 0 ||
        config_routes_parse(cfg, routes, errbuf) < 0 ||
        config_warm_parse(cfg, json_object_get(root, "warm"), errbuf) < 0)
        goto fail;
    return cfg;
fail:
    config_free(cfg);
    return NULL;
}

int config_auto_tag_slots(int64_t memory_max_bytes)
{
    int64_t want = memory_max_bytes / TAG_SLOT_BYTES;
    int slots = TAG_SLOTS_MIN;

    while (slots < TAG_SLOTS_MAX && slots < want)
        slots <<= 1;
    return slots;
}

static void syntax_error(const char *origin, const json_error_t *err, char *errbuf)
{
    if (err->line > 0)
        rc_err(errbuf, "%s:%d:%d: %s", origin, err->line, err->column, err->text);
    else
        rc_err(errbuf, "%s: %s", origin, err->text);
}

struct rc_config *config_load(const char *path, char *errbuf)
{
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    struct rc_config *cfg;

    if (root == NULL) {
        syntax_error(path, &err, errbuf);
        return NULL;
    }
    cfg = load_json(root, path, NULL, errbuf);
    json_decref(root);
    return cfg;
}

struct rc_config *config_load_string(const char *json, const char *origin,
                                     const char *(*env)(const char *name), char *errbuf)
{
    json_error_t err;
    json_t *root;
    struct rc_config *cfg;

    if (origin == NULL)
        origin = "<string>";
    root = json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        syntax_error(origin, &err, errbuf);
        return NULL;
    }
    cfg = load_json(root, origin, env, errbuf);
    json_decref(root);
    return cfg;
}

/* ---- freeing -------------------------------------------------------------- */

static void tmpl_free(struct tmpl *t)
{
    if (t == NULL)
        return;
    free(t->source);
    for (size_t i = 0; i < t->nparts; i++)
        free(t->parts[i].text);
    free(t->parts);
}

static void route_free(struct route *r)
{
    free(r->name);
    free(r->path);
    for (size_t i = 0; i < r->nparams; i++) {
        struct route_param *p = &r->params[i];
        free(p->name);
        free(p->default_text);
        for (size_t k = 0; k < p->n_enum; k++)
            free(p->enum_values[k]);
        free(p->enum_values);
    }
    free(r->params);
    free(r->sql);
    for (size_t i = 0; i < r->ntags; i++)
        tmpl_free(&r->tags[i]);
    free(r->tags);
    for (size_t i = 0; i < r->ninvalidate; i++)
        tmpl_free(&r->invalidate[i]);
    free(r->invalidate);
    tmpl_free(r->location);
    free(r->location);
    free(r->write_through_name);
    free(r->write_through_from);
}

void config_free(struct rc_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < RC_ARRAY_LEN(settings); i++) {
        if (settings[i].type == SET_STRING)
            free(*str_at(cfg, &settings[i]));
    }
    for (size_t i = 0; i < cfg->nroutes; i++)
        route_free(&cfg->routes[i]);
    free(cfg->routes);
    config_fresh_free(cfg);
    free(cfg);
}

/* ---- printing ------------------------------------------------------------- */

static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void put(char *out, size_t outsz, size_t *o, const char *s, size_t n)
{
    if (n > outsz - 1 - *o)
        n = outsz - 1 - *o;
    memcpy(out + *o, s, n);
    *o += n;
}

/* Copy url into out (truncating) with every password replaced by "****":
 * the userinfo password of a URI (scheme://user:password@host) and any
 * "password=value" (libpq keyword form or URI query parameter). */
static void mask_url(const char *url, char *out, size_t outsz)
{
    const char *auth = strstr(url, "://");
    const char *pw = NULL, *pw_end = NULL;
    size_t o = 0;

    if (auth != NULL) {
        const char *host_end = auth + 3 + strcspn(auth + 3, "/?#");
        const char *at = NULL;
        for (const char *p = auth + 3; p < host_end; p++) {
            if (*p == '@')
                at = p;
        }
        if (at != NULL && (pw = memchr(auth + 3, ':', (size_t)(at - (auth + 3)))) != NULL) {
            pw++;
            pw_end = at;
        }
    }
    for (const char *p = url; *p != '\0';) {
        if (p == pw) {
            put(out, outsz, &o, "****", 4);
            p = pw_end;
        } else if (strncmp(p, "password=", 9) == 0 && (p == url || strchr(" ?&", p[-1]) != NULL)) {
            put(out, outsz, &o, "password=****", 13);
            p += 9 + strcspn(p + 9, " &");
        } else {
            put(out, outsz, &o, p, 1);
            p++;
        }
    }
    out[o] = '\0';
}

static void print_setting(const struct rc_config *cfg, const struct setting *s, FILE *out)
{
    char masked[4200];
    const char *v;

    fprintf(out, "%-30s = ", s->path);
    if (s->type != SET_STRING) {
        fprintf(out, "%" PRId64 "\n", int_get(cfg, s));
        return;
    }
    v = str_get(cfg, s);
    if (v == NULL) {
        fputs("null", out);
    } else if (s->flags & SET_SECRET) {
        fputs("\"****\"", out);
    } else if (s->flags & SET_URL) {
        mask_url(v, masked, sizeof(masked));
        print_quoted(out, masked);
    } else {
        print_quoted(out, v);
    }
    fputc('\n', out);
}

static const char *const source_names[] = {"path", "query", "body", "random"};
static const char *const type_names[] = {"string", "int", "bool", "number", "object", "any"};
static const char *const result_names[] = {"object", "array", "value", "none"};

static void print_tmpls(FILE *out, const char *what, const struct tmpl *t, size_t n)
{
    if (n == 0)
        return;
    fprintf(out, "    %s:", what);
    for (size_t i = 0; i < n; i++)
        fprintf(out, " %s", t[i].source);
    fputc('\n', out);
}

static void print_route(const struct route *r, size_t i, FILE *out)
{
    fprintf(out, "routes[%zu] %s: %s %s -> %s, status %d", i, r->name,
            config_method_name(r->method), r->path, result_names[r->result], r->status);
    if (r->method == RC_GET)
        fprintf(out, ", ttl %d, negative_ttl %d, stale_while_revalidate %d, stale_if_error %d",
                r->ttl, r->negative_ttl, r->stale_while_revalidate, r->stale_if_error);
    fputc('\n', out);
    for (size_t k = 0; k < r->nparams; k++) {
        const struct route_param *p = &r->params[k];
        fprintf(out, "    $%zu %s: %s %s%s", k + 1, p->name, source_names[p->from],
                type_names[p->type], p->required ? " required" : "");
        if (p->type == PARAM_INT)
            fprintf(out, " %" PRId64 "..%" PRId64, p->min, p->max);
        if (p->type == PARAM_STRING && p->from != PARAM_FROM_RANDOM)
            fprintf(out, " length %zu..%zu%s%s", p->min_length, p->max_length,
                    p->has_chars ? " chars" : "", p->n_enum > 0 ? " enum" : "");
        if (p->from == PARAM_FROM_RANDOM)
            fprintf(out, " %zu bytes", p->random_bytes);
        if (p->has_default) {
            fputs(" default ", out);
            print_quoted(out, p->default_text);
        }
        fputc('\n', out);
    }
    print_tmpls(out, "tags", r->tags, r->ntags);
    print_tmpls(out, "invalidate", r->invalidate, r->ninvalidate);
    if (r->location != NULL)
        print_tmpls(out, "location", r->location, 1);
    if (r->write_through_name != NULL)
        fprintf(out, "    write_through %s\n", r->write_through_name);
}

void config_print(const struct rc_config *cfg, FILE *out)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(settings); i++)
        print_setting(cfg, &settings[i], out);
    for (size_t i = 0; i < cfg->nroutes; i++)
        print_route(&cfg->routes[i], i, out);
    for (size_t i = 0; i < cfg->nwarm; i++)
        fprintf(out, "warm[%zu] %s: limit %d: %s\n", i, cfg->routes[cfg->warm[i].route].name,
                cfg->warm[i].limit, cfg->warm[i].sql);
}

void config_print_help(FILE *out)
{
    char want[96];

    fputs("Settings (config file key, environment variable, accepted values, default):\n", out);
    for (size_t i = 0; i < RC_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];
        fprintf(out, "  %-30s %s\n      %s; ", s->path, s->env != NULL ? s->env : "", s->help);
        if (s->type == SET_STRING)
            str_expect(s, want, sizeof(want));
        else
            int_expect(s, want, sizeof(want));
        fprintf(out, "%s; default ", want);
        if (s->type != SET_STRING)
            fprintf(out, "%" PRId64, s->idef);
        else if (s->sdef != NULL)
            print_quoted(out, s->sdef);
        else
            fputs("null", out);
        fputc('\n', out);
    }
}

/* ---- small lookups -------------------------------------------------------- */

const char *config_method_name(enum rc_method m)
{
    switch (m) {
    case RC_GET:
        return "GET";
    case RC_HEAD:
        return "HEAD";
    case RC_POST:
        return "POST";
    case RC_PUT:
        return "PUT";
    case RC_PATCH:
        return "PATCH";
    case RC_DELETE:
        return "DELETE";
    }
    return "UNKNOWN";
}

bool config_char_allowed(const struct route_param *p, unsigned char c)
{
    if (!p->has_chars)
        return true;
    return (p->chars[c >> 3] >> (c & 7)) & 1;
}
