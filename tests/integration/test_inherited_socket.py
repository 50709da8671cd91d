"""The daemon accepts on a listening socket it inherits instead of opening
one: on fd 0 (spawn-fcgi, systemd StandardInput=socket) and on fd 3 with
LISTEN_FDS/LISTEN_PID (systemd socket activation). A raw FastCGI request is
sent straight to the socket; what the request returns is covered through
Nginx elsewhere, here only that the socket handed over is the one served."""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

ENV = None

# Runs in the child between fork and exec: put the listener where the mode
# says, then exec the daemon (LISTEN_PID must be the daemon's own pid).
LAUNCHER = r"""
import os, socket, sys
mode, path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(64)
env = dict(os.environ)
if mode == "fd3":
    if s.fileno() != 3:
        os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)
    env["LISTEN_FDS"] = "1"
    env["LISTEN_PID"] = str(os.getpid())
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
else:
    os.dup2(s.fileno(), 0)
os.execve(argv[0], argv, env)
"""


def setUpModule():
    global ENV
    ENV = harness.module_env()


def tearDownModule():
    if ENV is not None:
        ENV.stop()


def fcgi_get(path, uri, timeout=5.0):
    """One FastCGI GET over a new connection; returns the stdout bytes."""
    def rec(rtype, content):
        return struct.pack("!BBHHBB", 1, rtype, 1, len(content), 0, 0) + content

    def nv(n, v):
        return bytes([len(n), len(v)]) + n + v

    params = nv(b"REQUEST_METHOD", b"GET") + nv(b"REQUEST_URI", uri.encode())
    msg = (rec(1, struct.pack("!HB5x", 1, 0)) + rec(4, params) + rec(4, b"") + rec(5, b""))
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(timeout)
    c.connect(path)
    c.sendall(msg)
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    out, i = b"", 0
    while i + 8 <= len(data):
        _, rtype, _, clen, plen, _ = struct.unpack("!BBHHBB", data[i:i + 8])
        if rtype == 6:  # FCGI_STDOUT
            out += data[i + 8:i + 8 + clen]
        i += 8 + clen + plen
    return out


class InheritedSocket(unittest.TestCase):

    def serve_on(self, mode):
        tmp = tempfile.mkdtemp(prefix="rc-inherit-")
        sock = os.path.join(tmp, "rc.sock")
        log = open(os.path.join(tmp, "rc.log"), "wb")
        env = dict(os.environ, DATABASE_URL=ENV.database_url)
        p = subprocess.Popen([sys.executable, "-c", LAUNCHER, mode, sock, ENV.bin,
                              "--config", ENV.config_path], env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(sock):
                self.assertIsNone(p.poll(), "%s: respcache exited early" % mode)
                self.assertLess(time.monotonic(), deadline, "%s: no socket after 20 s" % mode)
                time.sleep(0.05)
            out = b""
            while time.monotonic() < deadline:
                try:
                    out = fcgi_get(sock, "/api/settings")
                    break
                except OSError:
                    time.sleep(0.1)
            self.assertTrue(out.startswith(b"Status: 200"),
                            "%s: expected a 200 FastCGI answer on the inherited socket, got %r"
                            % (mode, out[:200]))
        finally:
            p.terminate()
            try:
                rc = p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait(5)
            log.close()
            with open(os.path.join(tmp, "rc.log"), "rb") as f:
                text = f.read()
            for marker in harness.Env.SANITIZER_MARKERS:
                self.assertNotIn(marker, text, "%s: sanitizer report in the log" % mode)
            subprocess.run(["rm", "-rf", tmp])
        self.assertEqual(rc, 0, "%s: expected exit 0 after SIGTERM, got %s" % (mode, rc))

    def test_listening_socket_on_fd0_is_served(self):
        self.serve_on("fd0")

    def test_systemd_socket_activation_on_fd3_is_served(self):
        self.serve_on("fd3")

    def test_no_listen_and_no_inherited_socket_is_a_clear_error(self):
        env = dict(os.environ, DATABASE_URL=ENV.database_url)
        r = subprocess.run([ENV.bin, "--config", ENV.config_path], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        self.assertNotEqual(r.returncode, 0, "expected a failing exit without a socket")
        self.assertIn(b"fd 0 is not a listening socket", r.stderr,
                      "expected a message naming the missing socket, got %r" % r.stderr[-300:])
