/*
 * handler.h - what respcache does with a request: the read path
 * (cache-aside with tag generations) and the write path (mutation, then
 * invalidation, then the answer).
 *
 * A request is handled in up to two stages. handler_fast runs on the event
 * loop that owns the connection: it routes, validates, and answers
 * everything that needs no database (errors, cache hits, 304s) inline.
 * When the database is needed it returns HANDLER_NEEDS_WORKER and the
 * server queues the connection to a database worker, which calls
 * handler_slow with its own handler_worker (PostgreSQL connection and
 * buffers). Both stages share the per-connection handler_state, so nothing
 * is allocated to cross between them.
 *
 * The handler never sees FastCGI: it reads the request through rc_request
 * and writes the whole response (CGI-style header block, then body)
 * through rc_io.
 *
 * Freshness (handler_read.c): a stale entry is answered at once and its
 * refresh is handed back to the server as a handler_task in st->after, to
 * run on a database worker once the response has been finished, so a
 * refresh never delays the answer that triggered it.
 */
#ifndef RC_HANDLER_H
#define RC_HANDLER_H

#include "cache/cache.h"
#include "cache/entry.h"
#include "common.h"
#include "config.h"
#include "health.h"
#include "metrics.h"
#include "router.h"
#include "workers.h"

#include <stdbool.h>

struct handler;
struct handler_worker;
struct handler_task;

struct rc_request {
    const char *method;         /* REQUEST_METHOD */
    const char *uri;            /* REQUEST_URI: raw path and query */
    const char *content_type;   /* may be NULL */
    const char *content_length; /* may be NULL */
    const char *if_none_match;  /* may be NULL */
    const char *authorization;  /* may be NULL */
    const char *request_id;     /* may be NULL */
};

struct rc_io {
    void *ctx;
    /* Write n bytes of the response; 0 or -1. */
    int (*write)(void *ctx, const void *p, size_t n);
    /* Read up to n bytes of the request body: >0 bytes, 0 at its end, -1. */
    long (*read)(void *ctx, void *p, size_t n);
};

#define HANDLER_KEY_MAX  1024
#define HANDLER_TAGS_MAX 2048

/* Per-connection scratch shared by the two stages. */
struct handler_state {
    struct router_match m;
    enum rc_method method;
    bool cacheable;             /* a GET whose key and tags were built */
    bool looked_up;             /* the provider was asked; its generations are in gens */
    bool body_consumed;         /* the request body was read to its end */
    bool cache_error;           /* the provider failed on lookup */
    int admin;                  /* enum admin_endpoint; 0 for API routes */
    int metric_route;           /* route index, or nroutes + enum metrics_pseudo_route */
    int status;                 /* status answered, for metrics and logs */
    const char *cache_result;   /* X-Cache answered, or NULL */
    struct handler_task *after; /* run on a worker after the response; the server takes it */
    int64_t started_us;
    size_t klen;
    char key[HANDLER_KEY_MAX];
    size_t ntags; /* tags[0] is the global tag */
    struct rc_str tags[ENTRY_MAX_TAGS];
    uint64_t gens[ENTRY_MAX_TAGS]; /* read before the query (DESIGN.md) */
    char tagbuf[HANDLER_TAGS_MAX];
};

enum handler_next { HANDLER_DONE, HANDLER_NEEDS_WORKER };

/* cache may be NULL (provider "none": every GET is a BYPASS); metrics and
 * health may be NULL (no /metrics series, /health reports down). */
struct ownnotify;
struct handler *handler_create(const struct rc_config *cfg, struct cache *cache,
                               struct metrics *metrics, struct health *health,
                               struct ownnotify *own, char *errbuf) RC_MUSTCHECK;
void handler_free(struct handler *h);

struct handler_worker *handler_worker_create(struct handler *h) RC_MUSTCHECK;
void handler_worker_free(struct handler_worker *w);
struct handler *handler_worker_handler(struct handler_worker *w);
/* A worker of the server (not of the warm-up): its sessions LISTEN, so its
 * writes hear their own notifications (handler_write.c). */
void handler_worker_listen_own(struct handler_worker *w);
/* After each job and when idle: at most once a second, read what the
 * connection was sent meanwhile (notifications), so its session never
 * holds PostgreSQL's notification queue back. */
void handler_worker_idle(struct handler_worker *w);

enum handler_next handler_fast(struct handler *h, struct handler_state *st,
                               const struct rc_request *req, const struct rc_io *io);
void handler_slow(struct handler *h, struct handler_worker *w, struct handler_state *st,
                  const struct rc_request *req, const struct rc_io *io);

/* A task's queue link: the server submits it to the workers. */
struct workers_job *handler_task_job(struct handler_task *t);
struct handler_task *handler_task_of(struct workers_job *job);
/* Run a task on a database worker, then free it. */
void handler_task_run(struct handler *h, struct handler_worker *w, struct handler_task *t);
/* Free a task that will not run (the workers are stopping). Accepts NULL. */
void handler_task_free(struct handler *h, struct handler_task *t);

/* Warm-up: fill the entry of a GET for uri (path and query, as a client
 * would send it) unless a valid fresh one is cached. st is scratch the
 * caller owns; uri must match route_index. 1: stored; 0: nothing to do (fresh already, or being
 * filled); -1: failed (errbuf says why). */
int handler_warm(struct handler *h, struct handler_worker *w, struct handler_state *st,
                 int route_index, const char *uri, char *errbuf);

#endif
