/*
 * resolve.c - rc_resolve: getaddrinfo_a, waited for with gai_suspend until
 * the deadline.
 *
 * Ownership. A lookup's request block (the gaicb, the hints and copies of
 * the name and port) is read by glibc's resolver thread until the lookup is
 * done. When the deadline passes first, gai_cancel removes a lookup that
 * has not started; one that is running cannot be stopped, so its block is
 * parked on a list instead of freed. Every rc_resolve call first frees the
 * parked blocks whose lookups have finished (gai_error is no longer
 * EAI_INPROGRESS), so the list holds at most the lookups glibc is still
 * running, each bounded by the resolver's own timeouts.
 */
#include "resolve.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lookup {
    struct gaicb cb; /* first: glibc gets &cb */
    struct addrinfo hints;
    struct lookup *next; /* parked */
    char names[];        /* host, NUL, port, NUL */
};

static pthread_mutex_t parked_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lookup *parked;
static size_t nparked;

static void lookup_free(struct lookup *l)
{
    if (l->cb.ar_result != NULL)
        freeaddrinfo(l->cb.ar_result);
    free(l);
}

/* Free the parked lookups glibc has finished with. */
static void sweep(void)
{
    struct lookup *done = NULL;

    pthread_mutex_lock(&parked_lock);
    for (struct lookup **pp = &parked; *pp != NULL;) {
        struct lookup *l = *pp;
        if (gai_error(&l->cb) == EAI_INPROGRESS) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        nparked--;
        l->next = done;
        done = l;
    }
    pthread_mutex_unlock(&parked_lock);
    while (done != NULL) {
        struct lookup *next = done->next;
        lookup_free(done);
        done = next;
    }
}

static void park(struct lookup *l)
{
    pthread_mutex_lock(&parked_lock);
    l->next = parked;
    parked = l;
    nparked++;
    pthread_mutex_unlock(&parked_lock);
}

size_t rc_resolve_parked(void)
{
    size_t n;

    sweep();
    pthread_mutex_lock(&parked_lock);
    n = nparked;
    pthread_mutex_unlock(&parked_lock);
    return n;
}

int rc_resolve(const char *host, const char *port, const struct addrinfo *hints,
               int64_t deadline_ms, struct addrinfo **res, bool *timed_out)
{
    size_t hl = strlen(host) + 1, pl = strlen(port) + 1;
    struct sigevent sev;
    struct gaicb *list[1];
    struct lookup *l;
    int rc;

    *res = NULL;
    *timed_out = false;
    sweep();
    l = calloc(1, sizeof(*l) + hl + pl);
    if (l == NULL)
        return EAI_MEMORY;
    memcpy(l->names, host, hl);
    memcpy(l->names + hl, port, pl);
    l->hints = *hints;
    l->cb.ar_name = l->names;
    l->cb.ar_service = l->names + hl;
    l->cb.ar_request = &l->hints;
    list[0] = &l->cb;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_NONE;
    rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
    if (rc != 0) {
        free(l);
        return rc;
    }
    for (;;) {
        int64_t left = deadline_ms - rc_mono_ms();
        struct timespec ts;

        if (gai_error(&l->cb) != EAI_INPROGRESS || left <= 0)
            break;
        ts.tv_sec = (time_t)(left / 1000);
        ts.tv_nsec = (long)(left % 1000) * 1000000L;
        /* 0: done; EAI_AGAIN: the time passed; EAI_INTR: a signal. */
        (void)gai_suspend((const struct gaicb *const *)list, 1, &ts);
    }
    rc = gai_error(&l->cb);
    if (rc == EAI_INPROGRESS) {
        *timed_out = true;
        switch (gai_cancel(&l->cb)) {
        case EAI_CANCELED: /* never started: glibc has let go of it */
            free(l);
            return EAI_AGAIN;
        case EAI_NOTCANCELED: /* running: glibc still writes into it */
            park(l);
            return EAI_AGAIN;
        default: /* EAI_ALLDONE: it finished just now */
            *timed_out = false;
            rc = gai_error(&l->cb);
            break;
        }
    }
    if (rc == 0) {
        *res = l->cb.ar_result;
        l->cb.ar_result = NULL;
    }
    lookup_free(l);
    return rc;
}
