"""Fresh under load (issue 8), one process: a stampede on a cold key runs
one query (single-flight), an expired hot key is answered STALE at once
while one refresh runs (stale-while-revalidate), and a soft purge of a tag
under load gives STALE answers, then fresh ones, with one query per key.

Queries are counted by PostgreSQL itself (pg_stat_statements: calls of the
route's statement), not only by respcache; the routes' statements differ in a
function call (md5, upper, lower), since pg_stat_statements tells statements
apart by structure, not by column names or constants. They select through
pg_sleep, so that a query takes long enough for requests to pile up on it
and an answer that waited for one is plainly slower than one that did not."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fresh_harness as fh  # noqa: E402
import harness  # noqa: E402
from harness import RCTestCase  # noqa: E402

ENV = None
QUERY_S = 0.4  # each test route's query sleeps this long

TEST_ROUTES = [
    # Cold-key stampede: cached for a minute.
    {"name": "sf_user", "method": "GET", "path": "/api/test/sf/{id:int}",
     "params": [{"name": "id", "from": "path"}],
     "sql": "SELECT id, name, md5(name) AS _sf_marker, pg_sleep(%s)::text AS _s FROM users WHERE id = $1::bigint"
            % QUERY_S,
     "result": "object", "ttl": 60, "stale_while_revalidate": 0, "stale_if_error": 0,
     "tags": ["user:{id}"]},
    # Hot key: fresh for 2 s, then 30 s of stale-while-revalidate.
    {"name": "swr_user", "method": "GET", "path": "/api/test/swr/{id:int}",
     "params": [{"name": "id", "from": "path"}],
     "sql": "SELECT id, name, upper(name) AS _swr_marker, pg_sleep(%s)::text AS _s FROM users WHERE id = $1::bigint"
            % QUERY_S,
     "result": "object", "ttl": 2, "stale_while_revalidate": 30, "stale_if_error": 0,
     "tags": ["user:{id}"]},
    # Soft purge: every key also carries the tag "softgroup".
    {"name": "soft_user", "method": "GET", "path": "/api/test/soft/{id:int}",
     "params": [{"name": "id", "from": "path"}],
     "sql": "SELECT id, name, lower(name) AS _soft_marker, pg_sleep(%s)::text AS _s FROM users WHERE id = $1::bigint"
            % QUERY_S,
     "result": "object", "ttl": 600, "stale_while_revalidate": 0, "stale_if_error": 0,
     "tags": ["user:{id}", "softgroup"]},
]


def add_routes(cfg):
    cfg["routes"].extend(TEST_ROUTES)
    return cfg


def setUpModule():
    global ENV
    ENV = harness.module_env(config_transform=add_routes, pg_options=fh.PG_STAT_STATEMENTS,
                             env={"RESPCACHE_ADMIN_TOKEN": fh.ADMIN_TOKEN})
    fh.enable_pg_stat_statements(ENV)


def tearDownModule():
    if ENV is not None:
        ENV.stop()


class SingleFlight(RCTestCase):

    def test_100_concurrent_gets_on_a_cold_key_run_one_query(self):
        uid = self.env.claim_user()
        path = "/api/test/sf/%d" % uid
        before_q = fh.pg_calls(self.env, "_sf_marker")
        m0 = fh.metrics(self.env)
        seen, done = [], threading.Event()

        def scrape():  # the in-flight gauge while the burst waits on its leader
            while not done.is_set():
                seen.append(fh.metrics(self.env).get("respcache_singleflight_inflight", 0))
                time.sleep(0.02)
        t = threading.Thread(target=scrape)
        t.start()
        try:
            rs = fh.burst(self.env, [path] * 100)
        finally:
            done.set()
            t.join(10)
        self.assertGreaterEqual(max(seen), 1, "/metrics showed the coalesced miss in flight")
        errors = [r for r in rs if not isinstance(r, harness.Response) or r.status != 200]
        self.assertEqual(errors[:5], [], "every one of the 100 GETs must answer 200")
        queries = fh.pg_calls(self.env, "_sf_marker") - before_q
        m1 = fh.metrics(self.env)
        kinds = {}
        for r in rs:
            kinds[r.headers.get("x-cache")] = kinds.get(r.headers.get("x-cache"), 0) + 1
        bodies = {r.body for r in rs}
        sys.stderr.write("\n  stampede: 100 GETs on a cold key -> %d queries counted by "
                         "PostgreSQL; X-Cache %s; waits %d\n"
                         % (queries, kinds, m1.get("respcache_singleflight_waits_total", 0)
                            - m0.get("respcache_singleflight_waits_total", 0)))
        self.assertLessEqual(queries, 2, "100 concurrent GETs on one cold key must run at most 2 "
                             "queries (pg_stat_statements), ran %d; X-Cache %s" % (queries, kinds))
        self.assertGreaterEqual(queries, 1, "the key was cold: one query must run")
        self.assertEqual(len(bodies), 1, "every answer carries the same body")
        self.assertLessEqual(kinds.get("MISS", 0), 2, "one MISS (the query), the rest from it: %s" % kinds)
        self.assertGreater(m1.get("respcache_singleflight_waits_total", 0),
                           m0.get("respcache_singleflight_waits_total", 0),
                           "some requests waited for the leader's query (metric)")
        self.assertEqual(m1.get("respcache_singleflight_inflight"), 0, "no flight left running")

    def test_waiters_of_a_flight_whose_tags_were_bumped_query_themselves(self):
        uid = self.env.claim_user()
        path = "/api/test/sf/%d" % uid
        # A write bumps user:<id> while the leader's query runs: its entry is
        # born invalid, so no waiter may be answered with the old name.
        import threading
        results = []
        t = threading.Thread(target=lambda: results.extend(fh.burst(self.env, [path] * 6)))
        t.start()
        time.sleep(QUERY_S / 2)
        r = self.req("PATCH", "/api/users/%d" % uid, {"name": "Renamed Mid-Flight"})
        self.assertStatus(r, 200)
        t.join(30)
        self.assertEqual(len(results), 6)
        after = [x for x in results if isinstance(x, harness.Response)]
        self.assertEqual(len(after), 6, "all answered: %r" % results)
        r = self.get(path)
        self.assertEqual(r.json()["name"], "Renamed Mid-Flight",
                         "after the burst, the key answers the renamed user (%r)" % r)
        self.assertNotEqual(r.headers.get("x-cache"), "STALE")


class StaleWhileRevalidate(RCTestCase):

    def test_expired_hot_key_answers_stale_fast_with_one_refresh(self):
        uid = self.env.claim_user()
        path = "/api/test/swr/%d" % uid
        r = self.get(path)
        self.assertXCache(r, "MISS", "fill")
        time.sleep(2.3)  # past its 2 s TTL, inside the 30 s window
        before_q = fh.pg_calls(self.env, "_swr_marker")
        m0 = fh.metrics(self.env)
        # ~1.5 s of load: the refresh (one query of QUERY_S) lands during it.
        out = fh.load(self.env, [path], clients=8, per_client=50, pause=0.03)
        fh.wait_until(lambda: self.get(path).headers.get("x-cache") == "HIT", 5,
                      what="a HIT once the refresh has stored the entry")
        queries = fh.pg_calls(self.env, "_swr_marker") - before_q
        m1 = fh.metrics(self.env)
        errors = [r for _, r in out if not isinstance(r, harness.Response) or r.status != 200]
        self.assertEqual(errors[:5], [], "every answer 200 under load")
        kinds = [r.headers.get("x-cache") for _, r in out]
        slowest = max(r.elapsed for _, r in out)
        stale = kinds.count("STALE")
        sys.stderr.write("\n  swr: %d answers on an expired hot key: %d STALE, %d HIT, %d MISS; "
                         "slowest %.0f ms; refresh queries %d\n"
                         % (len(kinds), stale, kinds.count("HIT"), kinds.count("MISS"),
                            slowest * 1000, queries))
        self.assertNotIn("MISS", kinds, "no request waits for the refresh: never a MISS")
        self.assertGreater(stale, 0, "the expired entry is answered STALE")
        self.assertEqual(kinds[0], "STALE", "the first answer after expiry is STALE")
        self.assertLess(slowest, QUERY_S * 0.75,
                        "every answer is fast (slowest %.0f ms; the query takes %d ms)"
                        % (slowest * 1000, QUERY_S * 1000))
        self.assertEqual(queries, 1, "exactly one refresh query (pg_stat_statements), ran %d" % queries)
        for _, r in out:
            if r.headers.get("x-cache") == "STALE":
                self.assertRegex(r.headers.get("age", ""), r"^\d+$", "STALE carries Age")
                self.assertGreaterEqual(int(r.headers["age"]), 2, "Age counts from the fill")
        self.assertEqual(kinds[-1], "HIT", "STALE until the refresh landed, then HIT")
        first_hit = kinds.index("HIT")
        self.assertNotIn("STALE", kinds[first_hit + 8:], "no STALE once the refresh landed")
        r = self.get(path)
        self.assertLess(int(r.headers["age"]), 3, "the refreshed entry is new")
        self.assertEqual(m1.get('respcache_stale_answers_total{reason="expired"}', 0)
                         - m0.get('respcache_stale_answers_total{reason="expired"}', 0), stale,
                         "stale answers counted by reason expired")
        self.assertGreaterEqual(m1.get('respcache_refreshes_total{result="ok"}', 0)
                                - m0.get('respcache_refreshes_total{result="ok"}', 0), 1)

    def test_invalidation_stays_hard_inside_the_window(self):
        uid = self.env.claim_user()
        path = "/api/test/swr/%d" % uid
        self.get(path)
        time.sleep(2.3)
        self.assertXCache(self.get(path), "STALE", "precondition: inside the window")
        time.sleep(QUERY_S + 0.3)  # the refresh landed
        time.sleep(2.3)            # and expired again
        r = self.req("PATCH", "/api/users/%d" % uid, {"name": "Hard Invalidation"})
        self.assertStatus(r, 200)
        r = self.get(path)
        self.assertXCache(r, "MISS", "a bumped tag is never answered stale, even inside the window")
        self.assertEqual(r.json()["name"], "Hard Invalidation", "read-your-writes")


class SoftPurge(RCTestCase):

    def test_soft_purge_under_load_stale_then_fresh_one_query_per_key(self):
        users = self.env.claim("SELECT id FROM users ORDER BY id", 5)
        paths = ["/api/test/soft/%d" % u for u in users]
        for p in paths:
            self.assertXCache(self.get(p), "MISS", "fill " + p)
            self.assertXCache(self.get(p), "HIT", "filled " + p)
        before_q = fh.pg_calls(self.env, "_soft_marker")
        m0 = fh.metrics(self.env)
        r = fh.admin(self.env, "DELETE", "/cache/tags/softgroup?mode=soft")
        self.assertStatus(r, 200, "soft purge")
        self.assertEqual(r.json(), {"tag": "softgroup", "invalidated": True, "mode": "soft"})
        out = fh.load(self.env, paths, clients=8, per_client=50, pause=0.03)
        for p in paths:
            fh.wait_until(lambda: self.get(p).headers.get("x-cache") == "HIT", 5,
                          what="%s fresh again" % p)
        queries = fh.pg_calls(self.env, "_soft_marker") - before_q
        m1 = fh.metrics(self.env)
        errors = [r for _, r in out if not isinstance(r, harness.Response) or r.status != 200]
        self.assertEqual(errors[:5], [], "every answer 200 under load")
        kinds = [r.headers.get("x-cache") for _, r in out]
        slowest = max(r.elapsed for _, r in out)
        sys.stderr.write("\n  soft purge: %d answers on 5 keys: %d STALE, %d HIT, %d MISS; slowest "
                         "%.0f ms; queries %d\n" % (len(kinds), kinds.count("STALE"),
                                                    kinds.count("HIT"), kinds.count("MISS"),
                                                    slowest * 1000, queries))
        self.assertNotIn("MISS", kinds, "a soft-purged entry is never a MISS")
        self.assertGreaterEqual(kinds.count("STALE"), 5, "each key answered STALE first")
        self.assertEqual(queries, 5, "one query per key (pg_stat_statements), ran %d" % queries)
        self.assertLess(slowest, QUERY_S * 0.75, "no answer waited for a refresh")
        self.assertEqual(m1.get('respcache_stale_answers_total{reason="soft"}', 0)
                         - m0.get('respcache_stale_answers_total{reason="soft"}', 0),
                         kinds.count("STALE"), "stale answers counted by reason soft")
        self.assertIn("HIT", kinds[-40:], "fresh answers once the refreshes landed")

    def test_hard_purge_is_still_the_default(self):
        uid = self.env.claim_user()
        p = "/api/test/soft/%d" % uid
        self.get(p)
        self.assertXCache(self.get(p), "HIT")
        r = fh.admin(self.env, "DELETE", "/cache/tags/user:%d" % uid)
        self.assertEqual(r.json(), {"tag": "user:%d" % uid, "invalidated": True})
        self.assertXCache(self.get(p), "MISS", "a hard purge drops the entry")
