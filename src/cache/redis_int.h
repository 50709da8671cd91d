/*
 * redis_int.h - what the Redis provider's own files share, and nothing
 * else includes:
 *  - redis.c: the provider ops and cache_redis_create;
 *  - redis_conn.c: RESP, keys, one connection per thread, and running an
 *    operation (breaker, replay of pending bumps and lock releases);
 *  - redis_lock.c: the shared single-flight lock;
 *  - redis_link.c: the connection the subscriber thread (redis_sub.c)
 *    drives.
 * These are the only files of the project that include hiredis.
 */
#ifndef RC_CACHE_REDIS_INT_H
#define RC_CACHE_REDIS_INT_H

#include "../buf.h"
#include "../common.h"
#include "breaker.h"
#include "pending.h"
#include "rconn.h"
#include "redis.h"
#include "redis_url.h"
#include "resp.h"

#include <hiredis/hiredis.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define READ_CHUNK  16384 /* bytes read from a connection at once */
#define UNLOCKS_MAX 64    /* lock releases kept while Redis is away */

/* A thread's connection and scratch, found through the provider's key. */
struct rthread {
    struct redis *r;
    struct rconn *conn; /* NULL: not connected */
    redisReader *reader;
    buf out;     /* formatted commands of the operation */
    buf scratch; /* keys of the operation */
    bool sent;   /* the operation's commands may have reached Redis */
    struct rthread *prev, *next;
};

struct redis {
    struct redis_url url;
    char where[REDIS_URL_HOST_MAX + 16];
    struct rconn_tls *tls;
    char *prefix;
    size_t plen;
    char *channel;
    size_t chlen;
    bool publish;
    int connect_timeout_ms, command_timeout_ms;
    struct breaker breaker;
    pthread_key_t key;
    pthread_mutex_t reg_lock; /* the list of thread states */
    struct rthread *threads;

    struct pending *pending; /* bumps to replay before anything else */

    /* Locks whose release could not reach Redis: released once it
     * answers again, rather than left to block other instances' misses
     * until they expire. */
    pthread_mutex_t unl_lock;
    _Atomic size_t nunlocks;
    struct unlock_later {
        char *key;
        size_t klen;
        uint64_t token;
        int64_t not_before_ms; /* monotonic */
        int sent;              /* times sent so far */
    } unlocks[UNLOCKS_MAX];

    struct redis_sub *sub; /* tiered: the subscriber thread */
    _Atomic uint64_t gets, hits, misses, sets, deletes, errors;
    _Atomic uint64_t keys, bytes, max_bytes; /* as the last tick() saw them */
};

static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline bool is_error(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR;
}

static inline bool str_is(const redisReply *r, const char *s)
{
    return r != NULL && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
           r->len == strlen(s) && strncasecmp(r->str, s, r->len) == 0;
}

/* ---- redis_conn.c ---- */

/* A WARN line: event, the operation and the error. */
void redis_log_error(const char *event, const char *what, const char *err);

void redis_free_replies(redisReply **rep, size_t n);
/* Send out, read n replies into rep[] before deadline (monotonic ms).
 * -1 + err: the connection is unusable. */
int redis_roundtrip(struct rconn *c, redisReader *rd, const buf *out, size_t n, redisReply **rep,
                    int64_t deadline, char *err) RC_MUSTCHECK;

/* Append prefix + ns + s to scratch (room reserved by the caller, so
 * earlier pointers stay valid) and return where it starts. */
const char *redis_mk_key(struct redis *r, buf *scratch, const char *ns, const char *s, size_t n,
                         size_t *len);
/* Bytes of scratch the keys of these tags take. */
size_t redis_tags_room(struct redis *r, const struct rc_str *tags, size_t ntags);
/* INCR (or soft INCRBY) per tag, then PUBLISH when publishing; *ncmds
 * commands appended. -1: no memory. */
int redis_add_bump_cmds(struct redis *r, buf *out, buf *scratch, const struct rc_str *tags,
                        size_t ntags, bool soft, size_t *ncmds) RC_MUSTCHECK;

/* Connect, log in, check for a new server (data connections). */
int redis_conn_open(struct redis *r, bool data, struct rconn **cp, redisReader **rdp,
                    enum rconn_fail *why, char *err) RC_MUSTCHECK;
struct rthread *redis_thread_state(struct redis *r);
void redis_thread_state_free(void *p);
void redis_thread_disconnect(struct rthread *t);

/* An operation: op_begin (NULL: fail at once), commands into t->out, then
 * op_run, or op_abort when nothing could be sent. */
struct rthread *redis_op_begin(struct redis *r, enum breaker_admit *how);
void redis_op_abort(struct redis *r, struct rthread *t, enum breaker_admit how);
int redis_op_run(struct redis *r, struct rthread *t, enum breaker_admit how, size_t ncmds,
                 redisReply **rep, const char *what) RC_MUSTCHECK;
bool redis_op_sent(struct redis *r);
/* One command whose argv[keyarg] (when >= 0) is a key to prefix with ns. */
int redis_simple_op(struct redis *r, const char *what, int argc, const char **argv, size_t *lens,
                    int keyarg, const char *ns, redisReply **rep) RC_MUSTCHECK;

/* ---- redis_lock.c ---- */

int redis_lock_take(void *self, const char *key, size_t klen, uint64_t token, int64_t ttl_ms);
int redis_lock_release(void *self, const char *key, size_t klen, uint64_t token);
/* Release the locks kept while Redis was away, on t's connection. */
void redis_unlocks_flush(struct redis *r, struct rthread *t, int64_t deadline);

#endif
