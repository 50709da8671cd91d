/*
 * redis_lock.c - the Redis provider's shared single-flight lock: SET
 * <prefix>lock:<key> <token> NX PX, released only by its holder through a
 * Lua compare-and-delete. A release that could not reach Redis, or a take
 * that was sent but got no answer, is kept and released once Redis answers
 * again (redis_unlocks_flush, after any successful operation), rather than
 * left to block other instances' misses until it expires.
 */
#include "redis_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const char unlock_script[] = "if redis.call('get', KEYS[1]) == ARGV[1] then "
                                    "return redis.call('del', KEYS[1]) else return 0 end";

/* EVAL of the compare-and-delete script for prefix "lock:" key. */
static int add_unlock_cmd(struct redis *r, buf *out, buf *scratch, const char *key, size_t klen,
                          uint64_t token)
{
    char tok[24];
    const char *argv[5] = {"EVAL", unlock_script, "1", NULL, tok};
    size_t lens[5] = {4, sizeof(unlock_script) - 1, 1, 0, 0};

    lens[4] = (size_t)snprintf(tok, sizeof(tok), "%" PRIu64, token);
    if (buf_reserve(scratch, r->plen + 5 + klen) < 0)
        return -1;
    argv[3] = redis_mk_key(r, scratch, "lock:", key, klen, &lens[3]);
    return argv[3] != NULL ? resp_command(out, 5, argv, lens) : -1;
}

static void unlock_keep(struct redis *r, const struct unlock_later *u)
{
    pthread_mutex_lock(&r->unl_lock);
    size_t n = atomic_load(&r->nunlocks);
    if (n < UNLOCKS_MAX) {
        r->unlocks[n] = *u;
        atomic_store(&r->nunlocks, n + 1);
        u = NULL;
    }
    pthread_mutex_unlock(&r->unl_lock);
    if (u != NULL)
        free(u->key); /* full: this lock expires by itself */
}

static void unlock_later(struct redis *r, const char *key, size_t klen, uint64_t token)
{
    struct unlock_later u = {malloc(klen + 1), klen, token, 0, 0};
    if (u.key == NULL)
        return;
    memcpy(u.key, key, klen);
    u.key[klen] = '\0';
    unlock_keep(r, &u);
}

/* Release the locks kept by unlock_later(), best effort, in one pipelined
 * round trip on t's connection. Each is sent twice, the second time one
 * command timeout later: a lock SET that timed out may only be executed
 * when a stalled Redis catches up, possibly after the first release. */
void redis_unlocks_flush(struct redis *r, struct rthread *t, int64_t deadline)
{
    struct unlock_later todo[UNLOCKS_MAX], keep[UNLOCKS_MAX];
    redisReply *rep[UNLOCKS_MAX];
    char err[RC_ERRBUF];
    size_t n = 0, nkeep = 0, ok = 0;
    int64_t now = rc_mono_ms();
    buf out, scratch;

    if (atomic_load(&r->nunlocks) == 0)
        return;
    pthread_mutex_lock(&r->unl_lock);
    for (size_t i = 0; i < atomic_load(&r->nunlocks); i++) {
        if (r->unlocks[i].not_before_ms <= now)
            todo[n++] = r->unlocks[i];
        else
            keep[nkeep++] = r->unlocks[i];
    }
    memcpy(r->unlocks, keep, nkeep * sizeof(keep[0]));
    atomic_store(&r->nunlocks, nkeep);
    pthread_mutex_unlock(&r->unl_lock);
    if (n == 0)
        return;
    buf_init(&out, 0);
    buf_init(&scratch, 0);
    for (size_t i = 0; i < n; i++) {
        if (add_unlock_cmd(r, &out, &scratch, todo[i].key, todo[i].klen, todo[i].token) < 0)
            break;
        ok++;
    }
    bool sent = ok == n && redis_roundtrip(t->conn, t->reader, &out, n, rep, deadline, err) == 0;
    if (sent)
        redis_free_replies(rep, n);
    else
        redis_thread_disconnect(t);
    for (size_t i = 0; i < n; i++) {
        if (sent && ++todo[i].sent >= 2) {
            free(todo[i].key);
            continue;
        }
        todo[i].not_before_ms = now + (sent ? r->command_timeout_ms : 0);
        unlock_keep(r, &todo[i]);
    }
    buf_free(&out);
    buf_free(&scratch);
}

/* SET prefix "lock:" key token NX PX ttl: 1 taken, 0 held by another.
 * redis_simple_op() prefixes argv[1] in place. */
int redis_lock_take(void *self, const char *key, size_t klen, uint64_t token, int64_t ttl_ms)
{
    struct redis *r = self;
    char tok[24], px[24];
    const char *argv[6] = {"SET", key, tok, "NX", "PX", px};
    size_t lens[6] = {3, klen, 0, 2, 2, 0};
    redisReply *rep;
    int rc;

    if (ttl_ms <= 0)
        return -1;
    lens[2] = (size_t)snprintf(tok, sizeof(tok), "%" PRIu64, token);
    lens[5] = (size_t)snprintf(px, sizeof(px), "%" PRId64, ttl_ms);
    if (redis_simple_op(r, "lock", 6, argv, lens, 1, "lock:", &rep) < 0) {
        /* A SET that was sent (then timed out or lost its connection) may
         * still run when Redis catches up: take it back then, or it would
         * hold other instances' misses. One never sent holds nothing. */
        if (redis_op_sent(r))
            unlock_later(r, key, klen, token);
        return -1;
    }
    rc = str_is(rep, "OK") ? 1 : rep->type == REDIS_REPLY_NIL ? 0 : -1;
    freeReplyObject(rep);
    return rc;
}

/* Delete the lock only while token still holds it (atomic in Lua). A
 * release that cannot reach Redis is retried once Redis answers. */
int redis_lock_release(void *self, const char *key, size_t klen, uint64_t token)
{
    struct redis *r = self;
    enum breaker_admit how;
    struct rthread *t = redis_op_begin(r, &how);
    redisReply *rep;
    int rc;

    if (t == NULL) {
        unlock_later(r, key, klen, token);
        return -1;
    }
    if (add_unlock_cmd(r, &t->out, &t->scratch, key, klen, token) < 0) {
        redis_op_abort(r, t, how);
        return -1;
    }
    if (redis_op_run(r, t, how, 1, &rep, "unlock") < 0) {
        unlock_later(r, key, klen, token);
        return -1;
    }
    rc = rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
    freeReplyObject(rep);
    return rc;
}
