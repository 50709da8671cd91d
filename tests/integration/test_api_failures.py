"""Failure answers of API.md's conventions: 503 unavailable (with Retry-After)
when respcache or PostgreSQL is down, 500 internal without leaked internals,
bounded query time, X-Cache BYPASS without a cache, respcache's own body
limit, and UTC timestamps from a database whose time zone is not UTC.

This module runs on a modified copy of the demo config (extra routes that
fail on purpose) and a PostgreSQL whose time zone is Asia/Kolkata."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import RCTestCase, parse_ts  # noqa: E402

ENV = None
STATEMENT_TIMEOUT_MS = 1000

TEST_ROUTES = [
    # Updates the user, then fails in the same statement: the write must
    # leave nothing behind (one transaction).
    {"name": "test_halfway", "method": "PATCH", "path": "/api/test/halfway/{id:int}",
     "params": [{"name": "id", "from": "path"},
                {"name": "name", "from": "body", "type": "string", "required": True}],
     "sql": "WITH u AS (UPDATE users SET name = $2::text, updated_at = now() "
            "WHERE id = $1::bigint RETURNING id) "
            "SELECT u.id, 1 / (SELECT count(*) - 1 FROM u) AS boom FROM u",
     "result": "object", "invalidate": ["user:{id}"]},
    {"name": "test_boom", "method": "GET", "path": "/api/test/boom/{id:int}",
     "params": [{"name": "id", "from": "path"}],
     "sql": "SELECT current_setting('respcache.no_such_setting_' || $1::text) AS x",
     "result": "object", "ttl": 60},
    {"name": "test_boom_write", "method": "POST", "path": "/api/test/boom",
     "params": [{"name": "v", "from": "body", "type": "int", "required": True}],
     "sql": "SELECT current_setting('respcache.no_such_setting_' || $1::text) AS x",
     "result": "object"},
    {"name": "test_div0", "method": "GET", "path": "/api/test/div0/{id:int}",
     "params": [{"name": "id", "from": "path"}],
     "sql": "SELECT 1 / ($1::int - $1::int) AS x", "result": "object", "ttl": 60},
    {"name": "test_div5", "method": "GET", "path": "/api/test/div5/{id:int}",
     "params": [{"name": "id", "from": "path"}],
     "sql": "SELECT 10 / ($1::int - 5) AS x", "result": "object", "ttl": 0},
    {"name": "test_ttl", "method": "GET", "path": "/api/test/ttl/{id:int}",
     "params": [{"name": "id", "from": "path"}],
     "sql": "SELECT id, name FROM users WHERE id = $1::bigint", "result": "object",
     "ttl": 1, "negative_ttl": 1, "tags": ["user:{id}"]},
    {"name": "test_slow", "method": "GET", "path": "/api/test/slow",
     "params": [], "sql": "SELECT pg_sleep(30)::text AS x", "result": "object", "ttl": 0},
]


def add_routes(cfg):
    cfg["routes"].extend(TEST_ROUTES)
    return cfg


def setUpModule():
    global ENV
    ENV = harness.module_env(config_transform=add_routes, pg_options=["timezone=Asia/Kolkata"],
                             env={"DATABASE_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS)})


def tearDownModule():
    if ENV is not None:
        ENV.stop()


class Unavailable(RCTestCase):

    def assertUnavailable(self, r, what):
        self.assertError(r, 503, "unavailable", what)
        self.assertIn("retry-after", r.headers, "%s: 503 needs Retry-After" % what)
        self.assertRegex(r.headers["retry-after"], r"^\d+$", "%s: Retry-After in seconds" % what)

    def test_respcache_down_gives_json_503(self):
        try:
            self.env.stop_respcache()
            r = self.get("/api/users/1")
            self.assertUnavailable(r, "GET with respcache stopped (answered by nginx)")
            r = self.req("POST", "/api/users", {"email": "down@test.example", "name": "x"})
            self.assertUnavailable(r, "POST with respcache stopped")
        finally:
            self.env.restart_respcache()
        self.assertStatus(self.get("/api/users/1"), 200, "after respcache is back")

    def test_database_down_gives_503_and_recovers(self):
        cached, uncached = self.env.claim("SELECT id FROM users ORDER BY id", 2)
        self.get("/api/users/%d" % cached)
        self.assertXCache(self.get("/api/users/%d" % cached), "HIT", "precondition")
        try:
            self.env.stop_postgres()
            r = self.get("/api/users/%d" % uncached)
            self.assertUnavailable(r, "uncached GET with PostgreSQL down")
            self.assertLess(r.elapsed, 8.0, "the answer must come within the connect timeout bound")
            r = self.req("PATCH", "/api/users/%d" % uncached, {"name": "x"})
            self.assertUnavailable(r, "PATCH with PostgreSQL down")
            r = self.get("/api/users/%d" % cached)
            self.assertStatus(r, 200, "a cache hit does not need the database")
            self.assertXCache(r, "HIT", "cached user with PostgreSQL down")
        finally:
            if self.env.pg_proc is None:
                self.env.run_postgres()
        # Recovered = every worker answers again: 2 x threads + 2 requests in
        # a row (reads and writes) succeed. Bounded: 30 s.
        need = 2 * self.env.threads + 2
        deadline = time.monotonic() + 30
        t0 = time.monotonic()
        streak, last = 0, None
        i = 0
        while streak < need and time.monotonic() < deadline:
            i += 1
            if i % 2:
                last = self.get("/api/users/%d" % uncached)
            else:
                last = self.req("PATCH", "/api/users/%d" % uncached, {"name": "Back %d" % i})
            streak = streak + 1 if last.status == 200 else 0
            if last.status != 200:
                time.sleep(0.1)
        self.assertEqual(streak, need, "respcache must answer every request again within 30 s after "
                         "PostgreSQL is back (last: %r)" % (last,))
        took = time.monotonic() - t0
        r = self.req("PATCH", "/api/users/%d" % uncached, {"name": "Back Again"})
        self.assertStatus(r, 200, "writes work again (recovered after %.1f s)" % took)
        self.assertEqual(self.get("/api/users/%d" % uncached).json()["name"], "Back Again")


class Internal(RCTestCase):

    def test_failing_query_gives_500_without_internals(self):
        for method, p, body in (("GET", "/api/test/boom/1", None), ("POST", "/api/test/boom", {"v": 1})):
            r = self.req(method, p, body)
            b = self.assertError(r, 500, "internal", "%s %s (the route's SQL fails at run time)" % (method, p))
            self.assertNotIn("no_such_setting", b["message"], "the database's error text must not reach the client")
        r = self.get("/api/test/boom/1")
        self.assertNotEqual(r.headers.get("x-cache"), "HIT", "a 500 must never be cached")

    def test_a_write_that_fails_halfway_changes_nothing(self):
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        row = self.env.psql("SELECT name, updated_at FROM users WHERE id = %d" % uid)
        self.get(p)
        cached = self.get(p)
        self.assertXCache(cached, "HIT", "precondition")
        r = self.req("PATCH", "/api/test/halfway/%d" % uid, {"name": "Half Written"})
        self.assertError(r, 500, "internal", "the statement updated the user, then failed")
        self.assertEqual(self.env.psql("SELECT name, updated_at FROM users WHERE id = %d" % uid),
                         row, "the update was rolled back with the rest")
        after = self.get(p)
        self.assertStatus(after, 200)
        self.assertEqual(after.json(), cached.json(), "GET still shows the user as it is")
        # A write that works on the same route's user, for contrast.
        self.assertStatus(self.req("PATCH", p, {"name": "Whole"}), 200)
        self.assertEqual(self.get(p).json()["name"], "Whole")

    def test_route_recovers_after_a_failing_call(self):
        # A runtime error leaves the prepared statement on the server; the
        # next calls on the same connections must keep working (no 42P05).
        for i in range(8):
            self.assertError(self.get("/api/test/div5/5"), 500, "internal",
                             "GET /api/test/div5/5 (division by zero), call %d" % i)
        for i in range(6, 14):
            r = self.get("/api/test/div5/%d" % i)
            self.assertStatus(r, 200, "GET /api/test/div5/%d after failing calls on the same "
                                      "connections: expected 200" % i)

    def test_sql_bug_in_data_exception_class_is_500_not_422(self):
        # Division by zero is SQLSTATE class 22 like a malformed value, but
        # it is the route's bug, not the client's: 500, not 422.
        r = self.get("/api/test/div0/1")
        b = self.assertError(r, 500, "internal", "GET /api/test/div0/1 (division by zero in SQL)")
        self.assertNotIn("division", b["message"].lower(), "the database's error text must not reach the client")

    def test_slow_query_bounded_by_statement_timeout(self):
        t0 = time.monotonic()
        r = self.get("/api/test/slow")
        took = time.monotonic() - t0
        self.assertIn(r.status, (500, 503), "query over statement_timeout: expected 503 (or 500), got %r" % r)
        self.assertError(r, r.status, None, "slow query")
        if r.status == 503:
            self.assertIn("retry-after", r.headers, "503 needs Retry-After")
        self.assertLess(took, STATEMENT_TIMEOUT_MS / 1000.0 + 5, "the answer must come soon after the timeout")
        self.assertNotIn("cancel", r.json()["message"].lower(), "no database error text")
        self.assertStatus(self.get("/api/users/1"), 200, "the worker is usable after a timeout")


class NoCacheProvider(RCTestCase):

    def test_provider_none_bypass(self):
        try:
            self.env.restart_respcache(env={"CACHE_PROVIDER": "none"})
            uid = self.env.claim_user()
            p = "/api/users/%d" % uid
            r1, r2 = self.get(p), self.get(p)
            for r in (r1, r2):
                self.assertStatus(r, 200)
                self.assertIn(r.headers.get("x-cache"), ("BYPASS", "MISS"),
                              "without a cache X-Cache must say BYPASS (never HIT), got %r" % r)
                self.assertNotIn("age", r.headers, "no Age without a cached entry")
                self.assertEqual(r.headers.get("cache-control"), "no-cache")
            self.assertEqual(r2.headers.get("x-cache"), "BYPASS", "X-Cache without a cache provider")
            self.assertEqual(r1.headers.get("etag"), r2.headers.get("etag"), "ETag is the body's hash")
            r = self.get(p, headers={"If-None-Match": r1.headers["etag"]})
            self.assertStatus(r, 304, "If-None-Match works without a cache too")
            self.assertStatus(self.req("PATCH", p, {"name": "No Cache"}), 200)
            self.assertEqual(self.get(p).json()["name"], "No Cache")
        finally:
            self.env.restart_respcache(env={"CACHE_PROVIDER": None})


class Ttl(RCTestCase):

    def test_entries_expire_after_their_ttl(self):
        uid = self.env.claim_user()
        for p, status in (("/api/test/ttl/%d" % uid, 200), ("/api/test/ttl/987654321", 404)):
            self.assertXCache(self.get(p), "MISS", p)
            r = self.get(p)
            self.assertStatus(r, status, p)
            self.assertXCache(r, "HIT", p)
            time.sleep(2.5)
            r = self.get(p)
            self.assertStatus(r, status, p)
            self.assertIn(r.headers.get("x-cache"), ("MISS", "STALE"),
                          "%s: an entry with ttl 1 s must not be a fresh HIT after 2.5 s, got %r" % (p, r))


class DaemonBodyLimit(RCTestCase):

    def test_respcache_enforces_its_own_body_limit(self):
        try:
            self.env.restart_respcache(env={"RESPCACHE_MAX_BODY_BYTES": "1024"})
            small = {"value": "s" * (1024 - len('{"value": ""}'))}
            r = self.req("PUT", "/api/settings/limit_test", small)
            self.assertStatus(r, 200, "a body of exactly max_body_bytes is accepted")
            r = self.req("PUT", "/api/settings/limit_test", {"value": "b" * 2000})
            self.assertError(r, 413, "payload_too_large", "body over max_body_bytes (checked by respcache)")
        finally:
            self.env.restart_respcache(env={"RESPCACHE_MAX_BODY_BYTES": None})



class DatabaseHostName(RCTestCase):
    """DATABASE_URL with a host name: respcache resolves it within the
    connect timeout (libpq alone would wait as long as resolv.conf says),
    and hands libpq the addresses, keeping the name."""

    def test_a_host_name_connects_and_an_unknown_one_fails_fast(self):
        url = "postgresql://postgres@localhost:%d/respcache" % self.env.pg_port
        try:
            self.env.restart_respcache(env={"DATABASE_URL": url,
                                            "DATABASE_CONNECT_TIMEOUT_MS": "1000"})
            uid = self.env.claim_user()
            self.assertStatus(self.get("/api/users/%d/jobs" % uid), 200, "through localhost")
            rows = self.env.psql("SELECT DISTINCT host(client_addr) FROM pg_stat_activity "
                                 "WHERE application_name = 'respcache'")
            self.assertIn(["127.0.0.1"], rows, "the workers connected over TCP to localhost")
            bad = "postgresql://postgres@respcache-no-such-host.invalid:%d/respcache" % self.env.pg_port
            self.env.restart_respcache(env={"DATABASE_URL": bad})
            t0 = time.monotonic()
            r = self.get("/api/users/%d/jobs" % self.env.claim_user())
            took = time.monotonic() - t0
            self.assertError(r, 503, "unavailable", "a host name that does not resolve")
            self.assertLess(took, 3.0, "within the connect timeout (1 s) and a margin")
            with open(self.env.rc_log, "rb") as f:
                log = f.read().decode("utf-8", "replace")
            self.assertIn("cannot resolve respcache-no-such-host.invalid", log)
        finally:
            # Back to the harness's own DATABASE_URL (None would remove it).
            self.env.extra_env.pop("DATABASE_URL", None)
            self.env.extra_env.pop("DATABASE_CONNECT_TIMEOUT_MS", None)
            self.env.restart_respcache()
        self.assertStatus(self.get("/api/users/%d" % self.env.claim_user()), 200,
                          "the database is reachable again after the test")

class TimeZone(RCTestCase):

    def test_timestamps_utc_from_non_utc_database(self):
        self.assertEqual(self.env.psql_value("SHOW timezone"), "Asia/Kolkata", "precondition: server time zone")
        uid = self.env.claim_user()
        u = self.get("/api/users/%d" % uid).json()
        self.assertTimestamp(u["created_at"])
        epoch = float(self.env.psql_value("SELECT extract(epoch FROM created_at) FROM users WHERE id = %d" % uid))
        self.assertAlmostEqual(parse_ts(u["created_at"]), epoch, delta=1e-5,
                               msg="created_at must be the same instant, written in UTC")
        r = self.req("POST", "/api/sessions", {"user_id": uid, "ttl_seconds": 60})
        self.assertStatus(r, 201)
        s = r.json()
        self.assertAlmostEqual(parse_ts(s["created_at"]), time.time(), delta=120,
                               msg="a session created now must say now in UTC")
