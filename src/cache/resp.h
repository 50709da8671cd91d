/*
 * resp.h - a Redis command as RESP2 bytes: an array of bulk strings.
 *
 *   *<argc>\r\n then, per argument, $<len>\r\n<bytes>\r\n
 *
 * hiredis's redisFormatCommandArgv writes the same bytes, but mallocs a
 * string per command and formats every length with sprintf: about 2,800
 * instructions per command, so a fifth of a Redis hit's user-space work
 * for its GET and MGET (bench/profile). This appends into a buffer the
 * caller keeps, with no allocation once the buffer has grown. Pure: no I/O.
 */
#ifndef RC_CACHE_RESP_H
#define RC_CACHE_RESP_H

#include "../buf.h"
#include "../common.h"

#include <stddef.h>

/* Append argv[0..argc) (argv[i] is lens[i] bytes, any bytes; lens is
 * required, there is no strlen fallback) to out. 0, or -1 with out
 * unchanged (argc < 1, a length that overflows, or out's cap or memory). */
int resp_command(buf *out, int argc, const char *const *argv, const size_t *lens) RC_MUSTCHECK;

#endif
