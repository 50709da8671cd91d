/*
 * warm.c - the warm-up thread behind warm.h.
 *
 * One coordinator thread walks the "warm" entries in order. For each, it
 * runs the entry's SELECT (wrapped as SELECT * FROM (<sql>) LIMIT n, so the
 * row limit holds whatever the query says) on a connection of its own,
 * turns every row into a request URI, and lets warm_concurrency filler
 * threads (each with a handler_worker: a connection and buffers) call
 * handler_warm on them, taking URIs from a shared atomic index. Keys that
 * are already fresh, or that a request is filling right now, are skipped.
 */
#include "warm.h"

#include "db.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARM_URI_MAX 4096
#define WARM_SQL_MAX 70000

struct warm {
    const struct rc_config *cfg;
    struct handler *h;
    struct metrics *metrics;
    pthread_t thread;
    atomic_bool stopping;
    /* the entry being warmed */
    int route;
    char **uris;
    size_t nuris;
    atomic_size_t next;
    atomic_uint stored, skipped, failed;
};

static const char hex[] = "0123456789ABCDEF";

/* Append value percent-encoded (everything but [A-Za-z0-9._~-]). */
static bool put_pct(char *out, size_t *o, const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == '~' || c == '-';
        if (*o + 4 >= WARM_URI_MAX)
            return false;
        if (plain) {
            out[(*o)++] = (char)c;
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = hex[c >> 4];
            out[(*o)++] = hex[c & 15];
        }
    }
    return true;
}

/* The URI of `row`: the route's path template with {name[:type]} filled
 * from column `name`, then its query params that the row has. NULL when a
 * path param is missing or the URI is too long. */
static char *row_uri(const struct route *r, const struct db_result *res, size_t row)
{
    char out[WARM_URI_MAX];
    size_t o = 0;
    bool first = true;

    for (const char *p = r->path; *p != '\0';) {
        if (*p != '{') {
            if (o + 1 >= WARM_URI_MAX)
                return NULL;
            out[o++] = *p++;
            continue;
        }
        char name[80];
        size_t n = strcspn(p + 1, ":}"), vlen = 0;
        const char *v;
        if (n >= sizeof(name))
            return NULL;
        memcpy(name, p + 1, n);
        name[n] = '\0';
        v = db_result_value(res, row, name, &vlen);
        if (v == NULL || vlen == 0 || !put_pct(out, &o, v, vlen))
            return NULL;
        p = strchr(p, '}');
        if (p == NULL)
            return NULL;
        p++;
    }
    for (size_t i = 0; i < r->nparams; i++) {
        const struct route_param *pm = &r->params[i];
        size_t vlen = 0, nl = strlen(pm->name);
        const char *v;
        if (pm->from != PARAM_FROM_QUERY)
            continue;
        v = db_result_value(res, row, pm->name, &vlen);
        if (v == NULL || vlen == 0)
            continue; /* absent: the route's default */
        if (o + nl + 2 >= WARM_URI_MAX)
            return NULL;
        out[o++] = first ? '?' : '&';
        first = false;
        memcpy(out + o, pm->name, nl);
        o += nl;
        out[o++] = '=';
        if (!put_pct(out, &o, v, vlen))
            return NULL;
    }
    out[o] = '\0';
    return strdup(out);
}

static void *filler_main(void *arg)
{
    struct warm *w = arg;
    struct handler_worker *hw = handler_worker_create(w->h);
    struct handler_state *st = malloc(sizeof(*st));
    char err[RC_ERRBUF];

    if (hw == NULL || st == NULL) {
        log_msg(LOG_ERROR, "warm_failed", "\"error\":\"out of memory\"");
        goto out;
    }
    while (!atomic_load(&w->stopping)) {
        size_t i = atomic_fetch_add(&w->next, 1);
        int rc;
        if (i >= w->nuris)
            break;
        rc = handler_warm(w->h, hw, st, w->route, w->uris[i], err);
        if (rc > 0)
            atomic_fetch_add(&w->stored, 1);
        else if (rc == 0)
            atomic_fetch_add(&w->skipped, 1);
        else if (atomic_fetch_add(&w->failed, 1) < 3) /* a few examples, not one per row */
            log_msg(LOG_WARN, "warm_key_failed", "\"error\":\"%s\"", err);
    }
out:
    free(st);
    handler_worker_free(hw);
    return NULL;
}

/* Run entry e's query and collect its URIs into w. */
static int collect_uris(struct warm *w, struct db_conn *db, const struct rc_warm *e)
{
    const struct route *r = &w->cfg->routes[e->route];
    char *sql = malloc(WARM_SQL_MAX);
    char err[RC_ERRBUF];
    struct db_result *res = NULL;
    size_t len = strlen(e->sql), rows;

    if (sql == NULL)
        return -1;
    /* A trailing ';' would end the wrapped statement early. */
    while (len > 0 && strchr(" \t\r\n;", e->sql[len - 1]) != NULL)
        len--;
    snprintf(sql, WARM_SQL_MAX, "SELECT * FROM (%.*s) AS respcache_warm LIMIT %d", (int)len, e->sql,
             e->limit);
    if (db_query(db, sql, &res, err) != DB_OK) {
        free(sql);
        log_msg(LOG_ERROR, "warm_query_failed", "\"route\":\"%s\",\"error\":\"%s\"", r->name, err);
        return -1;
    }
    free(sql);
    rows = db_result_rows(res);
    w->uris = calloc(rows ? rows : 1, sizeof(char *));
    if (w->uris == NULL) {
        db_result_free(res);
        return -1;
    }
    for (size_t i = 0; i < rows; i++) {
        char *u = row_uri(r, res, i);
        if (u == NULL) {
            atomic_fetch_add(&w->failed, 1);
            continue;
        }
        w->uris[w->nuris++] = u;
    }
    db_result_free(res);
    return 0;
}

static void free_uris(struct warm *w)
{
    for (size_t i = 0; i < w->nuris; i++)
        free(w->uris[i]);
    free(w->uris);
    w->uris = NULL;
    w->nuris = 0;
}

static void *warm_main(void *arg)
{
    struct warm *w = arg;
    struct db_conn *db = db_conn_open(w->cfg);
    int64_t t0 = rc_mono_ms();
    size_t nthreads = (size_t)w->cfg->warm_concurrency;
    pthread_t *threads = calloc(nthreads, sizeof(pthread_t));

    if (db == NULL || threads == NULL) {
        log_msg(LOG_ERROR, "warm_failed", "\"error\":\"out of memory\"");
        goto out;
    }
    for (size_t k = 0; k < w->cfg->nwarm && !atomic_load(&w->stopping); k++) {
        const struct rc_warm *e = &w->cfg->warm[k];
        size_t started = 0;

        if (collect_uris(w, db, e) < 0)
            continue;
        w->route = e->route;
        atomic_store(&w->next, 0);
        for (; started < nthreads && started < w->nuris; started++)
            if (pthread_create(&threads[started], NULL, filler_main, w) != 0)
                break;
        for (size_t i = 0; i < started; i++)
            pthread_join(threads[i], NULL);
        free_uris(w);
    }
    metrics_warm(w->metrics, atomic_load(&w->stored));
    log_msg(LOG_INFO, "warm_done",
            "\"stored\":%u,\"skipped\":%u,\"failed\":%u,\"ms\":%lld,\"stopped\":%s",
            atomic_load(&w->stored), atomic_load(&w->skipped), atomic_load(&w->failed),
            (long long)(rc_mono_ms() - t0), atomic_load(&w->stopping) ? "true" : "false");
out:
    free(threads);
    db_conn_close(db);
    return NULL;
}

struct warm *warm_start(const struct rc_config *cfg, struct handler *h, struct metrics *metrics,
                        char *errbuf)
{
    struct warm *w;

    errbuf[0] = '\0';
    if (cfg->nwarm == 0)
        return NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        rc_err(errbuf, "warm-up: out of memory");
        return NULL;
    }
    w->cfg = cfg;
    w->h = h;
    w->metrics = metrics;
    atomic_init(&w->stopping, false);
    if (pthread_create(&w->thread, NULL, warm_main, w) != 0) {
        free(w);
        rc_err(errbuf, "warm-up: cannot start its thread");
        return NULL;
    }
    return w;
}

void warm_stop(struct warm *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stopping, true);
    pthread_join(w->thread, NULL);
    free(w);
}
