"""
harness.py - bring up PostgreSQL, respcache and Nginx on loopback for the
black-box integration tests, and talk HTTP to them.

One Env per test module (setUpModule/tearDownModule): a temporary directory
holds a private PostgreSQL cluster (demo schema + data), a respcache daemon
on a unix socket and an Nginx built from nginx/standalone.conf.in that
listens on 127.0.0.1:<free port>. Every wait is bounded; every process
started here is stopped by its PID in stop(), which also runs at exit and on
SIGTERM/SIGINT for whatever is still alive.

Environment:
  RESPCACHE_BIN      daemon binary (default <repo>/respcache)
  RC_TEST_KEEP       keep the temporary directory after stop() (debugging)
  RC_TEST_PG_BIN     directory with initdb/postgres (default: newest
                     /usr/lib/postgresql/<v>/bin, else $PATH)
  RC_TEST_NGINX      nginx binary (default: nginx on $PATH or /usr/sbin/nginx)
"""

import atexit
import copy
import glob
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
JSON_CT = "application/json; charset=utf-8"

# Everything that is alive, so that an interrupted run still cleans up.
_LIVE = set()
_LIVE_LOCK = threading.Lock()


class HarnessError(Exception):
    pass


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def tail(path, nbytes=6000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            data = f.read()
        return data.decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


def pg_bindir():
    env = os.environ.get("RC_TEST_PG_BIN")
    if env:
        return env

    def ver(p):
        try:
            return float(os.path.basename(os.path.dirname(p)))
        except ValueError:
            return -1.0

    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=ver)
    for c in reversed(cands):
        if os.path.exists(os.path.join(c, "postgres")):
            return c
    p = shutil.which("postgres") or shutil.which("initdb")
    if p:
        return os.path.dirname(p)
    raise HarnessError("PostgreSQL server binaries not found (install postgresql or set RC_TEST_PG_BIN)")


def nginx_bin():
    b = os.environ.get("RC_TEST_NGINX") or shutil.which("nginx")
    if not b and os.path.exists("/usr/sbin/nginx"):
        b = "/usr/sbin/nginx"
    if not b:
        raise HarnessError("nginx not found (apt-get install nginx-light or set RC_TEST_NGINX)")
    return b


def deep_merge(base, over):
    """Return base with `over` merged in (dicts recursively, anything else replaced)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class Response:
    """status, headers (lower-cased names; repeated headers joined by ', '), body bytes."""

    def __init__(self, status, headers, body, elapsed=0.0):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def __iter__(self):  # allows: status, headers, body = env.request(...)
        return iter((self.status, self.headers, self.body))

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        b = self.body[:300]
        return "<%d %r %r>" % (self.status, {k: v for k, v in self.headers.items()
                                             if k in ("content-type", "x-cache", "etag", "age",
                                                      "allow", "location")}, b)


def _collect_headers(msg):
    h = {}
    for k, v in msg.items():
        k = k.lower()
        h[k] = v if k not in h else h[k] + ", " + v
    return h


def _encode_body(body, headers):
    headers = dict(headers or {})
    if body is None:
        return None, headers
    if isinstance(body, (dict, list)) or (not isinstance(body, (bytes, bytearray, str))):
        body = json.dumps(body).encode("utf-8")
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode("utf-8")
    return bytes(body), headers


class Client:
    """A keep-alive HTTP/1.1 connection to Nginx (one per thread)."""

    def __init__(self, port, timeout=15.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def request(self, method, path, body=None, headers=None):
        body, headers = _encode_body(body, headers)
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            fresh = attempt == 1
            try:
                t0 = time.monotonic()
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                el = time.monotonic() - t0
                hdrs = _collect_headers(r.msg)
                if r.will_close:
                    self.close()
                return Response(r.status, hdrs, data, el)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server may close an idle keep-alive connection; retry once
                # on a fresh one, never twice.
                self.close()
                if fresh:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None


class Env:
    """A private PostgreSQL + respcache + Nginx. See module docstring."""

    def __init__(self, name="rc", threads=4, env=None, config_overrides=None,
                 config_transform=None, users=300, extra_args=None, pg_options=None, repo=REPO):
        self.name = name
        self.repo = repo
        self.problems = []      # daemon exit/sanitizer findings, raised by stop()
        self.rc_log_checked = 0  # log bytes already scanned for sanitizer reports
        self.bin = os.path.abspath(os.environ.get("RESPCACHE_BIN") or os.path.join(repo, "respcache"))
        self.threads = threads
        self.extra_env = dict(env or {})
        self.config_overrides = config_overrides
        self.config_transform = config_transform
        self.users = users
        self.extra_args = list(extra_args or [])
        self.pg_options = list(pg_options or [])  # extra "name=value" server settings
        self.tmp = None
        self.pg_proc = None
        self.pg_pid = None
        self.rc_proc = None
        self.nginx_proc = None
        self.pg_port = None
        self.http_port = None
        self.is_root = os.geteuid() == 0
        self._claimed = set()
        self._claim_lock = threading.Lock()

    # ---------------------------------------------------------------- paths

    @property
    def pg_data(self):
        return os.path.join(self.tmp, "pg", "data")

    @property
    def pg_sockdir(self):
        return os.path.join(self.tmp, "pg")

    @property
    def pg_log(self):
        return os.path.join(self.tmp, "postgres.log")

    @property
    def rc_sock(self):
        return os.path.join(self.tmp, "run", "rc.sock")

    @property
    def rc_log(self):
        return os.path.join(self.tmp, "respcache.log")

    @property
    def nginx_prefix(self):
        return os.path.join(self.tmp, "nginx") + "/"

    @property
    def nginx_log(self):
        return os.path.join(self.tmp, "nginx.log")

    @property
    def config_path(self):
        return os.path.join(self.tmp, "respcache.json")

    @property
    def database_url(self):
        return "postgresql:///respcache?host=%s&port=%d&user=postgres" % (self.pg_sockdir, self.pg_port)

    # ---------------------------------------------------------------- lifecycle

    def start(self):
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self.tmp = tempfile.mkdtemp(prefix="rc-it-%s-" % self.name)
            os.chmod(self.tmp, 0o755)
            os.makedirs(os.path.join(self.tmp, "run"))
            os.chmod(os.path.join(self.tmp, "run"), 0o777)
            self.start_postgres()
            self.load_demo()
            self.write_config()
            self.start_respcache()
            self.start_nginx()
            self.wait_ready()
        except BaseException:
            self.dump_logs("startup failed")
            self.stop()
            raise
        return self

    def _as_pg(self, argv):
        if self.is_root:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def start_postgres(self):
        """initdb a fresh cluster and run it."""
        bindir = pg_bindir()
        os.makedirs(self.pg_sockdir)
        if self.is_root:
            subprocess.run(["chown", "-R", "postgres:", self.pg_sockdir], check=True, timeout=30)
        initdb_log = os.path.join(self.tmp, "initdb.log")
        with open(initdb_log, "ab") as log:
            r = subprocess.run(self._as_pg([os.path.join(bindir, "initdb"), "-D", self.pg_data,
                                            "-A", "trust", "-U", "postgres", "--no-sync",
                                            "-E", "UTF8", "--locale=C"]),
                               stdout=log, stderr=subprocess.STDOUT, timeout=120)
        if r.returncode != 0:
            raise HarnessError("initdb failed (exit %d): %s" % (r.returncode, tail(initdb_log, 3000)))
        self.pg_port = free_port()
        self.run_postgres()

    def run_postgres(self):
        """Start the postmaster on the existing cluster (same port) and wait until it answers."""
        bindir = pg_bindir()
        opts = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200", "-c", "log_min_messages=warning"]
        for o in self.pg_options:
            opts += ["-c", o]
        log = open(self.pg_log, "ab")
        try:
            self.pg_proc = subprocess.Popen(
                self._as_pg([os.path.join(bindir, "postgres"), "-D", self.pg_data,
                             "-p", str(self.pg_port), "-h", "127.0.0.1",
                             "-k", self.pg_sockdir] + opts),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 60
        while True:
            if self.pg_proc.poll() is not None:
                raise HarnessError("postgres exited with %s during startup" % self.pg_proc.returncode)
            r = subprocess.run(["psql", "-X", "-q", "-h", self.pg_sockdir, "-p", str(self.pg_port),
                                "-U", "postgres", "-d", "postgres", "-Atc", "SELECT 1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise HarnessError("postgres not accepting connections after 60 s")
            time.sleep(0.1)
        self.pg_pid = self._read_postmaster_pid()

    def stop_postgres(self):
        """Stop the postmaster (fast shutdown); run_postgres() starts it again."""
        self._stop_postgres()
        self.pg_pid = None

    def _read_postmaster_pid(self):
        try:
            with open(os.path.join(self.pg_data, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def load_demo(self):
        self.psql("CREATE DATABASE respcache", db="postgres")
        for f, args in (("sql/schema.sql", []), ("sql/demo_data.sql", ["-v", "users=%d" % self.users])):
            path = os.path.join(self.repo, f)
            if not os.path.exists(path):
                raise HarnessError("%s is missing" % path)
            self.psql_file(path, args)

    def write_config(self):
        src = os.path.join(self.repo, "etc", "respcache.json")
        with open(src) as f:
            cfg = json.load(f)
        if self.config_overrides:
            cfg = deep_merge(cfg, self.config_overrides)
        if self.config_transform:
            cfg = self.config_transform(cfg) or cfg
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        self.config = cfg

    def start_respcache(self):
        if not os.access(self.bin, os.X_OK):
            raise HarnessError("respcache binary %s is missing or not executable" % self.bin)
        if os.path.exists(self.rc_sock):
            os.unlink(self.rc_sock)
        env = dict(os.environ)
        for k in list(env):
            # Keep the daemon's settings to what the test says.
            if k in ("REDIS_URL", "CACHE_PROVIDER", "RESPCACHE_ADMIN_TOKEN", "RESPCACHE_LISTEN",
                     "RESPCACHE_THREADS", "CACHE_DEFAULT_TTL", "CACHE_NEGATIVE_TTL"):
                del env[k]
        env["DATABASE_URL"] = self.database_url
        for k, v in self.extra_env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        argv = [self.bin, "--config", self.config_path, "--listen", "unix:" + self.rc_sock,
                "--threads", str(self.threads)] + self.extra_args
        log = open(self.rc_log, "ab")
        try:
            log.write(("\n=== start %s: %s\n" % (time.strftime("%H:%M:%S"), " ".join(argv))).encode())
            log.flush()
            self.rc_proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while not os.path.exists(self.rc_sock):
            if self.rc_proc.poll() is not None:
                raise HarnessError("respcache exited with %s during startup" % self.rc_proc.returncode)
            if time.monotonic() > deadline:
                raise HarnessError("respcache did not create %s within 30 s" % self.rc_sock)
            time.sleep(0.05)

    def render_nginx_conf(self, upstream=None):
        src = os.path.join(self.repo, "nginx", "standalone.conf.in")
        with open(src) as f:
            text = f.read()
        subs = {
            "@PREFIX@": self.nginx_prefix.rstrip("/"),
            "@LISTEN@": "127.0.0.1:%d" % self.http_port,
            "@UPSTREAM@": upstream or ("unix:" + self.rc_sock),
            "@NGINX_DIR@": os.path.join(self.repo, "nginx"),
        }
        for k, v in subs.items():
            text = text.replace(k, v)
        left = re.findall(r"@[A-Z_]+@", text)
        if left:
            raise HarnessError("nginx/standalone.conf.in has unknown placeholders: %s" % sorted(set(left)))
        return text

    def start_nginx(self, upstream=None):
        """As the template's header says: nginx -p PREFIX -c PREFIX/nginx.conf
        -e PREFIX/error.log -g 'daemon off;' (plus 'user root;' as root, so
        the worker can reach the daemon's socket)."""
        self.http_port = free_port()
        os.makedirs(os.path.join(self.nginx_prefix, "tmp"), exist_ok=True)
        conf = self.render_nginx_conf(upstream)
        conf_path = os.path.join(self.nginx_prefix, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        glob_directives = ""
        if not re.search(r"^\s*daemon\s", conf, re.M):
            glob_directives += "daemon off;"
        if self.is_root and not re.search(r"^\s*user\s", conf, re.M):
            glob_directives += " user root;"
        argv = [nginx_bin(), "-p", self.nginx_prefix, "-c", conf_path,
                "-e", os.path.join(self.nginx_prefix, "error.log")]
        if glob_directives:
            argv += ["-g", glob_directives.strip()]
        log = open(self.nginx_log, "ab")
        try:
            self.nginx_proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.nginx_proc.poll() is not None:
                raise HarnessError("nginx exited with %s during startup" % self.nginx_proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=1).close()
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HarnessError("nginx not listening on %d after 30 s" % self.http_port)
            time.sleep(0.05)

    def wait_ready(self, timeout=30):
        """Until a request through Nginx reaches respcache (not a 502/503/504)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.rc_proc is not None and self.rc_proc.poll() is not None:
                raise HarnessError("respcache exited with %s" % self.rc_proc.returncode)
            try:
                # An unknown /api/ path: answered by respcache's router
                # (404), cached nowhere, so readiness leaves the cache empty.
                r = self.request("GET", "/api/__ready__", timeout=5)
                last = r
                if r.status not in (502, 503, 504):
                    return
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise HarnessError("respcache not answering through nginx after %d s (last: %r)" % (timeout, last))

    # What a sanitizer build writes when it finds a bug; any of these in the
    # daemon's log fails the module, even if every request looked right.
    SANITIZER_MARKERS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer",
                         b"runtime error:", b"SUMMARY: UndefinedBehaviorSanitizer",
                         b"ThreadSanitizer")

    def _stop_respcache_checked(self):
        """SIGTERM the daemon; it must exit 0 within 15 s (graceful stop) and
        its log must be free of sanitizer reports. Problems are recorded and
        raised by stop(), so the module fails."""
        p = self.rc_proc
        self._stop_proc("rc_proc", signal.SIGTERM, 15)
        if p is None:
            return
        if p.returncode != 0:
            self.problems.append("respcache exited with status %s after SIGTERM (expected 0)"
                                 % p.returncode)
        try:
            with open(self.rc_log, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        for marker in self.SANITIZER_MARKERS:
            at = data.find(marker, self.rc_log_checked)
            if at >= 0:
                self.problems.append("respcache log contains a sanitizer report:\n%s"
                                     % data[at:at + 3000].decode("utf-8", "replace"))
                break
        self.rc_log_checked = len(data)

    def stop_respcache(self):
        self._stop_respcache_checked()

    def restart_respcache(self, threads=None, env=None):
        """Stop the daemon (if running) and start it again (empty cache), same
        socket. env: variables to set for it from now on (None removes one)."""
        if threads is not None:
            self.threads = threads
        if env is not None:
            self.extra_env.update(env)
        self._stop_respcache_checked()
        self.start_respcache()
        self.wait_ready()

    def _stop_proc(self, attr, sig, grace):
        p = getattr(self, attr)
        if p is None:
            return
        setattr(self, attr, None)
        stop_process(p, sig, grace)

    def stop(self):
        try:
            self._stop_proc("nginx_proc", signal.SIGQUIT, 10)
        except Exception:
            pass
        try:
            self._stop_respcache_checked()
        except Exception as e:
            self.problems.append("stopping respcache: %s" % e)
        try:
            self._stop_postgres()
        except Exception:
            pass
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self.tmp and not os.environ.get("RC_TEST_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp:
            sys.stderr.write("kept %s\n" % self.tmp)
        if self.problems:
            problems, self.problems = self.problems, []
            raise HarnessError("; ".join(problems))

    def _stop_postgres(self):
        p = self.pg_proc
        if p is None:
            return
        self.pg_proc = None
        # Under runuser the Popen child is runuser; signal the postmaster itself
        # (its PID from postmaster.pid, checked to be our child's descendant by
        # being recorded at startup), then runuser exits with it.
        pid = self.pg_pid or self._read_postmaster_pid()
        targets = [pid] if pid else []
        targets.append(p.pid)
        for sig, grace in ((signal.SIGINT, 20), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
            if p.poll() is not None:
                break
            for t in targets:
                try:
                    os.kill(t, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        # The postmaster may outlive runuser for an instant.
        if pid:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except (ProcessLookupError, PermissionError):
                    break
                time.sleep(0.05)

    def dump_logs(self, why=""):
        if not self.tmp:
            return
        out = ["", "=" * 20 + " %s logs (%s) " % (self.name, why) + "=" * 20]
        for label, path in (("respcache", self.rc_log), ("nginx", self.nginx_log),
                            ("nginx error.log", os.path.join(self.nginx_prefix, "error.log")),
                            ("postgres", self.pg_log)):
            if os.path.exists(path):
                out.append("---- %s: %s (tail)" % (label, path))
                out.append(tail(path, 4000))
        sys.stderr.write("\n".join(out) + "\n")
        sys.stderr.flush()

    # ---------------------------------------------------------------- SQL

    def _psql_argv(self, db):
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.pg_sockdir,
                "-p", str(self.pg_port), "-U", "postgres", "-d", db]

    def psql(self, sql, db="respcache", timeout=60):
        """Run SQL; returns rows as lists of strings (unaligned, tab separated)."""
        r = subprocess.run(self._psql_argv(db) + ["-At", "-F", "\t", "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise HarnessError("psql failed: %s\n%s" % (sql, r.stderr.decode("utf-8", "replace")))
        out = r.stdout.decode("utf-8")
        return [line.split("\t") for line in out.splitlines() if line != ""]

    def psql_value(self, sql):
        rows = self.psql(sql)
        if not rows:
            return None
        return rows[0][0]

    def psql_json(self, sql):
        """The value of a query returning one json column (NULL -> None)."""
        v = self.psql_value(sql)
        return None if v in (None, "") else json.loads(v)

    def psql_file(self, path, args=()):
        r = subprocess.run(self._psql_argv("respcache") + list(args) + ["-f", path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise HarnessError("loading %s failed:\n%s" % (path, r.stdout.decode("utf-8", "replace")[-3000:]))

    def psql_session(self):
        """A long-lived psql (for holding locks); see PsqlSession."""
        return PsqlSession(self._psql_argv("respcache"))

    # ---------------------------------------------------------------- picking test data

    def claim(self, sql, n=1):
        """Ids (ints) from the first column of `sql` that no other test of this Env claimed."""
        rows = self.psql(sql)
        got = []
        with self._claim_lock:
            for r in rows:
                v = int(r[0])
                if v in self._claimed:
                    continue
                self._claimed.add(v)
                got.append(v)
                if len(got) == n:
                    break
        if len(got) < n:
            raise HarnessError("not enough unclaimed rows for: %s" % sql)
        return got if n > 1 else got[0]

    def claim_user(self, where="true"):
        return self.claim("SELECT id FROM users u WHERE %s ORDER BY id" % where)

    def insert_user(self, tag="t"):
        """A new user written with psql (no jobs), claimed; returns its id."""
        with self._claim_lock:
            self._seq = getattr(self, "_seq", 0) + 1
            n = self._seq
        uid = int(self.psql_value("INSERT INTO users (email, name) VALUES ('%s%d-%d@test.example', "
                                  "'Test %s %d') RETURNING id" % (tag, n, os.getpid(), tag, n)))
        with self._claim_lock:
            self._claimed.add(uid)
        return uid

    # ---------------------------------------------------------------- HTTP

    def client(self, timeout=15.0):
        return Client(self.http_port, timeout)

    def request(self, method, path, body=None, headers=None, timeout=15.0):
        """One request on a fresh connection (Connection: close)."""
        body, headers = _encode_body(body, headers)
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            t0 = time.monotonic()
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, _collect_headers(r.msg), data, time.monotonic() - t0)
        finally:
            conn.close()

    def raw(self, data, timeout=15.0):
        """Send raw bytes, read until the server closes (or timeout); parse one response.

        Tolerates the server answering and closing before the whole request was
        sent (413 on a big body)."""
        s = socket.create_connection(("127.0.0.1", self.http_port), timeout=timeout)
        chunks = []

        def sender():
            try:
                view = memoryview(data)
                while view:
                    n = s.send(view[:65536])
                    view = view[n:]
                # No shutdown(SHUT_WR): nginx takes a half-closed client for
                # one that went away and drops the upstream request.
            except OSError:
                pass  # the server answered and closed early (413): fine

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    b = s.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    break
                if not b:
                    break
                chunks.append(b)
                if _response_complete(b"".join(chunks)):
                    break
        finally:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            t.join(timeout)
            s.close()
        return parse_response(b"".join(chunks))


def _response_complete(raw):
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    if m:
        return len(rest) >= int(m.group(1))
    if re.match(rb"HTTP/1\.[01] (1\d\d|204|304)", head):
        return True
    if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        return rest.endswith(b"0\r\n\r\n")
    return False


def parse_response(raw):
    if not raw:
        raise HarnessError("no response")
    head, sep, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise HarnessError("bad status line %r" % lines[0])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        v = v.strip()
        hdrs[k] = v if k not in hdrs else hdrs[k] + ", " + v
    body = rest
    if "content-length" in hdrs:
        body = rest[:int(hdrs["content-length"])]
    elif hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2:]
    return Response(int(m.group(1)), hdrs, body)


class PsqlSession:
    """psql kept open on a pipe: send() statements, wait_for() a marker line."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv + ["-At"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        self.buf = b""

    def send(self, sql):
        self.p.stdin.write(sql.encode() + b"\n")
        self.p.stdin.flush()

    def wait_for(self, marker, timeout=30):
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while marker.encode() not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError("psql session: %r not seen in %d s; got %r" % (marker, timeout, self.buf))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                b = os.read(fd, 65536)
                if not b:
                    raise HarnessError("psql session ended: %r" % self.buf)
                self.buf += b

    def close(self):
        p = self.p
        if p.poll() is None:
            try:
                p.stdin.close()
            except OSError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(10)
        try:
            p.stdout.close()
        except OSError:
            pass


def stop_all():
    with _LIVE_LOCK:
        envs = list(_LIVE)
    for e in envs:
        e.stop()


atexit.register(stop_all)


def _on_signal(signum, frame):
    # Stop the servers, then unwind like Ctrl-C does (unittest lets
    # KeyboardInterrupt end the run; a SystemExit would just fail one test).
    stop_all()
    raise KeyboardInterrupt("signal %d" % signum)


def install_signal_handlers():
    """Clean up on SIGTERM/SIGHUP too (SIGINT raises KeyboardInterrupt, which
    unwinds through finally/atexit)."""
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, _on_signal)


install_signal_handlers()


# -------------------------------------------------------------------- test helpers

class RCTestCase(unittest.TestCase):
    """Base class: self.env is the module's Env; logs are dumped when a test fails."""

    env = None  # set by the module's setUpModule via bind()
    maxDiff = 4000

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before and self.env is not None:
            self.env.dump_logs("after failure of %s" % self.id())
        return out

    # --- requests
    def get(self, path, headers=None):
        return self.env.request("GET", path, headers=headers)

    def req(self, method, path, body=None, headers=None):
        return self.env.request(method, path, body=body, headers=headers)

    # --- assertions
    def assertJsonBody(self, r, what=""):
        ct = r.headers.get("content-type")
        self.assertEqual(ct, JSON_CT, "%s: expected Content-Type %r, got %r (%r)" % (what, JSON_CT, ct, r))
        try:
            text = r.body.decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail("%s: body is not UTF-8: %s" % (what, e))
        try:
            return json.loads(text)
        except ValueError as e:
            self.fail("%s: body is not one JSON value (%s): %r" % (what, e, r.body[:500]))

    def assertStatus(self, r, status, what=""):
        if isinstance(status, (tuple, list, set)):
            self.assertIn(r.status, status, "%s: expected status in %s, got %r" % (what, sorted(status), r))
        else:
            self.assertEqual(r.status, status, "%s: expected status %d, got %r" % (what, status, r))

    def assertError(self, r, status, code=None, what=""):
        """Status plus an API.md error body {"error": code, "message": text}."""
        codes = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
                 422: "unprocessable", 503: "unavailable", 500: "internal", 414: None}
        self.assertStatus(r, status, what)
        body = self.assertJsonBody(r, what)
        self.assertIsInstance(body, dict, "%s: error body must be an object, got %r" % (what, body))
        self.assertEqual(sorted(body.keys()), ["error", "message"],
                         "%s: error body must have exactly the keys error and message, got %r" % (what, body))
        want = code or codes.get(r.status)
        if want:
            self.assertEqual(body["error"], want, "%s: expected error code %r for %d, got %r"
                             % (what, want, r.status, body))
        self.assertIsInstance(body["message"], str, "%s: message must be a string: %r" % (what, body))
        self.assertTrue(body["message"].strip(), "%s: message must not be empty: %r" % (what, body))
        for bad in ("SQL", "ERROR:", "pq", "relation", "postgres"):
            self.assertNotIn(bad, body["message"], "%s: message leaks internals (%r): %r" % (what, bad, body))
        return body

    def assertNo5xx(self, r, what=""):
        self.assertLess(r.status, 500, "%s: expected no 5xx, got %r" % (what, r))

    def assertTimestamp(self, v, what=""):
        self.assertIsInstance(v, str, "%s: expected an RFC 3339 string, got %r" % (what, v))
        self.assertRegex(v, RFC3339_UTC, "%s: expected RFC 3339 UTC with Z, got %r" % (what, v))

    def assertXCache(self, r, want, what=""):
        got = r.headers.get("x-cache")
        self.assertEqual(got, want, "%s: expected X-Cache %s, got %r (%r)" % (what, want, got, r))


def parse_ts(s):
    """RFC 3339 UTC 'Z' string -> float seconds since the epoch (microsecond precise)."""
    import datetime
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z$", s)
    if not m:
        raise ValueError("not an RFC 3339 UTC timestamp: %r" % s)
    y, mo, d, h, mi, se = (int(x) for x in m.groups()[:6])
    frac = m.group(7) or "0"
    us = int(frac.ljust(6, "0"))
    dt = datetime.datetime(y, mo, d, h, mi, se, us, tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def stop_process(p, sig=signal.SIGTERM, grace=10):
    """Send sig to the process p (a Popen) by its PID, SIGKILL it after
    grace seconds; returns its exit status (None if it would not die)."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
    return p.returncode


def module_env(**kw):
    """For setUpModule: start an Env and bind it to every RCTestCase subclass of the caller."""
    name = kw.pop("name", None)
    caller = sys._getframe(1).f_globals
    env = Env(name=name or caller.get("__name__", "rc").split(".")[-1], **kw)
    env.start()
    for v in list(caller.values()):
        if isinstance(v, type) and issubclass(v, RCTestCase):
            v.env = env
    return env
