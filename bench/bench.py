#!/usr/bin/env python3
"""
bench.py - the driver of respcache's benchmark suite. Run it through
bench/run, which takes the lock, installs what is missing and builds; this
file starts the servers, measures and writes bench/results/.

Everything runs on loopback: a private PostgreSQL (unix socket only), Nginx
instances on 127.0.0.1 built from nginx/standalone.conf.in (or bench/nginx/
for the static-file and fastcgi_cache references), respcache instances and
the no-op responder on unix sockets. Every server process is started under
`taskset -c SERVER_CPU`; wrk, curl, psql and this script run on CLIENT_CPU.
Every process started here is stopped by its PID when the script ends, on
an error, SIGINT, SIGTERM or SIGHUP.

Sections (see bench/README.md for what each measures and why):
  hits     no-op, static, fastcgi_cache, memory uniform/Zipf (interleaved),
           memory p99 at half of peak; [redis, tiered: see REDIS below]
  misses   keys never seen (fresh respcache per run) against caching off
  mixed    95/5 read/write on Zipf(0.99), queries from pg_stat_statements
  burst    100 concurrent requests on one cold key
  scale    hits with 1k and 1M entries cached; one tag bump covering 100k
  rss      RSS at steady state against the byte budget
"""

import argparse
import glob
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
LUA = os.path.join(BENCH, "wrk", "load.lua")

# Sizes of the two modes. The full run follows the issue; the quick one only
# proves, in well under a minute, that every step still works.
# hit_runs, hit_duration: the hit section's rounds. Its ratios are the
# targets', so it gets more rounds than the others' three, and shorter ones:
# the two runs of a pair are then closer in time, and the machine's swings
# (seen: 20% between neighbouring 10 s runs) weigh less on their ratio.
# miss_runs: the miss runs are short (there are only so many users never
# asked for), so they get more rounds too.
FULL = dict(users=100000, ws=10000, runs=3, hit_runs=10, hit_duration=5, miss_runs=6,
            steady_duration=20, duration=10, warmup=3, conns=32,
            hit_set=["noop", "static", "fcgicache", "memory_uniform", "memory_zipf",
                     "redis_uniform", "redis_zipf", "tiered_uniform", "tiered_zipf"],
            scale_small=1000, scale_block=100000, scale_blocks=10,
            bump_admin_blocks=[2, 3, 4, 5, 6], bump_write_blocks=[7, 8, 9], bump_baseline=21,
            big_budget=2 << 30, rss_budget=64 << 20, rss_fill_factor=2,
            burst=100, bursts=3, mixed_prewarm=True, mixed_warmup=10, halfpeak=True,
            pace_duration=10, pace_warmup=1, redo=2)
# The quick run: one run of 2 s per configuration, a subset of them, data
# sized so that every code path still runs (misses still never repeat).
QUICK = dict(users=10000, ws=1000, runs=1, duration=2, warmup=0, conns=32, steady_duration=2,
             hit_set=["noop", "fcgicache", "memory_uniform", "redis_uniform", "tiered_uniform"],
             scale_small=1000, scale_block=3000, scale_blocks=3,
             bump_admin_blocks=[2], bump_write_blocks=[3], bump_baseline=5,
             big_budget=256 << 20, rss_budget=1 << 20, rss_fill_factor=2,
             burst=100, bursts=1, mixed_prewarm=False, mixed_warmup=0, halfpeak=True,
             pace_duration=0.5, pace_warmup=0.25, redo=0)

SPREAD_FLAG = 0.20   # (max - min) / median above this: the run set is "noisy"
STEAL_FLAG = 0.05    # hypervisor steal time above this share of a CPU: "steal"
FOREIGN_FLAG = 0.05  # other processes used more than this share of a CPU: "disturbed"
REDO_FOREIGN = 0.10  # a hit/scale run this disturbed is done again (at most P["redo"] times)

USER_SELECT = "SELECT id, email, name, plan, created_at, updated_at FROM users WHERE id"
USER_UPDATE = "UPDATE users SET"


class Fail(Exception):
    """Something broke: the run exits non-zero."""


class Interrupted(Exception):
    pass


T0 = time.monotonic()


NOCACHE_ROLE = "bench_nocache"  # see load_data

def say(msg):
    print("==> [%4.0fs] %s" % (time.monotonic() - T0, msg), flush=True)


def warn(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def tail(path, n=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


def pg_bindir():
    def ver(p):
        try:
            return float(os.path.basename(os.path.dirname(p)))
        except ValueError:
            return -1.0
    for c in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=ver, reverse=True):
        if os.path.exists(os.path.join(c, "postgres")):
            return c
    p = shutil.which("postgres")
    if p:
        return os.path.dirname(p)
    raise Fail("PostgreSQL server programs not found (apt-get install postgresql)")


def nginx_bin():
    b = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not b:
        raise Fail("nginx not found (apt-get install nginx-light)")
    return b


def cmd_output(argv):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30,
                           stdin=subprocess.DEVNULL)
        return r.stdout.decode("utf-8", "replace").strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(%s: %s)" % (argv[0], e)


def cpu_times():
    """{cpu index: (busy, steal, total, user+nice+system)} in clock ticks, from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if not m:
                continue
            v = [int(x) for x in m.group(2).split()]
            user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
            total = user + nice + system + idle + iowait + irq + softirq + steal
            out[int(m.group(1))] = (user + nice + system + irq + softirq, steal, total,
                                    user + nice + system)
    return out


def cpu_share(before, after, cpu):
    """(busy share, steal share) of one CPU between two cpu_times()."""
    if cpu not in before or cpu not in after:
        return None, None
    b, a = before[cpu], after[cpu]
    total = a[2] - b[2]
    if total <= 0:
        return None, None
    return (a[0] - b[0]) / total, (a[1] - b[1]) / total


def proc_cpu():
    """{pid: (ppid, utime + stime ticks, kernel thread?)} of every process.
    (Not the reaped children's times: a shell reaping a long job would count
    the job's whole life.)"""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        ppid = int(rest[1])
        out[int(d)] = (ppid, int(rest[11]) + int(rest[12]), ppid == 2 or d == "2")
    return out


def descendants(snapshot, roots):
    ours = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, v in snapshot.items():
            if pid not in ours and v[0] in ours:
                ours.add(pid)
                changed = True
    return ours


def ctxt_switches(pids):
    """Context switches, voluntary and not, of every thread of pids so far
    (a thread that has exited is not counted)."""
    n = 0
    for pid in pids:
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for t in tasks:
            try:
                with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            n += int(line.split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return n


def cpu_delta(before, after, pids):
    t = 0
    for pid in pids:
        if pid in after:
            t += after[pid][1] - (before[pid][1] if pid in before else 0)
    return t


def foreign_cpu(before, after, root, servers, cpu_before, cpu_after, server_cpu):
    """Two estimates, in ticks, of the CPU time that processes other than
    ours used between two snapshots:
    - anywhere: processes alive at the end that are not `root` (this
      driver) or its descendants (short-lived ones are missed);
    - on the servers' CPU: its user+system time minus what our servers
      (pinned there) and kernel threads used, which does count short-lived
      processes such as compilers."""
    ours = descendants(after, [root])
    others = [p for p, v in after.items() if p not in ours and not v[2]]
    anywhere = cpu_delta(before, after, others)
    on_server = None
    if server_cpu in cpu_before and server_cpu in cpu_after:
        used = cpu_after[server_cpu][3] - cpu_before[server_cpu][3]
        srv = cpu_delta(before, after, descendants(after, servers))
        kth = cpu_delta(before, after, [p for p, v in after.items() if v[2]])
        on_server = max(0, used - srv - kth)
    return anywhere, on_server


LATENCY_MODES = (("halfpeak", "idle as the machine has it"),
                 ("halfpeak_poll", "CPUs kept out of halt (`/dev/cpu_dma_latency` 0)"))


def latency_table(L, rows, hp, P):
    """The open-loop rows of half_peak(): a table of their own."""
    if not hp or not any(rows.get("memory_" + m, {}).get("runs") or
                         rows.get("memory_" + m, {}).get("skipped") for m, _ in LATENCY_MODES):
        return
    L.append("## Latency at half of peak (open loop, `bench/pace`)")
    L.append("")
    L.append("%s requests a second, half of the memory hit peak above, sent on a fixed schedule "
             "over %d connections (`GET /api/users/{id}`, id uniform in 1..%s); each request is "
             "timed from its scheduled moment, so a stall also counts against the requests that "
             "waited behind it. wrk cannot do this: its pauses are whole milliseconds of its "
             "event loop's clock, so a paced wrk sends in bursts at each tick. Median of the runs' "
             "percentiles." % ("{:,}".format(round(hp["rate"])), P["conns"],
                               "{:,}".format(P["ws"])))
    L.append("")
    L.append("| configuration | idle | req/s | p50 | p90 | p99 | p99.9 | flags |")
    L.append("|---|---|---|---|---|---|---|---|")
    for mode, idle in LATENCY_MODES:
        for name in ("memory", "noop", "static"):
            r = rows.get("%s_%s" % (name, mode))
            if r is None:
                continue
            label = r["label"].split(" at half of peak")[0]
            if r.get("skipped"):
                L.append("| %s | %s | skipped: %s | | | | | |" % (label, idle, r["skipped"]))
                continue
            if not r.get("runs"):
                continue

            def pct(k):
                return fmt_us(statistics.median(x["latency_us"][k] for x in r["runs"]))
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, idle, fmt_rps(r["rps_med"]), pct("p50"), pct("p90"), pct("p99"),
                pct("p999"), ", ".join(r.get("flags", []))))
    L.append("")


def halfpeak_target(rows):
    """(target, measured, verdict) of "hit p99 <= 1 ms at half of peak" from
    the open-loop rows; the verdict is that of the CPUs kept out of halt
    when that was measured (a latency-tuned host), the text shows both."""
    name = "hit p99 ≤ 1 ms at half of peak"
    parts, verdict = [], None
    for mode, idle in LATENCY_MODES:
        m = rows.get("memory_" + mode)
        if not m or not m.get("runs"):
            continue
        refs = ", ".join("%s %s" % (lbl, fmt_us(rows[n + "_" + mode]["p99_med"]))
                         for n, lbl in (("noop", "no-op"), ("static", "static files"))
                         if rows.get(n + "_" + mode, {}).get("runs"))
        parts.append("%s with %s (same rate: %s)" % (fmt_us(m["p99_med"]), idle.split(" (")[0],
                                                      refs))
        p99 = m["p99_med"]
        verdict = "met" if p99 <= 1000 else "**missed** (%.1f×)" % (p99 / 1000)
    if not parts:
        return (name, "not measured", "skipped")
    return (name, "; ".join(parts), verdict)


def idle_poll():
    """Keeps every CPU out of halt while the returned descriptor is open
    (a PM QoS request of 0 µs exit latency on /dev/cpu_dma_latency, the
    knob latency-tuning profiles use): (fd, None), or (None, why)."""
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    except OSError as e:
        return None, "cannot open /dev/cpu_dma_latency: %s" % e.strerror
    try:
        os.write(fd, (0).to_bytes(4, sys.byteorder))
    except OSError as e:
        os.close(fd)
        return None, "cannot write /dev/cpu_dma_latency: %s" % e.strerror
    return fd, None


def rss_bytes(pid):
    """(VmRSS, VmHWM) of a process in bytes."""
    rss = hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return rss, hwm


# ---------------------------------------------------------------- processes

class Proc:
    def __init__(self, name, popen, stop_sig, grace, pidfile=None, log=None):
        self.name = name
        self.popen = popen
        self.stop_sig = stop_sig
        self.grace = grace
        self.pidfile = pidfile  # the real server's PID when popen is a wrapper (runuser)
        self.log = log
        self.exit_problem = None

    @property
    def pid(self):
        if self.pidfile:
            try:
                with open(self.pidfile) as f:
                    return int(f.readline().strip())
            except (OSError, ValueError):
                pass
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None


class Procs:
    """Every process this run started, stopped by PID, newest first."""

    def __init__(self):
        self.live = []

    def spawn(self, name, argv, env=None, log=None, stop_sig=signal.SIGTERM, grace=15,
              pidfile=None):
        logf = open(log, "ab") if log else subprocess.DEVNULL
        try:
            if log:
                logf.write(("\n=== %s %s\n" % (time.strftime("%H:%M:%S"), " ".join(argv))).encode())
                logf.flush()
            p = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            if log:
                logf.close()
        proc = Proc(name, p, stop_sig, grace, pidfile, log)
        self.live.append(proc)
        return proc

    def stop(self, proc):
        """Signal the process (its own PID, never a group or a name), wait, kill
        if it does not go. Returns the exit status of the Popen child."""
        if proc in self.live:
            self.live.remove(proc)
        if proc.popen.poll() is not None:
            return proc.popen.returncode
        targets = [proc.pid]
        if proc.popen.pid not in targets:
            targets.append(proc.popen.pid)
        for sig, grace in ((proc.stop_sig, proc.grace), (signal.SIGKILL, 10)):
            for t in targets:
                try:
                    os.kill(t, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                proc.popen.wait(grace)
                break
            except subprocess.TimeoutExpired:
                warn("%s (pid %d) did not stop within %d s; killing it" % (proc.name, proc.pid, grace))
        return proc.popen.returncode

    def stop_all(self):
        for p in list(reversed(self.live)):
            try:
                self.stop(p)
            except Exception as e:  # keep stopping the others
                warn("stopping %s: %s" % (p.name, e))


# ---------------------------------------------------------------- HTTP helpers

def http_get(port, path, method="GET", body=None, headers=None, timeout=10, conn=None):
    """(status, headers dict lower-case, body bytes, seconds)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        t0 = time.perf_counter()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        el = time.perf_counter() - t0
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data, el
    finally:
        if own:
            conn.close()


def burst(port, path, n, timeout=15):
    """n connections opened first, then one GET sent on each as fast as
    possible, then every answer read. Returns [(status, x-cache)] and the
    seconds from the first send to the last answer."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=timeout) for _ in range(n)]
    req = ("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode()
    out = []
    try:
        t0 = time.perf_counter()
        for s in socks:
            s.sendall(req)
        for s in socks:
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
            raw = b"".join(chunks)
            head = raw.split(b"\r\n\r\n", 1)[0].decode("iso-8859-1")
            m = re.match(r"HTTP/1\.[01] (\d{3})", head)
            xc = re.search(r"(?im)^x-cache:\s*(\S+)", head)
            out.append((int(m.group(1)) if m else 0, xc.group(1) if xc else None))
        el = time.perf_counter() - t0
    finally:
        for s in socks:
            s.close()
    return out, el


# ---------------------------------------------------------------- the bench

class Instance:
    """One respcache (unix socket) with its own Nginx from standalone.conf.in."""

    def __init__(self, bench, name, env, threads):
        self.b = bench
        self.name = name
        self.env = dict(env)
        self.threads = threads
        self.sock = os.path.join(bench.work, "run", name + ".sock")
        self.log = os.path.join(bench.work, "logs", "respcache-%s.log" % name)
        self.proc = None
        self.port = None
        self.wrapper = []  # e.g. valgrind (bench/profile)

    def start(self):
        b = self.b
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        env = {k: v for k, v in os.environ.items()
               if not re.match(r"(RESPCACHE_|CACHE_|REDIS_|DATABASE_|LOG_LEVEL)", k)}
        env["DATABASE_URL"] = b.database_url
        env["RESPCACHE_ADMIN_TOKEN"] = b.admin_token  # /cache/stats, tag bumps
        env.update(self.env)
        argv = b.pin_server + self.wrapper + [b.rc_bin, "--config", b.rc_config,
                                              "--listen", "unix:" + self.sock,
                                              "--threads", str(self.threads)]
        self.proc = b.procs.spawn("respcache-" + self.name, argv, env=env, log=self.log,
                                  stop_sig=signal.SIGTERM, grace=15)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if not self.proc.alive():
                raise Fail("respcache %s exited during startup:\n%s" % (self.name, tail(self.log)))
            if time.monotonic() > deadline:
                raise Fail("respcache %s did not listen within 30 s" % self.name)
            time.sleep(0.02)
        if self.port is None:
            self.port = b.start_nginx(self.name, os.path.join(REPO, "nginx", "standalone.conf.in"),
                                      upstream="unix:" + self.sock)
        b.wait_ready(self.port, self.name, self.proc, timeout=90 if self.wrapper else 30)

    def stop(self):
        if self.proc is None:
            return
        p, self.proc = self.proc, None
        rc = self.b.procs.stop(p)
        if rc != 0:
            self.b.problems.append("respcache %s exited with status %s after SIGTERM (expected 0)"
                                   % (self.name, rc))

    def restart(self, env=None):
        if env is not None:
            self.env.update(env)
        self.stop()
        self.start()

    def rss(self):
        return rss_bytes(self.proc.pid)

    def admin(self, method, path, conn=None):
        """(status, parsed JSON or None, seconds) of an admin route."""
        st, _, body, el = http_get(self.port, path, method,
                                   headers={"Authorization": "Bearer " + self.b.admin_token},
                                   conn=conn)
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        return st, data, el

    def stats(self):
        """GET /cache/stats, or None where this build has no admin routes."""
        st, data, _ = self.admin("GET", "/cache/stats")
        return data if st == 200 and isinstance(data, dict) else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.P = dict(QUICK if args.quick else FULL)
        for k in ("users", "runs", "duration"):
            v = getattr(args, k)
            if v is not None:
                self.P[k] = v
        if args.runs is not None:
            self.P["hit_runs"] = self.P["miss_runs"] = args.runs
        if args.duration is not None:
            self.P["hit_duration"] = args.duration
        self.P["ws"] = min(self.P["ws"], self.P["users"])
        self.is_root = os.geteuid() == 0
        self.procs = Procs()
        self.problems = []
        self.rows = {}      # id -> row (throughput tables)
        self.facts = {}     # other measurements by section
        self.redone = {}    # row id -> runs put aside as disturbed
        self.notes = []
        self.rc_bin = args.respcache
        self.noop_bin = args.noop
        self.pace_bin = args.pace
        ncpu = os.cpu_count() or 1
        self.server_cpu, self.client_cpu = args.server_cpu, args.client_cpu
        if ncpu < 2 or max(self.server_cpu, self.client_cpu) >= ncpu:
            self.notes.append("this machine has %d CPU(s): servers and wrk are NOT pinned apart, "
                              "numbers are not comparable with pinned runs" % ncpu)
            self.pin_server, self.pin_client = [], []
        else:
            self.pin_server = ["taskset", "-c", str(self.server_cpu)]
            self.pin_client = ["taskset", "-c", str(self.client_cpu)]
            os.sched_setaffinity(0, {self.client_cpu})  # this script, curl and psql too
        self.work = tempfile.mkdtemp(prefix="rc-bench-")
        os.chmod(self.work, 0o755)
        for d in ("run", "logs", "raw", "static"):
            os.makedirs(os.path.join(self.work, d))
        os.chmod(os.path.join(self.work, "run"), 0o777)
        self.out = args.out
        self.nginx = {}     # name -> (proc, port)
        self.instances = []
        self.started = time.time()
        self.admin_token = "bench-" + os.urandom(12).hex()

    # ------------------------------------------------------------ PostgreSQL

    @property
    def pg_sockdir(self):
        return os.path.join(self.work, "pg")

    @property
    def database_url(self):
        return "postgresql:///respcache?host=%s&port=%d&user=postgres" % (self.pg_sockdir, self.pg_port)

    def as_pg(self, argv):
        return (["runuser", "-u", "postgres", "--"] + argv) if self.is_root else argv

    def psql_argv(self, db):
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.pg_sockdir,
                "-p", str(self.pg_port), "-U", "postgres", "-d", db]

    def psql(self, sql, db="postgres", timeout=120):
        r = subprocess.run(self.psql_argv(db) + ["-At", "-F", "\t", "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise Fail("psql failed: %s\n%s" % (sql, r.stderr.decode("utf-8", "replace")))
        return [l.split("\t") for l in r.stdout.decode().splitlines() if l]

    def start_postgres(self):
        bindir = pg_bindir()
        data = os.path.join(self.pg_sockdir, "data")
        os.makedirs(self.pg_sockdir)
        if self.is_root:
            subprocess.run(["chown", "-R", "postgres:", self.pg_sockdir], check=True, timeout=30)
        log = os.path.join(self.work, "logs", "postgres.log")
        r = subprocess.run(self.as_pg([os.path.join(bindir, "initdb"), "-D", data, "-A", "trust",
                                       "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if r.returncode != 0:
            raise Fail("initdb failed:\n" + r.stdout.decode("utf-8", "replace")[-3000:])
        self.pg_port = 5432  # unix socket only, in our own directory: no clash
        # Durability off, as in the integration tests: a benchmark of the
        # cache, not of the disk. pg_stat_statements counts the queries.
        opts = ["listen_addresses=", "fsync=off", "synchronous_commit=off",
                "full_page_writes=off", "max_connections=200", "shared_buffers=256MB",
                "log_min_messages=warning", "shared_preload_libraries=pg_stat_statements",
                "pg_stat_statements.track=top", "pg_stat_statements.max=1000"]
        argv = [os.path.join(bindir, "postgres"), "-D", data, "-p", str(self.pg_port),
                "-k", self.pg_sockdir]
        for o in opts:
            argv += ["-c", o]
        self.pg_settings = opts
        self.pg = self.procs.spawn("postgres", self.pin_server + self.as_pg(argv), log=log,
                                   stop_sig=signal.SIGINT, grace=30,
                                   pidfile=os.path.join(data, "postmaster.pid"))
        deadline = time.monotonic() + 60
        while True:
            if not self.pg.alive():
                raise Fail("postgres exited during startup:\n" + tail(log))
            r = subprocess.run(self.psql_argv("postgres") + ["-Atc", "SELECT 1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise Fail("postgres not answering after 60 s:\n" + tail(log))
            time.sleep(0.1)

    def load_data(self):
        t0 = time.monotonic()
        self.psql("CREATE DATABASE respcache")
        self.psql("CREATE EXTENSION pg_stat_statements")
        for f, extra in (("sql/schema.sql", []),
                         ("sql/demo_data.sql", ["-v", "users=%d" % self.P["users"]])):
            r = subprocess.run(self.psql_argv("respcache") + extra + ["-f", os.path.join(REPO, f)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900,
                               stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise Fail("loading %s failed:\n%s" % (f, r.stdout.decode("utf-8", "replace")[-3000:]))
        # The caching-off instance logs in as this role, whose sessions send
        # the tables' trigger notifications to a channel nobody listens on:
        # its writes between the memory runs must not invalidate the memory
        # instance's cache (those would be misses the memory runs did not
        # cause). The trigger still runs, so writes cost the same.
        self.psql("CREATE ROLE %s LOGIN SUPERUSER" % NOCACHE_ROLE)
        self.psql("ALTER ROLE %s SET respcache.notify_channel = 'respcache_bench_unheard'"
                  % NOCACHE_ROLE)
        self.psql("VACUUM ANALYZE", db="respcache", timeout=900)
        say("demo data: %d users loaded in %.1f s" % (self.P["users"], time.monotonic() - t0))

    def pg_reset(self):
        self.psql("SELECT pg_stat_statements_reset()")

    def pg_counts(self):
        """Statement executions in the respcache database since pg_reset():
        {'read': user SELECTs, 'write': user UPDATEs, 'total': everything}."""
        time.sleep(0.3)  # let the last queries of the run finish
        rows = self.psql("SELECT s.query, s.calls FROM pg_stat_statements s JOIN pg_database d "
                         "ON d.oid = s.dbid WHERE d.datname = 'respcache'")
        c = {"read": 0, "write": 0, "total": 0, "other": {}}
        for q, calls in rows:
            calls = int(calls)
            c["total"] += calls
            if q.startswith(USER_SELECT):
                c["read"] += calls
            elif q.startswith(USER_UPDATE):
                c["write"] += calls
            else:
                q = " ".join(q.split())[:80]
                c["other"][q] = c["other"].get(q, 0) + calls
        return c

    # ------------------------------------------------------------ Nginx, noop

    def start_nginx(self, name, template, upstream=None, docroot=None):
        prefix = os.path.join(self.work, "nginx-" + name)
        os.makedirs(prefix, exist_ok=True)
        port = free_port()
        with open(template) as f:
            text = f.read()
        subs = {"@PREFIX@": prefix, "@LISTEN@": "127.0.0.1:%d" % port,
                "@UPSTREAM@": upstream or "unix:/nonexistent", "@DOCROOT@": docroot or prefix,
                "@NGINX_DIR@": os.path.join(REPO, "nginx")}
        for k, v in subs.items():
            text = text.replace(k, v)
        left = re.findall(r"@[A-Z_]+@", text)
        if left:
            raise Fail("%s has unknown placeholders %s" % (template, sorted(set(left))))
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(text)
        g = "daemon off;" + (" user root;" if self.is_root else "")
        argv = self.pin_server + [nginx_bin(), "-p", prefix, "-c", conf,
                                  "-e", os.path.join(prefix, "error.log"), "-g", g]
        proc = self.procs.spawn("nginx-" + name, argv, log=os.path.join(self.work, "logs",
                                                                      "nginx-%s.log" % name),
                                stop_sig=signal.SIGQUIT, grace=10)
        deadline = time.monotonic() + 30
        while True:
            if not proc.alive():
                raise Fail("nginx %s exited during startup:\n%s" % (
                    name, tail(os.path.join(prefix, "error.log"))))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Fail("nginx %s not listening after 30 s" % name)
            time.sleep(0.02)
        self.nginx[name] = (proc, port)
        return port

    def wait_ready(self, port, name, proc, timeout=30):
        """Until a request through Nginx reaches the upstream (an unknown /api/
        path: respcache's router answers 404 and caches nothing)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if proc is not None and not proc.alive():
                raise Fail("%s exited:\n%s" % (name, tail(proc.log) if proc.log else ""))
            try:
                st, _, _, _ = http_get(port, "/api/__ready__", timeout=5)
                last = st
                if st not in (502, 503, 504):
                    return
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise Fail("%s not answering through nginx after %d s (last: %r)" % (name, timeout, last))

    def start_noop(self, body_bytes, name="noop", wrapper=()):
        """A no-op responder (under `wrapper`, e.g. valgrind, when given)
        behind its own Nginx; returns the port, the process is self.noop."""
        sock = os.path.join(self.work, "run", name + ".sock")
        argv = self.pin_server + list(wrapper) + [self.noop_bin, "--listen", "unix:" + sock,
                                                  "--body-bytes", str(body_bytes)]
        self.noop = self.procs.spawn(name, argv, log=os.path.join(self.work, "logs", name + ".log"))
        deadline = time.monotonic() + (60 if wrapper else 10)
        while not os.path.exists(sock):
            if not self.noop.alive() or time.monotonic() > deadline:
                raise Fail("bench/noop did not start")
            time.sleep(0.02)
        port = self.start_nginx(name, os.path.join(REPO, "nginx", "standalone.conf.in"),
                                upstream="unix:" + sock)
        self.wait_ready(port, name, self.noop, timeout=60 if wrapper else 30)
        return port

    # ------------------------------------------------------------ wrk

    def wrk(self, label, port, env, conns=None, duration=None, until_done=False):
        """One bounded wrk run; returns its result dict (rps, latencies in µs).
        until_done: a seq run that ends (SIGINT to wrk, by PID) once every id
        was sent, or at `duration` at the latest."""
        conns = conns or self.P["conns"]
        duration = duration or self.P["duration"]
        e = dict(os.environ)
        e.update({k: str(v) for k, v in env.items()})
        e.setdefault("BENCH_SEED", str(random.randrange(1, 1 << 30)))
        done_file = None
        if until_done:
            done_file = os.path.join(self.work, "run", "wrk-done-%s" % label)
            if os.path.exists(done_file):
                os.unlink(done_file)
            e["BENCH_DONE_FILE"] = done_file
        duration = max(1, int(round(duration)))  # wrk takes whole seconds
        argv = self.pin_client + ["wrk", "-t", "1", "-c", str(conns), "-d", "%ds" % duration,
                                  "--timeout", "2s", "--latency", "-s", LUA,
                                  "http://127.0.0.1:%d" % port]
        before = cpu_times()
        pbefore = proc_cpu()
        sw_before = self.server_switches(pbefore)
        t_start = time.monotonic()
        outf = tempfile.TemporaryFile(dir=self.work)
        p = subprocess.Popen(argv, env=e, stdout=outf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + duration + 30
        try:
            while p.poll() is None:
                if done_file and os.path.exists(done_file):
                    time.sleep(0.3)  # the last requests sent get their answers
                    p.send_signal(signal.SIGINT)  # wrk prints its results and exits
                    done_file = None
                if time.monotonic() > deadline:
                    raise Fail("wrk %s did not finish within its time bound" % label)
                time.sleep(0.05)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        pafter = proc_cpu()
        cpu = self.cpu_during(before, pbefore, t_start, pafter)
        cpu["server_switches"] = self.server_switches(pafter) - sw_before
        outf.seek(0)
        text = outf.read().decode("utf-8", "replace")
        outf.close()
        r = p
        raw = self.save_raw(label, argv, env, text)
        m = re.search(r"^BENCH_RESULT (\{.*\})$", text, re.M)
        if r.returncode != 0 or not m:
            raise Fail("wrk %s failed (exit %d):\n%s" % (label, r.returncode, text[-2000:]))
        res = json.loads(m.group(1))
        res["rps"] = res["requests"] / (res["duration_us"] / 1e6) if res["duration_us"] else 0.0
        res["errors_total"] = sum(res["errors"].values())
        res["cpu"] = cpu
        if res["requests"] == 0:
            raise Fail("wrk %s completed no request:\n%s" % (label, text[-2000:]))
        if res["errors_total"]:
            raise Fail("wrk %s: errors %r (see %s)" % (label, res["errors"], raw))
        return res

    def server_switches(self, snapshot):
        """Context switches of every process the benchmark started (the
        servers, all pinned to the server CPU) and their threads."""
        return ctxt_switches(descendants(snapshot, [p.popen.pid for p in self.procs.live]))

    def cpu_during(self, before, pbefore, t_start, pafter=None):
        """What the CPUs did since the snapshots taken at t_start: busy and
        steal shares of the servers' and the client's CPU, and the share of
        a CPU that processes not started by the benchmark used."""
        after = cpu_times()
        wall = time.monotonic() - t_start
        anywhere, on_server = foreign_cpu(pbefore, pafter or proc_cpu(), os.getpid(),
                                          [p.popen.pid for p in self.procs.live],
                                          before, after, self.server_cpu)
        hz = os.sysconf("SC_CLK_TCK")
        busy0, steal0 = cpu_share(before, after, self.server_cpu)
        busy1, steal1 = cpu_share(before, after, self.client_cpu)
        return {"server_busy": busy0, "server_steal": steal0,
                "client_busy": busy1, "client_steal": steal1,
                "foreign": anywhere / hz / wall if wall > 0 else 0.0,
                "foreign_server_cpu": (on_server / hz / wall) if on_server is not None
                and wall > 0 else None}

    def save_raw(self, label, argv, env, text):
        n = len([f for f in os.listdir(os.path.join(self.work, "raw")) if f.startswith(label + ".")])
        raw = os.path.join(self.work, "raw", "%s.%d.txt" % (label, n + 1))
        with open(raw, "w") as f:
            f.write("$ %s\n%s\n%s" % (" ".join(argv), " ".join(
                "%s=%s" % kv for kv in sorted(env.items())), text))
        return raw

    def pace(self, label, port, rate, ids, duration, warmup):
        """One open-loop run of bench/pace: `rate` requests a second on a
        fixed schedule over P["conns"] connections, GET /api/users/{uniform
        id in 1..ids}; latency from each request's scheduled time."""
        argv = self.pin_client + [self.pace_bin, "-c", str(self.P["conns"]), "-r", "%.0f" % rate,
                                  "-d", "%g" % duration, "-w", "%g" % warmup, "-n", str(ids),
                                  "-s", str(random.randrange(1, 1 << 30)),
                                  "127.0.0.1:%d" % port]
        before, pbefore, t_start = cpu_times(), proc_cpu(), time.monotonic()
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=duration + warmup + 30)
        except subprocess.TimeoutExpired:
            raise Fail("pace %s did not finish within its time bound" % label)
        cpu = self.cpu_during(before, pbefore, t_start)
        text = r.stdout.decode("utf-8", "replace")
        raw = self.save_raw(label, argv, {}, text)
        m = re.search(r"^(\{.*\})$", text, re.M)
        if r.returncode != 0 or not m:
            raise Fail("pace %s failed (exit %d, see %s):\n%s" % (label, r.returncode, raw,
                                                                  text[-2000:]))
        res = json.loads(m.group(1))
        res["errors_total"] = res["errors"] + res["non2xx"]
        res["cpu"] = cpu
        return res

    # ------------------------------------------------------------ rows

    def row(self, rid, label, section, **kw):
        r = self.rows.get(rid)
        if r is None:
            r = dict(id=rid, label=label, section=section, runs=[], notes=[], **kw)
            self.rows[rid] = r
        return r

    def record(self, rid, res, extra=None):
        r = self.rows[rid]
        if extra:
            res = dict(res, **extra)
        r["runs"].append(res)
        say("  %-28s %9.0f req/s  p50 %6.0f µs  p99 %7.0f µs%s" % (
            rid, res["rps"], res["latency_us"]["p50"], res["latency_us"]["p99"],
            "  %s" % extra if extra else ""))

    def summarise(self):
        for r in self.rows.values():
            runs = r["runs"]
            if not runs:
                continue
            rps = [x["rps"] for x in runs]
            med = statistics.median(rps)
            r["rps_med"], r["rps_min"], r["rps_max"] = med, min(rps), max(rps)
            r["p50_med"] = statistics.median(x["latency_us"]["p50"] for x in runs)
            r["p99_med"] = statistics.median(x["latency_us"]["p99"] for x in runs)
            sw = [x["cpu"]["server_switches"] / x["requests"] for x in runs
                  if x.get("requests") and "server_switches" in x.get("cpu", {})]
            if sw:
                r["switches_med"] = statistics.median(sw)
            flags = []
            if len(runs) > 1 and med > 0 and (max(rps) - min(rps)) / med > SPREAD_FLAG:
                flags.append("noisy: spread %.0f%%" % (100 * (max(rps) - min(rps)) / med))
            steal = max(max(x["cpu"]["server_steal"] or 0, x["cpu"]["client_steal"] or 0)
                        for x in runs)
            if steal > STEAL_FLAG:
                flags.append("steal %.0f%%" % (100 * steal))
            foreign = max(max(x["cpu"].get("foreign") or 0, x["cpu"].get("foreign_server_cpu") or 0)
                          for x in runs)
            if foreign > FOREIGN_FLAG:
                flags.append("disturbed: other processes used %.0f%% of a CPU" % (100 * foreign))
            cb = [x for x in runs if (x["cpu"]["client_busy"] or 0) > 0.95
                  and (x["cpu"]["server_busy"] or 1) < 0.9]
            if cb and not r.get("paced"):
                flags.append("client-bound in %d run(s)" % len(cb))
            if self.redone.get(r["id"]):
                r["redone"] = self.redone[r["id"]]
                flags.append("%d disturbed run(s) done again" % len(r["redone"]))
            wraps = sum(x.get("seq_wrapped", 0) for x in runs)
            if wraps and r.get("distinct"):
                flags.append("keys ran out: %d repeats" % wraps)
            r["flags"] = flags

    def interleaved(self, cfgs, warmup=True, runs=None):
        """cfgs: [(row id, port, env, kwargs)]; a warm-up of each, then
        rounds of one run each, in turns, so that a slow drift of the machine
        hits every configuration alike. Every other round runs in reverse
        order (A B C, C B A, ...), so a steady drift also cancels out between
        neighbours. Each run records its round: paired_ratio() compares two
        configurations round by round. kwargs may hold "prepare", called
        (unmeasured) before each run of its configuration, and "observe", an
        Instance whose hits during each run are counted (local_hits())."""
        if warmup and self.P["warmup"]:
            for rid, port, env, kw in cfgs:
                self.wrk(rid + "-warmup", port, env, duration=self.P["warmup"])
        for i in range(runs or self.P["runs"]):
            for rid, port, env, kw in (cfgs if i % 2 == 0 else cfgs[::-1]):
                kw = dict(kw)
                prepare = kw.pop("prepare", None)
                observe = kw.pop("observe", None)

                def run(rid=rid, port=port, env=env, kw=kw, prepare=prepare, observe=observe):
                    if prepare:
                        prepare()
                    m0 = self.metrics_of(observe) if observe else None
                    res = self.wrk(rid, port, env, **kw)
                    if observe:
                        res["hits"], res["local_hits"] = local_hits(m0, self.metrics_of(observe))
                    return res
                res = self.redo(rid, run)
                res["round"] = i
                self.record(rid, res)

    def disturbed(self, res):
        c = res["cpu"]
        return (max(c.get("foreign") or 0, c.get("foreign_server_cpu") or 0) > REDO_FOREIGN
                or max(c.get("server_steal") or 0, c.get("client_steal") or 0) > STEAL_FLAG)

    def redo(self, rid, run):
        """A run; done again (at most P["redo"] times) while other processes
        or the hypervisor took a noticeable share of the CPUs during it. The
        runs put aside are kept in the row's "redone" list and in raw/."""
        res = run()
        for _ in range(self.P.get("redo", 0)):
            if not self.disturbed(res):
                break
            c = res["cpu"]
            say("  %-28s %9.0f req/s  disturbed (others %.0f%% / %.0f%% of a CPU, steal %.0f%%): "
                "again" % (rid, res["rps"], 100 * (c.get("foreign") or 0),
                           100 * (c.get("foreign_server_cpu") or 0),
                           100 * max(c.get("server_steal") or 0, c.get("client_steal") or 0)))
            self.redone.setdefault(rid, []).append(res)
            res = run()
        return res

    # ------------------------------------------------------------ setup

    def write_config(self):
        with open(os.path.join(REPO, "etc", "respcache.json")) as f:
            cfg = json.load(f)
        with open(os.path.join(BENCH, "routes.json")) as f:
            cfg["routes"] += json.load(f)
        self.rc_config = os.path.join(self.work, "respcache.json")
        with open(self.rc_config, "w") as f:
            json.dump(cfg, f, indent=2)
        r = subprocess.run([self.rc_bin, "--config", self.rc_config, "--check-config"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if r.returncode != 0:
            raise Fail("the benchmark config (etc/respcache.json + bench/routes.json) is "
                       "rejected:\n" + r.stdout.decode("utf-8", "replace"))

    def provider_supported(self, provider):
        env = dict(os.environ, CACHE_PROVIDER=provider,
                   REDIS_URL="unix:" + os.path.join(self.work, "run", "redis-server.sock"))
        r = subprocess.run([self.rc_bin, "--config", self.rc_config, "--check-config"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return r.returncode == 0, r.stdout.decode("utf-8", "replace").strip()

    def setup(self):
        say("work directory %s" % self.work)
        self.write_config()
        self.start_postgres()
        self.load_data()
        self.rc = Instance(self, "memory", {"CACHE_PROVIDER": "memory"}, self.args.threads)
        self.none = Instance(self, "none", {
            "CACHE_PROVIDER": "none",
            "DATABASE_URL": self.database_url.replace("user=postgres", "user=" + NOCACHE_ROLE)},
            self.args.threads)
        for inst in (self.rc, self.none):
            inst.start()

    # ------------------------------------------------------------ sections

    def uniform(self, n, **kw):
        return dict(BENCH_PATH="/api/users/%d", BENCH_N=n, BENCH_DIST="uniform", **kw)

    def zipf(self, n, **kw):
        return dict(BENCH_PATH="/api/users/%d", BENCH_N=n, BENCH_DIST="zipf", BENCH_ZIPF_S=0.99,
                    **kw)

    def curl_glob(self, port, path, out=None):
        """GET every URL of a curl range (16 at a time, kept-alive); all must be 200."""
        argv = ["curl", "-sS", "--max-time", "600", "--parallel", "--parallel-max", "16",
                "-o", out or "/dev/null",
                "-w", "%{http_code}\\n", "http://127.0.0.1:%d%s" % (port, path)]
        if out:
            argv.insert(1, "--create-dirs")
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=700)
        codes = r.stdout.decode().split()
        bad = [c for c in codes if c != "200"]
        if r.returncode != 0 or bad or not codes:
            raise Fail("curl %s: exit %d, %d non-200 answers: %s" % (
                path, r.returncode, len(bad), r.stderr.decode()[-500:]))
        return len(codes)

    def expect(self, port, path, header, want, what):
        st, h, body, _ = http_get(port, path)
        if st != 200 or h.get(header) != want:
            raise Fail("%s: GET %s gave %d %s=%r, expected 200 and %r" % (
                what, path, st, header, h.get(header), want))
        return body

    def section_hits(self):
        P = self.P
        ws = P["ws"]
        say("hits: warming respcache with users 1..%d and saving their bodies as static files" % ws)
        docroot = os.path.join(self.work, "static")
        self.curl_glob(self.rc.port, "/api/users/[1-%d]" % ws,
                       out=os.path.join(docroot, "api", "users", "#1"))
        sizes = [os.path.getsize(os.path.join(docroot, "api", "users", str(i))) for i in range(1, ws + 1)]
        body_bytes = round(sum(sizes) / len(sizes))
        self.facts["body_bytes"] = {"mean": body_bytes, "min": min(sizes), "max": max(sizes)}
        for i in (1, ws):
            self.expect(self.rc.port, "/api/users/%d" % i, "x-cache", "HIT", "warm respcache")
        static_port = self.static_port = self.start_nginx("static", os.path.join(BENCH, "nginx", "static.conf.in"),
                                       docroot=docroot)
        want = self.expect(static_port, "/api/users/1", "content-type",
                           "application/json; charset=utf-8", "static files")
        with open(os.path.join(docroot, "api", "users", "1"), "rb") as f:
            if f.read() != want:
                raise Fail("static file reference does not serve the saved body")
        say("hits: warming Nginx's fastcgi_cache")
        fcgi_port = self.start_nginx("fcgicache", os.path.join(BENCH, "nginx", "fcgicache.conf.in"),
                                     upstream="unix:" + self.rc.sock)
        self.wait_ready(fcgi_port, "fcgicache", None)
        self.curl_glob(fcgi_port, "/api/users/[1-%d]" % ws)
        for i in (1, ws):
            self.expect(fcgi_port, "/api/users/%d" % i, "x-nginx-cache", "HIT", "fastcgi_cache warm")
        noop_port = self.noop_port = self.start_noop(body_bytes)
        self.expect(noop_port, "/api/users/1", "x-cache", "HIT", "noop")

        self.row("noop", "no-op FastCGI responder (ceiling)", "hits", ref=True)
        self.row("static", "Nginx static files", "hits", ref=True)
        self.row("fcgicache", "Nginx fastcgi_cache in front of respcache", "hits", ref=True)
        self.row("memory_uniform", "respcache memory hit, uniform", "hits")
        if "memory_zipf" in P["hit_set"]:
            self.row("memory_zipf", "respcache memory hit, Zipf 0.99", "hits")
        cfgs = [("noop", noop_port, self.uniform(ws), {}),
                ("static", static_port, self.uniform(ws), {}),
                ("fcgicache", fcgi_port, self.uniform(ws), {}),
                ("memory_uniform", self.rc.port, self.uniform(ws), {}),
                ("memory_zipf", self.rc.port, self.zipf(ws), {})]
        cfgs += self.redis_hit_configs(ws)
        # The targets' pairs run close together in every round: no-op and
        # memory, then memory and tiered back to back, redis right after
        # tiered; the references and Zipf after them.
        order = ["noop", "memory_uniform", "tiered_uniform", "redis_uniform", "static",
                 "fcgicache", "memory_zipf", "tiered_zipf", "redis_zipf"]
        cfgs = sorted((c for c in cfgs if c[0] in P["hit_set"]), key=lambda c: order.index(c[0]))
        runs = P.get("hit_runs") or P["runs"]
        dur = P.get("hit_duration") or P["duration"]
        cfgs = [(rid, port, env, dict(kw, duration=dur)) for rid, port, env, kw in cfgs]
        say("hits: %d configurations, %d round(s) of %g s each, interleaved"
            % (len(cfgs), runs, dur))
        self.interleaved(cfgs, runs=runs)
        self.steady_tiered(ws)
        for i in (1, ws // 2, ws):
            self.expect(self.rc.port, "/api/users/%d" % i, "x-cache", "HIT", "after the hit runs")
        if P["halfpeak"]:
            self.half_peak()

    # REDIS: the redis and tiered rows. They run when the binary's config
    # accepts CACHE_PROVIDER=redis / tiered and redis-server is installed;
    # otherwise they are reported as skipped with the reason. Each gets its
    # own respcache instance (and Nginx) so that it is interleaved with the
    # memory runs above. Targets: tiered >= 0.95x memory, redis >= 0.6x.
    def redis_hit_configs(self, ws):
        out = []
        for provider in ("redis", "tiered"):
            if not any(r.startswith(provider + "_") for r in self.P["hit_set"]):
                continue
            ok, msg = self.provider_supported(provider)
            if not ok:
                self.skip_row(provider, "this respcache rejects CACHE_PROVIDER=%s: %s"
                              % (provider, msg.splitlines()[-1] if msg else "?"))
                continue
            say("hits: starting and warming the %s provider" % provider)
            sock = self.start_redis()
            if sock is None:
                self.skip_row(provider, "redis-server is not installed")
                continue
            inst = Instance(self, provider, {"CACHE_PROVIDER": provider,
                                             "REDIS_URL": "unix:" + sock,
                                             "REDIS_KEY_PREFIX": "bench-%s:" % provider},
                            self.args.threads)
            inst.start()
            self.instances.append(inst)
            self.curl_glob(inst.port, "/api/users/[1-%d]" % ws)
            self.expect(inst.port, "/api/users/1", "x-cache", "HIT", provider + " warm")
            self.row(provider + "_uniform", "respcache %s hit, uniform" % provider, "hits")
            if provider + "_zipf" in self.P["hit_set"]:
                self.row(provider + "_zipf", "respcache %s hit, Zipf 0.99" % provider, "hits")
            kw = {"observe": inst}
            if provider == "tiered":
                # An L1 entry lives at most tiered_l1_ttl_max (10 s), less than
                # a round: without this pass, every tiered run would begin
                # with its whole working set read again from Redis. These
                # runs measure L1 hits; steady_tiered() measures the refills.
                kw["prepare"] = lambda port=inst.port: self.curl_glob(
                    port, "/api/users/[1-%d]" % ws)
            out += [(provider + "_uniform", inst.port, self.uniform(ws), kw),
                    (provider + "_zipf", inst.port, self.zipf(ws), kw)]
        return out

    def steady_tiered(self, ws):
        """Memory, then tiered, under one continuous uniform load of
        P["steady_duration"] (twice tiered_l1_ttl_max in the full run), so
        that every L1 entry expires and is read again from Redis during it,
        as under any steady load: the tiered rate next to memory's, and the
        share of tiered's hits L1 answered."""
        inst = next((i for i in self.instances if i.name == "tiered"), None)
        dur = self.P.get("steady_duration")
        if inst is None or not dur:
            return
        say("hits: memory and tiered under %g s of continuous load each" % dur)
        out = {"duration": dur}
        for name, i in (("memory", self.rc), ("tiered", inst)):
            m0 = self.metrics_of(i)
            res = self.wrk("steady_" + name, i.port, self.uniform(ws), duration=dur)
            hits, local = local_hits(m0, self.metrics_of(i))
            out[name] = {"rps": res["rps"], "hits": hits, "local": local,
                         "requests": res["requests"]}
            say("  steady %-8s %9.0f req/s, %.1f%% of %d hits from this process's memory"
                % (name, res["rps"], 100 * local / hits if hits else 0, hits))
        self.facts["steady_tiered"] = out

    def skip_row(self, provider, why):
        say("  %s: skipped (%s)" % (provider, why))
        for d in ("uniform", "zipf"):
            r = self.row("%s_%s" % (provider, d), "respcache %s hit, %s" % (
                provider, "uniform" if d == "uniform" else "Zipf 0.99"), "hits")
            r["skipped"] = why

    def start_redis(self):
        if getattr(self, "redis_sock", None):
            return self.redis_sock
        exe = shutil.which("redis-server")
        if not exe:
            return None
        sock = os.path.join(self.work, "run", "redis-server.sock")
        argv = self.pin_server + [exe, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "777",
                                  "--save", "", "--appendonly", "no", "--dir", self.work]
        proc = self.procs.spawn("redis", argv, log=os.path.join(self.work, "logs", "redis.log"))
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if not proc.alive() or time.monotonic() > deadline:
                raise Fail("redis-server did not start:\n" + tail(proc.log))
            time.sleep(0.02)
        self.redis_sock = sock
        return sock

    def half_peak(self):
        """Latency at half of the memory hit peak. wrk cannot hold a rate (its
        pauses are whole milliseconds of its loop's clock, so requests leave
        in bursts at each tick), so bench/pace sends them on a fixed schedule
        and times each from its scheduled moment. Respcache memory hits, the
        no-op responder and the static files at the same rate, first with the
        CPUs' idle as the machine has it, then kept out of halt."""
        P = self.P
        peak = statistics.median(x["rps"] for x in self.rows["memory_uniform"]["runs"])
        rate = peak / 2
        self.facts["halfpeak"] = {"peak": peak, "rate": rate}
        who = [("memory", self.rc.port, "respcache memory hit"),
               ("noop", self.noop_port, "no-op responder"),
               ("static", self.static_port, "Nginx static files")]
        for mode, idle in (("halfpeak", "idle as the machine has it"),
                           ("halfpeak_poll", "CPUs kept out of halt")):
            hold = None
            if mode == "halfpeak_poll":
                hold, why = idle_poll()
                if hold is None:
                    for name, _, label in who:
                        r = self.row("%s_%s" % (name, mode), "%s at half of peak, %s" % (
                            label, idle), "hits", paced=True)
                        r["skipped"] = why
                    say("  latency with the CPUs kept out of halt: skipped (%s)" % why)
                    continue
            try:
                say("latency at half of the memory hit peak (%.0f req/s, open loop), %s"
                    % (rate, idle))
                for name, _, label in who:
                    r = self.row("%s_%s" % (name, mode), "%s at half of peak, %s" % (label, idle),
                                 "hits", paced=True)
                    r["rate"] = rate
                for i in range(P["runs"]):
                    for name, port, _ in who:
                        rid = "%s_%s" % (name, mode)
                        res = self.redo(rid, lambda: self.pace(
                            rid, port, rate, P["ws"], P["pace_duration"], P["pace_warmup"]))
                        self.record(rid, res, {"share_of_peak": round(res["rps"] / peak, 3)})
            finally:
                if hold is not None:
                    os.close(hold)

    def section_misses(self):
        P = self.P
        n = P["users"]
        say("misses: every request a key never seen (fresh respcache each run) vs caching off")
        self.row("memory_miss", "respcache memory miss (keys never seen)", "misses", distinct=True)
        self.row("none", "respcache, caching off (CACHE_PROVIDER=none)", "misses", ref=True,
                 distinct=True)
        env = dict(BENCH_PATH="/api/users/%d", BENCH_N=n, BENCH_DIST="seq", BENCH_SEQ_START=1)
        # A warm-up of the database path, which also measures its rate: a
        # miss run must not ask for more ids than there are users (after
        # that, the ids come round again and would be hits).
        res = self.wrk("none-warmup", self.none.port, dict(env, BENCH_SEQ_START=n // 2),
                       duration=max(1, P["warmup"]))
        dur = min(P["duration"], max(1, int(0.75 * n / (1.3 * res["rps"]))))
        if dur < P["duration"]:
            self.notes.append("miss runs lasted %d s instead of %g s, so that %s users were enough "
                              "for every request to be a key never seen" % (dur, P["duration"],
                                                                            "{:,}".format(n)))
        self.facts["miss_duration"] = dur
        # Rounds as in interleaved(): both instances freshly started before
        # their run (the memory one for an empty cache, the other so that a
        # process's first seconds weigh on both alike), the order reversed
        # every other round, each run tagged with its round for the ratio.
        pair = [("memory_miss", self.rc), ("none", self.none)]
        for i in range(P.get("miss_runs") or P["runs"]):
            for rid, inst in (pair if i % 2 == 0 else pair[::-1]):
                inst.restart()
                self.pg_reset()
                res = self.wrk(rid, inst.port, env, duration=dur)
                q = self.pg_counts()
                res["round"] = i
                self.record(rid, res, {"db_reads_per_request": round(q["read"] / res["requests"], 3)})
            self.expect(self.rc.port, "/api/users/1", "x-cache", "HIT", "a miss run stored its entries")
        self.rc.restart()

    def section_mixed(self):
        P = self.P
        n = P["users"]
        say("mixed: 95%% GET / 5%% PATCH /api/users/{id}, Zipf 0.99 over %d users" % n)
        env = self.zipf(n, BENCH_WRITE_PCT=5, BENCH_WRITE_METHOD="PATCH",
                        BENCH_WRITE_PATH="/api/users/%d", BENCH_WRITE_BODY='{"name":"bench %d"}')
        self.row("mixed_memory", "95/5 read/write, Zipf 0.99, memory", "mixed")
        self.row("mixed_none", "95/5 read/write, Zipf 0.99, caching off", "mixed", ref=True)
        # A long-running service has read its users before: every user once
        # (the Zipf tail would otherwise be mostly first reads), then a
        # warm-up of the same load.
        if P["mixed_prewarm"]:
            say("mixed: reading every user once first")
            self.curl_glob(self.rc.port, "/api/users/[1-%d]" % n)
        if P["mixed_warmup"]:
            self.wrk("mixed_memory-warmup", self.rc.port, env, duration=P["mixed_warmup"])
        for i in range(P["runs"]):
            for rid, inst in (("mixed_memory", self.rc), ("mixed_none", self.none)):
                self.pg_reset()
                m0 = self.metrics_of(inst)
                res = self.wrk(rid, inst.port, env)
                q = self.pg_counts()
                m1 = self.metrics_of(inst)
                self.save_metrics_delta(rid, m0, m1)
                wt0, wt1 = ([m.get('respcache_write_through_total{result="%s"}' % k, 0)
                             for k in ("stored", "skipped")] for m in (m0, m1))
                self.record(rid, res, {
                    "db_reads": q["read"], "db_writes": q["write"], "db_total": q["total"],
                    "db_other": q["other"],
                    "db_per_request": round(q["total"] / res["requests"], 4),
                    "wt_stored": int(wt1[0] - wt0[0]), "wt_skipped": int(wt1[1] - wt0[1])})
        # Summary of the query counts.
        out = {}
        for rid in ("mixed_memory", "mixed_none"):
            runs = self.rows[rid]["runs"]
            req = sum(x["requests"] for x in runs)
            out[rid] = {k: sum(x.get(k, 0) for x in runs)
                        for k in ("db_reads", "db_writes", "db_total", "wt_stored", "wt_skipped")}
            out[rid]["requests"] = req
            out[rid]["per_request"] = out[rid]["db_total"] / req
            out[rid]["reads_per_request"] = out[rid]["db_reads"] / req
        m, z = out["mixed_memory"], out["mixed_none"]
        out["reduction_total"] = 1 - m["per_request"] / z["per_request"]
        # The writes' own statements, which no cache can save: the best
        # reduction this mix allows.
        out["reduction_bound"] = 1 - (m["db_writes"] / m["requests"]) / z["per_request"]
        out["reduction_reads"] = 1 - m["reads_per_request"] / z["reads_per_request"]
        self.facts["mixed"] = out

    def metrics_of(self, inst):
        """Every series of inst's /metrics: {series: value}."""
        st, _, body, _ = http_get(inst.port, "/metrics")
        got = {}
        if st == 200:
            for line in body.decode("utf-8", "replace").splitlines():
                if line and not line.startswith("#"):
                    name, _, val = line.rpartition(" ")
                    try:
                        got[name] = float(val)
                    except ValueError:
                        pass
        return got

    def save_metrics_delta(self, label, m0, m1):
        """What moved in /metrics during a run (misses, fills, invalidations:
        where the queries came from), as raw/metrics-<label>.<n>.txt."""
        raw = os.path.join(self.work, "raw")
        n = len([f for f in os.listdir(raw) if f.startswith("metrics-%s." % label)])
        with open(os.path.join(raw, "metrics-%s.%d.txt" % (label, n + 1)), "w") as f:
            for k in sorted(m1):
                d = m1[k] - m0.get(k, 0)
                if d and "_bucket{" not in k:
                    f.write("%s %s\n" % (k, ("%d" % d) if d == int(d) else ("%.6f" % d)))

    def section_burst(self):
        P = self.P
        say("burst: %d concurrent requests on one cold key, %d time(s)" % (P["burst"], P["bursts"]))
        runs = []
        for i in range(P["bursts"]):
            self.rc.restart()
            uid = P["users"] // 2 + 1 + i
            path = "/api/users/%d" % uid
            self.pg_reset()
            answers, el = burst(self.rc.port, path, P["burst"])
            q = self.pg_counts()
            xc = {}
            for st, x in answers:
                if st != 200:
                    raise Fail("burst on %s: a request got status %d" % (path, st))
                xc[x] = xc.get(x, 0) + 1
            runs.append({"path": path, "queries": q["read"], "x_cache": xc,
                         "seconds": round(el, 4)})
            say("  %s: %d queries, X-Cache %s, %.1f ms" % (path, q["read"], xc, el * 1000))
        self.facts["burst"] = {"requests": P["burst"], "runs": runs,
                               "queries_median": statistics.median(r["queries"] for r in runs)}

    def fill_items(self, inst, n, label):
        """Ask for /api/bench/items/{block}/{id}, ids 1..n in order, each once."""
        block = self.P["scale_block"]
        env = dict(BENCH_PATH="/api/bench/items/%d/%d", BENCH_BLOCK=block, BENCH_N=n,
                   BENCH_DIST="seq")
        t0 = time.monotonic()
        res = self.wrk(label, inst.port, env, duration=1800, until_done=True)
        el = time.monotonic() - t0
        if res["seq_wrapped"] == 0 or res["requests"] < n:
            raise Fail("%s: only %d of %d entries requested" % (label, res["requests"], n))
        for i in random.sample(range(1, n + 1), min(50, n)):
            self.expect(inst.port, self.item_path(i), "x-cache", "HIT", label)
        say("  %s: %d entries in %.1f s (%.0f misses/s)" % (label, n, el, n / el))
        return {"entries": n, "seconds": round(el, 1), "rate": round(n / el)}

    def item_path(self, i):
        return "/api/bench/items/%d/%d" % ((i - 1) // self.P["scale_block"] + 1, i)

    def section_scale(self):
        P = self.P
        big_n = P["scale_block"] * P["scale_blocks"]
        small_n = P["scale_small"]
        say("scale: hits with %d and with %d entries cached" % (small_n, big_n))
        # Tag slots: each entry has its own item tag, so 1M live tags; a
        # table of 262,144 counters would make every bump also
        # invalidate ~4 unrelated entries (collisions cost misses, never
        # stale reads). README: size tag_slots well above the live tags.
        slots = 1 << max(18, (4 * big_n - 1).bit_length())
        big = Instance(self, "big", {"CACHE_PROVIDER": "memory",
                                     "CACHE_MEMORY_MAX_BYTES": str(P["big_budget"]),
                                     "CACHE_TAG_SLOTS": str(slots)},
                       self.args.threads)
        big.start()
        self.instances.append(big)
        rss0 = big.rss()[0]
        fill_big = self.fill_items(big, big_n, "fill_big")
        rss1 = big.rss()[0]
        stats_big = big.stats()
        if stats_big is not None and (stats_big.get("keys") != big_n or stats_big.get("evictions")):
            raise Fail("the %d-entry cache holds %s keys after %s evictions; raise big_budget"
                       % (big_n, stats_big.get("keys"), stats_big.get("evictions")))
        self.rc.restart({"CACHE_TAG_SLOTS": str(slots)})  # the same table as the big one
        fill_small = self.fill_items(self.rc, small_n, "fill_small")
        self.row("scale_small", "memory hit, %s entries cached (uniform over all)" % f"{small_n:,}",
                 "scale")
        self.row("scale_big", "memory hit, %s entries cached (uniform over all)" % f"{big_n:,}",
                 "scale")

        def items(n):
            return dict(BENCH_PATH="/api/bench/items/%d/%d", BENCH_BLOCK=P["scale_block"],
                        BENCH_N=n, BENCH_DIST="uniform")
        self.interleaved([("scale_small", self.rc.port, items(small_n), {}),
                          ("scale_big", big.port, items(big_n), {})])
        self.facts["scale"] = {"fill_big": fill_big, "fill_small": fill_small,
                               "rss_before_fill": rss0, "rss_after_fill": rss1,
                               "rss_per_entry": round((rss1 - rss0) / big_n, 1),
                               "stats_big": stats_big, "budget": P["big_budget"],
                               "tag_slots": slots}
        self.section_bump(big)
        big.stop()
        self.instances.remove(big)
        self.rc.env.pop("CACHE_TAG_SLOTS", None)
        self.rc.restart()

    def section_bump(self, big):
        """Tag bumps timed end to end through Nginx on a persistent connection:
        the admin route DELETE /cache/tags/{tag} (the bump alone) and a write
        route whose invalidate template is the tag (SELECT + bump), each for a
        tag covering a whole block of entries, one entry, and none."""
        P = self.P
        block = P["scale_block"]
        say("bump: one tag covering %d entries, against one covering 1 and 0" % block)
        conn = http.client.HTTPConnection("127.0.0.1", big.port, timeout=10)
        st, _, _ = big.admin("DELETE", "/cache/tags/bench-probe", conn=conn)
        admin = st == 200
        if not admin:
            self.notes.append("DELETE /cache/tags answered %d: tag bumps timed through a write "
                              "route only" % st)

        def timed(method, path):
            if method == "DELETE":
                st, _, el = big.admin(method, path, conn=conn)
            else:
                st, _, _, el = http_get(big.port, path, method, conn=conn)
            if st != 200:
                raise Fail("%s %s: status %d" % (method, path, st))
            return el

        none_block = 10 ** 6  # a block no entry is in
        # Warm-up: every database worker prepares the write routes' statements.
        for i in range(2 * self.args.threads + 2):
            timed("POST", "/api/bench/blocks/%d/bump" % none_block)
            timed("POST", "/api/bench/items/%d/%d/bump" % (none_block, i + 1))
        n = P["bump_baseline"]
        base = {}
        if admin:
            base["admin_0"] = [timed("DELETE", "/cache/tags/block:%d" % none_block) for _ in range(n)]
            base["admin_1"] = [timed("DELETE", "/cache/tags/item:1:%d" % (i + 1)) for i in range(n)]
        base["write_0"] = [timed("POST", "/api/bench/blocks/%d/bump" % none_block) for _ in range(n)]
        base["write_1"] = [timed("POST", "/api/bench/items/1/%d/bump" % (n + i + 1)) for i in range(n)]
        runs = []
        plan = [("admin", b) for b in P["bump_admin_blocks"] if admin]
        plan += [("write", b) for b in P["bump_write_blocks"]]
        for how, b in plan:
            ids = random.sample(range((b - 1) * block + 1, b * block + 1), min(100, block))
            others = random.sample(range(2 * n + 2, block + 1), min(100, block - 2 * n - 1))
            # Each sampled entry is cached before the bump (a GET first fills
            # one the run's traffic left out), so what is measured is the
            # bump, not what happened to be cached.
            for i in ids[:20]:
                http_get(big.port, self.item_path(i), conn=conn)
                self.expect(big.port, self.item_path(i), "x-cache", "HIT", "before the bump")
            if how == "admin":
                el = timed("DELETE", "/cache/tags/block:%d" % b)
            else:
                el = timed("POST", "/api/bench/blocks/%d/bump" % b)
            miss = sum(1 for i in ids if http_get(big.port, self.item_path(i), conn=conn)[1]
                       .get("x-cache") == "MISS")
            hit = sum(1 for i in others if http_get(big.port, self.item_path(i), conn=conn)[1]
                      .get("x-cache") == "HIT")
            runs.append({"how": how, "block": b, "covers": block, "seconds": el,
                         "sampled_miss": "%d/%d" % (miss, len(ids)),
                         "other_block_hit": "%d/%d" % (hit, len(others))})
            say("  %s bump of block:%d (%d entries): %.3f ms; then %d/%d sampled entries of it "
                "miss, %d/%d of block 1 still hit" % (how, b, block, el * 1000, miss, len(ids),
                                                      hit, len(others)))
            if miss != len(ids):
                raise Fail("the bump of block:%d left entries valid" % b)
            # A few misses outside the block are tag-slot collisions (by design:
            # a shared counter costs a miss, never a stale read); many would
            # be a bug.
            if hit < 0.9 * len(others):
                raise Fail("the bump of block:%d invalidated %d/%d sampled entries of block 1"
                           % (b, len(others) - hit, len(others)))
        conn.close()
        out = {"covers": block, "runs": runs, "admin": admin, "n": n}
        for k, v in base.items():
            out[k + "_ms"] = statistics.median(v) * 1000
        for how in ("admin", "write"):
            r = [x["seconds"] for x in runs if x["how"] == how]
            if r:
                out[how + "_block_ms"] = statistics.median(r) * 1000
        self.facts["bump"] = out

    def section_rss(self):
        P = self.P
        budget = P["rss_budget"]
        per = self.facts.get("scale", {}).get("rss_per_entry") or 400
        keys = int(P["rss_fill_factor"] * budget / max(per, 100))
        say("rss: budget %.1f MiB, %d distinct keys (about %dx what fits)"
            % (budget / 2**20, keys, P["rss_fill_factor"]))
        self.rc.restart({"CACHE_MEMORY_MAX_BYTES": str(budget)})
        rss0 = self.rc.rss()[0]
        block = P["scale_block"]
        env = dict(BENCH_PATH="/api/bench/items/%d/%d", BENCH_BLOCK=block, BENCH_N=keys,
                   BENCH_DIST="seq")
        t0 = time.monotonic()
        self.wrk("rss_fill", self.rc.port, env, duration=1800, until_done=True)
        fill = round(time.monotonic() - t0, 1)
        samples = []
        stop = threading.Event()

        def sampler():
            while not stop.wait(0.5):
                try:
                    samples.append(self.rc.rss()[0])
                except OSError:
                    return
        t = threading.Thread(target=sampler, daemon=True)
        t.start()
        try:
            res = self.wrk("rss_steady", self.rc.port, dict(env, BENCH_DIST="uniform"))
        finally:
            stop.set()
            t.join()
        rss, hwm = self.rc.rss()
        stats = self.rc.stats()
        self.facts["rss"] = {"budget": budget, "rss_start": rss0, "rss_steady": rss,
                             "rss_peak": hwm, "keys": keys, "fill_seconds": fill,
                             "steady_rps": round(res["rps"]), "stats": stats,
                             "samples_max": max(samples) if samples else rss,
                             "ratio": rss / budget, "growth_ratio": (rss - rss0) / budget}
        say("  RSS %.1f MiB at steady state (peak %.1f, %.1f at start) for a %.1f MiB budget%s"
            % (rss / 2**20, hwm / 2**20, rss0 / 2**20, budget / 2**20,
               "; the cache counts %s bytes in %s entries, %s evictions" % (
                   stats.get("bytes"), stats.get("keys"), stats.get("evictions")) if stats else ""))
        self.rc.env.pop("CACHE_MEMORY_MAX_BYTES", None)
        self.rc.restart()

    # ------------------------------------------------------------ teardown

    def stop_all(self):
        for inst in [getattr(self, "rc", None), getattr(self, "none", None)] + self.instances:
            if inst is not None:
                try:
                    inst.stop()
                except Exception as e:
                    self.problems.append("stopping %s: %s" % (inst.name, e))
        self.procs.stop_all()

    # ------------------------------------------------------------ results

    def machine(self):
        model = ""
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        hv = ""
        lscpu = cmd_output(["lscpu"])
        m = re.search(r"Hypervisor vendor:\s*(\S+)", lscpu)
        if m:
            hv = " (virtual machine, %s)" % m.group(1)
        mem = ""
        try:
            with open("/proc/meminfo") as f:
                mem = "%.1f GiB" % (int(f.readline().split()[1]) / 2**20)
        except OSError:
            pass
        return {
            "nproc": os.cpu_count(), "cpu": model + hv, "kernel": platform.release(),
            "memory": mem, "os": cmd_output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
            "nginx": cmd_output([nginx_bin(), "-v"]),
            "postgres": cmd_output([os.path.join(pg_bindir(), "postgres"), "--version"]),
            "respcache": cmd_output([self.rc_bin, "--version"]),
            "wrk": cmd_output(["wrk", "-v"]).splitlines()[0],
            "libfcgi": cmd_output(["dpkg-query", "-W", "-f=${Version}", "libfcgi0ldbl"]),
            "git": cmd_output(["git", "-C", REPO, "describe", "--always", "--dirty"]),
        }


class Replay:
    """A finished run read back from its results.json, to render results.md
    and the chart again (bench/run --rewrite) after a change of wording,
    without measuring again."""

    def __init__(self, path):
        import calendar
        with open(path) as f:
            d = json.load(f)
        self.quick = d["mode"] == "quick"
        self.P = d["params"]
        self.rows = d["rows"]
        self.facts = d["facts"]
        self.notes = d["notes"]
        self.problems = d["problems"]
        self.pg_settings = d.get("pg_settings", [])
        self._machine = d["machine"]
        self.started = d.get("started") or calendar.timegm(
            time.strptime(d["date"].rsplit(" ", 1)[0], "%Y-%m-%d %H:%M:%S"))
        self.seconds = d["seconds"]
        self.args = argparse.Namespace(threads=d.get("threads", 4))
        self.server_cpu = d.get("server_cpu", 0)
        self.client_cpu = d.get("client_cpu", 1)
        self.pin_server = ["taskset"] if d.get("pinned", True) else []
        self.redone = {k: r["redone"] for k, r in self.rows.items() if r.get("redone")}
        self.ok = d["ok"]

    def machine(self):
        return self._machine

    def summarise(self):
        Bench.summarise(self)


def fmt_short(pct):
    """A shortfall in percent: one decimal below 1% ("missed by 0%" read
    as met)."""
    return "%.1f%%" % pct if pct < 1 else "%.0f%%" % pct


def fmt_rps(v):
    return "{:,.0f}".format(v)


def fmt_us(v):
    return "%.2f ms" % (v / 1000) if v >= 1000 else "%.0f µs" % v


def fmt_mib(v):
    return "%.1f MiB" % (v / 2**20)


def local_hits(m0, m1):
    """(hits, hits answered from the process's memory) between two
    metrics_of() snapshots of one instance."""
    hits = sum(v - m0.get(k, 0) for k, v in m1.items()
               if k.startswith("respcache_cache_requests_total{") and 'result="hit"' in k)
    local = m1.get("respcache_cache_local_hits_total", 0) - \
        m0.get("respcache_cache_local_hits_total", 0)
    return hits, local


def paired_ratio(rows, a, ref):
    """(median, min, max, rounds) of a's req/s over ref's, taken round by
    round (the two ran in the same round of interleaved(), back to back
    where the order puts them so); or the ratio of the medians, with
    rounds 0, when the runs carry no round (results.json of older runs, or
    rows measured apart); None when either is missing. Pairing cancels what
    drifts between rounds, which the ratio of two medians does not."""
    ra, rb = rows.get(a), rows.get(ref)
    if not ra or not rb or not ra.get("runs") or not rb.get("runs"):
        return None
    by_round = {x["round"]: x["rps"] for x in rb["runs"] if x.get("round") is not None}
    rs = [x["rps"] / by_round[x["round"]] for x in ra["runs"]
          if x.get("round") is not None and by_round.get(x["round"])]
    if rs:
        return statistics.median(rs), min(rs), max(rs), len(rs)
    x, y = ra.get("rps_med"), rb.get("rps_med")
    if not x or not y:
        return None
    return x / y, x / y, x / y, 0


def write_results(b, out, ok):
    P = b.P
    b.summarise()
    rows = b.rows
    mach = b.machine()
    os.makedirs(out, exist_ok=True)
    if getattr(b, "work", None):  # not when re-rendering (Replay): raw/ is there already
        rawdir = os.path.join(out, "raw")
        shutil.rmtree(rawdir, ignore_errors=True)
        shutil.copytree(os.path.join(b.work, "raw"), rawdir)
    data = {"mode": "quick" if b.quick else "full", "ok": ok, "problems": b.problems,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(b.started)),
            "started": b.started,
            "seconds": getattr(b, "seconds", None) or round(time.time() - b.started),
            "params": P, "machine": mach,
            "pg_settings": getattr(b, "pg_settings", []), "rows": rows, "facts": b.facts,
            "notes": b.notes, "threads": b.args.threads, "pinned": bool(b.pin_server),
            "server_cpu": b.server_cpu, "client_cpu": b.client_cpu}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(data, f, indent=1, default=str)

    def med(rid):
        r = rows.get(rid)
        return r.get("rps_med") if r and r.get("runs") else None

    def ratio(a, bb):
        v = paired_ratio(rows, a, bb)
        return None if v is None else v[0]

    def rcell(rid, ref):
        v = ratio(rid, ref)
        return "%.2f×" % v if v is not None else "–"

    L = []
    L.append("# respcache benchmark results%s" % ("" if not b.quick else " (quick mode: tiny data, "
                                                   "not for publication)"))
    L.append("")
    if not ok:
        L.append("**This run failed before the end; the numbers below are incomplete.** "
                 "Problems: %s" % "; ".join(b.problems))
        L.append("")
    L.append("Run %s, %d s in all, `bench/run%s` at `%s`." % (
        data["date"], data["seconds"], " --quick" if b.quick else "", mach["git"]))
    L.append("")
    L.append("Machine: %s CPUs, %s, %s RAM, Linux %s, %s. Versions: %s; %s; %s; wrk %s; libfcgi %s."
             % (mach["nproc"], mach["cpu"], mach["memory"], mach["kernel"], mach["os"],
                mach["nginx"], mach["postgres"], mach["respcache"],
                mach["wrk"].replace("wrk ", "").split(" Copyright")[0], mach["libfcgi"]))
    L.append("")
    pin = ("every server process (Nginx with 1 worker, respcache with 1 event loop and %d database "
           "workers, PostgreSQL, the no-op responder) on CPU %d with `taskset`, wrk (1 thread, %d "
           "connections, `--latency`) on CPU %d"
           % (b.args.threads, b.server_cpu, P["conns"], b.client_cpu)) if b.pin_server else \
        "NOT pinned (fewer than 2 CPUs)"
    hit_runs = P.get("hit_runs") or P["runs"]
    L.append("Setup: %s; loopback only. Each configuration ran %d time(s) for %g s%s; "
             "comparable configurations ran in turns, one run each per round, every other round "
             "in reverse order. Shown: median, [min–max] req/s, and the medians of wrk's p50 and "
             "p99. A ratio (×) is the median over the rounds of the two configurations' ratio "
             "within the round, so what drifts between rounds cancels out. Flags: *noisy* when "
             "(max−min)/median > %d%%, *steal* "
             "when the hypervisor took more than %d%% of a CPU, *disturbed* when processes not "
             "started by the benchmark used more than %d%% of a CPU during the run, "
             "*client-bound* when wrk's CPU was saturated and the servers' was not.%s "
             "PostgreSQL: %d demo users, `%s`."
             % (pin, P["runs"], P["duration"],
                (" after a %g s warm-up" % P["warmup"] if P["warmup"] else " (no warm-up)") +
                ("; the cache-hit configurations %d times for %g s" % (
                    hit_runs, P.get("hit_duration") or P["duration"])
                 if (hit_runs, P.get("hit_duration") or P["duration"]) != (P["runs"], P["duration"])
                 else "") +
                ("; the misses %d times" % P["miss_runs"]
                 if P.get("miss_runs") and P["miss_runs"] != P["runs"] else ""),
                SPREAD_FLAG * 100, STEAL_FLAG * 100, FOREIGN_FLAG * 100,
                (" A hit or scale run during which other processes used more than %d%% of a CPU "
                 "or the hypervisor took more than %d%% was done again, at most %d times; the "
                 "runs put aside are in `raw/` and `results.json`."
                 % (REDO_FOREIGN * 100, STEAL_FLAG * 100, P["redo"])) if P.get("redo") else "",
                P["users"],
                " ".join(s for s in b.pg_settings if s.split("=")[0] in
                         ("fsync", "synchronous_commit", "shared_buffers")) if hasattr(b, "pg_settings") else ""))
    L.append("")
    L.append("The machine is a shared virtual machine: other tenants' load shows up as noise "
             "between runs; compare ratios within one run, not absolute numbers across runs.")
    for n in b.notes:
        L.append("")
        L.append("Note: " + n)
    L.append("")

    def table(ids, refs):
        head = "| configuration | req/s | [min–max] | p50 | p99 | " + " | ".join(
            "× %s" % lbl for _, lbl in refs) + " | flags |"
        L.append(head)
        L.append("|" + "---|" * (6 + len(refs)))
        for rid in ids:
            r = rows.get(rid)
            if r is None:
                continue
            if r.get("skipped"):
                L.append("| %s | skipped: %s |%s" % (r["label"], r["skipped"], " |" * (5 + len(refs))))
                continue
            if not r.get("runs"):
                continue
            extra = ""
            if r.get("paced") and "conns" in r:  # results.json of runs before bench/pace
                extra = " (%d conns paced, %.0f%% of the memory hit peak)" % (
                    r["conns"], 100 * statistics.median(x["share_of_peak"] for x in r["runs"]))
            L.append("| %s%s | %s | %s–%s | %s | %s | %s | %s |" % (
                r["label"], extra, fmt_rps(r["rps_med"]), fmt_rps(r["rps_min"]), fmt_rps(r["rps_max"]),
                fmt_us(r["p50_med"]), fmt_us(r["p99_med"]),
                " | ".join("–" if rid == ref or r.get("paced") else rcell(rid, ref)
                           for ref, _ in refs),
                ", ".join(r.get("flags", [])) or ""))
        L.append("")

    L.append("## Cache hits (users 1..%s, `GET /api/users/{id}`, body %d bytes on average)"
             % ("{:,}".format(P["ws"]), b.facts.get("body_bytes", {}).get("mean", 0)))
    L.append("")
    hit_ids = ["noop", "static", "fcgicache", "memory_uniform", "memory_zipf",
               # REDIS: rows filled in by redis_hit_configs() when supported
               "redis_uniform", "redis_zipf", "tiered_uniform", "tiered_zipf",
               "memory_halfpeak", "noop_halfpeak"]
    if any(rows.get(rid, {}).get("rate") for rid in ("memory_halfpeak", "memory_halfpeak_poll")):
        hit_ids = hit_ids[:-2]  # bench/pace rows: a table of their own below
    table(hit_ids, [("noop", "no-op"), ("static", "static"), ("fcgicache", "fastcgi_cache")])
    L.append("The no-op responder answers every request with the same headers and a body of the "
             "mean size from memory: the least work any FastCGI app behind this Nginx can do "
             "(`bench/profile` counts its user-space instructions per request next to "
             "respcache's). The static files are the same bodies as files; fastcgi_cache is "
             "Nginx answering from its own cache (`bench/nginx/fcgicache.conf.in`; it cannot be "
             "invalidated by a write).")
    L.append("")
    lh = []
    for rid in hit_ids:
        runs = [x for x in rows.get(rid, {}).get("runs", []) if x.get("hits")]
        if runs:
            lh.append("%s %.1f%%" % (rows[rid]["label"], 100 * statistics.median(
                x["local_hits"] / x["hits"] for x in runs)))
    if lh:
        L.append("Hits answered from the process's own memory, without a round trip to Redis "
                 "(`respcache_cache_local_hits_total` over the hits, median of the runs): " +
                 "; ".join(lh) + ". Before each tiered run, one pass over the working set "
                 "(not measured) refills L1: an L1 entry lives at most `tiered_l1_ttl_max` "
                 "(10 s by default), less than a round, so the tiered rows measure L1 hits.")
        L.append("")
    st = b.facts.get("steady_tiered")
    if st and st.get("memory") and st.get("tiered"):
        m, t = st["memory"], st["tiered"]
        L.append("Under %g s of continuous load each (uniform over the same users), L1 entries "
                 "expire and are read again from Redis as they would in production: tiered "
                 "answered %.1f%% of its hits from L1 and ran at %s req/s, %.2f× memory's %s "
                 "(one run each, back to back: single runs here move by 20%% and more, so this "
                 "ratio is a sign, not a measure)." % (
                     st["duration"], 100 * t["local"] / t["hits"] if t["hits"] else 0,
                     fmt_rps(t["rps"]), t["rps"] / m["rps"] if m["rps"] else 0, fmt_rps(m["rps"])))
        L.append("")
    sw = [(rows[rid]["label"], rows[rid]["switches_med"]) for rid in hit_ids
          if rows.get(rid, {}).get("switches_med") is not None and not rows[rid].get("rate")]
    if sw:
        L.append("Context switches per request of every process the benchmark started (the "
                 "Nginx servers, the FastCGI apps, Redis and PostgreSQL, idle ones included), "
                 "median of the runs: " + "; ".join("%s %.2f" % kv for kv in sw) + ". "
                 "Least work is not always most throughput when Nginx and the app share one "
                 "CPU: the scheduler lets a woken task that has used less CPU preempt the one "
                 "running, so a lighter app takes the CPU from Nginx more often and each request "
                 "costs more switches. A ratio near or above 1.00× the no-op means the hit path "
                 "is at the ceiling.")
        L.append("")
    latency_table(L, rows, b.facts.get("halfpeak"), P)

    if med("memory_miss") or med("none"):
        L.append("## Misses and caching off (`GET /api/users/{id}`, each id once, in order)")
        L.append("")
        table(["memory_miss", "none"], [("none", "caching off")])
        for rid in ("memory_miss", "none"):
            r = rows.get(rid)
            if r and r.get("runs"):
                L.append("- %s: %s PostgreSQL user queries per request (pg_stat_statements)." % (
                    r["label"], "/".join(str(x["db_reads_per_request"]) for x in r["runs"])))
        L.append("- Misses run on a freshly started respcache each time (empty cache); caching off "
                 "is a second respcache instance with `CACHE_PROVIDER=none`, also started afresh "
                 "before each of its runs. The two alternate, one run each per round, and the "
                 "ratio is the median of the rounds' ratios.")
        L.append("")

    mx = b.facts.get("mixed")
    if mx:
        L.append("## 95/5 read/write mix (Zipf 0.99 over %s users; `PATCH /api/users/{id}` "
                 "invalidates `user:{id}`)" % "{:,}".format(P["users"]))
        L.append("")
        table(["mixed_memory", "mixed_none"], [("mixed_none", "caching off")])
        L.append("| | requests | user SELECTs | UPDATEs | all statements | statements per request "
                 "| PATCHes written through (stored / skipped) |")
        L.append("|---|---|---|---|---|---|---|")
        for rid, lbl in (("mixed_memory", "memory"), ("mixed_none", "caching off")):
            m = mx[rid]
            L.append("| %s | %s | %s | %s | %s | %.4f | %s |" % (
                lbl, fmt_rps(m["requests"]), fmt_rps(m["db_reads"]), fmt_rps(m["db_writes"]),
                fmt_rps(m["db_total"]), m["per_request"],
                "%s / %s" % (fmt_rps(m.get("wt_stored", 0)), fmt_rps(m.get("wt_skipped", 0)))
                if rid == "mixed_memory" else "–"))
        L.append("")
        L.append("Database statements per request fall by **%.2f%%** with the cache (reads alone: "
                 "%.2f%%), counted by PostgreSQL (`pg_stat_statements`, reset before each run; "
                 "%s). Every write is one "
                 "UPDATE with or without a cache, so the total can fall by %.2f%% at most in "
                 "this run (the UPDATEs' share of the requests; the writes are drawn at random, "
                 "so the share moves a little between runs). Besides those, the statements "
                 "counted include the two instances' health checks (`SELECT 1`, about one a "
                 "second each). The PATCH route writes "
                 "through: its answer becomes the user's entry, so the next read of a written "
                 "user is a hit; a PATCH that raced another change of the same user stores "
                 "nothing (skipped), and that user's next read is a miss. The caching-off "
                 "instance's sessions send their trigger notifications to a channel nobody "
                 "listens on, so its writes do not invalidate the memory instance's cache "
                 "between runs."
                 % (100 * mx["reduction_total"], 100 * mx["reduction_reads"],
                    ("the memory runs start with every user cached%s" % (
                        " and after a %g s warm-up of the same load" % P["mixed_warmup"]
                        if P["mixed_warmup"] else "")) if P["mixed_prewarm"] else
                    ("the memory runs follow a %g s warm-up of the same load" % P["mixed_warmup"]
                     if P["mixed_warmup"] else "no warm-up: the cache starts empty"),
                    100 * mx.get("reduction_bound", 0.95)))
        L.append("")

    bu = b.facts.get("burst")
    if bu:
        L.append("## %d concurrent requests on one cold key" % bu["requests"])
        L.append("")
        for r in bu["runs"]:
            L.append("- `%s` on a freshly started respcache: **%d** PostgreSQL quer%s; X-Cache %s; "
                     "all answered in %.1f ms." % (r["path"], r["queries"],
                                                   "y" if r["queries"] == 1 else "ies", ", ".join(
                         "%s×%d" % (k, v) for k, v in sorted(r["x_cache"].items(), key=str)),
                         r["seconds"] * 1000))
        if bu["queries_median"] > 1:
            L.append("- More than one query: requests that found no entry each ran their own "
                     "(no single-flight in this build, or it did not cover them).")
        else:
            L.append("- One query: the concurrent misses on the key waited for the first one's "
                     "result (single-flight) instead of each asking PostgreSQL.")
        L.append("")

    sc = b.facts.get("scale")
    if sc:
        L.append("## Scale")
        L.append("")
        table(["scale_small", "scale_big"], [("scale_small", "%s entries" % "{:,}".format(
            sc["fill_small"]["entries"]))])
        L.append("- Entries are `GET /api/bench/items/{block}/{id}` (`bench/routes.json`: a "
                 "user-like row computed by PostgreSQL without a table, tags `item:{block}:{id}` "
                 "and `block:{block}`). Hits are uniform over every cached entry.")
        L.append("- Filling %s entries took %.0f s (%s misses/s, all servers on one CPU); RSS "
                 "went from %s to %s, %.0f bytes per entry (budget %s, no eviction; "
                 "`CACHE_TAG_SLOTS=%s`, since every entry has a tag of its own)."
                 % ("{:,}".format(sc["fill_big"]["entries"]), sc["fill_big"]["seconds"],
                    fmt_rps(sc["fill_big"]["rate"]), fmt_mib(sc["rss_before_fill"]),
                    fmt_mib(sc["rss_after_fill"]), sc["rss_per_entry"], fmt_mib(sc["budget"]),
                    "{:,}".format(sc.get("tag_slots", 0))))
        st = sc.get("stats_big") or {}
        if st.get("bytes") is not None:
            L.append("- `/cache/stats` after the fill: %s entries, %s bytes counted against the "
                     "budget (%.0f per entry), %s evictions." % (
                         "{:,}".format(st["keys"]), "{:,}".format(st["bytes"]),
                         st["bytes"] / max(1, st["keys"]), "{:,}".format(st.get("evictions", 0))))
        L.append("")

    bp = b.facts.get("bump")
    if bp:
        L.append("## One tag bump")
        L.append("")
        L.append("Each entry above also carries the tag `block:{block}`, so one bump of "
                 "`block:N` invalidates the %s entries of that block. Timed end to end through "
                 "Nginx on a kept-alive connection from this script (median of %d for the "
                 "baselines):" % ("{:,}".format(bp["covers"]), bp["n"]))
        L.append("")
        L.append("| how | tag covering %s entries | covering 1 | covering none |"
                 % "{:,}".format(bp["covers"]))
        L.append("|---|---|---|---|")
        if bp.get("admin"):
            L.append("| `DELETE /cache/tags/{tag}` (admin; the bump alone) | %s | %.3f ms | %.3f ms |" % (
                ", ".join("%.3f ms" % (r["seconds"] * 1000) for r in bp["runs"] if r["how"] == "admin"),
                bp["admin_1_ms"], bp["admin_0_ms"]))
        L.append("| write route (`POST /api/bench/blocks/{b}/bump`: `SELECT $1`, then the bump) | "
                 "%s | %.3f ms | %.3f ms |" % (
                     ", ".join("%.3f ms" % (r["seconds"] * 1000) for r in bp["runs"] if r["how"] == "write"),
                     bp["write_1_ms"], bp["write_0_ms"]))
        L.append("")
        L.append("After each bump, %s." % "; ".join(
            "%s sampled entries of block:%d answered MISS and %s of block 1 still HIT"
            % (r["sampled_miss"], r["block"], r["other_block_hit"]) for r in bp["runs"]))
        L.append("")

    rs = b.facts.get("rss")
    if rs:
        L.append("## Memory against the byte budget")
        L.append("")
        st = rs.get("stats") or {}
        L.append("- `CACHE_MEMORY_MAX_BYTES=%d` (%s): after asking for %s distinct entries (about "
                 "%d× what fits) and %g s of uniform load over them (%s req/s, hits and misses "
                 "with eviction), RSS is **%s**; it was %s just after start (peak %s). The cache "
                 "grew the process by **%s = %.2f× the budget**; the whole process is %.2f× the "
                 "budget.%s"
                 % (rs["budget"], fmt_mib(rs["budget"]), "{:,}".format(rs["keys"]),
                    P["rss_fill_factor"], P["duration"], fmt_rps(rs["steady_rps"]),
                    fmt_mib(rs["rss_steady"]), fmt_mib(rs["rss_start"]), fmt_mib(rs["rss_peak"]),
                    fmt_mib(rs["rss_steady"] - rs["rss_start"]), rs["growth_ratio"], rs["ratio"],
                    (" `/cache/stats` then counts %s bytes in %s entries, %s evictions." % (
                        "{:,}".format(st["bytes"]), "{:,}".format(st["keys"]),
                        "{:,}".format(st["evictions"]))) if st.get("bytes") is not None else ""))
        L.append("")

    L.append("## Targets (issue 9)")
    L.append("")
    L.append("| target | measured | verdict |")
    L.append("|---|---|---|")
    verdicts = targets(b)
    for t, m, v in verdicts:
        L.append("| %s | %s | %s |" % (t, m, v))
    L.append("")
    L.append("![chart](chart.png)")
    L.append("")
    L.append("Raw wrk output of every run: `raw/` (and what moved in respcache's /metrics during "
             "each mixed run: `raw/metrics-*.txt`); everything above as JSON: `results.json`.")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    chart(b, out)
    return verdicts


def targets(b):
    rows, f = b.rows, b.facts
    out = []

    def ratio_target(name, a, ref, want):
        pr = paired_ratio(rows, a, ref)
        if pr is None:
            out.append((name, "not measured", "skipped"))
            return
        v, lo, hi, n = pr
        what = "%.2f×" % v
        if n > 1:
            what += " (median of %d rounds, %.2f–%.2f)" % (n, lo, hi)
        out.append((name, what, "met" if v >= want else "**missed** by %s"
                    % fmt_short(100 * (want - v) / want)))

    ratio_target("memory hit ≥ 0.9× no-op", "memory_uniform", "noop", 0.9)
    hp = rows.get("memory_halfpeak")
    if hp and hp.get("rate"):
        out.append(halfpeak_target(rows))
    elif hp and hp.get("runs"):
        p99 = hp["p99_med"]
        nh = rows.get("noop_halfpeak")
        ref = (" (no-op responder at the same pace: %s)" % fmt_us(nh["p99_med"])) \
            if nh and nh.get("runs") else ""
        out.append(("hit p99 ≤ 1 ms at half of peak", "%s at %.0f%% of peak%s" % (
            fmt_us(p99), 100 * statistics.median(x["share_of_peak"] for x in hp["runs"]), ref),
            "met" if p99 <= 1000 else "**missed** (%.1f×)" % (p99 / 1000)))
    else:
        out.append(("hit p99 ≤ 1 ms at half of peak", "not measured (quick)", "skipped"))
    ratio_target("tiered hit ≥ 0.95× memory hit", "tiered_uniform", "memory_uniform", 0.95)
    st = f.get("steady_tiered")
    if out[-1][2] != "skipped":
        out[-1] = (out[-1][0], out[-1][1] + "; L1 refilled before each run" + (
            " (under %g s of continuous load, %.1f%% of its hits came from L1)" % (
                st["duration"], 100 * st["tiered"]["local"] / st["tiered"]["hits"])
            if st and st.get("tiered") and st["tiered"].get("hits") else ""), out[-1][2])
    ratio_target("redis hit ≥ 0.6× memory hit", "redis_uniform", "memory_uniform", 0.6)
    ratio_target("miss ≥ 0.9× caching off", "memory_miss", "none", 0.9)
    mx = f.get("mixed")
    if mx:
        v = mx["reduction_total"]
        out.append(("≥ 95% fewer database queries (mixed run)",
                    "%.2f%% fewer (reads: %.2f%%; the UPDATEs alone allow %.2f%%)"
                    % (100 * v, 100 * mx["reduction_reads"], 100 * mx.get("reduction_bound", 0.95)),
                    "met" if v >= 0.95 else "**missed** by %.2f points" % (100 * (0.95 - v))))
    bu = f.get("burst")
    if bu:
        q = bu["queries_median"]
        out.append(("1 query for the cold-key burst", "%g quer%s for %d requests" % (
            q, "y" if q == 1 else "ies", bu["requests"]),
                    "met" if q <= 1 else "**missed** (no single-flight yet)"))
    ratio_target("hit at 1M entries within 10% of 1k", "scale_big", "scale_small", 0.9)
    bp = f.get("bump")
    if bp:
        how = "admin" if bp.get("admin") else "write"
        v = bp[how + "_block_ms"]
        out.append(("one tag bump < 1 ms whatever it covers", "%.3f ms end to end for %s entries "
                    "(%.3f ms for 1; %s)" % (v, "{:,}".format(bp["covers"]), bp[how + "_1_ms"],
                                             "`DELETE /cache/tags`" if how == "admin" else
                                             "through a write route"),
                    "met" if v < 1 else "**missed** (%.1f×)" % v))
    rs = f.get("rss")
    if rs:
        v = rs["growth_ratio"]
        out.append(("RSS within 10% of the byte budget", "cache growth %.2f× the budget "
                    "(whole process %.2f×: %s for %s)" % (
                        v, rs["ratio"], fmt_mib(rs["rss_steady"]), fmt_mib(rs["budget"])),
                    "met" if v <= 1.1 else "**missed** by %s" % fmt_short(100 * (v - 1.1))))
    return out


def chart(b, out):
    """chart.png: median req/s with [min, max] of every throughput row."""
    ids = [r for r in ["noop", "static", "fcgicache", "memory_uniform", "memory_zipf",
                       "redis_uniform", "redis_zipf", "tiered_uniform", "tiered_zipf",
                       "memory_miss", "none", "mixed_memory", "mixed_none",
                       "scale_small", "scale_big"]
           if b.rows.get(r, {}).get("runs")]
    if not ids or not shutil.which("gnuplot"):
        warn("no chart: %s" % ("gnuplot missing" if ids else "nothing measured"))
        return
    short = {"noop": "no-op FastCGI", "static": "Nginx static", "fcgicache": "Nginx fastcgi\\_cache",
             "memory_uniform": "memory hit", "memory_zipf": "memory hit Zipf",
             "redis_uniform": "redis hit", "redis_zipf": "redis hit Zipf",
             "tiered_uniform": "tiered hit", "tiered_zipf": "tiered hit Zipf",
             "memory_miss": "memory miss", "none": "caching off", "mixed_memory": "95/5 memory",
             "mixed_none": "95/5 caching off", "scale_small": "hit, 1k entries",
             "scale_big": "hit, %s entries" % ("1M" if b.P["scale_block"] * b.P["scale_blocks"] == 10**6
                                               else "{:,}".format(b.P["scale_block"] * b.P["scale_blocks"]))}
    dat = os.path.join(out, "chart.dat")
    with open(dat, "w") as f:
        f.write("# index label median min max\n")
        for i, rid in enumerate(ids):
            r = b.rows[rid]
            f.write('%d "%s" %.0f %.0f %.0f\n' % (i, short[rid], r["rps_med"], r["rps_min"], r["rps_max"]))
    gp = os.path.join(out, "chart.gp")
    with open(gp, "w") as f:
        f.write("""set terminal pngcairo size 1100,560 font "DejaVu Sans,10"
set output '%s'
set title "respcache benchmark (%s): requests per second, median and min-max of the runs"
set style fill solid 0.6 border -1
set grid ytics
set yrange [0:*]
set xrange [-0.6:*]
set ylabel "req/s"
set xtics rotate by -35 nomirror
set bmargin 7
set rmargin 11
set key off
plot '%s' using 1:3:4:5:(0.35):xticlabels(2) with boxerrorbars lc rgb "#4477aa", \\
     '' using 1:3:(sprintf("%%.0f", $3)) with labels offset 0,0.8 font ",8"
""" % (os.path.join(out, "chart.png"), "quick, not for publication" if b.quick else
            time.strftime("%Y-%m-%d", time.localtime(b.started)), dat))
    r = subprocess.run(["gnuplot", gp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise Fail("gnuplot failed:\n" + r.stdout.decode("utf-8", "replace"))


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description="respcache benchmarks (use bench/run)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--respcache")
    ap.add_argument("--noop")
    ap.add_argument("--pace")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rewrite", action="store_true",
                    help="render OUT/results.md and the chart again from OUT/results.json")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--users", type=int)
    ap.add_argument("--runs", type=int)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--sections", default="hits,misses,mixed,burst,scale,rss")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if args.rewrite:
        r = Replay(os.path.join(args.out, "results.json"))
        write_results(r, args.out, r.ok)
        say("rewrote %s/results.md and chart.png" % args.out)
        return 0
    if not args.respcache or not args.noop or not args.pace:
        ap.error("--respcache, --noop and --pace are required")

    def on_signal(signum, frame):
        raise Interrupted("signal %d" % signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    b = Bench(args)
    ok = False
    err = None
    try:
        b.setup()
        for s in args.sections.split(","):
            getattr(b, "section_" + s.strip())()
        ok = True
    except Interrupted as e:
        err = "interrupted (%s)" % e
    except Fail as e:
        err = str(e)
    except Exception as e:  # a bug here: still stop everything
        import traceback
        err = "".join(traceback.format_exception(e))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        b.stop_all()
    if err:
        b.problems.insert(0, err)
    if b.problems:
        ok = False
        for p in b.problems:
            warn(p)
    out = args.out if ok else os.path.join(b.work, "results")
    try:
        verdicts = write_results(b, out, ok)
    except Exception as e:
        import traceback
        warn("writing the results failed: %s" % "".join(traceback.format_exception(e)))
        ok = False
        verdicts = []
    if ok:
        say("results: %s/results.md, chart.png, results.json, raw/" % out)
        for t, m, v in verdicts:
            say("  %-45s %-45s %s" % (t, m, v.replace("*", "")))
        if not args.keep:
            shutil.rmtree(b.work, ignore_errors=True)
    else:
        warn("FAILED; partial results and logs kept in %s" % b.work)
        for name in sorted(os.listdir(os.path.join(b.work, "logs"))):
            p = os.path.join(b.work, "logs", name)
            if os.path.getsize(p):
                sys.stderr.write("--- %s (tail)\n%s\n" % (name, tail(p, 1500)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
