/*
 * test_ownnotify.c - the table of notifications a worker's own write
 * caused: a pair is taken once, only by the same backend pid and the same
 * payload bytes; duplicates count; pairs expire after OWNNOTIFY_TTL_MS; a
 * full table forgets its oldest pair. While a write on a pid is between
 * begin and end, take waits (bounded) for its put; the bounds below are
 * generous, they only tell "woke on the event" from "waited it all out".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common.h"
#include "ownnotify.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

#define T0 1000000 /* any "now"; the table only compares differences */

static const char payload[] = "{\"tags\":[\"user:42\"],\"ts\":1700000000123.456}";

static struct ownnotify *create_ok(size_t cap)
{
    struct ownnotify *o = ownnotify_create(cap);
    if (o == NULL)
        fail_msg("ownnotify_create(%zu) returned NULL", cap);
    return o;
}

static void put_ok(struct ownnotify *o, int pid, const char *p, int64_t now)
{
    if (ownnotify_put(o, pid, p, now) != 0)
        fail_msg("ownnotify_put(pid %d, \"%s\", %lld) failed", pid, p, (long long)now);
}

static void expect_take(struct ownnotify *o, int pid, const char *p, int64_t now, bool want)
{
    if (ownnotify_take(o, pid, p, now, 0) != want)
        fail_msg("ownnotify_take(pid %d, \"%s\", %lld): expected %s", pid, p, (long long)now,
                 want ? "true (put before)" : "false (not put, or taken already)");
}

static void expect_size(struct ownnotify *o, size_t want)
{
    size_t n = ownnotify_size(o);
    if (n != want)
        fail_msg("expected %zu pairs in the table, found %zu", want, n);
}

static void test_ownnotify_take_after_put_is_true_once(void **state)
{
    (void)state;
    struct ownnotify *o = create_ok(8);

    expect_size(o, 0);
    expect_take(o, 101, payload, T0, false);
    put_ok(o, 101, payload, T0);
    expect_size(o, 1);
    expect_take(o, 101, payload, T0 + 5, true);
    expect_size(o, 0);
    expect_take(o, 101, payload, T0 + 6, false);
    ownnotify_free(o);
}

static void test_ownnotify_other_pid_or_payload_is_not_taken(void **state)
{
    (void)state;
    struct ownnotify *o = create_ok(8);
    /* same length as payload, one byte different */
    static const char other[] = "{\"tags\":[\"user:43\"],\"ts\":1700000000123.456}";
    static const char prefix[] = "{\"tags\":[\"user:42\"]";
    static const char longer[] = "{\"tags\":[\"user:42\"],\"ts\":1700000000123.456} ";

    assert_int_equal(sizeof(other), sizeof(payload));
    put_ok(o, 101, payload, T0);
    expect_take(o, 102, payload, T0, false); /* another backend sent it */
    expect_take(o, 101, other, T0, false);
    expect_take(o, 101, prefix, T0, false);
    expect_take(o, 101, longer, T0, false);
    expect_take(o, 101, "", T0, false);
    expect_size(o, 1); /* none of the misses took the pair */
    expect_take(o, 101, payload, T0, true);

    /* the same payload from two backends: two pairs, each taken by its pid */
    put_ok(o, 101, payload, T0);
    put_ok(o, 102, payload, T0);
    expect_take(o, 102, payload, T0, true);
    expect_size(o, 1);
    expect_take(o, 102, payload, T0, false);
    expect_take(o, 101, payload, T0, true);
    expect_size(o, 0);
    ownnotify_free(o);
}

static void test_ownnotify_duplicates_are_counted(void **state)
{
    (void)state;
    struct ownnotify *o = create_ok(8);

    put_ok(o, 101, payload, T0);
    put_ok(o, 101, payload, T0 + 1);
    expect_size(o, 2);
    expect_take(o, 101, payload, T0 + 2, true);
    expect_size(o, 1);
    expect_take(o, 101, payload, T0 + 3, true);
    expect_size(o, 0);
    expect_take(o, 101, payload, T0 + 4, false);
    ownnotify_free(o);
}

static void test_ownnotify_pairs_expire_after_ttl(void **state)
{
    (void)state;
    struct ownnotify *o = create_ok(8);

    /* at exactly the TTL the pair is still there */
    put_ok(o, 101, payload, T0);
    expect_take(o, 101, payload, T0 + OWNNOTIFY_TTL_MS, true);

    /* one ms later it is not, and the miss drops it from the table */
    put_ok(o, 101, payload, T0);
    expect_take(o, 101, payload, T0 + OWNNOTIFY_TTL_MS + 1, false);
    expect_size(o, 0);

    /* a miss on another payload drops expired pairs too */
    put_ok(o, 101, payload, T0);
    expect_take(o, 101, "other", T0 + OWNNOTIFY_TTL_MS + 1, false);
    expect_size(o, 0);

    /* and so does a put */
    put_ok(o, 101, payload, T0);
    put_ok(o, 102, "fresh", T0 + OWNNOTIFY_TTL_MS + 1);
    expect_size(o, 1);
    expect_take(o, 101, payload, T0 + OWNNOTIFY_TTL_MS + 1, false);
    expect_take(o, 102, "fresh", T0 + OWNNOTIFY_TTL_MS + 1, true);
    ownnotify_free(o);
}

static void test_ownnotify_full_table_forgets_the_oldest(void **state)
{
    (void)state;
    struct ownnotify *o = create_ok(3);

    put_ok(o, 1, "a", T0 + 1);
    put_ok(o, 1, "b", T0 + 2);
    put_ok(o, 1, "c", T0 + 3);
    put_ok(o, 1, "d", T0 + 4);
    expect_size(o, 3);
    expect_take(o, 1, "a", T0 + 5, false); /* the oldest */
    expect_take(o, 1, "b", T0 + 5, true);
    expect_take(o, 1, "c", T0 + 5, true);
    expect_take(o, 1, "d", T0 + 5, true);
    expect_size(o, 0);

    /* the oldest by time, not the first slot: slot 0 is reused by the
     * newest pair, so the one to forget sits in the middle */
    put_ok(o, 1, "a", T0 + 10);
    put_ok(o, 1, "b", T0 + 11);
    put_ok(o, 1, "c", T0 + 12);
    expect_take(o, 1, "a", T0 + 13, true);
    put_ok(o, 1, "d", T0 + 14);
    put_ok(o, 1, "e", T0 + 15);
    expect_size(o, 3);
    expect_take(o, 1, "b", T0 + 16, false);
    expect_take(o, 1, "c", T0 + 16, true);
    expect_take(o, 1, "d", T0 + 16, true);
    expect_take(o, 1, "e", T0 + 16, true);
    ownnotify_free(o);
}

static void test_ownnotify_create_zero_and_free_null(void **state)
{
    (void)state;
    struct ownnotify *o = ownnotify_create(0);
    if (o != NULL) {
        ownnotify_free(o);
        fail_msg("ownnotify_create(0) must return NULL");
    }
    ownnotify_free(NULL);
}

/* Workers put and the listener takes from different threads: each thread
 * here plays both for its own pid, all at once on one table. */
#define NTHREADS   4
#define PER_THREAD 5000

struct worker {
    struct ownnotify *o;
    int pid;
    int missed;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char p[32];

    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(p, sizeof(p), "{\"tags\":[\"t:%d\"]}", i);
        if (ownnotify_put(w->o, w->pid, p, T0) != 0 || !ownnotify_take(w->o, w->pid, p, T0, 0))
            w->missed++;
    }
    return NULL;
}

static void test_ownnotify_threads_share_one_table(void **state)
{
    (void)state;
    struct ownnotify *o = create_ok(NTHREADS);
    struct worker w[NTHREADS];
    pthread_t th[NTHREADS];

    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.o = o, .pid = 100 + i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (w[i].missed != 0)
            fail_msg("thread %d: %d of its %d puts were not taken back", i, w[i].missed,
                     PER_THREAD);
    }
    expect_size(o, 0);
    ownnotify_free(o);
}

/* ---- begin / end and the waiting take ------------------------------------- */

#define LONG_WAIT_MS 5000 /* a take that waits this long missed its wake-up */

struct later {
    struct ownnotify *o;
    int pid;
    const char *put; /* NULL: end(pid) instead */
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *later_run(void *arg)
{
    struct later *l = arg;

    sleep_ms(30);
    if (l->put != NULL)
        (void)ownnotify_put(l->o, l->pid, l->put, rc_mono_ms());
    else
        ownnotify_end(l->o, l->pid);
    return NULL;
}

/* take(pid, payload, wait LONG_WAIT_MS) while another thread does l 30 ms
 * later; returns take's result and its duration in *ms. */
static bool take_during(struct later *l, const char *p, int64_t *ms)
{
    pthread_t th;
    int64_t t0 = rc_mono_ms();
    bool got;

    assert_int_equal(pthread_create(&th, NULL, later_run, l), 0);
    got = ownnotify_take(l->o, l->pid, p, rc_mono_ms(), LONG_WAIT_MS);
    *ms = rc_mono_ms() - t0;
    assert_int_equal(pthread_join(th, NULL), 0);
    return got;
}

static void test_ownnotify_take_waits_for_the_writers_put(void **state)
{
    (void)state;
    struct ownnotify *o = create_ok(8);
    struct later l = {o, 7, payload};
    int64_t ms;

    ownnotify_begin(o, 7);
    if (!take_during(&l, payload, &ms))
        fail_msg("take must wait for the put of pid 7's write in flight");
    if (ms >= LONG_WAIT_MS - 1000)
        fail_msg("take waited %lld ms: the put must wake it", (long long)ms);
    ownnotify_end(o, 7);
    expect_size(o, 0);
    ownnotify_free(o);
}

static void test_ownnotify_take_returns_at_the_writers_end(void **state)
{
    (void)state;
    struct ownnotify *o = create_ok(8);
    struct later l = {o, 7, NULL};
    int64_t ms;

    ownnotify_begin(o, 7);
    if (take_during(&l, payload, &ms))
        fail_msg("nothing was put: take must be false");
    if (ms >= LONG_WAIT_MS - 1000)
        fail_msg("take waited %lld ms: end(7) must wake it", (long long)ms);
    ownnotify_free(o);
}

static void test_ownnotify_take_waits_at_most_wait_ms(void **state)
{
    (void)state;
    struct ownnotify *o = create_ok(8);
    int64_t t0, ms;

    ownnotify_begin(o, 7);
    t0 = rc_mono_ms();
    assert_false(ownnotify_take(o, 7, payload, rc_mono_ms(), 100));
    ms = rc_mono_ms() - t0;
    if (ms < 90 || ms >= LONG_WAIT_MS)
        fail_msg("take with pid 7 in flight and wait_ms 100 took %lld ms", (long long)ms);
    /* Another pid has no write in flight: no wait at all. */
    t0 = rc_mono_ms();
    assert_false(ownnotify_take(o, 8, payload, rc_mono_ms(), LONG_WAIT_MS));
    if (rc_mono_ms() - t0 >= LONG_WAIT_MS - 1000)
        fail_msg("take for pid 8, which has no write in flight, waited");
    ownnotify_end(o, 7);
    t0 = rc_mono_ms();
    assert_false(ownnotify_take(o, 7, payload, rc_mono_ms(), LONG_WAIT_MS));
    if (rc_mono_ms() - t0 >= LONG_WAIT_MS - 1000)
        fail_msg("take for pid 7 after its end waited");
    ownnotify_free(o);
}

static void test_ownnotify_begin_nests_and_full_writer_table(void **state)
{
    (void)state;
    struct ownnotify *o = create_ok(8);
    struct later l = {o, 7, NULL};
    int64_t t0, ms;

    /* Two writes on pid 7 (nested): the first end leaves it in flight. */
    ownnotify_begin(o, 7);
    ownnotify_begin(o, 7);
    ownnotify_end(o, 7);
    t0 = rc_mono_ms();
    assert_false(ownnotify_take(o, 7, payload, rc_mono_ms(), 100));
    if (rc_mono_ms() - t0 < 90)
        fail_msg("pid 7 still has a write in flight: take must wait");
    if (take_during(&l, payload, &ms) || ms >= LONG_WAIT_MS - 1000)
        fail_msg("the second end must end the wait (took %lld ms)", (long long)ms);

    /* A full writer table: a pid that found no room is not waited for. */
    for (int pid = 1000; pid < 1000 + OWNNOTIFY_MAX_WRITERS; pid++)
        ownnotify_begin(o, pid);
    ownnotify_begin(o, 5);
    t0 = rc_mono_ms();
    assert_false(ownnotify_take(o, 5, payload, rc_mono_ms(), LONG_WAIT_MS));
    if (rc_mono_ms() - t0 >= LONG_WAIT_MS - 1000)
        fail_msg("pid 5 found no room among the writers: take must not wait");
    ownnotify_end(o, 5); /* not there: harmless */
    for (int pid = 1000; pid < 1000 + OWNNOTIFY_MAX_WRITERS; pid++)
        ownnotify_end(o, pid);
    /* pid 0 (no session) is never a writer */
    ownnotify_begin(o, 0);
    t0 = rc_mono_ms();
    assert_false(ownnotify_take(o, 0, payload, rc_mono_ms(), LONG_WAIT_MS));
    if (rc_mono_ms() - t0 >= LONG_WAIT_MS - 1000)
        fail_msg("pid 0 must never be waited for");
    ownnotify_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ownnotify_take_after_put_is_true_once),
        cmocka_unit_test(test_ownnotify_other_pid_or_payload_is_not_taken),
        cmocka_unit_test(test_ownnotify_duplicates_are_counted),
        cmocka_unit_test(test_ownnotify_pairs_expire_after_ttl),
        cmocka_unit_test(test_ownnotify_full_table_forgets_the_oldest),
        cmocka_unit_test(test_ownnotify_create_zero_and_free_null),
        cmocka_unit_test(test_ownnotify_threads_share_one_table),
        cmocka_unit_test(test_ownnotify_take_waits_for_the_writers_put),
        cmocka_unit_test(test_ownnotify_take_returns_at_the_writers_end),
        cmocka_unit_test(test_ownnotify_take_waits_at_most_wait_ms),
        cmocka_unit_test(test_ownnotify_begin_nests_and_full_writer_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
