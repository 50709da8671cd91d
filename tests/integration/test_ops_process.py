"""The daemon as a process (issue 4): SIGTERM/SIGINT drain and exit 0, a
graceful stop of one of two instances behind one Nginx upstream under load
with no failed request, /health answering within 100 ms while PostgreSQL is
frozen (SIGSTOP), the listening socket inherited on fd 0 (as systemd's
StandardInput=socket passes it) and the systemd units accepted by
systemd-analyze verify.

Bounds used below: the daemon drains for at most 10 s (DRAIN), the health
prober runs every second with a 2 s connect/ping timeout."""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import multi  # noqa: E402
from harness import RCTestCase  # noqa: E402

ENV = None
DRAIN = 10.0          # seconds the daemon may take to finish in-flight requests
HEALTH_FAST = 0.15    # 100 ms contract + 50 ms for the Python client and Nginx


def setUpModule():
    global ENV
    ENV = harness.module_env(env={"LOG_LEVEL": "debug"})


def tearDownModule():
    if ENV is not None:
        ENV.stop()


def count_requests(text):
    return sum(1 for line in text.splitlines() if '"event":"request"' in line)


def wait_health(env, want, bound):
    deadline = time.monotonic() + bound
    r = None
    while time.monotonic() < deadline:
        try:
            r = env.request("GET", "/health", timeout=5)
            if r.json().get("status") == want:
                return r
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError("/health did not report %r within %d s (last: %r)" % (want, bound, r))


def wait_exit(proc, bound):
    """(exit status, seconds waited); status None if still running after bound."""
    t0 = time.monotonic()
    try:
        rc = proc.wait(bound)
    except subprocess.TimeoutExpired:
        rc = None
    return rc, time.monotonic() - t0


class Signals(RCTestCase):

    def tearDown(self):
        # Every test here stops the daemon; the next one needs it back.
        if self.env.rc_proc is None or self.env.rc_proc.poll() is not None:
            self.env.restart_respcache()

    def test_sigterm_finishes_request_in_flight_then_exits_0(self):
        uid = self.env.claim_user()
        self.env.restart_respcache()  # a fresh daemon: the user is surely not cached
        lock = self.env.psql_session()
        result = {}

        def slow_get():
            try:
                result["r"] = self.env.request("GET", "/api/users/%d" % uid, timeout=20)
            except Exception as e:  # noqa: BLE001 - reported below
                result["e"] = e

        t = threading.Thread(target=slow_get, daemon=True)
        proc = self.env.rc_proc
        try:
            lock.send("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT 'locked';")
            lock.wait_for("locked", 10)
            t.start()
            # The GET is in flight once respcache's query waits on the lock.
            deadline = time.monotonic() + 5
            waiting = 0
            while time.monotonic() < deadline and not waiting:
                waiting = int(self.env.psql_value(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'respcache' "
                    "AND wait_event_type = 'Lock'"))
                time.sleep(0.05)
            self.assertTrue(waiting, "precondition: respcache's query waits on the table lock within 5 s")
            os.kill(proc.pid, signal.SIGTERM)
            t_sig = time.monotonic()
            time.sleep(1.5)
            self.assertIsNone(proc.poll(), "respcache must not exit while a request is in flight "
                              "(exited with %s 1.5 s after SIGTERM)" % proc.returncode)
            self.assertTrue(t.is_alive(), "precondition: the GET is still waiting on the lock: %r" % result)
            lock.send("COMMIT; SELECT 'released';")
            lock.wait_for("released", 10)
            t.join(15)
            self.assertFalse(t.is_alive(), "the in-flight GET must be answered within 15 s")
            self.assertNotIn("e", result, "the in-flight GET failed: %r" % result.get("e"))
            r = result["r"]
            self.assertEqual(r.status, 200, "the request in flight at SIGTERM completes with 200, got %r" % r)
            self.assertEqual(r.json()["id"], uid, "and the right body")
            rc, _ = wait_exit(proc, DRAIN + 2)
            took = time.monotonic() - t_sig
            self.assertEqual(rc, 0, "respcache exits 0 after draining (status %s, %.1f s after SIGTERM)"
                             % (rc, took))
            self.assertLess(took, DRAIN + 2, "respcache exits within the %.0f s drain bound after "
                            "SIGTERM (took %.1f s)" % (DRAIN, took))
        finally:
            lock.close()
            t.join(5)

    def test_sigterm_idle_exits_0_promptly(self):
        self.assertStatus(self.get("/api/users/1"), 200, "precondition")
        proc = self.env.rc_proc
        os.kill(proc.pid, signal.SIGTERM)
        rc, took = wait_exit(proc, DRAIN + 2)
        self.assertEqual(rc, 0, "idle respcache exits 0 on SIGTERM (got %s)" % rc)
        self.assertLess(took, 3.0, "with nothing in flight the stop takes well under the drain bound "
                        "(took %.1f s)" % took)

    def test_sigint_exits_0_and_removes_its_socket(self):
        self.assertStatus(self.get("/api/users/1"), 200, "precondition")
        proc = self.env.rc_proc
        os.kill(proc.pid, signal.SIGINT)
        rc, took = wait_exit(proc, DRAIN + 2)
        self.assertEqual(rc, 0, "respcache exits 0 on SIGINT (got %s)" % rc)
        self.assertLess(took, 3.0, "idle stop on SIGINT took %.1f s" % took)
        self.assertFalse(os.path.exists(self.env.rc_sock), "the unix socket it created is removed on exit")

    def test_sighup_without_log_file_keeps_running(self):
        proc = self.env.rc_proc
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(0.5)
        self.assertIsNone(proc.poll(), "SIGHUP (no log file) must not stop respcache")
        self.assertStatus(self.get("/api/users/1"), 200, "still answering after SIGHUP")


class TwoInstances(RCTestCase):
    """Instance a is the harness's daemon, instance b a second one on its own
    socket; Nginx balances across both (one upstream, two servers). b is
    stopped with SIGTERM while clients keep sending requests through Nginx:
    no client may see a failure, b exits 0 within the drain bound. Each
    cycle starts a fresh b, loads both for ~1 s, stops b, and keeps loading a
    alone for 0.5 s."""

    def stop_cycles(self, cycles, nthreads, patch_every):
        """Returns (failures, per-cycle facts); patch_every=0: GETs only."""
        env = self.env
        users = env.claim("SELECT id FROM users ORDER BY id", 8)
        failures, facts = [], []
        for cycle in range(cycles):
            b = multi.Instance(env, "b%d" % cycle, env_vars={"LOG_LEVEL": "debug"})
            try:
                b.start()
                multi.nginx_upstream(env, [env.rc_sock, b.sock])
                env.wait_ready()
                lock = threading.Lock()
                stop = threading.Event()
                b_gone = threading.Event()
                done = {"n": 0, "after": 0}

                def worker(k):
                    rnd = random.Random(cycle * 100 + k)
                    c = env.client(timeout=20)
                    try:
                        for i in range(20000):  # bound; the load really ends on `stop`
                            if stop.is_set():
                                return
                            uid = rnd.choice(users)
                            patch = patch_every and i % patch_every == patch_every - 1
                            what = "%s user %d" % ("PATCH" if patch else "GET", uid)
                            try:
                                if patch:
                                    r = c.request("PATCH", "/api/users/%d" % uid, {"name": "Load %d %d" % (k, i)})
                                else:
                                    r = c.request("GET", "/api/users/%d" % uid)
                            except Exception as e:  # noqa: BLE001 - a failed request
                                with lock:
                                    failures.append("cycle %d, %s: %r" % (cycle, what, e))
                                c.close()
                                continue
                            with lock:
                                done["n"] += 1
                                if b_gone.is_set():
                                    done["after"] += 1
                                if r.status != 200:
                                    failures.append("cycle %d, %s: %r" % (cycle, what, r))
                    finally:
                        c.close()

                threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(nthreads)]
                for t in threads:
                    t.start()
                time.sleep(1.0)
                b_served = count_requests(b.log_text())
                t_sig = time.monotonic()
                b.signal(signal.SIGTERM)
                rc = b.wait(DRAIN + 3)
                took = time.monotonic() - t_sig
                b_gone.set()
                time.sleep(0.5)  # instance a alone
                stop.set()
                for t in threads:
                    t.join(30)
                self.assertFalse(any(t.is_alive() for t in threads), "load threads end within 30 s")
                facts.append({"b_served": b_served, "b_exit": rc, "b_stop_s": round(took, 2),
                              "requests": done["n"], "after_b": done["after"]})
                self.assertGreater(b_served, 0, "precondition (cycle %d): b served part of the load" % cycle)
                self.assertEqual(rc, 0, "cycle %d: b exits 0 after SIGTERM under load (got %s)" % (cycle, rc))
                self.assertLess(took, DRAIN + 1, "cycle %d: b stops within the %.0f s drain bound (took %.1f s)"
                                % (cycle, DRAIN, took))
                self.assertGreater(done["after"], 0, "cycle %d: requests kept being served after b exited" % cycle)
                self.assertIsNone(b.sanitizer_report(), "cycle %d: b's log has a sanitizer report" % cycle)
            finally:
                b.stop()
                multi.nginx_upstream(env, None)
                env.wait_ready()
        return failures, facts

    def test_sigterm_one_of_two_instances_under_get_load_no_failed_request(self):
        failures, facts = self.stop_cycles(cycles=2, nthreads=8, patch_every=0)
        if failures:
            self.fail("no GET may fail while one of two instances stops gracefully "
                      "(%d failed; cycles: %s); first ones: %s" % (len(failures), facts, failures[:5]))

    def test_sigterm_one_of_two_instances_under_get_and_patch_load_no_failed_request(self):
        # Six stops in a row, half of the requests PATCHes. Nginx retries a
        # GET whose kept-alive connection the stopping instance closed, but
        # not a PATCH or POST it has already written (non-idempotent, unless
        # fastcgi_next_upstream has non_idempotent): such a loss shows up in
        # roughly every other stop, so six stops find it ~97% of the time.
        failures, facts = self.stop_cycles(cycles=6, nthreads=12, patch_every=2)
        if failures:
            self.fail("no request (GET or PATCH) may fail while one of two instances stops "
                      "gracefully (%d failed; cycles: %s); first ones: %s"
                      % (len(failures), facts, failures[:5]))


class FrozenDatabase(RCTestCase):

    def cluster_pids(self):
        pm = self.env.pg_pid or self.env._read_postmaster_pid()
        self.assertIsNotNone(pm, "precondition: the postmaster's pid")
        r = subprocess.run(["pgrep", "-P", str(pm)], stdout=subprocess.PIPE, timeout=10)
        return [pm] + [int(x) for x in r.stdout.split()]

    def test_health_within_100ms_while_postgres_frozen(self):
        env = self.env
        wait_health(env, "ok", 10)
        uid = env.claim_user()
        cached = "/api/users/%d" % uid
        self.get(cached)
        self.assertEqual(self.get(cached).headers.get("x-cache"), "HIT", "precondition: %s cached" % cached)
        pids = self.cluster_pids()
        polls, slow, statuses, hits = 0, [], [], []
        frozen_at = None
        try:
            for p in pids:
                os.kill(p, signal.SIGSTOP)
            frozen_at = time.monotonic()
            down_since = None
            deadline = frozen_at + 10
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                r = env.request("GET", "/health", timeout=5)
                polls += 1
                statuses.append(r.status)
                if r.elapsed >= HEALTH_FAST:
                    slow.append((round(time.monotonic() - frozen_at, 2), r.status, round(r.elapsed * 1000)))
                if r.status == 503:
                    b = r.json()
                    self.assertEqual(b.get("status"), "down", "503 /health says down: %r" % b)
                    self.assertIs(b["db"]["ok"], False, "db.ok false while frozen: %r" % b)
                    self.assertIn("retry-after", r.headers, "503 /health carries Retry-After")
                    if down_since is None:
                        down_since = time.monotonic()
                if polls % 5 == 0:
                    h = env.request("GET", cached, timeout=5)
                    hits.append((h.status, h.headers.get("x-cache"), round(h.elapsed * 1000)))
                if down_since is not None and time.monotonic() - down_since > 1.0:
                    break
                time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
            frozen_for = time.monotonic() - frozen_at
        finally:
            # Also the harness's child when it is runuser (tests as root): it
            # stops itself when the postmaster stops (job control) and would
            # stay stopped, holding up the harness's shutdown.
            wrapper = [self.env.pg_proc.pid] if self.env.pg_proc is not None else []
            for p in list(reversed(pids)) + wrapper:
                try:
                    os.kill(p, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        self.assertEqual(slow, [], "every /health answer must arrive within 100 ms (bound %d ms with "
                         "client overhead) while PostgreSQL is frozen; slow ones (t, status, ms): %s"
                         % (HEALTH_FAST * 1000, slow))
        self.assertIn(503, statuses, "/health must report 503 down within 10 s of PostgreSQL freezing "
                      "(probe timeouts); got %s" % statuses)
        self.assertGreater(polls, 10, "polled /health every 100 ms (%d polls in %.1f s)" % (polls, frozen_for))
        self.assertTrue(hits, "precondition: cache hits tried while frozen")
        for st, xc, ms in hits:
            self.assertEqual((st, xc), (200, "HIT"), "a cached key answers HIT while PostgreSQL is frozen")
            self.assertLess(ms, HEALTH_FAST * 1000, "a HIT stays fast while PostgreSQL is frozen (%d ms)" % ms)
        t0 = time.monotonic()
        r = wait_health(env, "ok", 15)
        self.assertStatus(r, 200, "/health ok again within 15 s of SIGCONT (took %.1f s)" % (time.monotonic() - t0))
        # And the workers too: an uncached read works again.
        other = env.claim_user()
        deadline = time.monotonic() + 15
        while True:
            r = self.get("/api/users/%d" % other)
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertStatus(r, 200, "uncached reads work again after PostgreSQL is thawed")


class SocketActivation(RCTestCase):

    def test_listening_socket_inherited_on_fd0(self):
        env = self.env
        inst = multi.Instance(env, "fd0", inherit_fd0=True)
        try:
            inst.start()
            multi.nginx_upstream(env, [inst.sock])
            env.wait_ready()
            r = self.get("/api/users/1")
            self.assertStatus(r, 200, "GET through a respcache accepting on the socket it got on fd 0")
            self.assertGreaterEqual(count_requests(inst.log_text()), 1,
                                    "the request was answered by the instance on fd 0")
            inst.signal(signal.SIGTERM)
            rc = inst.wait(DRAIN + 2)
            self.assertEqual(rc, 0, "exit 0 on SIGTERM with an inherited socket (got %s)" % rc)
            self.assertIsNone(inst.sanitizer_report(), "the instance's log has a sanitizer report")
        finally:
            inst.stop()
            multi.nginx_upstream(env, None)
            env.wait_ready()


class Systemd(RCTestCase):

    UNITS = ("respcache.socket", "respcache.service")

    def unit_paths(self):
        paths = [os.path.join(self.env.repo, "etc", u) for u in self.UNITS]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            self.skipTest("systemd units not in the tree yet: %s" % ", ".join(missing))
        return paths

    @staticmethod
    def directives(path):
        out = {}
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line[0] in "#;[":
                    continue
                k, _, v = line.partition("=")
                out.setdefault(k.strip(), []).append(v.strip())
        return out

    def test_units_pass_systemd_analyze_verify(self):
        paths = self.unit_paths()
        sa = shutil.which("systemd-analyze")
        if not sa:
            self.skipTest("systemd-analyze not installed")
        tmp = tempfile.mkdtemp(prefix="rc-units-")
        try:
            copies = []
            for p in paths:
                with open(p) as f:
                    text = f.read()
                # verify checks that ExecStart's binary exists: point it at the built one.
                text = re.sub(r"(?m)^(ExecStart=[-@:+!]*)(\S+)", lambda m: m.group(1) + os.path.abspath(self.env.bin), text)
                dst = os.path.join(tmp, os.path.basename(p))
                with open(dst, "w") as f:
                    f.write(text)
                copies.append(dst)
            r = subprocess.run([sa, "verify"] + copies, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=60, cwd=tmp)
            out = r.stdout.decode("utf-8", "replace")
            self.assertEqual(r.returncode, 0, "systemd-analyze verify must accept the units (ExecStart "
                             "pointed at %s):\n%s" % (self.env.bin, out))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_units_socket_activation_and_hardening(self):
        sock_path, svc_path = self.unit_paths()
        sock, svc = self.directives(sock_path), self.directives(svc_path)
        self.assertTrue(sock.get("ListenStream"), "respcache.socket has a ListenStream")
        self.assertEqual(svc.get("StandardInput"), ["socket"],
                         "the service gets the socket on fd 0 (StandardInput=socket)")
        self.assertNotIn("--listen", " ".join(svc.get("ExecStart", [])),
                         "ExecStart must not pass --listen (the socket is inherited)")
        self.assertTrue(svc.get("DynamicUser") == ["yes"] or svc.get("User"),
                        "the service runs as DynamicUser=yes or a dedicated User=")
        self.assertEqual(svc.get("ProtectSystem"), ["strict"], "ProtectSystem=strict")
        self.assertIn(svc.get("NoNewPrivileges", [""])[0], ("yes", "true", "1"), "NoNewPrivileges=yes")
        stop = svc.get("TimeoutStopSec", ["90s"])[0]
        secs = float(re.sub(r"s$", "", stop)) if re.match(r"^\d+(\.\d+)?s?$", stop) else None
        if secs is not None:
            self.assertGreater(secs, DRAIN, "TimeoutStopSec (%s) must exceed the %.0f s drain, or systemd "
                               "kills respcache while it drains" % (stop, DRAIN))
