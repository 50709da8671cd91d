/*
 * log.h - structured logs: one JSON object per line on stderr.
 *
 * log_msg("info", "db_connect", "\"host\":\"x\"") style: a level, an event
 * name, and optional extra members written as a JSON fragment built by the
 * caller. Thread-safe (one write(2) per line); lines under 4 KiB are never
 * interleaved.
 */
#ifndef RC_LOG_H
#define RC_LOG_H

#include "common.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Send log lines to `path` (appending) instead of stderr; called again
 * (SIGHUP) it reopens the file, for log rotation. The switch is atomic:
 * the file replaces the log descriptor with dup2, so concurrent writers
 * never see a closed descriptor. 0, or -1 with errbuf set. */
int log_open_file(const char *path, char *errbuf) RC_MUSTCHECK;

/* Returns -1 for an unknown level name. */
int log_level_parse(const char *name);
void log_set_level(enum log_level lvl);
int log_enabled(enum log_level lvl);
/* fmt builds the extra members, without braces, e.g. "\"route\":\"%s\"".
 * Strings inserted by the caller must already be JSON-escaped (use
 * log_escape). fmt may be NULL. */
void log_msg(enum log_level lvl, const char *event, const char *fmt, ...) RC_PRINTF(3, 4);
/* Escape s for use inside a JSON string (no quotes added), truncating to
 * fit out. Returns out. */
char *log_escape(const char *s, char *out, size_t outsz);

#endif
