/*
 * redis_link.c - the connection the tiered provider's subscriber thread
 * (redis_sub.c) drives, and the accessors tiered.c reaches that thread
 * through (redis.h).
 */
#include "redis_int.h"

#include "redis_reader.h"
#include "redis_sub.h"

#include <stdlib.h>

/* ---- the subscription's connection (redis_sub.c drives it) ------------- */

struct redis_link {
    struct rconn *conn;
    redisReader *reader;
};

struct redis_link *redis_link_open(struct redis *r, char *err)
{
    const char *argv[2] = {"SUBSCRIBE", r->channel};
    size_t lens[2] = {9, r->chlen};
    struct redis_link *l = calloc(1, sizeof(*l));
    enum rconn_fail why;
    redisReply *rep = NULL;
    buf out;
    int rc;

    if (l == NULL) {
        rc_err(err, "out of memory");
        return NULL;
    }
    if (redis_conn_open(r, false, &l->conn, &l->reader, &why, err) < 0) {
        free(l);
        return NULL;
    }
    buf_init(&out, 0);
    rc = resp_command(&out, 2, argv, lens) < 0
             ? rc_err(err, "out of memory")
             : redis_roundtrip(l->conn, l->reader, &out, 1, &rep,
                               rc_mono_ms() + r->command_timeout_ms, err);
    buf_free(&out);
    if (rc == 0 && !(rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
                     str_is(rep->element[0], "subscribe")))
        rc = rc_err(err, "SUBSCRIBE refused: %s", is_error(rep) ? rep->str : "unexpected reply");
    if (rep != NULL)
        freeReplyObject(rep);
    if (rc < 0) {
        redis_link_close(l);
        return NULL;
    }
    return l;
}

void redis_link_close(struct redis_link *l)
{
    if (l == NULL)
        return;
    if (l->reader != NULL)
        redisReaderFree(l->reader);
    rconn_close(l->conn);
    free(l);
}

struct rconn *redis_link_conn(struct redis_link *l)
{
    return l->conn;
}

int redis_link_ping(struct redis_link *l, int64_t deadline, char *err)
{
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    return rconn_write(l->conn, ping, sizeof(ping) - 1, deadline, err);
}

/* One reply on a subscribed connection. -1: not something a subscription
 * receives. */
static int link_reply(const redisReply *m, const struct redis_link_sink *sink, char *err)
{
    if (m->type == REDIS_REPLY_ARRAY && m->elements >= 1 &&
        m->element[0]->type == REDIS_REPLY_STRING) {
        const redisReply *kind = m->element[0];
        if (str_is(kind, "message") && m->elements == 3 &&
            m->element[2]->type == REDIS_REPLY_STRING) {
            sink->message(sink->arg, m->element[2]->str, m->element[2]->len);
            return 0;
        }
        if (str_is(kind, "pong")) {
            sink->pong(sink->arg);
            return 0;
        }
        if (str_is(kind, "subscribe"))
            return 0;
    }
    return rc_err(err, "unexpected reply on the subscription: %s",
                  is_error(m) ? m->str : "not a message");
}

int redis_link_read(struct redis_link *l, const struct redis_link_sink *sink, int64_t deadline,
                    bool *partial, char *err)
{
    char chunk[READ_CHUNK];
    long k = rconn_read(l->conn, chunk, sizeof(chunk), deadline, err);

    if (k < 0)
        return -1;
    if (redisReaderFeed(l->reader, chunk, (size_t)k) != REDIS_OK)
        return rc_err(err, "out of memory");
    for (;;) {
        void *m = NULL;
        if (redisReaderGetReply(l->reader, &m) != REDIS_OK)
            return rc_err(err, "protocol error: %s", l->reader->errstr);
        if (m == NULL)
            break;
        int rc = link_reply(m, sink, err);
        freeReplyObject(m);
        if (rc < 0)
            return -1;
    }
    *partial = redis_reader_partial(l->reader);
    return 0;
}

const char *redis_where(const struct redis *r)
{
    return r->where;
}

int redis_command_timeout_ms(const struct redis *r)
{
    return r->command_timeout_ms;
}

int cache_redis_subscribe(struct cache *c, const struct redis_sub_fns *fns, char *errbuf)
{
    struct redis *r = c->self;

    if (r->sub != NULL)
        return rc_err(errbuf, "redis: already subscribed");
    r->sub = redis_sub_start(r, fns, errbuf);
    return r->sub != NULL ? 0 : -1;
}

bool cache_redis_sub_quiet(struct cache *c, uint64_t *epoch)
{
    struct redis *r = c->self;
    return r->sub != NULL && redis_sub_quiet(r->sub, epoch);
}

uint64_t cache_redis_sub_epoch(struct cache *c)
{
    struct redis *r = c->self;
    return r->sub != NULL ? redis_sub_epoch(r->sub) : 0;
}
