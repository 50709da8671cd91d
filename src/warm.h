/*
 * warm.h - warm-up: the optional "warm" queries of the config fill the
 * cache in the background at start, while the process already serves.
 *
 * Each entry's SELECT yields one row per key to warm, one column per path
 * or query param of its route (by the param's name). A row becomes the
 * request URI a client would send, which goes through the router, so a
 * warmed key is exactly the key a request builds. At most
 * warm_concurrency keys are filled at once, each on its own database
 * connection (held only during the warm-up), so warming never takes the
 * request workers' connections.
 */
#ifndef RC_WARM_H
#define RC_WARM_H

#include "common.h"
#include "config.h"
#include "handler.h"
#include "metrics.h"

struct warm;

/* Start warming (nothing to do when cfg->nwarm is 0: returns NULL with an
 * empty errbuf). metrics may be NULL. */
struct warm *warm_start(const struct rc_config *cfg, struct handler *h, struct metrics *metrics,
                        char *errbuf) RC_MUSTCHECK;
/* Stop early if still running (the queries in flight finish) and join.
 * Accepts NULL. */
void warm_stop(struct warm *w);

#endif
