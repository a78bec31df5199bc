#!/usr/bin/env python3
"""Network benchmarks: fastloop vs asyncio vs uvloop, in one run.

Each run starts a fresh server process (bench/netlib/server.py) on the loop
under test, drives it with a small C load generator (bench/netlib/loadgen.c,
compiled with `cc -O2` into a temporary directory at start-up) or with wrk
for the *_wrk HTTP cases, and records the requests per second of a timed
window that follows an untimed warm-up, and the server's CPU time per
request in that window.  As in micro.py, the repeats alternate the loops
(micro.run_order: rotations, then reversed), a cell is the median over the
repeats, and fl/x > 1.00x means fastloop served more requests per second
(or needed less CPU per request) than x.  By default the server and the load
generator share one CPU (--pin), which gave the steadiest ratios on the
2-vCPU VMs here.

    python bench/net.py                        # every case, 5 repeats of 2 s
    python bench/net.py --quick                # 3 repeats of 0.5 s
    python bench/net.py --cases tcp_proto_1K_c10,http_raw_c100 --repeat 9
    python bench/net.py --aa                   # add a second fastloop entry
    python bench/net.py --pin 0,1              # server on CPU 0, client on 1
    python bench/net.py --syscalls strace --cases tcp_proto_1K_c10
    python bench/net.py --json bench/results/net-$(date +%F).json

See bench/README.md ("Network benchmarks") for the method.
"""
import argparse
import os
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NETLIB = os.path.join(HERE, "netlib")
sys.path.insert(0, HERE)

import micro  # noqa: E402  (loop factories, table helpers, machine info)

perf_counter = time.perf_counter
TICK = 1.0 / os.sysconf("SC_CLK_TCK")

KIB = 1024


class NetCase:
    """One benchmark: a server, a transport, and the load put on it."""

    def __init__(self, name, server, mode, conns, size, doc, depth=1,
                 family="tcp", client="loadgen", unit="requests"):
        self.name = name
        self.server = server      # netlib/server.py --server
        self.mode = mode          # loadgen --mode (echo, connect, http)
        self.conns = conns
        self.size = size          # message size (echo, connect)
        self.depth = depth        # requests in flight per connection
        self.family = family      # tcp or unix
        self.client = client      # loadgen or wrk
        self.unit = unit
        self.doc = doc


def _echo(name, server, size, conns, doc, **kw):
    return NetCase(name, server, "echo", conns, size, doc, unit="round trips", **kw)


CASES = [
    _echo("tcp_proto_64B_c10", "proto", 64, 10,
          "Protocol echo, 64 B ping-pong, 10 connections"),
    _echo("tcp_proto_64B_c100", "proto", 64, 100,
          "Protocol echo, 64 B ping-pong, 100 connections"),
    _echo("tcp_proto_1K_c10", "proto", KIB, 10,
          "Protocol echo, 1 KiB ping-pong, 10 connections"),
    _echo("tcp_proto_1K_c100", "proto", KIB, 100,
          "Protocol echo, 1 KiB ping-pong, 100 connections"),
    _echo("tcp_proto_64K_c10", "proto", 64 * KIB, 10,
          "Protocol echo, 64 KiB ping-pong, 10 connections"),
    _echo("tcp_proto_64K_c100", "proto", 64 * KIB, 100,
          "Protocol echo, 64 KiB ping-pong, 100 connections"),
    _echo("tcp_proto_64B_c10_p16", "proto", 64, 10,
          "Protocol echo, 64 B, 16 pipelined per connection, 10 connections",
          depth=16),
    _echo("tcp_buffered_1K_c10", "buffered", KIB, 10,
          "BufferedProtocol echo, 1 KiB ping-pong, 10 connections"),
    _echo("tcp_buffered_64K_c10", "buffered", 64 * KIB, 10,
          "BufferedProtocol echo, 64 KiB ping-pong, 10 connections"),
    _echo("tcp_streams_1K_c10", "streams", KIB, 10,
          "StreamReader/StreamWriter echo (read, write, drain), 1 KiB, 10 conns"),
    _echo("tcp_streams_64K_c10", "streams", 64 * KIB, 10,
          "StreamReader/StreamWriter echo (read, write, drain), 64 KiB, 10 conns"),
    _echo("tcp_sock_1K_c10", "sock", KIB, 10,
          "loop.sock_recv/sock_sendall echo, a task per client, 1 KiB, 10 conns"),
    _echo("unix_proto_1K_c10", "proto", KIB, 10,
          "Protocol echo over a Unix socket, 1 KiB ping-pong, 10 connections",
          family="unix"),
    _echo("unix_proto_64K_c10", "proto", 64 * KIB, 10,
          "Protocol echo over a Unix socket, 64 KiB ping-pong, 10 connections",
          family="unix"),
    NetCase("tcp_connect_c10", "proto", "connect", 10, 64,
            "connection rate: connect, send 64 B, read the echo, close; 10 at a time",
            unit="connections"),
    NetCase("http_raw_c100", "http", "http", 100, 0,
            "HTTP/1.1 keep-alive on a raw Protocol, fixed response, 100 conns"),
    NetCase("http_raw_split_c100", "http_split", "http", 100, 0,
            "http_raw_c100 with each response written in two write() calls "
            "(header, body)"),
    _echo("tcp_afn_proto_1K_c10", "afn_proto", KIB, 10,
          "tcp_proto_1K_c10 through aiofastnet.create_server (its transports "
          "over add_reader/add_writer)"),
    NetCase("http_afn_raw_c100", "afn_http", "http", 100, 0,
            "http_raw_c100 through aiofastnet.create_server"),
    NetCase("http_aiohttp_c100", "aiohttp", "http", 100, 0,
            "aiohttp.web hello world (AppRunner/SockSite), keep-alive, 100 conns"),
    NetCase("http_uvicorn_c100", "uvicorn", "http", 100, 0,
            "uvicorn (httptools) serving an ASGI hello world, keep-alive, 100 conns"),
    NetCase("http_raw_c100_wrk", "http", "http", 100, 0,
            "http_raw_c100 driven by wrk -t1 (skipped without wrk)", client="wrk"),
    NetCase("http_aiohttp_c100_wrk", "aiohttp", "http", 100, 0,
            "http_aiohttp_c100 driven by wrk -t1 (skipped without wrk)", client="wrk"),
    NetCase("http_uvicorn_c100_wrk", "uvicorn", "http", 100, 0,
            "http_uvicorn_c100 driven by wrk -t1 (skipped without wrk)", client="wrk"),
]

# Issue #3's echo matrix: every server (Protocol, BufferedProtocol, streams,
# sock_*) at 1, 10 and 100 KiB and 10 and 100 connections.  The rows the
# list above already has are reused; `--cases matrix` selects the 24.
MATRIX_SERVERS = (
    ("proto", "Protocol echo"),
    ("buffered", "BufferedProtocol echo"),
    ("streams", "StreamReader/StreamWriter echo (read, write, drain)"),
    ("sock", "loop.sock_recv/sock_sendall echo, a task per client"),
)
MATRIX_SIZES = (("1K", KIB), ("10K", 10 * KIB), ("100K", 100 * KIB))
MATRIX_CONNS = (10, 100)


def _matrix():
    known = {c.name: c for c in CASES}
    out = []
    for server, what in MATRIX_SERVERS:
        for label, size in MATRIX_SIZES:
            for conns in MATRIX_CONNS:
                name = "tcp_%s_%s_c%d" % (server, label, conns)
                if name not in known:
                    known[name] = _echo(name, server, size, conns,
                                        "%s, %s ping-pong, %d connections"
                                        % (what, label.replace("K", " KiB"), conns))
                    CASES.append(known[name])
                out.append(known[name])
    return out


MATRIX = _matrix()
CASE_GROUPS = {"matrix": MATRIX}
CASES_BY_NAME = {c.name: c for c in CASES}

DEFAULT_REPEAT, DEFAULT_DURATION, DEFAULT_WARMUP = 5, 2.0, 0.5
QUICK_REPEAT, QUICK_DURATION, QUICK_WARMUP = 3, 0.5, 0.2


# --loops entry for the plain-C epoll echo server (bench/netlib/echo_epoll.c):
# the ceiling of the Protocol echo cases, run like a loop.
C_EPOLL = "c-epoll"


class RunError(Exception):
    """A run failed: the server did not start, errors under load, ..."""


# ---------------------------------------------------------------------------
# Counters from /proc.
# ---------------------------------------------------------------------------


def proc_sample(pid):
    """CPU time and page faults of a process (all its threads)."""
    cpu_ns = run_delay_ns = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                fields = f.read().split()
            cpu_ns += int(fields[0])
            run_delay_ns += int(fields[1])
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (OSError, IndexError, ValueError):
        return None
    # The command name may contain spaces: split after its closing ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return {
        "cpu_s": cpu_ns * 1e-9,
        "run_delay_s": run_delay_ns * 1e-9,
        "user_s": int(fields[11]) * TICK,
        "sys_s": int(fields[12]) * TICK,
        "minflt": int(fields[7]),
    }


def steal_sample():
    """{'all': s, 'cpu0': s, ...}: seconds stolen by the host (/proc/stat)."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu"):
                    break
                fields = line.split()
                name = "all" if fields[0] == "cpu" else fields[0]
                out[name] = int(fields[8]) * TICK
    except (OSError, IndexError, ValueError):
        pass
    return out


def delta(a, b):
    if a is None or b is None:
        return None
    return {k: b[k] - a[k] for k in a if k in b}


# ---------------------------------------------------------------------------
# Processes.
# ---------------------------------------------------------------------------


def _affinity(cpus):
    if cpus is None:
        return None

    def pin():
        os.sched_setaffinity(0, cpus)
    return pin


def read_line(proc, timeout, what):
    """Next stdout line of proc (bytes pipe), or RunError after timeout."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    buf = getattr(proc, "_linebuf", b"")
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RunError("no %s within %.0f s" % (what, timeout))
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            proc._linebuf = buf
            raise RunError("%s: process exited (status %s)" % (what, proc.poll()))
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    proc._linebuf = rest
    return line.decode("utf-8", "replace")


def tail(path, n=600):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    return data[-n:].decode("utf-8", "replace").strip()


def stop_process(proc, sig=signal.SIGTERM, timeout=10.0):
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Runner:
    """Everything one run needs: tools, temp dir, pinning, timings."""

    def __init__(self, args, tmpdir, loadgen, wrk, echo_epoll=None):
        self.args = args
        self.tmpdir = tmpdir
        self.loadgen = loadgen
        self.echo_epoll = echo_epoll
        self.wrk = wrk
        self.server_cpus, self.client_cpus = args.server_cpus, args.client_cpus
        self.nrun = 0

    def start_server(self, kind, case):
        self.nrun += 1
        if case.family == "unix":
            path = os.path.join(self.tmpdir, "s%d.sock" % self.nrun)
            listen = "unix:" + path
        else:
            listen = "tcp:127.0.0.1:0"
        errpath = os.path.join(self.tmpdir, "server%d.err" % self.nrun)
        if kind == C_EPOLL:
            cmd = [self.echo_epoll, "--listen", listen]
        else:
            cmd = [sys.executable, os.path.join(NETLIB, "server.py"),
                   "--loop", kind, "--server", case.server, "--listen", listen]
        if self.args.server_prefix:
            out = os.path.join(self.args.attach_dir, "%s-%s-%d" % (case.name, kind, self.nrun))
            cmd = shlex.split(self.args.server_prefix.format(
                loop=kind, case=case.name, out=out)) + cmd
        if self.args.no_gc and kind != C_EPOLL:
            cmd.append("--no-gc")
        if self.args.server_args and kind != C_EPOLL:
            cmd += shlex.split(self.args.server_args)
        env = dict(os.environ)
        # One string-hash seed for every server (unless the caller set one):
        # a random seed per process gives every server process its own dict
        # and set layouts, one more source of run-to-run variation; with a
        # fixed seed the loops run on the same layouts. (The larger source of
        # A/A noise in the aiohttp cases is the cyclic GC: see --no-gc.)
        env.setdefault("PYTHONHASHSEED", "0")
        if self.args.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(
                [self.args.pythonpath] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        with open(errpath, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                    stdin=subprocess.DEVNULL, env=env,
                                    preexec_fn=_affinity(self.server_cpus))
        proc.errpath = errpath
        try:
            line = read_line(proc, self.args.timeout, "READY line from the server")
        except RunError as exc:
            stop_process(proc, signal.SIGKILL)
            raise RunError("%s; server stderr: %s" % (exc, tail(errpath)))
        if not line.startswith("READY "):
            stop_process(proc, signal.SIGKILL)
            raise RunError("server said %r; stderr: %s" % (line, tail(errpath)))
        proc.addr = line.split(" ", 1)[1]
        return proc

    def check_server(self, proc):
        """Stop the server; RunError if its loop reported errors."""
        stop_process(proc)
        rest = getattr(proc, "_linebuf", b"") + proc.stdout.read()
        proc.stdout.close()
        m = re.search(rb"STATS errors=(\d+)", rest)
        if m is None:
            raise RunError("server did not stop cleanly (status %s); stderr: %s"
                           % (proc.returncode, tail(proc.errpath)))
        if int(m.group(1)):
            raise RunError("the server's loop reported %s errors: %s"
                           % (m.group(1).decode(), tail(proc.errpath)))

    def attach(self, kind, case, pid):
        """The --attach/--syscalls tool, started on the server before the load."""
        spec = self.args.attach_cmd
        if not spec:
            return None
        out = os.path.join(self.args.attach_dir, "%s-%s-%d" % (case.name, kind, self.nrun))
        cmd = spec.format(pid=pid, loop=kind, case=case.name, out=out)
        errpath = os.path.join(self.tmpdir, "attach%d.err" % self.nrun)
        with open(errpath, "wb") as err:
            proc = subprocess.Popen(cmd, shell=True, stdout=err, stderr=err,
                                    start_new_session=True)
        proc.out = out
        time.sleep(self.args.attach_delay)  # let it attach
        return proc

    def detach(self, proc):
        if proc is None:
            return None
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except OSError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return proc.out

    def run(self, kind, case):
        """One run: fresh server, load, counters.  Returns a sample dict.

        An --attach tool is started before the load and stopped after it,
        so it sees every request: its counts are divided by
        requests_total (warm-up included)."""
        if case.client == "wrk":
            return self._run_wrk(kind, case)
        server = self.start_server(kind, case)
        attached = None
        try:
            attached = self.attach(kind, case, server.pid)
            cmd = [self.loadgen,
                   "--unix" if case.family == "unix" else "--tcp", server.addr,
                   "--mode", case.mode, "-c", str(case.conns),
                   "-p", str(case.depth), "-w", str(self.args.warmup),
                   "-t", str(self.args.duration)]
            if case.size:
                cmd += ["-s", str(case.size)]
            errpath = os.path.join(self.tmpdir, "client%d.err" % self.nrun)
            with open(errpath, "wb") as err:
                client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                          stdin=subprocess.DEVNULL,
                                          preexec_fn=_affinity(self.client_cpus))
            try:
                timeout = self.args.warmup + self.args.timeout
                line = read_line(client, timeout, "START line from loadgen")
                if line != "START":
                    raise RunError("loadgen said %r" % line)
                s0, st0 = proc_sample(server.pid), steal_sample()
                line = read_line(client, self.args.duration + self.args.timeout,
                                 "RESULT line from loadgen")
                s1, st1 = proc_sample(server.pid), steal_sample()
                client.wait(self.args.timeout)
                attach_out = self.detach(attached)
                attached = None
            except (RunError, subprocess.TimeoutExpired) as exc:
                raise RunError("%s; loadgen stderr: %s; server stderr: %s"
                               % (exc, tail(errpath), tail(server.errpath)))
            finally:
                stop_process(client, signal.SIGKILL)
                client.stdout.close()
            res = dict(kv.split("=", 1) for kv in line.split()[1:])
            if client.returncode != 0 or int(res.get("errors", 1)):
                raise RunError("loadgen failed (status %s): %s; server stderr: %s"
                               % (client.returncode, tail(errpath), tail(server.errpath)))
            sample = {
                "requests": int(res["requests"]),
                "requests_total": int(res.get("total_requests", res["requests"])),
                "seconds": float(res["seconds"]),
                "rps": float(res["rps"]),
                "mibps": float(res["mibps"]),
                "client_cpu_s": float(res["user_s"]) + float(res["sys_s"]),
            }
        except BaseException:
            self.detach(attached)
            stop_process(server, signal.SIGKILL)
            raise
        self.check_server(server)
        return self._complete(sample, s0, s1, st0, st1, attach_out)

    def _run_wrk(self, kind, case):
        server = self.start_server(kind, case)
        attached = None
        try:
            url = "http://%s/" % server.addr
            base = [self.wrk, "-t1", "-c%d" % case.conns, "--timeout", "10s"]
            pin = _affinity(self.client_cpus)
            warm = max(1, round(self.args.warmup)) if self.args.warmup > 0 else 0
            dur = max(1, round(self.args.duration))
            attached = self.attach(kind, case, server.pid)
            warm_requests = 0
            if warm:
                r = subprocess.run(base + ["-d%ds" % warm, url], capture_output=True,
                                   preexec_fn=pin, timeout=warm + self.args.timeout)
                m = re.search(rb"(\d+) requests in", r.stdout)
                warm_requests = int(m.group(1)) if m else 0
            s0, st0 = proc_sample(server.pid), steal_sample()
            proc = subprocess.Popen(base + ["-d%ds" % dur, url], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, preexec_fn=pin)
            out = proc.stdout.read()
            # wait4: the client's CPU time comes with its exit status.
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            proc.stdout.close()
            s1, st1 = proc_sample(server.pid), steal_sample()
            attach_out = self.detach(attached)
            attached = None
        except BaseException:
            self.detach(attached)
            stop_process(server, signal.SIGKILL)
            raise
        self.check_server(server)
        text = out.decode("utf-8", "replace")
        m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", text)
        if proc.returncode != 0 or m is None:
            raise RunError("wrk failed (status %s): %s" % (proc.returncode, text[-400:]))
        if "Non-2xx" in text or "Socket errors" in text:
            raise RunError("wrk saw errors: %s" % text[-400:])
        secs = float(m.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
        size = float(m.group(4)) * {"B": 1, "KB": KIB, "MB": KIB ** 2, "GB": KIB ** 3}[m.group(5)]
        sample = {
            "requests": int(m.group(1)),
            "requests_total": int(m.group(1)) + warm_requests,
            "seconds": secs,
            "rps": int(m.group(1)) / secs,
            "mibps": size / secs / KIB ** 2,
            "client_cpu_s": ru.ru_utime + ru.ru_stime,
        }
        return self._complete(sample, s0, s1, st0, st1, attach_out)

    def _complete(self, sample, s0, s1, st0, st1, attach_out):
        info = _core_info()
        sample["core_mtime"] = info and info["mtime"]
        d = delta(s0, s1)
        if d is None:
            raise RunError("could not read the server's /proc counters")
        req = max(1, sample["requests"])
        sample.update({
            "server_cpu_s": d["cpu_s"],
            "server_user_s": d["user_s"],
            "server_sys_s": d["sys_s"],
            "server_run_delay_s": d["run_delay_s"],
            "server_minflt": d["minflt"],
            "server_us_per_req": d["cpu_s"] / req * 1e6,
            "client_us_per_req": sample["client_cpu_s"] / req * 1e6,
            "steal_s": delta(st0, st1) or {},
        })
        if attach_out is not None:
            sample["attach_out"] = attach_out
        return sample


# ---------------------------------------------------------------------------
# Running and summarizing.
# ---------------------------------------------------------------------------


def run_case(runner, case, labels, repeat, log):
    """Returns {label: {"samples": [dict, ...]} or {"error": str}}."""
    # The plain-C server only echoes: it has no row in the other cases.
    labels = [lb for lb in labels if lb != C_EPOLL or case.server == "proto"]
    res = {label: {"samples": []} for label in labels}
    for r in range(repeat):
        for label in micro.run_order(labels, r):
            if "error" in res[label]:
                continue
            kind = label[:-2] if label.endswith("-b") else label
            try:
                res[label]["samples"].append(runner.run(kind, case))
            except (RunError, subprocess.TimeoutExpired) as exc:
                res[label] = {"error": str(exc)}
                log(" [%s failed]" % label)
        log(".")
    return res


def _med_spread(xs):
    med = statistics.median(xs)
    spread = statistics.median(abs(x - med) for x in xs) / med if med else 0.0
    return med, spread


def summarize(case, raw, subject, others, pinned_cpus):
    out = {"unit": case.unit, "doc": case.doc, "server": case.server,
           "mode": case.mode, "family": case.family, "conns": case.conns,
           "size": case.size, "depth": case.depth, "client": case.client,
           "loops": {}, "ratios": {}, "cpu_ratios": {}}
    for label, r in raw.items():
        if "error" in r:
            out["loops"][label] = {"error": r["error"]}
            continue
        ss = r["samples"]
        rps = [s["rps"] for s in ss]
        med, spread = _med_spread(rps)
        us, us_spread = _med_spread([s["server_us_per_req"] for s in ss])
        lr = {
            "samples": ss,
            "rps": rps,
            # "ops_per_s" and "spread" are the names micro.render_table reads.
            "ops_per_s": med,
            "spread": spread,
            "median_mibps": statistics.median(s["mibps"] for s in ss),
            "server_us_per_req": us,
            "server_us_spread": us_spread,
            "client_us_per_req": statistics.median(s["client_us_per_req"] for s in ss),
            "server_sys_share": statistics.median(
                s["server_sys_s"] / max(1e-9, s["server_user_s"] + s["server_sys_s"])
                for s in ss),
            "server_cpu_share": statistics.median(
                s["server_cpu_s"] / max(1e-9, s["seconds"]) for s in ss),
            # Time the server was runnable but waited for a CPU (schedstat):
            # another process on the VM, or the client on the same CPU.
            "server_wait_share": statistics.median(
                s["server_run_delay_s"] / max(1e-9, s["seconds"]) for s in ss),
            "median_minflt": statistics.median(s["server_minflt"] for s in ss),
            "steal_s": [s["steal_s"].get("all", 0.0) for s in ss],
        }
        if pinned_cpus:
            lr["steal_pinned_s"] = [sum(s["steal_s"].get("cpu%d" % c, 0.0) for c in pinned_cpus)
                                    for s in ss]
        out["loops"][label] = lr
    subj = out["loops"].get(subject, {})
    for other in others:
        o = out["loops"].get(other, {})
        if "ops_per_s" in subj and "ops_per_s" in o:
            key = "%s/%s" % (subject, other)
            # Ratio of throughputs: > 1 means the subject is faster.
            out["ratios"][key] = subj["ops_per_s"] / o["ops_per_s"]
            # Ratio of server CPU per request: > 1 means the subject is cheaper.
            out["cpu_ratios"][key] = o["server_us_per_req"] / subj["server_us_per_req"]
    return out


def render(head, rows):
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = []
    for i, r in enumerate([head] + rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_cpu_table(results, labels, subject, others):
    head = ["case (server CPU us/req)"] + labels + [
        "%s/%s" % (micro.short(subject), micro.short(o)) for o in others]
    rows = []
    for name, res in results.items():
        row = [name]
        for label in labels:
            lr = res["loops"].get(label)
            if lr is None:
                row.append("-")
            elif "error" in lr:
                row.append("ERROR")
            else:
                row.append("%.1f ±%.0f%%" % (lr["server_us_per_req"], lr["server_us_spread"] * 100))
        for o in others:
            ratio = res["cpu_ratios"].get("%s/%s" % (subject, o))
            row.append("-" if ratio is None else "%.2fx" % ratio)
        rows.append(row)
    if len(results) > 1 and others:
        row = ["geometric mean"] + [""] * len(labels)
        for o in others:
            g = micro.geomean([r["cpu_ratios"].get("%s/%s" % (subject, o))
                               for r in results.values()])
            row.append("-" if g is None else "%.2fx" % g)
        rows.append(row)
    return render(head, rows)


def render_load_table(results, labels):
    """Client cost and steal: is the server the bottleneck, was the host quiet?"""
    head = ["case (check)", "client us/req", "server CPU %", "server waited %",
            "steal s/run"]
    rows = []
    for name, res in results.items():
        cl, share, wait, steal = [], [], [], []
        for label in labels:
            lr = res["loops"].get(label, {})
            if "client_us_per_req" in lr:
                cl.append(lr["client_us_per_req"])
                share.append(lr["server_cpu_share"])
                wait.append(lr["server_wait_share"])
                steal.extend(lr["steal_s"])
        if not cl:
            continue
        rows.append([name, "%.1f-%.1f" % (min(cl), max(cl)),
                     "%.0f-%.0f" % (min(share) * 100, max(share) * 100),
                     "%.0f-%.0f" % (min(wait) * 100, max(wait) * 100),
                     "%.2f" % statistics.median(steal)])
    return render(head, rows)


# ---------------------------------------------------------------------------
# --syscalls: counts per request from strace -c or perf trace -s.
# ---------------------------------------------------------------------------


def parse_strace(path):
    """{syscall: (calls, errors)} from `strace -c -o path` output."""
    out = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) < 5 or not re.match(r"^[\d.]+$", parts[0]) or parts[-1] == "total":
            continue
        # % time, seconds, usecs/call, calls, [errors], syscall
        nums = parts[1:-1]
        calls = int(nums[2])
        errors = int(nums[3]) if len(nums) > 3 else 0
        out[parts[-1]] = (calls, errors)
    return out


def parse_perf_trace(path):
    """{syscall: (calls, errors)} from `perf trace -s -o path` output."""
    out = {}
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return out
    for m in re.finditer(r"^\s+(\w+)\s+(\d+)\s+(\d+)\s+[\d.]+", text, re.M):
        name, calls, errors = m.group(1), int(m.group(2)), int(m.group(3))
        prev = out.get(name, (0, 0))  # one table per thread: add them up
        out[name] = (prev[0] + calls, prev[1] + errors)
    return out


def syscall_report(results, labels, tool):
    lines = []
    parse = parse_strace if tool == "strace" else parse_perf_trace
    for name, res in results.items():
        per_loop = {}
        for label in labels:
            lr = res["loops"].get(label, {})
            if "samples" not in lr:
                continue
            s = lr["samples"][0]
            counts = parse(s.get("attach_out", "") + ".txt")
            req = max(1, s.get("requests_total", s["requests"]))
            per_loop[label] = {k: (c / req, e / req) for k, (c, e) in counts.items()}
            lr["syscalls_per_req"] = {k: v[0] for k, v in per_loop[label].items()}
            lr["syscall_errors_per_req"] = {k: v[1] for k, v in per_loop[label].items() if v[1]}
        if not per_loop:
            continue
        names = sorted({k for d in per_loop.values() for k in d},
                       key=lambda k: -max(d.get(k, (0, 0))[0] for d in per_loop.values()))
        head = ["%s: syscalls/req" % name] + list(per_loop)
        rows = []
        for k in names:
            vals = [per_loop[lb].get(k, (0.0, 0.0)) for lb in per_loop]
            if max(v[0] for v in vals) < 0.005:
                continue
            rows.append([k] + ["%.3f%s" % (c, " (%.2f err)" % e if e >= 0.005 else "")
                               for c, e in vals])
        rows.append(["total"] + ["%.3f" % sum(c for c, _ in per_loop[lb].values())
                                 for lb in per_loop])
        lines.append(render(head, rows))
    return "\n\n".join(lines)


# ---------------------------------------------------------------------------
# Set-up.
# ---------------------------------------------------------------------------


def build_loadgen(tmpdir, name="loadgen"):
    cc = os.environ.get("CC", "cc")
    exe = os.path.join(tmpdir, name)
    src = os.path.join(NETLIB, name + ".c")
    r = subprocess.run([cc, "-O2", "-o", exe, src], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("cannot build %s with %s:\n%s" % (src, cc, r.stderr))
    return exe


def parse_pin(spec):
    """--pin: 'N' (server and client on CPU N), 'S,C', or 'none'."""
    if spec is None or spec == "same":
        cpu = max(os.sched_getaffinity(0))
        return {cpu}, {cpu}
    if spec == "none":
        return None, None
    parts = spec.split(",")
    try:
        cpus = [int(p) for p in parts]
    except ValueError:
        raise SystemExit("--pin: expected N, S,C or none, got %r" % spec)
    if len(cpus) == 1:
        return {cpus[0]}, {cpus[0]}
    if len(cpus) == 2:
        return {cpus[0]}, {cpus[1]}
    raise SystemExit("--pin: expected N, S,C or none, got %r" % spec)


def pin_text(server_cpus, client_cpus):
    if server_cpus is None:
        return "not pinned"
    if server_cpus == client_cpus:
        return "server and client pinned to CPU %s" % ",".join(map(str, sorted(server_cpus)))
    return "server pinned to CPU %s, client to CPU %s" % (
        ",".join(map(str, sorted(server_cpus))), ",".join(map(str, sorted(client_cpus))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="fastloop network benchmarks (see bench/README.md)")
    p.add_argument("--cases", help="comma-separated case names or groups "
                   "(matrix: issue #3's echo matrix) (default: all; see --list)")
    p.add_argument("--loops", default="fastloop,asyncio,uvloop",
                   help="comma-separated loops; the first is the one compared "
                        "(default: fastloop,asyncio,uvloop; uvloop is skipped "
                        "if not installed); %s adds the plain-C epoll echo "
                        "server (Protocol echo cases only)" % C_EPOLL)
    p.add_argument("--repeat", type=int,
                   help="timed runs per loop and case (default %d, --quick %d)"
                        % (DEFAULT_REPEAT, QUICK_REPEAT))
    p.add_argument("--duration", type=float,
                   help="seconds of the timed window of a run (default %g, --quick %g; "
                        "wrk rounds to whole seconds, at least 1)"
                        % (DEFAULT_DURATION, QUICK_DURATION))
    p.add_argument("--warmup", type=float,
                   help="seconds of untimed load before the window (default %g, --quick %g)"
                        % (DEFAULT_WARMUP, QUICK_WARMUP))
    p.add_argument("--quick", action="store_true",
                   help="%d repeats of %g s" % (QUICK_REPEAT, QUICK_DURATION))
    p.add_argument("--aa", action="store_true",
                   help="A/A run: add a second entry of the first loop to show the noise")
    p.add_argument("--pin", metavar="CPU",
                   help="N: server and load generator on CPU N (default: the last "
                        "CPU); S,C: server on S, client on C; none: no pinning")
    p.add_argument("--no-gc", action="store_true",
                   help="disable the cyclic GC in the server once it serves")
    p.add_argument("--syscalls", choices=["strace", "perf"],
                   help="attach `strace -c -f` (or `perf trace -s`) to the server for "
                        "the timed window and print syscalls per request; the "
                        "throughput of such a run is not comparable (default "
                        "--repeat 1 then)")
    p.add_argument("--attach", metavar="CMD", dest="attach_cmd",
                   help="shell command started on the server before the load and "
                        "sent SIGINT after it; {pid} {loop} {case} "
                        "{out} are replaced, e.g. "
                        "'perf record -g -p {pid} -o {out}.data'")
    p.add_argument("--no-snapshot", action="store_true",
                   help="servers import fastloop from where it is, instead of from a "
                        "copy made at start-up (the copy keeps one build for the run)")
    p.add_argument("--loadgen", metavar="PATH",
                   help="use this load generator binary instead of building "
                        "bench/netlib/loadgen.c")
    p.add_argument("--server-args", metavar="ARGS",
                   help="extra arguments for bench/netlib/server.py (diagnostics, "
                        "e.g. '--buffer-offset 64')")
    p.add_argument("--server-prefix", metavar="CMD",
                   help="run the server under CMD ({loop} {case} {out} replaced), e.g. "
                        "'valgrind --tool=callgrind --collect-atstart=no "
                        "--callgrind-out-file={out}.cg' with --attach "
                        "'callgrind_control -i on {pid} && sleep 1000'")
    p.add_argument("--attach-dir", default=None,
                   help="directory for {out} (default: a new temp dir, kept)")
    p.add_argument("--attach-delay", type=float, default=0.2,
                   help="seconds to wait after starting --attach (default 0.2)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="give up on a run whose server or client says nothing for "
                        "this long (s)")
    p.add_argument("--json", metavar="FILE", help="also write all samples and metadata as JSON")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    if args.syscalls:
        if args.attach_cmd:
            p.error("--syscalls and --attach exclude each other")
        if args.syscalls == "strace":
            args.attach_cmd = "strace -c -f -p {pid} -o {out}.txt"
        else:
            args.attach_cmd = "perf trace -s -p {pid} -o {out}.txt"
    if args.repeat is None:
        args.repeat = 1 if args.syscalls else (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    if args.duration is None:
        args.duration = QUICK_DURATION if args.quick else DEFAULT_DURATION
    if args.warmup is None:
        args.warmup = QUICK_WARMUP if args.quick else DEFAULT_WARMUP
    if args.repeat < 1 or args.duration <= 0 or args.warmup < 0:
        p.error("--repeat >= 1, --duration > 0 and --warmup >= 0 please")
    args.server_cpus, args.client_cpus = parse_pin(args.pin)
    return args


def select_cases(spec):
    if not spec:
        return list(CASES)
    out = []
    for name in spec.split(","):
        name = name.strip()
        if name in CASE_GROUPS:
            out.extend(c for c in CASE_GROUPS[name] if c not in out)
            continue
        if name not in CASES_BY_NAME:
            raise SystemExit("unknown case %r; known: %s; groups: %s"
                             % (name, ", ".join(CASES_BY_NAME), ", ".join(CASE_GROUPS)))
        if CASES_BY_NAME[name] not in out:
            out.append(CASES_BY_NAME[name])
    return out


def select_loops(spec, aa, default_spec):
    """Returns ([label], {label: description}, [notes]).  The loop is made in
    the server process; here we only check that it can be loaded."""
    names = [s.strip() for s in spec.split(",")]
    c_at = names.index(C_EPOLL) if C_EPOLL in names else None
    rest = [n for n in names if n != C_EPOLL]
    if not rest:
        raise SystemExit("%s is a ceiling to compare with: give a loop first" % C_EPOLL)
    if c_at == 0:
        raise SystemExit("%s cannot be the first (compared) entry of --loops" % C_EPOLL)
    entries, descs, notes = micro.select_loops(",".join(rest), aa, default_spec)
    labels = [label for label, _ in entries]
    if c_at is not None:
        # Before the A/A twin, which stays last.
        labels.insert(len(labels) - 1 if aa else len(labels), C_EPOLL)
        descs[C_EPOLL] = ("plain C epoll echo server (bench/netlib/echo_epoll.c; "
                          "Protocol echo cases only)")
    return labels, descs, notes


def tool_version(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def _module_version(name):
    try:
        mod = __import__(name)
        return getattr(mod, "__version__", "?")
    except ImportError:
        return None


SNAPSHOT = {}


def _core_info():
    """Which build of fastloop._core the servers load."""
    path = SNAPSHOT.get("core")
    if path is None:
        try:
            import fastloop._core as core
            path = core.__file__
        except ImportError:
            return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"path": path, "size": st.st_size,
            "mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(st.st_mtime))}


def snapshot_fastloop(tmpdir):
    """Copy the fastloop package the servers would import into tmpdir and
    return a PYTHONPATH entry for it: a long run then measures one build even
    if the checkout's extension is rebuilt meanwhile."""
    import fastloop._core as core
    src = os.path.dirname(micro._import_fastloop().__file__)
    dst = os.path.join(tmpdir, "snapshot")
    shutil.copytree(src, os.path.join(dst, "fastloop"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    SNAPSHOT["source"] = src
    SNAPSHOT["core"] = os.path.join(dst, "fastloop", os.path.basename(core.__file__))
    return dst


def main(argv=None, title="fastloop network benchmarks"):
    args = parse_args(argv)
    if args.list:
        for c in CASES:
            print("%-22s %-8s %s" % (c.name, c.client, c.doc))
        return 0
    cases = select_cases(args.cases)
    default_spec = parse_args([]).loops
    labels, descs, notes = select_loops(args.loops, args.aa, default_spec)
    subject, others = labels[0], labels[1:]

    wrk = shutil.which("wrk")
    if wrk is None and any(c.client == "wrk" for c in cases):
        notes.append("wrk is not installed: *_wrk cases skipped (apt-get install wrk)")
        cases = [c for c in cases if c.client != "wrk"]
    if _module_version("aiohttp") is None and any(c.server == "aiohttp" for c in cases):
        notes.append("aiohttp is not installed: aiohttp cases skipped (pip install aiohttp)")
        cases = [c for c in cases if c.server != "aiohttp"]
    if (_module_version("uvicorn") is None or _module_version("httptools") is None) \
            and any(c.server == "uvicorn" for c in cases):
        notes.append("uvicorn or httptools is not installed: uvicorn cases skipped "
                     "(pip install uvicorn httptools)")
        cases = [c for c in cases if c.server != "uvicorn"]
    if _module_version("aiofastnet") is None and any(c.server.startswith("afn_") for c in cases):
        notes.append("aiofastnet is not installed: afn cases skipped (pip install aiofastnet)")
        cases = [c for c in cases if not c.server.startswith("afn_")]
    if args.syscalls:
        tool = "strace" if args.syscalls == "strace" else "perf"
        if shutil.which(tool) is None:
            raise SystemExit("--syscalls %s: %s is not installed" % (args.syscalls, tool))
    if not cases:
        raise SystemExit("no case to run")

    def log(msg):
        if not args.quiet:
            sys.stderr.write(msg)
            sys.stderr.flush()

    if sys.flags.dev_mode or os.environ.get("PYTHONASYNCIODEBUG"):
        notes.append("WARNING: PYTHONASYNCIODEBUG is set: the servers run in debug mode, "
                     "numbers are not representative")

    tmpdir = tempfile.mkdtemp(prefix="fastloop-net-")
    if (args.attach_cmd or args.server_prefix) and args.attach_dir is None:
        args.attach_dir = tempfile.mkdtemp(prefix="fastloop-net-attach-")
    elif args.attach_dir:
        os.makedirs(args.attach_dir, exist_ok=True)
    try:
        loadgen = args.loadgen or build_loadgen(tmpdir)
        echo_epoll = build_loadgen(tmpdir, "echo_epoll") if C_EPOLL in labels else None
        args.pythonpath = None
        if not args.no_snapshot and any(lb.startswith("fastloop") for lb in labels):
            args.pythonpath = snapshot_fastloop(tmpdir)
        runner = Runner(args, tmpdir, loadgen, wrk, echo_epoll)

        ns = argparse.Namespace(**{**vars(args), "scale": 1.0, "gc": not args.no_gc})
        info = micro.machine_info(ns, descs)
        info.update({
            "warmup": "%g s of load before each timed window" % args.warmup,
            "duration_s": args.duration,
            "gc": "disabled in the server" if args.no_gc else "enabled (each server is its own process)",
            "hash_seed": "PYTHONHASHSEED=%s in the servers" % os.environ.get("PYTHONHASHSEED", "0"),
            "pin": pin_text(args.server_cpus, args.client_cpus),
            "server_cpus": sorted(args.server_cpus) if args.server_cpus else None,
            "client_cpus": sorted(args.client_cpus) if args.client_cpus else None,
            "wrk": tool_version([wrk, "-v"]) if wrk else None,
            "cc": tool_version([os.environ.get("CC", "cc"), "--version"]),
            "aiohttp": _module_version("aiohttp"),
            "uvicorn": _module_version("uvicorn"),
            "aiofastnet": _module_version("aiofastnet"),
            "fastloop_core": _core_info(),
            "fastloop_snapshot_of": SNAPSHOT.get("source"),
            "syscalls": args.syscalls,
            "attach": args.attach_cmd,
        })
        steal0 = steal_sample()
        results = {}
        t_start = perf_counter()
        for case in cases:
            log("%-22s " % case.name)
            t0 = perf_counter()
            raw = run_case(runner, case, labels, args.repeat, log)
            log(" %.1fs\n" % (perf_counter() - t0))
            results[case.name] = summarize(case, raw, subject, others, args.server_cpus)
        wall = perf_counter() - t_start
        steal1 = steal_sample()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    info["wall_s"] = wall
    info["steal_s"] = delta(steal0, steal1)
    info["loadavg_end"] = os.getloadavg()

    print()
    print("%s: CPython %s, %s, %s" % (title, info["python"], info["platform"], info["cpu"]))
    for label in labels:
        print("  %-10s %s" % (label, descs[label]))
    print("  %d timed runs of %g s (after %g s of warm-up) per loop and case, loops "
          "alternated, a fresh server process per run" % (args.repeat, args.duration, args.warmup))
    print("  cell = median requests/s ±(median absolute deviation / median); "
          "%s/x > 1.00x: %s is faster than x" % (micro.short(subject), subject))
    print("  %s; GC %s; %s; load average %.1f at start, %.1f at end; host steal %.1f s "
          "in %.0f s" % (info["pin"], info["gc"], info["hash_seed"], info["loadavg"][0],
                         info["loadavg_end"][0],
                         (info["steal_s"] or {}).get("all", 0.0), wall))
    print()
    print(micro.render_table(results, labels, subject, others))
    print()
    print(render_cpu_table(results, labels, subject, others))
    print("  (server CPU time per request, from /proc/PID/task/*/schedstat; "
          "%s/x > 1.00x: %s uses less)" % (micro.short(subject), subject))
    print()
    print(render_load_table(results, labels))
    print("  (ranges over the loops' medians.  client us/req: the load generator's CPU per "
          "request;\n   server CPU %: its CPU time / window; server waited %: runnable "
          "but not running (schedstat run_delay) / window;\n   steal: host steal over "
          "all CPUs, median per run)")
    errors = micro.render_errors(results)
    if errors:
        print("\nerrors:")
        print("\n".join(errors))
    if args.syscalls:
        print()
        print(syscall_report(results, labels, args.syscalls))
        print("  (%s attached to the server before the load starts and detached after "
              "it ends;\n   its counts divided by all the requests of the run, warm-up "
              "included)" % args.syscalls)
    if args.attach_cmd:
        print("\nattach output in %s" % args.attach_dir)
    if args.aa:
        line = micro.aa_summary(results, subject, labels[-1])
        if line:
            print("\n" + line)
        key = "%s/%s" % (subject, labels[-1])
        dev = [abs(r["cpu_ratios"][key] - 1) for r in results.values() if key in r["cpu_ratios"]]
        if dev:
            print("A/A noise of server CPU/request: median |ratio-1| = %.1f%%, max = %.1f%%"
                  % (statistics.median(dev) * 100, max(dev) * 100))
    builds = sorted({s.get("core_mtime") for r in results.values()
                     for lr in r["loops"].values() for s in lr.get("samples", ())} - {None})
    if len(builds) > 1:
        notes.append("WARNING: fastloop/_core was rebuilt during the run (builds of %s): "
                     "the fastloop samples mix builds" % ", ".join(builds))
    for note in notes:
        print("note: " + note)
    print("total %.1f s" % wall)

    if args.json:
        micro.write_json(args.json, info, results, subject, others,
                         cpu_key="geomean_server_cpu")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
