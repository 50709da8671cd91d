/*
 * config_fresh.c - the freshness parts of the config (part of the config
 * module; config.h is its contract): "entities" (TTLs and stale windows
 * declared once per entity), the windows every GET route ends up with, and
 * the "warm" queries.
 *
 * A tag template names an entity by its ':'-separated segments that hold
 * no {reference}: "user:{id}" -> "user", "user:{id}:jobs" -> "user:jobs",
 * "settings" -> "settings". A GET route's ttl, negative_ttl,
 * stale_while_revalidate and stale_if_error each take the value the route
 * sets, else the smallest one set among the entities its tags name (a
 * dashboard tagged with a user and the user's jobs lives as long as its
 * shortest-lived part), else the cache.* default.
 */
#include "config_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ENTITIES    256
#define MAX_ENTITY_NAME 64
#define MAX_WARM        64
#define MAX_WARM_LIMIT  100000
#define MAX_WINDOW      31536000

enum window { W_TTL, W_NEGATIVE_TTL, W_SWR, W_SIE, W_N };

static const char *const window_keys[W_N] = {"ttl", "negative_ttl", "stale_while_revalidate",
                                             "stale_if_error"};
static const char *const entity_keys[] = {"ttl", "negative_ttl", "stale_while_revalidate",
                                          "stale_if_error", NULL};
static const char *const warm_keys[] = {"route", "sql", "limit", NULL};

static int *entity_field(struct rc_entity *e, enum window w)
{
    switch (w) {
    case W_TTL:
        return &e->ttl;
    case W_NEGATIVE_TTL:
        return &e->negative_ttl;
    case W_SWR:
        return &e->stale_while_revalidate;
    default:
        return &e->stale_if_error;
    }
}

static int *route_field(struct route *r, enum window w)
{
    switch (w) {
    case W_TTL:
        return &r->ttl;
    case W_NEGATIVE_TTL:
        return &r->negative_ttl;
    case W_SWR:
        return &r->stale_while_revalidate;
    default:
        return &r->stale_if_error;
    }
}

size_t config_tag_entity(const char *tmpl, char *out, size_t outsz)
{
    size_t o = 0;

    if (outsz == 0)
        return 0;
    for (const char *p = tmpl; *p != '\0';) {
        size_t n = strcspn(p, ":");
        if (n > 0 && memchr(p, '{', n) == NULL && memchr(p, '}', n) == NULL) {
            if (o + (o > 0) + n >= outsz) {
                o = 0; /* too long to be a declared entity */
                break;
            }
            if (o > 0)
                out[o++] = ':';
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
        if (*p == ':')
            p++;
    }
    out[o] = '\0';
    return o;
}

static bool entity_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_ENTITY_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == ':' || s[i] == '.' || s[i] == '-'))
            return false;
    return s[0] != ':' && s[n - 1] != ':' && strstr(s, "::") == NULL;
}

int config_entities_parse(struct rc_config *cfg, json_t *entities, char *errbuf)
{
    const char *name;
    json_t *v;
    char pfx[96];
    size_t n;

    if (entities == NULL)
        return 0;
    if (!json_is_object(entities))
        return rc_err(errbuf, "entities: expected an object of entity name -> settings, got %s",
                      json_type_desc(entities));
    n = json_object_size(entities);
    if (n > MAX_ENTITIES)
        return rc_err(errbuf, "entities: at most %d entities, got %zu", MAX_ENTITIES, n);
    if (n == 0)
        return 0;
    if ((cfg->entities = calloc(n, sizeof(*cfg->entities))) == NULL)
        return rc_err(errbuf, "out of memory");
    json_object_foreach(entities, name, v)
    {
        struct rc_entity *e = &cfg->entities[cfg->nentities];
        snprintf(pfx, sizeof(pfx), "entities.%.64s", name);
        if (!entity_name_ok(name))
            return rc_err(errbuf,
                          "entities: bad entity name \"%.*s\" (expected [a-z0-9_:.-]{1,64}, the "
                          "literal segments of a tag such as user or user:jobs)",
                          CONFIG_MAX_GOT, name);
        if (!json_is_object(v))
            return rc_err(errbuf, "%s: expected an object, got %s", pfx, json_type_desc(v));
        if ((e->name = strdup(name)) == NULL)
            return rc_err(errbuf, "out of memory");
        cfg->nentities++;
        if (config_check_keys(v, pfx, entity_keys, errbuf) < 0)
            return -1;
        for (int w = 0; w < W_N; w++) {
            bool has;
            int64_t x = 0;
            if (config_get_int(v, pfx, window_keys[w], 0, MAX_WINDOW, &has, &x, errbuf) < 0)
                return -1;
            *entity_field(e, (enum window)w) = has ? (int)x : -1;
        }
    }
    return 0;
}

static const struct rc_entity *find_entity(const struct rc_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nentities; i++)
        if (strcmp(cfg->entities[i].name, name) == 0)
            return &cfg->entities[i];
    return NULL;
}

int config_route_windows(struct rc_config *cfg, struct route *r, const char *pfx, json_t *o,
                         char *errbuf)
{
    int64_t v = 0;
    bool has;

    if (r->method != RC_GET) {
        for (int w = W_SWR; w < W_N; w++)
            if (json_object_get(o, window_keys[w]) != NULL)
                return rc_err(errbuf, "%s.%s: only GET routes are cached", pfx, window_keys[w]);
        return 0;
    }
    r->stale_while_revalidate = cfg->cache_stale_while_revalidate;
    r->stale_if_error = cfg->cache_stale_if_error;
    for (int w = 0; w < W_N; w++) {
        int best = -1;
        if (config_get_int(o, pfx, window_keys[w], 0, MAX_WINDOW, &has, &v, errbuf) < 0)
            return -1;
        if (has) {
            *route_field(r, (enum window)w) = (int)v;
            continue;
        }
        for (size_t i = 0; i < r->ntags; i++) {
            char name[MAX_ENTITY_NAME + 1];
            const struct rc_entity *e;
            if (config_tag_entity(r->tags[i].source, name, sizeof(name)) == 0 ||
                (e = find_entity(cfg, name)) == NULL)
                continue;
            int x = *entity_field((struct rc_entity *)e, (enum window)w);
            if (x >= 0 && (best < 0 || x < best))
                best = x;
        }
        if (best >= 0)
            *route_field(r, (enum window)w) = best;
    }
    return 0;
}

int config_warm_parse(struct rc_config *cfg, json_t *warm, char *errbuf)
{
    char pfx[32];
    size_t n;

    if (warm == NULL)
        return 0;
    if (!json_is_array(warm))
        return rc_err(errbuf, "warm: expected an array, got %s", json_type_desc(warm));
    n = json_array_size(warm);
    if (n > MAX_WARM)
        return rc_err(errbuf, "warm: at most %d entries, got %zu", MAX_WARM, n);
    if (n == 0)
        return 0;
    if ((cfg->warm = calloc(n, sizeof(*cfg->warm))) == NULL)
        return rc_err(errbuf, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(warm, i);
        struct rc_warm *w = &cfg->warm[i];
        const char *route, *sql;
        int64_t limit = 1000;
        bool has;
        size_t ri;

        snprintf(pfx, sizeof(pfx), "warm[%zu]", i);
        if (!json_is_object(o))
            return rc_err(errbuf, "%s: expected an object, got %s", pfx, json_type_desc(o));
        if (config_check_keys(o, pfx, warm_keys, errbuf) < 0 ||
            config_get_str(o, pfx, "route", true, &route, errbuf) < 0 ||
            config_get_str(o, pfx, "sql", true, &sql, errbuf) < 0 ||
            config_get_int(o, pfx, "limit", 1, MAX_WARM_LIMIT, &has, &limit, errbuf) < 0)
            return -1;
        for (ri = 0; ri < cfg->nroutes; ri++)
            if (strcmp(cfg->routes[ri].name, route) == 0)
                break;
        if (ri == cfg->nroutes)
            return rc_err(errbuf, "%s.route: no route is named \"%.*s\"", pfx, CONFIG_MAX_GOT,
                          route);
        if (cfg->routes[ri].method != RC_GET || cfg->routes[ri].ttl <= 0)
            return rc_err(errbuf, "%s.route: \"%s\" is not a cached GET route (ttl > 0)", pfx,
                          route);
        if (sql[strspn(sql, " \t\r\n")] == '\0')
            return rc_err(errbuf, "%s.sql: expected a non-empty SELECT", pfx);
        if ((w->sql = strdup(sql)) == NULL)
            return rc_err(errbuf, "out of memory");
        w->route = (int)ri;
        w->limit = (int)limit;
        cfg->nwarm = i + 1;
    }
    return 0;
}

void config_fresh_free(struct rc_config *cfg)
{
    for (size_t i = 0; i < cfg->nentities; i++)
        free(cfg->entities[i].name);
    free(cfg->entities);
    for (size_t i = 0; i < cfg->nwarm; i++)
        free(cfg->warm[i].sql);
    free(cfg->warm);
}
