/*
 * redis_url.h - where a Redis server is and how to log in to it, parsed
 * from one URL. Pure: no I/O, so the syntax is unit-tested on its own.
 *
 *   redis://[[user]:password@]host[:port][/db]    plain TCP (port 6379)
 *   rediss://[[user]:password@]host[:port][/db]   TLS over TCP
 *   unix:/path/to/redis.sock[?db=N]               unix socket
 *   unix://[[user]:password@]/path/to/redis.sock[?db=N]
 *
 * host is a name, an IPv4 address or an IPv6 address in brackets. User and
 * password are percent-decoded. A user needs a password (Redis ACL: AUTH
 * user password); a password alone is AUTH password (the default user).
 * "?db=N" is accepted on every form. Error messages never contain the
 * password.
 */
#ifndef RC_CACHE_REDIS_URL_H
#define RC_CACHE_REDIS_URL_H

#include "../common.h"

#include <stdbool.h>
#include <stddef.h>

#define REDIS_URL_HOST_MAX     256
#define REDIS_URL_PATH_MAX     108 /* sizeof(sun_path) */
#define REDIS_URL_USER_MAX     256
#define REDIS_URL_PASSWORD_MAX 512
#define REDIS_URL_DB_MAX       1000000
#define REDIS_DEFAULT_PORT     6379

enum redis_transport { REDIS_TCP, REDIS_UNIX };

struct redis_url {
    enum redis_transport transport;
    bool tls;                      /* rediss:// */
    char host[REDIS_URL_HOST_MAX]; /* TCP: without IPv6 brackets */
    int port;                      /* TCP */
    char path[REDIS_URL_PATH_MAX]; /* unix socket */
    char user[REDIS_URL_USER_MAX]; /* "" = the default user */
    char password[REDIS_URL_PASSWORD_MAX];
    bool has_password;
    int db;
};

/* 0, or -1 with errbuf saying what is wrong (no credentials in it). */
int redis_url_parse(const char *url, struct redis_url *out, char *errbuf) RC_MUSTCHECK;

/* "host:port", "[v6]:port" or "unix:/path", for messages. */
void redis_url_describe(const struct redis_url *u, char *out, size_t outsz);

#endif
