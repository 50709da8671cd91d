"""Fresh under load across instances (issue 8): two respcache processes
sharing one Redis behind one Nginx upstream, for CACHE_PROVIDER=redis and
tiered.

- 100 concurrent GETs on a cold key, spread by Nginx over both instances,
  run about one query: the key's shared lock (SET NX PX, token-checked
  release) makes one instance query while the other polls for the entry;
- an expired hot key under load through both: STALE answers at once and one
  refresh query in all (a refresh skips a key whose lock the other instance
  holds, and looks again before it queries);
- a soft purge of a tag through one instance under load through both: STALE
  answers, then fresh ones, one query per key;
- a lock whose holder's fill was born invalid (a write bumped its tag while
  it queried) is taken over by a waiter at once, not waited out.

Queries are counted by PostgreSQL (pg_stat_statements), with the routes of
test_fresh_stampede.py (their queries sleep, so that requests pile up)."""

import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fresh_harness as fh  # noqa: E402
import harness  # noqa: E402
import multi  # noqa: E402
from harness import RCTestCase  # noqa: E402
from redis_harness import RedisServer, fcgi_request  # noqa: E402
from test_fresh_stampede import QUERY_S, add_routes  # noqa: E402

ENV = None
R = None
TMP = None
# Long enough for a waiter to see the leader's fill (one query of QUERY_S)
# even on a slow sanitizer build.
SINGLEFLIGHT_WAIT_MS = 5000


def setUpModule():
    global ENV, R, TMP
    TMP = tempfile.mkdtemp(prefix="rc-it-freshredis-")
    os.chmod(TMP, 0o755)
    R = RedisServer(TMP).start()
    try:
        e = R.respcache_env("redis")
        e["RESPCACHE_ADMIN_TOKEN"] = fh.ADMIN_TOKEN
        ENV = harness.module_env(config_transform=add_routes, pg_options=fh.PG_STAT_STATEMENTS,
                                 env=e, threads=4)
        fh.enable_pg_stat_statements(ENV)
    except BaseException:
        R.stop()
        raise


def tearDownModule():
    try:
        if ENV is not None:
            ENV.stop()
    finally:
        if R is not None:
            R.stop()
        shutil.rmtree(TMP, ignore_errors=True)


def metrics_of(sock):
    """One instance's /metrics as {'name{labels}': float}."""
    r = fcgi_request(sock, "GET", "/metrics")
    out = {}
    for line in r.body.decode("utf-8").splitlines():
        m = fh._SERIES.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def kinds_of(responses):
    kinds = {}
    for r in responses:
        k = r.headers.get("x-cache") if isinstance(r, harness.Response) else repr(r)
        kinds[k] = kinds.get(k, 0) + 1
    return kinds


class TwoInstances:
    """Mixin: A (the harness's daemon) and B share Redis; Nginx balances
    over both. Subclasses set PROVIDER."""

    PROVIDER = None

    @classmethod
    def setUpClass(cls):
        R.cli("FLUSHALL")
        cls.env.restart_respcache(env={"CACHE_PROVIDER": cls.PROVIDER,
                                       "CACHE_SINGLEFLIGHT_WAIT_MS": str(SINGLEFLIGHT_WAIT_MS)})
        cls.b = multi.Instance(cls.env, "b").start()
        multi.nginx_upstream(cls.env, [cls.env.rc_sock, cls.b.sock])
        cls.env.wait_ready()

    @classmethod
    def tearDownClass(cls):
        multi.nginx_upstream(cls.env, None)
        status = cls.b.stop()
        report = cls.b.sanitizer_report()
        cls.env.restart_respcache(env={"CACHE_PROVIDER": "redis",
                                       "CACHE_SINGLEFLIGHT_WAIT_MS": None})
        if report is not None:
            raise AssertionError("instance b: sanitizer report:\n" + report)
        if status != 0:
            raise AssertionError("instance b exited with %r on SIGTERM" % status)

    def socks(self):
        return (self.env.rc_sock, self.b.sock)

    def both_metrics(self):
        return [metrics_of(s) for s in self.socks()]

    def test_100_concurrent_gets_on_a_cold_key_through_two_instances(self):
        uid = self.env.claim_user()
        path = "/api/test/sf/%d" % uid
        before_q = fh.pg_calls(self.env, "_sf_marker")
        m0 = self.both_metrics()
        rs = fh.burst(self.env, [path] * 100)
        queries = fh.pg_calls(self.env, "_sf_marker") - before_q
        m1 = self.both_metrics()
        kinds = kinds_of(rs)
        errors = [r for r in rs if not isinstance(r, harness.Response) or r.status != 200]
        served = [m1[i].get('respcache_requests_total{route="sf_user",status="200"}', 0)
                  - m0[i].get('respcache_requests_total{route="sf_user",status="200"}', 0)
                  for i in (0, 1)]
        waits = [m1[i].get("respcache_singleflight_waits_total", 0)
                 - m0[i].get("respcache_singleflight_waits_total", 0) for i in (0, 1)]
        sys.stderr.write("\n  %s stampede: 100 GETs on a cold key through two instances "
                         "(answered %d + %d) -> %d queries counted by PostgreSQL; X-Cache %s; "
                         "waits %d + %d\n" % (self.PROVIDER, served[0], served[1], queries,
                                              kinds, waits[0], waits[1]))
        self.assertEqual(errors[:5], [], "every one of the 100 GETs must answer 200")
        self.assertGreater(min(served), 0, "Nginx spread the burst over both instances: %s" % served)
        self.assertLessEqual(queries, 2, "100 concurrent GETs on one cold key through two "
                             "instances must run at most 2 queries, ran %d; X-Cache %s"
                             % (queries, kinds))
        self.assertGreaterEqual(queries, 1, "the key was cold: one query must run")
        self.assertEqual(len({r.body for r in rs}), 1, "every answer carries the same body")
        self.assertLessEqual(kinds.get("MISS", 0), 2, "one MISS per query at most: %s" % kinds)
        self.assertGreater(min(waits), 0, "both instances had requests that waited (metric)")
        for m in m1:
            self.assertEqual(m.get("respcache_singleflight_inflight"), 0, "no flight left running")
        self.assertEqual(R.keys("*lock:*"), [], "every lock was released")

    def test_expired_hot_key_one_refresh_across_instances(self):
        uid = self.env.claim_user()
        path = "/api/test/swr/%d" % uid
        self.assertXCache(fcgi_request(self.env.rc_sock, "GET", path), "MISS", "fill")
        for s in self.socks():  # tiered: in both L1s too
            self.assertXCache(fcgi_request(s, "GET", path), "HIT", "filled")
        time.sleep(2.3)  # past its 2 s TTL, inside the 30 s window
        before_q = fh.pg_calls(self.env, "_swr_marker")
        out = fh.load(self.env, [path], clients=8, per_client=40, pause=0.03)
        for s in self.socks():
            fh.wait_until(lambda: fcgi_request(s, "GET", path).headers.get("x-cache") == "HIT", 5,
                          what="a HIT on each instance once the refresh has stored the entry")
        queries = fh.pg_calls(self.env, "_swr_marker") - before_q
        rs = [r for _, r in out]
        kinds = kinds_of(rs)
        errors = [r for r in rs if not isinstance(r, harness.Response) or r.status != 200]
        slowest = max(r.elapsed for r in rs if isinstance(r, harness.Response))
        sys.stderr.write("\n  %s swr: %d answers on an expired hot key through two instances: "
                         "X-Cache %s; slowest %.0f ms; refresh queries %d\n"
                         % (self.PROVIDER, len(rs), kinds, slowest * 1000, queries))
        self.assertEqual(errors[:5], [], "every answer 200 under load")
        self.assertNotIn("MISS", kinds, "no request waits for the refresh: never a MISS")
        self.assertGreater(kinds.get("STALE", 0), 0, "the expired entry is answered STALE")
        self.assertLess(slowest, QUERY_S * 0.75, "every answer is fast (slowest %.0f ms)"
                        % (slowest * 1000))
        self.assertEqual(queries, 1, "one refresh query across both instances, ran %d" % queries)

    def test_soft_purge_through_one_instance_under_load_through_both(self):
        users = self.env.claim("SELECT id FROM users ORDER BY id", 5)
        paths = ["/api/test/soft/%d" % u for u in users]
        for p in paths:
            self.assertXCache(fcgi_request(self.env.rc_sock, "GET", p), "MISS", "fill " + p)
            for s in self.socks():
                self.assertXCache(fcgi_request(s, "GET", p), "HIT", "filled " + p)
        before_q = fh.pg_calls(self.env, "_soft_marker")
        m0 = self.both_metrics()
        r = fcgi_request(self.b.sock, "DELETE", "/cache/tags/softgroup?mode=soft",
                         headers={"Authorization": "Bearer " + fh.ADMIN_TOKEN})
        self.assertStatus(r, 200, "soft purge through B")
        self.assertEqual(r.json(), {"tag": "softgroup", "invalidated": True, "mode": "soft"})
        # The soft bump reaches A (tiered: through the subscription).
        fh.wait_until(lambda: fcgi_request(self.env.rc_sock, "GET", paths[0])
                      .headers.get("x-cache") == "STALE", 2, what="A sees the soft purge")
        out = fh.load(self.env, paths, clients=8, per_client=40, pause=0.03)
        for p in paths:
            for s in self.socks():
                fh.wait_until(lambda: fcgi_request(s, "GET", p).headers.get("x-cache") == "HIT", 5,
                              what="%s fresh again on each instance" % p)
        queries = fh.pg_calls(self.env, "_soft_marker") - before_q
        m1 = self.both_metrics()
        rs = [r for _, r in out]
        kinds = kinds_of(rs)
        errors = [r for r in rs if not isinstance(r, harness.Response) or r.status != 200]
        slowest = max(r.elapsed for r in rs if isinstance(r, harness.Response))
        soft = sum(m1[i].get('respcache_stale_answers_total{reason="soft"}', 0)
                   - m0[i].get('respcache_stale_answers_total{reason="soft"}', 0) for i in (0, 1))
        sys.stderr.write("\n  %s soft purge: %d answers on 5 keys through two instances: "
                         "X-Cache %s; slowest %.0f ms; queries %d\n"
                         % (self.PROVIDER, len(rs), kinds, slowest * 1000, queries))
        self.assertEqual(errors[:5], [], "every answer 200 under load")
        self.assertNotIn("MISS", kinds, "a soft-purged entry is never a MISS")
        self.assertGreaterEqual(kinds.get("STALE", 0), 1, "soft-purged entries answered STALE")
        self.assertEqual(queries, 5, "one query per key across both instances, ran %d" % queries)
        self.assertLess(slowest, QUERY_S * 0.75, "no answer waited for a refresh")
        # + 1: the STALE answer A gave the wait_until above.
        self.assertEqual(soft, kinds.get("STALE", 0) + 1, "stale answers counted by reason soft")

    def test_waiters_take_over_a_lock_whose_fill_was_born_invalid(self):
        # One GET on A leads (takes the lock, queries); three GETs on B find
        # the lock held and poll. A write bumps the tag while A queries, so
        # A's entry is born invalid: B's waiters must take the lock over
        # once A releases it, not poll out the whole single-flight wait.
        uid = self.env.claim_user()
        path = "/api/test/sf/%d" % uid
        out = {}

        def get(name, sock):
            t0 = time.monotonic()
            try:
                out[name] = (fcgi_request(sock, "GET", path, timeout=30), time.monotonic() - t0)
            except Exception as e:  # noqa: BLE001 - reported below
                out[name] = (e, time.monotonic() - t0)

        ts = [threading.Thread(target=get, args=("a", self.env.rc_sock))]
        ts[0].start()
        time.sleep(0.05)
        for k in range(3):
            ts.append(threading.Thread(target=get, args=("b%d" % k, self.b.sock)))
            ts[-1].start()
        time.sleep(QUERY_S / 2)
        r = fcgi_request(self.b.sock, "PATCH", "/api/users/%d" % uid, {"name": "Bumped Mid-Flight"})
        self.assertStatus(r, 200)
        for t in ts:
            t.join(30)
        for name, (r, took) in sorted(out.items()):
            self.assertIsInstance(r, harness.Response, "%s: %r" % (name, r))
            self.assertStatus(r, 200, name)
        slowest_b = max(took for name, (_, took) in out.items() if name != "a")
        sys.stderr.write("\n  %s lock take-over: B's waiters answered within %.2f s (wait bound "
                         "%.1f s)\n" % (self.PROVIDER, slowest_b, SINGLEFLIGHT_WAIT_MS / 1000.0))
        self.assertLess(slowest_b, SINGLEFLIGHT_WAIT_MS / 1000.0 * 0.6,
                        "B's waiters queried themselves soon after A's invalid fill (slowest "
                        "%.2f s; the wait bound is %.1f s)" % (slowest_b, SINGLEFLIGHT_WAIT_MS / 1000.0))
        for s in self.socks():
            r = fcgi_request(s, "GET", path)
            self.assertEqual(r.json()["name"], "Bumped Mid-Flight", "each instance reads the write")
            self.assertNotEqual(r.headers.get("x-cache"), "STALE")


class RedisFreshTwoInstances(TwoInstances, RCTestCase):
    PROVIDER = "redis"


class TieredFreshTwoInstances(TwoInstances, RCTestCase):
    PROVIDER = "tiered"
