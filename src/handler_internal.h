/*
 * handler_internal.h - what handler.c (routing, the fast stage, writes,
 * responses) shares with handler_read.c (the read path: lookup, stale
 * answers, single-flight, fills, refreshes, warm-up). Nothing outside the
 * handler module includes it: handler.h is the module's contract.
 */
#ifndef RC_HANDLER_INTERNAL_H
#define RC_HANDLER_INTERNAL_H

#include "admin.h"
#include "buf.h"
#include "db.h"
#include "handler.h"
#include "notify.h"
#include "singleflight.h"

#include <stdatomic.h>
#include <stdbool.h>

/* Largest response body a query may produce; past it the request fails
 * (500) rather than exhausting memory. */
#define MAX_RESPONSE_BYTES (64u << 20)

struct handler {
    const struct rc_config *cfg;
    struct cache *cache; /* NULL: provider none */
    struct router *router;
    struct metrics *metrics; /* may be NULL */
    struct admin *admin;
    struct health *health;           /* may be NULL: the database counts as up */
    struct singleflight *sf;         /* coalesced misses: queries others may wait for */
    struct singleflight *refreshing; /* one queued refresh per key (nobody waits on it) */
    struct singleflight *writing;    /* write-throughs of one entry take turns */
    atomic_int refreshes;            /* queued or running: at most half the workers */
    struct ownnotify *own;           /* our writes' notifications; may be NULL */
};

struct handler_worker {
    struct handler *h;
    struct db_conn *db;
    buf body;            /* response body */
    buf entry;           /* encoded cache entry */
    buf reqbody;         /* request body */
    buf store;           /* body param values */
    uint64_t lock_token; /* this worker's token for the provider's lock op */
    /* The write path (handler_write.c). */
    struct handler_state *wt;          /* a write-through's GET twin: key, tags, gens */
    struct notify_msg *nmsg;           /* an own notification, parsed */
    buf bumptext, bumpidx, bumpvec;    /* tags to bump: text, refs, rc_str vector */
    buf ownpay;                        /* own notifications' payloads, NUL-separated */
    bool own_ok;                       /* every own payload and tag was kept */
    struct rc_str own_tx;              /* their transaction (notify.h tx); len 0: unknown */
    int64_t drained_ms;                /* last handler_worker_idle drain */
    char own_txbuf[NOTIFY_MAX_TX + 1]; /* own_tx's bytes */
};

/* Caps of the write path's buffers; past them a write bumps "*". */
#define HANDLER_BUMP_TEXT_MAX    (1u << 20)
#define HANDLER_OWN_PAYLOADS_MAX (4u << 20)

/* An answer to store (handler_store). */
struct fill {
    int status;    /* 200 or 404 */
    long ttl;      /* seconds fresh */
    long cap;      /* "_ttl" column: seconds the entry may live at all; -1 none */
    uint64_t etag; /* hash of the body */
};

/* What to put in the header block besides status and content type. */
struct reply {
    int status;
    const char *x_cache;      /* X-Cache value, or NULL */
    const char *etag;         /* quoted, or NULL */
    long age;                 /* Age header when >= 0 */
    const char *allow;        /* 405 */
    const char *location;     /* 201 */
    const char *extra;        /* a full extra header line without CRLF, or NULL */
    const char *content_type; /* NULL: JSON */
    bool no_cache;            /* Cache-Control: no-cache */
    bool retry_after;         /* 503 */
};

/* handler.c */
void handler_send_reply(const struct rc_io *io, struct handler_state *st, const struct reply *r,
                        const char *body, size_t blen);
void handler_send_error(const struct rc_io *io, struct handler_state *st, int status,
                        const char *message, const char *allow);
int handler_status_for_db(enum db_status s);
/* Run the matched route's statement on w's connection, timed into metrics. */
enum db_status handler_exec(struct handler *h, struct handler_worker *w, struct handler_state *st,
                            bool idempotent, struct db_result **res, char *err);
/* Build the cache key and tag list of a GET into st; false when they do not
 * fit (the request then bypasses the cache). */
bool handler_key_and_tags(const struct route *route, struct handler_state *st);

/* handler_write.c */
/* A write on a database worker: body, statement, invalidation,
 * write-through, answer. */
void handler_write_slow(struct handler *h, struct handler_worker *w, struct handler_state *st,
                        const struct rc_io *io);

/* handler_read.c */
/* Seconds from a "_ttl" column of the result, or -1 when there is none. */
long handler_ttl_column(struct db_result *res);
/* An answer of status rendered into body from res: fresh for ttl seconds,
 * or less when res has a smaller "_ttl" column. */
void handler_fill_set(struct fill *fl, int status, long ttl, struct db_result *res,
                      const buf *body);
/* Store the answer in w->body under st's key with st->gens. */
void handler_store(struct handler *h, struct handler_worker *w, struct handler_state *st,
                   const struct fill *fl);
/* The event loop's lookup (memory provider): answer a fresh entry (HIT), a
 * stale one inside its windows (STALE, refresh queued in st->after), or an
 * error-window one while the database is known to be down. True when
 * answered; otherwise st->gens hold the generations read. */
bool handler_read_lookup(struct handler *h, struct handler_state *st, const struct rc_request *req,
                         const struct rc_io *io);
/* The event loop's lookup for a remote provider with get_local (tiered's
 * L1): answers a fresh local entry (HIT) and nothing else. */
bool handler_read_local(struct handler *h, struct handler_state *st, const struct rc_request *req,
                        const struct rc_io *io);
/* A GET on a database worker: the lookup for remote providers, then
 * single-flight, the query, the store, stale-if-error. */
void handler_read_slow(struct handler *h, struct handler_worker *w, struct handler_state *st,
                       const struct rc_request *req, const struct rc_io *io);

#endif
