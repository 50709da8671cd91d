/*
 * log.c - one JSON object per line on stderr.
 *
 * Each line is formatted into a stack buffer and written with a single
 * write(2), so concurrent threads never interleave within a line (stderr is
 * a pipe or journald socket under systemd; writes under PIPE_BUF are atomic).
 * Lines longer than the buffer are truncated, keeping the JSON valid.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int current_level = LOG_INFO;
/* STDERR_FILENO, or a descriptor that log_open_file dup2s new files onto. */
static _Atomic int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_open_file(const char *path, char *errbuf)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    int cur = atomic_load(&log_fd);

    if (fd < 0)
        return rc_err(errbuf, "log_file: cannot open %s: %s", path, strerror(errno));
    if (cur == STDERR_FILENO) {
        /* First open: keep this descriptor; stderr stays as it was. */
        atomic_store(&log_fd, fd);
        return 0;
    }
    if (dup2(fd, cur) < 0) {
        int e = errno;
        close(fd);
        return rc_err(errbuf, "log_file: cannot reopen %s: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

int log_level_parse(const char *name)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(level_names); i++)
        if (name != NULL && strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void log_set_level(enum log_level lvl)
{
    atomic_store(&current_level, (int)lvl);
}

int log_enabled(enum log_level lvl)
{
    return (int)lvl >= atomic_load_explicit(&current_level, memory_order_relaxed);
}

char *log_escape(const char *s, char *out, size_t outsz)
{
    size_t o = 0;
    if (outsz == 0)
        return out;
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        size_t n;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        } else {
            tmp[0] = (char)c;
            n = 1;
        }
        if (o + n >= outsz)
            break;
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
    return out;
}

void log_msg(enum log_level lvl, const char *event, const char *fmt, ...)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int w;

    if (!log_enabled(lvl))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    w = snprintf(
        line, sizeof(line),
        "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"event\":\"%s\"",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
        ts.tv_nsec / 1000000, level_names[lvl], event);
    n = (w < 0) ? 0 : (size_t)w;
    if (fmt != NULL && n < sizeof(line) - 3) {
        va_list ap;
        line[n++] = ',';
        va_start(ap, fmt);
        w = vsnprintf(line + n, sizeof(line) - n - 2, fmt, ap);
        va_end(ap);
        if (w < 0 || (size_t)w >= sizeof(line) - n - 2) {
            /* Truncated: drop the partial members to keep the line valid. */
            n--;
            w = snprintf(line + n, sizeof(line) - n - 2, ",\"truncated\":true");
        }
        n += (w > 0) ? (size_t)w : 0;
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '}';
    line[n++] = '\n';
    /* A failed log write has nowhere to be reported. */
    if (write(atomic_load_explicit(&log_fd, memory_order_relaxed), line, n) < 0)
        return;
}
