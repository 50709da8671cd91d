/*
 * pending.c - the bounded set of bumps awaiting replay (pending.h).
 *
 * A plain array searched linearly: it is only touched while the shared
 * cache is failing, and bounded, so simplicity wins over a hash.
 */
#include "pending.h"

#include "cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct pending {
    pthread_mutex_t lock;
    _Atomic bool nonempty;
    bool all;
    size_t n, max;
    struct rc_str *tags; /* each s malloc'd, NUL-terminated */
};

struct pending *pending_create(size_t max_tags)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->max = max_tags;
    p->tags = calloc(max_tags ? max_tags : 1, sizeof(*p->tags));
    if (p->tags == NULL || pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p->tags);
        free(p);
        return NULL;
    }
    atomic_init(&p->nonempty, false);
    return p;
}

static void drop_tags(struct pending *p)
{
    for (size_t i = 0; i < p->n; i++)
        free((char *)p->tags[i].s);
    p->n = 0;
}

void pending_free(struct pending *p)
{
    if (p == NULL)
        return;
    drop_tags(p);
    free(p->tags);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void pending_add(struct pending *p, const struct rc_str *tags, size_t n)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < n && !p->all; i++) {
        const struct rc_str *t = &tags[i];
        bool dup = false;
        char *copy;

        if (t->len == 1 && t->s[0] == CACHE_GLOBAL_TAG[0]) {
            p->all = true;
            break;
        }
        for (size_t k = 0; k < p->n && !dup; k++)
            dup = p->tags[k].len == t->len && memcmp(p->tags[k].s, t->s, t->len) == 0;
        if (dup)
            continue;
        if (p->n == p->max || (copy = malloc(t->len + 1)) == NULL) {
            p->all = true;
            break;
        }
        memcpy(copy, t->s, t->len);
        copy[t->len] = '\0';
        p->tags[p->n].s = copy;
        p->tags[p->n++].len = t->len;
    }
    if (p->all)
        drop_tags(p);
    atomic_store(&p->nonempty, p->all || p->n > 0);
    pthread_mutex_unlock(&p->lock);
}

bool pending_empty(struct pending *p)
{
    return !atomic_load(&p->nonempty);
}

bool pending_begin(struct pending *p, const struct rc_str **tags, size_t *n, bool *all)
{
    if (pending_empty(p))
        return false;
    pthread_mutex_lock(&p->lock);
    if (!p->all && p->n == 0) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    *tags = p->tags;
    *n = p->n;
    *all = p->all;
    return true;
}

void pending_end(struct pending *p, bool replayed)
{
    if (replayed) {
        drop_tags(p);
        p->all = false;
        atomic_store(&p->nonempty, false);
    }
    pthread_mutex_unlock(&p->lock);
}
