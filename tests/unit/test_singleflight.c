/* test_singleflight.c - leader election, bounded waits, refresh claims and
 * a stampede of threads on one key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "singleflight.h"

static struct singleflight *mk(void)
{
    struct singleflight *sf = singleflight_create();
    assert_non_null(sf);
    return sf;
}

static void test_singleflight_first_leads_others_time_out(void **state)
{
    (void)state;
    struct singleflight *sf = mk();
    struct singleflight_flight *f = NULL, *g = NULL;

    assert_int_equal(singleflight_begin(sf, "user:1", 6, 100, &f), SINGLEFLIGHT_LEADER);
    assert_non_null(f);
    assert_int_equal(singleflight_inflight(sf), 1);
    /* Nobody finishes: a waiter gives up after its bound. */
    int64_t t0 = rc_mono_ms();
    assert_int_equal(singleflight_begin(sf, "user:1", 6, 50, &g), SINGLEFLIGHT_TIMEOUT);
    int64_t took = rc_mono_ms() - t0;
    assert_true(took >= 45 && took < 1000);
    assert_null(g);
    /* wait 0: never waits */
    assert_int_equal(singleflight_begin(sf, "user:1", 6, 0, &g), SINGLEFLIGHT_TIMEOUT);
    /* Another key leads on its own. */
    assert_int_equal(singleflight_begin(sf, "user:2", 6, 100, &g), SINGLEFLIGHT_LEADER);
    singleflight_done(sf, g, false);
    singleflight_done(sf, f, false);
    assert_int_equal(singleflight_inflight(sf), 0);
    /* After done, the next caller leads a new flight. */
    assert_int_equal(singleflight_begin(sf, "user:1", 6, 100, &f), SINGLEFLIGHT_LEADER);
    singleflight_done(sf, f, false);
    singleflight_done(sf, NULL, false);
    singleflight_free(sf);
}

static void test_singleflight_try_never_waits(void **state)
{
    (void)state;
    struct singleflight *sf = mk();
    struct singleflight_flight *f = NULL, *g = NULL;

    assert_int_equal(singleflight_try(sf, "k", 1, &f), SINGLEFLIGHT_LEADER);
    assert_int_equal(singleflight_try(sf, "k", 1, &g), SINGLEFLIGHT_BUSY);
    assert_null(g);
    /* A refresh in flight also makes a miss wait for it. */
    assert_int_equal(singleflight_begin(sf, "k", 1, 10, &g), SINGLEFLIGHT_TIMEOUT);
    singleflight_done(sf, f, false);
    assert_int_equal(singleflight_try(sf, "k", 1, &f), SINGLEFLIGHT_LEADER);
    singleflight_done(sf, f, false);
    singleflight_free(sf);
}

struct stampede {
    struct singleflight *sf;
    atomic_int leaders, shared, timeouts, queries;
    atomic_int filled; /* the "cache": set by the leader */
};

static void *stampede_thread(void *arg)
{
    struct stampede *s = arg;
    struct singleflight_flight *f;

    /* The handler's protocol: look up, else lead or wait, then look again. */
    if (atomic_load(&s->filled))
        return NULL;
    switch (singleflight_begin(s->sf, "hot", 3, 5000, &f)) {
    case SINGLEFLIGHT_LEADER:
        atomic_fetch_add(&s->leaders, 1);
        if (!atomic_load(&s->filled)) { /* double-check after winning */
            atomic_fetch_add(&s->queries, 1);
            usleep(50000); /* the query */
            atomic_store(&s->filled, 1);
        }
        singleflight_done(s->sf, f, false);
        break;
    case SINGLEFLIGHT_SHARED:
        atomic_fetch_add(&s->shared, 1);
        assert_true(atomic_load(&s->filled));
        break;
    default:
        atomic_fetch_add(&s->timeouts, 1);
        break;
    }
    return NULL;
}

static void test_singleflight_stampede_runs_one_query(void **state)
{
    (void)state;
    struct stampede s = {.sf = mk()};
    pthread_t t[64];

    for (size_t i = 0; i < 64; i++)
        assert_int_equal(pthread_create(&t[i], NULL, stampede_thread, &s), 0);
    for (size_t i = 0; i < 64; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&s.queries), 1);
    assert_int_equal(atomic_load(&s.timeouts), 0);
    assert_int_equal(singleflight_inflight(s.sf), 0);
    singleflight_free(s.sf);
}

struct waiter {
    struct singleflight *sf;
    enum singleflight_role role;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    struct singleflight_flight *f = NULL;
    w->role = singleflight_begin(w->sf, "slow", 4, 5000, &f);
    if (w->role == SINGLEFLIGHT_LEADER)
        singleflight_done(w->sf, f, false);
    return NULL;
}

static void *fail_wait_thread(void *arg)
{
    struct waiter *w = arg;
    struct singleflight_flight *f = NULL;
    w->role = singleflight_begin(w->sf, "down", 4, 5000, &f);
    if (w->role == SINGLEFLIGHT_LEADER)
        singleflight_done(w->sf, f, false);
    return NULL;
}

static void test_singleflight_waiters_learn_the_database_is_down(void **state)
{
    (void)state;
    struct singleflight *sf = mk();
    struct singleflight_flight *f;
    struct waiter w = {.sf = sf};
    pthread_t t;

    assert_int_equal(singleflight_begin(sf, "down", 4, 0, &f), SINGLEFLIGHT_LEADER);
    assert_int_equal(pthread_create(&t, NULL, fail_wait_thread, &w), 0);
    usleep(50000);
    singleflight_done(sf, f, true);
    pthread_join(t, NULL);
    assert_int_equal(w.role, SINGLEFLIGHT_FAILED);
    singleflight_free(sf);
}

static void test_singleflight_waiters_wake_when_leader_is_done(void **state)
{
    (void)state;
    struct singleflight *sf = mk();
    struct singleflight_flight *f;
    struct waiter w[8];
    pthread_t t[8];

    assert_int_equal(singleflight_begin(sf, "slow", 4, 0, &f), SINGLEFLIGHT_LEADER);
    for (size_t i = 0; i < 8; i++) {
        w[i].sf = sf;
        assert_int_equal(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
    }
    usleep(50000);
    int64_t t0 = rc_mono_ms();
    singleflight_done(sf, f, false);
    for (size_t i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        /* every waiter saw the flight finish (or, started late, led its own) */
        assert_true(w[i].role == SINGLEFLIGHT_SHARED || w[i].role == SINGLEFLIGHT_LEADER);
    }
    assert_true(rc_mono_ms() - t0 < 1000); /* woken, not timed out */
    assert_int_equal(singleflight_inflight(sf), 0);
    singleflight_free(sf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_singleflight_first_leads_others_time_out),
        cmocka_unit_test(test_singleflight_try_never_waits),
        cmocka_unit_test(test_singleflight_stampede_runs_one_query),
        cmocka_unit_test(test_singleflight_waiters_wake_when_leader_is_done),
        cmocka_unit_test(test_singleflight_waiters_learn_the_database_is_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
