/*
 * buf.h - a growable byte buffer with an explicit cap.
 *
 * Used to build JSON bodies, cache keys and encoded entries. Appends fail
 * (return -1, buffer unchanged) once `cap` would be exceeded, so a runaway
 * result set cannot eat the machine's memory.
 */
#ifndef RC_BUF_H
#define RC_BUF_H

#include "common.h"

#include <stddef.h>

typedef struct buf {
    char *data; /* NUL-terminated while len < alloc */
    size_t len;
    size_t alloc;
    size_t cap; /* hard limit on len; 0 means SIZE_MAX */
} buf;

void buf_init(buf *b, size_t cap);
void buf_free(buf *b);
void buf_reset(buf *b); /* len = 0, keeps the allocation */
int buf_reserve(buf *b, size_t extra) RC_MUSTCHECK;
int buf_append(buf *b, const void *p, size_t n) RC_MUSTCHECK;
int buf_puts(buf *b, const char *s) RC_MUSTCHECK;
int buf_putc(buf *b, char c) RC_MUSTCHECK;
int buf_printf(buf *b, const char *fmt, ...) RC_PRINTF(2, 3) RC_MUSTCHECK;
/* Append s[0..n) as a JSON string literal, quotes included. Invalid UTF-8
 * bytes are replaced by U+FFFD so the output is always valid JSON. */
int buf_json_str(buf *b, const char *s, size_t n) RC_MUSTCHECK;

#endif
