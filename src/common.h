/*
 * common.h - the few definitions every module shares: the must-check
 * attribute, the error buffer size, and monotonic/wall clocks in ms.
 */
#ifndef RC_COMMON_H
#define RC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define RC_MUSTCHECK    __attribute__((warn_unused_result))
#define RC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RC_MUSTCHECK
#define RC_PRINTF(a, b)
#endif

/* Size of every caller-provided error buffer ("errbuf"). */
#define RC_ERRBUF 256

#define RC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A borrowed byte string: not owned, not necessarily NUL-terminated. */
struct rc_str {
    const char *s;
    size_t len;
};

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t rc_wall_ms(void);
/* Milliseconds from an arbitrary origin (CLOCK_MONOTONIC). */
int64_t rc_mono_ms(void);
/* Microseconds from the same origin as rc_mono_ms. */
int64_t rc_mono_us(void);
/* *ts = CLOCK_MONOTONIC now + ms: the deadline of a pthread_cond_timedwait
 * on a condition variable created with that clock. */
struct timespec;
void rc_mono_deadline(struct timespec *ts, int64_t ms);

/* Format errbuf safely; returns -1 so callers can `return rc_err(...)`. */
int rc_err(char *errbuf, const char *fmt, ...) RC_PRINTF(2, 3);

#endif
