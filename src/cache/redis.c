/*
 * redis.c - the Redis cache provider (redis.h): its ops and its creation.
 * hiredis's command formatter and reply reader speak RESP over our own
 * transport (rconn.c), since hiredis 0.14 has no TLS and no per-call
 * deadline. The provider's other files (redis_int.h): redis_conn.c
 * (connections, the circuit breaker, consistency across outages),
 * redis_lock.c (the single-flight lock), redis_link.c (the subscriber's
 * connection).
 *
 * The ops. Each is one pipelined round trip: a read is GET entry + MGET of
 * its tag generations; a bump is one INCR per tag (+ PUBLISH), or for a
 * transaction the database notified, one EVAL per 16 tags that bumps each
 * once between every instance (bump_tags_once); a set is SET ... PX. Stats
 * are refreshed by tick(), so that stats() never waits on the network.
 *
 * Stored values are untrusted: a value that does not decode as an entry
 * (or a key of another type) is reported as a miss and counted in errors,
 * so the handler overwrites it with a correct entry.
 */
#include "redis_int.h"

#include "../log.h"
#include "../notify.h"
#include "entry.h"
#include "redis_msg.h"
#include "redis_sub.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define ARGV_MAX       64 /* arguments of one command we build */
#define SCAN_COUNT     "500"
#define CHANNEL_SUFFIX "invalidate"

/* A generation as Redis stores it: decimal digits (INCR). */
static int parse_gen(const redisReply *r, uint64_t *out)
{
    uint64_t v = 0;
    if (r->type == REDIS_REPLY_NIL) {
        *out = 0;
        return 0;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer < 0 ? 0 : (uint64_t)r->integer;
        return r->integer < 0 ? -1 : 0;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 19)
        return -1;
    for (size_t i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(r->str[i] - '0');
    }
    *out = v;
    return 0;
}

static int parse_gens(const redisReply *r, size_t ntags, uint64_t *gens)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != ntags)
        return -1;
    for (size_t i = 0; i < ntags; i++) {
        if (parse_gen(r->element[i], &gens[i]) < 0)
            return -1;
    }
    return 0;
}

/*
 * bump_tags_once, atomic in Redis. KEYS: the n generation keys, then the
 * n markers "once:<token>/<tag>"; ARGV: the markers' TTL in ms, the
 * channel ("" when not publishing), the n tags. A tag whose marker exists
 * was bumped after that transaction's commit already and is left alone;
 * the others are bumped, then marked (a bump that fails leaves no marker),
 * and published in one message (redis_msg.h's format), so the
 * subscribers' L1s see exactly the bumps that happened. One marker per
 * tag and transaction: another transaction's bump in between does not
 * make the second bumper of this one bump again.
 */
static const char once_script[] =
    "local n = #KEYS / 2 local msg = 'b\\n' local k = 0 "
    "for i = 1, n do "
    "if redis.call('exists', KEYS[n + i]) == 0 then "
    "redis.call('incr', KEYS[i]) "
    "redis.call('set', KEYS[n + i], '1', 'px', ARGV[1]) "
    "msg = msg .. #ARGV[2 + i] .. ':' .. ARGV[2 + i] k = k + 1 end end "
    "if k > 0 and ARGV[2] ~= '' then redis.call('publish', ARGV[2], msg) end "
    "return k";

#define ONCE_TAGS  16            /* tags per EVAL: 3 arguments each, + 5 */
#define ONCE_PIPE  16            /* EVALs per round trip */
#define ONCE_TOKEN NOTIFY_MAX_TX /* longest token */

/* A token the marker keys can hold unambiguously: [0-9A-Za-z._-], so the
 * '/' after it ends it. */
static bool once_token_ok(const struct rc_str *token)
{
    if (token == NULL || token->len == 0 || token->len > ONCE_TOKEN)
        return false;
    for (size_t i = 0; i < token->len; i++) {
        char c = token->s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int add_once_cmd(struct redis *r, buf *out, buf *scratch, const struct rc_str *tags,
                        size_t ntags, const struct rc_str *token)
{
    const char *argv[3 * ONCE_TAGS + 5];
    size_t lens[3 * ONCE_TAGS + 5], a = 0;
    char nkeys[8], ttl[24], ns[ONCE_TOKEN + 8];

    snprintf(ns, sizeof(ns), "once:%.*s/", (int)token->len, token->s);
    if (ntags > ONCE_TAGS ||
        buf_reserve(scratch, 2 * redis_tags_room(r, tags, ntags) + ntags * strlen(ns)) < 0)
        return -1;
    argv[a] = "EVAL";
    lens[a++] = 4;
    argv[a] = once_script;
    lens[a++] = sizeof(once_script) - 1;
    argv[a] = nkeys;
    lens[a++] = (size_t)snprintf(nkeys, sizeof(nkeys), "%zu", 2 * ntags);
    for (size_t i = 0; i < ntags; i++, a++)
        if ((argv[a] = redis_mk_key(r, scratch, "tag:", tags[i].s, tags[i].len, &lens[a])) == NULL)
            return -1;
    for (size_t i = 0; i < ntags; i++, a++)
        if ((argv[a] = redis_mk_key(r, scratch, ns, tags[i].s, tags[i].len, &lens[a])) == NULL)
            return -1;
    argv[a] = ttl;
    lens[a++] = (size_t)snprintf(ttl, sizeof(ttl), "%d", CACHE_ONCE_TTL_MS);
    argv[a] = r->publish ? r->channel : "";
    lens[a++] = r->publish ? r->chlen : 0;
    for (size_t i = 0; i < ntags; i++, a++) {
        argv[a] = tags[i].s;
        lens[a] = tags[i].len;
    }
    return resp_command(out, (int)a, argv, lens);
}

/* ---- the provider ops ------------------------------------------------------ */

static void empty_value(struct cache_value *val)
{
    val->data = NULL;
    val->len = 0;
    val->ref = NULL;
}

static int rd_get(void *self, const char *key, size_t klen, const struct rc_str *tags, size_t ntags,
                  struct cache_value *val, uint64_t *gens)
{
    struct redis *r = self;
    enum breaker_admit how;
    struct rthread *t;
    const char *argv[ARGV_MAX];
    size_t lens[ARGV_MAX], ncmds = 1;
    redisReply *rep[2];
    struct entry_view e;

    empty_value(val);
    stat_add(&r->gets, 1);
    if (ntags + 1 > ARGV_MAX || (t = redis_op_begin(r, &how)) == NULL) {
        if (ntags + 1 > ARGV_MAX)
            stat_add(&r->errors, 1);
        return -1;
    }
    if (buf_reserve(&t->scratch, r->plen + 2 + klen + redis_tags_room(r, tags, ntags)) < 0)
        goto oom;
    argv[0] = "GET";
    lens[0] = 3;
    argv[1] = redis_mk_key(r, &t->scratch, "e:", key, klen, &lens[1]);
    if (resp_command(&t->out, 2, argv, lens) < 0)
        goto oom;
    if (ntags > 0) {
        argv[0] = "MGET";
        lens[0] = 4;
        for (size_t i = 0; i < ntags; i++)
            argv[i + 1] =
                redis_mk_key(r, &t->scratch, "tag:", tags[i].s, tags[i].len, &lens[i + 1]);
        if (resp_command(&t->out, (int)ntags + 1, argv, lens) < 0)
            goto oom;
        ncmds = 2;
    }
    if (redis_op_run(r, t, how, ncmds, rep, "get") < 0)
        return -1;
    if (ntags > 0 && parse_gens(rep[1], ntags, gens) < 0) {
        /* A tag key holds something INCR never wrote: nothing recorded
         * against it can be trusted, and nothing may be stored. */
        stat_add(&r->errors, 1);
        redis_log_error("redis_bad_generation", "get",
                        is_error(rep[1]) ? rep[1]->str : "not a number");
        redis_free_replies(rep, ncmds);
        return -1;
    }
    if (ncmds == 2)
        redis_free_replies(&rep[1], 1);
    if (rep[0]->type == REDIS_REPLY_NIL) {
        redis_free_replies(rep, 1);
        stat_add(&r->misses, 1);
        return 0;
    }
    if (rep[0]->type != REDIS_REPLY_STRING || entry_decode(rep[0]->str, rep[0]->len, &e) < 0) {
        /* Foreign, truncated or older bytes, or another type: a miss, so
         * the handler stores a good entry over it. */
        stat_add(&r->errors, 1);
        stat_add(&r->misses, 1);
        log_msg(LOG_WARN, "redis_undecodable_entry", "\"bytes\":%zu",
                rep[0]->type == REDIS_REPLY_STRING ? rep[0]->len : 0);
        redis_free_replies(rep, 1);
        return 0;
    }
    stat_add(&r->hits, 1);
    val->data = (const uint8_t *)rep[0]->str;
    val->len = rep[0]->len;
    val->ref = rep[0];
    return 1;
oom:
    redis_op_abort(r, t, how);
    return -1;
}

static void rd_release(void *self, struct cache_value *val)
{
    (void)self;
    if (val == NULL || val->ref == NULL)
        return;
    freeReplyObject(val->ref);
    empty_value(val);
}

static int rd_set(void *self, const char *key, size_t klen, const void *data, size_t len,
                  int64_t ttl_ms)
{
    struct redis *r = self;
    char px[24];
    const char *argv[5] = {"SET", key, data, "PX", px};
    size_t lens[5] = {3, klen, len, 2, 0};
    redisReply *rep;

    if (ttl_ms <= 0) {
        stat_add(&r->errors, 1);
        return -1;
    }
    lens[4] = (size_t)snprintf(px, sizeof(px), "%" PRId64, ttl_ms);
    if (redis_simple_op(r, "set", 5, argv, lens, 1, "e:", &rep) < 0)
        return -1;
    int rc = str_is(rep, "OK") ? 0 : -1;
    if (rc < 0) {
        stat_add(&r->errors, 1);
        redis_log_error("redis_refused", "set", is_error(rep) ? rep->str : "unexpected reply");
    } else {
        stat_add(&r->sets, 1);
    }
    freeReplyObject(rep);
    return rc;
}

static int rd_del(void *self, const char *key, size_t klen)
{
    struct redis *r = self;
    const char *argv[2] = {"UNLINK", key};
    size_t lens[2] = {6, klen};
    redisReply *rep;

    if (redis_simple_op(r, "del", 2, argv, lens, 1, "e:", &rep) < 0)
        return -1;
    int rc = rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (rc == 0 && rep->integer > 0)
        stat_add(&r->deletes, (uint64_t)rep->integer);
    freeReplyObject(rep);
    return rc;
}

static int rd_tag_gens(void *self, const struct rc_str *tags, size_t ntags, uint64_t *gens)
{
    struct redis *r = self;
    enum breaker_admit how;
    struct rthread *t;
    const char *argv[ARGV_MAX];
    size_t lens[ARGV_MAX];
    redisReply *rep;

    if (ntags == 0)
        return 0;
    if (ntags + 1 > ARGV_MAX || (t = redis_op_begin(r, &how)) == NULL)
        return -1;
    if (buf_reserve(&t->scratch, redis_tags_room(r, tags, ntags)) < 0)
        goto oom;
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < ntags; i++)
        argv[i + 1] = redis_mk_key(r, &t->scratch, "tag:", tags[i].s, tags[i].len, &lens[i + 1]);
    if (resp_command(&t->out, (int)ntags + 1, argv, lens) < 0)
        goto oom;
    if (redis_op_run(r, t, how, 1, &rep, "tag_gens") < 0)
        return -1;
    int rc = parse_gens(rep, ntags, gens);
    if (rc < 0)
        stat_add(&r->errors, 1);
    freeReplyObject(rep);
    return rc;
oom:
    redis_op_abort(r, t, how);
    return -1;
}

/* INCR (or INCRBY the soft unit) every tag, + PUBLISH. A bump that could
 * not reach Redis is kept for replay (as a hard bump: more than asked,
 * never less). */
static int bump(struct redis *r, const struct rc_str *tags, size_t ntags, bool soft)
{
    enum breaker_admit how;
    struct rthread *t;
    redisReply *rep[ARGV_MAX + 1];
    size_t ncmds = 0;
    int rc = 0;

    if (ntags == 0)
        return 0;
    if (ntags > ARGV_MAX || (t = redis_op_begin(r, &how)) == NULL) { /* bump_all splits */
        pending_add(r->pending, tags, ntags);
        return -1;
    }
    if (redis_add_bump_cmds(r, &t->out, &t->scratch, tags, ntags, soft, &ncmds) < 0) {
        redis_op_abort(r, t, how);
        pending_add(r->pending, tags, ntags);
        return -1;
    }
    if (redis_op_run(r, t, how, ncmds, rep, soft ? "bump_tags_soft" : "bump_tags") < 0) {
        pending_add(r->pending, tags, ntags);
        return -1;
    }
    for (size_t i = 0; i < ntags; i++) {
        if (rep[i]->type != REDIS_REPLY_INTEGER) {
            /* Not a counter (something else wrote the key): retrying
             * cannot help; the handler reports the failure. */
            redis_log_error("redis_refused", "INCR",
                            is_error(rep[i]) ? rep[i]->str : "not an integer");
            stat_add(&r->errors, 1);
            rc = -1;
        }
    }
    redis_free_replies(rep, ncmds);
    return rc;
}

/* A bump of any number of tags (a database notification may carry 256),
 * in pipelines of at most ARGV_MAX. */
static int bump_all(struct redis *r, const struct rc_str *tags, size_t ntags, bool soft)
{
    int rc = 0;

    for (size_t i = 0; i < ntags; i += ARGV_MAX) {
        size_t n = ntags - i < ARGV_MAX ? ntags - i : ARGV_MAX;
        if (bump(r, tags + i, n, soft) < 0)
            rc = -1;
    }
    return rc;
}

static int rd_bump_tags(void *self, const struct rc_str *tags, size_t ntags)
{
    return bump_all(self, tags, ntags, false);
}

static int rd_bump_tags_soft(void *self, const struct rc_str *tags, size_t ntags)
{
    return bump_all(self, tags, ntags, true);
}

/* At most ONCE_TAGS * ONCE_PIPE tags, an EVAL of once_script per
 * ONCE_TAGS, in one round trip: the tags left alone, or -1. A bump that
 * could not reach Redis is kept for replay as a plain one (the script may
 * have run: replaying then bumps twice, which only costs a miss). An EVAL
 * that Redis refused (scripting not allowed, a generation key that is not
 * a counter) is done again as plain bumps, so a refusal never leaves a
 * tag unbumped. */
static int bump_once(struct redis *r, const struct rc_str *tags, size_t ntags,
                     const struct rc_str *token)
{
    enum breaker_admit how;
    struct rthread *t;
    redisReply *rep[ONCE_PIPE];
    size_t ncmds = 0, chunk[ONCE_PIPE];
    int left = 0, rc = 0;

    if ((t = redis_op_begin(r, &how)) == NULL) {
        pending_add(r->pending, tags, ntags);
        return -1;
    }
    for (size_t i = 0; i < ntags; i += ONCE_TAGS, ncmds++) {
        chunk[ncmds] = ntags - i < ONCE_TAGS ? ntags - i : ONCE_TAGS;
        if (add_once_cmd(r, &t->out, &t->scratch, tags + i, chunk[ncmds], token) < 0) {
            redis_op_abort(r, t, how);
            pending_add(r->pending, tags, ntags);
            return -1;
        }
    }
    if (redis_op_run(r, t, how, ncmds, rep, "bump_tags_once") < 0) {
        pending_add(r->pending, tags, ntags);
        return -1;
    }
    for (size_t c = 0, at = 0; c < ncmds; at += chunk[c], c++) {
        if (rep[c]->type == REDIS_REPLY_INTEGER && rep[c]->integer >= 0 &&
            (size_t)rep[c]->integer <= chunk[c]) {
            left += (int)(chunk[c] - (size_t)rep[c]->integer);
            continue;
        }
        redis_log_error("redis_refused", "EVAL", is_error(rep[c]) ? rep[c]->str : "not a count");
        stat_add(&r->errors, 1);
        if (bump_all(r, tags + at, chunk[c], false) < 0)
            rc = -1;
    }
    redis_free_replies(rep, ncmds);
    return rc < 0 ? -1 : left;
}

static int rd_bump_tags_once(void *self, const struct rc_str *tags, size_t ntags,
                             const struct rc_str *token)
{
    int left = 0, failed = 0;

    if (!once_token_ok(token))
        return rd_bump_tags(self, tags, ntags);
    for (size_t i = 0; i < ntags; i += ONCE_TAGS * ONCE_PIPE) {
        size_t n = ntags - i < ONCE_TAGS * ONCE_PIPE ? ntags - i : ONCE_TAGS * ONCE_PIPE;
        int rc = bump_once(self, tags + i, n, token);
        if (rc < 0)
            failed = 1;
        else
            left += rc;
    }
    return failed ? -1 : left;
}

/* prefix "e:" + pattern, with the Redis glob's extra specials ('[', ']')
 * escaped so Redis matches exactly what cache_glob_match() would. */
static int match_pattern(struct redis *r, const char *pattern, buf *out)
{
    if (buf_append(out, r->prefix, r->plen) < 0 || buf_puts(out, "e:") < 0)
        return -1;
    for (const char *p = pattern; *p != '\0'; p++) {
        if ((*p == '[' || *p == ']') && buf_putc(out, '\\') < 0)
            return -1;
        if (buf_putc(out, *p) < 0)
            return -1;
    }
    return 0;
}

static int scan_step(struct redis *r, const buf *match, char *cursor, size_t cursz,
                     uint64_t *deleted)
{
    const char *argv[6] = {"SCAN", cursor, "MATCH", match->data, "COUNT", SCAN_COUNT};
    size_t lens[6] = {4, strlen(cursor), 5, match->len, 5, strlen(SCAN_COUNT)};
    redisReply *rep, *del = NULL;
    int rc = -1;

    if (redis_simple_op(r, "purge", 6, argv, lens, -1, "", &rep) < 0)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= cursz ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
        redis_log_error("redis_refused", "SCAN", is_error(rep) ? rep->str : "unexpected reply");
        goto out;
    }
    memcpy(cursor, rep->element[0]->str, rep->element[0]->len + 1);
    size_t n = rep->element[1]->elements;
    if (n == 0) {
        rc = 0;
        goto out;
    }
    const char **kv = malloc((n + 1) * sizeof(*kv));
    size_t *kl = malloc((n + 1) * sizeof(*kl));
    if (kv != NULL && kl != NULL && n < INT32_MAX) {
        kv[0] = "UNLINK";
        kl[0] = 6;
        for (size_t i = 0; i < n; i++) {
            kv[i + 1] = rep->element[1]->element[i]->str;
            kl[i + 1] = rep->element[1]->element[i]->len;
        }
        if (redis_simple_op(r, "purge", (int)n + 1, kv, kl, -1, "", &del) == 0 &&
            del->type == REDIS_REPLY_INTEGER) {
            *deleted += (uint64_t)(del->integer > 0 ? del->integer : 0);
            rc = 0;
        }
    }
    free(kv);
    free(kl);
    if (del != NULL)
        freeReplyObject(del);
out:
    freeReplyObject(rep);
    return rc;
}

static int rd_purge(void *self, const char *pattern, uint64_t *deleted)
{
    static const struct rc_str all = {CACHE_GLOBAL_TAG, 1};
    struct redis *r = self;
    char cursor[32] = "0";
    uint64_t n = 0;
    buf match;
    int rc = 0;

    if (deleted)
        *deleted = 0;
    if (pattern == NULL) /* O(1): every entry records "*" */
        return rd_bump_tags(r, &all, 1);
    if (strlen(pattern) > REDIS_MSG_PATTERN_MAX)
        return -1;
    buf_init(&match, 0);
    if (match_pattern(r, pattern, &match) < 0)
        rc = -1;
    while (rc == 0) {
        rc = scan_step(r, &match, cursor, sizeof(cursor), &n);
        if (strcmp(cursor, "0") == 0)
            break;
    }
    buf_free(&match);
    stat_add(&r->deletes, n);
    if (deleted)
        *deleted = n;
    if (r->publish) {
        buf msg;
        redisReply *rep;
        buf_init(&msg, 0);
        if (redis_msg_purge(&msg, pattern) == 0) {
            const char *argv[3] = {"PUBLISH", r->channel, msg.data};
            size_t lens[3] = {7, r->chlen, msg.len};
            if (redis_simple_op(r, "purge", 3, argv, lens, -1, "", &rep) == 0)
                freeReplyObject(rep);
            else
                rc = -1;
        } else {
            rc = -1; /* out of memory: the other instances were not told */
        }
        buf_free(&msg);
    }
    return rc;
}

/* A field of INFO's "name:value" lines. */
static uint64_t info_field(const redisReply *info, const char *name)
{
    size_t n = strlen(name);
    if (info == NULL || info->type != REDIS_REPLY_STRING)
        return 0;
    for (const char *p = info->str; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == info->str || p[-1] == '\n') && p[n] == ':')
            return strtoull(p + n + 1, NULL, 10);
    }
    return 0;
}

/* Counters, and keys / bytes as the last tick() measured them: stats()
 * never waits on the network, so /metrics can be answered inline. */
static void rd_stats(void *self, struct cache_stats *out)
{
    struct redis *r = self;

    memset(out, 0, sizeof(*out));
    out->gets = atomic_load(&r->gets);
    out->hits = atomic_load(&r->hits);
    out->misses = atomic_load(&r->misses);
    out->sets = atomic_load(&r->sets);
    out->deletes = atomic_load(&r->deletes);
    out->errors = atomic_load(&r->errors);
    out->keys = atomic_load(&r->keys);
    out->bytes = atomic_load(&r->bytes);
    out->max_bytes = atomic_load(&r->max_bytes);
    out->breaker = (int)breaker_state(&r->breaker);
}

/* About once a second, from the main thread: measure keys (DBSIZE: the
 * whole database, tag keys included) and bytes (used_memory: the whole
 * server). Being an ordinary operation, it also probes an open breaker and
 * replays pending bumps when nothing else would (an idle instance). */
static void rd_tick(void *self)
{
    struct redis *r = self;
    enum breaker_admit how;
    struct rthread *t = redis_op_begin(r, &how);
    const char *a1[1] = {"DBSIZE"}, *a2[2] = {"INFO", "memory"};
    size_t l1[1] = {6}, l2[2] = {4, 6};
    redisReply *rep[2];

    if (t == NULL)
        return;
    if (resp_command(&t->out, 1, a1, l1) < 0 || resp_command(&t->out, 2, a2, l2) < 0) {
        redis_op_abort(r, t, how);
        return;
    }
    if (redis_op_run(r, t, how, 2, rep, "stats") < 0)
        return;
    if (rep[0]->type == REDIS_REPLY_INTEGER && rep[0]->integer >= 0)
        atomic_store(&r->keys, (uint64_t)rep[0]->integer);
    atomic_store(&r->bytes, info_field(rep[1], "used_memory"));
    atomic_store(&r->max_bytes, info_field(rep[1], "maxmemory"));
    redis_free_replies(rep, 2);
}

static int rd_ping(void *self)
{
    struct redis *r = self;
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    redisReply *rep;

    if (redis_simple_op(r, "ping", 1, argv, lens, -1, "", &rep) < 0)
        return -1;
    int rc = str_is(rep, "PONG") ? 0 : -1;
    freeReplyObject(rep);
    return rc;
}

static void rd_close(void *self)
{
    struct redis *r = self;
    if (r == NULL)
        return;
    redis_sub_stop(r->sub);
    pthread_key_delete(r->key);
    while (r->threads != NULL)
        redis_thread_state_free(r->threads);
    if (r->pending != NULL && !pending_empty(r->pending))
        log_msg(LOG_WARN, "redis_pending_bumps_lost",
                "\"reason\":\"stopped while Redis was unreachable; the entries they "
                "invalidate live until their TTL\"");
    pending_free(r->pending);
    for (size_t i = 0; i < atomic_load(&r->nunlocks); i++)
        free(r->unlocks[i].key);
    pthread_mutex_destroy(&r->unl_lock);
    pthread_mutex_destroy(&r->reg_lock);
    breaker_destroy(&r->breaker);
    rconn_tls_free(r->tls);
    free(r->prefix);
    free(r->channel);
    free(r);
}

static const struct cache_ops redis_ops = {
    .name = "redis",
    .remote = true,
    .get = rd_get,
    .release = rd_release,
    .set = rd_set,
    .del = rd_del,
    .tag_gens = rd_tag_gens,
    .bump_tags = rd_bump_tags,
    .purge = rd_purge,
    .stats = rd_stats,
    .ping = rd_ping,
    .tick = rd_tick,
    .close = rd_close,
    .bump_tags_soft = rd_bump_tags_soft,
    .bump_tags_once = rd_bump_tags_once,
    .lock = redis_lock_take,
    .unlock = redis_lock_release,
};

struct cache *cache_redis_create(const struct redis_options *o, char *errbuf)
{
    char err[RC_ERRBUF];
    struct cache *c = NULL;
    struct redis *r = calloc(1, sizeof(*r));
    enum rconn_fail why;
    struct rthread *t;

    if (r == NULL)
        goto oom;
    if (o->url == NULL) {
        rc_err(errbuf, "cache.redis_url (REDIS_URL) is required by this cache provider");
        free(r);
        return NULL;
    }
    if (redis_url_parse(o->url, &r->url, err) < 0) {
        rc_err(errbuf, "cache.redis_url: %s", err);
        free(r);
        return NULL;
    }
    redis_url_describe(&r->url, r->where, sizeof(r->where));
    if (!r->url.tls && (o->tls_ca_file || o->tls_cert_file || o->tls_key_file)) {
        rc_err(errbuf, "cache.redis_tls_*: TLS files are set but cache.redis_url is not "
                       "rediss://");
        free(r);
        return NULL;
    }
    if (r->url.tls) {
        r->tls = rconn_tls_create(o->tls_ca_file, o->tls_cert_file, o->tls_key_file, o->tls_verify,
                                  errbuf);
        if (r->tls == NULL) {
            free(r);
            return NULL;
        }
    }
    r->connect_timeout_ms = o->connect_timeout_ms;
    r->command_timeout_ms = o->command_timeout_ms;
    r->publish = o->publish;
    if (o->key_prefix != NULL && strlen(o->key_prefix) > REDIS_KEY_PREFIX_MAX) {
        rc_err(errbuf, "cache.redis_key_prefix: longer than %d bytes", REDIS_KEY_PREFIX_MAX);
        rconn_tls_free(r->tls);
        free(r);
        return NULL;
    }
    r->prefix = strdup(o->key_prefix ? o->key_prefix : "");
    r->plen = r->prefix ? strlen(r->prefix) : 0;
    r->chlen = r->plen + strlen(CHANNEL_SUFFIX);
    r->channel = malloc(r->chlen + 1);
    if (r->prefix == NULL || r->channel == NULL) {
        rconn_tls_free(r->tls);
        free(r->prefix);
        free(r->channel);
        free(r);
        goto oom;
    }
    snprintf(r->channel, r->chlen + 1, "%s%s", r->prefix, CHANNEL_SUFFIX);
    /* Setup of a few mutexes and a key does not fail on Linux; a failure
     * would be reported by the first lock, not silently ignored later. */
    pthread_mutex_init(&r->reg_lock, NULL);
    pthread_mutex_init(&r->unl_lock, NULL);
    r->pending = pending_create(REDIS_PENDING_MAX);
    if (breaker_init(&r->breaker, o->breaker_failures, o->breaker_open_ms,
                     (int64_t)o->connect_timeout_ms + 3 * (int64_t)o->command_timeout_ms + 1000) <
            0 ||
        r->pending == NULL || pthread_key_create(&r->key, redis_thread_state_free) != 0) {
        pending_free(r->pending);
        for (size_t i = 0; i < atomic_load(&r->nunlocks); i++)
            free(r->unlocks[i].key);
        pthread_mutex_destroy(&r->unl_lock);
        rconn_tls_free(r->tls);
        free(r->prefix);
        free(r->channel);
        free(r);
        goto oom;
    }
    c = malloc(sizeof(*c));
    if (c == NULL) {
        rd_close(r);
        goto oom;
    }
    c->ops = &redis_ops;
    c->self = r;

    /* Connect once now, so a wrong password, CA or database stops the
     * start with a message, not the first request. */
    t = redis_thread_state(r);
    if (t != NULL && redis_conn_open(r, true, &t->conn, &t->reader, &why, err) < 0) {
        if (why == RCONN_CONFIG) {
            rc_err(errbuf, "redis: %s", err);
            cache_free(c);
            return NULL;
        }
        breaker_report(&r->breaker, BREAKER_GO, false, rc_mono_ms());
        redis_log_error("redis_unavailable_at_start", "connect", err);
    } else if (t != NULL) {
        log_msg(LOG_INFO, "redis_connected", "\"server\":\"%s\",\"tls\":%s,\"db\":%d", r->where,
                r->url.tls ? "true" : "false", r->url.db);
    }
    return c;
oom:
    rc_err(errbuf, "redis: out of memory");
    return NULL;
}

int cache_redis_breaker_state(struct cache *c)
{
    struct redis *r = c->self;
    return (int)breaker_state(&r->breaker);
}
