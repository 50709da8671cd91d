/*
 * rconn.c - the Redis transport of rconn.h: non-blocking sockets driven by
 * poll() against a deadline, with OpenSSL layered on top for rediss://.
 *
 * OpenSSL keeps its error queue per thread; every TLS call here starts from
 * an empty queue (ERR_clear_error) so SSL_get_error() judges only that call.
 * SIGPIPE: plain sockets write with MSG_NOSIGNAL; OpenSSL writes with
 * write(2), which the daemon makes harmless by ignoring SIGPIPE (main.c).
 */
#include "rconn.h"

#include "../resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct rconn_tls {
    SSL_CTX *ctx;
    bool verify;
};

struct rconn {
    int fd;
    SSL *ssl;        /* NULL: plain */
    bool tls_failed; /* a TLS protocol error or alert (not a network one) */
    bool got_data;   /* TLS: application bytes were read */
};

/* The oldest queued OpenSSL error as text, or fallback. */
static const char *ssl_errstr(char *out, size_t outsz, const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(out, outsz, "%s", fallback);
        return out;
    }
    ERR_error_string_n(e, out, outsz);
    ERR_clear_error();
    return out;
}

struct rconn_tls *rconn_tls_create(const char *ca_file, const char *cert_file, const char *key_file,
                                   bool verify, char *errbuf)
{
    char e[200];
    struct rconn_tls *t;

    if ((cert_file == NULL) != (key_file == NULL)) {
        rc_err(errbuf, "redis TLS: a client certificate needs both cert_file and key_file");
        return NULL;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        rc_err(errbuf, "out of memory");
        return NULL;
    }
    t->verify = verify;
    ERR_clear_error();
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL) {
        rc_err(errbuf, "redis TLS: %s", ssl_errstr(e, sizeof(e), "cannot create a context"));
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(t->ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
            rc_err(errbuf, "redis TLS: cannot load the CA file %s: %s", ca_file,
                   ssl_errstr(e, sizeof(e), "unreadable"));
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        rc_err(errbuf, "redis TLS: cannot load the system's CA certificates: %s",
               ssl_errstr(e, sizeof(e), "unknown error"));
        goto fail;
    }
    if (cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) {
            rc_err(errbuf, "redis TLS: cannot load the client certificate %s: %s", cert_file,
                   ssl_errstr(e, sizeof(e), "unreadable"));
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
            rc_err(errbuf, "redis TLS: cannot load the client key %s: %s", key_file,
                   ssl_errstr(e, sizeof(e), "unreadable"));
            goto fail;
        }
        if (SSL_CTX_check_private_key(t->ctx) != 1) {
            rc_err(errbuf, "redis TLS: the client key %s does not match the certificate %s",
                   key_file, cert_file);
            goto fail;
        }
    }
    return t;
fail:
    rconn_tls_free(t);
    return NULL;
}

void rconn_tls_free(struct rconn_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* Milliseconds left before deadline, for poll(); 0 when past. */
static int time_left(int64_t deadline_ms)
{
    int64_t left = deadline_ms - rc_mono_ms();
    if (left <= 0)
        return 0;
    return left > 600000 ? 600000 : (int)left;
}

/* Wait for events on fd until the deadline. 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int left = time_left(deadline_ms);
        if (left == 0)
            return 0;
        int n = poll(&p, 1, left);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* Connect one socket to addr within the deadline. fd or -1 (errno set). */
static int connect_addr(int family, const struct sockaddr *sa, socklen_t salen, int64_t deadline_ms)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    socklen_t elen = sizeof(err);

    if (fd < 0)
        return -1;
    if (connect(fd, sa, salen) == 0)
        return fd;
    if (errno != EINPROGRESS && errno != EINTR) {
        err = errno;
        goto fail;
    }
    int w = wait_fd(fd, POLLOUT, deadline_ms);
    if (w <= 0) {
        err = w == 0 ? ETIMEDOUT : errno;
        goto fail;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        err = errno;
    if (err == 0)
        return fd;
fail:
    close(fd);
    errno = err;
    return -1;
}

static int open_unix(const struct redis_url *u, int64_t deadline_ms, char *errbuf)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(u->path) >= sizeof(sa.sun_path)) {
        rc_err(errbuf, "unix:%s: path too long", u->path);
        return -1;
    }
    memcpy(sa.sun_path, u->path, strlen(u->path) + 1);
    int fd = connect_addr(AF_UNIX, (struct sockaddr *)&sa, sizeof(sa), deadline_ms);
    if (fd < 0)
        rc_err(errbuf, "connect to unix:%s: %s", u->path, strerror(errno));
    return fd;
}

static int open_tcp(const struct redis_url *u, int64_t deadline_ms, enum rconn_fail *why,
                    char *errbuf)
{
    struct addrinfo hints, *res = NULL;
    char port[8], where[REDIS_URL_HOST_MAX + 16];
    int fd = -1, err = 0, rc;
    bool timed_out;

    redis_url_describe(u, where, sizeof(where));
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    snprintf(port, sizeof(port), "%d", u->port);
    /* Bounded by the same deadline as the connect (resolve.h). */
    rc = rc_resolve(u->host, port, &hints, deadline_ms, &res, &timed_out);
    if (rc != 0) {
        *why = rc == EAI_AGAIN ? RCONN_TRANSIENT : RCONN_CONFIG;
        rc_err(errbuf, "cannot resolve %s: %s", u->host,
               timed_out ? "timed out" : gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = connect_addr(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline_ms);
        if (fd >= 0)
            break;
        err = errno;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        rc_err(errbuf, "connect to %s: %s", where,
               err == ETIMEDOUT ? "timed out" : strerror(err ? err : ECONNREFUSED));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Is the queued OpenSSL error e the peer closing without a close_notify?
 * OpenSSL 3 reports that as a protocol error; it is a network event. */
static bool tls_eof_error(unsigned long e)
{
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
    return ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
#else
    (void)e;
    return false;
#endif
}

/* One TLS step (handshake, read or write) returned r: wait for what it
 * wants. 1 retry, 0 done/EOF per *eof, -1 error (errbuf). Sets tls_failed
 * only for what TLS itself refused (see rconn_tls_failed()). */
static int tls_wait(struct rconn *c, int r, int64_t deadline_ms, bool *eof, char *errbuf)
{
    char e[200];
    int err = SSL_get_error(c->ssl, r);
    int sys = errno;

    switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: {
        int w = wait_fd(c->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ms);
        if (w == 0)
            return rc_err(errbuf, "timed out");
        if (w < 0)
            return rc_err(errbuf, "poll: %s", strerror(errno));
        return 1;
    }
    case SSL_ERROR_ZERO_RETURN:
        *eof = true;
        return 0;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            if (sys == 0 || r == 0) {
                *eof = true;
                return 0;
            }
            /* A TLS 1.3 server refuses a client (no certificate) after
             * the handshake, with an alert that the reset caused by our
             * first request can overtake: a reset of a session that has
             * not answered yet is that refusal. */
            if ((sys == ECONNRESET || sys == EPIPE) && SSL_is_init_finished(c->ssl) && !c->got_data)
                c->tls_failed = true;
            return rc_err(errbuf, "%s", strerror(sys));
        }
        /* fall through */
    default:
        if (tls_eof_error(ERR_peek_error())) {
            ERR_clear_error();
            *eof = true;
            return 0;
        }
        c->tls_failed = true;
        return rc_err(errbuf, "TLS: %s", ssl_errstr(e, sizeof(e), "protocol error"));
    }
}

static int tls_handshake(struct rconn *c, struct rconn_tls *t, const struct redis_url *u,
                         int64_t deadline_ms, enum rconn_fail *why, char *errbuf)
{
    char where[REDIS_URL_HOST_MAX + 16], e[RC_ERRBUF];
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, u->host, ip) == 1 || inet_pton(AF_INET6, u->host, ip) == 1;

    redis_url_describe(u, where, sizeof(where));
    ERR_clear_error();
    c->ssl = SSL_new(t->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        *why = RCONN_CONFIG;
        return rc_err(errbuf, "TLS to %s: %s", where, ssl_errstr(e, 200, "cannot set up"));
    }
    if (!is_ip && SSL_set_tlsext_host_name(c->ssl, u->host) != 1) {
        *why = RCONN_CONFIG;
        return rc_err(errbuf, "TLS to %s: cannot set SNI", where);
    }
    if (t->verify) {
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u->host)
                       : SSL_set1_host(c->ssl, u->host);
        if (ok != 1) {
            *why = RCONN_CONFIG;
            return rc_err(errbuf, "TLS to %s: cannot set the name to verify", where);
        }
    }
    for (;;) {
        bool eof = false;
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        long v = SSL_get_verify_result(c->ssl);
        if (t->verify && v != X509_V_OK) {
            *why = RCONN_CONFIG;
            return rc_err(errbuf,
                          "TLS to %s: the server's certificate was rejected: %s (check "
                          "cache.redis_tls_ca_file / REDIS_TLS_CA_FILE and the URL's host)",
                          where, X509_verify_cert_error_string(v));
        }
        int w = tls_wait(c, r, deadline_ms, &eof, e);
        if (w == 1)
            continue;
        if (w < 0 && rc_mono_ms() >= deadline_ms) {
            *why = RCONN_TRANSIENT;
            return rc_err(errbuf,
                          "TLS handshake with %s timed out (no TLS answer: is it a TLS "
                          "port?)",
                          where);
        }
        if (w == 0 || eof) {
            *why = RCONN_TRANSIENT;
            return rc_err(errbuf,
                          "TLS to %s: the server closed the connection during the "
                          "handshake",
                          where);
        }
        /* A TLS refusal (alert, not TLS at all) is a setting; a network
         * error (reset, unreachable) is not. */
        *why = c->tls_failed ? RCONN_CONFIG : RCONN_TRANSIENT;
        return rc_err(errbuf, "TLS handshake with %s failed: %s%s", where, e,
                      c->tls_failed ? " (is this a TLS port?)" : "");
    }
}

struct rconn *rconn_open(const struct redis_url *u, struct rconn_tls *tls, int64_t deadline_ms,
                         enum rconn_fail *why, char *errbuf)
{
    struct rconn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        *why = RCONN_TRANSIENT;
        rc_err(errbuf, "out of memory");
        return NULL;
    }
    *why = RCONN_TRANSIENT;
    c->fd = u->transport == REDIS_UNIX ? open_unix(u, deadline_ms, errbuf)
                                       : open_tcp(u, deadline_ms, why, errbuf);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    if (tls != NULL && u->transport == REDIS_TCP &&
        tls_handshake(c, tls, u, deadline_ms, why, errbuf) < 0) {
        rconn_close(c);
        return NULL;
    }
    return c;
}

void rconn_close(struct rconn *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL) {
        /* No close_notify: the peer may be gone, and a blocking shutdown
         * is exactly what this layer never does. */
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

int rconn_write(struct rconn *c, const void *p, size_t n, int64_t deadline_ms, char *errbuf)
{
    const char *s = p;

    while (n > 0) {
        if (c->ssl != NULL) {
            bool eof = false;
            ERR_clear_error();
            int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
            int r = SSL_write(c->ssl, s, chunk);
            if (r > 0) {
                s += r;
                n -= (size_t)r;
                continue;
            }
            int w = tls_wait(c, r, deadline_ms, &eof, errbuf);
            if (w == 1)
                continue;
            if (w == 0)
                return rc_err(errbuf, "connection closed by the server");
            return -1;
        }
        ssize_t r = send(c->fd, s, n, MSG_NOSIGNAL);
        if (r > 0) {
            s += r;
            n -= (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(c->fd, POLLOUT, deadline_ms);
            if (w == 0)
                return rc_err(errbuf, "timed out");
            if (w < 0)
                return rc_err(errbuf, "poll: %s", strerror(errno));
            continue;
        }
        return rc_err(errbuf, "write: %s", strerror(errno));
    }
    return 0;
}

long rconn_read(struct rconn *c, void *p, size_t n, int64_t deadline_ms, char *errbuf)
{
    if (n > (1u << 30))
        n = 1u << 30;
    for (;;) {
        if (c->ssl != NULL) {
            bool eof = false;
            ERR_clear_error();
            int r = SSL_read(c->ssl, p, (int)n);
            if (r > 0) {
                c->got_data = true;
                return r;
            }
            int w = tls_wait(c, r, deadline_ms, &eof, errbuf);
            if (w == 1)
                continue;
            if (w == 0)
                return rc_err(errbuf, "connection closed by the server");
            return -1;
        }
        ssize_t r = recv(c->fd, p, n, 0);
        if (r > 0)
            return (long)r;
        if (r == 0)
            return rc_err(errbuf, "connection closed by the server");
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return rc_err(errbuf, "read: %s", strerror(errno));
        int w = wait_fd(c->fd, POLLIN, deadline_ms);
        if (w == 0)
            return rc_err(errbuf, "timed out");
        if (w < 0)
            return rc_err(errbuf, "poll: %s", strerror(errno));
    }
}

int rconn_wait(struct rconn *c, int wake_fd, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = wake_fd, .events = POLLIN}};

    if (c->ssl != NULL && SSL_pending(c->ssl) > 0)
        return 1;
    for (;;) {
        int n = poll(p, wake_fd >= 0 ? 2 : 1, timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (wake_fd >= 0 && p[1].revents != 0)
            return 2;
        return 1;
    }
}

int rconn_fd(const struct rconn *c)
{
    return c->fd;
}

bool rconn_tls_failed(const struct rconn *c)
{
    return c->tls_failed;
}
