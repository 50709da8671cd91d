/*
 * main.c - options, configuration, start-up and signals.
 *
 * The main thread owns everything it creates (config, cache, handler,
 * server) and passes it down. After start-up it does nothing but wait for
 * signals with sigtimedwait, which also paces the cache's housekeeping:
 * every other thread has the signals blocked, so no handler runs inside
 * libfcgi or libpq.
 */
#include "cache/memory.h"
#include "cache/redis.h"
#include "cache/tiered.h"
#include "config.h"
#include "handler.h"
#include "health.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "ownnotify.h"
#include "server.h"
#include "warm.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "dev"
#endif

/* Bound on finishing requests in flight at SIGTERM. */
#define DRAIN_MS 10000
/* How often the health prober checks the database and the cache. */
#define HEALTH_INTERVAL_MS 1000
/* Own writes' notifications between commit and the listener's receipt. */
#define OWN_NOTIFY_PAIRS 1024

static void usage(FILE *out)
{
    fprintf(out, "Usage: respcache --config FILE [options]\n"
                 "\n"
                 "A FastCGI daemon that answers database-backed JSON routes from a cache.\n"
                 "\n"
                 "Options:\n"
                 "  -c, --config FILE      configuration file (JSON), required\n"
                 "  -l, --listen ADDR      unix:PATH or HOST:PORT; without it, accept on the\n"
                 "                         socket inherited on fd 0 (spawn-fcgi, systemd\n"
                 "                         StandardInput=socket) or fd 3 (LISTEN_FDS)\n"
                 "  -t, --threads N        database worker threads (overrides \"threads\")\n"
                 "      --loops N          event loops (overrides \"loops\")\n"
                 "      --check-config     validate the configuration and exit\n"
                 "      --print-config     print the effective settings and exit\n"
                 "  -V, --version          print the version and exit\n"
                 "  -h, --help             this text, and every setting\n"
                 "\n");
    config_print_help(out);
}

/* Log why start-up failed; the message may quote a path or a URL, so it
 * is escaped to keep the log line valid JSON. */
static void start_failed(const char *err)
{
    char esc[2 * RC_ERRBUF];
    log_msg(LOG_ERROR, "start_failed", "\"error\":\"%s\"", log_escape(err, esc, sizeof(esc)));
}

static int parse_count(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static struct cache *make_cache(const struct rc_config *cfg, char *errbuf)
{
    struct redis_options ro;
    struct cache *l1, *l2;
    bool tiered = strcmp(cfg->cache_provider, "tiered") == 0;

    if (strcmp(cfg->cache_provider, "none") == 0)
        return NULL;
    if (strcmp(cfg->cache_provider, "memory") == 0)
        return cache_memory_create((uint64_t)cfg->cache_memory_max_bytes,
                                   (unsigned)cfg->cache_memory_shards,
                                   (unsigned)cfg->cache_tag_slots, errbuf);
    memset(&ro, 0, sizeof(ro));
    ro.url = cfg->redis_url;
    ro.key_prefix = cfg->redis_key_prefix;
    ro.connect_timeout_ms = cfg->redis_connect_timeout_ms;
    ro.command_timeout_ms = cfg->redis_command_timeout_ms;
    ro.tls_ca_file = cfg->redis_tls_ca_file;
    ro.tls_cert_file = cfg->redis_tls_cert_file;
    ro.tls_key_file = cfg->redis_tls_key_file;
    ro.tls_verify = cfg->redis_tls_verify != 0;
    ro.breaker_failures = (unsigned)cfg->redis_breaker_failures;
    ro.breaker_open_ms = cfg->redis_breaker_open_ms;
    ro.publish = tiered;
    l2 = cache_redis_create(&ro, errbuf);
    if (l2 == NULL || !tiered)
        return l2;
    l1 = cache_memory_create((uint64_t)cfg->cache_memory_max_bytes,
                             (unsigned)cfg->cache_memory_shards, (unsigned)cfg->cache_tag_slots,
                             errbuf);
    if (l1 == NULL) {
        cache_free(l2);
        return NULL;
    }
    return cache_tiered_create(l1, l2, (int64_t)cfg->tiered_l1_ttl_max * 1000, errbuf);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"loops", required_argument, NULL, 'L'},
        {"check-config", no_argument, NULL, 'C'},
        {"print-config", no_argument, NULL, 'P'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *listen_spec = NULL;
    int threads = 0, loops = 0, check_only = 0, print_only = 0, opt;
    char err[RC_ERRBUF];
    struct rc_config *cfg;
    struct cache *cache = NULL;
    struct handler *handler = NULL;
    struct server *server = NULL;
    struct metrics *metrics = NULL;
    struct health *health = NULL;
    struct listener *listener = NULL;
    struct ownnotify *own = NULL;
    struct warm *warm = NULL;
    int listen_fd, status = 1, sig;
    sigset_t sigs;

    while ((opt = getopt_long(argc, argv, "c:l:t:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            listen_spec = optarg;
            break;
        case 't':
            if (parse_count(optarg, 1, 256, &threads) < 0) {
                fprintf(stderr, "respcache: --threads: expected an integer from 1 to 256\n");
                return 2;
            }
            break;
        case 'L':
            if (parse_count(optarg, 1, 64, &loops) < 0) {
                fprintf(stderr, "respcache: --loops: expected an integer from 1 to 64\n");
                return 2;
            }
            break;
        case 'C':
            check_only = 1;
            break;
        case 'P':
            print_only = 1;
            break;
        case 'V':
            printf("respcache %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "respcache: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (config_path == NULL) {
        fprintf(stderr, "respcache: --config FILE is required (see --help)\n");
        return 2;
    }

    cfg = config_load(config_path, err);
    if (cfg == NULL) {
        fprintf(stderr, "respcache: %s\n", err);
        return 1;
    }
    if (threads > 0)
        cfg->threads = threads;
    if (loops > 0)
        cfg->loops = loops;
    if (print_only) {
        config_print(cfg, stdout);
        config_free(cfg);
        return 0;
    }
    if (check_only) {
        /* The router's own checks (ambiguous templates) count as config. */
        handler = handler_create(cfg, NULL, NULL, NULL, NULL, err);
        if (handler == NULL) {
            fprintf(stderr, "respcache: %s\n", err);
            config_free(cfg);
            return 1;
        }
        printf("respcache: %s: configuration OK, %zu routes\n", config_path, cfg->nroutes);
        handler_free(handler);
        config_free(cfg);
        return 0;
    }
    log_set_level((enum log_level)log_level_parse(cfg->log_level));
    if (cfg->log_file != NULL && log_open_file(cfg->log_file, err) < 0) {
        fprintf(stderr, "respcache: %s\n", err);
        config_free(cfg);
        return 1;
    }

    /* Signals: ignored SIGPIPE (a closed peer is an error return, not a
     * death), the rest blocked in every thread and taken by sigtimedwait. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (listen_spec == NULL && cfg->listen != NULL && cfg->listen[0] != '\0')
        listen_spec = cfg->listen;
    listen_fd = listen_spec ? server_listen(listen_spec, err) : server_inherited_socket(err);
    if (listen_fd < 0) {
        start_failed(err);
        goto out;
    }
    cache = make_cache(cfg, err);
    if (cache == NULL && strcmp(cfg->cache_provider, "none") != 0) {
        start_failed(err);
        goto out;
    }
    metrics = metrics_create(cfg);
    health = metrics ? health_start(cfg, cache, HEALTH_INTERVAL_MS, err) : NULL;
    if (metrics == NULL || health == NULL) {
        start_failed(metrics ? err : "out of memory");
        goto out;
    }
    /* Listen before answering, so that nothing is cached unheard. Bounded:
     * with the database down the listener keeps retrying on its own. */
    if (cache != NULL && cfg->db_notify_channel != NULL) {
        own = ownnotify_create(OWN_NOTIFY_PAIRS);
        listener = own ? listener_start(cfg, cache, metrics, own, err) : NULL;
        if (listener == NULL) {
            if (own == NULL)
                rc_err(err, "out of memory");
            start_failed(err);
            goto out;
        }
        if (!listener_wait_ready(listener, cfg->db_connect_timeout_ms + 1000))
            log_msg(LOG_WARN, "listener_not_ready", "\"waited_ms\":%d",
                    cfg->db_connect_timeout_ms + 1000);
    }
    handler = handler_create(cfg, cache, metrics, health, own, err);
    if (handler == NULL) {
        start_failed(err);
        goto out;
    }
    server = server_create(cfg, handler, listen_fd, listen_spec != NULL, err);
    if (server == NULL || server_start(server, err) < 0) {
        start_failed(err);
        goto out;
    }
    if (cache != NULL) {
        warm = warm_start(cfg, handler, metrics, err);
        if (warm == NULL && err[0] != '\0')
            log_msg(LOG_ERROR, "warm_failed", "\"error\":\"%s\"", err);
    }
    log_msg(LOG_INFO, "started",
            "\"version\":\"%s\",\"routes\":%zu,\"threads\":%d,\"loops\":%d,\"cache\":\"%s\"",
            PACKAGE_VERSION, cfg->nroutes, cfg->threads, cfg->loops, cfg->cache_provider);

    for (;;) {
        struct timespec tick = {.tv_sec = 1, .tv_nsec = 0};
        sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP) {
            if (cfg->log_file != NULL && log_open_file(cfg->log_file, err) < 0)
                log_msg(LOG_ERROR, "log_reopen_failed", "\"error\":\"%s\"", err);
            else
                log_msg(LOG_INFO, "sighup", "\"log_reopened\":%s",
                        cfg->log_file ? "true" : "false");
        }
        if (cache != NULL && cache->ops->tick != NULL)
            cache->ops->tick(cache->self);
    }
    log_msg(LOG_INFO, "stopping", "\"signal\":%d", sig);
    warm_stop(warm);
    warm = NULL;
    server_stop(server, DRAIN_MS);
    status = 0;
    log_msg(LOG_INFO, "stopped", NULL);

out:
    warm_stop(warm);
    server_free(server);
    listener_stop(listener);
    health_stop(health);
    handler_free(handler);
    ownnotify_free(own);
    metrics_free(metrics);
    cache_free(cache);
    if (listen_spec != NULL && strncmp(listen_spec, "unix:", 5) == 0 && listen_fd >= 0)
        unlink(listen_spec + 5);
    if (listen_fd >= 0)
        close(listen_fd);
    config_free(cfg);
    return status;
}
