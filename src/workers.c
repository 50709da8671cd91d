/*
 * workers.c - a fixed pool of threads around one mutex-protected FIFO.
 *
 * One lock for the queue is fine here: it is taken once per miss or write,
 * which then spends a database round trip; hits never touch it.
 */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct workers_job *head, *tail;
    size_t pending;
    bool stopping;
    struct workers_fns fns;
    size_t nthreads;
    pthread_t *threads;
    /* Start-up handshake: each thread reports its init result. */
    size_t started, failed;
    pthread_cond_t started_cond;
};

static void *thread_main(void *arg)
{
    struct workers *w = arg;
    void *ctx = w->fns.init(w->fns.arg);

    pthread_mutex_lock(&w->lock);
    w->started++;
    if (ctx == NULL)
        w->failed++;
    pthread_cond_broadcast(&w->started_cond);
    pthread_mutex_unlock(&w->lock);
    if (ctx == NULL)
        return NULL;

    for (;;) {
        struct workers_job *job;
        pthread_mutex_lock(&w->lock);
        while (w->head == NULL && !w->stopping) {
            struct timespec until;
            if (w->fns.tick == NULL) {
                pthread_cond_wait(&w->cond, &w->lock);
                continue;
            }
            rc_mono_deadline(&until, WORKERS_IDLE_MS);
            if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT &&
                w->head == NULL && !w->stopping) {
                pthread_mutex_unlock(&w->lock);
                w->fns.tick(ctx);
                pthread_mutex_lock(&w->lock);
            }
        }
        job = w->head;
        if (job == NULL) { /* stopping and drained */
            pthread_mutex_unlock(&w->lock);
            break;
        }
        w->head = job->next;
        if (w->head == NULL)
            w->tail = NULL;
        w->pending--;
        pthread_mutex_unlock(&w->lock);
        job->next = NULL;
        w->fns.run(ctx, job);
        if (w->fns.tick != NULL)
            w->fns.tick(ctx);
    }
    w->fns.fini(ctx);
    return NULL;
}

struct workers *workers_create(size_t nthreads, const struct workers_fns *fns, char *errbuf)
{
    struct workers *w = calloc(1, sizeof(*w));
    size_t created = 0;

    if (w == NULL || nthreads == 0) {
        free(w);
        rc_err(errbuf, "cannot create the worker pool");
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the idle wait's clock */
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&w->started_cond, NULL);
    w->fns = *fns;
    w->threads = calloc(nthreads, sizeof(pthread_t));
    if (w->threads == NULL)
        goto fail;
    for (; created < nthreads; created++)
        if (pthread_create(&w->threads[created], NULL, thread_main, w) != 0)
            break;
    w->nthreads = created;
    pthread_mutex_lock(&w->lock);
    while (w->started < created)
        pthread_cond_wait(&w->started_cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    if (created < nthreads || w->failed > 0) {
        workers_stop(w);
        rc_err(errbuf, "cannot start %zu worker threads", nthreads);
        goto fail;
    }
    return w;
fail:
    workers_free(w);
    return NULL;
}

int workers_submit(struct workers *w, struct workers_job *job)
{
    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        return -1;
    }
    job->next = NULL;
    if (w->tail != NULL)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->pending++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

size_t workers_pending(struct workers *w)
{
    size_t n;
    pthread_mutex_lock(&w->lock);
    n = w->pending;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void workers_stop(struct workers *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    w->nthreads = 0;
}

void workers_free(struct workers *w)
{
    if (w == NULL)
        return;
    workers_stop(w);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    pthread_cond_destroy(&w->started_cond);
    free(w->threads);
    free(w);
}
