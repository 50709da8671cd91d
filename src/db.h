/*
 * db.h - one PostgreSQL connection per database worker (libpq).
 *
 * Parameterised statements only, prepared once per connection and route.
 * Every call is bounded: libpq's connect_timeout for connecting, the
 * server's statement_timeout for the query, and a client-side deadline
 * (statement timeout + 1 s) on the socket, so a frozen server cannot hold a
 * worker forever. A broken connection is dropped and re-opened on the next
 * call, with a short back-off so a dead server costs a fast 503, not a
 * connect timeout per request.
 */
#ifndef RC_DB_H
#define RC_DB_H

#include "common.h"
#include "config.h"
#include "router.h"
#include "rowjson.h"

#include <stdbool.h>

struct db_conn;
struct db_result;

enum db_status {
    DB_OK = 0,
    DB_UNAVAILABLE, /* cannot connect, connection lost, timeout: 503 */
    DB_CONFLICT,    /* unique violation: 409 */
    DB_INVALID,     /* other constraint violation, bad value: 422 */
    DB_ERROR,       /* anything else: 500 */
};

struct db_conn *db_conn_open(const struct rc_config *cfg) RC_MUSTCHECK;
void db_conn_close(struct db_conn *c);

/* Run route `index`'s statement with `values` (aligned with the route's
 * params). idempotent=true allows one retry on a fresh connection when the
 * old one turns out to be broken. On DB_OK *res holds the result (free with
 * db_result_free). Otherwise errbuf holds a message safe to show a client
 * and the server's own message has been logged. */
enum db_status db_exec(struct db_conn *c, int index, const struct route *route,
                       const struct rc_value *values, bool idempotent, struct db_result **res,
                       char *errbuf) RC_MUSTCHECK;

/* on: every session of c LISTENs on the notify channel from its start,
 * so that a write hears its own transaction's notifications. */
void db_listen_own(struct db_conn *c, bool on);
/* The open session LISTENs (db_listen_own, and its LISTEN succeeded). */
bool db_listening(const struct db_conn *c);

/* After a write: call fn for each notification that the write's own
 * transaction sent on the notify channel (when db_listening), and free
 * every notification queued. Returns how many were the write's own. */
size_t db_own_notifies(struct db_conn *c, void (*fn)(void *ctx, int pid, const char *payload),
                       void *ctx);

/* The server process of the session, which is opened first if need be
 * (bounded like db_exec), and replaced first if the server closed it while
 * idle; 0 when none can be. Called before a write. */
int db_backend_pid(struct db_conn *c);

/* Between jobs: read and free what a LISTENing connection has been sent,
 * without waiting, so an idle session never holds PostgreSQL's
 * notification queue back. A connection found broken is closed. */
void db_idle(struct db_conn *c);

/* Run one ad-hoc SELECT without parameters (warm-up queries) bounded like
 * db_exec; read its rows with db_result_value. */
enum db_status db_query(struct db_conn *c, const char *sql, struct db_result **res,
                        char *errbuf) RC_MUSTCHECK;

/* Cheap liveness check ("SELECT 1") bounded like db_exec. */
enum db_status db_ping(struct db_conn *c, char *errbuf);

void db_result_free(struct db_result *r);
/* Adapter for rowjson_render; valid while r lives. */
void db_result_view(struct db_result *r, struct rowjson_result *out);
/* Text value of `name` in the first row (NULL if absent or NULL). */
const char *db_result_column(void *r, const char *name, size_t *len);
/* Rows returned, or affected by a command without RETURNING. */
size_t db_result_rows(const struct db_result *r);
/* Text value of column `name` in `row` (NULL if absent, NULL or out of range). */
const char *db_result_value(const struct db_result *r, size_t row, const char *name, size_t *len);

/* The LISTEN connection: its own PostgreSQL session (application_name
 * respcache-listener), so notifications never wait behind a query. */
struct db_listen;

struct db_listen *db_listen_open(const struct rc_config *cfg) RC_MUSTCHECK;
void db_listen_close(struct db_listen *l);
/* (Re)connect, bounded by the connect timeout, turn the session's
 * idle_session_timeout off and LISTEN channel (an identifier), each bounded
 * like a statement. 0, or -1 with errbuf. */
int db_listen_start(struct db_listen *l, const char *channel, char *errbuf) RC_MUSTCHECK;
/* Wait up to timeout_ms for notifications (or for wake_fd to become
 * readable; -1 for none) and call fn(ctx, pid, payload) for each one
 * received (pid: the sending session's backend).
 * Returns how many, 0 on a timeout or a wake-up, -1 when the connection is
 * lost (it is closed; db_listen_start again). */
int db_listen_wait(struct db_listen *l, int wake_fd, int timeout_ms,
                   void (*fn)(void *ctx, int pid, const char *payload), void *ctx);

#endif
