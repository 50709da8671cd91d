/*
 * ownnotify.h - notifications that this process's own writes caused.
 *
 * A table's trigger (sql/respcache_notify.sql) publishes the tags of every
 * changed row, including rows changed through respcache's own write
 * routes. The database worker that ran such a write LISTENs on its own
 * connection too, so PostgreSQL hands it its transaction's notifications
 * with the commit's answer: the worker bumps those tags itself, before it
 * answers, and puts each payload here. The listener thread receives the
 * same notification a moment later on its own connection; when it finds
 * the (backend pid, payload) pair here it skips the bump, which would only
 * invalidate again what the write has just made current.
 *
 * Only a worker's put makes the listener skip, so a notification no worker
 * saw (its connection broke at the commit, another process wrote) is
 * bumped by the listener as before. A pair the listener never takes
 * expires after OWNNOTIFY_TTL_MS, and the table holds at most `cap` pairs
 * (the oldest is forgotten first): forgetting one only costs a second bump.
 *
 * Thread safety: every call may come from any thread (one mutex; taken
 * a few times per write and once per notification, never on the read
 * path).
 */
#ifndef RC_OWNNOTIFY_H
#define RC_OWNNOTIFY_H

#include "common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OWNNOTIFY_TTL_MS      10000
#define OWNNOTIFY_MAX_WRITERS 256 /* backends with a write in flight at once */

struct ownnotify;

struct ownnotify *ownnotify_create(size_t cap) RC_MUSTCHECK;
void ownnotify_free(struct ownnotify *o);

/* A worker bumps the tags of payload, which its backend `pid` sent. 0, or
 * -1 when out of memory (the listener will bump them again: harmless). */
int ownnotify_put(struct ownnotify *o, int pid, const char *payload, int64_t now_ms);

/* A worker is about to run a write on backend pid, and is done with its
 * notifications (put) at end. Calls nest per pid. */
void ownnotify_begin(struct ownnotify *o, int pid);
void ownnotify_end(struct ownnotify *o, int pid);

/* The listener received payload from backend pid: true when a worker put
 * it (the pair is then forgotten), so its tags are bumped already. now_ms
 * is put's clock (pairs older than OWNNOTIFY_TTL_MS are gone). While
 * a write on pid is between begin and end, it waits for the worker's put,
 * at most wait_ms: the listener's session often hears a commit before the
 * committing worker has read its own answer. */
bool ownnotify_take(struct ownnotify *o, int pid, const char *payload, int64_t now_ms, int wait_ms);

/* Pairs held, expired ones included until a put or take drops them. */
size_t ownnotify_size(struct ownnotify *o);

#endif
