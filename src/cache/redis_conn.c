/*
 * redis_conn.c - the Redis provider's plumbing (redis_int.h): RESP over
 * our own transport (rconn.c), keys, one connection per thread, and
 * running an operation.
 *
 * Connections. One per thread that uses the provider (a pthread key per
 * provider), connected lazily, logged in (AUTH, SELECT) and checked for a
 * Redis restart before its first use. Every operation is one pipelined
 * round trip bounded by the command timeout (redis_op_run). A
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
 *    a bounded pending list (REDIS_PENDING_MAX distinct tags; beyond that, one
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
 */
#include "redis_int.h"

#include "../log.h"
#include "redis_msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_REPLY_BYTES ((size_t)80 << 20) /* above any entry the handler stores */
#define RUN_ID_MAX      64
#define META_RUN_ID     "meta:run_id"
#define BUF_KEEP        ((size_t)1 << 20) /* scratch a thread keeps between operations */

void redis_log_error(const char *event, const char *what, const char *err)
{
    char e[RC_ERRBUF * 2];
    log_msg(LOG_WARN, event, "\"op\":\"%s\",\"error\":\"%s\"", what, log_escape(err, e, sizeof(e)));
}

/* ---- RESP over rconn ------------------------------------------------------ */

void redis_free_replies(redisReply **rep, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rep[i] != NULL)
            freeReplyObject(rep[i]);
        rep[i] = NULL;
    }
}

/* Write the n commands in out, read their n replies. 0, or -1 with every
 * reply freed (the connection is then in an unknown state: close it). */
int redis_roundtrip(struct rconn *c, redisReader *rd, const buf *out, size_t n, redisReply **rep,
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
    redis_free_replies(rep, got);
    return -1;
}

/* ---- keys and messages ----------------------------------------------------- */

/* Append prefix + ns + s to scratch (room reserved by the caller, so
 * earlier pointers stay valid) and return where it starts. */
const char *redis_mk_key(struct redis *r, buf *scratch, const char *ns, const char *s, size_t n,
                         size_t *len)
{
    size_t at = scratch->len, nl = strlen(ns);
    if (buf_append(scratch, r->prefix, r->plen) < 0 || buf_append(scratch, ns, nl) < 0 ||
        buf_append(scratch, s, n) < 0)
        return NULL;
    *len = r->plen + nl + n;
    return scratch->data + at;
}

size_t redis_tags_room(struct redis *r, const struct rc_str *tags, size_t ntags)
{
    size_t n = 0;
    for (size_t i = 0; i < ntags; i++)
        n += r->plen + 4 + tags[i].len;
    return n;
}

/* Commands INCR per tag, then PUBLISH when publishing, into out. */
int redis_add_bump_cmds(struct redis *r, buf *out, buf *scratch, const struct rc_str *tags,
                        size_t ntags, bool soft, size_t *ncmds)
{
    char unit[24];
    int ulen = snprintf(unit, sizeof(unit), "%" PRIu64, CACHE_GEN_SOFT_UNIT);
    buf msg;
    int rc = 0;

    if (buf_reserve(scratch, redis_tags_room(r, tags, ntags)) < 0)
        return -1;
    for (size_t i = 0; i < ntags && rc == 0; i++) {
        const char *argv[3] = {soft ? "INCRBY" : "INCR", NULL, unit};
        size_t lens[3] = {soft ? 6 : 4, 0, (size_t)ulen};
        argv[1] = redis_mk_key(r, scratch, "tag:", tags[i].s, tags[i].len, &lens[1]);
        rc = argv[1] != NULL ? resp_command(out, soft ? 3 : 2, argv, lens) : -1;
        (*ncmds)++;
    }
    if (rc == 0 && r->publish) {
        buf_init(&msg, 0);
        rc = redis_msg_bump(&msg, tags, ntags);
        if (rc == 0) {
            const char *argv[3] = {"PUBLISH", r->channel, msg.data};
            size_t lens[3] = {7, r->chlen, msg.len};
            rc = resp_command(out, 3, argv, lens);
            (*ncmds)++;
        }
        buf_free(&msg);
    }
    return rc;
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
    if (rep == NULL || redis_add_bump_cmds(r, &out, &scratch, tags, n, false, &ncmds) < 0) {
        rc_err(err, "out of memory");
    } else if (redis_roundtrip(t->conn, t->reader, &out, ncmds, rep, deadline, err) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (rep[i]->type != REDIS_REPLY_INTEGER)
                redis_log_error("redis_refused", "INCR", is_error(rep[i]) ? rep[i]->str : "?");
        }
        redis_free_replies(rep, ncmds);
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
    if (redis_add_bump_cmds(r, &out, &scratch, &all, 1, false, &ncmds) == 0 &&
        buf_reserve(&scratch, r->plen + sizeof(META_RUN_ID)) == 0) {
        const char *argv[3] = {
            "SET", redis_mk_key(r, &scratch, "", META_RUN_ID, strlen(META_RUN_ID), &mlen), run_id};
        size_t lens[3] = {3, mlen, strlen(run_id)};
        if (argv[1] != NULL && resp_command(&out, 3, argv, lens) == 0 &&
            redis_roundtrip(c, rd, &out, ncmds + 1, rep, rc_mono_ms() + r->command_timeout_ms,
                            err) == 0) {
            rc = is_error(rep[0]) ? rc_err(err, "INCR: %s", rep[0]->str) : 0;
            redis_free_replies(rep, ncmds + 1);
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
int redis_conn_open(struct redis *r, bool data, struct rconn **cp, redisReader **rdp,
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
        fmt_failed |= resp_command(&out, n, argv, lens) < 0;
    }
    if (data && r->url.db != 0) {
        snprintf(db, sizeof(db), "%d", r->url.db);
        argv[0] = "SELECT";
        argv[1] = db;
        lens[0] = 6;
        lens[1] = strlen(db);
        sel = ncmds++;
        fmt_failed |= resp_command(&out, 2, argv, lens) < 0;
    }
    /* Every connection asks something, so a server that wants a password
     * we did not give says so here (NOAUTH) rather than on first use. */
    argv[0] = "INFO";
    argv[1] = "server";
    lens[0] = 4;
    lens[1] = 6;
    info = ncmds++;
    fmt_failed |= resp_command(&out, 2, argv, lens) < 0;
    if (data) {
        snprintf(mkey, sizeof(mkey), "%s%s", r->prefix, META_RUN_ID);
        argv[0] = "GET";
        argv[1] = mkey;
        lens[0] = 3;
        lens[1] = strlen(mkey);
        meta = ncmds++;
        fmt_failed |= resp_command(&out, 2, argv, lens) < 0;
    }
    *why = RCONN_TRANSIENT;
    if (fmt_failed) {
        rc_err(err, "out of memory");
        goto out;
    }
    int64_t deadline = rc_mono_ms() + r->command_timeout_ms;
    if (redis_roundtrip(c, rd, &out, ncmds, rep, deadline, e) < 0) {
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
    redis_free_replies(rep, ncmds);
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

void redis_thread_disconnect(struct rthread *t)
{
    rconn_close(t->conn);
    t->conn = NULL;
    if (t->reader != NULL)
        redisReaderFree(t->reader);
    t->reader = NULL;
}

void redis_thread_state_free(void *p)
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
    redis_thread_disconnect(t);
    buf_free(&t->out);
    buf_free(&t->scratch);
    free(t);
}

struct rthread *redis_thread_state(struct redis *r)
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

/* ---- running an operation ---------------------------------------------- */

/* The calling thread's state with an empty command buffer, or NULL when
 * the operation must fail at once (breaker open, out of memory). */
struct rthread *redis_op_begin(struct redis *r, enum breaker_admit *how)
{
    struct rthread *t = redis_thread_state(r);
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
void redis_op_abort(struct redis *r, struct rthread *t, enum breaker_admit how)
{
    if (how == BREAKER_PROBE)
        breaker_log(r, breaker_report(&r->breaker, how, false, rc_mono_ms()),
                    "out of memory before the probe");
    stat_add(&r->errors, 1);
    op_end(t);
}

/* Did the calling thread's last operation send its commands (they may
 * have run even though it failed)? */
bool redis_op_sent(struct redis *r)
{
    struct rthread *t = pthread_getspecific(r->key);
    return t != NULL && t->sent;
}

/* Run the ncmds commands of t->out: connect if needed, replay pending
 * bumps, one round trip; retry once on a fresh connection when a reused
 * one failed before the deadline. Reports to the breaker. 0 or -1 (the
 * op is not done: errors counted and logged). */
int redis_op_run(struct redis *r, struct rthread *t, enum breaker_admit how, size_t ncmds,
                 redisReply **rep, const char *what)
{
    char err[RC_ERRBUF] = "";
    int rc = -1;

    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = t->conn != NULL;
        enum rconn_fail why;
        if (!reused && redis_conn_open(r, true, &t->conn, &t->reader, &why, err) < 0)
            break;
        int64_t deadline = rc_mono_ms() + r->command_timeout_ms;
        if (pending_flush(r, t, deadline, err) == 0) {
            t->sent = true;
            if (redis_roundtrip(t->conn, t->reader, &t->out, ncmds, rep, deadline, err) == 0) {
                rc = 0;
                break;
            }
        }
        redis_thread_disconnect(t);
        if (!reused || rc_mono_ms() >= deadline)
            break;
    }
    int changed = breaker_report(&r->breaker, how, rc == 0, rc_mono_ms());
    op_end(t);
    if (rc == 0)
        redis_unlocks_flush(r, t, rc_mono_ms() + r->command_timeout_ms);
    if (rc < 0) {
        stat_add(&r->errors, 1);
        redis_log_error("redis_error", what, err);
    }
    if (changed >= 0)
        breaker_log(r, changed, err);
    return rc;
}

/* One command of argc arguments whose argv[keyarg] is a key to prefix
 * with ns; reply in *rep. */
int redis_simple_op(struct redis *r, const char *what, int argc, const char **argv, size_t *lens,
                    int keyarg, const char *ns, redisReply **rep)
{
    enum breaker_admit how;
    struct rthread *t = redis_op_begin(r, &how);

    if (t == NULL)
        return -1;
    if (keyarg >= 0) {
        if (buf_reserve(&t->scratch, r->plen + strlen(ns) + lens[keyarg]) < 0)
            goto oom;
        argv[keyarg] = redis_mk_key(r, &t->scratch, ns, argv[keyarg], lens[keyarg], &lens[keyarg]);
    }
    if (resp_command(&t->out, argc, argv, lens) < 0)
        goto oom;
    return redis_op_run(r, t, how, 1, rep, what);
oom:
    redis_op_abort(r, t, how);
    return -1;
}
