"""Stale-if-error (issue 8): while PostgreSQL is frozen (SIGSTOP on the
postmaster and every backend) and while it is stopped, keys that were
cached answer STALE, cold keys answer 503 unavailable with Retry-After
within the timeouts, no worker hangs, and everything recovers by itself.

Bounds: statement timeout 1000 ms (a query's client deadline is 2 s),
connect timeout 2000 ms, 4 workers. The test route is fresh for 1 s,
answered STALE-while-revalidate for 1 s more, and STALE-if-error for 10
minutes, so "warm" keys here are past both the TTL and the revalidate
window: only the database failing lets them be answered."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fresh_harness as fh  # noqa: E402
import harness  # noqa: E402
from harness import RCTestCase  # noqa: E402

ENV = None
STATEMENT_TIMEOUT_MS = 1000
CONNECT_TIMEOUT_MS = 2000
# The longest a request may take while PostgreSQL is frozen: a query's
# deadline (statement timeout + 1 s) or a connect timeout, plus slack for
# the request queued behind one such query.
BOUND_S = (STATEMENT_TIMEOUT_MS + 1000 + CONNECT_TIMEOUT_MS) / 1000.0 + 2.0

TEST_ROUTES = [
    {"name": "sie_user", "method": "GET", "path": "/api/test/sie/{id:int}",
     "params": [{"name": "id", "from": "path"}],
     "sql": "SELECT id, name FROM users WHERE id = $1::bigint",
     "result": "object", "ttl": 1, "stale_while_revalidate": 1, "stale_if_error": 600,
     "tags": ["user:{id}"]},
]


def add_routes(cfg):
    cfg["routes"].extend(TEST_ROUTES)
    return cfg


def setUpModule():
    global ENV
    ENV = harness.module_env(config_transform=add_routes, threads=4,
                             env={"DATABASE_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS),
                                  "DATABASE_CONNECT_TIMEOUT_MS": str(CONNECT_TIMEOUT_MS)})


def tearDownModule():
    if ENV is not None:
        ENV.stop()


class Outage(RCTestCase):

    def warm(self, n):
        users = self.env.claim("SELECT id FROM users ORDER BY id", n)
        paths = ["/api/test/sie/%d" % u for u in users]
        for p in paths:
            self.assertXCache(self.get(p), "MISS", "fill " + p)
        time.sleep(2.3)  # past TTL and the revalidate window: error window only
        return paths

    def assertUnavailable(self, r, what):
        self.assertError(r, 503, "unavailable", what)
        self.assertRegex(r.headers.get("retry-after", ""), r"^\d+$", "%s: 503 carries Retry-After" % what)

    def assertRecovered(self, paths):
        """Every worker answers again: fresh reads of every key within 30 s."""
        deadline = time.monotonic() + 30
        pending = list(paths)
        last = None
        while pending and time.monotonic() < deadline:
            p = pending[0]
            last = self.get(p)
            if last.status == 200 and last.headers.get("x-cache") in ("MISS", "HIT"):
                pending.pop(0)
            else:
                time.sleep(0.2)
        self.assertEqual(pending, [], "every key answers fresh again within 30 s (last %r)" % last)
        # Every worker reads and writes again: a streak of 2 x threads + 2
        # successes in a row (a worker's first write on a connection the
        # restart broke may fail once: writes are never retried).
        uid = self.env.claim_user()
        need, streak, i, last = 2 * self.env.threads + 2, 0, 0, None
        while streak < need and time.monotonic() < deadline + 15:
            i += 1
            last = self.req("PATCH", "/api/users/%d" % uid, {"name": "Back %d" % i})
            ok = last.status == 200
            if ok:
                last = self.get("/api/users/%d" % uid)
                ok = last.status == 200 and last.json()["name"] == "Back %d" % i
            streak = streak + 1 if ok else 0
            if not ok:
                time.sleep(0.1)
        self.assertEqual(streak, need, "reads and writes work again (last %r)" % (last,))

    def test_frozen_database_warm_keys_stale_cold_keys_503(self):
        paths = self.warm(6)
        cold = ["/api/test/sie/%d" % u for u in self.env.claim("SELECT id FROM users ORDER BY id", 3)]
        answers = []
        with fh.Frozen(self.env):
            t_frozen = time.monotonic()
            for p in paths[:3]:
                r = self.get(p)
                answers.append(("warm", p, r.status, r.headers.get("x-cache"), r.elapsed))
                self.assertStatus(r, 200, "warm key %s while frozen" % p)
                self.assertXCache(r, "STALE", "warm key %s while frozen" % p)
                self.assertLess(r.elapsed, BOUND_S, "answered within the timeouts")
                self.assertRegex(r.headers.get("age", ""), r"^\d+$", "STALE carries Age")
            for p in cold:
                r = self.get(p)
                answers.append(("cold", p, r.status, r.headers.get("x-cache"), r.elapsed))
                self.assertUnavailable(r, "cold key %s while frozen" % p)
                self.assertLess(r.elapsed, BOUND_S, "503 within the timeouts (%.1f s)" % r.elapsed)
            # Once the prober has seen the database down (bounded by its
            # connect timeout), warm keys are answered at once.
            fh.wait_until(lambda: self.env.request("GET", "/health").status == 503, 15,
                          what="/health down while frozen")
            for p in paths[3:]:
                r = self.get(p)
                answers.append(("warm/known-down", p, r.status, r.headers.get("x-cache"), r.elapsed))
                self.assertXCache(r, "STALE", "warm key %s, database known down" % p)
                self.assertLess(r.elapsed, 0.5, "answered at once when the database is known down")
            frozen_for = time.monotonic() - t_frozen
        sys.stderr.write("\n  frozen %.1f s: %s\n" % (frozen_for, ", ".join(
            "%s %d %s %.0fms" % (k, st, xc, el * 1000) for k, _, st, xc, el in answers)))
        self.assertRecovered(paths + cold)

    def test_stopped_database_warm_keys_stale_cold_keys_503(self):
        paths = self.warm(3)
        cold = "/api/test/sie/%d" % self.env.claim_user()
        m0 = fh.metrics(self.env)
        try:
            self.env.stop_postgres()
            for p in paths:
                r = self.get(p)
                self.assertStatus(r, 200, "warm key %s with PostgreSQL stopped" % p)
                self.assertXCache(r, "STALE", "warm key %s with PostgreSQL stopped" % p)
                self.assertLess(r.elapsed, BOUND_S)
            r = self.get(cold)
            self.assertUnavailable(r, "cold key with PostgreSQL stopped")
            self.assertLess(r.elapsed, BOUND_S)
            m1 = fh.metrics(self.env)
            self.assertGreaterEqual(m1.get('respcache_stale_answers_total{reason="error"}', 0)
                                    - m0.get('respcache_stale_answers_total{reason="error"}', 0), 3,
                                    "stale-if-error answers counted by reason error")
        finally:
            if self.env.pg_proc is None:
                self.env.run_postgres()
        self.assertRecovered(paths + [cold])

    def test_slow_database_and_exhausted_pool_answer_stale(self):
        # A lock makes every query on users run into the statement timeout.
        # 12 warm keys at once on 4 workers: 4 queries time out (1 s) and
        # answer STALE; the 8 requests queued behind them have waited longer
        # than a query may run, so they answer STALE at once instead of
        # queueing a query each (which would take 3 s for the last ones).
        paths = self.warm(12)
        sess = self.env.psql_session()
        try:
            sess.send("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT 'locked';")
            sess.wait_for("locked")
            t0 = time.monotonic()
            rs = fh.burst(self.env, paths)
            took = time.monotonic() - t0
        finally:
            sess.send("ROLLBACK;")
            sess.close()
        bad = [r for r in rs if not isinstance(r, harness.Response) or r.status != 200
               or r.headers.get("x-cache") != "STALE"]
        self.assertEqual(bad, [], "every key answers STALE while its query cannot run")
        self.assertLess(took, 2.6, "queued requests do not wait for a query each (took %.1f s)" % took)
        self.assertRecovered(paths)

    def test_fresh_keys_hit_and_unknown_keys_503_while_stopped(self):
        uid = self.env.claim_user()
        p = "/api/users/%d/jobs?limit=3" % uid  # demo route: ttl 300 s, so fresh: a HIT
        self.get(p)
        try:
            self.env.stop_postgres()
            r = self.get(p)
            self.assertXCache(r, "HIT", "a fresh entry needs no database")
            r = self.get("/api/test/sie/%d?x=1" % 987654)
            self.assertUnavailable(r, "an uncached key")
        finally:
            if self.env.pg_proc is None:
                self.env.run_postgres()
        self.assertRecovered(["/api/test/sie/%d" % uid])
