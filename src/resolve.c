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

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
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
        /* 0: done; EAI_AGAIN: the time passed; EAI_INTR: a signal. Anything
         * else (EAI_SYSTEM) would return at once again: stop waiting. */
        int s = gai_suspend((const struct gaicb *const *)list, 1, &ts);
        if (s != 0 && s != EAI_AGAIN && s != EAI_INTR && s != EAI_ALLDONE)
            break;
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

/* An address already, or something that is not a DNS name for libpq: a
 * socket directory or an abstract socket. */
static bool needs_no_lookup(const char *host)
{
    unsigned char a[sizeof(struct in6_addr)];

    return host[0] == '\0' || host[0] == '/' || host[0] == '@' || strchr(host, ',') != NULL ||
           inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

int rc_resolve_pin(const char *host, int64_t deadline_ms, char *hosts, size_t hosts_size,
                   char *addrs, size_t addrs_size, char *errbuf)
{
    struct addrinfo hints, *res;
    size_t ho = 0, ao = 0, n = 0;
    bool timed_out, cut = false;
    int rc;

    if (host == NULL || needs_no_lookup(host))
        return 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM; /* as libpq asks */
    rc = rc_resolve(host, "5432", &hints, deadline_ms, &res, &timed_out);
    if (rc != 0)
        return rc_err(errbuf, "cannot resolve %s: %s", host,
                      timed_out ? "timed out" : gai_strerror(rc));
    for (struct addrinfo *ai = res; ai != NULL && n < RESOLVE_PIN_MAX; ai = ai->ai_next) {
        char a[INET6_ADDRSTRLEN];
        const void *src =
            ai->ai_family == AF_INET
                ? (const void *)&((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr
                : (const void *)&((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr;
        int hw, aw;

        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            inet_ntop(ai->ai_family, src, a, sizeof(a)) == NULL)
            continue;
        hw = snprintf(hosts + ho, hosts_size - ho, "%s%s", n ? "," : "", host);
        aw = snprintf(addrs + ao, addrs_size - ao, "%s%s", n ? "," : "", a);
        if (hw < 0 || aw < 0 || (size_t)hw >= hosts_size - ho || (size_t)aw >= addrs_size - ao) {
            cut = true; /* no room for this one: keep those that fit */
            break;
        }
        ho += (size_t)hw;
        ao += (size_t)aw;
        n++;
    }
    freeaddrinfo(res);
    if (n == 0)
        return rc_err(errbuf, "cannot resolve %s: %s", host,
                      cut ? "no room for its address" : "no address");
    hosts[ho] = '\0';
    addrs[ao] = '\0';
    return 1;
}
