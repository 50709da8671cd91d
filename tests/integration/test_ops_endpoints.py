"""Operational endpoints (issue 4, API.md "Operational endpoints"): /health,
/metrics (Prometheus text, counters that move, promtool), the admin routes
/cache* with their auth and method cases, JSON logs (request lines at debug,
5xx at warn, request ids from Nginx, SIGHUP reopening the log file) and
secrets kept out of logs and bodies.

The daemon here has an admin token, LOG_LEVEL=debug, a log file
(RESPCACHE_LOG_FILE) and a DATABASE_URL carrying a password (PostgreSQL uses
trust auth in the harness, so the password is ignored by the server but is
part of the daemon's configuration, which is the point)."""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import RCTestCase  # noqa: E402

ENV = None
TOKEN = "rc-admin-" + secrets.token_hex(16)
PASSWORD = "rcpw" + secrets.token_hex(12)
LOG_FILE = None

TEST_ROUTES = [
    # A route whose SQL fails at run time: a 500 to log at warn.
    {"name": "test_ops_boom", "method": "GET", "path": "/api/test/ops_boom/{id:int}",
     "params": [{"name": "id", "from": "path"}],
     "sql": "SELECT current_setting('respcache.no_such_setting_' || $1::text) AS x",
     "result": "object", "ttl": 60},
]

PSEUDO_ROUTES = {"unmatched", "health", "metrics", "admin"}
ADMIN_KEYS = ["bytes", "deletes", "errors", "evictions", "hit_rate", "hits", "keys", "misses",
              "provider", "sets", "stale"]
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def provider(env):
    """The cache provider the Env's daemon runs with (the module also runs
    under test_redis_api_suite with redis and tiered)."""
    return env.extra_env.get("CACHE_PROVIDER") or "memory"


def add_routes(cfg):
    cfg["routes"].extend(TEST_ROUTES)
    return cfg


def url_with_password(env):
    return "postgresql://postgres:%s@/respcache?host=%s&port=%d" % (PASSWORD, env.pg_sockdir, env.pg_port)


def setUpModule():
    global ENV, LOG_FILE
    ENV = harness.module_env(config_transform=add_routes,
                             env={"RESPCACHE_ADMIN_TOKEN": TOKEN, "LOG_LEVEL": "debug"})
    try:
        # The Env's paths and port exist only now: a second start with the
        # password URL and the log file.
        LOG_FILE = os.path.join(ENV.tmp, "respcache-json.log")
        ENV.restart_respcache(env={"DATABASE_URL": url_with_password(ENV), "RESPCACHE_LOG_FILE": LOG_FILE})
        wait_health(ENV, "ok", 10)
    except BaseException:
        ENV.stop()
        raise


def tearDownModule():
    if ENV is not None:
        ENV.stop()


def wait_health(env, want, bound):
    """Poll /health until its status is `want`; returns the last response."""
    deadline = time.monotonic() + bound
    r = None
    while time.monotonic() < deadline:
        r = env.request("GET", "/health", timeout=5)
        try:
            if r.json().get("status") == want:
                return r
        except ValueError:
            pass
        time.sleep(0.1)
    raise AssertionError("/health did not report %r within %d s (last: %r)" % (want, bound, r))


# ---------------------------------------------------------------- metrics parsing

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] for every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a Prometheus sample line: %r" % line)
        labels = dict(LABEL.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def value(samples, name, **labels):
    """The sample's value; 0 when the series is absent (counters at zero may be omitted)."""
    for n, lab, v in samples:
        if n == name and all(lab.get(k) == str(x) for k, x in labels.items()):
            return v
    return 0.0


def has(samples, name):
    return any(n == name for n, _, _ in samples)


# ---------------------------------------------------------------- log reading

def read_log_lines(path, offset=0):
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    return data.decode("utf-8", "replace").splitlines()


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def wait_log(path, offset, pred, bound=3.0):
    """Parsed log objects after `offset` once one satisfies pred (bounded)."""
    deadline = time.monotonic() + bound
    objs = []
    while True:
        objs = []
        if os.path.exists(path):
            for line in read_log_lines(path, offset):
                try:
                    objs.append(json.loads(line))
                except ValueError:
                    pass
        if any(pred(o) for o in objs) or time.monotonic() > deadline:
            return objs
        time.sleep(0.05)


class OpsCase(RCTestCase):

    def metrics(self):
        r = self.get("/metrics")
        self.assertStatus(r, 200, "GET /metrics")
        return parse_metrics(r.body.decode("utf-8"))

    def admin(self, method, path, token=TOKEN, headers=None):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        return self.req(method, path, headers=h)

    def fill(self, path):
        """GET until the entry is cached (MISS then HIT)."""
        r = self.get(path)
        self.assertStatus(r, (200, 404), "filling %s" % path)
        r = self.get(path)
        self.assertXCache(r, "HIT", "precondition: %s cached" % path)
        return r


# ================================================================ /health

class Health(OpsCase):

    def test_health_ok_reports_db_and_cache_with_latencies(self):
        r = wait_health(self.env, "ok", 10)
        self.assertStatus(r, 200, "GET /health with database and memory cache up")
        b = self.assertJsonBody(r, "GET /health")
        self.assertEqual(sorted(b.keys()), ["cache", "db", "status"], "health keys: %r" % b)
        self.assertEqual(b["status"], "ok")
        self.assertIs(b["db"]["ok"], True, "db.ok must be the JSON true: %r" % b)
        self.assertIsInstance(b["db"]["latency_ms"], (int, float), "db.latency_ms is a number: %r" % b)
        self.assertGreaterEqual(b["db"]["latency_ms"], 0)
        self.assertEqual(b["cache"]["provider"], provider(self.env), "cache.provider: %r" % b)
        self.assertIs(b["cache"]["ok"], True, "cache.ok: %r" % b)
        self.assertIsInstance(b["cache"]["latency_ms"], (int, float), "cache.latency_ms: %r" % b)
        self.assertNotEqual(r.headers.get("x-cache"), "HIT", "/health is never served from the cache")

    def test_health_degraded_while_the_shared_cache_is_down(self):
        # API.md: "degraded" = shared cache down, still serving (200). The
        # breaker shows in /metrics; a write during the outage counts its
        # write-through as an error, never as stored.
        if provider(self.env) == "memory":
            self.skipTest("a process-local cache cannot be down (runs under test_redis_api_suite)")

        def series(m, name, **labels):
            return sum(v for n, lb, v in m if n == name and all(lb.get(k) == x
                                                                for k, x in labels.items()))

        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        wait_health(self.env, "ok", 10)
        self.assertEqual(series(self.metrics(), "respcache_redis_breaker_state"), 0, "closed")
        err0 = series(self.metrics(), "respcache_write_through_total", result="error")
        self.env.redis.stop()
        try:
            r = wait_health(self.env, "degraded", 10)
            self.assertStatus(r, 200, "GET /health with the shared cache down")
            b = self.assertJsonBody(r, "GET /health")
            self.assertEqual(b["status"], "degraded", "%r" % b)
            self.assertIs(b["cache"]["ok"], False, "%r" % b)
            self.assertIs(b["db"]["ok"], True, "%r" % b)
            self.assertEqual(b["cache"]["provider"], provider(self.env))
            g = self.get(p)
            self.assertStatus(g, 200, "GET %s from the database while the cache is down" % p)
            self.assertEqual(g.json()["id"], uid)
            # A write that answers 404 stored nothing and counts nothing.
            missing = self.req("PATCH", "/api/users/2000000000", {"name": "Nobody"})
            self.assertStatus(missing, 404, "PATCH of a user that does not exist")
            self.assertEqual(series(self.metrics(), "respcache_write_through_total",
                                    result="error"), err0, "a 404 write is not a write-through error")
            # README: writes still commit and answer, and say so.
            w = self.req("PATCH", p, {"name": "Written In The Dark"})
            self.assertStatus(w, 200, "PATCH while the cache is down")
            self.assertEqual(w.headers.get("x-cache-invalidation"), "failed")
            self.assertEqual(w.json()["name"], "Written In The Dark")
            m = self.metrics()
            self.assertIn(series(m, "respcache_redis_breaker_state"), (1, 2), "open or half-open")
            self.assertEqual(series(m, "respcache_write_through_total", result="error"), err0 + 1,
                             "a write-through the cache could not take is one error")
        finally:
            self.env.redis.start()
        r = wait_health(self.env, "ok", 15)
        self.assertEqual(r.json()["status"], "ok", "back to ok once Redis is back")
        deadline = time.monotonic() + 10
        while series(self.metrics(), "respcache_redis_breaker_state") != 0:
            self.assertLess(time.monotonic(), deadline, "the breaker closes again")
            time.sleep(0.1)
        self.assertEqual(self.get(p).json()["name"],
                         self.env.psql_value("SELECT name FROM users WHERE id = %d" % uid),
                         "after the outage, GET shows the row as it is")

    def test_health_head_same_status_no_body(self):
        wait_health(self.env, "ok", 10)
        r = self.req("HEAD", "/health")
        self.assertStatus(r, 200, "HEAD /health")
        self.assertEqual(r.body, b"", "HEAD /health must have no body")

    def test_health_other_methods_405_with_allow(self):
        for m in ("POST", "PUT", "PATCH", "DELETE"):
            r = self.req(m, "/health", body={} if m in ("POST", "PUT", "PATCH") else None)
            self.assertError(r, 405, "method_not_allowed", "%s /health" % m)
            self.assertEqual(r.headers.get("allow"), "GET, HEAD", "%s /health: Allow header" % m)

    def test_health_answers_fast(self):
        wait_health(self.env, "ok", 10)
        worst = max(self.get("/health").elapsed for _ in range(20))
        self.assertLess(worst, 0.15, "/health must answer within 100 ms (150 ms allowed for the "
                                     "client), slowest of 20 took %.0f ms" % (worst * 1000))


# ================================================================ /metrics

class Metrics(OpsCase):

    def test_metrics_head_same_status_no_body(self):
        g = self.get("/metrics")
        h = self.req("HEAD", "/metrics")
        self.assertStatus(h, 200, "HEAD /metrics")
        self.assertEqual(h.body, b"", "HEAD /metrics must have no body")
        self.assertEqual(h.headers.get("content-type"), g.headers.get("content-type"))

    def test_metrics_content_type_and_series(self):
        self.get("/api/users/1")
        r = self.get("/metrics")
        self.assertStatus(r, 200, "GET /metrics")
        self.assertEqual(r.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8",
                         "Prometheus text format 0.0.4 content type")
        s = parse_metrics(r.body.decode("utf-8"))
        for name in ("respcache_requests_total", "respcache_cache_requests_total",
                     "respcache_request_duration_seconds_bucket", "respcache_request_duration_seconds_sum",
                     "respcache_request_duration_seconds_count", "respcache_db_query_duration_seconds_bucket",
                     "respcache_db_query_duration_seconds_count", "respcache_db_queries_total",
                     "respcache_db_errors_total", "respcache_invalidated_tags_total",
                     "respcache_invalidation_failures_total", "respcache_cache_entries",
                     "respcache_cache_bytes", "respcache_cache_max_bytes",
                     "respcache_cache_evictions_total", "respcache_cache_sets_total",
                     "respcache_cache_errors_total"):
            self.assertTrue(has(s, name), "/metrics must have the series %s" % name)
        if provider(self.env) == "memory":
            self.assertGreater(value(s, "respcache_cache_max_bytes"), 0, "cache_max_bytes is the budget")

    def test_promtool_accepts_metrics(self):
        promtool = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)
        if not promtool:
            self.skipTest("promtool not installed (Debian package prometheus): cannot check the format")
        # Some traffic first, so that every family has samples.
        uid = self.env.claim_user()
        self.get("/api/users/%d" % uid)
        self.get("/api/users/%d" % uid)
        self.get("/api/nope")
        self.req("PATCH", "/api/users/%d" % uid, {"name": "Prom"})
        self.get("/api/test/ops_boom/1")
        r = self.get("/metrics")
        self.assertStatus(r, 200)
        p = subprocess.run([promtool, "check", "metrics"], input=r.body, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(p.returncode, 0, "promtool check metrics must accept /metrics, said:\n%s"
                         % p.stdout.decode("utf-8", "replace"))

    def test_miss_counts_miss_and_db_query(self):
        uid = self.env.claim_user()
        before = self.metrics()
        r = self.get("/api/users/%d" % uid)
        self.assertXCache(r, "MISS", "first GET of a user")
        after = self.metrics()
        d = lambda name, **l: value(after, name, **l) - value(before, name, **l)  # noqa: E731
        self.assertEqual(d("respcache_cache_requests_total", route="user", result="miss"), 1,
                         "a MISS adds 1 to cache_requests_total{route=user,result=miss}")
        self.assertEqual(d("respcache_cache_requests_total", route="user", result="hit"), 0,
                         "a MISS does not count as a hit")
        self.assertGreaterEqual(d("respcache_db_queries_total"), 1, "a MISS runs a database query")
        self.assertGreaterEqual(d("respcache_db_query_duration_seconds_count"), 1,
                                "a MISS is observed in the database latency histogram")
        self.assertEqual(d("respcache_requests_total", route="user", status="200"), 1,
                         "requests_total{route=user,status=200} counts the GET")
        self.assertGreaterEqual(d("respcache_cache_sets_total"), 1, "the MISS stored an entry")

    def test_hit_counts_hit_and_no_db_query(self):
        uid = self.env.claim_user()
        self.fill("/api/users/%d" % uid)
        before = self.metrics()
        r = self.get("/api/users/%d" % uid)
        self.assertXCache(r, "HIT", "cached user")
        after = self.metrics()
        d = lambda name, **l: value(after, name, **l) - value(before, name, **l)  # noqa: E731
        self.assertEqual(d("respcache_cache_requests_total", route="user", result="hit"), 1,
                         "a HIT adds 1 to cache_requests_total{route=user,result=hit}")
        self.assertEqual(d("respcache_cache_requests_total", route="user", result="miss"), 0,
                         "a HIT is not a miss")
        self.assertEqual(d("respcache_db_queries_total"), 0, "a HIT must not query the database")
        self.assertEqual(d("respcache_db_query_duration_seconds_count"), 0,
                         "a HIT adds nothing to the database latency histogram")

    def test_local_hits_count_the_hits_answered_without_redis(self):
        uid = self.env.claim_user()
        self.fill("/api/users/%d" % uid)  # tiered: the second GET, from Redis, filled L1
        before = self.metrics()
        for _ in range(2):
            self.assertXCache(self.get("/api/users/%d" % uid), "HIT", "cached user")
        after = self.metrics()
        self.assertTrue(has(after, "respcache_cache_local_hits_total"),
                        "/metrics must have respcache_cache_local_hits_total")
        d = lambda name, **l: value(after, name, **l) - value(before, name, **l)  # noqa: E731
        self.assertEqual(d("respcache_cache_requests_total", route="user", result="hit"), 2)
        want = 0 if provider(self.env) == "redis" else 2
        self.assertEqual(d("respcache_cache_local_hits_total"), want,
                         "two HITs of a cached user answered from this process's memory: %d "
                         "with the %s provider" % (want, provider(self.env)))

    def test_unmatched_path_counted_under_pseudo_route(self):
        before = self.metrics()
        for p in ("/api/nope", "/api/no/such/thing/12345", "/api/users/1/nope"):
            self.assertError(self.get(p), 404, "not_found", "GET %s" % p)
        after = self.metrics()
        self.assertEqual(value(after, "respcache_requests_total", route="unmatched", status="404")
                         - value(before, "respcache_requests_total", route="unmatched", status="404"), 3,
                         "three unknown paths add 3 to requests_total{route=unmatched,status=404}")

    def test_route_labels_are_route_names_never_paths(self):
        uid = self.env.claim_user()
        for p in ("/api/users/%d" % uid, "/api/users/%d/jobs?limit=5" % uid, "/api/settings",
                  "/api/nope/%d" % uid, "/api/users/abc", "/health"):
            self.get(p)
        self.admin("GET", "/cache/stats")
        s = self.metrics()
        names = {r["name"] for r in self.env.config["routes"]} | PSEUDO_ROUTES
        seen = set()
        for n, lab, _ in s:
            if "route" in lab:
                seen.add(lab["route"])
                self.assertIn(lab["route"], names, "%s: route label %r is not a route name nor one of %s"
                              % (n, lab["route"], sorted(PSEUDO_ROUTES)))
                self.assertNotIn("/", lab["route"], "a route label must never be a path: %r" % lab)
        for want in ("user", "user_jobs", "settings", "unmatched", "health", "metrics", "admin"):
            self.assertIn(want, seen, "requests to route %s must appear under route=%r" % (want, want))

    def test_health_metrics_admin_counted_under_pseudo_routes(self):
        before = self.metrics()
        self.get("/health")
        self.admin("GET", "/cache/stats")
        self.admin("GET", "/cache/stats", token="wrong")
        after = self.metrics()
        d = lambda name, **l: value(after, name, **l) - value(before, name, **l)  # noqa: E731
        self.assertEqual(d("respcache_requests_total", route="health", status="200"), 1, "route=health")
        self.assertEqual(d("respcache_requests_total", route="admin", status="200"), 1, "route=admin 200")
        self.assertEqual(d("respcache_requests_total", route="admin", status="401"), 1, "route=admin 401")
        self.assertEqual(d("respcache_requests_total", route="metrics", status="200"), 1,
                         "the first scrape is counted under route=metrics by the second")

    def test_histograms_are_cumulative_and_consistent(self):
        self.get("/api/users/%d" % self.env.claim_user())
        s = self.metrics()
        for h in ("respcache_request_duration_seconds", "respcache_db_query_duration_seconds"):
            buckets = [(lab["le"], v) for n, lab, v in s if n == h + "_bucket"]
            self.assertGreater(len(buckets), 3, "%s has buckets" % h)
            self.assertEqual(buckets[-1][0], "+Inf", "%s: last bucket is +Inf" % h)
            vals = [v for _, v in buckets]
            self.assertEqual(vals, sorted(vals), "%s buckets must be cumulative: %r" % (h, buckets))
            self.assertEqual(vals[-1], value(s, h + "_count"), "%s: +Inf bucket == _count" % h)
            self.assertGreater(vals[-1], 0, "%s observed something" % h)
        self.assertEqual(value(s, "respcache_db_query_duration_seconds_count"),
                         value(s, "respcache_db_queries_total"),
                         "every database query is observed once in the latency histogram")

    def test_write_counts_invalidated_tags(self):
        uid = self.env.claim_user()
        before = self.metrics()
        self.assertStatus(self.req("PATCH", "/api/users/%d" % uid, {"name": "Tagged"}), 200)
        after = self.metrics()
        self.assertGreaterEqual(value(after, "respcache_invalidated_tags_total")
                                - value(before, "respcache_invalidated_tags_total"), 1,
                                "a PATCH of a user bumps at least the tag user:{id}")
        self.assertEqual(value(after, "respcache_requests_total", route="user_update", status="200")
                         - value(before, "respcache_requests_total", route="user_update", status="200"), 1,
                         "the PATCH counts under its route name user_update")

    def test_metrics_405_for_other_methods(self):
        for m in ("POST", "DELETE"):
            r = self.req(m, "/metrics", body={} if m == "POST" else None)
            self.assertError(r, 405, "method_not_allowed", "%s /metrics" % m)
            self.assertEqual(r.headers.get("allow"), "GET, HEAD", "%s /metrics: Allow" % m)


# ================================================================ admin

ADMIN_CALLS = [("GET", "/cache/stats"), ("DELETE", "/cache"), ("DELETE", "/cache/tags/user:1"),
               ("DELETE", "/cache/keys?pattern=user:*")]


class AdminAuth(OpsCase):

    def assertUnauthorized(self, r, what):
        self.assertError(r, 401, "unauthorized", what)
        www = r.headers.get("www-authenticate", "")
        self.assertTrue(www.startswith("Bearer"), "%s: 401 needs WWW-Authenticate: Bearer, got %r" % (what, www))

    def test_missing_token_401(self):
        for m, p in ADMIN_CALLS:
            self.assertUnauthorized(self.admin(m, p, token=None), "%s %s without Authorization" % (m, p))

    def test_wrong_token_401(self):
        wrong = {
            "other token of the same length": "x" * len(TOKEN),
            "a prefix of the token": TOKEN[:-1],
            "the token plus one byte": TOKEN + "x",
            "an empty token": "",
            "the token with a different last byte": TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1"),
        }
        for what, tok in wrong.items():
            for m, p in ADMIN_CALLS:
                self.assertUnauthorized(self.admin(m, p, token=tok), "%s %s with %s" % (m, p, what))

    def test_other_schemes_401(self):
        for auth in ("Basic " + TOKEN, TOKEN, "Token " + TOKEN, "Bearer"):
            r = self.req("GET", "/cache/stats", headers={"Authorization": auth})
            self.assertUnauthorized(r, "GET /cache/stats with Authorization: %s..." % auth[:12])

    def test_right_token_200(self):
        r = self.admin("GET", "/cache/stats")
        self.assertStatus(r, 200, "GET /cache/stats with the admin token")
        # The scheme is case-insensitive (RFC 9110 11.1), the token is not.
        for scheme in ("bearer", "BEARER"):
            r = self.req("GET", "/cache/stats", headers={"Authorization": scheme + " " + TOKEN})
            self.assertStatus(r, 200, "Authorization: %s <token>" % scheme)
        r = self.req("GET", "/cache/stats", headers={"Authorization": "Bearer " + TOKEN.upper()})
        self.assertUnauthorized(r, "the token in upper case")

    def test_wrong_method_405_with_allow(self):
        cases = [("POST", "/cache/stats", "GET, HEAD"), ("DELETE", "/cache/stats", "GET, HEAD"),
                 ("GET", "/cache", "DELETE"), ("POST", "/cache", "DELETE"),
                 ("GET", "/cache/tags/user:1", "DELETE"), ("PUT", "/cache/tags/user:1", "DELETE"),
                 ("GET", "/cache/keys?pattern=user:*", "DELETE")]
        for m, p, allow in cases:
            r = self.admin(m, p, headers={"Content-Type": "application/json"} if m in ("POST", "PUT") else None)
            self.assertError(r, 405, "method_not_allowed", "%s %s (admin token given)" % (m, p))
            self.assertEqual(r.headers.get("allow"), allow, "%s %s: Allow header" % (m, p))

    def test_unknown_admin_path_404(self):
        for p in ("/cache/nope", "/cache/tags/", "/cache/stats/x"):
            r = self.admin("GET", p)
            self.assertIn(r.status, (400, 404), "GET %s: expected 404 (or 400), got %r" % (p, r))
            self.assertError(r, r.status, None, "GET %s" % p)


class AdminOps(OpsCase):

    def test_stats_shape(self):
        r = self.admin("GET", "/cache/stats")
        b = self.assertJsonBody(r, "GET /cache/stats")
        self.assertEqual(sorted(b.keys()), ADMIN_KEYS, "stats keys: %r" % b)
        self.assertEqual(b["provider"], provider(self.env), "stats provider: %r" % b)
        for k in ADMIN_KEYS:
            if k in ("provider", "hit_rate"):
                continue
            self.assertIsInstance(b[k], int, "%s must be an integer: %r" % (k, b))
            self.assertGreaterEqual(b[k], 0, "%s: %r" % (k, b))
        self.assertIsInstance(b["hit_rate"], (int, float), "hit_rate is a number: %r" % b)
        self.assertTrue(0 <= b["hit_rate"] <= 1, "hit_rate in [0, 1]: %r" % b)
        r = self.admin("HEAD", "/cache/stats")
        self.assertStatus(r, 200, "HEAD /cache/stats")
        self.assertEqual(r.body, b"", "HEAD has no body")

    def test_stats_count_hits_misses_sets(self):
        uid = self.env.claim_user()
        s0 = self.admin("GET", "/cache/stats").json()
        self.assertXCache(self.get("/api/users/%d" % uid), "MISS")
        self.assertXCache(self.get("/api/users/%d" % uid), "HIT")
        self.assertXCache(self.get("/api/users/%d" % uid), "HIT")
        s1 = self.admin("GET", "/cache/stats").json()
        self.assertEqual(s1["misses"] - s0["misses"], 1, "one MISS: %r -> %r" % (s0, s1))
        self.assertEqual(s1["hits"] - s0["hits"], 2, "two HITs: %r -> %r" % (s0, s1))
        self.assertGreaterEqual(s1["sets"] - s0["sets"], 1, "the MISS stored an entry")
        if provider(self.env) == "memory":
            # (Redis and tiered report keys/bytes their own way; not checked here.)
            self.assertGreaterEqual(s1["keys"], 1, "at least one key cached")
            self.assertGreater(s1["bytes"], 0, "cached bytes counted")
        self.assertGreater(s1["hit_rate"], 0, "hit_rate after hits")

    def test_delete_cache_invalidates_everything(self):
        a, b = self.env.claim("SELECT id FROM users ORDER BY id", 2)
        paths = ["/api/users/%d" % a, "/api/users/%d" % b, "/api/users/%d/jobs" % a, "/api/settings"]
        for p in paths:
            self.fill(p)
        r = self.admin("DELETE", "/cache")
        self.assertStatus(r, 200, "DELETE /cache")
        self.assertEqual(self.assertJsonBody(r, "DELETE /cache"), {"invalidated": True})
        for p in paths:
            r = self.get(p)
            self.assertStatus(r, 200)
            self.assertXCache(r, "MISS", "%s after DELETE /cache" % p)
            self.assertXCache(self.get(p), "HIT", "%s is cached again after the refill" % p)

    def test_delete_tag_invalidates_only_tagged(self):
        a, b = self.env.claim("SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM jobs j WHERE "
                              "j.user_id = u.id) ORDER BY id", 2)
        ua, ub, ja, da = ("/api/users/%d" % a, "/api/users/%d" % b, "/api/users/%d/jobs" % a,
                          "/api/dashboard/%d" % a)
        for p in (ua, ub, ja, da):
            self.fill(p)
        tag = "user:%d" % a
        r = self.admin("DELETE", "/cache/tags/" + tag)
        self.assertStatus(r, 200, "DELETE /cache/tags/%s" % tag)
        self.assertEqual(self.assertJsonBody(r, "DELETE /cache/tags"), {"tag": tag, "invalidated": True})
        self.assertXCache(self.get(ua), "MISS", "%s carries tag %s" % (ua, tag))
        self.assertXCache(self.get(da), "MISS", "%s carries tag %s" % (da, tag))
        self.assertXCache(self.get(ub), "HIT", "%s does not carry %s" % (ub, tag))
        self.assertXCache(self.get(ja), "HIT", "%s carries user:%d:jobs, not %s" % (ja, a, tag))

    def test_delete_tag_percent_encoded(self):
        a = self.env.claim_user()
        p = "/api/users/%d" % a
        self.fill(p)
        r = self.admin("DELETE", "/cache/tags/user%%3A%d" % a)
        self.assertStatus(r, 200, "DELETE /cache/tags/user%%3A%d" % a)
        self.assertEqual(r.json(), {"tag": "user:%d" % a, "invalidated": True}, "the tag is percent-decoded")
        self.assertXCache(self.get(p), "MISS", "%s after its tag was purged" % p)

    def test_delete_tag_soft_mode_marks_entries_stale(self):
        # API.md: soft purge answers {"tag", "invalidated": true, "mode": "soft"}
        # and the tag's entries are answered STALE until one refresh replaces them.
        a = self.env.claim_user()
        p = "/api/users/%d" % a
        self.fill(p)
        r = self.admin("DELETE", "/cache/tags/user:%d?mode=soft" % a)
        self.assertStatus(r, 200, "DELETE /cache/tags/{tag}?mode=soft")
        self.assertEqual(r.json(), {"tag": "user:%d" % a, "invalidated": True, "mode": "soft"},
                         "soft purge body")
        m0 = self.metrics()
        s0 = self.admin("GET", "/cache/stats").json()
        st = self.get(p)
        self.assertXCache(st, "STALE", "first GET after a soft purge")
        self.assertRegex(st.headers.get("age") or "", r"^\d+$", "Age on a STALE answer")
        self.assertEqual(st.headers.get("cache-control"), "no-cache")
        m1 = self.metrics()
        s1 = self.admin("GET", "/cache/stats").json()

        def stale_of(m):
            return sum(v for n, lb, v in m if n == "respcache_cache_requests_total"
                       and lb.get("route") == "user" and lb.get("result") == "stale")
        self.assertEqual(stale_of(m1) - stale_of(m0), 1,
                         "/metrics counts the STALE answer by route (result=\"stale\")")
        self.assertGreaterEqual(s1["stale"] - s0["stale"], 1, "/cache/stats counts it: %r" % s1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            x = self.get(p).headers.get("x-cache")
            if x == "HIT":
                break
            self.assertEqual(x, "STALE", "until the refresh lands, answers stay STALE (never MISS)")
            time.sleep(0.05)
        self.assertXCache(self.get(p), "HIT", "after the one refresh the entry is fresh again")

    def test_delete_tag_bad_mode_400_hard_mode_200(self):
        a = self.env.claim_user()
        self.assertError(self.admin("DELETE", "/cache/tags/user:%d?mode=gentle" % a), 400, "bad_request",
                         "mode=gentle")
        r = self.admin("DELETE", "/cache/tags/user:%d?mode=hard" % a)
        self.assertStatus(r, 200, "mode=hard is the default purge")
        self.assertEqual(r.json().get("invalidated"), True)

    def test_delete_keys_by_pattern(self):
        a, b = self.env.claim("SELECT id FROM users ORDER BY id", 2)
        ua, ub, ja = "/api/users/%d" % a, "/api/users/%d" % b, "/api/users/%d/jobs" % a
        for p in (ua, ub, ja):
            self.fill(p)
        redis = getattr(self.env, "redis", None)
        if redis is not None:
            redis.cli("CONFIG", "RESETSTAT")
        s0 = self.admin("GET", "/cache/stats").json()
        r = self.admin("DELETE", "/cache/keys?pattern=user:*")
        self.assertStatus(r, 200, "DELETE /cache/keys?pattern=user:*")
        if redis is not None:
            # API.md: incremental, never a blocking scan of the whole keyspace.
            cs = redis.cli("INFO", "commandstats")
            cs = cs.decode() if isinstance(cs, bytes) else cs
            self.assertIn("cmdstat_scan:", cs, "the purge walks the keyspace with SCAN")
            self.assertNotIn("cmdstat_keys:", cs, "the purge never sends KEYS")
        s1 = self.admin("GET", "/cache/stats").json()
        self.assertGreaterEqual(s1["deletes"] - s0["deletes"], 2, "/cache/stats counts deletes: %r" % s1)
        body = self.assertJsonBody(r, "DELETE /cache/keys")
        self.assertEqual(sorted(body.keys()), ["deleted"], "body: %r" % body)
        self.assertIsInstance(body["deleted"], int)
        self.assertGreaterEqual(body["deleted"], 2, "at least user:%d and user:%d were deleted: %r" % (a, b, body))
        self.assertXCache(self.get(ua), "MISS", "%s (key user:%d) matched user:*" % (ua, a))
        self.assertXCache(self.get(ub), "MISS", "%s (key user:%d) matched user:*" % (ub, b))
        self.assertXCache(self.get(ja), "HIT", "%s (key user_jobs:...) does not match user:*" % ja)

    def test_delete_keys_exact_key_counts(self):
        a = self.env.claim_user()
        p = "/api/users/%d" % a
        self.fill(p)
        r = self.admin("DELETE", "/cache/keys?pattern=user:%d" % a)
        self.assertStatus(r, 200)
        n = r.json().get("deleted")
        if provider(self.env) == "memory":
            self.assertEqual(n, 1, "pattern user:%d matches exactly one key: %r" % (a, r))
        else:  # a tiered cache may count the key once per tier
            self.assertIn(n, (1, 2), "pattern user:%d matches one key: %r" % (a, r))
        r = self.admin("DELETE", "/cache/keys?pattern=user:%d" % a)
        self.assertEqual(r.json(), {"deleted": 0}, "nothing left to delete the second time")
        self.assertXCache(self.get(p), "MISS", "deleted key")

    def test_delete_keys_needs_a_pattern(self):
        for q in ("/cache/keys", "/cache/keys?pattern=", "/cache/keys?other=user:*"):
            self.assertError(self.admin("DELETE", q), 400, "bad_request", "DELETE %s" % q)


class AdminDisabled(OpsCase):

    def test_admin_routes_404_without_token_configured(self):
        try:
            for tok in (None, ""):
                self.env.restart_respcache(env={"RESPCACHE_ADMIN_TOKEN": tok})
                what = "with RESPCACHE_ADMIN_TOKEN %s" % ("unset" if tok is None else "empty")
                for m, p in ADMIN_CALLS:
                    for auth in (None, TOKEN, ""):
                        r = self.admin(m, p, token=auth)
                        self.assertError(r, 404, "not_found", "%s %s %s (Authorization: %s)"
                                         % (m, p, what, "none" if auth is None else "Bearer <%d bytes>" % len(auth)))
                self.assertStatus(wait_health(self.env, "ok", 10), 200, "/health %s" % what)
                self.assertStatus(self.get("/metrics"), 200, "/metrics %s" % what)
        finally:
            self.env.restart_respcache(env={"RESPCACHE_ADMIN_TOKEN": TOKEN})
        self.assertStatus(self.admin("GET", "/cache/stats"), 200, "admin back with the token")


class ProviderNone(OpsCase):

    def test_health_stats_metrics_without_cache_provider(self):
        try:
            self.env.restart_respcache(env={"CACHE_PROVIDER": "none"})
            r = wait_health(self.env, "ok", 10)
            b = r.json()
            self.assertEqual(b["cache"]["provider"], "none", "/health names the provider: %r" % b)
            self.assertIs(b["cache"]["ok"], True, "no cache is not a failing cache: %r" % b)
            r = self.admin("GET", "/cache/stats")
            self.assertStatus(r, 200, "GET /cache/stats without a cache")
            self.assertEqual(r.json()["provider"], "none")
            uid = self.env.claim_user()
            before = self.metrics()
            self.assertXCache(self.get("/api/users/%d" % uid), "BYPASS", "GET without a cache")
            after = self.metrics()
            self.assertEqual(value(after, "respcache_cache_requests_total", route="user", result="bypass")
                             - value(before, "respcache_cache_requests_total", route="user", result="bypass"), 1,
                             "a GET without a cache counts as result=bypass")
            self.assertGreaterEqual(value(after, "respcache_db_queries_total")
                                    - value(before, "respcache_db_queries_total"), 1, "and queries the database")
            promtool = shutil.which("promtool")
            if promtool:
                body = self.get("/metrics").body
                p = subprocess.run([promtool, "check", "metrics"], input=body, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=30)
                self.assertEqual(p.returncode, 0, "promtool accepts /metrics without a cache provider:\n%s"
                                 % p.stdout.decode("utf-8", "replace"))
        finally:
            self.env.restart_respcache(env={"CACHE_PROVIDER": None})
        wait_health(self.env, "ok", 10)



class MemoryBudget(OpsCase):

    def test_a_full_budget_evicts_and_metrics_show_it(self):
        # API.md /metrics: entries and bytes of the memory cache, evictions.
        if provider(self.env) != "memory":
            self.skipTest("the memory provider's budget")
        budget = 65536
        try:
            self.env.restart_respcache(env={"CACHE_MEMORY_MAX_BYTES": str(budget),
                                            "CACHE_MEMORY_SHARDS": "1"})
            m0 = self.metrics()
            self.assertEqual(value(m0, "respcache_cache_entries"), 0, "a fresh cache is empty")
            self.assertXCache(self.get("/api/users/1"), "MISS")
            m1 = self.metrics()
            self.assertEqual(value(m1, "respcache_cache_entries"), 1, "one entry after one MISS")
            self.assertGreater(value(m1, "respcache_cache_bytes"), 0)
            n = 400  # about 400 bytes each: several times the budget
            for i in range(2, n + 1):
                self.assertStatus(self.get("/api/users/%d" % i), (200, 404))
            m2 = self.metrics()
            entries = value(m2, "respcache_cache_entries")
            self.assertGreater(value(m2, "respcache_cache_evictions_total"), 0, "evictions counted")
            self.assertLess(entries, n, "not every entry fits")
            self.assertGreater(entries, 10, "the budget still holds many entries")
            self.assertLessEqual(value(m2, "respcache_cache_bytes"), budget, "within the byte budget")
            st = self.admin("GET", "/cache/stats").json()
            self.assertGreater(st["evictions"], 0, "/cache/stats counts evictions: %r" % st)
            self.assertEqual(st["keys"], entries, "/cache/stats and /metrics agree: %r" % st)
            # The most recent entries survive (LRU): the last one is a HIT.
            self.assertXCache(self.get("/api/users/%d" % n), "HIT", "the newest entry is kept")
            self.assertXCache(self.get("/api/users/1"), "MISS", "the oldest entry was evicted")
        finally:
            self.env.restart_respcache(env={"CACHE_MEMORY_MAX_BYTES": None,
                                            "CACHE_MEMORY_SHARDS": None})
        wait_health(self.env, "ok", 10)

# ================================================================ logs

class Logs(OpsCase):

    def test_log_is_json_lines_with_time_level_event(self):
        self.get("/health")
        lines = [l for l in read_log_lines(LOG_FILE) if l.strip()]
        self.assertTrue(lines, "the log file %s has lines" % LOG_FILE)
        for line in lines:
            try:
                o = json.loads(line)
            except ValueError:
                self.fail("log line is not JSON: %r" % line)
            self.assertIsInstance(o, dict, "a log line is one JSON object: %r" % line)
            for k in ("time", "level", "event"):
                self.assertIn(k, o, "log line without %r: %r" % (k, line))
            self.assertRegex(o["time"], harness.RFC3339_UTC, "time is RFC 3339 UTC: %r" % line)
            self.assertIn(o["level"], ("debug", "info", "warn", "error"), "level: %r" % line)

    def test_request_lines_at_debug_with_route_cache_and_request_id(self):
        uid = self.env.claim_user()
        off = log_size(LOG_FILE)
        self.assertXCache(self.get("/api/users/%d" % uid), "MISS")
        self.assertXCache(self.get("/api/users/%d" % uid), "HIT")

        def reqs(objs):
            return [o for o in objs if o.get("event") == "request" and o.get("route") == "user"]
        objs = wait_log(LOG_FILE, off, lambda o: len(reqs([o])) > 0 and o.get("cache") == "HIT")
        got = reqs(objs)
        self.assertEqual([o.get("cache") for o in got], ["MISS", "HIT"],
                         "two request lines for route user, MISS then HIT: %r" % got)
        for o in got:
            self.assertEqual(o["level"], "debug", "a 200 is logged at debug: %r" % o)
            self.assertEqual(o["method"], "GET", "method: %r" % o)
            self.assertEqual(o["status"], 200, "status is a number: %r" % o)
            self.assertIsInstance(o["duration_ms"], (int, float), "duration_ms: %r" % o)
            self.assertGreaterEqual(o["duration_ms"], 0)
            self.assertRegex(o.get("request_id", ""), REQUEST_ID,
                             "request_id is Nginx's $request_id (32 hex digits): %r" % o)
        self.assertNotEqual(got[0]["request_id"], got[1]["request_id"], "each request has its own id")

    def test_5xx_logged_at_warn(self):
        off = log_size(LOG_FILE)
        r = self.get("/api/test/ops_boom/7")
        self.assertError(r, 500, "internal", "route with failing SQL")
        objs = wait_log(LOG_FILE, off, lambda o: o.get("event") == "request" and o.get("status") == 500)
        got = [o for o in objs if o.get("event") == "request" and o.get("status") == 500]
        self.assertEqual(len(got), 1, "one request line for the 500: %r" % objs)
        self.assertEqual(got[0]["level"], "warn", "5xx requests are logged at warn: %r" % got[0])
        self.assertEqual(got[0]["route"], "test_ops_boom", "route of the 500: %r" % got[0])

    def test_sighup_reopens_log_file(self):
        rotated = LOG_FILE + ".1"
        # The rotated file stays; the secrets check reads both.
        os.rename(LOG_FILE, rotated)
        self.assertFalse(os.path.exists(LOG_FILE), "precondition: log file moved away")
        os.kill(self.env.rc_proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not os.path.exists(LOG_FILE) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(LOG_FILE), "after SIGHUP respcache must create %s again "
                        "within 5 s" % LOG_FILE)
        old_size = log_size(rotated)
        uid = self.env.claim_user()
        self.assertStatus(self.get("/api/users/%d" % uid), 200)
        objs = wait_log(LOG_FILE, 0, lambda o: o.get("event") == "request" and o.get("route") == "user")
        self.assertTrue(any(o.get("event") == "request" and o.get("route") == "user" for o in objs),
                        "the request after SIGHUP is logged to the new file: %r" % objs)
        self.assertEqual(log_size(rotated), old_size, "nothing more goes to the rotated file")
        self.assertIsNone(self.env.rc_proc.poll(), "respcache keeps running after SIGHUP")


class Secrets(OpsCase):

    def all_logs(self):
        data = b""
        for p in (LOG_FILE, LOG_FILE + ".1", self.env.rc_log):
            if os.path.exists(p):
                with open(p, "rb") as f:
                    data += f.read()
        return data.decode("utf-8", "replace")

    def test_token_and_password_never_in_logs_or_bodies(self):
        bodies = []
        uid = self.env.claim_user()
        for m, p, tok in [("GET", "/health", None), ("GET", "/metrics", None),
                          ("GET", "/cache/stats", TOKEN), ("GET", "/cache/stats", TOKEN[:-1]),
                          ("GET", "/cache/stats", TOKEN + "x"), ("GET", "/cache/stats", None),
                          ("POST", "/cache/stats", TOKEN), ("DELETE", "/cache/tags/user:%d" % uid, TOKEN),
                          ("DELETE", "/cache/keys?pattern=", TOKEN),
                          ("GET", "/api/users/%d" % uid, TOKEN), ("GET", "/api/nope", TOKEN),
                          ("GET", "/api/users/abc", None), ("GET", "/api/test/ops_boom/3", None),
                          ("PATCH", "/api/users/%d" % uid, None)]:
            r = self.admin(m, p, token=tok)
            bodies.append(("%s %s" % (m, p), r))
        # Database down: 503 bodies, /health down, and libpq's error text in the log.
        other = self.env.claim_user()
        try:
            self.env.stop_postgres()
            bodies.append(("GET uncached user with the database down", self.get("/api/users/%d" % other)))
            bodies.append(("PATCH with the database down", self.req("PATCH", "/api/users/%d" % uid, {"name": "x"})))
            r = wait_health(self.env, "down", 15)
            self.assertStatus(r, 503, "/health with the database down")
            self.assertIn("retry-after", r.headers, "/health 503 has Retry-After")
            bodies.append(("/health down", r))
        finally:
            if self.env.pg_proc is None:
                self.env.run_postgres()
        wait_health(self.env, "ok", 20)
        for what, r in bodies:
            text = r.body.decode("utf-8", "replace") + repr(r.headers)
            self.assertNotIn(PASSWORD, text, "%s: the database password leaked into the response" % what)
            self.assertNotIn(TOKEN[:-1], text, "%s: the admin token leaked into the response" % what)
        redis_pw = urllib.parse.urlparse(self.env.extra_env.get("REDIS_URL") or "").password
        if redis_pw:
            for what, r in bodies:
                self.assertNotIn(redis_pw, r.body.decode("utf-8", "replace"),
                                 "%s: the Redis password leaked into the response" % what)
        time.sleep(0.2)
        logs = self.all_logs()
        if redis_pw:
            self.assertNotIn(redis_pw, logs, "the Redis password must never appear in the log")
        self.assertIn("db_connect_failed", logs, "precondition: the database outage was logged")
        self.assertNotIn(PASSWORD, logs, "the database password must never appear in the log")
        self.assertNotIn(TOKEN[:-1], logs, "the admin token (or what a client sent as one) must never "
                         "appear in the log")

    def test_print_config_masks_secrets(self):
        e = dict(os.environ)
        e.update({"DATABASE_URL": url_with_password(self.env), "RESPCACHE_ADMIN_TOKEN": TOKEN})
        p = subprocess.run([self.env.bin, "--config", self.env.config_path, "--print-config"], env=e,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30,
                           stdin=subprocess.DEVNULL)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, "--print-config: %s" % out)
        self.assertNotIn(PASSWORD, out, "--print-config must mask the password in DATABASE_URL")
        self.assertNotIn(TOKEN, out, "--print-config must not print the admin token")
