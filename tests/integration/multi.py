"""
multi.py - more than one respcache behind the harness's Nginx.

    b = multi.Instance(env, "b", env={"LOG_LEVEL": "debug"}).start()
    multi.nginx_upstream(env, [env.rc_sock, b.sock])   # nginx restarted, new port
    ...
    b.stop()                                           # SIGTERM, by PID
    multi.nginx_upstream(env, None)                    # back to the harness's one

An Instance runs the Env's binary with the Env's config file and database,
on its own unix socket (<tmp>/run/rc-<name>.sock) and log (<tmp>/respcache-
<name>.log). It is registered with the harness's cleanup, so an interrupted
run stops it too (by PID, like every process the harness starts).
"""

import os
import signal
import socket
import subprocess
import time

import harness


class Instance:
    """One more respcache process sharing the Env's config and database."""

    def __init__(self, env, name, threads=None, env_vars=None, inherit_fd0=False):
        """inherit_fd0: create the listening socket here and hand it to the
        daemon as fd 0, without --listen (what systemd's StandardInput=socket
        and spawn-fcgi do)."""
        self.env = env
        self.name = name
        self.inherit_fd0 = inherit_fd0
        self.threads = threads or env.threads
        self.extra_env = dict(env.extra_env)
        self.extra_env.update(env_vars or {})
        self.proc = None

    @property
    def sock(self):
        return os.path.join(self.env.tmp, "run", "rc-%s.sock" % self.name)

    @property
    def log(self):
        return os.path.join(self.env.tmp, "respcache-%s.log" % self.name)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=30):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        e = dict(os.environ)
        for k in ("REDIS_URL", "CACHE_PROVIDER", "RESPCACHE_ADMIN_TOKEN", "RESPCACHE_LISTEN",
                  "RESPCACHE_THREADS", "CACHE_DEFAULT_TTL", "CACHE_NEGATIVE_TTL"):
            e.pop(k, None)
        e["DATABASE_URL"] = self.env.database_url
        for k, v in self.extra_env.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        argv = [self.env.bin, "--config", self.env.config_path, "--threads", str(self.threads)]
        log_start = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        stdin = subprocess.DEVNULL
        lsock = None
        if self.inherit_fd0:
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            lsock.bind(self.sock)
            os.chmod(self.sock, 0o777)
            lsock.listen(128)
            stdin = lsock.fileno()
        else:
            argv[3:3] = ["--listen", "unix:" + self.sock]
        try:
            with open(self.log, "ab") as log:
                log.write(("\n=== start %s: %s\n" % (time.strftime("%H:%M:%S"), " ".join(argv))).encode())
                log.flush()
                self.proc = subprocess.Popen(argv, env=e, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=stdin, start_new_session=True)
        finally:
            if lsock is not None:
                lsock.close()  # the daemon has its own copy
        with harness._LIVE_LOCK:
            harness._LIVE.add(self)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                raise harness.HarnessError("respcache %s exited with %s during startup: %s"
                                           % (self.name, self.proc.returncode, harness.tail(self.log, 2000)))
            if time.monotonic() > deadline:
                self.stop()
                raise harness.HarnessError("respcache %s did not create %s within %d s"
                                           % (self.name, self.sock, timeout))
            time.sleep(0.05)
        if self.inherit_fd0:
            # The socket exists from the start; wait for the daemon to say so.
            while b'"event":"started"' not in self._log_bytes(log_start):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise harness.HarnessError("respcache %s (socket on fd 0) did not start: %s"
                                               % (self.name, harness.tail(self.log, 2000)))
                time.sleep(0.05)
        return self

    def _log_bytes(self, offset=0):
        try:
            with open(self.log, "rb") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return b""

    def signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """Exit status, or None if still running after `timeout` seconds."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace=15):
        """SIGTERM (SIGKILL after `grace` s); returns the exit status."""
        p = self.proc
        if p is None:
            return None
        harness.stop_process(p, signal.SIGTERM, grace)
        with harness._LIVE_LOCK:
            harness._LIVE.discard(self)
        if self.inherit_fd0 and os.path.exists(self.sock):
            os.unlink(self.sock)  # ours, not the daemon's
        return p.returncode

    def sanitizer_report(self):
        """The first sanitizer report in this instance's log, or None."""
        data = self._log_bytes()
        for marker in harness.Env.SANITIZER_MARKERS:
            at = data.find(marker)
            if at >= 0:
                return data[at:at + 3000].decode("utf-8", "replace")
        return None

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def nginx_upstream(env, socks):
    """Restart the Env's Nginx with one upstream server per unix socket in
    `socks` (None: the harness's default, env.rc_sock only). The template
    has a single "server @UPSTREAM@;" line, so the extra servers are joined
    into it. Nginx comes back on a new port (env.http_port)."""
    env._stop_proc("nginx_proc", signal.SIGQUIT, 10)
    upstream = None
    if socks:
        upstream = "; server ".join("unix:" + s for s in socks)
    env.start_nginx(upstream=upstream)
