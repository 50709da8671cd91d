/*
 * workers.h - the database worker pool: N threads, each with a context of
 * its own (its PostgreSQL connection), taking jobs from one FIFO queue.
 *
 * Only misses, writes and background refreshes come here; the event loops
 * never wait on it. The queue is intrusive (a job embeds struct
 * workers_job), so submitting allocates nothing. Request jobs are bounded
 * by the number of connections (one request in flight each); refresh jobs
 * by the number of stale keys (one refresh per key at a time).
 */
#ifndef RC_WORKERS_H
#define RC_WORKERS_H

#include "common.h"

#include <stddef.h>

struct workers;

struct workers_job {
    struct workers_job *next;
    int kind; /* the submitter's own tag (what the job is); workers never read it */
};

/* ctx = init(arg) in each thread before it takes jobs (NULL = failure:
 * workers_create fails); run(ctx, job) per job; tick(ctx) (may be NULL)
 * after each job and after each WORKERS_IDLE_MS without one; fini(ctx)
 * at exit. */
#define WORKERS_IDLE_MS 1000
struct workers_fns {
    void *(*init)(void *arg);
    void (*run)(void *ctx, struct workers_job *job);
    void (*tick)(void *ctx);
    void (*fini)(void *ctx);
    void *arg;
};

struct workers *workers_create(size_t nthreads, const struct workers_fns *fns,
                               char *errbuf) RC_MUSTCHECK;
/* Queue a job. -1 once workers_stop has begun (the caller answers 503). */
int workers_submit(struct workers *w, struct workers_job *job) RC_MUSTCHECK;
/* Run what is queued, then stop and join the threads. */
void workers_stop(struct workers *w);
void workers_free(struct workers *w);
size_t workers_pending(struct workers *w);

#endif
