/*
 * ownnotify.c - the table behind ownnotify.h: a fixed array of pairs,
 * scanned linearly. It holds only the notifications between a worker's
 * commit and the listener's receipt (a few ms), so it stays short; a hash
 * of the payload makes most comparisons one integer compare.
 */
#include "ownnotify.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pair {
    char *payload; /* NULL: free slot */
    size_t len;
    uint64_t hash;
    int64_t at_ms;
    uint64_t seq; /* insertion order: the smallest is the oldest */
    int pid;
};

struct writer {
    int pid; /* 0: free */
    int depth;
};

struct ownnotify {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a put or an end */
    size_t cap, used;
    uint64_t seq;
    struct pair *pairs;
    struct writer writers[OWNNOTIFY_MAX_WRITERS];
};

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

struct ownnotify *ownnotify_create(size_t cap)
{
    struct ownnotify *o = calloc(1, sizeof(*o));

    if (o == NULL || cap == 0 || (o->pairs = calloc(cap, sizeof(*o->pairs))) == NULL) {
        free(o);
        return NULL;
    }
    pthread_condattr_t ca;
    o->cap = cap;
    pthread_mutex_init(&o->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->cond, &ca);
    pthread_condattr_destroy(&ca);
    return o;
}

static void forget(struct ownnotify *o, struct pair *p)
{
    free(p->payload);
    memset(p, 0, sizeof(*p));
    o->used--;
}

void ownnotify_free(struct ownnotify *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < o->cap; i++)
        free(o->pairs[i].payload);
    free(o->pairs);
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->cond);
    free(o);
}

int ownnotify_put(struct ownnotify *o, int pid, const char *payload, int64_t now_ms)
{
    size_t len = strlen(payload);
    char *copy = malloc(len + 1);
    struct pair *slot = NULL, *oldest = NULL;

    if (copy == NULL)
        return -1;
    memcpy(copy, payload, len + 1);
    pthread_mutex_lock(&o->lock);
    for (size_t i = 0; i < o->cap; i++) {
        struct pair *p = &o->pairs[i];
        if (p->payload != NULL && now_ms - p->at_ms > OWNNOTIFY_TTL_MS)
            forget(o, p);
        if (p->payload == NULL) {
            if (slot == NULL)
                slot = p;
        } else if (oldest == NULL || p->seq < oldest->seq) {
            oldest = p;
        }
    }
    if (slot == NULL) { /* full: the oldest is bumped a second time, harmless */
        forget(o, oldest);
        slot = oldest;
    }
    *slot = (struct pair){.payload = copy,
                          .len = len,
                          .hash = fnv1a(payload, len),
                          .at_ms = now_ms,
                          .seq = ++o->seq,
                          .pid = pid};
    o->used++;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
    return 0;
}

static struct writer *writer_find(struct ownnotify *o, int pid)
{
    for (size_t i = 0; i < OWNNOTIFY_MAX_WRITERS; i++)
        if (o->writers[i].pid == pid)
            return &o->writers[i];
    return NULL;
}

void ownnotify_begin(struct ownnotify *o, int pid)
{
    struct writer *w;

    if (pid == 0)
        return;
    pthread_mutex_lock(&o->lock);
    if ((w = writer_find(o, pid)) == NULL && (w = writer_find(o, 0)) != NULL)
        w->pid = pid;
    if (w != NULL) /* else: no room, the listener will not wait for this one */
        w->depth++;
    pthread_mutex_unlock(&o->lock);
}

void ownnotify_end(struct ownnotify *o, int pid)
{
    struct writer *w;

    if (pid == 0)
        return;
    pthread_mutex_lock(&o->lock);
    if ((w = writer_find(o, pid)) != NULL && --w->depth <= 0)
        *w = (struct writer){0, 0};
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
}

/* Find and forget the pair; caller holds the lock. */
static bool take_locked(struct ownnotify *o, int pid, const char *payload, size_t len,
                        uint64_t hash, int64_t now_ms)
{
    for (size_t i = 0; i < o->cap && o->used > 0; i++) {
        struct pair *p = &o->pairs[i];
        if (p->payload == NULL)
            continue;
        if (now_ms - p->at_ms > OWNNOTIFY_TTL_MS) {
            forget(o, p);
            continue;
        }
        if (p->pid == pid && p->hash == hash && p->len == len &&
            memcmp(p->payload, payload, len) == 0) {
            forget(o, p);
            return true;
        }
    }
    return false;
}

bool ownnotify_take(struct ownnotify *o, int pid, const char *payload, int64_t now_ms, int wait_ms)
{
    size_t len = strlen(payload);
    uint64_t hash = fnv1a(payload, len);
    int64_t t = rc_mono_ms(), until = t + wait_ms;
    struct timespec ts;
    bool found;

    rc_mono_deadline(&ts, wait_ms);
    pthread_mutex_lock(&o->lock);
    while (!(found = take_locked(o, pid, payload, len, hash, now_ms)) && pid != 0 &&
           writer_find(o, pid) != NULL && t < until) {
        (void)pthread_cond_timedwait(&o->cond, &o->lock, &ts);
        now_ms += rc_mono_ms() - t;
        t = rc_mono_ms();
    }
    pthread_mutex_unlock(&o->lock);
    return found;
}

size_t ownnotify_size(struct ownnotify *o)
{
    size_t n;

    pthread_mutex_lock(&o->lock);
    n = o->used;
    pthread_mutex_unlock(&o->lock);
    return n;
}
