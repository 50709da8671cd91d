"""Concurrency: read-your-writes under parallel load, many keep-alive
connections on few threads, and a slow query not blocking cache hits.

The daemon runs with --threads 2 here, so that connection handling that ties
a thread to a kept-alive connection shows up as a stall."""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import RCTestCase  # noqa: E402

ENV = None
THREADS = 2


def setUpModule():
    global ENV
    ENV = harness.module_env(threads=THREADS)


def tearDownModule():
    if ENV is not None:
        ENV.stop()


def run_threads(targets, bound):
    """Start one thread per callable, join them all within `bound` seconds.
    Returns the list of threads still alive (should be empty)."""
    ts = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in ts:
        t.start()
    deadline = time.monotonic() + bound
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in ts if t.is_alive()]


class ReadYourWrites(RCTestCase):

    def test_reads_after_ack_never_older(self):
        users = self.env.claim("SELECT id FROM users ORDER BY id", 4)
        duration = 5.0
        max_writes = 400
        max_reads = 4000
        lock = threading.Lock()
        acks = {u: [] for u in users}       # per user: [(ack_time, version)] in ack order
        errors = []
        violations = []
        stop_at = time.monotonic() + duration
        counters = {"reads": 0, "writes": 0}
        name_re = re.compile(r"^rw-(\d+)-(\d+)$")

        def writer(uid):
            c = self.env.client(timeout=15)
            try:
                v = 0
                while time.monotonic() < stop_at and v < max_writes:
                    v += 1
                    r = c.request("PATCH", "/api/users/%d" % uid, {"name": "rw-%d-%d" % (uid, v)})
                    t = time.monotonic()
                    if r.status != 200:
                        errors.append("PATCH user %d v%d: %r" % (uid, v, r))
                        return
                    with lock:
                        acks[uid].append((t, v))
                        counters["writes"] += 1
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("writer %d: %r" % (uid, e))
            finally:
                c.close()

        def required_version(uid, started):
            with lock:
                best = 0
                for t, v in acks[uid]:
                    if t <= started:
                        best = max(best, v)
                return best

        def reader(k):
            c = self.env.client(timeout=15)
            i = 0
            try:
                while time.monotonic() < stop_at:
                    with lock:
                        if counters["reads"] >= max_reads:
                            return
                        counters["reads"] += 1
                    uid = users[(k + i) % len(users)]
                    i += 1
                    started = time.monotonic()
                    need = required_version(uid, started)
                    r = c.request("GET", "/api/users/%d" % uid)
                    if r.status != 200:
                        errors.append("GET user %d: %r" % (uid, r))
                        return
                    m = name_re.match(r.json().get("name", ""))
                    got = int(m.group(2)) if m else 0
                    if got < need:
                        violations.append("user %d: read started %.3fs after the ack of v%d saw v%d (X-Cache %s)"
                                          % (uid, started - stop_at + duration, need, got,
                                             r.headers.get("x-cache")))
            except Exception as e:  # noqa: BLE001
                errors.append("reader %d: %r" % (k, e))
            finally:
                c.close()

        targets = [lambda u=u: writer(u) for u in users] + [lambda k=k: reader(k) for k in range(8)]
        alive = run_threads(targets, duration + 30)
        self.assertEqual(alive, [], "all writers/readers must finish within %d s" % (duration + 30))
        self.assertEqual(errors, [], "no request may fail")
        self.assertGreater(counters["writes"], 10, "the test needs some acknowledged writes")
        self.assertGreater(counters["reads"], 50, "the test needs some reads")
        self.assertEqual(violations[:10], [], "%d reads saw data older than an acknowledged write"
                         % len(violations))
        for uid in users:
            final = self.env.psql_value("SELECT name FROM users WHERE id = %d" % uid)
            self.assertEqual(self.get("/api/users/%d" % uid).json()["name"], final,
                             "after the run, GET must equal the database")


class KeepAliveStall(RCTestCase):

    def test_many_keepalive_clients_on_two_threads(self):
        users = self.env.claim("SELECT id FROM users ORDER BY id", 4)
        jobs = [int(x[0]) for x in self.env.psql("SELECT id FROM jobs ORDER BY id LIMIT 4")]
        hot = ["/api/settings"] + ["/api/users/%d" % u for u in users] + ["/api/jobs/%d" % j for j in jobs]
        for p in hot:
            self.assertStatus(self.get(p), 200, "warming " + p)
        nclients, per_client, bound = 32, 60, 20.0
        errors = []
        done = []
        slowest = [0.0]
        lock = threading.Lock()

        def client(k):
            c = self.env.client(timeout=bound)
            try:
                for i in range(per_client):
                    p = hot[(k + i) % len(hot)]
                    r = c.request("GET", p)
                    if r.status != 200:
                        errors.append("client %d GET %s: %r" % (k, p, r))
                        return
                    with lock:
                        slowest[0] = max(slowest[0], r.elapsed)
                done.append(k)
            except Exception as e:  # noqa: BLE001
                errors.append("client %d: %r" % (k, e))
            finally:
                c.close()

        t0 = time.monotonic()
        alive = run_threads([lambda k=k: client(k) for k in range(nclients)], bound)
        took = time.monotonic() - t0
        self.assertEqual(alive, [], "%d keep-alive clients x %d GETs must finish within %.0f s with %d "
                         "daemon threads (%d still running)" % (nclients, per_client, bound, THREADS, len(alive)))
        self.assertEqual(errors[:5], [], "no request may fail")
        self.assertEqual(len(done), nclients)
        self.assertLess(slowest[0], 5.0, "no single request may wait 5 s (took %.1f s overall)" % took)

    def test_keepalive_misses_on_two_threads(self):
        """Same with uncached keys, which need a database worker each."""
        users = self.env.claim("SELECT id FROM users ORDER BY id", 64)
        nclients, bound = 16, 20.0
        errors = []

        def client(k):
            c = self.env.client(timeout=bound)
            try:
                for u in users[k::nclients]:
                    for p in ("/api/users/%d" % u, "/api/users/%d/jobs" % u):
                        r = c.request("GET", p)
                        if r.status != 200:
                            errors.append("GET %s: %r" % (p, r))
                            return
            except Exception as e:  # noqa: BLE001
                errors.append("client %d: %r" % (k, e))
            finally:
                c.close()

        alive = run_threads([lambda k=k: client(k) for k in range(nclients)], bound)
        self.assertEqual(alive, [], "uncached GETs from %d keep-alive clients must finish within %.0f s"
                         % (nclients, bound))
        self.assertEqual(errors[:5], [], "no request may fail")


class SlowQueryIsolation(RCTestCase):

    def test_locked_table_does_not_block_cache_hits(self):
        slow_uid = self.env.claim_user()
        job = self.env.claim("SELECT id FROM jobs ORDER BY id")
        cached = ["/api/settings", "/api/jobs/%d" % job]
        etags = {}
        for p in cached:
            self.get(p)
            r = self.get(p)
            self.assertXCache(r, "HIT", "precondition: %s is cached" % p)
            etags[p] = r.headers["etag"]

        session = self.env.psql_session()
        result = {}
        t = None
        try:
            session.send("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT 'locked';")
            session.wait_for("locked", timeout=30)

            def slow():
                try:
                    result["r"] = self.env.request("GET", "/api/users/%d" % slow_uid, timeout=60)
                except Exception as e:  # noqa: BLE001
                    result["e"] = e

            t = threading.Thread(target=slow, daemon=True)
            t.start()
            time.sleep(0.5)
            self.assertTrue(t.is_alive(), "precondition: the uncached GET must wait for the lock "
                            "(got %r)" % (result,))
            for round_ in range(3):
                for p in cached:
                    r = self.get(p)
                    self.assertStatus(r, 200, "cached %s while users is locked" % p)
                    self.assertXCache(r, "HIT", "cached %s while users is locked" % p)
                    self.assertLess(r.elapsed, 1.0, "a cache hit must answer within 1 s while another "
                                    "request waits on the database (took %.2f s)" % r.elapsed)
                    r = self.get(p, headers={"If-None-Match": etags[p]})
                    self.assertStatus(r, 304, "revalidation of %s while users is locked" % p)
                    self.assertLess(r.elapsed, 1.0, "304 within 1 s")
            self.assertTrue(t.is_alive(), "the uncached GET should still be waiting for the lock")
        finally:
            session.send("ROLLBACK;")
            session.close()
        t.join(30)
        self.assertFalse(t.is_alive(), "the slow GET must finish once the lock is released")
        self.assertNotIn("e", result, "the slow GET failed: %r" % result.get("e"))
        r = result["r"]
        self.assertStatus(r, 200, "the slow GET after the lock was released")
        self.assertEqual(r.json()["id"], slow_uid)
