/*
 * breaker.h - a circuit breaker: closed, open, half-open.
 *
 * closed     every attempt goes ahead; `threshold` consecutive failures
 *            open it.
 * open       every attempt is refused at once (fail fast, no network) until
 *            open_ms have passed; then the next attempt becomes the probe.
 * half-open  exactly one attempt (the probe) is in flight, the rest are
 *            refused; its success closes the breaker, its failure opens it
 *            again for open_ms. A probe that never reports is given up after
 *            probe_timeout_ms, so a lost report cannot wedge the breaker.
 *
 * Pure and clock-free: callers pass the time (monotonic ms), so the state
 * machine is unit-tested with a fake clock. breaker_set_state() in
 * breaker.c is the only place the state changes. Thread-safe: the closed
 * fast path is one atomic load; everything else takes a mutex.
 */
#ifndef RC_CACHE_BREAKER_H
#define RC_CACHE_BREAKER_H

#include "../common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

/* What breaker_admit() allows. */
enum breaker_admit {
    BREAKER_GO,     /* closed: go ahead */
    BREAKER_PROBE,  /* go ahead as the half-open probe */
    BREAKER_REJECT, /* open, or a probe is already in flight: fail fast */
};

struct breaker {
    pthread_mutex_t lock;
    _Atomic int state;         /* enum breaker_state; read without the lock */
    _Atomic unsigned failures; /* consecutive, while closed */
    unsigned threshold;        /* failures that open it */
    int64_t open_ms;           /* how long it stays open before a probe */
    int64_t probe_timeout_ms;  /* a probe older than this is given up */
    int64_t until_ms;          /* open: no probe before this */
    int64_t probe_started_ms;  /* half-open: when the probe went */
    bool probing;              /* half-open: a probe is in flight */
    _Atomic uint64_t opens;    /* times it went closed/half-open -> open */
};

int breaker_init(struct breaker *b, unsigned threshold, int64_t open_ms,
                 int64_t probe_timeout_ms) RC_MUSTCHECK;
void breaker_destroy(struct breaker *b);

/* May an attempt go ahead at now_ms? Every GO or PROBE must be followed by
 * exactly one breaker_report() with the same value. */
enum breaker_admit breaker_admit(struct breaker *b, int64_t now_ms);

/* The outcome of an admitted attempt. Returns the new state if this report
 * changed it, else -1 (so the caller can log transitions). */
int breaker_report(struct breaker *b, enum breaker_admit how, bool ok, int64_t now_ms);

enum breaker_state breaker_state(struct breaker *b);
const char *breaker_state_name(enum breaker_state s);

#endif
