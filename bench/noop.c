/*
 * bench/noop.c - the ceiling of any FastCGI app behind a given Nginx: an
 * event-loop responder that answers every request with the same headers
 * and a body of the requested size from memory, doing no lookup at all.
 *
 * It drives libfcgi exactly as respcache's server.c does (the loop owns
 * kept-alive connections, a readable one becomes the request's preset
 * ipcFd), so the difference between the two is respcache's own work.
 *
 *   noop --listen unix:/path|host:port [--body-bytes N]
 */
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int open_listener(const char *spec)
{
    int fd, one = 1;
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", spec + 5);
        unlink(sa.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            return -1;
        chmod(sa.sun_path, 0666);
    } else {
        char host[256];
        const char *colon = strrchr(spec, ':');
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
        if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
            return -1;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
            return -1;
        fd = socket(ai->ai_family, SOCK_STREAM, 0);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
            return -1;
        freeaddrinfo(ai);
    }
    if (listen(fd, 1024) < 0)
        return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv)
{
    const char *spec = NULL;
    size_t body_bytes = 162;
    char header[256], *body;
    int hlen, lfd, ep;
    struct epoll_event ev, evs[64];

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            spec = argv[i + 1];
        else if (strcmp(argv[i], "--body-bytes") == 0)
            body_bytes = (size_t)atol(argv[i + 1]);
    }
    if (spec == NULL || body_bytes < 2 || body_bytes > 1 << 20) {
        fprintf(stderr, "usage: noop --listen unix:PATH|HOST:PORT [--body-bytes N]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    body = malloc(body_bytes);
    memset(body, 'x', body_bytes);
    body[0] = '"';
    body[body_bytes - 1] = '"';
    hlen = snprintf(header, sizeof(header),
                    "Status: 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                    "Content-Length: %zu\r\nCache-Control: no-cache\r\n"
                    "ETag: \"0123456789abcdef\"\r\nX-Cache: HIT\r\nAge: 0\r\n\r\n",
                    body_bytes);
    lfd = open_listener(spec);
    if (lfd < 0 || FCGX_Init() != 0) {
        fprintf(stderr, "noop: cannot listen on %s: %s\n", spec, strerror(errno));
        return 1;
    }
    /* FCGX_Init installs a SIGTERM (and SIGUSR1) handler that only sets
     * libfcgi's shutdown flag, which this loop never reads: SIGTERM would
     * be ignored. Stopping by signal must stop. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    ep = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            FCGX_Request *r = evs[i].data.ptr;
            if (r == NULL) {
                int fd;
                while ((fd = accept(lfd, NULL, NULL)) >= 0) {
                    r = calloc(1, sizeof(*r));
                    FCGX_InitRequest(r, -1, 0);
                    r->ipcFd = fd;
                    ev.events = EPOLLIN | EPOLLONESHOT;
                    ev.data.ptr = r;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            r->keepConnection = 1;
            r->detached = 1;
            if (FCGX_Accept_r(r) < 0) {
                free(r);
                continue;
            }
            FCGX_PutStr(header, hlen, r->out);
            if (strcmp(FCGX_GetParam("REQUEST_METHOD", r->envp) ?: "", "HEAD") != 0)
                FCGX_PutStr(body, (int)body_bytes, r->out);
            char drain[4096];
            while (FCGX_GetStr(drain, sizeof(drain), r->in) > 0)
                ;
            r->detached = 1;
            FCGX_Finish_r(r);
            if (r->ipcFd < 0) {
                free(r);
                continue;
            }
            ev.events = EPOLLIN | EPOLLONESHOT;
            ev.data.ptr = r;
            epoll_ctl(ep, EPOLL_CTL_MOD, r->ipcFd, &ev);
        }
    }
}
