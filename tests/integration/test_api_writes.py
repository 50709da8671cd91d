"""Writes of the demo app (API.md): status codes and bodies, and that each
write's invalidations have taken effect when its response arrives (a cached
entry filled before the write is never served after it)."""

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
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def setUpModule():
    global ENV
    ENV = harness.module_env()


def tearDownModule():
    if ENV is not None:
        ENV.stop()


class Base(RCTestCase):

    def next_id(self, table):
        return int(self.env.psql_value(
            "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s"
            % self.env.psql_value("SELECT pg_get_serial_sequence('%s', 'id')" % table)))

    def warm(self, path, status=200):
        """GET twice so that `path` is certainly cached; returns the body."""
        r1 = self.get(path)
        self.assertStatus(r1, status, "warming " + path)
        r2 = self.get(path)
        self.assertStatus(r2, status, "warming " + path)
        self.assertXCache(r2, "HIT", "warming %s (precondition: the route caches)" % path)
        return r2.json()

    def user_with_jobs(self):
        return self.env.claim("SELECT user_id FROM jobs GROUP BY user_id HAVING count(*) >= 2 ORDER BY user_id")


class UserWrites(Base):

    def test_create_user_201_location_and_body(self):
        r = self.req("POST", "/api/users", {"email": "new1@test.example", "name": "New One", "plan": "pro"})
        self.assertStatus(r, 201, "POST /api/users")
        u = self.assertJsonBody(r, "created user")
        self.assertEqual(sorted(u.keys()), USER_KEYS, "created user fields")
        self.assertEqual((u["email"], u["name"], u["plan"]), ("new1@test.example", "New One", "pro"))
        self.assertIsInstance(u["id"], int)
        self.assertTimestamp(u["created_at"])
        self.assertTimestamp(u["updated_at"])
        loc = r.headers.get("location")
        self.assertIsNotNone(loc, "201 must carry Location")
        self.assertTrue(loc == "/api/users/%d" % u["id"] or loc.endswith("/api/users/%d" % u["id"]),
                        "Location must point at the new user, got %r" % loc)
        g = self.get("/api/users/%d" % u["id"])
        self.assertStatus(g, 200, "GET the created user")
        self.assertEqual(g.json(), u, "GET must return what POST returned")

    def test_create_user_default_plan_free(self):
        r = self.req("POST", "/api/users", {"email": "new2@test.example", "name": "New Two"})
        self.assertStatus(r, 201)
        self.assertEqual(r.json()["plan"], "free", "plan defaults to free")

    def test_create_user_drops_cached_404_of_new_id(self):
        nid = self.next_id("users")
        p = "/api/users/%d" % nid
        self.assertError(self.get(p), 404, "not_found", "next user id before the create")
        r = self.get(p)
        self.assertXCache(r, "HIT", "precondition: the 404 is cached")
        c = self.req("POST", "/api/users", {"email": "new3@test.example", "name": "New Three"})
        self.assertStatus(c, 201)
        self.assertEqual(c.json()["id"], nid, "precondition: the new user got the predicted id")
        g = self.get(p)
        self.assertStatus(g, 200, "a cached 404 must not survive the create of id %d" % nid)
        self.assertEqual(g.json()["email"], "new3@test.example")

    def test_patch_user_200_and_read_your_writes(self):
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        before = self.warm(p)
        r = self.req("PATCH", p, {"name": "Patched Name", "plan": "enterprise"})
        self.assertStatus(r, 200, "PATCH " + p)
        u = self.assertJsonBody(r, "patched user")
        self.assertEqual(sorted(u.keys()), USER_KEYS)
        self.assertEqual((u["name"], u["plan"], u["email"]), ("Patched Name", "enterprise", before["email"]),
                         "PATCH changes only the given fields")
        self.assertGreaterEqual(parse_ts(u["updated_at"]), parse_ts(before["updated_at"]), "updated_at moves forward")
        g = self.get(p)
        self.assertStatus(g, 200)
        # The route writes through: its answer replaced the old entry.
        self.assertXCache(g, "HIT", "the first GET after a PATCH answers the PATCH's entry")
        self.assertEqual(g.body, r.body, "GET after PATCH must show the write")
        self.assertEqual(g.json(), u)
        self.assertNotEqual(g.headers.get("etag"), None)

    def test_patch_user_email(self):
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        self.warm(p)
        r = self.req("PATCH", p, {"email": "changed-%d@test.example" % uid})
        self.assertStatus(r, 200)
        self.assertEqual(self.get(p).json()["email"], "changed-%d@test.example" % uid)

    def test_patch_changes_etag(self):
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        old = self.get(p).headers["etag"]
        self.assertStatus(self.req("PATCH", p, {"name": "Etag Change"}), 200)
        r = self.get(p, headers={"If-None-Match": old})
        self.assertStatus(r, 200, "the old ETag must not match after a PATCH")
        self.assertNotEqual(r.headers.get("etag"), old)

    def test_patch_absent_user_404(self):
        r = self.req("PATCH", "/api/users/987654321", {"name": "Nobody"})
        self.assertError(r, 404, "not_found", "PATCH absent user")

    def test_delete_user_204_then_404(self):
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        self.warm(p)
        jobs = self.warm(p + "/jobs")
        self.warm("/api/dashboard/%d" % uid)
        r = self.req("DELETE", p)
        self.assertStatus(r, 204, "DELETE " + p)
        self.assertEqual(r.body, b"", "204 has no body")
        self.assertError(self.get(p), 404, "not_found", "GET after DELETE (a cached 200 must not survive)")
        self.assertTrue(jobs, "precondition: the user had jobs")
        j = self.get(p + "/jobs")
        if j.status == 200:
            self.assertEqual(j.json(), [], "the deleted user's cached jobs list must not survive the DELETE")
        else:
            self.assertError(j, 404, "not_found", "jobs of a deleted user")
        d = self.get("/api/dashboard/%d" % uid)
        self.assertError(d, 404, "not_found", "dashboard of a deleted user (cached 200 must not survive)")
        r2 = self.req("DELETE", p)
        self.assertError(r2, 404, "not_found", "DELETE again")

    def test_delete_absent_user_404(self):
        self.assertError(self.req("DELETE", "/api/users/987654321"), 404, "not_found")


class JobWrites(Base):

    def test_create_job_201_queued_first_in_list(self):
        uid = self.user_with_jobs()
        lp = "/api/users/%d/jobs" % uid
        before = self.warm(lp)
        queued_before = self.warm(lp + "?status=queued")
        r = self.req("POST", lp, {"payload": {"kind": "test", "n": 1}})
        self.assertStatus(r, 201, "POST " + lp)
        j = self.assertJsonBody(r, "created job")
        self.assertEqual(sorted(j.keys()), JOB_KEYS, "created job fields")
        self.assertEqual(j["status"], "queued", "a new job is queued")
        self.assertEqual(j["user_id"], uid)
        self.assertEqual(j["payload"], {"kind": "test", "n": 1})
        loc = r.headers.get("location")
        if loc is not None:
            self.assertTrue(loc.endswith("/api/jobs/%d" % j["id"]), "Location %r" % loc)
        after = self.get(lp)
        self.assertStatus(after, 200)
        lst = after.json()
        self.assertEqual(lst[0]["id"], j["id"], "the new job must be first in the (previously cached) list")
        self.assertEqual(len(lst), min(20, len(before) + 1))
        q = self.get(lp + "?status=queued").json()
        self.assertEqual(len(q), len(queued_before) + 1, "the status=queued list must include the new job")
        g = self.get("/api/jobs/%d" % j["id"])
        self.assertStatus(g, 200)
        self.assertEqual(g.json(), j, "GET /api/jobs/{id} returns the created job")

    def test_create_job_drops_cached_404_of_new_id(self):
        uid = self.user_with_jobs()
        nid = self.next_id("jobs")
        p = "/api/jobs/%d" % nid
        self.warm(p, 404)
        r = self.req("POST", "/api/users/%d/jobs" % uid, {"payload": {}})
        self.assertStatus(r, 201)
        self.assertEqual(r.json()["id"], nid, "precondition: the new job got the predicted id")
        g = self.get(p)
        self.assertStatus(g, 200, "a cached 404 for the new job id must not survive the create")

    def test_create_job_unknown_user_404(self):
        r = self.req("POST", "/api/users/987654321/jobs", {"payload": {}})
        self.assertError(r, 404, "not_found", "job for an unknown user")

    def test_create_job_invalidates_dashboard(self):
        uid = self.user_with_jobs()
        dp = "/api/dashboard/%d" % uid
        d0 = self.warm(dp)
        r = self.req("POST", "/api/users/%d/jobs" % uid, {"payload": {"x": 1}})
        self.assertStatus(r, 201)
        d1 = self.get(dp)
        self.assertStatus(d1, 200)
        d1 = d1.json()
        self.assertEqual(d1["jobs"]["queued"], d0["jobs"]["queued"] + 1,
                         "a cached dashboard must count the new queued job")
        self.assertEqual(d1["last_job_at"], r.json()["created_at"], "last_job_at is the new job's created_at")

    def test_patch_job_status(self):
        uid = self.user_with_jobs()
        jid = int(self.env.psql_value("SELECT id FROM jobs WHERE user_id = %d AND status = 'queued' "
                                      "ORDER BY id LIMIT 1" % uid))
        jp = "/api/jobs/%d" % jid
        lp = "/api/users/%d/jobs" % uid
        self.warm(jp)
        self.warm(lp)
        running = self.warm(lp + "?status=running")
        d0 = self.warm("/api/dashboard/%d" % uid)
        r = self.req("PATCH", jp, {"status": "running"})
        self.assertStatus(r, 200, "PATCH " + jp)
        j = self.assertJsonBody(r, "patched job")
        self.assertEqual(sorted(j.keys()), JOB_KEYS)
        self.assertEqual(j["status"], "running")
        self.assertEqual(self.get(jp).json()["status"], "running", "GET job after PATCH")
        lst = self.get(lp).json()
        self.assertEqual([x["status"] for x in lst if x["id"] == jid], ["running"],
                         "the owner's cached jobs list must show the new status")
        self.assertEqual(len(self.get(lp + "?status=running").json()), len(running) + 1,
                         "the owner's status=running list must include the job")
        d1 = self.get("/api/dashboard/%d" % uid).json()
        self.assertEqual((d1["jobs"]["queued"], d1["jobs"]["running"]),
                         (d0["jobs"]["queued"] - 1, d0["jobs"]["running"] + 1),
                         "the owner's cached dashboard must reflect the status change")

    def test_patch_absent_job_404(self):
        self.assertError(self.req("PATCH", "/api/jobs/987654321", {"status": "done"}), 404, "not_found")

    def test_put_result(self):
        uid = self.user_with_jobs()
        jid = int(self.env.psql_value("SELECT id FROM jobs WHERE user_id = %d AND status = 'queued' "
                                      "ORDER BY id LIMIT 1" % uid))
        rp = "/api/jobs/%d/result" % jid
        self.warm(rp, 404)
        self.warm("/api/jobs/%d" % jid)
        self.warm("/api/users/%d/jobs" % uid)
        r = self.req("PUT", rp, {"result": {"ok": True, "rows": 3}})
        self.assertStatus(r, 200, "PUT " + rp)
        b = self.assertJsonBody(r, "result")
        self.assertEqual(sorted(b.keys()), ["completed_at", "job_id", "result"])
        self.assertEqual(b["job_id"], jid)
        self.assertEqual(b["result"], {"ok": True, "rows": 3})
        self.assertTimestamp(b["completed_at"])
        g = self.get(rp)
        self.assertStatus(g, 200, "a cached result 404 must not survive the PUT")
        self.assertEqual(g.json(), b)
        self.assertEqual(self.get("/api/jobs/%d" % jid).json()["status"], "done", "the job becomes done")
        lst = self.get("/api/users/%d/jobs" % uid).json()
        self.assertEqual([x["status"] for x in lst if x["id"] == jid], ["done"],
                         "the owner's jobs list shows the job as done")
        r2 = self.req("PUT", rp, {"result": {"ok": False}})
        self.assertStatus(r2, 200, "PUT result again replaces it")
        self.assertEqual(self.get(rp).json()["result"], {"ok": False})

    def test_put_result_absent_job_404(self):
        self.assertError(self.req("PUT", "/api/jobs/987654321/result", {"result": {}}), 404, "not_found")


class PatchWithoutFields(Base):

    def test_empty_or_null_fields_change_nothing_but_updated_at(self):
        # A JSON null counts as absent (README, Routes): PATCH {} and
        # {"name": null} are valid and change no field.
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        row = self.env.psql("SELECT email, name, plan FROM users WHERE id = %d" % uid)[0]
        for body in ({}, {"name": None}, {"email": None, "name": None, "plan": None}):
            r = self.req("PATCH", p, body)
            self.assertStatus(r, 200, "PATCH %s %r" % (p, body))
            u = r.json()
            self.assertEqual([u["email"], u["name"], u["plan"]], row, "%r changed no field" % body)
            self.assertEqual(self.get(p).json(), u, "the next GET shows the PATCH's answer")
        self.assertError(self.req("PATCH", p, {"name": ""}), 422, "unprocessable", "an empty name")

class SettingsWrites(Base):

    def test_put_setting_then_get_reflects(self):
        self.warm("/api/settings")
        for i, v in enumerate(({"a": [1, 2, {"b": None}]}, "dark", 42, 1.5, True, [1, "x"], "ünïcødé ☃", None, False, 0, {}, [])):
            r = self.req("PUT", "/api/settings/ui.theme", {"value": v})
            self.assertStatus(r, 200, "PUT /api/settings/ui.theme value %r" % (v,))
            b = self.assertJsonBody(r, "setting")
            self.assertEqual(sorted(b.keys()), ["key", "updated_at", "value"])
            self.assertEqual((b["key"], b["value"]), ("ui.theme", v))
            self.assertTimestamp(b["updated_at"])
            s = self.get("/api/settings")
            self.assertStatus(s, 200)
            self.assertEqual(s.json()["ui.theme"], v, "a cached settings object must show the PUT (step %d)" % i)

    def test_put_new_setting_key(self):
        self.warm("/api/settings")
        r = self.req("PUT", "/api/settings/tests.new_key", {"value": {"n": 1}})
        self.assertStatus(r, 200)
        self.assertEqual(self.get("/api/settings").json().get("tests.new_key"), {"n": 1})


class SessionWrites(Base):

    def create(self, uid, **kw):
        body = {"user_id": uid}
        body.update(kw)
        return self.req("POST", "/api/sessions", body)

    def test_create_session_201_token(self):
        uid = self.env.claim_user()
        r = self.create(uid)
        self.assertStatus(r, 201, "POST /api/sessions")
        s = self.assertJsonBody(r, "session")
        self.assertEqual(sorted(s.keys()), ["created_at", "expires_at", "token", "user_id"])
        self.assertEqual(s["user_id"], uid)
        self.assertRegex(s["token"], TOKEN_RE)
        # 128 bits of randomness in base64url need at least 22 characters.
        self.assertGreaterEqual(len(s["token"]), 22, "token must carry at least 128 bits")
        ttl = parse_ts(s["expires_at"]) - parse_ts(s["created_at"])
        self.assertAlmostEqual(ttl, 86400, delta=2, msg="default ttl_seconds is 86400")
        g = self.get("/api/sessions/" + s["token"])
        self.assertStatus(g, 200, "GET the created session")
        self.assertEqual(g.json(), s)

    def test_tokens_differ(self):
        uid = self.env.claim_user()
        toks = set()
        for _ in range(20):
            r = self.create(uid)
            self.assertStatus(r, 201)
            toks.add(r.json()["token"])
        self.assertEqual(len(toks), 20, "20 created sessions must have 20 different tokens")
        self.assertEqual(len({t[:11] for t in toks}), 20, "tokens must differ already in their first 64 bits")

    def test_ttl_bounds(self):
        uid = self.env.claim_user()
        for ttl in (0, -1, 31536001):
            self.assertError(self.create(uid, ttl_seconds=ttl), 422, "unprocessable", "ttl_seconds=%d" % ttl)
        for ttl in (1, 31536000):
            r = self.create(uid, ttl_seconds=ttl)
            self.assertStatus(r, 201, "ttl_seconds=%d is allowed" % ttl)
            s = r.json()
            self.assertAlmostEqual(parse_ts(s["expires_at"]) - parse_ts(s["created_at"]), ttl, delta=2,
                                   msg="expires_at = created_at + ttl_seconds")

    def test_unknown_user_404(self):
        self.assertError(self.create(987654321), 404, "not_found", "session for an unknown user")

    def test_delete_session(self):
        uid = self.env.claim_user()
        tok = self.create(uid).json()["token"]
        p = "/api/sessions/" + tok
        self.warm(p)
        r = self.req("DELETE", p)
        self.assertStatus(r, 204, "DELETE " + p)
        self.assertEqual(r.body, b"")
        self.assertError(self.get(p), 404, "not_found", "a cached session must not survive its DELETE")
        self.assertError(self.req("DELETE", p), 404, "not_found", "DELETE again")

    def test_delete_absent_session_404(self):
        self.assertError(self.req("DELETE", "/api/sessions/" + "Q" * 43), 404, "not_found")

    def test_delete_session_bad_token_400(self):
        self.assertError(self.req("DELETE", "/api/sessions/short"), 400, "bad_request")

    def test_short_session_expires_in_cache(self):
        uid = self.env.claim_user()
        s = self.create(uid, ttl_seconds=1).json()
        p = "/api/sessions/" + s["token"]
        self.assertStatus(self.get(p), 200, "fresh 1-second session")
        self.get(p)
        deadline = time.monotonic() + 10
        time.sleep(1.2)
        while True:
            r = self.get(p)
            if r.status == 404 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertError(r, 404, "not_found", "a cached session must not be served after expires_at")
