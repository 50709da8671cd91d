/*
 * health.h - a background prober that keeps the answer of GET /health
 * fresh.
 *
 * The request never waits on a backend: a thread pings PostgreSQL (its own
 * connection) and the cache provider about once a second, each bounded by
 * its timeouts, and /health reads the last result. A prober that has not
 * reported for a while counts as a failed check, so a hung probe cannot
 * leave a stale "ok" behind.
 */
#ifndef RC_HEALTH_H
#define RC_HEALTH_H

#include "cache/cache.h"
#include "common.h"
#include "config.h"

#include <stdbool.h>

struct health;

struct health_status {
    bool db_ok;
    double db_latency_ms;
    bool cache_ok;
    double cache_latency_ms;
    int64_t checked_ms; /* rc_mono_ms() of the last completed probe, 0 = none yet */
};

/* cache may be NULL (provider none: reported as ok). */
struct health *health_start(const struct rc_config *cfg, struct cache *cache, int interval_ms,
                            char *errbuf) RC_MUSTCHECK;
void health_stop(struct health *h);
/* The last probe's result, with db_ok/cache_ok forced false when it is
 * older than the bound the prober should meet. */
void health_get(struct health *h, struct health_status *out);

#endif
