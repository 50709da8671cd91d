"""Write-through and a write's own notifications.

A write route with "write_through" (the demo's PATCH /api/users/{id},
PATCH /api/jobs/{id} and PUT /api/jobs/{id}/result) stores its answer as
the entry of its GET twin, so the next GET is a HIT with exactly the bytes
a query would give. It does so only when no other change moved the
entry's tags between the write's statement and its bump; a concurrent
change makes it skip (counted), never store something stale.

The worker that ran a write LISTENs on its own connection, so it bumps
the tags of its own transaction's trigger notifications (cascades too)
before it answers, and the listener does not bump them a second time.

test_redis_api_suite runs this module again with the redis and tiered
providers."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fresh_harness as fh  # noqa: E402
import harness  # noqa: E402
from harness import RCTestCase  # noqa: E402

ENV = None
SLOW_S = 1.0

TEST_ROUTES = [
    # A PATCH whose statement sleeps before it updates: room for another
    # change to land between the write's first and second look at the tags.
    {"name": "wt_slow_update", "method": "PATCH", "path": "/api/test/wt/users/{id:int}",
     "params": [{"name": "id", "from": "path"},
                {"name": "name", "from": "body", "type": "string", "min_length": 1,
                 "max_length": 200}],
     "sql": "WITH s AS (SELECT pg_sleep(%s) AS z) UPDATE users SET name = $2::text, "
            "updated_at = now() FROM s WHERE users.id = $1::bigint "
            "RETURNING users.id, users.email, users.name, users.plan, users.created_at, "
            "users.updated_at" % SLOW_S,
     "result": "object", "invalidate": ["user:{id}"], "write_through": "user"},
]


def add_routes(cfg):
    cfg["routes"].extend(TEST_ROUTES)
    return cfg


def setUpModule():
    global ENV
    ENV = harness.module_env(config_transform=add_routes,
                             env={"RESPCACHE_ADMIN_TOKEN": fh.ADMIN_TOKEN})


def tearDownModule():
    if ENV is not None:
        ENV.stop()


def wt_counts(env):
    m = fh.metrics(env)
    return (m.get('respcache_write_through_total{result="stored"}', 0),
            m.get('respcache_write_through_total{result="skipped"}', 0))


def user_row(env, uid):
    """(name, email, plan) of the user, straight from PostgreSQL."""
    return tuple(env.psql("SELECT name, email, plan FROM users WHERE id = %d" % uid)[0])


def fields(r):
    u = r.json()
    return (u["name"], u["email"], u["plan"])


class WriteThrough(RCTestCase):

    def cached(self, path):
        self.get(path)
        r = self.get(path)
        self.assertXCache(r, "HIT", "precondition: %s cached" % path)
        return r

    def purge(self, path):
        """Drop every entry, so the next GET of path queries PostgreSQL."""
        del path
        r = fh.admin(self.env, "DELETE", "/cache")
        self.assertStatus(r, 200, "DELETE /cache")

    def test_patch_user_next_get_is_a_hit_with_the_bytes_a_query_gives(self):
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        self.cached(p)
        stored0, _ = wt_counts(self.env)
        own = fh.metric(self.env, "respcache_db_own_notifications_total")
        w = self.req("PATCH", p, {"name": "Written Through", "plan": "pro"})
        self.assertStatus(w, 200, "PATCH " + p)
        g = self.get(p)
        self.assertXCache(g, "HIT", "the PATCH stored its answer as the GET's entry")
        self.assertEqual(g.body, w.body, "the entry is the PATCH's answer")
        self.assertEqual(wt_counts(self.env)[0], stored0 + 1)
        # The trigger's notification of this PATCH reaches the listener a
        # moment later; the write bumped its tags itself, so the listener
        # skips it and the entry stays.
        fh.wait_until(lambda: fh.metric(self.env, "respcache_db_own_notifications_total") > own
                      or None, 2.0, what="the listener skipped the PATCH's own notification")
        self.assertXCache(self.get(p), "HIT", "the listener did not bump the PATCHed user again")
        # What PostgreSQL answers for the same key, byte for byte.
        self.purge(p)
        q = self.get(p)
        self.assertXCache(q, "MISS")
        self.assertEqual(q.body, w.body, "the query gives the bytes the PATCH stored")
        self.assertEqual(q.headers.get("etag"), g.headers.get("etag"))

    def test_patch_job_and_put_result_write_through(self):
        uid = self.env.claim("SELECT user_id FROM jobs GROUP BY user_id HAVING count(*) >= 1 "
                             "ORDER BY user_id DESC")
        jid = int(self.env.psql_value("SELECT min(id) FROM jobs WHERE user_id = %d" % uid))
        job, jobs, res = "/api/jobs/%d" % jid, "/api/users/%d/jobs" % uid, "/api/jobs/%d/result" % jid
        self.cached(job)
        self.cached(jobs)
        w = self.req("PATCH", job, {"status": "running"})
        self.assertStatus(w, 200)
        g = self.get(job)
        self.assertXCache(g, "HIT")
        self.assertEqual(g.body, w.body)
        l = self.get(jobs)
        self.assertNotEqual(l.headers.get("x-cache"), "HIT", "the owner's job list was invalidated")
        self.assertEqual([j["status"] for j in l.json() if j["id"] == jid], ["running"])
        w = self.req("PUT", res, {"result": {"rows": 3}})
        self.assertStatus(w, 200)
        g = self.get(res)
        self.assertXCache(g, "HIT")
        self.assertEqual(g.body, w.body)
        self.assertNotIn("_user_id", g.json(), "hidden columns stay hidden")
        self.purge(res)
        q = self.get(res)
        self.assertXCache(q, "MISS")
        self.assertEqual(q.body, w.body)
        self.assertEqual(self.get(job).json()["status"], "done", "the job became done")

    def test_patch_of_an_absent_user_stores_nothing(self):
        absent = int(self.env.psql_value("SELECT max(id) + 1000 FROM users"))
        p = "/api/users/%d" % absent
        stored0, skipped0 = wt_counts(self.env)
        self.assertError(self.req("PATCH", p, {"name": "Nobody"}), 404, "not_found")
        g = self.get(p)
        self.assertError(g, 404, "not_found")
        self.assertEqual(wt_counts(self.env), (stored0, skipped0))

    def test_a_change_during_the_statement_skips_the_store(self):
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        self.cached(p)
        stored0, skipped0 = wt_counts(self.env)
        out = {}
        t = threading.Thread(target=lambda: out.update(
            r=self.req("PATCH", "/api/test/wt/users/%d" % uid, {"name": "Slow Writer"})))
        t.start()
        # The PATCH's statement is running (it read the generations before
        # it started) and sleeps before it locks the row.
        fh.wait_until(lambda: self.env.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
            "AND query LIKE '%pg_sleep%'")[0][0] != "0" or None, 10.0,
            interval=0.02, what="the slow PATCH's statement runs")
        # Another writer commits meanwhile; its trigger bumps user:{id}
        # through the listener.
        self.env.psql("UPDATE users SET email = 'other-%d@test.example' WHERE id = %d" % (uid, uid))
        t.join(30)
        self.assertStatus(out["r"], 200)
        self.assertEqual(wt_counts(self.env), (stored0, skipped0 + 1),
                         "the PATCH saw another bump of user:%d and stored nothing" % uid)
        g = self.get(p)
        self.assertNotEqual(g.headers.get("x-cache"), "HIT")
        self.assertEqual((g.json()["name"], g.json()["email"]),
                         ("Slow Writer", "other-%d@test.example" % uid))

    def test_concurrent_patches_of_one_user_leave_the_last_commit_cached(self):
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        for rnd in range(12):
            self.cached(p)
            go = threading.Barrier(6)
            errors = []

            def writer(k):
                try:
                    go.wait(10)
                    r = self.req("PATCH", p, {"name": "Round %d writer %d" % (rnd, k)})
                    if r.status != 200:
                        errors.append(r)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

            def psql_writer():
                try:
                    go.wait(10)
                    self.env.psql("UPDATE users SET plan = '%s' WHERE id = %d"
                                  % (("free", "pro", "enterprise")[rnd % 3], uid))
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

            ts = [threading.Thread(target=writer, args=(k,)) for k in range(5)]
            ts.append(threading.Thread(target=psql_writer))
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            self.assertEqual(errors, [])
            want = user_row(self.env, uid)
            # Every write has answered; the listener may still be applying
            # psql's notification, after which the entry must be current.
            fh.wait_until(lambda: fields(self.get(p)) == want or None, 2.0,
                          what="GET %s equals the row in round %d" % (p, rnd))
            for _ in range(3):
                self.assertEqual(fields(self.get(p)), want, "round %d: never an older write" % rnd)
                time.sleep(0.05)


    def test_concurrent_patches_of_one_user_all_write_through(self):
        # Write-throughs of one entry take turns in the process, so each
        # sees only its own bump and stores its answer: none is skipped,
        # and the entry left is the last commit's, a HIT.
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        self.cached(p)
        stored0, skipped0 = wt_counts(self.env)
        writes = 0
        for rnd in range(10):
            go = threading.Barrier(6)
            errors = []

            def writer(k):
                try:
                    go.wait(10)
                    r = self.req("PATCH", p, {"name": "Turn %d writer %d" % (rnd, k)})
                    if r.status != 200:
                        errors.append(r)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

            ts = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            self.assertEqual(errors, [])
            writes += len(ts)
            r = self.get(p)
            self.assertXCache(r, "HIT", "round %d: the last PATCH's answer" % rnd)
            self.assertEqual(fields(r), user_row(self.env, uid), "round %d" % rnd)
        stored, skipped = wt_counts(self.env)
        self.assertEqual((stored - stored0, skipped - skipped0), (writes, 0),
                         "(stored, skipped) write-throughs of %d PATCHes" % writes)


class OwnNotifications(RCTestCase):

    def test_cascade_tags_are_bumped_before_the_delete_answers(self):
        uid = self.env.claim("SELECT user_id FROM jobs GROUP BY user_id HAVING count(*) >= 2 "
                             "ORDER BY user_id")
        jids = [int(x[0]) for x in self.env.psql(
            "SELECT id FROM jobs WHERE user_id = %d ORDER BY id" % uid)]
        for j in jids:
            self.get("/api/jobs/%d" % j)
            self.assertXCache(self.get("/api/jobs/%d" % j), "HIT")
        own = fh.metric(self.env, "respcache_db_own_notifications_total")
        self.assertStatus(self.req("DELETE", "/api/users/%d" % uid), 204)
        # No wait: the jobs the cascade removed carry job:{id}, which the
        # route does not name; the DELETE's own notifications did.
        for j in jids:
            self.assertError(self.get("/api/jobs/%d" % j), 404, "not_found",
                             "job %d went with its user, before the DELETE answered" % j)
        fh.wait_until(lambda: fh.metric(self.env, "respcache_db_own_notifications_total")
                      >= own + 1 + len(jids) or None, 2.0,
                      what="the listener skipped the DELETE's own notifications")

    def test_psql_writes_are_still_the_listeners(self):
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        self.get(p)
        self.assertXCache(self.get(p), "HIT")
        own = fh.metric(self.env, "respcache_db_own_notifications_total")
        self.env.psql("UPDATE users SET name = 'Psql Writer' WHERE id = %d" % uid)
        fh.wait_until(lambda: self.get(p).json()["name"] == "Psql Writer" or None, 1.0,
                      what="the psql UPDATE shows")
        self.assertEqual(fh.metric(self.env, "respcache_db_own_notifications_total"), own,
                         "another session's notification is not one of ours")
