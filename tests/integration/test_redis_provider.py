"""CACHE_PROVIDER=redis against a real redis-server: transports (TCP, unix
socket, TLS with and without a client certificate), logins (ACL user,
password only), clear start-up errors (wrong password, wrong CA, missing
password), untrusted stored values, key prefixes, pattern purge, and the
restart detection that keeps a restored Redis from serving invalidated
entries."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import redis_harness  # noqa: E402
from harness import RCTestCase  # noqa: E402
from redis_harness import RedisServer  # noqa: E402

ENV = None
R = None  # TCP + unix socket, no password
TMP = None
TOKEN = "rc-redis-admin-token-0123456789"


def setUpModule():
    global ENV, R, TMP
    TMP = tempfile.mkdtemp(prefix="rc-it-redisprov-")
    os.chmod(TMP, 0o755)
    R = RedisServer(TMP, unix=True).start()
    try:
        ENV = harness.module_env(env=dict(R.respcache_env("redis"), RESPCACHE_ADMIN_TOKEN=TOKEN))
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


def base_env():
    return dict(R.respcache_env("redis"), RESPCACHE_ADMIN_TOKEN=TOKEN, REDIS_KEY_PREFIX=None,
                REDIS_TLS_CA_FILE=None, REDIS_TLS_CERT_FILE=None, REDIS_TLS_KEY_FILE=None)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


class ClosingServer:
    """A loopback port that accepts every connection, reads the client's first
    bytes and closes it cleanly (a FIN, never a reset, and no TLS close_notify).
    With certs it first completes a TLS handshake, like a TLS proxy whose Redis
    is not up yet; without, it closes in the middle of the client's handshake,
    like a port forwarder whose target is not listening yet."""

    def __init__(self, certs=None):
        self.ctx = None
        if certs is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(certs["server"], certs["server_key"])
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.accepted = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            try:
                c.settimeout(2)
                if self.ctx is not None:
                    c = self.ctx.wrap_socket(c, server_side=True)
                c.recv(65536)  # the ClientHello, or the commands after the handshake
                c.shutdown(socket.SHUT_WR)  # drops the TLS layer: no close_notify
                while c.recv(65536):
                    pass
            except (OSError, ssl.SSLError):
                pass
            finally:
                c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.lsock.close()


class RedisCase(RCTestCase):

    def use(self, **env):
        """Restart respcache with the base Redis settings plus env."""
        e = base_env()
        e.update(env)
        self.env.restart_respcache(env=e)

    def restore(self):
        self.env.restart_respcache(env=base_env())

    def start_fails(self, env, needles, forbidden=()):
        """Run the daemon with env; it must exit non-zero within 20 s and say
        every needle (case-insensitive) on stderr, and none of forbidden."""
        e = dict(os.environ)
        for k in ("REDIS_URL", "CACHE_PROVIDER", "REDIS_TLS_CA_FILE"):
            e.pop(k, None)
        e["DATABASE_URL"] = self.env.database_url
        e.update(env)
        sock = os.path.join(self.env.tmp, "run", "startfail.sock")
        t0 = time.monotonic()
        r = subprocess.run([self.env.bin, "--config", self.env.config_path, "--listen",
                            "unix:" + sock], env=e, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20, stdin=subprocess.DEVNULL)
        out = r.stdout.decode("utf-8", "replace")
        self.assertNotEqual(r.returncode, 0, "respcache must refuse to start; output:\n" + out)
        self.assertLess(time.monotonic() - t0, 10, "the start-up failure must be quick")
        for n in needles:
            self.assertIn(n.lower(), out.lower(), "start-up error must mention %r; got:\n%s" % (n, out))
        for n in forbidden:
            self.assertNotIn(n, out, "start-up error must not contain %r; got:\n%s" % (n, out))
        self.assertFalse(os.path.exists(sock), "no socket left behind")
        return out

    def miss_then_hit(self, what):
        uid = self.env.claim_user()
        p = "/api/users/%d" % uid
        r1 = self.get(p)
        self.assertStatus(r1, 200, what)
        self.assertXCache(r1, "MISS", what)
        r2 = self.get(p)
        self.assertXCache(r2, "HIT", what + " (second GET)")
        self.assertEqual(r1.body, r2.body, what)
        return uid

    def patch_invalidates(self, uid, what):
        """The PATCH bumps user:{id} in Redis and stores its answer as the
        GET's entry there (write-through): the next GET is a HIT with it."""
        p = "/api/users/%d" % uid
        w = self.req("PATCH", p, {"name": "Renamed %d" % uid})
        self.assertStatus(w, 200, what)
        self.assertNotIn("x-cache-invalidation", w.headers, "%s: the bump must succeed" % what)
        r = self.get(p)
        self.assertXCache(r, "HIT", what + ": GET after PATCH (written through)")
        self.assertEqual(r.body, w.body, what)
        self.assertEqual(r.json()["name"], "Renamed %d" % uid, what)

    def hit_soon(self, p, what):
        """GET p until a HIT (within 3 s). The PATCH's own trigger notification
        no longer bumps its tag a second time (the write bumps it and the
        listener skips it), but a notification the listener does not match
        would: such a bump makes one more miss, never a stale answer."""
        seen = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            seen.append(self.get(p).headers.get("x-cache"))
            if seen[-1] == "HIT":
                return
            time.sleep(0.05)
        self.fail("%s: no HIT within 3 s: %r" % (what, seen))


class Transports(RedisCase):

    def test_tcp_entries_and_generations_live_in_redis(self):
        uid = self.miss_then_hit("TCP")
        self.assertEqual(R.keys("rc:e:user:%d" % uid), ["rc:e:user:%d" % uid],
                         "the entry must be stored under prefix + 'e:' + key")
        self.patch_invalidates(uid, "TCP")
        self.assertGreaterEqual(int(R.cli("GET", "rc:tag:user:%d" % uid) or 0), 1,
                                "the PATCH must INCR the tag's generation key")

    def test_unix_socket_and_db_number(self):
        try:
            self.use(REDIS_URL=R.url("unix", db=2))
            uid = self.miss_then_hit("unix socket")
            self.assertEqual(R.cli("EXISTS", "rc:e:user:%d" % uid, db=2), 1,
                             "the entry must be in database 2")
            self.assertEqual(R.cli("EXISTS", "rc:e:user:%d" % uid), 0, "and not in database 0")
            self.patch_invalidates(uid, "unix socket")
        finally:
            self.restore()

    def test_key_prefix_namespaces_two_apps(self):
        try:
            self.use(REDIS_KEY_PREFIX="app2:")
            uid = self.miss_then_hit("prefix app2:")
            self.assertEqual(R.keys("app2:e:user:%d" % uid), ["app2:e:user:%d" % uid])
            self.assertEqual(R.keys("rc:e:user:%d" % uid), [], "nothing under the other prefix")
        finally:
            self.restore()


class Tls(RedisCase):

    @classmethod
    def setUpClass(cls):
        cls.certs = redis_harness.make_tls(TMP)
        cls.tls = RedisServer(TMP, "tls", tls=cls.certs).start()
        cls.mtls = RedisServer(TMP, "mtls", tls=cls.certs, tls_auth_clients="yes").start()

    @classmethod
    def tearDownClass(cls):
        cls.tls.stop()
        cls.mtls.stop()

    def test_tls_with_ca_file_by_ip_and_by_name(self):
        try:
            for host in ("127.0.0.1", "localhost"):
                self.use(REDIS_URL=self.tls.url("rediss", host=host),
                         REDIS_TLS_CA_FILE=self.certs["ca"])
                uid = self.miss_then_hit("TLS to " + host)
                self.assertEqual(self.tls.cli("EXISTS", "rc:e:user:%d" % uid), 1)
                self.patch_invalidates(uid, "TLS to " + host)
        finally:
            self.restore()

    def test_wrong_ca_is_a_clear_startup_error(self):
        self.start_fails({"CACHE_PROVIDER": "redis", "REDIS_URL": self.tls.url("rediss"),
                          "REDIS_TLS_CA_FILE": self.certs["other_ca"]},
                         ["certificate", "REDIS_TLS_CA_FILE", "127.0.0.1:%d" % self.tls.tls_port])

    def test_system_trust_store_rejects_a_private_ca(self):
        self.start_fails({"CACHE_PROVIDER": "redis", "REDIS_URL": self.tls.url("rediss")},
                         ["certificate"])

    def test_tls_url_on_a_plain_port_says_so_and_bypasses(self):
        """A plain Redis never answers a ClientHello: indistinguishable from
        a slow server, so respcache starts degraded and says why."""
        try:
            self.use(REDIS_URL="rediss://127.0.0.1:%d" % R.port,
                     REDIS_TLS_CA_FILE=self.certs["ca"], REDIS_CONNECT_TIMEOUT_MS="200")
            r = self.get("/api/users/%d" % self.env.claim_user())
            self.assertStatus(r, 200)
            self.assertXCache(r, "BYPASS", "no Redis session: BYPASS")
            with open(self.env.rc_log, "rb") as f:
                log = f.read().decode("utf-8", "replace")
            self.assertIn("is it a TLS port?", log, "the log must say what is probably wrong")
        finally:
            self.restore()

    def test_client_certificate(self):
        env = {"CACHE_PROVIDER": "redis", "REDIS_URL": self.mtls.url("rediss"),
               "REDIS_TLS_CA_FILE": self.certs["ca"]}
        self.start_fails(env, ["TLS", "certificate"])
        try:
            self.use(REDIS_URL=self.mtls.url("rediss"), REDIS_TLS_CA_FILE=self.certs["ca"],
                     REDIS_TLS_CERT_FILE=self.certs["client"],
                     REDIS_TLS_KEY_FILE=self.certs["client_key"])
            self.miss_then_hit("TLS with a client certificate")
        finally:
            self.restore()

    def starts_degraded(self, srv, what):
        """respcache pointed at srv starts (a server that closes connections
        is not a setting to fix), answers BYPASS and logs why."""
        try:
            self.use(REDIS_URL="rediss://127.0.0.1:%d" % srv.port,
                     REDIS_TLS_CA_FILE=self.certs["ca"], REDIS_CONNECT_TIMEOUT_MS="500")
        except harness.HarnessError as e:
            self.fail("%s: respcache must start degraded, not stop as if misconfigured (%s); "
                      "log:\n%s" % (what, e, harness.tail(self.env.rc_log)))
        self.assertGreaterEqual(srv.accepted, 1, what + ": respcache must have tried the server")
        r = self.get("/api/users/%d" % self.env.claim_user())
        self.assertStatus(r, 200, what)
        self.assertXCache(r, "BYPASS", what + ": no Redis session: BYPASS")
        with open(self.env.rc_log, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        self.assertIn("redis_unavailable_at_start", log, what + ": the log must say Redis is away")

    def test_server_closing_in_the_tls_handshake_is_transient_at_start(self):
        srv = ClosingServer()
        try:
            self.starts_degraded(srv, "connection closed during the TLS handshake")
        finally:
            srv.stop()
            self.restore()

    def test_server_closing_after_the_tls_handshake_is_transient_at_start(self):
        srv = ClosingServer(self.certs)
        try:
            self.starts_degraded(srv, "connection closed right after the TLS handshake")
        finally:
            srv.stop()
            self.restore()

    def test_missing_ca_file_is_a_clear_startup_error(self):
        self.start_fails({"CACHE_PROVIDER": "redis", "REDIS_URL": self.tls.url("rediss"),
                          "REDIS_TLS_CA_FILE": os.path.join(TMP, "no-such-ca.pem")},
                         ["CA file", "no-such-ca.pem"])


class Auth(RedisCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = RedisServer(TMP, "auth", password="s3cret-default",
                              acl_user=("app", "s3cret-app")).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_acl_user_with_password(self):
        try:
            self.use(REDIS_URL=self.srv.url(user="app", password="s3cret-app"))
            uid = self.miss_then_hit("ACL user")
            self.patch_invalidates(uid, "ACL user")
        finally:
            self.restore()

    def test_password_only(self):
        try:
            self.use(REDIS_URL=self.srv.url(password="s3cret-default"))
            self.miss_then_hit("password only")
        finally:
            self.restore()

    def test_wrong_password_is_a_clear_startup_error(self):
        out = self.start_fails({"CACHE_PROVIDER": "redis",
                                "REDIS_URL": self.srv.url(user="app", password="wrong-pw")},
                               ["AUTH as app failed", "WRONGPASS"], forbidden=["wrong-pw"])
        self.assertIn("start_failed", out)

    def test_missing_password_is_a_clear_startup_error(self):
        self.start_fails({"CACHE_PROVIDER": "redis", "REDIS_URL": self.srv.url(password=None)},
                         ["requires a password"])

    def test_provider_redis_without_url_is_a_startup_error(self):
        self.start_fails({"CACHE_PROVIDER": "tiered"}, ["REDIS_URL"])

    def test_bad_url_is_a_startup_error_without_the_password(self):
        self.start_fails({"CACHE_PROVIDER": "redis", "REDIS_URL": "redis://:hunter2@h:99999"},
                         ["cache.redis_url", "port"], forbidden=["hunter2"])


class UntrustedValues(RedisCase):

    def stats(self):
        r = self.req("GET", "/cache/stats", headers={"Authorization": "Bearer " + TOKEN})
        self.assertStatus(r, 200, "/cache/stats")
        return r.json()

    def test_garbage_under_a_cache_key_is_a_miss_and_a_correct_answer(self):
        uid = self.miss_then_hit("before planting garbage")
        key = "rc:e:user:%d" % uid
        want = self.get("/api/users/%d" % uid).json()
        for what, plant in (("random bytes", lambda: R.cli("SET", key, os.urandom(300))),
                            ("a truncated entry", lambda: R.cli("SET", key, R.cli("GET", key)[:20])),
                            ("the magic and nothing else", lambda: R.cli("SET", key, b"RCE\x01")),
                            ("a list", lambda: (R.cli("DEL", key), R.cli("RPUSH", key, "x")))):
            if what == "a truncated entry":
                self.get("/api/users/%d" % uid)  # make sure a good entry is there to cut
            errors = self.stats()["errors"]
            plant()
            r = self.get("/api/users/%d" % uid)
            self.assertStatus(r, 200, what)
            self.assertXCache(r, "MISS", "%s under the key must be a miss" % what)
            self.assertEqual(r.json(), want, "%s: the answer must come from the database" % what)
            self.assertGreater(self.stats()["errors"], errors,
                               "%s must be counted in /cache/stats errors" % what)
            self.assertXCache(self.get("/api/users/%d" % uid), "HIT",
                              "%s: the miss must have stored a good entry over it" % what)
        self.assertIsNone(self.env.rc_proc.poll(), "respcache must still be running")

    def test_garbage_under_a_tag_key_bypasses_never_serves(self):
        uid = self.miss_then_hit("before planting a bad generation")
        R.cli("SET", "rc:tag:user:%d" % uid, "not-a-number")
        try:
            r = self.get("/api/users/%d" % uid)
            self.assertStatus(r, 200)
            self.assertXCache(r, "BYPASS", "a generation that is not a number: no HIT, no store")
        finally:
            R.cli("SET", "rc:tag:user:%d" % uid, "1000")


    def test_a_refused_script_still_bumps_every_tag(self):
        # A job UPDATE notifies job:{id} then user:{uid}:jobs with its
        # transaction's name; the listener's bump_tags_once script stops at
        # the first tag, whose key is not a counter. The other tag must be
        # bumped all the same (the provider falls back to plain INCRs).
        uid = self.env.claim_user()
        jid = int(self.env.psql_value("INSERT INTO jobs (user_id) VALUES (%d) RETURNING id" % uid))
        deadline = time.monotonic() + 5
        while not R.keys("rc:once:*/job:%d" % jid):
            self.assertLess(time.monotonic(), deadline, "the INSERT is heard")
            time.sleep(0.02)
        jobs_gen = int(R.cli("GET", "rc:tag:user:%d:jobs" % uid) or 0)
        R.cli("SET", "rc:tag:job:%d" % jid, "not-a-number")
        try:
            self.env.psql("UPDATE jobs SET status = 'running' WHERE id = %d" % jid)
            deadline = time.monotonic() + 5
            while int(R.cli("GET", "rc:tag:user:%d:jobs" % uid) or 0) == jobs_gen:
                self.assertLess(time.monotonic(), deadline,
                                "user:%d:jobs is bumped although the script was refused" % uid)
                time.sleep(0.02)
            self.assertIn(b'"op":"EVAL"', read_file(self.env.rc_log),
                          "the refused script is logged")
        finally:
            R.cli("SET", "rc:tag:job:%d" % jid, "1000")


class Purge(RedisCase):

    def admin(self, method, path):
        return self.req(method, path, headers={"Authorization": "Bearer " + TOKEN})

    def test_pattern_purge_deletes_entries_never_generations(self):
        uids = [self.miss_then_hit("fill") for _ in range(3)]
        for uid in uids:
            self.req("PATCH", "/api/users/%d" % uid, {"name": "P %d" % uid})
            self.get("/api/users/%d" % uid)
        tags_before = set(R.keys("rc:tag:*"))
        r = self.admin("DELETE", "/cache/keys?pattern=user:*")
        self.assertStatus(r, 200, "pattern purge")
        self.assertGreaterEqual(r.json()["deleted"], 3, "at least the three entries")
        self.assertEqual(R.keys("rc:e:user:*"), [], "every user entry is gone")
        self.assertEqual(set(R.keys("rc:tag:*")), tags_before, "tag generations are never deleted")
        self.assertTrue(R.keys("rc:meta:*"), "the restart marker stays")
        for uid in uids:
            self.assertXCache(self.get("/api/users/%d" % uid), "MISS", "after the purge")

    def test_purge_all_is_one_bump_of_the_global_tag(self):
        uid = self.miss_then_hit("fill")
        before = int(R.cli("GET", "rc:tag:*") or 0)
        self.assertStatus(self.admin("DELETE", "/cache"), 200)
        self.assertEqual(int(R.cli("GET", "rc:tag:*")), before + 1, "DELETE /cache = INCR of '*'")
        self.assertXCache(self.get("/api/users/%d" % uid), "MISS", "everything is invalid")


class DatabaseNotifications(RedisCase):

    def failures(self):
        r = self.get("/metrics")
        for line in r.body.decode().splitlines():
            if line.startswith("respcache_invalidation_failures_total "):
                return float(line.split()[1])
        self.fail("no respcache_invalidation_failures_total in /metrics")

    def test_a_notification_with_100_tags_is_bumped_in_redis_at_once(self):
        # A trigger may publish up to 256 tags in one payload; Redis takes
        # them in pipelines of 64, none of them left for a later replay.
        uid = self.miss_then_hit("before the notification")
        p = "/api/users/%d" % uid
        f0 = self.failures()
        tags = ["filler:%d" % i for i in range(99)] + ["user:%d" % uid]
        self.env.psql("SELECT pg_notify('respcache_invalidate', '%s')"
                      % json.dumps({"tags": tags}).replace("'", "''"))
        deadline = time.monotonic() + 1
        while R.cli("GET", "rc:tag:user:%d" % uid) is None:
            self.assertLess(time.monotonic(), deadline, "the 100th tag reached Redis within 1 s")
            time.sleep(0.01)
        self.assertGreaterEqual(int(R.cli("GET", "rc:tag:filler:0") or 0), 1, "the first tag too")
        self.assertXCache(self.get(p), "MISS", "the entry of the 100th tag is invalidated")
        self.assertEqual(self.failures(), f0, "no invalidation failed")


class Restarts(RedisCase):

    def test_restored_snapshot_never_serves_what_was_invalidated_after_it(self):
        """A Redis restored from an older snapshot has old entries AND the old
        generations they match; respcache must not trust them."""
        uid = self.miss_then_hit("before the snapshot")
        p = "/api/users/%d" % uid
        R.cli("SAVE")
        self.patch_invalidates(uid, "after the snapshot")
        self.hit_soon(p, "after the PATCH")
        R.kill()  # crash: the restart loads dump.rdb, from before the PATCH
        R.start()
        self.assertEqual(R.cli("EXISTS", "rc:e:user:%d" % uid), 1, "the old entry is back")
        deadline = time.monotonic() + 10
        seen = []
        while time.monotonic() < deadline:
            r = self.get(p)
            self.assertStatus(r, 200)
            self.assertEqual(r.json()["name"], "Renamed %d" % uid,
                             "a restored snapshot must never bring back the old name (%r)" % r)
            seen.append(r.headers.get("x-cache"))
            if seen[-1] == "HIT":
                break
            time.sleep(0.1)
        self.assertEqual(seen[-1], "HIT", "hits must come back after the restart: %r" % seen)
        R.cli("FLUSHALL")

    def test_locks_that_never_reached_redis_are_never_released(self):
        """The warm-up takes each key's lock; with Redis down none of those SET
        NX reached it, so nothing is kept to release them: once Redis answers,
        no release (EVAL) runs, and the list of releases owed stays free for
        locks that were really taken."""
        down = RedisServer(TMP, "late-locks")
        down.port = harness.free_port()
        transform = self.env.config_transform

        def add_warm(cfg):
            cfg = (transform(cfg) or cfg) if transform else cfg
            cfg["warm"] = [{"route": "user", "sql": "SELECT id FROM users ORDER BY id LIMIT 20"}]
            return cfg

        def calls(cmd):
            for line in down.cli("INFO", "commandstats").decode().splitlines():
                if line.startswith("cmdstat_%s:" % cmd):
                    return int(line.split("calls=")[1].split(",")[0])
            return 0

        try:
            self.env.config_transform = add_warm
            self.env.write_config()
            self.use(REDIS_URL=down.url(), REDIS_BREAKER_OPEN_MS="300")
            deadline = time.monotonic() + 15
            while b'"event":"warm_done"' not in read_file(self.env.rc_log):
                self.assertLess(time.monotonic(), deadline, "the warm-up ended within 15 s")
                time.sleep(0.05)
            down.start()
            deadline = time.monotonic() + 10
            while calls("dbsize") < 2:  # two stats ticks: the first one flushed the releases
                self.assertLess(time.monotonic(), deadline, "respcache uses Redis again")
                time.sleep(0.05)
            self.assertEqual(calls("eval"), 0,
                             "no release may be sent for a lock whose SET never reached Redis")
        finally:
            self.env.config_transform = transform
            self.env.write_config()
            down.stop()
            self.restore()

    def test_start_with_redis_down_is_degraded_then_recovers(self):
        down = RedisServer(TMP, "late")
        down.port = harness.free_port()
        try:
            self.use(REDIS_URL=down.url(), REDIS_BREAKER_OPEN_MS="300")
            uid = self.env.claim_user()
            p = "/api/users/%d" % uid
            for _ in range(3):
                r = self.get(p)
                self.assertStatus(r, 200, "GET while Redis is down")
                self.assertXCache(r, "BYPASS", "GET while Redis is down")
            r = self.req("PATCH", p, {"name": "Down %d" % uid})
            self.assertStatus(r, 200, "a write while Redis is down still commits")
            self.assertEqual(r.headers.get("x-cache-invalidation"), "failed")
            down.start()
            deadline = time.monotonic() + 5
            got = []
            while time.monotonic() < deadline:
                r = self.get(p)
                self.assertEqual(r.json()["name"], "Down %d" % uid)
                got.append(r.headers.get("x-cache"))
                if got[-1] == "HIT":
                    break
                time.sleep(0.1)
            self.assertEqual(got[-1], "HIT", "hits within 5 s of Redis coming up: %r" % got)
            self.assertGreaterEqual(int(down.cli("GET", "rc:tag:user:%d" % uid) or 0), 1,
                                    "the bump that failed was replayed once Redis answered")
        finally:
            down.stop()
            self.restore()
