/*
 * metrics.h - counters and histograms, rendered in Prometheus text format.
 *
 * One registry, created by main.c and passed down. Every series is a plain
 * relaxed atomic: no lock anywhere, so the hit path pays a few uncontended
 * atomic adds. Label cardinality is bounded by construction: routes are
 * the configured route names (plus the fixed pseudo-routes below), statuses
 * a fixed list (others count as "other").
 */
#ifndef RC_METRICS_H
#define RC_METRICS_H

#include "buf.h"
#include "cache/cache.h"
#include "common.h"
#include "config.h"

#include <stdint.h>

struct metrics;

/* Pseudo-routes after the configured ones (index nroutes + k). */
enum metrics_pseudo_route {
    METRICS_UNMATCHED = 0, /* 404/405/400 before a route was chosen */
    METRICS_HEALTH,
    METRICS_METRICS,
    METRICS_ADMIN,
    METRICS_NPSEUDO
};

enum metrics_cache_result {
    METRICS_HIT,
    METRICS_MISS,
    METRICS_STALE,
    METRICS_BYPASS,
    METRICS_CACHE_ERROR,
    METRICS_NCACHE
};

/* Why an answer was STALE. */
enum metrics_stale_reason {
    METRICS_STALE_EXPIRED, /* past its TTL, inside stale-while-revalidate */
    METRICS_STALE_SOFT,    /* a tag was soft-purged */
    METRICS_STALE_ERROR,   /* the database failed: stale-if-error */
    METRICS_NSTALE
};

struct metrics *metrics_create(const struct rc_config *cfg) RC_MUSTCHECK;
void metrics_free(struct metrics *m);

/* route: index into cfg->routes, or cfg->nroutes + a pseudo-route. */
void metrics_request(struct metrics *m, int route, int status, int64_t duration_us);
void metrics_cache(struct metrics *m, int route, enum metrics_cache_result r);
void metrics_db_query(struct metrics *m, int64_t duration_us, int ok);
void metrics_invalidation(struct metrics *m, unsigned tags, int ok);
/* Of the tags just counted by metrics_invalidation, those the shared cache
 * left alone: they had been bumped for the same transaction already,
 * usually by another instance (cache.h, bump_tags_once). */
void metrics_bumps_shared(struct metrics *m, unsigned tags);

/* Freshness (issue "Fresh under load"). */
void metrics_stale(struct metrics *m, enum metrics_stale_reason r);
/* A miss waited for another's query; timed_out: it then queried itself. */
void metrics_singleflight_wait(struct metrics *m, int timed_out);
/* Queries leading a flight right now: +1 when one starts, -1 when it ends. */
void metrics_singleflight_inflight(struct metrics *m, int delta);
/* A background refresh ran its query (ok) or failed. */
void metrics_refresh(struct metrics *m, int ok);
/* A notification from the database bumped `tags` tags; delay_us is the
 * time from its commit to the bump (< 0: unknown). */
void metrics_db_invalidation(struct metrics *m, unsigned tags, int64_t delay_us);
/* A notification of one of our own writes, which the write bumped itself. */
void metrics_own_notification(struct metrics *m);
/* What a write-through route did with its answer. */
enum metrics_wt {
    METRICS_WT_SKIPPED, /* another change moved its tags meanwhile */
    METRICS_WT_STORED,
    METRICS_WT_ERROR, /* the cache failed (or the key could not be built) */
};
void metrics_write_through(struct metrics *m, enum metrics_wt result);
/* The LISTEN connection came back after a drop (and "*" was bumped). */
void metrics_listener_reconnect(struct metrics *m);
/* Warm-up stored n entries. */
void metrics_warm(struct metrics *m, unsigned n);

/* Append the whole exposition (text format 0.0.4). `cache` may be NULL. */
int metrics_render(struct metrics *m, struct cache *cache, buf *out) RC_MUSTCHECK;

/* Totals for /cache/stats. */
struct metrics_totals {
    uint64_t hits, misses, stale, bypass, errors;
};
void metrics_totals(struct metrics *m, struct metrics_totals *out);

#endif
