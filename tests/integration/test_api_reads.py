"""GET routes of the demo app (API.md): shapes, cache headers, ETag/304, HEAD,
query normalisation, negative caching."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import RCTestCase, parse_ts  # noqa: E402

ENV = None

USER_KEYS = ["created_at", "email", "id", "name", "plan", "updated_at"]
JOB_KEYS = ["created_at", "id", "payload", "status", "updated_at", "user_id"]
STATUSES = ("queued", "running", "done", "failed")
ETAG_RE = re.compile(r'^"[^"\s]+"$')


def setUpModule():
    global ENV
    ENV = harness.module_env()


def tearDownModule():
    if ENV is not None:
        ENV.stop()


class CacheHeaders(RCTestCase):
    """X-Cache, Age, ETag, Cache-Control, If-None-Match, HEAD on the user route."""

    def fresh_user_path(self):
        return "/api/users/%d" % self.env.claim_user()

    def test_miss_then_hit(self):
        p = self.fresh_user_path()
        r1 = self.get(p)
        self.assertStatus(r1, 200, "first GET " + p)
        self.assertXCache(r1, "MISS", "first GET " + p)
        r2 = self.get(p)
        self.assertStatus(r2, 200, "second GET " + p)
        self.assertXCache(r2, "HIT", "second GET " + p)
        self.assertEqual(r1.body, r2.body, "HIT must return the same body as the MISS")

    def test_age_present_on_hit_absent_on_miss(self):
        p = self.fresh_user_path()
        r1 = self.get(p)
        self.assertXCache(r1, "MISS", p)
        self.assertNotIn("age", r1.headers, "Age must be absent on a MISS, got %r" % r1.headers.get("age"))
        r2 = self.get(p)
        self.assertXCache(r2, "HIT", p)
        self.assertIn("age", r2.headers, "Age must be present on a HIT")
        self.assertRegex(r2.headers["age"], r"^\d+$", "Age must be a non-negative integer")
        self.assertLess(int(r2.headers["age"]), 60, "Age of an entry filled just now should be small")

    def test_age_counts_seconds_since_fill(self):
        p = self.fresh_user_path()
        self.assertXCache(self.get(p), "MISS", p)
        time.sleep(2.2)
        r = self.get(p)
        self.assertXCache(r, "HIT", p)
        age = int(r.headers.get("age", "-1"))
        self.assertTrue(2 <= age <= 30, "Age 2.2 s after the fill must be about 2, got %r" % r.headers.get("age"))

    def test_etag_strong_and_stable_between_miss_and_hit(self):
        p = self.fresh_user_path()
        r1 = self.get(p)
        r2 = self.get(p)
        e1, e2 = r1.headers.get("etag"), r2.headers.get("etag")
        self.assertIsNotNone(e1, "ETag missing on MISS")
        self.assertIsNotNone(e2, "ETag missing on HIT")
        self.assertFalse(e1.startswith("W/"), "ETag must be strong, got %r" % e1)
        self.assertRegex(e1, ETAG_RE, "ETag must be a quoted opaque tag")
        self.assertEqual(e1, e2, "same body must give the same ETag on MISS and HIT")

    def test_etag_differs_for_different_bodies(self):
        a = self.get(self.fresh_user_path())
        b = self.get(self.fresh_user_path())
        self.assertNotEqual(a.headers.get("etag"), b.headers.get("etag"),
                            "two different users must have different ETags")

    def test_if_none_match_gives_304_without_body(self):
        p = self.fresh_user_path()
        etag = self.get(p).headers["etag"]
        # W/ + the tag matches too: If-None-Match uses weak comparison (RFC 9110 13.1.2).
        for inm in (etag, '"nope", %s' % etag, '"a",%s , "b"' % etag, "*", "W/" + etag):
            r = self.get(p, headers={"If-None-Match": inm})
            self.assertStatus(r, 304, "If-None-Match: %s" % inm)
            self.assertEqual(r.body, b"", "304 must have no body (If-None-Match: %s)" % inm)
            self.assertEqual(r.headers.get("etag"), etag,
                             "304 must repeat the ETag (RFC 9110 15.4.5), If-None-Match: %s" % inm)

    def test_if_none_match_on_miss_gives_304(self):
        p = self.fresh_user_path()
        etag = self.get(p).headers["etag"]
        self.env.restart_respcache()  # empty cache: the entry is rebuilt by this very request
        r = self.get(p, headers={"If-None-Match": etag})
        self.assertStatus(r, 304, "If-None-Match with the right tag on a MISS")

    def test_if_none_match_not_matching_gives_200(self):
        p = self.fresh_user_path()
        r0 = self.get(p)
        for inm in ('"0123456789abcdef"', 'W/"x"', '"a", "b"'):
            r = self.get(p, headers={"If-None-Match": inm})
            self.assertStatus(r, 200, "non-matching If-None-Match: %s" % inm)
            self.assertEqual(r.body, r0.body, "non-matching If-None-Match must give the full body")

    def test_cache_control_no_cache_on_miss_hit_and_304(self):
        p = self.fresh_user_path()
        r1 = self.get(p)
        r2 = self.get(p)
        r3 = self.get(p, headers={"If-None-Match": r1.headers.get("etag", '"x"')})
        for r, what in ((r1, "MISS"), (r2, "HIT"), (r3, "304")):
            self.assertEqual(r.headers.get("cache-control"), "no-cache",
                             "%s: expected Cache-Control: no-cache, got %r" % (what, r.headers.get("cache-control")))

    def test_head_same_status_and_headers_no_body(self):
        p = self.fresh_user_path()
        g = self.get(p)
        h = self.req("HEAD", p)
        self.assertStatus(h, 200, "HEAD " + p)
        self.assertEqual(h.body, b"", "HEAD must have no body")
        for k in ("content-type", "etag", "cache-control"):
            self.assertEqual(h.headers.get(k), g.headers.get(k), "HEAD header %s must equal GET's" % k)
        self.assertIn(h.headers.get("x-cache"), ("HIT", "MISS"), "HEAD must carry X-Cache")
        if "content-length" in h.headers:
            self.assertEqual(h.headers["content-length"], str(len(g.body)),
                             "HEAD Content-Length must be the GET body's length")

    def test_head_on_404_and_400(self):
        h = self.req("HEAD", "/api/users/999999999")
        self.assertStatus(h, 404, "HEAD absent user")
        self.assertEqual(h.body, b"")
        h = self.req("HEAD", "/api/users/abc")
        self.assertStatus(h, 400, "HEAD bad id")
        self.assertEqual(h.body, b"")

    def test_head_on_every_get_route(self):
        uid = self.env.claim_user()
        job = int(self.env.psql_value("SELECT min(id) FROM jobs"))
        for p in ("/api/users/%d" % uid, "/api/users/%d/jobs" % uid, "/api/jobs/%d" % job,
                  "/api/settings", "/api/dashboard/%d" % uid):
            g = self.get(p)
            h = self.req("HEAD", p)
            self.assertEqual(h.status, g.status, "HEAD %s status must equal GET's" % p)
            self.assertEqual(h.body, b"", "HEAD %s must have no body" % p)
            self.assertEqual(h.headers.get("etag"), g.headers.get("etag"), "HEAD %s ETag" % p)


    def test_every_cached_get_route_answers_with_the_cache_headers(self):
        # API.md: every GET on a cached route has X-Cache, a strong ETag that
        # If-None-Match turns into a 304 without a body, Age on a HIT and
        # Cache-Control: no-cache; HEAD works wherever GET does. On all
        # seven demo routes, answers of 200 and of 404 alike (a 404 is not
        # turned into a 304: RFC 9110 evaluates preconditions for 2xx only).
        uid = self.env.claim_user()
        jid = self.env.claim("SELECT job_id FROM job_results ORDER BY job_id")
        tok = Sessions.valid_token(self)
        paths = ["/api/users/%d" % uid, "/api/users/%d/jobs?limit=5" % uid, "/api/jobs/%d" % jid,
                 "/api/jobs/%d/result" % jid, "/api/settings", "/api/dashboard/%d" % uid,
                 "/api/sessions/" + tok, "/api/users/987654323", "/api/sessions/" + "x" * 20]
        for p in paths:
            first = self.get(p)
            self.assertIn(first.status, (200, 404), p)
            r = self.get(p)
            self.assertEqual(r.status, first.status, p)
            self.assertXCache(r, "HIT", p)
            etag = r.headers.get("etag")
            self.assertIsNotNone(etag, "%s: ETag" % p)
            self.assertRegex(etag, ETAG_RE, "%s: a strong ETag" % p)
            self.assertEqual(etag, first.headers.get("etag"), "%s: the same ETag on MISS and HIT" % p)
            self.assertEqual(r.headers.get("cache-control"), "no-cache", "%s: Cache-Control" % p)
            self.assertRegex(r.headers.get("age") or "", r"^\d+$", "%s: Age on a HIT" % p)
            nm = self.req("GET", p, headers={"If-None-Match": etag})
            if r.status == 200:
                self.assertStatus(nm, 304, "%s with If-None-Match" % p)
                self.assertEqual(nm.body, b"", "%s: a 304 has no body" % p)
                self.assertEqual(nm.headers.get("etag"), etag, "%s: the 304 names the ETag" % p)
            else:  # RFC 9110 13.2.1: preconditions apply to 2xx answers only
                self.assertEqual((nm.status, nm.body), (r.status, r.body),
                                 "%s: If-None-Match does not turn a 404 into a 304" % p)
            h = self.req("HEAD", p)
            self.assertEqual(h.status, r.status, "HEAD %s status must equal GET's" % p)
            self.assertEqual(h.body, b"", "HEAD %s must have no body" % p)
            self.assertEqual(h.headers.get("etag"), etag, "HEAD %s ETag" % p)
            self.assertEqual(h.headers.get("cache-control"), "no-cache", "HEAD %s" % p)

class Users(RCTestCase):

    def test_user_shape(self):
        uid = self.env.claim_user()
        r = self.get("/api/users/%d" % uid)
        self.assertStatus(r, 200)
        u = self.assertJsonBody(r, "user")
        self.assertEqual(sorted(u.keys()), USER_KEYS, "user fields")
        self.assertEqual(u["id"], uid, "id must be the requested id, as a JSON number")
        row = self.env.psql("SELECT email, name, plan FROM users WHERE id = %d" % uid)[0]
        self.assertEqual([u["email"], u["name"], u["plan"]], row, "user fields must match the database")
        self.assertTimestamp(u["created_at"], "created_at")
        self.assertTimestamp(u["updated_at"], "updated_at")

    def test_timestamps_equal_database_values(self):
        uid = self.env.claim_user()
        u = self.get("/api/users/%d" % uid).json()
        epoch = float(self.env.psql_value("SELECT extract(epoch FROM created_at) FROM users WHERE id = %d" % uid))
        self.assertAlmostEqual(parse_ts(u["created_at"]), epoch, delta=1e-5,
                               msg="created_at must be the database value in UTC")

    def test_absent_user_404_body(self):
        r = self.get("/api/users/987654321")
        self.assertError(r, 404, "not_found", "absent user")

    def test_404_is_cached(self):
        p = "/api/users/987654322"
        r1 = self.get(p)
        self.assertError(r1, 404, "not_found", "absent user")
        self.assertXCache(r1, "MISS", "first 404")
        r2 = self.get(p)
        self.assertError(r2, 404, "not_found", "absent user again")
        self.assertXCache(r2, "HIT", "second 404 must be a negative cache HIT")
        self.assertEqual(r2.headers.get("cache-control"), "no-cache", "cached 404 Cache-Control")

    def test_max_int64_id_is_404_not_error(self):
        r = self.get("/api/users/9223372036854775807")
        self.assertError(r, 404, "not_found", "id 2^63-1 is a valid id")


class UserJobs(RCTestCase):

    def user_with_jobs(self, n):
        return self.env.claim("SELECT user_id FROM jobs GROUP BY user_id HAVING count(*) > %d "
                              "ORDER BY user_id" % n)

    def ensure_user_with_many_jobs(self):
        try:
            return self.user_with_jobs(25)
        except harness.HarnessError:
            uid = self.env.claim_user()
            self.env.psql("INSERT INTO jobs (user_id, status, payload, created_at) "
                          "SELECT %d, 'queued', '{}'::jsonb, now() - g * interval '1 minute' "
                          "FROM generate_series(1, 30) g" % uid)
            return uid

    def test_jobs_newest_first_default_limit_20(self):
        uid = self.ensure_user_with_many_jobs()
        r = self.get("/api/users/%d/jobs" % uid)
        self.assertStatus(r, 200)
        jobs = self.assertJsonBody(r, "jobs list")
        self.assertIsInstance(jobs, list, "jobs list must be a JSON array")
        self.assertEqual(len(jobs), 20, "default limit must be 20")
        ts = [parse_ts(j["created_at"]) for j in jobs]
        self.assertEqual(ts, sorted(ts, reverse=True), "jobs must be newest first")
        for j in jobs:
            self.assertEqual(j["user_id"], uid, "every job must belong to the user")
            self.assertIn(j["status"], STATUSES)
            self.assertTimestamp(j["created_at"])
        oldest_shown = min(ts)
        newest_hidden = self.env.psql_value(
            "SELECT extract(epoch FROM created_at) FROM jobs WHERE user_id = %d AND id NOT IN (%s) "
            "ORDER BY created_at DESC LIMIT 1" % (uid, ",".join(str(j["id"]) for j in jobs)))
        if newest_hidden:
            self.assertGreaterEqual(oldest_shown + 1e-5, float(newest_hidden),
                                    "the list must be the 20 newest jobs")

    def test_job_item_shape(self):
        uid = self.user_with_jobs(0)
        jobs = self.get("/api/users/%d/jobs" % uid).json()
        self.assertTrue(jobs)
        self.assertEqual(sorted(jobs[0].keys()), JOB_KEYS, "job list items are jobs")

    def test_limit_param(self):
        uid = self.ensure_user_with_many_jobs()
        total = int(self.env.psql_value("SELECT count(*) FROM jobs WHERE user_id = %d" % uid))
        for lim, want in ((1, 1), (5, 5), (100, min(100, total))):
            r = self.get("/api/users/%d/jobs?limit=%d" % (uid, lim))
            self.assertStatus(r, 200, "limit=%d" % lim)
            self.assertEqual(len(r.json()), want, "limit=%d must give %d jobs" % (lim, want))

    def test_limit_default_shares_cache_entry(self):
        uid = self.user_with_jobs(0)
        r1 = self.get("/api/users/%d/jobs" % uid)
        self.assertXCache(r1, "MISS", "no limit, first")
        r2 = self.get("/api/users/%d/jobs?limit=20" % uid)
        self.assertXCache(r2, "HIT", "?limit=20 must share the entry of no limit")
        self.assertEqual(r1.body, r2.body)
        self.assertEqual(r1.headers.get("etag"), r2.headers.get("etag"))

    def test_limit_bounds_400(self):
        uid = self.user_with_jobs(0)
        for v in ("0", "101", "abc", "-1", "1.5", "20x", "99999999999999999999"):
            r = self.get("/api/users/%d/jobs?limit=%s" % (uid, v))
            self.assertError(r, 400, "bad_request", "limit=%s" % v)

    def test_status_filter(self):
        uid = self.env.claim("SELECT user_id FROM jobs GROUP BY user_id "
                             "HAVING count(DISTINCT status) >= 2 ORDER BY user_id")
        for st in STATUSES:
            r = self.get("/api/users/%d/jobs?status=%s&limit=100" % (uid, st))
            self.assertStatus(r, 200, "status=%s" % st)
            jobs = r.json()
            want = int(self.env.psql_value(
                "SELECT count(*) FROM jobs WHERE user_id = %d AND status = '%s'" % (uid, st)))
            self.assertEqual(len(jobs), min(want, 100), "status=%s count must match the database" % st)
            for j in jobs:
                self.assertEqual(j["status"], st, "status=%s filter" % st)

    def test_invalid_status_400(self):
        uid = self.user_with_jobs(0)
        for v in ("bogus", "DONE", "done%20", "queued,done"):
            r = self.get("/api/users/%d/jobs?status=%s" % (uid, v))
            self.assertError(r, 400, "bad_request", "status=%s" % v)

    def test_undeclared_query_params_ignored_and_not_in_key(self):
        uid = self.user_with_jobs(0)
        r1 = self.get("/api/users/%d/jobs" % uid)
        self.assertXCache(r1, "MISS", "plain")
        r2 = self.get("/api/users/%d/jobs?foo=1" % uid)
        self.assertStatus(r2, 200, "?foo=1 must be ignored")
        self.assertXCache(r2, "HIT", "?foo=1 must not be part of the cache key")
        r3 = self.get("/api/users/%d/jobs?foo=1&bar=&limit=20&_=123" % uid)
        self.assertXCache(r3, "HIT", "undeclared params plus the default limit must hit")
        # Also on a route with no declared query params.
        u = self.env.claim_user()
        self.assertXCache(self.get("/api/users/%d" % u), "MISS")
        self.assertXCache(self.get("/api/users/%d?x=y&limit=5" % u), "HIT", "user route with junk query")

    def test_jobs_of_user_without_jobs_is_empty_array(self):
        uid = self.env.insert_user("nojobs")
        r = self.get("/api/users/%d/jobs" % uid)
        self.assertStatus(r, 200)
        self.assertEqual(self.assertJsonBody(r), [], "a user without jobs has an empty list")

    def test_jobs_list_cache_headers(self):
        uid = self.user_with_jobs(0)
        p = "/api/users/%d/jobs?status=queued" % uid
        r1 = self.get(p)
        r2 = self.get(p)
        self.assertXCache(r1, "MISS")
        self.assertXCache(r2, "HIT")
        self.assertEqual(r2.headers.get("cache-control"), "no-cache")
        self.assertEqual(self.get(p, headers={"If-None-Match": r1.headers["etag"]}).status, 304)


class Jobs(RCTestCase):

    def test_job_shape(self):
        jid = self.env.claim("SELECT id FROM jobs ORDER BY id")
        r = self.get("/api/jobs/%d" % jid)
        self.assertStatus(r, 200)
        j = self.assertJsonBody(r, "job")
        self.assertEqual(sorted(j.keys()), JOB_KEYS, "job fields")
        self.assertEqual(j["id"], jid)
        self.assertIn(j["status"], STATUSES)
        self.assertIsInstance(j["user_id"], int)
        self.assertIsInstance(j["payload"], dict, "payload is a JSON object, not a string")
        want = self.env.psql_json("SELECT payload::text FROM jobs WHERE id = %d" % jid)
        self.assertEqual(j["payload"], want, "payload must equal the database value")
        self.assertTimestamp(j["created_at"])
        self.assertTimestamp(j["updated_at"])

    def test_job_cache_headers(self):
        jid = self.env.claim("SELECT id FROM jobs ORDER BY id")
        r1, r2 = self.get("/api/jobs/%d" % jid), self.get("/api/jobs/%d" % jid)
        self.assertXCache(r1, "MISS")
        self.assertXCache(r2, "HIT")
        self.assertEqual(r1.headers.get("etag"), r2.headers.get("etag"))
        self.assertEqual(r2.headers.get("cache-control"), "no-cache")

    def test_absent_job_404(self):
        r = self.get("/api/jobs/987654321")
        self.assertError(r, 404, "not_found", "absent job")
        self.assertXCache(self.get("/api/jobs/987654321"), "HIT", "absent job 404 cached")

    def test_job_result_shape(self):
        jid = self.env.claim("SELECT job_id FROM job_results ORDER BY job_id")
        r = self.get("/api/jobs/%d/result" % jid)
        self.assertStatus(r, 200)
        b = self.assertJsonBody(r, "result")
        self.assertEqual(sorted(b.keys()), ["completed_at", "job_id", "result"], "result fields")
        self.assertEqual(b["job_id"], jid)
        self.assertTimestamp(b["completed_at"])
        want = self.env.psql_json("SELECT result::text FROM job_results WHERE job_id = %d" % jid)
        self.assertEqual(b["result"], want, "result must equal the database value")
        self.assertXCache(r, "MISS")
        self.assertXCache(self.get("/api/jobs/%d/result" % jid), "HIT")

    def test_job_without_result_404(self):
        jid = self.env.claim("SELECT id FROM jobs j WHERE NOT EXISTS "
                             "(SELECT 1 FROM job_results r WHERE r.job_id = j.id) ORDER BY id")
        r = self.get("/api/jobs/%d/result" % jid)
        self.assertError(r, 404, "not_found", "job without result")
        r2 = self.get("/api/jobs/%d/result" % jid)
        self.assertError(r2, 404, "not_found")
        self.assertXCache(r2, "HIT", "result 404 cached")

    def test_result_of_absent_job_404(self):
        self.assertError(self.get("/api/jobs/987654323/result"), 404, "not_found", "absent job result")


class Settings(RCTestCase):

    def test_settings_one_object(self):
        r = self.get("/api/settings")
        self.assertStatus(r, 200)
        s = self.assertJsonBody(r, "settings")
        self.assertIsInstance(s, dict, "settings is one object")
        want = self.env.psql_json("SELECT coalesce(json_object_agg(key, value), '{}') FROM settings")
        self.assertEqual(s, want, "settings must be {key: value} over all rows")
        self.assertTrue(s, "demo data should have settings")

    def test_settings_cache_headers(self):
        self.env.restart_respcache()
        r1, r2 = self.get("/api/settings"), self.get("/api/settings")
        self.assertXCache(r1, "MISS")
        self.assertXCache(r2, "HIT")
        self.assertEqual(r1.headers.get("etag"), r2.headers.get("etag"))
        self.assertEqual(r2.headers.get("cache-control"), "no-cache")
        self.assertEqual(self.get("/api/settings", headers={"If-None-Match": r2.headers["etag"]}).status, 304)


class Dashboard(RCTestCase):

    def test_dashboard_counts_match_database(self):
        uid = self.env.claim("SELECT user_id FROM jobs GROUP BY user_id "
                             "HAVING count(DISTINCT status) >= 2 ORDER BY user_id")
        r = self.get("/api/dashboard/%d" % uid)
        self.assertStatus(r, 200)
        d = self.assertJsonBody(r, "dashboard")
        self.assertEqual(sorted(d.keys()), ["jobs", "last_job_at", "user_id"], "dashboard fields")
        self.assertEqual(d["user_id"], uid)
        self.assertEqual(sorted(d["jobs"].keys()), sorted(STATUSES), "jobs counts by status")
        for st in STATUSES:
            want = int(self.env.psql_value(
                "SELECT count(*) FROM jobs WHERE user_id = %d AND status = '%s'" % (uid, st)))
            self.assertEqual(d["jobs"][st], want, "dashboard %s count must match the database" % st)
        self.assertTimestamp(d["last_job_at"], "last_job_at")
        last = float(self.env.psql_value("SELECT extract(epoch FROM max(created_at)) FROM jobs "
                                         "WHERE user_id = %d" % uid))
        self.assertAlmostEqual(parse_ts(d["last_job_at"]), last, delta=1e-5,
                               msg="last_job_at must be the newest job's created_at")

    def test_dashboard_user_without_jobs(self):
        uid = self.env.insert_user("nodash")
        d = self.get("/api/dashboard/%d" % uid).json()
        self.assertEqual(d["jobs"], {s: 0 for s in STATUSES}, "all counts zero")
        self.assertIsNone(d["last_job_at"], "last_job_at is null without jobs")

    def test_dashboard_unknown_user_404(self):
        r = self.get("/api/dashboard/987654321")
        self.assertError(r, 404, "not_found", "dashboard of an unknown user")

    def test_dashboard_cache_headers(self):
        uid = self.env.claim_user()
        r1, r2 = self.get("/api/dashboard/%d" % uid), self.get("/api/dashboard/%d" % uid)
        self.assertXCache(r1, "MISS")
        self.assertXCache(r2, "HIT")
        self.assertEqual(r2.headers.get("cache-control"), "no-cache")


class Sessions(RCTestCase):

    def valid_token(self):
        rows = self.env.psql("SELECT token FROM sessions WHERE expires_at > now() + interval '1 hour' "
                             "ORDER BY token")
        with self.env._claim_lock:
            for (t,) in rows:
                if t not in self.env._claimed:
                    self.env._claimed.add(t)
                    return t
        self.fail("demo data has no unclaimed valid session")

    def test_valid_session_200(self):
        t = self.valid_token()
        r = self.get("/api/sessions/" + t)
        self.assertStatus(r, 200, "valid session")
        s = self.assertJsonBody(r, "session")
        self.assertEqual(sorted(s.keys()), ["created_at", "expires_at", "token", "user_id"], "session fields")
        self.assertEqual(s["token"], t)
        self.assertIsInstance(s["user_id"], int)
        self.assertTimestamp(s["created_at"])
        self.assertTimestamp(s["expires_at"])
        self.assertXCache(r, "MISS")
        self.assertXCache(self.get("/api/sessions/" + t), "HIT")

    def test_expired_demo_sessions_404(self):
        for (tok,) in self.env.psql("SELECT token FROM sessions WHERE expires_at < now()"):
            self.assertError(self.get("/api/sessions/" + tok), 404, "not_found", "expired session " + tok)

    def test_expired_session_404(self):
        uid = self.env.claim_user()
        tok = "expiredTok_" + "x" * 20
        self.env.psql("INSERT INTO sessions (token, user_id, created_at, expires_at) "
                      "VALUES ('%s', %d, now() - interval '2 days', now() - interval '1 day')" % (tok, uid))
        r = self.get("/api/sessions/" + tok)
        self.assertError(r, 404, "not_found", "expired session")

    def test_absent_session_404(self):
        self.assertError(self.get("/api/sessions/" + "A" * 43), 404, "not_found", "absent session")

    def test_bad_token_format_400(self):
        for t in ("short", "a" * 15, "a" * 129, "abcdefghijklmnop~", "abcdefghijklmnop%21",
                  "abcdefghijklmnop%2F", "abcdefghijklmno%20p", "abcdefghijklmnop.q",
                  "abcdefghijklmnop%00"):
            r = self.get("/api/sessions/" + t)
            self.assertError(r, 400, "bad_request", "token %r" % t)

    def test_token_length_bounds_accepted(self):
        for t in ("a" * 16, "Z" * 128, "Aa0_-" * 4):
            r = self.get("/api/sessions/" + t)
            self.assertError(r, 404, "not_found", "well-formed token %r is valid but absent" % t)
