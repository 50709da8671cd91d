/*
 * server.h - the FastCGI front: listening socket, event loops that own the
 * connections, and the hand-off of misses and writes to database workers.
 *
 * Connections are not threads. Each event loop (epoll) owns the FastCGI
 * connections it accepted, however many Nginx keeps alive; a readable
 * connection has its request read by libfcgi, and the handler answers it
 * inline when it can (errors, hits). Otherwise the connection goes to the
 * worker queue and is re-armed on its loop's epoll set when the worker has
 * finished the response. An idle kept-alive connection costs no thread.
 */
#ifndef RC_SERVER_H
#define RC_SERVER_H

#include "common.h"
#include "config.h"
#include "handler.h"

#include <stdbool.h>

struct server;

/* Open a listening socket for "unix:/path" or "host:port" ("[::1]:port").
 * Returns the fd or -1 with errbuf set. */
int server_listen(const char *spec, char *errbuf) RC_MUSTCHECK;
/* The listening socket handed over by systemd (fd 3 with LISTEN_FDS and
 * LISTEN_PID) or by spawn-fcgi/systemd StandardInput=socket (fd 0).
 * Returns the fd or -1 with errbuf set. */
int server_inherited_socket(char *errbuf) RC_MUSTCHECK;

/* owns_listener: listen_fd was opened by us (--listen), so stopping may
 * shut it down; an inherited socket is left open for the next instance. */
struct server *server_create(const struct rc_config *cfg, struct handler *h, int listen_fd,
                             bool owns_listener, char *errbuf) RC_MUSTCHECK;
/* Start the loops and the workers. 0, or -1 with nothing left running. */
int server_start(struct server *s, char *errbuf) RC_MUSTCHECK;
/* Stop accepting, let requests in flight finish (bounded by drain_ms),
 * close every connection and join all threads. */
void server_stop(struct server *s, int drain_ms);
void server_free(struct server *s);

#endif
