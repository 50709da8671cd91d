/*
 * singleflight.c - the flight table behind singleflight.h.
 *
 * Structure: SF_STRIPES stripes chosen by the key's hash, each a mutex, a
 * condition variable (on CLOCK_MONOTONIC, so wall-clock jumps do not
 * stretch a wait) and a short list of running flights. A flight holds a
 * copy of its key and a reference count: the leader's reference plus one
 * per waiter. singleflight_done marks it done and unlinks it at once, so a
 * caller arriving afterwards starts a new flight (it then finds the entry
 * the leader stored on its double-check lookup); whoever drops the last
 * reference frees it. Waiters of a stripe share its condition variable and
 * re-check their own flight's flag when woken.
 */
#include "singleflight.h"

#include "cache/entry.h" /* entry_hash */

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SF_STRIPES 64 /* power of two */

struct singleflight_flight {
    struct singleflight_flight *next;
    uint64_t hash;
    unsigned refs; /* under the stripe lock */
    bool done;
    bool unavailable;
    size_t klen;
    char key[];
};

struct stripe {
    alignas(64) pthread_mutex_t lock;
    pthread_cond_t cond;
    struct singleflight_flight *head;
};

struct singleflight {
    struct stripe stripes[SF_STRIPES];
    atomic_long inflight;
};

struct singleflight *singleflight_create(void)
{
    struct singleflight *sf = aligned_alloc(alignof(struct singleflight), sizeof(*sf));
    pthread_condattr_t ca;

    if (sf == NULL)
        return NULL;
    memset(sf, 0, sizeof(*sf));
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (size_t i = 0; i < SF_STRIPES; i++) {
        pthread_mutex_init(&sf->stripes[i].lock, NULL);
        pthread_cond_init(&sf->stripes[i].cond, &ca);
    }
    pthread_condattr_destroy(&ca);
    atomic_init(&sf->inflight, 0);
    return sf;
}

void singleflight_free(struct singleflight *sf)
{
    if (sf == NULL)
        return;
    for (size_t i = 0; i < SF_STRIPES; i++) {
        pthread_mutex_destroy(&sf->stripes[i].lock);
        pthread_cond_destroy(&sf->stripes[i].cond);
    }
    free(sf);
}

static struct stripe *stripe_of(struct singleflight *sf, uint64_t h)
{
    return &sf->stripes[(h >> 32) & (SF_STRIPES - 1)];
}

static struct singleflight_flight *find(struct stripe *st, uint64_t h, const char *key, size_t klen)
{
    for (struct singleflight_flight *f = st->head; f != NULL; f = f->next)
        if (f->hash == h && f->klen == klen && memcmp(f->key, key, klen) == 0)
            return f;
    return NULL;
}

/* A new flight linked into st (lock held); NULL when out of memory. */
static struct singleflight_flight *lead(struct singleflight *sf, struct stripe *st, uint64_t h,
                                        const char *key, size_t klen)
{
    struct singleflight_flight *f = malloc(sizeof(*f) + klen);
    if (f == NULL)
        return NULL;
    f->hash = h;
    f->refs = 1;
    f->done = false;
    f->unavailable = false;
    f->klen = klen;
    memcpy(f->key, key, klen);
    f->next = st->head;
    st->head = f;
    atomic_fetch_add_explicit(&sf->inflight, 1, memory_order_relaxed);
    return f;
}

enum singleflight_role singleflight_begin(struct singleflight *sf, const char *key, size_t klen,
                                          int wait_ms, struct singleflight_flight **out)
{
    uint64_t h = entry_hash(key, klen);
    struct stripe *st = stripe_of(sf, h);
    struct singleflight_flight *f;
    struct timespec until;
    enum singleflight_role r;

    *out = NULL;
    pthread_mutex_lock(&st->lock);
    f = find(st, h, key, klen);
    if (f == NULL) {
        *out = lead(sf, st, h, key, klen);
        pthread_mutex_unlock(&st->lock);
        return SINGLEFLIGHT_LEADER;
    }
    if (wait_ms <= 0) {
        pthread_mutex_unlock(&st->lock);
        return SINGLEFLIGHT_TIMEOUT;
    }
    f->refs++;
    rc_mono_deadline(&until, wait_ms);
    while (!f->done && pthread_cond_timedwait(&st->cond, &st->lock, &until) == 0)
        ;
    r = !f->done         ? SINGLEFLIGHT_TIMEOUT
        : f->unavailable ? SINGLEFLIGHT_FAILED
                         : SINGLEFLIGHT_SHARED;
    if (--f->refs == 0)
        free(f); /* the leader is done (it held a reference until then) */
    pthread_mutex_unlock(&st->lock);
    return r;
}

enum singleflight_role singleflight_try(struct singleflight *sf, const char *key, size_t klen,
                                        struct singleflight_flight **out)
{
    uint64_t h = entry_hash(key, klen);
    struct stripe *st = stripe_of(sf, h);
    enum singleflight_role r = SINGLEFLIGHT_BUSY;

    *out = NULL;
    pthread_mutex_lock(&st->lock);
    if (find(st, h, key, klen) == NULL) {
        *out = lead(sf, st, h, key, klen);
        r = *out != NULL ? SINGLEFLIGHT_LEADER : SINGLEFLIGHT_BUSY;
    }
    pthread_mutex_unlock(&st->lock);
    return r;
}

void singleflight_done(struct singleflight *sf, struct singleflight_flight *f, bool unavailable)
{
    struct stripe *st;

    if (f == NULL)
        return;
    st = stripe_of(sf, f->hash);
    pthread_mutex_lock(&st->lock);
    for (struct singleflight_flight **pp = &st->head; *pp != NULL; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    f->done = true;
    f->unavailable = unavailable;
    if (--f->refs > 0)
        pthread_cond_broadcast(&st->cond);
    else
        free(f);
    pthread_mutex_unlock(&st->lock);
    atomic_fetch_sub_explicit(&sf->inflight, 1, memory_order_relaxed);
}

long singleflight_inflight(struct singleflight *sf)
{
    return sf ? atomic_load_explicit(&sf->inflight, memory_order_relaxed) : 0;
}
