"""
fresh_harness.py - helpers for the freshness tests (test_fresh_*.py): the
daemon's /metrics as numbers, PostgreSQL's own query counts, freezing the
cluster, and bursts of concurrent requests.

Query counts come from pg_stat_statements (calls of the route's statement,
counted by PostgreSQL at the end of each execution), so an Env that uses
pg_calls() is started with PG_STAT_STATEMENTS in its pg_options and
enable_pg_stat_statements(env) after start.
"""

import os
import re
import signal
import subprocess
import threading
import time

PG_STAT_STATEMENTS = ["shared_preload_libraries=pg_stat_statements",
                      "pg_stat_statements.track=all"]

ADMIN_TOKEN = "fresh-admin-token"

_SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN|\+Inf)$')


def metrics(env):
    """/metrics as {'name{labels}': float}."""
    r = env.request("GET", "/metrics", timeout=10)
    if r.status != 200:
        raise AssertionError("/metrics answered %r" % r)
    out = {}
    for line in r.body.decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SERIES.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def metric(env, name, default=0.0):
    return metrics(env).get(name, default)


def histogram_quantile(ms, name, q):
    """The upper bound (seconds) of the bucket holding quantile q of
    histogram `name` in a metrics() dict; None without observations."""
    buckets = []
    for k, v in ms.items():
        m = re.match(r'^%s_bucket\{le="([^"]+)"\}$' % re.escape(name), k)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            buckets.append((le, v))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return None
    want = q * buckets[-1][1]
    for le, cum in buckets:
        if cum >= want:
            return le
    return float("inf")


def enable_pg_stat_statements(env):
    env.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    env.psql("SELECT pg_stat_statements_reset()")


def pg_calls(env, marker):
    """Executions PostgreSQL counted for statements whose text contains marker."""
    v = env.psql_value("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                       "WHERE query LIKE '%%%s%%' AND query NOT LIKE '%%pg_stat_statements%%'"
                       % marker.replace("'", "''"))
    return int(v)


def wait_until(fn, timeout, interval=0.05, what="condition"):
    """Call fn until it returns a truthy value; return it, or raise after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %.1f s (last: %r)" % (what, timeout, last))
        time.sleep(interval)


def burst(env, paths, timeout=30.0):
    """Send one GET per path, all at once (one connection each, released
    together by a barrier). Returns the responses in order."""
    n = len(paths)
    barrier = threading.Barrier(n)
    out = [None] * n

    def one(i):
        try:
            barrier.wait(timeout)
            out[i] = env.request("GET", paths[i], timeout=timeout)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            out[i] = e

    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout + 5)
    return out


def load(env, paths, clients, per_client, pause=0.0, timeout=30.0):
    """clients keep-alive connections, each sending per_client GETs cycling
    through paths, pause seconds apart. Returns [(t_start_monotonic,
    response or exception)] in start order."""
    lock = threading.Lock()
    out = []

    def client(k):
        c = env.client(timeout=timeout)
        try:
            for i in range(per_client):
                p = paths[(k + i) % len(paths)]
                t0 = time.monotonic()
                try:
                    r = c.request("GET", p)
                except Exception as e:  # noqa: BLE001
                    r = e
                with lock:
                    out.append((t0, r))
                if pause:
                    time.sleep(pause)
        finally:
            c.close()

    ts = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout + 10)
    out.sort(key=lambda x: x[0])
    return out


def cluster_pids(env):
    """The postmaster and its children (backends, background processes)."""
    pm = env.pg_pid or env._read_postmaster_pid()
    if pm is None:
        raise AssertionError("no postmaster pid")
    r = subprocess.run(["pgrep", "-P", str(pm)], stdout=subprocess.PIPE, timeout=10)
    return [pm] + [int(x) for x in r.stdout.split()]


class Frozen:
    """with Frozen(env): PostgreSQL stopped with SIGSTOP (postmaster and
    children); SIGCONT on exit, whatever happens inside."""

    def __init__(self, env):
        self.env = env
        self.pids = []

    def __enter__(self):
        self.pids = cluster_pids(self.env)
        for p in self.pids:
            os.kill(p, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        for p in reversed(self.pids):
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        return False


def admin(env, method, path):
    return env.request(method, path, headers={"Authorization": "Bearer " + ADMIN_TOKEN})
