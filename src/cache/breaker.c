/*
 * breaker.c - the circuit breaker state machine of breaker.h.
 *
 * Reports that arrive late are judged by what they prove: a failure of an
 * attempt admitted while closed counts only while the breaker is still
 * closed (it is already open otherwise); a success of such an attempt never
 * closes an open breaker (only the probe decides that); a probe's outcome
 * always decides, even if the probe was given up meanwhile, because it is
 * the most recent evidence there is.
 */
#include "breaker.h"

int breaker_init(struct breaker *b, unsigned threshold, int64_t open_ms, int64_t probe_timeout_ms)
{
    if (pthread_mutex_init(&b->lock, NULL) != 0)
        return -1;
    atomic_init(&b->state, BREAKER_CLOSED);
    atomic_init(&b->failures, 0);
    atomic_init(&b->opens, 0);
    b->threshold = threshold > 0 ? threshold : 1;
    b->open_ms = open_ms > 0 ? open_ms : 1;
    b->probe_timeout_ms = probe_timeout_ms > 0 ? probe_timeout_ms : b->open_ms;
    b->until_ms = 0;
    b->probe_started_ms = 0;
    b->probing = false;
    return 0;
}

void breaker_destroy(struct breaker *b)
{
    if (b != NULL)
        pthread_mutex_destroy(&b->lock);
}

/* The one place the state changes; b->lock is held. */
static int breaker_set_state(struct breaker *b, enum breaker_state to, int64_t now_ms)
{
    enum breaker_state from = (enum breaker_state)atomic_load(&b->state);

    switch (to) {
    case BREAKER_CLOSED:
        atomic_store(&b->failures, 0);
        b->probing = false;
        break;
    case BREAKER_OPEN:
        b->until_ms = now_ms + b->open_ms;
        b->probing = false;
        if (from != BREAKER_OPEN)
            atomic_fetch_add(&b->opens, 1);
        break;
    case BREAKER_HALF_OPEN:
        b->probing = true;
        b->probe_started_ms = now_ms;
        break;
    }
    atomic_store_explicit(&b->state, to, memory_order_release);
    return from == to ? -1 : (int)to;
}

enum breaker_admit breaker_admit(struct breaker *b, int64_t now_ms)
{
    enum breaker_admit r = BREAKER_REJECT;

    if (atomic_load_explicit(&b->state, memory_order_acquire) == BREAKER_CLOSED)
        return BREAKER_GO;
    pthread_mutex_lock(&b->lock);
    switch ((enum breaker_state)atomic_load(&b->state)) {
    case BREAKER_CLOSED:
        r = BREAKER_GO;
        break;
    case BREAKER_OPEN:
        if (now_ms >= b->until_ms) {
            breaker_set_state(b, BREAKER_HALF_OPEN, now_ms);
            r = BREAKER_PROBE;
        }
        break;
    case BREAKER_HALF_OPEN:
        if (!b->probing || now_ms - b->probe_started_ms >= b->probe_timeout_ms) {
            breaker_set_state(b, BREAKER_HALF_OPEN, now_ms);
            r = BREAKER_PROBE;
        }
        break;
    }
    pthread_mutex_unlock(&b->lock);
    return r;
}

int breaker_report(struct breaker *b, enum breaker_admit how, bool ok, int64_t now_ms)
{
    int changed = -1;

    if (how == BREAKER_REJECT)
        return -1;
    if (ok && how == BREAKER_GO) {
        /* The common case: no lock, and no write unless there is a count
         * to clear. */
        if (atomic_load_explicit(&b->failures, memory_order_relaxed) != 0)
            atomic_store_explicit(&b->failures, 0, memory_order_relaxed);
        return -1;
    }
    pthread_mutex_lock(&b->lock);
    enum breaker_state st = (enum breaker_state)atomic_load(&b->state);
    if (ok) {
        if (st != BREAKER_CLOSED)
            changed = breaker_set_state(b, BREAKER_CLOSED, now_ms);
    } else if (how == BREAKER_PROBE) {
        if (st == BREAKER_HALF_OPEN)
            changed = breaker_set_state(b, BREAKER_OPEN, now_ms);
    } else if (st == BREAKER_CLOSED) {
        if (atomic_fetch_add(&b->failures, 1) + 1 >= b->threshold)
            changed = breaker_set_state(b, BREAKER_OPEN, now_ms);
    }
    pthread_mutex_unlock(&b->lock);
    return changed;
}

enum breaker_state breaker_state(struct breaker *b)
{
    return (enum breaker_state)atomic_load_explicit(&b->state, memory_order_acquire);
}

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}
