/*
 * server.c - event loops driving libfcgi; the only file that includes
 * fcgiapp.h.
 *
 * libfcgi's own model ties a connection to the thread that accepted it and
 * blocks that thread on a kept-alive connection. We use it differently (see
 * DESIGN.md, Known traps): the loop accepts connections itself and, when
 * one becomes readable, presets it as the request's ipcFd with
 * keepConnection set, so FCGX_Accept_r reads the request from it instead of
 * accepting. FCGX_Finish_r then leaves the connection open when Nginx asked
 * for keep-alive, and the loop re-arms it (EPOLLONESHOT: exactly one thread
 * touches a connection at a time, the loop or one worker).
 *
 * Two more libfcgi details matter:
 *  - listen_sock is -1 in our requests. When a kept-alive connection hits
 *    EOF, FCGX_Accept_r closes it and tries to accept a new one; on -1 that
 *    fails at once (EBADF) instead of blocking the loop in accept().
 *  - detached is set before finishing, so libfcgi closes with a plain
 *    close() rather than its shutdown-then-read-until-timeout linger, which
 *    could stall a loop.
 * Sockets stay blocking, as libfcgi expects, with SO_RCVTIMEO/SO_SNDTIMEO
 * bounding every read and write (Nginx buffers request bodies and reads
 * responses promptly, so these only bite on a broken peer).
 */

#include "server.h"

#include "log.h"
#include "workers.h"

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* What a workers_job is: a connection with a request, or a handler task
 * (a refresh to run after a response has been finished). */
enum job_kind { JOB_CONN = 0, JOB_TASK = 1 };

/* Past this much unread request body, close instead of draining. */
#define DRAIN_MAX  (8u << 20)
#define MAX_EVENTS 64

struct loop;

struct conn {
    struct workers_job job; /* queue link while a worker has it */
    FCGX_Request req;
    struct loop *loop;
    struct conn *prev, *next; /* the loop's list, under loop->lock */
    atomic_bool busy;         /* a worker owns it (not armed in epoll) */
    int request_id;           /* of its last request: the drain's nudge names it */
    struct rc_request rq;
    struct handler_state hs;
};

struct loop {
    struct server *srv;
    int epfd;
    int wake_fd; /* eventfd: stop */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* guards conns and done: taken on open/close, not per request */
    struct conn *conns;
    bool done; /* the loop has exited: a connection a worker finishes is closed */
};

struct server {
    const struct rc_config *cfg;
    struct handler *handler;
    struct workers *workers;
    int listen_fd;
    bool owns_listener; /* opened by --listen, not inherited */
    size_t nloops;
    struct loop *loops;
    atomic_bool stopping;
    atomic_long in_workers; /* requests queued or running on workers */
};

/* ---- sockets ------------------------------------------------------------ */

int server_listen(const char *spec, char *errbuf)
{
    int fd = -1;

    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        const char *path = spec + 5;
        struct stat stb;

        if (path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path))
            return rc_err(errbuf, "listen: unix socket path empty or too long: %s", path);
        memcpy(sa.sun_path, path, strlen(path) + 1);
        /* A socket file left by a previous run is ours to replace; any
         * other kind of file is not. */
        if (lstat(path, &stb) == 0) {
            if (!S_ISSOCK(stb.st_mode))
                return rc_err(errbuf, "listen: %s exists and is not a socket", path);
            unlink(path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return rc_err(errbuf, "listen: cannot bind %s: %s", path, strerror(e));
        }
        /* Nginx's workers run as another user; FastCGI access control is
         * the socket's directory, as for PostgreSQL's own socket. */
        chmod(path, 0666);
    } else {
        char host[256];
        const char *colon = strrchr(spec, ':');
        const char *h = spec;
        size_t hl;
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct addrinfo *ai = NULL;
        int one = 1, rc;

        if (colon == NULL || colon[1] == '\0')
            return rc_err(errbuf, "listen: expected unix:PATH or HOST:PORT, got \"%s\"", spec);
        hl = (size_t)(colon - spec);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
            h++;
            hl -= 2;
        }
        if (hl >= sizeof(host))
            return rc_err(errbuf, "listen: host too long");
        memcpy(host, h, hl);
        host[hl] = '\0';
        rc = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai);
        if (rc != 0)
            return rc_err(errbuf, "listen: cannot resolve \"%s\": %s", spec, gai_strerror(rc));
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            freeaddrinfo(ai);
            return rc_err(errbuf, "listen: cannot bind %s: %s", spec, strerror(e));
        }
        freeaddrinfo(ai);
    }
    if (listen(fd, 1024) < 0) {
        int e = errno;
        close(fd);
        return rc_err(errbuf, "listen: %s: %s", spec, strerror(e));
    }
    return fd;
}

static bool is_listening_socket(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v != 0;
}

int server_inherited_socket(char *errbuf)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");

    if (pid != NULL && fds != NULL && atol(pid) == (long)getpid() && atoi(fds) >= 1) {
        if (!is_listening_socket(3))
            return rc_err(errbuf, "LISTEN_FDS is set but fd 3 is not a listening socket");
        return 3;
    }
    if (is_listening_socket(0))
        return 0;
    return rc_err(errbuf, "no --listen given and fd 0 is not a listening socket "
                          "(start with --listen, spawn-fcgi or systemd socket activation)");
}

/* ---- connections -------------------------------------------------------- */

static int io_write(void *ctx, const void *p, size_t n)
{
    FCGX_Request *r = ctx;
    return FCGX_PutStr(p, (int)n, r->out) == (int)n ? 0 : -1;
}

static long io_read(void *ctx, void *p, size_t n)
{
    FCGX_Request *r = ctx;
    int got = FCGX_GetStr(p, (int)n, r->in);
    if (got <= 0 && FCGX_GetError(r->in) != 0)
        return -1;
    return got;
}

/* Unlink, close and free; the caller holds c->loop->lock. */
static void conn_free_locked(struct conn *c)
{
    struct loop *l = c->loop;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->req.ipcFd >= 0)
        close(c->req.ipcFd);
    free(c);
}

static void conn_free(struct conn *c)
{
    struct loop *l = c->loop;
    pthread_mutex_lock(&l->lock);
    conn_free_locked(c);
    pthread_mutex_unlock(&l->lock);
}

static void conn_arm(struct conn *c, int op)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = c};
    if (epoll_ctl(c->loop->epfd, op, c->req.ipcFd, &ev) < 0) {
        log_msg(LOG_ERROR, "epoll_ctl_failed", "\"error\":\"%s\"", strerror(errno));
        conn_free(c);
    }
}

/* The drain's nudge: an empty FCGI_STDERR record on a kept-alive
 * connection, sent after its last response. Nginx closes a cached upstream
 * connection that has anything to read (its keepalive close handler), and
 * does not cache one whose end-of-request record arrived with bytes behind
 * it; if it already took the connection for a new request, it skips an
 * empty stderr record before the response. So Nginx closes the connection
 * itself, and never writes a request into one that respcache closed: the
 * race that a server-side close has with a POST or PATCH, which Nginx
 * does not retry. False when the send failed (close it then). */
static bool conn_nudge(struct conn *c)
{
    unsigned char rec[8] = {
        1, 7, (unsigned char)(c->request_id >> 8), (unsigned char)(c->request_id & 0xff), 0, 0,
        0, 0};
    return send(c->req.ipcFd, rec, sizeof(rec), MSG_DONTWAIT | MSG_NOSIGNAL) ==
           (ssize_t)sizeof(rec);
}

/* Finish the response; keep the connection if Nginx asked to, else free.
 * While stopping, a kept connection is nudged (see conn_nudge) and stays
 * armed until Nginx closes it or the loop's drain ends. */
static void conn_finish(struct conn *c)
{
    if (!c->hs.body_consumed && c->req.in != NULL) {
        /* Leftover request records would be read as the next request. */
        char tmp[4096];
        size_t total = 0;
        int n;
        while ((n = FCGX_GetStr(tmp, sizeof(tmp), c->req.in)) > 0) {
            total += (size_t)n;
            if (total > DRAIN_MAX) {
                c->req.keepConnection = 0;
                break;
            }
        }
    }
    c->req.detached = 1;
    FCGX_Finish_r(&c->req);
    if (!atomic_load(&c->busy)) {
        /* On its loop, which is running: the stop sweep runs on this
         * thread too, so stopping cannot change under us. */
        bool stopping = atomic_load(&c->loop->srv->stopping);
        if (c->req.ipcFd < 0 || (stopping && !conn_nudge(c)))
            conn_free(c);
        else
            conn_arm(c, EPOLL_CTL_MOD);
        return;
    }
    /* On a worker: decide under the loop's lock, so that the loop's
     * stop-time sweep sees the connection either busy (and leaves it to
     * us) or armed (and closes it), and so that a loop that has exited
     * gets nothing armed. stopping is read under the lock: the sweep
     * either ran before (stopping is seen set, so this one nudges) or runs
     * after (the connection is idle then, so the sweep nudges it). */
    struct loop *l = c->loop; /* c may be freed below */
    pthread_mutex_lock(&l->lock);
    bool stopping = atomic_load(&l->srv->stopping);
    if (c->req.ipcFd < 0 || l->done || (stopping && !conn_nudge(c))) {
        conn_free_locked(c);
    } else {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = c};
        atomic_store(&c->busy, false);
        if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->req.ipcFd, &ev) < 0) {
            log_msg(LOG_ERROR, "epoll_ctl_failed", "\"error\":\"%s\"", strerror(errno));
            conn_free_locked(c);
        }
    }
    pthread_mutex_unlock(&l->lock);
}

static void fill_request(struct conn *c)
{
    static const struct {
        const char *name;
        size_t len;
        size_t offset;
    } wanted[] = {
#define W(n, f) {n "=", sizeof(n), offsetof(struct rc_request, f)}
        W("REQUEST_METHOD", method),
        W("REQUEST_URI", uri),
        W("CONTENT_TYPE", content_type),
        W("CONTENT_LENGTH", content_length),
        W("HTTP_IF_NONE_MATCH", if_none_match),
        W("HTTP_AUTHORIZATION", authorization),
        W("REQUEST_ID", request_id),
#undef W
    };
    memset(&c->rq, 0, sizeof(c->rq));
    /* The first letter sorts out most pairs before strncmp (on every hit). */
    for (char **e = c->req.envp; e != NULL && *e != NULL; e++)
        for (size_t i = 0; i < RC_ARRAY_LEN(wanted); i++)
            if ((*e)[0] == wanted[i].name[0] && strncmp(*e, wanted[i].name, wanted[i].len) == 0) {
                *(const char **)((char *)&c->rq + wanted[i].offset) = *e + wanted[i].len;
                break;
            }
}

/* Queue a task the handler left for after the response (a refresh). */
static void submit_task(struct server *s, struct handler_task *t)
{
    struct workers_job *job = handler_task_job(t);
    job->kind = JOB_TASK;
    if (workers_submit(s->workers, job) < 0)
        handler_task_free(s->handler, t);
}

/* Finish the response, then hand over the work the handler left for after
 * it. Taken before conn_finish: once the connection is re-armed, its next
 * request may reuse the handler state. */
static void conn_finish_then_tasks(struct conn *c)
{
    struct server *s = c->loop->srv;
    struct handler_task *t = c->hs.after;

    c->hs.after = NULL;
    conn_finish(c);
    if (t != NULL)
        submit_task(s, t);
}

static void on_readable(struct loop *l, struct conn *c)
{
    struct server *s = l->srv;
    struct rc_io io = {.ctx = &c->req, .write = io_write, .read = io_read};

    c->req.keepConnection = 1; /* keep the preset fd: read from it */
    c->req.detached = 1;
    if (FCGX_Accept_r(&c->req) < 0) {
        /* EOF or a protocol error: libfcgi has closed the fd. */
        c->req.ipcFd = -1;
        conn_free(c);
        return;
    }
    c->request_id = c->req.requestId;
    fill_request(c);
    if (handler_fast(s->handler, &c->hs, &c->rq, &io) == HANDLER_DONE) {
        conn_finish_then_tasks(c);
        return;
    }
    atomic_fetch_add(&s->in_workers, 1);
    atomic_store(&c->busy, true);
    if (workers_submit(s->workers, &c->job) < 0) {
        atomic_fetch_sub(&s->in_workers, 1);
        atomic_store(&c->busy, false);
        c->req.keepConnection = 0;
        FCGX_PutS("Status: 503 Service Unavailable\r\nContent-Type: application/json; "
                  "charset=utf-8\r\nRetry-After: 1\r\n\r\n{\"error\":\"unavailable\","
                  "\"message\":\"the server is shutting down\"}",
                  c->req.out);
        conn_finish(c);
    }
}

/* Accept up to 64 waiting connections. True when it stopped at that
 * bound (more may be waiting), false once none is left. */
static bool on_accept(struct loop *l)
{
    const struct rc_config *cfg = l->srv->cfg;
    struct timeval tv = {.tv_sec = cfg->io_timeout_ms / 1000,
                         .tv_usec = (cfg->io_timeout_ms % 1000) * 1000};

    for (int i = 0; i < 64; i++) {
        int fd = accept4(l->srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        struct conn *c;
        int one = 1;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                log_msg(LOG_WARN, "accept_failed", "\"error\":\"%s\"", strerror(errno));
            return false;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on unix: fine */
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        FCGX_InitRequest(&c->req, -1, 0);
        c->req.ipcFd = fd;
        c->request_id = 1; /* what Nginx sends on every request */
        c->loop = l;
        pthread_mutex_lock(&l->lock);
        c->next = l->conns;
        if (l->conns != NULL)
            l->conns->prev = c;
        l->conns = c;
        pthread_mutex_unlock(&l->lock);
        conn_arm(c, EPOLL_CTL_ADD);
    }
    return true; /* a full batch: more may be waiting */
}

/* The connections no worker holds: nudged (close_them false; one the
 * nudge cannot reach is closed), or all closed and the loop marked done.
 * Returns how many connections remain on the loop. */
static size_t sweep_idle(struct loop *l, bool close_them)
{
    size_t left = 0;
    pthread_mutex_lock(&l->lock);
    for (struct conn *c = l->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (atomic_load(&c->busy) || (!close_them && conn_nudge(c))) {
            left++;
            continue;
        }
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->req.ipcFd, NULL);
        conn_free_locked(c);
    }
    if (close_them)
        l->done = true;
    pthread_mutex_unlock(&l->lock);
    return left;
}

static size_t loop_conns(struct loop *l)
{
    size_t n = 0;
    pthread_mutex_lock(&l->lock);
    for (struct conn *c = l->conns; c != NULL; c = c->next)
        n++;
    pthread_mutex_unlock(&l->lock);
    return n;
}

/* The drain. Nginx retries a GET whose cached connection turns out
 * closed, but not a POST or PATCH it has already written (non-idempotent),
 * and any close by respcache can cross such a request in flight. So the
 * drain closes nothing Nginx may still use: every idle connection is
 * nudged at once and every busy one after its response (conn_nudge), Nginx
 * closes them, and the loop ends when none is left. After DRAIN_LOOP_MS
 * the rest are closed regardless (a client that ignores the nudge). */
#define DRAIN_LOOP_MS 5000

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    struct epoll_event evs[MAX_EVENTS];
    bool stop = false, nudge = false;
    int64_t drain_until = 0;

    while (!stop) {
        int n = epoll_wait(l->epfd, evs, MAX_EVENTS, drain_until ? 50 : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_msg(LOG_ERROR, "epoll_wait_failed", "\"error\":\"%s\"", strerror(errno));
            break;
        }
        /* Finish the whole batch: its events may name connections that the
         * sweep below would free. */
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &l->wake_fd) {
                uint64_t v; /* level-triggered: consume it, or the drain spins */
                if (read(l->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                    log_msg(LOG_WARN, "wake_read_failed", NULL);
                if (drain_until == 0) {
                    drain_until = rc_mono_ms() + DRAIN_LOOP_MS;
                    nudge = true;
                    /* Connections that reached our shut-down socket's
                     * backlog before the shutdown, whose requests may be
                     * written already: accepted and answered like the
                     * rest, since closing the socket would reset them. An
                     * inherited socket's backlog is the next instance's. */
                    while (l->srv->owns_listener && on_accept(l))
                        ;
                }
            } else if (p == &l->srv->listen_fd) {
                (void)on_accept(l); /* level-triggered: the rest come next round */
            } else {
                on_readable(l, p);
            }
        }
        if (nudge) {
            (void)sweep_idle(l, false);
            nudge = false;
        }
        if (drain_until != 0)
            stop = loop_conns(l) == 0 || rc_mono_ms() >= drain_until;
    }
    (void)sweep_idle(l, true);
    log_msg(LOG_DEBUG, "loop_stopped", NULL);
    return NULL;
}

/* ---- workers ------------------------------------------------------------ */

static void *worker_init(void *arg)
{
    struct server *s = arg;
    struct handler_worker *w = handler_worker_create(s->handler);
    if (w != NULL)
        handler_worker_listen_own(w);
    return w;
}

/* After every job and after a second without one (handler_worker_idle
 * keeps it to once a second): read what PostgreSQL sent the session. */
static void worker_tick(void *ctx)
{
    handler_worker_idle(ctx);
}

static void worker_run(void *ctx, struct workers_job *job)
{
    struct conn *c;
    struct server *s;
    struct handler_task *t;
    struct rc_io io;

    if (job->kind == JOB_TASK) {
        /* ctx's server: every task was queued by this server's handler. */
        struct handler_worker *w = ctx;
        handler_task_run(handler_worker_handler(w), w, handler_task_of(job));
        return;
    }
    c = (struct conn *)((char *)job - offsetof(struct conn, job));
    s = c->loop->srv;
    io = (struct rc_io){.ctx = &c->req, .write = io_write, .read = io_read};
    handler_slow(s->handler, ctx, &c->hs, &c->rq, &io);
    t = c->hs.after;
    c->hs.after = NULL;
    conn_finish(c);
    atomic_fetch_sub(&s->in_workers, 1);
    /* This worker has a database connection already: refresh right here,
     * after the response has gone out. */
    if (t != NULL)
        handler_task_run(s->handler, ctx, t);
}

static void worker_fini(void *ctx)
{
    handler_worker_free(ctx);
}

/* ---- lifecycle ---------------------------------------------------------- */

struct server *server_create(const struct rc_config *cfg, struct handler *h, int listen_fd,
                             bool owns_listener, char *errbuf)
{
    struct server *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        rc_err(errbuf, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->handler = h;
    s->listen_fd = listen_fd;
    s->owns_listener = owns_listener;
    s->nloops = (size_t)cfg->loops;
    s->loops = calloc(s->nloops, sizeof(struct loop));
    if (s->loops == NULL) {
        free(s);
        rc_err(errbuf, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < s->nloops; i++) {
        s->loops[i].srv = s;
        s->loops[i].epfd = -1;
        s->loops[i].wake_fd = -1;
        pthread_mutex_init(&s->loops[i].lock, NULL);
    }
    return s;
}

int server_start(struct server *s, char *errbuf)
{
    struct workers_fns fns = {
        .init = worker_init, .run = worker_run, .tick = worker_tick, .fini = worker_fini, .arg = s};
    int fl;

    if (FCGX_Init() != 0)
        return rc_err(errbuf, "libfcgi initialisation failed");
    fl = fcntl(s->listen_fd, F_GETFL);
    if (fl < 0 || fcntl(s->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return rc_err(errbuf, "cannot make the listening socket non-blocking: %s", strerror(errno));
    s->workers = workers_create((size_t)s->cfg->threads, &fns, errbuf);
    if (s->workers == NULL)
        return -1;
    for (size_t i = 0; i < s->nloops; i++) {
        struct loop *l = &s->loops[i];
        struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &s->listen_fd};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &l->wake_fd};

        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->epfd < 0 || l->wake_fd < 0 ||
            epoll_ctl(l->epfd, EPOLL_CTL_ADD, s->listen_fd, &lev) < 0 ||
            epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &wev) < 0) {
            rc_err(errbuf, "epoll setup failed: %s", strerror(errno));
            goto fail;
        }
        if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
            rc_err(errbuf, "cannot start event loop %zu", i);
            goto fail;
        }
        l->started = true;
    }
    return 0;
fail:
    /* Stop the loops and workers already running: server_free must not
     * free what their threads still use. */
    server_stop(s, 0);
    return -1;
}

void server_stop(struct server *s, int drain_ms)
{
    int64_t deadline = rc_mono_ms() + drain_ms;

    atomic_store(&s->stopping, true);
    /* Stop accepting. A socket of our own is shut down, so that Nginx's
     * new connections are refused (and go to another server) instead of
     * waiting in a backlog nobody accepts; what is in the backlog already
     * is accepted once more by each loop as it wakes. An inherited socket
     * (systemd) stays open for the next instance. Then the loops drain
     * (see loop_main). */
    for (size_t i = 0; i < s->nloops; i++)
        if (s->loops[i].epfd >= 0)
            epoll_ctl(s->loops[i].epfd, EPOLL_CTL_DEL, s->listen_fd, NULL);
    if (s->owns_listener)
        shutdown(s->listen_fd, SHUT_RDWR);
    for (size_t i = 0; i < s->nloops; i++) {
        struct loop *l = &s->loops[i];
        uint64_t one = 1;
        if (l->started && write(l->wake_fd, &one, sizeof(one)) < 0)
            log_msg(LOG_ERROR, "wake_failed", NULL);
    }
    for (size_t i = 0; i < s->nloops; i++)
        if (s->loops[i].started) {
            pthread_join(s->loops[i].thread, NULL);
            s->loops[i].started = false;
        }
    while (atomic_load(&s->in_workers) > 0 && rc_mono_ms() < deadline)
        usleep(10000);
    if (atomic_load(&s->in_workers) > 0)
        log_msg(LOG_WARN, "drain_timeout", "\"in_flight\":%ld", atomic_load(&s->in_workers));
    /* Workers answer what is still queued, then exit. */
    workers_free(s->workers);
    s->workers = NULL;
}

void server_free(struct server *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nloops; i++) {
        struct loop *l = &s->loops[i];
        while (l->conns != NULL)
            conn_free(l->conns);
        if (l->epfd >= 0)
            close(l->epfd);
        if (l->wake_fd >= 0)
            close(l->wake_fd);
        pthread_mutex_destroy(&l->lock);
    }
    free(s->loops);
    free(s);
}
