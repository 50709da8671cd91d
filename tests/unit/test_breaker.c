/*
 * test_breaker.c - the circuit breaker state machine (breaker.h) driven by
 * a fake clock: opening after N consecutive failures, failing fast while
 * open, exactly one half-open probe, closing and re-opening on its result,
 * a lost probe being given up, and late reports judged correctly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cache/breaker.h"

#define OPEN_MS  1000
#define PROBE_MS 5000

static int setup(void **state)
{
    static struct breaker b;
    assert_int_equal(breaker_init(&b, 3, OPEN_MS, PROBE_MS), 0);
    *state = &b;
    return 0;
}

static int teardown(void **state)
{
    breaker_destroy(*state);
    return 0;
}

/* Fail n attempts admitted at time now. */
static void fail_n(struct breaker *b, int n, int64_t now)
{
    for (int i = 0; i < n; i++) {
        enum breaker_admit a = breaker_admit(b, now);
        assert_int_equal(a, BREAKER_GO);
        breaker_report(b, a, false, now);
    }
}

static void test_opens_after_threshold_consecutive_failures(void **state)
{
    struct breaker *b = *state;
    fail_n(b, 2, 100);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    enum breaker_admit a = breaker_admit(b, 100);
    assert_int_equal(breaker_report(b, a, false, 100), BREAKER_OPEN);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    assert_int_equal(atomic_load(&b->opens), 1);
}

static void test_success_resets_the_count(void **state)
{
    struct breaker *b = *state;
    fail_n(b, 2, 0);
    enum breaker_admit a = breaker_admit(b, 0);
    assert_int_equal(breaker_report(b, a, true, 0), -1);
    fail_n(b, 2, 0);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
}

static void test_open_rejects_until_open_ms_then_one_probe(void **state)
{
    struct breaker *b = *state;
    fail_n(b, 3, 1000);
    assert_int_equal(breaker_admit(b, 1000), BREAKER_REJECT);
    assert_int_equal(breaker_admit(b, 1999), BREAKER_REJECT);
    assert_int_equal(breaker_admit(b, 2000), BREAKER_PROBE);
    assert_int_equal(breaker_state(b), BREAKER_HALF_OPEN);
    /* While the probe is out, everybody else fails fast. */
    assert_int_equal(breaker_admit(b, 2001), BREAKER_REJECT);
    assert_int_equal(breaker_admit(b, 2500), BREAKER_REJECT);
}

static void test_probe_success_closes(void **state)
{
    struct breaker *b = *state;
    fail_n(b, 3, 0);
    enum breaker_admit a = breaker_admit(b, OPEN_MS);
    assert_int_equal(a, BREAKER_PROBE);
    assert_int_equal(breaker_report(b, a, true, OPEN_MS + 5), BREAKER_CLOSED);
    assert_int_equal(breaker_admit(b, OPEN_MS + 6), BREAKER_GO);
    /* And it needs a full threshold of failures to open again. */
    fail_n(b, 2, OPEN_MS + 7);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
}

static void test_probe_failure_reopens_for_open_ms(void **state)
{
    struct breaker *b = *state;
    fail_n(b, 3, 0);
    enum breaker_admit a = breaker_admit(b, 1000);
    assert_int_equal(breaker_report(b, a, false, 1200), BREAKER_OPEN);
    assert_int_equal(breaker_admit(b, 2199), BREAKER_REJECT);
    assert_int_equal(breaker_admit(b, 2200), BREAKER_PROBE);
    assert_int_equal(atomic_load(&b->opens), 2);
}

static void test_lost_probe_is_given_up(void **state)
{
    struct breaker *b = *state;
    fail_n(b, 3, 0);
    assert_int_equal(breaker_admit(b, 1000), BREAKER_PROBE);
    assert_int_equal(breaker_admit(b, 1000 + PROBE_MS - 1), BREAKER_REJECT);
    assert_int_equal(breaker_admit(b, 1000 + PROBE_MS), BREAKER_PROBE);
}

static void test_late_reports_of_closed_attempts(void **state)
{
    struct breaker *b = *state;
    /* Admitted while closed, reported after the breaker opened. */
    enum breaker_admit late_ok = breaker_admit(b, 0);
    enum breaker_admit late_fail = breaker_admit(b, 0);
    fail_n(b, 3, 0);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    assert_int_equal(breaker_report(b, late_ok, true, 10), -1);
    assert_int_equal(breaker_state(b), BREAKER_OPEN); /* only a probe closes it */
    assert_int_equal(breaker_report(b, late_fail, false, 10), -1);
    assert_int_equal(breaker_admit(b, OPEN_MS), BREAKER_PROBE); /* not pushed back */
}

static void test_rejected_reports_are_ignored(void **state)
{
    struct breaker *b = *state;
    for (int i = 0; i < 10; i++)
        assert_int_equal(breaker_report(b, BREAKER_REJECT, false, 0), -1);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
    assert_string_equal(breaker_state_name(BREAKER_OPEN), "open");
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_opens_after_threshold_consecutive_failures, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_success_resets_the_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_rejects_until_open_ms_then_one_probe, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_probe_success_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_failure_reopens_for_open_ms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_probe_is_given_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_reports_of_closed_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_reports_are_ignored, setup, teardown),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
