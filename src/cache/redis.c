/*
 * redis.c - the Redis cache provider (redis.h). The only file that
 * includes hiredis: its command formatter and reply reader speak RESP over
 * our own transport (rconn.c), since hiredis 0.14 has no TLS and no
 * per-call deadline.
 *
 * Connections. One per thread that uses the provider (a pthread key per
 * provider), connected lazily, logged in (AUTH, SELECT) and checked for a
 * Redis restart before its first use. Every operation is one pipelined
 * round trip bounded by the command timeout: a read is GET entry + MGET of
 * its tag generations; a bump is one INCR per tag (+ PUBLISH), or for a
 * transaction the database notified, one EVAL per 16 tags that bumps each
 * once between every instance (bump_tags_once); a set is SET ... PX. A
 * connection that fails is closed; a connection that had worked before
 * and fails before the deadline is retried once on a fresh one (Redis
 * closing idle clients must not cost a request its cache).
 *
 * Circuit breaker (breaker.c). Consecutive failures open it; while it is
 * open every operation fails at once without touching the network (the
 * handler then answers BYPASS from the database); after open_ms one
 * operation probes, and its success closes it. Failures are logged only
 * for attempts the breaker let through, so an outage logs a few lines per
 * open period, not one per request.
 *
 * Consistency across outages (what README states):
 *  - A bump that fails (breaker open, timeout, lost connection) is kept in
 *    a bounded pending list (PENDING_MAX distinct tags; beyond that, one
 *    bump of the global tag "*"). Before any other command, every
 *    operation of this process replays the list, so once Redis answers
 *    again this process never reads or writes an entry before its own
 *    missed invalidations have landed. A timed-out INCR may have been
 *    applied: replaying it bumps twice, which only costs a miss.
 *  - Redis restarted, failed over or restored from a snapshot: generations
 *    may have gone back in time while old entries survived. Each new
 *    connection compares the server's run_id (INFO server) with the one
 *    stored under prefix "meta:run_id"; on a difference it bumps "*" (all
 *    entries invalid) and then stores the new run_id. The first connection
 *    of any instance to see a new server does it, before that connection
 *    serves anything. Cost: a cold cache after a Redis restart.
 *  - A tag key must never be evicted: run Redis with a volatile-* or
 *    noeviction maxmemory-policy (entries have TTLs, tag keys do not).
 *
 * Stored values are untrusted: a value that does not decode as an entry
 * (or a key of another type) is reported as a miss and counted in errors,
 * so the handler overwrites it with a correct entry.
 *
 * Also here: the shared single-flight lock (SET NX PX, released by a Lua
 * compare-and-delete; a release that could not reach Redis, or a take that
 * was sent but got no answer, is released once it answers), stats
 * refreshed by tick() so that stats() never waits on the network, and the
 * connection the tiered provider's subscriber (redis_sub.c) drives.
 */
#include "redis.h"

#include "../buf.h"
#include "../log.h"
#include "../notify.h"
#include "breaker.h"
#include "entry.h"
#include "rconn.h"
#include "pending.h"
#include "redis_msg.h"
#include "redis_reader.h"
#include "redis_sub.h"
#include "redis_url.h"

#include <hiredis/hiredis.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK      16384
#define MAX_REPLY_BYTES ((size_t)80 << 20) /* above any entry the handler stores */
#define ARGV_MAX        64                 /* arguments of one command we build */
#define PENDING_MAX     REDIS_PENDING_MAX  /* distinct tags kept while bumps fail */
#define UNLOCKS_MAX     64                 /* lock releases kept while Redis is away */
#define SCAN_COUNT      "500"
#define RUN_ID_MAX      64
#define META_RUN_ID     "meta:run_id"
#define CHANNEL_SUFFIX  "invalidate"
#define BUF_KEEP        ((size_t)1 << 20) /* scratch a thread keeps between operations */

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

static void stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void log_error(const char *event, const char *what, const char *err)
{
    char e[RC_ERRBUF * 2];
    log_msg(LOG_WARN, event, "\"op\":\"%s\",\"error\":\"%s\"", what, log_escape(err, e, sizeof(e)));
}

/* ---- RESP over rconn ------------------------------------------------------ */

static int add_cmd(buf *out, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0)
        return -1;
    int rc = buf_append(out, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return rc;
}

static void free_replies(redisReply **rep, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rep[i] != NULL)
            freeReplyObject(rep[i]);
        rep[i] = NULL;
    }
}

/* Write the n commands in out, read their n replies. 0, or -1 with every
 * reply freed (the connection is then in an unknown state: close it). */
static int roundtrip(struct rconn *c, redisReader *rd, const buf *out, size_t n, redisReply **rep,
                     int64_t deadline, char *err)
{
    char chunk[READ_CHUNK];
    size_t got = 0, total = 0;

    for (size_t i = 0; i < n; i++)
        rep[i] = NULL;
    if (rconn_write(c, out->data, out->len, deadline, err) < 0)
        return -1;
    while (got < n) {
        void *r = NULL;
        if (redisReaderGetReply(rd, &r) != REDIS_OK) {
            rc_err(err, "protocol error: %s", rd->errstr);
            goto fail;
        }
        if (r != NULL) {
            rep[got++] = r;
            continue;
        }
        long k = rconn_read(c, chunk, sizeof(chunk), deadline, err);
        if (k < 0)
            goto fail;
        total += (size_t)k;
        if (total > MAX_REPLY_BYTES) {
            rc_err(err, "reply larger than %zu bytes", MAX_REPLY_BYTES);
            goto fail;
        }
        if (redisReaderFeed(rd, chunk, (size_t)k) != REDIS_OK) {
            rc_err(err, "out of memory");
            goto fail;
        }
    }
    return 0;
fail:
    free_replies(rep, got);
    return -1;
}

static bool is_error(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR;
}

static bool str_is(const redisReply *r, const char *s)
{
    return r != NULL && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
           r->len == strlen(s) && strncasecmp(r->str, s, r->len) == 0;
}

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

/* ---- keys and messages ----------------------------------------------------- */

/* Append prefix + ns + s to scratch (room reserved by the caller, so
 * earlier pointers stay valid) and return where it starts. */
static const char *mk_key(struct redis *r, buf *scratch, const char *ns, const char *s, size_t n,
                          size_t *len)
{
    size_t at = scratch->len, nl = strlen(ns);
    if (buf_append(scratch, r->prefix, r->plen) < 0 || buf_append(scratch, ns, nl) < 0 ||
        buf_append(scratch, s, n) < 0)
        return NULL;
    *len = r->plen + nl + n;
    return scratch->data + at;
}

static size_t tags_room(struct redis *r, const struct rc_str *tags, size_t ntags)
{
    size_t n = 0;
    for (size_t i = 0; i < ntags; i++)
        n += r->plen + 4 + tags[i].len;
    return n;
}

/* Commands INCR per tag, then PUBLISH when publishing, into out. */
static int add_bump_cmds(struct redis *r, buf *out, buf *scratch, const struct rc_str *tags,
                         size_t ntags, bool soft, size_t *ncmds)
{
    char unit[24];
    int ulen = snprintf(unit, sizeof(unit), "%" PRIu64, CACHE_GEN_SOFT_UNIT);
    buf msg;
    int rc = 0;

    if (buf_reserve(scratch, tags_room(r, tags, ntags)) < 0)
        return -1;
    for (size_t i = 0; i < ntags && rc == 0; i++) {
        const char *argv[3] = {soft ? "INCRBY" : "INCR", NULL, unit};
        size_t lens[3] = {soft ? 6 : 4, 0, (size_t)ulen};
        argv[1] = mk_key(r, scratch, "tag:", tags[i].s, tags[i].len, &lens[1]);
        rc = argv[1] != NULL ? add_cmd(out, soft ? 3 : 2, argv, lens) : -1;
        (*ncmds)++;
    }
    if (rc == 0 && r->publish) {
        buf_init(&msg, 0);
        rc = redis_msg_bump(&msg, tags, ntags);
        if (rc == 0) {
            const char *argv[3] = {"PUBLISH", r->channel, msg.data};
            size_t lens[3] = {7, r->chlen, msg.len};
            rc = add_cmd(out, 3, argv, lens);
            (*ncmds)++;
        }
        buf_free(&msg);
    }
    return rc;
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
        buf_reserve(scratch, 2 * tags_room(r, tags, ntags) + ntags * strlen(ns)) < 0)
        return -1;
    argv[a] = "EVAL";
    lens[a++] = 4;
    argv[a] = once_script;
    lens[a++] = sizeof(once_script) - 1;
    argv[a] = nkeys;
    lens[a++] = (size_t)snprintf(nkeys, sizeof(nkeys), "%zu", 2 * ntags);
    for (size_t i = 0; i < ntags; i++, a++)
        if ((argv[a] = mk_key(r, scratch, "tag:", tags[i].s, tags[i].len, &lens[a])) == NULL)
            return -1;
    for (size_t i = 0; i < ntags; i++, a++)
        if ((argv[a] = mk_key(r, scratch, ns, tags[i].s, tags[i].len, &lens[a])) == NULL)
            return -1;
    argv[a] = ttl;
    lens[a++] = (size_t)snprintf(ttl, sizeof(ttl), "%d", CACHE_ONCE_TTL_MS);
    argv[a] = r->publish ? r->channel : "";
    lens[a++] = r->publish ? r->chlen : 0;
    for (size_t i = 0; i < ntags; i++, a++) {
        argv[a] = tags[i].s;
        lens[a] = tags[i].len;
    }
    return add_cmd(out, (int)a, argv, lens);
}

/* ---- pending bumps ------------------------------------------------------- */

/* Replay the pending bumps on t's connection. 0 when nothing is left. */
static int pending_flush(struct redis *r, struct rthread *t, int64_t deadline, char *err)
{
    static const struct rc_str all_tags = {CACHE_GLOBAL_TAG, 1};
    const struct rc_str *tags;
    redisReply **rep = NULL;
    buf out, scratch;
    size_t n, ncmds = 0;
    bool all;
    int rc = -1;

    if (!pending_begin(r->pending, &tags, &n, &all))
        return 0;
    if (all) {
        tags = &all_tags;
        n = 1;
    }
    buf_init(&out, 0);
    buf_init(&scratch, 0);
    rep = malloc((n + 1) * sizeof(*rep));
    if (rep == NULL || add_bump_cmds(r, &out, &scratch, tags, n, false, &ncmds) < 0) {
        rc_err(err, "out of memory");
    } else if (roundtrip(t->conn, t->reader, &out, ncmds, rep, deadline, err) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (rep[i]->type != REDIS_REPLY_INTEGER)
                log_error("redis_refused", "INCR", is_error(rep[i]) ? rep[i]->str : "?");
        }
        free_replies(rep, ncmds);
        log_msg(LOG_INFO, "redis_pending_bumps_replayed", "\"tags\":%zu,\"all\":%s", n,
                all ? "true" : "false");
        rc = 0;
    }
    pending_end(r->pending, rc == 0);
    free(rep);
    buf_free(&out);
    buf_free(&scratch);
    return rc;
}

/* ---- connections ----------------------------------------------------------- */

/* Run the first line of INFO server's "run_id:" into out. */
static bool info_run_id(const redisReply *info, char *out)
{
    const char *p;
    size_t n;

    if (info == NULL || info->type != REDIS_REPLY_STRING)
        return false;
    p = strstr(info->str, "run_id:");
    if (p == NULL)
        return false;
    p += 7;
    n = strcspn(p, "\r\n");
    if (n == 0 || n >= RUN_ID_MAX)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* Bump "*" and record run_id: the server is not the one the generations
 * were counted on (restart, failover, restore), so no entry is trusted. */
static int reset_generations(struct redis *r, struct rconn *c, redisReader *rd, const char *run_id,
                             bool had_marker, char *err)
{
    static const struct rc_str all = {CACHE_GLOBAL_TAG, 1};
    redisReply *rep[3];
    buf out, scratch;
    size_t ncmds = 0, mlen;
    int rc = -1;

    buf_init(&out, 0);
    buf_init(&scratch, 0);
    if (add_bump_cmds(r, &out, &scratch, &all, 1, false, &ncmds) == 0 &&
        buf_reserve(&scratch, r->plen + sizeof(META_RUN_ID)) == 0) {
        const char *argv[3] = {
            "SET", mk_key(r, &scratch, "", META_RUN_ID, strlen(META_RUN_ID), &mlen), run_id};
        size_t lens[3] = {3, mlen, strlen(run_id)};
        if (argv[1] != NULL && add_cmd(&out, 3, argv, lens) == 0 &&
            roundtrip(c, rd, &out, ncmds + 1, rep, rc_mono_ms() + r->command_timeout_ms, err) ==
                0) {
            rc = is_error(rep[0]) ? rc_err(err, "INCR: %s", rep[0]->str) : 0;
            free_replies(rep, ncmds + 1);
        }
    }
    buf_free(&out);
    buf_free(&scratch);
    if (rc == 0)
        log_msg(had_marker ? LOG_WARN : LOG_INFO, "redis_generations_reset",
                "\"server\":\"%s\",\"run_id\":\"%s\",\"reason\":\"%s\"", r->where, run_id,
                had_marker ? "Redis restarted, failed over or was restored: every entry "
                             "written before is invalid"
                           : "no marker yet (a new or flushed Redis)");
    return rc;
}

/* Connect and log in (AUTH; for data connections also SELECT and the
 * restart check). CONFIG failures are the ones to fix in the settings. */
static int conn_open(struct redis *r, bool data, struct rconn **cp, redisReader **rdp,
                     enum rconn_fail *why, char *err)
{
    char e[RC_ERRBUF], run_id[RUN_ID_MAX], db[16];
    char mkey[REDIS_KEY_PREFIX_MAX + sizeof(META_RUN_ID)]; /* plen <= REDIS_KEY_PREFIX_MAX */
    const char *argv[3];
    size_t lens[3], ncmds = 0, auth = SIZE_MAX, sel = SIZE_MAX, info = SIZE_MAX, meta = SIZE_MAX;
    redisReply *rep[4];
    struct rconn *c;
    redisReader *rd;
    buf out;
    bool fmt_failed = false;
    int rc = -1;

    *cp = NULL;
    *rdp = NULL;
    c = rconn_open(&r->url, r->tls, rc_mono_ms() + r->connect_timeout_ms, why, e);
    if (c == NULL)
        return rc_err(err, "%s", e);
    rd = redisReaderCreate();
    if (rd == NULL) {
        rconn_close(c);
        *why = RCONN_TRANSIENT;
        return rc_err(err, "out of memory");
    }
    buf_init(&out, 0);
    if (r->url.has_password) {
        int n = 0;
        argv[n] = "AUTH";
        lens[n++] = 4;
        if (r->url.user[0] != '\0') {
            argv[n] = r->url.user;
            lens[n++] = strlen(r->url.user);
        }
        argv[n] = r->url.password;
        lens[n++] = strlen(r->url.password);
        auth = ncmds++;
        fmt_failed |= add_cmd(&out, n, argv, lens) < 0;
    }
    if (data && r->url.db != 0) {
        snprintf(db, sizeof(db), "%d", r->url.db);
        argv[0] = "SELECT";
        argv[1] = db;
        lens[0] = 6;
        lens[1] = strlen(db);
        sel = ncmds++;
        fmt_failed |= add_cmd(&out, 2, argv, lens) < 0;
    }
    /* Every connection asks something, so a server that wants a password
     * we did not give says so here (NOAUTH) rather than on first use. */
    argv[0] = "INFO";
    argv[1] = "server";
    lens[0] = 4;
    lens[1] = 6;
    info = ncmds++;
    fmt_failed |= add_cmd(&out, 2, argv, lens) < 0;
    if (data) {
        snprintf(mkey, sizeof(mkey), "%s%s", r->prefix, META_RUN_ID);
        argv[0] = "GET";
        argv[1] = mkey;
        lens[0] = 3;
        lens[1] = strlen(mkey);
        meta = ncmds++;
        fmt_failed |= add_cmd(&out, 2, argv, lens) < 0;
    }
    *why = RCONN_TRANSIENT;
    if (fmt_failed) {
        rc_err(err, "out of memory");
        goto out;
    }
    int64_t deadline = rc_mono_ms() + r->command_timeout_ms;
    if (roundtrip(c, rd, &out, ncmds, rep, deadline, e) < 0) {
        /* A TLS server that rejects us after the handshake (TLS 1.3 checks
         * the client certificate then) sends an alert, or resets the
         * connection before we read it: rconn_tls_failed() says so, and it
         * is a setting. A close or a timeout is not (a proxy whose Redis is
         * not up yet). */
        if (rconn_tls_failed(c)) {
            *why = RCONN_CONFIG;
            rc_err(err,
                   "%s: %s (the TLS server refused the session: does it require a client "
                   "certificate? see REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE)",
                   r->where, e);
        } else {
            rc_err(err, "%s: %s", r->where, e);
        }
        goto out;
    }
    if (auth != SIZE_MAX && is_error(rep[auth])) {
        *why = RCONN_CONFIG;
        rc_err(err, "%s: AUTH%s%s failed: %s", r->where, r->url.user[0] ? " as " : "", r->url.user,
               rep[auth]->str);
    } else if (sel != SIZE_MAX && is_error(rep[sel])) {
        *why = RCONN_CONFIG;
        rc_err(err, "%s: SELECT %d failed: %s", r->where, r->url.db, rep[sel]->str);
    } else if (is_error(rep[info]) && strncmp(rep[info]->str, "NOAUTH", 6) == 0) {
        *why = RCONN_CONFIG;
        rc_err(err,
               "%s: the server requires a password; give it in the URL "
               "(redis://[user]:password@host)",
               r->where);
    } else if (is_error(rep[info]) && strncmp(rep[info]->str, "LOADING", 7) == 0) {
        rc_err(err, "%s: %s", r->where, rep[info]->str);
    } else if (meta != SIZE_MAX && info_run_id(rep[info], run_id) &&
               (rep[meta]->type == REDIS_REPLY_NIL ||
                (rep[meta]->type == REDIS_REPLY_STRING && strcmp(rep[meta]->str, run_id) != 0))) {
        rc = reset_generations(r, c, rd, run_id, rep[meta]->type != REDIS_REPLY_NIL, e);
        if (rc < 0)
            rc_err(err, "%s: %s", r->where, e);
    } else {
        rc = 0;
    }
    free_replies(rep, ncmds);
out:
    buf_free(&out);
    if (rc < 0) {
        redisReaderFree(rd);
        rconn_close(c);
        return -1;
    }
    *cp = c;
    *rdp = rd;
    return 0;
}

static void thread_disconnect(struct rthread *t)
{
    rconn_close(t->conn);
    t->conn = NULL;
    if (t->reader != NULL)
        redisReaderFree(t->reader);
    t->reader = NULL;
}

static void thread_state_free(void *p)
{
    struct rthread *t = p;
    struct redis *r;

    if (t == NULL)
        return;
    r = t->r;
    pthread_mutex_lock(&r->reg_lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        r->threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&r->reg_lock);
    thread_disconnect(t);
    buf_free(&t->out);
    buf_free(&t->scratch);
    free(t);
}

static struct rthread *thread_state(struct redis *r)
{
    struct rthread *t = pthread_getspecific(r->key);
    if (t != NULL)
        return t;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->r = r;
    buf_init(&t->out, 0);
    buf_init(&t->scratch, 0);
    if (pthread_setspecific(r->key, t) != 0) {
        free(t);
        return NULL;
    }
    pthread_mutex_lock(&r->reg_lock);
    t->next = r->threads;
    if (r->threads)
        r->threads->prev = t;
    r->threads = t;
    pthread_mutex_unlock(&r->reg_lock);
    return t;
}

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
    argv[3] = mk_key(r, scratch, "lock:", key, klen, &lens[3]);
    return argv[3] != NULL ? add_cmd(out, 5, argv, lens) : -1;
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
static void unlocks_flush(struct redis *r, struct rthread *t, int64_t deadline)
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
    bool sent = ok == n && roundtrip(t->conn, t->reader, &out, n, rep, deadline, err) == 0;
    if (sent)
        free_replies(rep, n);
    else
        thread_disconnect(t);
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

/* ---- running an operation ---------------------------------------------- */

/* The calling thread's state with an empty command buffer, or NULL when
 * the operation must fail at once (breaker open, out of memory). */
static struct rthread *op_begin(struct redis *r, enum breaker_admit *how)
{
    struct rthread *t = thread_state(r);
    *how = BREAKER_REJECT;
    if (t != NULL) {
        t->sent = false;
        *how = breaker_admit(&r->breaker, rc_mono_ms());
    }
    if (*how == BREAKER_REJECT) {
        stat_add(&r->errors, 1);
        return NULL;
    }
    buf_reset(&t->out);
    buf_reset(&t->scratch);
    return t;
}

static void breaker_log(struct redis *r, int changed, const char *err)
{
    char e[RC_ERRBUF * 2];
    if (changed == BREAKER_OPEN)
        log_msg(LOG_WARN, "redis_breaker_open",
                "\"server\":\"%s\",\"open_ms\":%" PRId64 ",\"error\":\"%s\"", r->where,
                r->breaker.open_ms, log_escape(err, e, sizeof(e)));
    else if (changed == BREAKER_CLOSED)
        log_msg(LOG_INFO, "redis_breaker_closed", "\"server\":\"%s\"", r->where);
}

/* The operation's buffers are done with. One that grew them past
 * BUF_KEEP (a multi-MB SET) gives the memory back, so no thread keeps its
 * largest command forever. */
static void op_end(struct rthread *t)
{
    if (t->out.alloc > BUF_KEEP) {
        buf_free(&t->out);
        buf_init(&t->out, 0);
    }
    if (t->scratch.alloc > BUF_KEEP) {
        buf_free(&t->scratch);
        buf_init(&t->scratch, 0);
    }
}

/* An admitted operation failed before anything was sent (out of memory):
 * it says nothing about Redis. A GO owes the breaker no report (breaker.c
 * counts no GOs in flight, and a success would clear its failure count); a
 * probe must end, and ends as a failure, so the breaker never closes on a
 * Redis nobody talked to. */
static void op_abort(struct redis *r, struct rthread *t, enum breaker_admit how)
{
    if (how == BREAKER_PROBE)
        breaker_log(r, breaker_report(&r->breaker, how, false, rc_mono_ms()),
                    "out of memory before the probe");
    stat_add(&r->errors, 1);
    op_end(t);
}

/* Did the calling thread's last operation send its commands (they may
 * have run even though it failed)? */
static bool op_sent(struct redis *r)
{
    struct rthread *t = pthread_getspecific(r->key);
    return t != NULL && t->sent;
}

/* Run the ncmds commands of t->out: connect if needed, replay pending
 * bumps, one round trip; retry once on a fresh connection when a reused
 * one failed before the deadline. Reports to the breaker. 0 or -1 (the
 * op is not done: errors counted and logged). */
static int op_run(struct redis *r, struct rthread *t, enum breaker_admit how, size_t ncmds,
                  redisReply **rep, const char *what)
{
    char err[RC_ERRBUF] = "";
    int rc = -1;

    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = t->conn != NULL;
        enum rconn_fail why;
        if (!reused && conn_open(r, true, &t->conn, &t->reader, &why, err) < 0)
            break;
        int64_t deadline = rc_mono_ms() + r->command_timeout_ms;
        if (pending_flush(r, t, deadline, err) == 0) {
            t->sent = true;
            if (roundtrip(t->conn, t->reader, &t->out, ncmds, rep, deadline, err) == 0) {
                rc = 0;
                break;
            }
        }
        thread_disconnect(t);
        if (!reused || rc_mono_ms() >= deadline)
            break;
    }
    int changed = breaker_report(&r->breaker, how, rc == 0, rc_mono_ms());
    op_end(t);
    if (rc == 0)
        unlocks_flush(r, t, rc_mono_ms() + r->command_timeout_ms);
    if (rc < 0) {
        stat_add(&r->errors, 1);
        log_error("redis_error", what, err);
    }
    if (changed >= 0)
        breaker_log(r, changed, err);
    return rc;
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
    if (ntags + 1 > ARGV_MAX || (t = op_begin(r, &how)) == NULL) {
        if (ntags + 1 > ARGV_MAX)
            stat_add(&r->errors, 1);
        return -1;
    }
    if (buf_reserve(&t->scratch, r->plen + 2 + klen + tags_room(r, tags, ntags)) < 0)
        goto oom;
    argv[0] = "GET";
    lens[0] = 3;
    argv[1] = mk_key(r, &t->scratch, "e:", key, klen, &lens[1]);
    if (add_cmd(&t->out, 2, argv, lens) < 0)
        goto oom;
    if (ntags > 0) {
        argv[0] = "MGET";
        lens[0] = 4;
        for (size_t i = 0; i < ntags; i++)
            argv[i + 1] = mk_key(r, &t->scratch, "tag:", tags[i].s, tags[i].len, &lens[i + 1]);
        if (add_cmd(&t->out, (int)ntags + 1, argv, lens) < 0)
            goto oom;
        ncmds = 2;
    }
    if (op_run(r, t, how, ncmds, rep, "get") < 0)
        return -1;
    if (ntags > 0 && parse_gens(rep[1], ntags, gens) < 0) {
        /* A tag key holds something INCR never wrote: nothing recorded
         * against it can be trusted, and nothing may be stored. */
        stat_add(&r->errors, 1);
        log_error("redis_bad_generation", "get", is_error(rep[1]) ? rep[1]->str : "not a number");
        free_replies(rep, ncmds);
        return -1;
    }
    if (ncmds == 2)
        free_replies(&rep[1], 1);
    if (rep[0]->type == REDIS_REPLY_NIL) {
        free_replies(rep, 1);
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
        free_replies(rep, 1);
        return 0;
    }
    stat_add(&r->hits, 1);
    val->data = (const uint8_t *)rep[0]->str;
    val->len = rep[0]->len;
    val->ref = rep[0];
    return 1;
oom:
    op_abort(r, t, how);
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

/* One command of argc arguments whose argv[keyarg] is a key to prefix
 * with ns; reply in *rep. */
static int simple_op(struct redis *r, const char *what, int argc, const char **argv, size_t *lens,
                     int keyarg, const char *ns, redisReply **rep)
{
    enum breaker_admit how;
    struct rthread *t = op_begin(r, &how);

    if (t == NULL)
        return -1;
    if (keyarg >= 0) {
        if (buf_reserve(&t->scratch, r->plen + strlen(ns) + lens[keyarg]) < 0)
            goto oom;
        argv[keyarg] = mk_key(r, &t->scratch, ns, argv[keyarg], lens[keyarg], &lens[keyarg]);
    }
    if (add_cmd(&t->out, argc, argv, lens) < 0)
        goto oom;
    return op_run(r, t, how, 1, rep, what);
oom:
    op_abort(r, t, how);
    return -1;
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
    if (simple_op(r, "set", 5, argv, lens, 1, "e:", &rep) < 0)
        return -1;
    int rc = str_is(rep, "OK") ? 0 : -1;
    if (rc < 0) {
        stat_add(&r->errors, 1);
        log_error("redis_refused", "set", is_error(rep) ? rep->str : "unexpected reply");
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

    if (simple_op(r, "del", 2, argv, lens, 1, "e:", &rep) < 0)
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
    if (ntags + 1 > ARGV_MAX || (t = op_begin(r, &how)) == NULL)
        return -1;
    if (buf_reserve(&t->scratch, tags_room(r, tags, ntags)) < 0)
        goto oom;
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < ntags; i++)
        argv[i + 1] = mk_key(r, &t->scratch, "tag:", tags[i].s, tags[i].len, &lens[i + 1]);
    if (add_cmd(&t->out, (int)ntags + 1, argv, lens) < 0)
        goto oom;
    if (op_run(r, t, how, 1, &rep, "tag_gens") < 0)
        return -1;
    int rc = parse_gens(rep, ntags, gens);
    if (rc < 0)
        stat_add(&r->errors, 1);
    freeReplyObject(rep);
    return rc;
oom:
    op_abort(r, t, how);
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
    if (ntags > ARGV_MAX || (t = op_begin(r, &how)) == NULL) { /* bump_all splits */
        pending_add(r->pending, tags, ntags);
        return -1;
    }
    if (add_bump_cmds(r, &t->out, &t->scratch, tags, ntags, soft, &ncmds) < 0) {
        op_abort(r, t, how);
        pending_add(r->pending, tags, ntags);
        return -1;
    }
    if (op_run(r, t, how, ncmds, rep, soft ? "bump_tags_soft" : "bump_tags") < 0) {
        pending_add(r->pending, tags, ntags);
        return -1;
    }
    for (size_t i = 0; i < ntags; i++) {
        if (rep[i]->type != REDIS_REPLY_INTEGER) {
            /* Not a counter (something else wrote the key): retrying
             * cannot help; the handler reports the failure. */
            log_error("redis_refused", "INCR", is_error(rep[i]) ? rep[i]->str : "not an integer");
            stat_add(&r->errors, 1);
            rc = -1;
        }
    }
    free_replies(rep, ncmds);
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

    if ((t = op_begin(r, &how)) == NULL) {
        pending_add(r->pending, tags, ntags);
        return -1;
    }
    for (size_t i = 0; i < ntags; i += ONCE_TAGS, ncmds++) {
        chunk[ncmds] = ntags - i < ONCE_TAGS ? ntags - i : ONCE_TAGS;
        if (add_once_cmd(r, &t->out, &t->scratch, tags + i, chunk[ncmds], token) < 0) {
            op_abort(r, t, how);
            pending_add(r->pending, tags, ntags);
            return -1;
        }
    }
    if (op_run(r, t, how, ncmds, rep, "bump_tags_once") < 0) {
        pending_add(r->pending, tags, ntags);
        return -1;
    }
    for (size_t c = 0, at = 0; c < ncmds; at += chunk[c], c++) {
        if (rep[c]->type == REDIS_REPLY_INTEGER && rep[c]->integer >= 0 &&
            (size_t)rep[c]->integer <= chunk[c]) {
            left += (int)(chunk[c] - (size_t)rep[c]->integer);
            continue;
        }
        log_error("redis_refused", "EVAL", is_error(rep[c]) ? rep[c]->str : "not a count");
        stat_add(&r->errors, 1);
        if (bump_all(r, tags + at, chunk[c], false) < 0)
            rc = -1;
    }
    free_replies(rep, ncmds);
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

    if (simple_op(r, "purge", 6, argv, lens, -1, "", &rep) < 0)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= cursz ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
        log_error("redis_refused", "SCAN", is_error(rep) ? rep->str : "unexpected reply");
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
        if (simple_op(r, "purge", (int)n + 1, kv, kl, -1, "", &del) == 0 &&
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
            if (simple_op(r, "purge", 3, argv, lens, -1, "", &rep) == 0)
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
    struct rthread *t = op_begin(r, &how);
    const char *a1[1] = {"DBSIZE"}, *a2[2] = {"INFO", "memory"};
    size_t l1[1] = {6}, l2[2] = {4, 6};
    redisReply *rep[2];

    if (t == NULL)
        return;
    if (add_cmd(&t->out, 1, a1, l1) < 0 || add_cmd(&t->out, 2, a2, l2) < 0) {
        op_abort(r, t, how);
        return;
    }
    if (op_run(r, t, how, 2, rep, "stats") < 0)
        return;
    if (rep[0]->type == REDIS_REPLY_INTEGER && rep[0]->integer >= 0)
        atomic_store(&r->keys, (uint64_t)rep[0]->integer);
    atomic_store(&r->bytes, info_field(rep[1], "used_memory"));
    atomic_store(&r->max_bytes, info_field(rep[1], "maxmemory"));
    free_replies(rep, 2);
}

/* SET prefix "lock:" key token NX PX ttl: 1 taken, 0 held by another.
 * simple_op() prefixes argv[1] in place. */
static int rd_lock(void *self, const char *key, size_t klen, uint64_t token, int64_t ttl_ms)
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
    if (simple_op(r, "lock", 6, argv, lens, 1, "lock:", &rep) < 0) {
        /* A SET that was sent (then timed out or lost its connection) may
         * still run when Redis catches up: take it back then, or it would
         * hold other instances' misses. One never sent holds nothing. */
        if (op_sent(r))
            unlock_later(r, key, klen, token);
        return -1;
    }
    rc = str_is(rep, "OK") ? 1 : rep->type == REDIS_REPLY_NIL ? 0 : -1;
    freeReplyObject(rep);
    return rc;
}

/* Delete the lock only while token still holds it (atomic in Lua). A
 * release that cannot reach Redis is retried once Redis answers. */
static int rd_unlock(void *self, const char *key, size_t klen, uint64_t token)
{
    struct redis *r = self;
    enum breaker_admit how;
    struct rthread *t = op_begin(r, &how);
    redisReply *rep;
    int rc;

    if (t == NULL) {
        unlock_later(r, key, klen, token);
        return -1;
    }
    if (add_unlock_cmd(r, &t->out, &t->scratch, key, klen, token) < 0) {
        op_abort(r, t, how);
        return -1;
    }
    if (op_run(r, t, how, 1, &rep, "unlock") < 0) {
        unlock_later(r, key, klen, token);
        return -1;
    }
    rc = rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
    freeReplyObject(rep);
    return rc;
}

static int rd_ping(void *self)
{
    struct redis *r = self;
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    redisReply *rep;

    if (simple_op(r, "ping", 1, argv, lens, -1, "", &rep) < 0)
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
        thread_state_free(r->threads);
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
    .lock = rd_lock,
    .unlock = rd_unlock,
};

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
    if (conn_open(r, false, &l->conn, &l->reader, &why, err) < 0) {
        free(l);
        return NULL;
    }
    buf_init(&out, 0);
    rc = add_cmd(&out, 2, argv, lens) < 0 ? rc_err(err, "out of memory")
                                          : roundtrip(l->conn, l->reader, &out, 1, &rep,
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
    r->pending = pending_create(PENDING_MAX);
    if (breaker_init(&r->breaker, o->breaker_failures, o->breaker_open_ms,
                     (int64_t)o->connect_timeout_ms + 3 * (int64_t)o->command_timeout_ms + 1000) <
            0 ||
        r->pending == NULL || pthread_key_create(&r->key, thread_state_free) != 0) {
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
    t = thread_state(r);
    if (t != NULL && conn_open(r, true, &t->conn, &t->reader, &why, err) < 0) {
        if (why == RCONN_CONFIG) {
            rc_err(errbuf, "redis: %s", err);
            cache_free(c);
            return NULL;
        }
        breaker_report(&r->breaker, BREAKER_GO, false, rc_mono_ms());
        log_error("redis_unavailable_at_start", "connect", err);
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
