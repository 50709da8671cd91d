/*
 * rconn.h - a byte stream to a Redis server: TCP, unix socket, or TLS over
 * TCP (OpenSSL), with every call bounded by a deadline.
 *
 * hiredis 0.14 (Debian 12) has neither TLS nor deadlines we can use from
 * several threads, so the provider speaks RESP through hiredis's formatter
 * and reader over this transport instead, the way hiredis itself plugs
 * transports in through redisContextFuncs. Nothing here knows RESP.
 *
 * Sockets are non-blocking; waits are poll() with the time left before the
 * caller's deadline (monotonic ms, as rc_mono_ms()). TLS verifies the
 * server's certificate and its name (DNS name or IP address of the URL's
 * host) unless verification is switched off, and sends SNI for names.
 *
 * A connection is used by one thread at a time. A TLS context (the CA,
 * client certificate and key, loaded once) is shared by all connections.
 */
#ifndef RC_CACHE_RCONN_H
#define RC_CACHE_RCONN_H

#include "../common.h"
#include "redis_url.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rconn;
struct rconn_tls;

/* Why an open failed: worth retrying later, or a setting to fix. */
enum rconn_fail {
    RCONN_TRANSIENT = 1, /* refused, unreachable, timed out, reset */
    RCONN_CONFIG = 2,    /* certificate rejected, TLS refused, unknown host */
};

/* Load the TLS settings. ca_file NULL: the system's trust store. cert_file
 * and key_file: a client certificate (both or neither). NULL + errbuf on
 * error (file missing, key does not match the certificate...). */
struct rconn_tls *rconn_tls_create(const char *ca_file, const char *cert_file, const char *key_file,
                                   bool verify, char *errbuf) RC_MUSTCHECK;
void rconn_tls_free(struct rconn_tls *t);

/* Connect to u (TLS when tls is not NULL) before deadline_ms. NULL + errbuf
 * + *why on failure. */
struct rconn *rconn_open(const struct redis_url *u, struct rconn_tls *tls, int64_t deadline_ms,
                         enum rconn_fail *why, char *errbuf) RC_MUSTCHECK;
void rconn_close(struct rconn *c); /* accepts NULL */

/* Write all n bytes. 0 or -1 (errbuf). */
int rconn_write(struct rconn *c, const void *p, size_t n, int64_t deadline_ms,
                char *errbuf) RC_MUSTCHECK;
/* Read what is there, waiting for at least one byte: > 0, or -1 (errbuf;
 * the server closing the connection is an error too). */
long rconn_read(struct rconn *c, void *p, size_t n, int64_t deadline_ms, char *errbuf) RC_MUSTCHECK;

/* Wait up to timeout_ms for bytes to read, or for wake_fd (-1: none) to
 * become readable. 1 readable, 2 woken, 0 timed out, -1 error. */
int rconn_wait(struct rconn *c, int wake_fd, int timeout_ms);

/* The socket, for a poll() by another thread (never for reading). */
int rconn_fd(const struct rconn *c);

/* Did TLS itself fail on this connection (an alert, e.g. the server wants
 * a client certificate; TLS 1.3 reports that after the handshake, and a
 * reset before the first reply counts too, since it can overtake that
 * alert)? Such a failure is a setting to fix, not a network hiccup; the
 * server closing the connection (with or without close_notify) is not. */
bool rconn_tls_failed(const struct rconn *c);

#endif
