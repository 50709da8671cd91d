/*
 * redis_reader.h - what a hiredis reader holds between reads. Included by
 * the Redis provider's files (redis_int.h) and its unit test, nothing else.
 */
#ifndef RC_CACHE_REDIS_READER_H
#define RC_CACHE_REDIS_READER_H

#include <hiredis/read.h>
#include <stdbool.h>

/* True while the reader holds part of a reply, so more bytes must arrive
 * before it is complete:
 *  - bytes it has not parsed yet (pos < len); or
 *  - a multi-bulk reply (a pub/sub message is one) whose first elements it
 *    has parsed and whose others have not arrived. Every byte fed is then
 *    consumed (pos == len); only the read-task stack says so: ridx > 0, or
 *    ridx == 0 with a type read.
 * A reader that is merely asked again after its last reply is not partial:
 * redisReaderGetReply then sets ridx = 0 with no type (-1), finds no byte,
 * and stops there. */
static inline bool redis_reader_partial(const redisReader *r)
{
    return r->pos < r->len || r->ridx > 0 || (r->ridx == 0 && r->rstack[0].type >= 0);
}

#endif
