/*
 * listener.h - invalidation from the database: one LISTEN connection per
 * process, on a thread of its own, bumping the tags that
 * sql/respcache_notify.sql's trigger publishes at commit, so writes that
 * bypass the API (psql, cron, other services, ON DELETE CASCADE) reach the
 * cache within milliseconds.
 *
 * NOTIFY has no replay: a notification sent while the connection is down
 * is lost. So whenever LISTEN is (re)established after this process may
 * have cached something, the global tag "*" is bumped: everything cached
 * before is unverified and is queried again. Reconnects are counted.
 */
#ifndef RC_LISTENER_H
#define RC_LISTENER_H

#include "cache/cache.h"
#include "common.h"
#include "config.h"
#include "metrics.h"

#include <stdbool.h>

struct listener;

/* Start the thread on cfg->db_notify_channel (must be set). metrics may be
 * NULL; own (may be NULL) holds the notifications our writes bumped
 * themselves, which it skips. It connects in the background and retries
 * with back-off. */
struct ownnotify;
struct listener *listener_start(const struct rc_config *cfg, struct cache *cache,
                                struct metrics *metrics, struct ownnotify *own,
                                char *errbuf) RC_MUSTCHECK;
/* Wait at most timeout_ms for the first LISTEN; true when listening. */
bool listener_wait_ready(struct listener *l, int timeout_ms);
/* Stop and join the thread, close the connection. Accepts NULL. */
void listener_stop(struct listener *l);

#endif
