/*
 * db.c - libpq behind the db.h contract. The only file that includes
 * libpq-fe.h.
 *
 * Queries use the asynchronous API (PQsendQueryPrepared + poll) so that the
 * client enforces its own deadline: statement_timeout only helps while the
 * server is alive; a stopped or partitioned server would otherwise block
 * PQexec forever. A connection that missed its deadline is in an unknown
 * protocol state and is simply closed.
 *
 * The LISTEN connection (db_listen_*) is separate from the workers': it
 * runs LISTEN once (bounded, like every statement here), then only waits
 * for notifications, and reports its loss so that the caller can treat
 * what it may have missed as unknown.
 */
#include "db.h"

#include "log.h"
#include "resolve.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* After a failed connect, fail fast for this long before trying again. */
#define DB_RETRY_BACKOFF_MS 250

struct db_conn {
    const struct rc_config *cfg;
    PGconn *pg;
    bool *prepared; /* per route index */
    int64_t retry_after_ms;
    bool timed_out;  /* the last connection was dropped at its deadline */
    bool listen_own; /* LISTEN on the notify channel at connect (db_listen_own) */
    bool listening;  /* this session LISTENs there */
};

struct db_result {
    PGresult *res;
    size_t rows;
};

struct db_conn *db_conn_open(const struct rc_config *cfg)
{
    struct db_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->cfg = cfg;
    c->prepared = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(bool));
    if (c->prepared == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static void drop_connection(struct db_conn *c)
{
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->listening = false;
    memset(c->prepared, 0, (c->cfg->nroutes ? c->cfg->nroutes : 1) * sizeof(bool));
}

void db_conn_close(struct db_conn *c)
{
    if (c == NULL)
        return;
    drop_connection(c);
    free(c->prepared);
    free(c);
}

/* Wait until the socket is ready or the deadline passes. 0, or -1. */
static int wait_socket(PGconn *pg, bool for_write, int64_t deadline)
{
    struct pollfd pfd = {.fd = PQsocket(pg), .events = for_write ? POLLOUT : POLLIN};
    for (;;) {
        int64_t left = deadline - rc_mono_ms();
        if (left <= 0)
            return -1;
        int n = poll(&pfd, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* DATABASE_URL's host, resolved within the connect timeout when it is a
 * DNS name and no hostaddr is given (rc_resolve_pin): 1 with hosts and addrs
 * set, 0 when libpq is left to it, -1 with err set. */
static int pin_host(const struct rc_config *cfg, char *hosts, size_t hsz, char *addrs, size_t asz,
                    char *err)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->database_url, &perr);
    const char *host = NULL, *hostaddr = NULL;
    int rc = 0;

    if (opts == NULL) { /* libpq says what is wrong when it connects */
        PQfreemem(perr);
        return 0;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
    }
    if (host != NULL && (hostaddr == NULL || hostaddr[0] == '\0'))
        rc = rc_resolve_pin(host, rc_mono_ms() + cfg->db_connect_timeout_ms, hosts, hsz, addrs, asz,
                            err);
    PQconninfoFree(opts);
    return rc;
}

/* A new connection with our session settings (NULL on failure, logged as
 * `event`), bounded by the connect timeout, name resolution included. */
static PGconn *open_pg(const struct rc_config *cfg, const char *app, const char *event)
{
    char timeout[16], options[160];
    PGconn *pg;

    /* libpq counts connect_timeout in whole seconds (minimum 2). */
    snprintf(timeout, sizeof(timeout), "%d", (cfg->db_connect_timeout_ms + 999) / 1000);
    snprintf(options, sizeof(options),
             "-c statement_timeout=%d -c TimeZone=UTC -c DateStyle=ISO -c client_encoding=UTF8",
             cfg->db_statement_timeout_ms);
    /* Two more for host and hostaddr, and the NULL that ends them. */
    const char *keys[9] = {"dbname",     "connect_timeout", "options",
                           "keepalives", "keepalives_idle", "application_name"};
    const char *vals[9] = {cfg->database_url, timeout, options, "1", "30", app};
    char hosts[RESOLVE_PIN_MAX * 256], addrs[RESOLVE_PIN_MAX * 48], err[RC_ERRBUF];

    /* libpq resolves a host name itself, for as long as resolv.conf allows
     * (its connect_timeout starts after). Resolve it here within the
     * connect timeout and hand libpq the addresses; host stays, for TLS
     * verification, .pgpass and messages. */
    switch (pin_host(cfg, hosts, sizeof(hosts), addrs, sizeof(addrs), err)) {
    case 1:
        keys[6] = "host";
        vals[6] = hosts;
        keys[7] = "hostaddr";
        vals[7] = addrs;
        break;
    case -1:
        log_msg(LOG_ERROR, event, "\"error\":\"%s\"", log_escape(err, hosts, sizeof(hosts)));
        return NULL;
    default:
        break;
    }
    pg = PQconnectdbParams(keys, vals, 1);
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        char msg[256];
        log_msg(LOG_ERROR, event, "\"error\":\"%s\"",
                log_escape(pg ? PQerrorMessage(pg) : "out of memory", msg, sizeof(msg)));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static PGresult *result_of(struct db_conn *c, int sent, int64_t deadline, char *errbuf);
static enum db_status classify(PGresult *res, char *errbuf);

/* Free the notifications queued on the connection: another session's
 * (this one LISTENs only to hear its own), or an earlier statement's. */
static void discard_notifies(struct db_conn *c)
{
    PGnotify *n;

    while ((n = PQnotifies(c->pg)) != NULL)
        PQfreemem(n);
}

/* LISTEN on the notify channel, once per session (at connect), so that a
 * write hears its own transaction's notifications with its result
 * (db_own_notifies). A failure other than a lost connection only costs a
 * second bump by the listener: logged, and the session goes on without. */
static enum db_status listen_self(struct db_conn *c, int64_t deadline, char *errbuf)
{
    char sql[96];
    PGresult *res;

    snprintf(sql, sizeof(sql), "LISTEN %s", c->cfg->db_notify_channel);
    if ((res = result_of(c, PQsendQuery(c->pg, sql), deadline, errbuf)) == NULL)
        return DB_UNAVAILABLE;
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        c->listening = true;
    else
        (void)classify(res, errbuf);
    PQclear(res);
    return DB_OK;
}

static int connect_db(struct db_conn *c, char *errbuf)
{
    int64_t now = rc_mono_ms();

    if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK)
        return 0;
    drop_connection(c);
    if (now < c->retry_after_ms)
        return rc_err(errbuf, "the database is unavailable");
    c->pg = open_pg(c->cfg, "respcache", "db_connect_failed");
    if (c->pg == NULL) {
        c->retry_after_ms = now + DB_RETRY_BACKOFF_MS;
        return rc_err(errbuf, "the database is unavailable");
    }
    if (PQsetnonblocking(c->pg, 1) != 0) {
        drop_connection(c);
        return rc_err(errbuf, "the database is unavailable");
    }
    if (c->listen_own && c->cfg->db_notify_channel != NULL &&
        listen_self(c, rc_mono_ms() + c->cfg->db_statement_timeout_ms + 1000, errbuf) != DB_OK)
        return -1;
    log_msg(LOG_DEBUG, "db_connected", NULL);
    return 0;
}

/* Send what libpq buffered and read the result of the statement in
 * flight, within the deadline: the first result (the rest are freed), or
 * NULL on a timeout or a broken connection. */
static PGresult *await_result(PGconn *pg, int64_t deadline)
{
    PGresult *res = NULL, *r;

    for (;;) {
        int f = PQflush(pg);
        if (f < 0)
            return NULL;
        if (f == 0)
            break;
        if (wait_socket(pg, true, deadline) < 0)
            return NULL;
    }
    for (;;) {
        while (PQisBusy(pg)) {
            if (wait_socket(pg, false, deadline) < 0 || !PQconsumeInput(pg)) {
                PQclear(res);
                return NULL;
            }
        }
        r = PQgetResult(pg);
        if (r == NULL)
            break;
        if (res == NULL)
            res = r;
        else
            PQclear(r); /* one statement per call: keep the first */
    }
    return res;
}

/* Collect the single result of the query in flight, within the deadline.
 * Returns NULL on timeout or connection loss (the connection is dropped). */
static PGresult *collect(struct db_conn *c, int64_t deadline)
{
    PGresult *res = await_result(c->pg, deadline);

    if (res != NULL)
        return res;
    c->timed_out = rc_mono_ms() >= deadline;
    log_msg(LOG_WARN, "db_connection_dropped", "\"reason\":\"%s\"",
            c->timed_out ? "deadline" : "io");
    drop_connection(c);
    return NULL;
}

/* The result of the statement just handed to libpq (sent: what PQsend*
 * returned), or NULL with errbuf set and the connection dropped. */
static PGresult *result_of(struct db_conn *c, int sent, int64_t deadline, char *errbuf)
{
    PGresult *res = NULL;

    if (!sent)
        drop_connection(c);
    else
        res = collect(c, deadline);
    if (res == NULL)
        rc_err(errbuf, "the database is unavailable");
    return res;
}

static enum db_status classify(PGresult *res, char *errbuf)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    char msg[512];

    if (state == NULL)
        state = "XX000";
    log_msg(LOG_WARN, "db_error", "\"sqlstate\":\"%.5s\",\"error\":\"%s\"", state,
            log_escape(PQresultErrorMessage(res), msg, sizeof(msg)));
    if (strcmp(state, "23505") == 0) {
        rc_err(errbuf, "conflicts with an existing record%s%s%s", constraint ? " (" : "",
               constraint ? constraint : "", constraint ? ")" : "");
        return DB_CONFLICT;
    }
    if (strncmp(state, "23", 2) == 0) {
        rc_err(errbuf, "the values violate a rule of the data%s%s%s", constraint ? " (" : "",
               constraint ? constraint : "", constraint ? ")" : "");
        return DB_INVALID;
    }
    /* Data exceptions caused by the values a client sent: 422. The rest of
     * class 22 (division by zero, ...) is a bug in the route's SQL: 500. */
    static const char *const bad_input[] = {"22001", "22003", "22004", "22007",
                                            "22008", "22021", "22023", "22P02"};
    for (size_t i = 0; i < RC_ARRAY_LEN(bad_input); i++)
        if (strcmp(state, bad_input[i]) == 0) {
            rc_err(errbuf, "a value is out of range or malformed for the database");
            return DB_INVALID;
        }
    /* Timeouts, shutdowns, resource limits, serialization: try again later. */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
        strncmp(state, "57", 2) == 0 || strncmp(state, "40", 2) == 0) {
        rc_err(errbuf, "the database is unavailable");
        return DB_UNAVAILABLE;
    }
    rc_err(errbuf, "the request could not be completed");
    return DB_ERROR;
}

static enum db_status prepare(struct db_conn *c, int index, const struct route *route,
                              int64_t deadline, char *errbuf)
{
    char name[16];
    PGresult *res;
    enum db_status st = DB_OK;

    snprintf(name, sizeof(name), "r%d", index);
    res = result_of(c, PQsendPrepare(c->pg, name, route->sql, 0, NULL), deadline, errbuf);
    if (res == NULL)
        return DB_UNAVAILABLE;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        st = classify(res, errbuf);
    else
        c->prepared[index] = true;
    PQclear(res);
    return st;
}

static enum db_status exec_once(struct db_conn *c, int index, const struct route *route,
                                const struct rc_value *values, struct db_result **out, char *errbuf)
{
    const char *params[ROUTER_MAX_PARAMS];
    int lengths[ROUTER_MAX_PARAMS];
    int64_t deadline;
    char name[16];
    PGresult *res;
    enum db_status st;

    if (connect_db(c, errbuf) < 0)
        return DB_UNAVAILABLE;
    deadline = rc_mono_ms() + c->cfg->db_statement_timeout_ms + 1000; /* counted once connected */
    discard_notifies(c);
    if (!c->prepared[index] && (st = prepare(c, index, route, deadline, errbuf)) != DB_OK)
        return st;
    for (size_t i = 0; i < route->nparams && i < ROUTER_MAX_PARAMS; i++) {
        params[i] = values[i].present ? values[i].s : NULL;
        lengths[i] = values[i].present ? (int)values[i].len : 0;
    }
    snprintf(name, sizeof(name), "r%d", index);
    res = result_of(c,
                    PQsendQueryPrepared(c->pg, name, (int)route->nparams, params, lengths, NULL, 0),
                    deadline, errbuf);
    if (res == NULL)
        return DB_UNAVAILABLE;
    switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
        break;
    default: {
        /* Only a statement that vanished (26000: DISCARD ALL by a pooler)
         * needs preparing again; after any other error it still exists on
         * the server and preparing it again would fail with 42P05. */
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && strcmp(state, "26000") == 0)
            c->prepared[index] = false;
        st = classify(res, errbuf);
        PQclear(res);
        return st;
    }
    }
    struct db_result *r = malloc(sizeof(*r));
    if (r == NULL) {
        PQclear(res);
        rc_err(errbuf, "out of memory");
        return DB_ERROR;
    }
    r->res = res;
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        r->rows = (size_t)PQntuples(res);
    else
        r->rows = (size_t)strtoul(PQcmdTuples(res), NULL, 10);
    *out = r;
    return DB_OK;
}

enum db_status db_exec(struct db_conn *c, int index, const struct route *route,
                       const struct rc_value *values, bool idempotent, struct db_result **res,
                       char *errbuf)
{
    bool was_connected = c->pg != NULL;
    enum db_status st;

    c->timed_out = false;
    st = exec_once(c, index, route, values, res, errbuf);
    /* A connection that was open but died (server restart) is worth one
     * immediate retry for reads; a write might have committed, so not. A
     * server that let the deadline pass (frozen, overloaded) would only
     * make the retry wait as long again. */
    if (st == DB_UNAVAILABLE && idempotent && was_connected && c->pg == NULL && !c->timed_out) {
        c->retry_after_ms = 0;
        st = exec_once(c, index, route, values, res, errbuf);
    }
    return st;
}

size_t db_own_notifies(struct db_conn *c, void (*fn)(void *ctx, int pid, const char *payload),
                       void *ctx)
{
    PGnotify *n;
    size_t own = 0;
    int pid;

    if (c->pg == NULL)
        return 0;
    pid = PQbackendPID(c->pg);
    while ((n = PQnotifies(c->pg)) != NULL) {
        if (n->be_pid == pid) {
            fn(ctx, pid, n->extra);
            own++;
        }
        PQfreemem(n);
    }
    return own;
}

void db_listen_own(struct db_conn *c, bool on)
{
    c->listen_own = on;
}

bool db_listening(const struct db_conn *c)
{
    return c->pg != NULL && c->listening;
}

/* Read what the open session was sent, never waiting (libpq's sockets
 * are non-blocking): a session the server closed (idle_session_timeout, a
 * restart) is found and dropped. False when it was. */
static bool still_open(struct db_conn *c, const char *why)
{
    if (PQconsumeInput(c->pg) && PQstatus(c->pg) == CONNECTION_OK)
        return true;
    log_msg(LOG_WARN, "db_connection_dropped", "\"reason\":\"%s\"", why);
    drop_connection(c);
    return false;
}

int db_backend_pid(struct db_conn *c)
{
    char err[RC_ERRBUF];

    /* Replaced before a write is sent on it: a write is never retried. */
    if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK)
        (void)still_open(c, "closed by the server");
    if (connect_db(c, err) < 0) /* exec reports the failure */
        return 0;
    return PQbackendPID(c->pg);
}

void db_idle(struct db_conn *c)
{
    if (c->pg != NULL && c->listening && still_open(c, "idle"))
        discard_notifies(c);
}

static enum db_status ping_once(struct db_conn *c, char *errbuf)
{
    int64_t deadline;
    PGresult *res;
    enum db_status st = DB_OK;

    if (connect_db(c, errbuf) < 0)
        return DB_UNAVAILABLE;
    deadline = rc_mono_ms() + c->cfg->db_connect_timeout_ms; /* counted once connected */
    if ((res = result_of(c, PQsendQuery(c->pg, "SELECT 1"), deadline, errbuf)) == NULL)
        return DB_UNAVAILABLE;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        st = classify(res, errbuf);
    PQclear(res);
    return st;
}

enum db_status db_ping(struct db_conn *c, char *errbuf)
{
    bool was_connected = c->pg != NULL;
    enum db_status st;

    c->timed_out = false;
    st = ping_once(c, errbuf);
    /* Like db_exec: a connection that died with a server restart says
     * nothing about the server now; ask again on a new one. */
    if (st == DB_UNAVAILABLE && was_connected && c->pg == NULL && !c->timed_out) {
        c->retry_after_ms = 0;
        st = ping_once(c, errbuf);
    }
    return st;
}

void db_result_free(struct db_result *r)
{
    if (r == NULL)
        return;
    PQclear(r->res);
    free(r);
}

static const char *v_name(void *ctx, size_t col)
{
    return PQfname(((struct db_result *)ctx)->res, (int)col);
}

static unsigned v_type(void *ctx, size_t col)
{
    return (unsigned)PQftype(((struct db_result *)ctx)->res, (int)col);
}

static const char *v_value(void *ctx, size_t row, size_t col, size_t *len)
{
    PGresult *res = ((struct db_result *)ctx)->res;
    if (PQgetisnull(res, (int)row, (int)col)) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)PQgetlength(res, (int)row, (int)col);
    return PQgetvalue(res, (int)row, (int)col);
}

void db_result_view(struct db_result *r, struct rowjson_result *out)
{
    bool tuples = PQresultStatus(r->res) == PGRES_TUPLES_OK;
    out->ctx = r;
    out->nrows = r->rows;
    out->ncols = tuples ? (size_t)PQnfields(r->res) : 0;
    out->name = v_name;
    out->type_oid = v_type;
    out->value = v_value;
}

const char *db_result_column(void *ctx, const char *name, size_t *len)
{
    struct db_result *r = ctx;
    int col;

    if (PQresultStatus(r->res) != PGRES_TUPLES_OK || PQntuples(r->res) == 0)
        return NULL;
    col = PQfnumber(r->res, name);
    if (col < 0 || PQgetisnull(r->res, 0, col))
        return NULL;
    *len = (size_t)PQgetlength(r->res, 0, col);
    return PQgetvalue(r->res, 0, col);
}

size_t db_result_rows(const struct db_result *r)
{
    return r->rows;
}

/* ---- ad-hoc queries (warm-up) ----------------------------------------------- */

enum db_status db_query(struct db_conn *c, const char *sql, struct db_result **out, char *errbuf)
{
    int64_t deadline;
    PGresult *res;
    struct db_result *r;

    if (connect_db(c, errbuf) < 0)
        return DB_UNAVAILABLE;
    deadline = rc_mono_ms() + c->cfg->db_statement_timeout_ms + 1000; /* counted once connected */
    res =
        result_of(c, PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0), deadline, errbuf);
    if (res == NULL)
        return DB_UNAVAILABLE;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        enum db_status st = DB_ERROR;
        if (PQresultStatus(res) == PGRES_COMMAND_OK)
            rc_err(errbuf, "the statement returned no rows (expected a SELECT)");
        else
            st = classify(res, errbuf);
        PQclear(res);
        return st;
    }
    if ((r = malloc(sizeof(*r))) == NULL) {
        PQclear(res);
        rc_err(errbuf, "out of memory");
        return DB_ERROR;
    }
    r->res = res;
    r->rows = (size_t)PQntuples(res);
    *out = r;
    return DB_OK;
}

const char *db_result_value(const struct db_result *r, size_t row, const char *name, size_t *len)
{
    int col;

    if (PQresultStatus(r->res) != PGRES_TUPLES_OK || row >= r->rows)
        return NULL;
    col = PQfnumber(r->res, name);
    if (col < 0 || PQgetisnull(r->res, (int)row, col))
        return NULL;
    *len = (size_t)PQgetlength(r->res, (int)row, col);
    return PQgetvalue(r->res, (int)row, col);
}

/* ---- LISTEN ------------------------------------------------------------------ */

struct db_listen {
    const struct rc_config *cfg;
    PGconn *pg;
};

struct db_listen *db_listen_open(const struct rc_config *cfg)
{
    struct db_listen *l = calloc(1, sizeof(*l));
    if (l != NULL)
        l->cfg = cfg;
    return l;
}

static void listen_drop(struct db_listen *l)
{
    PQfinish(l->pg);
    l->pg = NULL;
}

void db_listen_close(struct db_listen *l)
{
    if (l == NULL)
        return;
    listen_drop(l);
    free(l);
}

/* Run sql on the listener's (non-blocking) session within deadline. The
 * result, or NULL when the connection broke or the deadline passed. */
static PGresult *listen_exec(struct db_listen *l, const char *sql, int64_t deadline)
{
    if (!PQsendQuery(l->pg, sql))
        return NULL;
    return await_result(l->pg, deadline);
}

int db_listen_start(struct db_listen *l, const char *channel, char *errbuf)
{
    char sql[96], msg[256];
    int64_t deadline;
    PGresult *res;

    listen_drop(l);
    l->pg = open_pg(l->cfg, "respcache-listener", "db_listen_connect_failed");
    if (l->pg == NULL)
        return rc_err(errbuf, "cannot connect");
    if (PQsetnonblocking(l->pg, 1) != 0) {
        listen_drop(l);
        return rc_err(errbuf, "cannot make the connection non-blocking");
    }
    deadline = rc_mono_ms() + l->cfg->db_statement_timeout_ms + 1000;
    /* This session only waits: a server-wide idle_session_timeout (14+)
     * must not close it, since each reconnect invalidates everything.
     * Older servers do not know the setting: that error is harmless. */
    if ((res = listen_exec(l, "SET idle_session_timeout = 0", deadline)) == NULL) {
        listen_drop(l);
        return rc_err(errbuf, "the connection broke or timed out");
    }
    PQclear(res);
    /* The channel is an identifier checked by the config ([a-z_][a-z0-9_]*). */
    snprintf(sql, sizeof(sql), "LISTEN %s", channel);
    if ((res = listen_exec(l, sql, deadline)) == NULL) {
        listen_drop(l);
        return rc_err(errbuf, "LISTEN: the connection broke or timed out");
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc_err(errbuf, "LISTEN failed: %s",
               log_escape(PQresultErrorMessage(res), msg, sizeof(msg)));
        PQclear(res);
        listen_drop(l);
        return -1;
    }
    PQclear(res);
    return 0;
}

int db_listen_wait(struct db_listen *l, int wake_fd, int timeout_ms,
                   void (*fn)(void *ctx, int pid, const char *payload), void *ctx)
{
    struct pollfd pfd[2];
    PGnotify *n;
    int handled = 0;

    if (l->pg == NULL || PQsocket(l->pg) < 0)
        return -1;
    pfd[0] = (struct pollfd){.fd = PQsocket(l->pg), .events = POLLIN};
    pfd[1] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
    if (poll(pfd, wake_fd >= 0 ? 2 : 1, timeout_ms) < 0)
        return errno == EINTR ? 0 : -1;
    if (pfd[0].revents == 0)
        return 0;
    if (!PQconsumeInput(l->pg) || PQstatus(l->pg) != CONNECTION_OK) {
        char msg[256];
        log_msg(LOG_WARN, "db_listen_lost", "\"error\":\"%s\"",
                log_escape(PQerrorMessage(l->pg), msg, sizeof(msg)));
        listen_drop(l);
        return -1;
    }
    /* Notifications, in commit order. Anything else the server sends (a
     * NOTICE, the error before it closes) is consumed by libpq; a closed
     * socket fails PQconsumeInput on the next round. */
    while ((n = PQnotifies(l->pg)) != NULL) {
        fn(ctx, n->be_pid, n->extra);
        PQfreemem(n);
        handled++;
    }
    return handled;
}
