"""
redis_harness.py - a private redis-server for the integration tests, and
what respcache needs to use it.

    r = RedisServer(tmpdir).start()                     # TCP on 127.0.0.1:<free port>
    r = RedisServer(tmpdir, unix=True).start()          # + a unix socket
    r = RedisServer(tmpdir, tls=make_tls(tmpdir)).start()   # TLS port only
    r = RedisServer(tmpdir, password="pw", acl_user=("app", "apppw")).start()
    env = r.respcache_env("redis")   # {"CACHE_PROVIDER": "redis", "REDIS_URL": ...}
    r.cli("SET", "k", "v")           # one command over a plain socket (RESP), reply decoded
    r.stop(); r.start()              # same port and data directory (persistence off)

Every server is started with --save "" --appendonly no on loopback, stopped
by its PID (SIGTERM, then SIGKILL), and registered with harness's cleanup so
an interrupted run stops it too. Environment: RC_TEST_REDIS (redis-server
binary, default: redis-server on $PATH or /usr/bin/redis-server).
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import harness


class RedisError(Exception):
    pass


def redis_bin():
    b = os.environ.get("RC_TEST_REDIS") or shutil.which("redis-server")
    if not b and os.path.exists("/usr/bin/redis-server"):
        b = "/usr/bin/redis-server"
    if not b:
        raise harness.HarnessError("redis-server not found (apt-get install redis-server or set "
                                   "RC_TEST_REDIS)")
    return b


def make_tls(directory, name="tls", hosts=("127.0.0.1", "localhost")):
    """A CA and a server certificate signed by it (SAN: the given hosts),
    plus a second, unrelated CA for wrong-CA tests. Returns a dict of paths."""
    d = os.path.join(directory, name)
    os.makedirs(d, exist_ok=True)
    p = {k: os.path.join(d, k + ".pem") for k in
         ("ca", "ca_key", "server", "server_key", "other_ca", "other_ca_key", "client",
          "client_key")}

    def run(*argv):
        r = subprocess.run(["openssl"] + list(argv), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise harness.HarnessError("openssl %s failed: %s" % (argv[0], r.stdout.decode()))

    for ca, key, cn in (("ca", "ca_key", "respcache test CA"),
                        ("other_ca", "other_ca_key", "some other CA")):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=" + cn,
            "-keyout", p[key], "-out", p[ca])
    san = ",".join(("IP:" if h[0].isdigit() or ":" in h else "DNS:") + h for h in hosts)
    ext = os.path.join(d, "san.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n" % san)
    for cert, key, cn in (("server", "server_key", hosts[0]), ("client", "client_key", "client")):
        csr = os.path.join(d, cert + ".csr")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn, "-keyout", p[key],
            "-out", csr)
        run("x509", "-req", "-in", csr, "-CA", p["ca"], "-CAkey", p["ca_key"], "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", p[cert])
    for f in p.values():
        os.chmod(f, 0o644)
    return p


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RedisError("connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RedisError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RedisError("bad reply line %r" % line)


class RedisServer:
    """One redis-server process; see the module docstring."""

    def __init__(self, directory, name="redis", unix=False, tls=None, password=None,
                 acl_user=None, extra_args=(), tls_auth_clients="optional"):
        self.dir = os.path.join(directory, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.name = name
        self.unix = unix
        self.tls = tls
        self.password = password
        self.acl_user = acl_user
        self.extra_args = list(extra_args)
        self.tls_auth_clients = tls_auth_clients
        self.port = None       # plain TCP port (always there, for cli())
        self.tls_port = None
        self.proc = None

    @property
    def sock(self):
        return os.path.join(self.dir, "redis.sock")

    @property
    def log(self):
        return os.path.join(self.dir, "redis.log")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=20):
        if self.port is None:
            self.port = harness.free_port()
            if self.tls:
                self.tls_port = harness.free_port()
        argv = [redis_bin(), "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--logfile", self.log, "--daemonize", "no", "--protected-mode", "no"]
        if self.unix:
            argv += ["--unixsocket", self.sock, "--unixsocketperm", "777"]
        if self.tls:
            argv += ["--tls-port", str(self.tls_port), "--tls-cert-file", self.tls["server"],
                     "--tls-key-file", self.tls["server_key"], "--tls-ca-cert-file", self.tls["ca"],
                     "--tls-auth-clients", self.tls_auth_clients]
        if self.password:
            argv += ["--requirepass", self.password]
        argv += self.extra_args
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        with harness._LIVE_LOCK:
            harness._LIVE.add(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise harness.HarnessError("redis-server exited with %s during startup: %s"
                                           % (self.proc.returncode, harness.tail(self.log, 2000)))
            try:
                if self.cli("PING") == "PONG":
                    break
            except (OSError, RedisError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise harness.HarnessError("redis-server not answering on %d after %d s"
                                           % (self.port, timeout))
            time.sleep(0.05)
        if self.acl_user:
            user, pw = self.acl_user
            self.cli("ACL", "SETUSER", user, "on", ">" + pw, "~*", "&*", "+@all")
        return self

    def stop(self, grace=10):
        p = self.proc
        if p is None:
            return None
        self.proc = None
        harness.stop_process(p, signal.SIGTERM, grace)
        with harness._LIVE_LOCK:
            harness._LIVE.discard(self)
        return p.returncode

    def kill(self):
        """SIGKILL, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.stop()

    def cli(self, *args, timeout=5.0, db=0):
        """One command over plain TCP as the default user (in database db);
        the decoded reply (bytes for bulk strings). Raises RedisError on an
        error reply."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            r = _Reader(s)
            if self.password:
                s.sendall(_encode(["AUTH", self.password]))
                r.reply()
            if db:
                s.sendall(_encode(["SELECT", db]))
                r.reply()
            s.sendall(_encode(list(args)))
            return r.reply()
        finally:
            s.close()

    def subscribe(self, channel, timeout=5.0):
        """(socket, reader) subscribed to channel; read messages with reader.reply()."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        r = _Reader(s)
        if self.password:
            s.sendall(_encode(["AUTH", self.password]))
            r.reply()
        s.sendall(_encode(["SUBSCRIBE", channel]))
        r.reply()
        return s, r

    def url(self, scheme="redis", user=None, password=None, db=None, host="127.0.0.1"):
        auth = ""
        if password is not None:
            auth = "%s:%s@" % (user or "", password)
        if scheme == "unix":
            u = "unix://%s%s" % (auth, self.sock) if auth else "unix:" + self.sock
            return u + ("?db=%d" % db if db is not None else "")
        port = self.tls_port if scheme == "rediss" else self.port
        u = "%s://%s%s:%d" % (scheme, auth, host, port)
        return u + ("/%d" % db if db is not None else "")

    def respcache_env(self, provider="redis", **kw):
        """Environment for a respcache using this server (kw: url() arguments)."""
        pw = kw.pop("password", self.password)
        return {"CACHE_PROVIDER": provider, "REDIS_URL": self.url(password=pw, **kw)}

    def keys(self, pattern="*"):
        """Every key matching pattern (SCAN), as strings."""
        out, cursor = [], b"0"
        while True:
            cursor, batch = self.cli("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            out += [k.decode("utf-8", "replace") for k in batch]
            if cursor in (b"0", "0"):
                return out


# ------------------------------------------------------------------ FastCGI

def _fcgi_record(rtype, content, req_id=1):
    out = b""
    for i in range(0, max(len(content), 1), 65535):
        chunk = content[i:i + 65535]
        out += bytes([1, rtype, req_id >> 8, req_id & 255, len(chunk) >> 8, len(chunk) & 255, 0, 0])
        out += chunk
        if not content:
            break
    return out


def _fcgi_pairs(params):
    out = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode()
        for n in (len(k), len(v)):
            out += bytes([n]) if n < 128 else (n | 0x80000000).to_bytes(4, "big")
        out += k + v
    return out


def fcgi_request(sock_path, method, uri, body=None, headers=None, timeout=15.0):
    """One request straight to a respcache unix socket (no Nginx), so a test
    can pick the instance. Returns harness.Response (lower-cased headers)."""
    import json as _json
    headers = dict(headers or {})
    data = b""
    params = {"REQUEST_METHOD": method, "REQUEST_URI": uri, "REMOTE_ADDR": "127.0.0.1"}
    if body is not None:
        data = body if isinstance(body, bytes) else _json.dumps(body).encode()
        params["CONTENT_TYPE"] = headers.pop("Content-Type", "application/json")
        params["CONTENT_LENGTH"] = str(len(data))
    for k, v in headers.items():
        params["HTTP_" + k.upper().replace("-", "_")] = v
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        msg = _fcgi_record(1, bytes([0, 1, 0, 0, 0, 0, 0, 0]))  # BEGIN_REQUEST, responder
        msg += _fcgi_record(4, _fcgi_pairs(params)) + _fcgi_record(4, b"")
        msg += (_fcgi_record(5, data) if data else b"") + _fcgi_record(5, b"")
        s.sendall(msg)
        buf, out = b"", b""
        while True:
            while len(buf) < 8:
                chunk = s.recv(65536)
                if not chunk:
                    raise RedisError("FastCGI connection closed early")
                buf += chunk
            rtype, clen, plen = buf[1], (buf[4] << 8) | buf[5], buf[6]
            while len(buf) < 8 + clen + plen:
                chunk = s.recv(65536)
                if not chunk:
                    raise RedisError("FastCGI connection closed mid-record")
                buf += chunk
            content, buf = buf[8:8 + clen], buf[8 + clen + plen:]
            if rtype == 6:
                out += content
            elif rtype == 3:
                break
    finally:
        s.close()
    head, _, resp_body = out.partition(b"\r\n\r\n")
    hdrs, status = {}, 200
    for line in head.decode("iso-8859-1").split("\r\n"):
        k, _, v = line.partition(":")
        k, v = k.strip().lower(), v.strip()
        if k == "status":
            status = int(v.split()[0])
        elif k:
            hdrs[k] = v if k not in hdrs else hdrs[k] + ", " + v
    return harness.Response(status, hdrs, resp_body)
