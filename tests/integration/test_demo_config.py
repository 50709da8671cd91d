"""The demo config (etc/respcache.json) declares API.md's route table: the
per-entity TTLs and tags of the reads, and the invalidations of the writes.

TTLs cannot be observed in a test that runs for seconds, and an
invalidation's source (the RETURNING row, not the client) is not visible
from outside, so these two columns of API.md are checked in the config the
demo ships. Everything else is checked over HTTP by the other modules."""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

CONFIG = os.path.join(harness.REPO, "etc", "respcache.json")

# API.md "Demo routes and their per-entity TTLs": path -> (ttl, tags)
READS = {
    "/api/users/{id}": (3600, {"user:{id}"}),
    "/api/users/{id}/jobs": (300, {"user:{id}:jobs"}),
    "/api/jobs/{id}": (300, {"job:{id}"}),
    "/api/jobs/{id}/result": (600, {"job:{id}"}),
    "/api/settings": (600, {"settings"}),
    "/api/dashboard/{user_id}": (300, {"user:{user_id}", "user:{user_id}:jobs"}),
    "/api/sessions/{token}": (86400, {"session:{token}"}),
}

# API.md "Writes": (method, path) -> (status, invalidations). "{row}" stands
# for any column of the RETURNING row ({row.id}, {row._user_id}, ...).
WRITES = {
    ("POST", "/api/users"): (201, {"user:{row}"}),
    ("PATCH", "/api/users/{id}"): (200, {"user:{id}"}),
    ("DELETE", "/api/users/{id}"): (204, {"user:{id}", "user:{id}:jobs"}),
    ("POST", "/api/users/{id}/jobs"): (201, {"user:{id}:jobs", "job:{row}"}),
    ("PATCH", "/api/jobs/{id}"): (200, {"job:{id}", "user:{row}:jobs"}),
    ("PUT", "/api/jobs/{id}/result"): (200, {"job:{id}", "user:{row}:jobs"}),
    ("PUT", "/api/settings/{key}"): (200, {"settings"}),
    ("POST", "/api/sessions"): (201, {"session:{row}"}),
    ("DELETE", "/api/sessions/{token}"): (204, {"session:{token}"}),
}


def norm_path(p):
    return re.sub(r"\{([a-z_][a-z0-9_]*)(:[a-z]+)?\}", r"{\1}", p)


def norm_tag(t):
    return re.sub(r"\{row\.[A-Za-z0-9_]+\}", "{row}", t)


class DemoConfig(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        with open(CONFIG) as f:
            cls.cfg = json.load(f)
        cls.routes = {}
        for r in cls.cfg["routes"]:
            cls.routes[(r.get("method", "GET"), norm_path(r["path"]))] = r

    def test_every_read_has_its_ttl_and_tags(self):
        for path, (ttl, tags) in READS.items():
            with self.subTest(path=path):
                r = self.routes.get(("GET", path))
                self.assertIsNotNone(r, "etc/respcache.json must declare GET %s" % path)
                self.assertEqual(r.get("ttl"), ttl, "GET %s: API.md says TTL %d s" % (path, ttl))
                self.assertEqual(set(r.get("tags", [])), tags, "GET %s: API.md says tags %s" % (path, sorted(tags)))

    def test_reads_with_a_404_have_a_short_negative_ttl(self):
        for path in ("/api/users/{id}", "/api/jobs/{id}", "/api/jobs/{id}/result",
                     "/api/dashboard/{user_id}", "/api/sessions/{token}"):
            with self.subTest(path=path):
                r = self.routes[("GET", path)]
                neg = r.get("negative_ttl", self.cfg.get("cache", {}).get("negative_ttl", 30))
                self.assertTrue(0 < neg <= 300, "GET %s: 404s are cached with a short TTL, got %r" % (path, neg))

    def test_every_write_invalidates_what_api_md_says(self):
        for (method, path), (status, inval) in WRITES.items():
            with self.subTest(route="%s %s" % (method, path)):
                r = self.routes.get((method, path))
                self.assertIsNotNone(r, "etc/respcache.json must declare %s %s" % (method, path))
                got = {norm_tag(t) for t in r.get("invalidate", [])}
                self.assertEqual(got, inval, "%s %s: API.md says it invalidates %s" % (method, path, sorted(inval)))
                want_status = r.get("status", 204 if r.get("result") == "none" else 200)
                self.assertEqual(want_status, status, "%s %s: success status" % (method, path))

    def test_job_owner_comes_from_the_returning_row(self):
        for key in (("PATCH", "/api/jobs/{id}"), ("PUT", "/api/jobs/{id}/result")):
            with self.subTest(route="%s %s" % key):
                r = self.routes[key]
                owner = [t for t in r.get("invalidate", []) if t.endswith(":jobs")]
                self.assertEqual(len(owner), 1)
                self.assertRegex(owner[0], r"^user:\{row\.[A-Za-z0-9_]+\}:jobs$",
                                 "{owner} must be a column of the RETURNING row, not a client value")
                body_params = {p["name"] for p in r.get("params", []) if p.get("from") == "body"}
                col = re.search(r"\{row\.([A-Za-z0-9_]+)\}", owner[0]).group(1)
                self.assertNotIn(col, body_params, "the owner must not come from the request body")

    def test_no_other_api_routes(self):
        declared = {k for k in self.routes if k[1].startswith("/api/")}
        expected = {("GET", p) for p in READS} | set(WRITES)
        self.assertEqual(declared - expected, set(), "the demo exposes exactly API.md's routes")


if __name__ == "__main__":
    unittest.main()
