"""Warm-up (issue 8): the config's "warm" queries fill the cache in the
background at start, so the configured keys are HITs shortly after start
without any request having asked for them; keys the queries do not name
are still cold, and the process answers requests meanwhile."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fresh_harness as fh  # noqa: E402
import harness  # noqa: E402
from harness import RCTestCase  # noqa: E402

ENV = None
WARM_USERS = list(range(50, 80))  # 30 users


def add_warm(cfg):
    cfg["warm_concurrency"] = 3
    cfg["warm"] = [
        {"route": "user", "sql": "SELECT id FROM users WHERE id BETWEEN %d AND %d ORDER BY id"
                                 % (WARM_USERS[0], WARM_USERS[-1])},
        # A query param from a column; limit caps the rows.
        {"route": "user_jobs", "sql": "SELECT id, 5 AS \"limit\" FROM users ORDER BY id OFFSET 90",
         "limit": 4},
        {"route": "settings", "sql": "SELECT 1 AS one"},
    ]
    return cfg


def setUpModule():
    global ENV
    ENV = harness.module_env(config_transform=add_warm)


def tearDownModule():
    if ENV is not None:
        ENV.stop()


class WarmUp(RCTestCase):

    def test_configured_keys_are_hits_without_a_request(self):
        fh.wait_until(lambda: fh.metric(self.env, "respcache_warmed_entries_total") >= 35, 15,
                      what="the warm-up stored its 35 entries")
        for u in WARM_USERS:
            r = self.get("/api/users/%d" % u)
            self.assertStatus(r, 200)
            self.assertXCache(r, "HIT", "user %d was warmed at start" % u)
        for u in (91, 92, 93, 94):
            self.assertXCache(self.get("/api/users/%d/jobs?limit=5" % u), "HIT",
                              "jobs of user %d (limit 5) warmed" % u)
        self.assertXCache(self.get("/api/users/95/jobs?limit=5"), "MISS", "past the row limit")
        self.assertXCache(self.get("/api/users/91/jobs"), "MISS",
                          "the default limit is another key than limit=5")
        self.assertXCache(self.get("/api/settings"), "HIT", "a route without params")
        self.assertXCache(self.get("/api/users/%d" % (WARM_USERS[-1] + 1)), "MISS",
                          "a user the query does not name is cold")
        with open(self.env.rc_log) as f:
            log = f.read()
        self.assertIn('"event":"warm_done"', log, "the warm-up logs its end")
