/*
 * resolve.h - name resolution with a deadline.
 *
 * getaddrinfo() cannot be cancelled and waits as long as the resolver's
 * own settings say (resolv.conf: 5 s per try and server by default). On a
 * thread that answers requests, a Redis reconnect behind a slow DNS server
 * would stall every request for that long. rc_resolve runs the lookup in
 * glibc's resolver thread (getaddrinfo_a) and waits at most until the
 * deadline.
 */
#ifndef RC_RESOLVE_H
#define RC_RESOLVE_H

#include "common.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>

/* Resolve host and port as getaddrinfo(host, port, hints, res) would, giving
 * up at deadline_ms (rc_mono_ms clock). 0 with *res set (freeaddrinfo it), or
 * an EAI_* code (gai_strerror); EAI_AGAIN with *timed_out set when the
 * deadline passed first. Thread-safe. */
int rc_resolve(const char *host, const char *port, const struct addrinfo *hints,
               int64_t deadline_ms, struct addrinfo **res, bool *timed_out) RC_MUSTCHECK;

/* For a client that takes addresses besides names, as libpq does (host,
 * hostaddr) but resolves names itself, blocking for as long as resolv.conf
 * allows: if host is one DNS name (not a list, not a socket directory, not
 * an address already), resolve it by deadline_ms and write the name once
 * per address into hosts and the addresses into addrs, comma-separated (at
 * most RESOLVE_PIN_MAX). 1 pinned, 0 nothing to pin (the client resolves
 * as it would), -1 with errbuf set (no such name, timed out). */
#define RESOLVE_PIN_MAX 8
int rc_resolve_pin(const char *host, int64_t deadline_ms, char *hosts, size_t hosts_size,
                   char *addrs, size_t addrs_size, char *errbuf) RC_MUSTCHECK;

/* Lookups that timed out and are still running in glibc (each holds one
 * small block until glibc is done with it; the next rc_resolve frees the
 * finished ones). For tests. */
size_t rc_resolve_parked(void);

#endif
