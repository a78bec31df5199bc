#!/usr/bin/env python3
"""Soak test: many connections exchanging messages for a long time, with
timers and subprocesses churning, on one event loop.  It looks for slow
leaks (RSS, fds, references), lost or misdirected bytes and errors that
only show after hours of traffic, not for speed.

    python bench/soak.py                          # 2,000 connections, 180 s
    python bench/soak.py -c 200 -d 20 -w 5        # a quick run
    python bench/soak.py --loop asyncio           # the same on asyncio
    python bench/soak.py --unix --json out.json
    python3-dbg bench/soak.py ...                 # + total refcount slope

What runs (all on one loop, in one process):

* an echo server (TCP on 127.0.0.1, or a Unix socket with --unix) whose
  protocol stops reading while its write buffer is over the high-water
  mark (flow control both ways);
* N client connections.  Each sends a message (a header with its
  connection id and sequence number, then random bytes: mostly small, some
  64 KiB, a few 1 MiB), waits for the echo, checks it byte for byte, waits
  a random 0-20 ms (a timer) and sends the next one.  Every second a few
  clients close and reconnect (accept/close churn).  Every byte sent and
  received is folded into per-connection CRC32s and counters;
* a timer churner: every 50 ms, 500 call_later() timers with random delays
  (up to 1 s), half of them cancelled;
* a subprocess churner (if the loop has subprocess_exec): every 2 s, `cat`
  gets 64 KiB on stdin and must return it on stdout.

Every --interval seconds it samples RSS (/proc/self/statm), the number of
open fds, and, on a debug CPython, sys.gettotalrefcount().  After the
--warmup period it fits a line through the samples and reports the slopes
(per minute).  At the end the clients stop, drain and close; the report
compares every connection's sent/received checksums, lists the errors, and
checks that the fd count came back to where it started.

Exit status: 0 if there were no errors, no checksum mismatch, no fd
leak, RSS, fds and references flat after the warm-up (no slope both over
3 standard errors and over 1 % of the level per minute, 1 fd per minute
for fds) and the slopes under --max-rss-slope / --max-fd-slope /
--max-ref-slope when given; 1 otherwise.
"""
import argparse
import asyncio
import gc
import json
import os
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import zlib

HEADER = struct.Struct("!IIQ")  # connection id, sequence, payload length
PAGE = os.sysconf("SC_PAGE_SIZE")


def make_loop(kind):
    if kind == "fastloop":
        import_fastloop()
        import fastloop

        return fastloop.new_event_loop()
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.SelectorEventLoop()


def import_fastloop():
    """The checkout's fastloop if it has an in-place build for this
    interpreter (not whatever `pip install -e` of another tree left in
    site-packages), else a copy on PYTHONPATH or an installed one."""
    import importlib.machinery

    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pkg = os.path.join(top, "fastloop")
    if not os.environ.get("PYTHONPATH") and any(
            os.path.exists(os.path.join(pkg, "_core" + suffix))
            for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        sys.path.insert(0, top)
    import fastloop._core

    print("fastloop._core:", fastloop._core.__file__, flush=True)


def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE // 1024


def nfds():
    return len(os.listdir("/proc/self/fd"))


def slope_per_minute(points):
    """Least-squares slope of [(t, y)] in y per minute (0 if < 2 points)."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if not den:
        return 0.0
    return 60.0 * sum((t - mt) * (y - my) for t, y in points) / den


def slope_stderr_per_minute(points):
    """Standard error of that slope (per minute): a slope within about two
    of these of 0 is noise, not growth."""
    n = len(points)
    if n < 3:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if not den:
        return 0.0
    b = sum((t - mt) * (y - my) for t, y in points) / den
    a = my - b * mt
    resid = sum((y - a - b * t) ** 2 for t, y in points)
    return 60.0 * (resid / (n - 2) / den) ** 0.5


class Stats:
    def __init__(self):
        self.errors = []
        self.messages = 0
        self.bytes = 0
        self.connects = 0
        self.reconnects = 0
        self.timers_fired = 0
        self.timers_cancelled = 0
        self.subprocesses = 0
        self.pauses = 0

    def error(self, what):
        if len(self.errors) < 1000:
            self.errors.append("%.1fs %s" % (time.monotonic() - START, what))


START = time.monotonic()


class EchoServer(asyncio.Protocol):
    def __init__(self, app):
        self.app = app
        self.tr = None

    def connection_made(self, tr):
        self.tr = tr
        self.app.server_conns.add(self)

    def data_received(self, data):
        self.tr.write(data)

    def pause_writing(self):
        self.app.stats.pauses += 1
        self.tr.pause_reading()

    def resume_writing(self):
        self.tr.resume_reading()

    def connection_lost(self, exc):
        self.app.server_conns.discard(self)
        if exc is not None and not self.app.stopping:
            self.app.stats.error("server connection_lost(%r)" % (exc,))


class Client(asyncio.Protocol):
    def __init__(self, app, cid):
        self.app = app
        self.cid = cid
        self.seq = 0
        self.tr = None
        self.expect = b""
        self.got = bytearray()
        self.sent_crc = self.recv_crc = 0
        self.sent = self.received = 0
        self.closed = app.loop.create_future()
        self.in_flight = False

    # -- sending ---------------------------------------------------------

    def connection_made(self, tr):
        self.tr = tr
        self.app.stats.connects += 1
        self.send_next()

    def send_next(self):
        if self.tr is None or self.tr.is_closing():
            return
        if self.app.stopping or self.dropping:
            self.tr.close()
            return
        n = self.app.pick_size()
        msg = HEADER.pack(self.cid, self.seq, n) + os.urandom(n)
        self.seq += 1
        self.expect = msg
        self.got = bytearray()
        self.in_flight = True
        self.sent_crc = zlib.crc32(msg, self.sent_crc)
        self.sent += len(msg)
        self.tr.write(msg)

    # -- receiving -------------------------------------------------------

    def data_received(self, data):
        self.recv_crc = zlib.crc32(data, self.recv_crc)
        self.received += len(data)
        self.got += data
        if len(self.got) > len(self.expect):
            self.app.stats.error("conn %d: %d bytes more than sent"
                                 % (self.cid, len(self.got) - len(self.expect)))
            self.tr.abort()
            return
        if len(self.got) < len(self.expect):
            return
        if self.got != self.expect:
            cid, seq, _ = HEADER.unpack_from(self.got)
            self.app.stats.error(
                "conn %d seq %d: echo differs (header says conn %d seq %d)"
                % (self.cid, self.seq - 1, cid, seq))
            self.tr.abort()
            return
        self.in_flight = False
        if self.app.args.inject_leak:  # the checks' own check
            self.app.hoard.append(bytes(self.app.args.inject_leak))
        self.app.stats.messages += 1
        self.app.stats.bytes += len(self.expect)
        delay = self.app.pick_delay()
        if delay:
            self.app.loop.call_later(delay, self.send_next)
        else:
            self.send_next()

    def eof_received(self):
        if not self.app.stopping:
            self.app.stats.error("conn %d: unexpected EOF" % self.cid)

    def connection_lost(self, exc):
        if exc is not None:
            self.app.stats.error("conn %d: connection_lost(%r)" % (self.cid, exc))
        if self.in_flight and not self.app.stopping and not self.dropping:
            self.app.stats.error("conn %d: lost with a message in flight" % self.cid)
        if self.sent != self.received or self.sent_crc != self.recv_crc:
            # Only idle connections are closed (churn and stop pick them),
            # so everything sent must have come back.
            self.app.stats.error(
                "conn %d: sent %d bytes crc %08x, received %d crc %08x"
                % (self.cid, self.sent, self.sent_crc, self.received,
                   self.recv_crc))
        self.app.totals[0] += self.sent
        self.app.totals[1] += self.received
        self.app.crcs[0] ^= self.sent_crc
        self.app.crcs[1] ^= self.recv_crc
        self.closed.set_result(None)

    dropping = False


class App:
    def __init__(self, loop, args):
        self.loop = loop
        self.args = args
        self.stats = Stats()
        self.stopping = False
        self.server_conns = set()
        self.clients = {}
        self.next_cid = 0
        self.totals = [0, 0]  # bytes sent, received (closed connections)
        self.crcs = [0, 0]  # XOR of per-connection CRCs
        self.rng = random.Random(args.seed)
        self.hoard = []  # --inject-leak

    def pick_size(self):
        r = self.rng.random()
        if r < 0.002:
            return 1 << 20
        if r < 0.05:
            return 65536
        return self.rng.randrange(1, 2048)

    def pick_delay(self):
        return self.rng.random() * 0.02 if self.rng.random() < 0.9 else 0

    async def connect(self):
        cid = self.next_cid
        self.next_cid += 1
        c = Client(self, cid)
        if self.args.unix:
            await self.loop.create_unix_connection(lambda: c, self.addr)
        else:
            await self.loop.create_connection(lambda: c, *self.addr)
        self.clients[cid] = c
        return c

    async def churn_connections(self):
        while not self.stopping:
            await asyncio.sleep(1.0)
            if self.stopping:
                break
            idle = [c for c in self.clients.values() if not c.in_flight]
            for c in self.rng.sample(idle, min(len(idle), self.args.churn)):
                if c.in_flight or c.cid not in self.clients:
                    continue  # started its next message meanwhile
                del self.clients[c.cid]
                c.dropping = True  # send_next() no longer sends
                c.tr.close()
                await c.closed
                self.stats.reconnects += 1
                try:
                    await self.connect()
                except OSError as e:
                    self.stats.error("reconnect: %r" % (e,))

    async def churn_timers(self):
        def fired():
            self.stats.timers_fired += 1

        while not self.stopping:
            hs = [self.loop.call_later(self.rng.random(), fired) for _ in range(500)]
            for h in hs[::2]:
                h.cancel()
                self.stats.timers_cancelled += 1
            await asyncio.sleep(0.05)

    async def churn_subprocesses(self):
        cat = shutil.which("cat")
        if cat is None or not hasattr(self.loop, "subprocess_exec"):
            return
        while not self.stopping:
            await asyncio.sleep(2.0)
            data = os.urandom(65536)
            try:
                p = await asyncio.create_subprocess_exec(
                    cat, stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE)
                out, _ = await asyncio.wait_for(p.communicate(data), 30)
            except NotImplementedError:
                return
            except Exception as e:
                self.stats.error("subprocess: %r" % (e,))
                continue
            if out != data or p.returncode != 0:
                self.stats.error("subprocess: output differs / rc %r" % p.returncode)
            self.stats.subprocesses += 1


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, need))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def soak(app):
    args, loop, st = app.args, app.loop, app.stats
    tmpdir = None
    if args.unix:
        tmpdir = tempfile.mkdtemp(prefix="fl-soak")
        app.addr = os.path.join(tmpdir, "s")
        server = await loop.create_unix_server(lambda: EchoServer(app), app.addr,
                                               backlog=1024)
    else:
        server = await loop.create_server(lambda: EchoServer(app), "127.0.0.1", 0,
                                          backlog=1024)
        app.addr = server.sockets[0].getsockname()
    # Connect in batches (the backlog is finite).
    for i in range(0, args.connections, 100):
        await asyncio.gather(*(app.connect()
                               for _ in range(min(100, args.connections - i))))
    print("%d connections up in %.1fs" % (len(app.clients), time.monotonic() - START),
          flush=True)
    bg = [loop.create_task(app.churn_connections()),
          loop.create_task(app.churn_timers()),
          loop.create_task(app.churn_subprocesses())]
    samples = []
    t0 = time.monotonic()
    last_msgs = 0
    while True:
        now = time.monotonic() - t0
        if now >= args.duration:
            break
        await asyncio.sleep(min(args.interval, args.duration - now))
        # As tests/leakcheck.py: the type attribute cache keeps up to 4096
        # name strings that C code made with PyObject_CallMethod(obj,
        # "name") alive (bounded, but it fills slowly and looks like growth).
        sys._clear_type_cache()
        gc.collect()
        t = time.monotonic() - t0
        s = {"t": round(t, 1), "rss_kb": rss_kb(), "fds": nfds(),
             "refs": sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else None,
             "msgs": st.messages, "errors": len(st.errors),
             "connected": len(app.clients)}
        samples.append(s)
        rate = (st.messages - last_msgs) / args.interval
        last_msgs = st.messages
        print("t=%5.0fs rss=%7d KiB fds=%5d%s msgs/s=%7.0f errors=%d" % (
            t, s["rss_kb"], s["fds"],
            "" if s["refs"] is None else " refs=%d" % s["refs"], rate,
            len(st.errors)), flush=True)
    # Stop: clients finish their message in flight, then close.
    app.stopping = True
    for c in list(app.clients.values()):
        if not c.in_flight and not c.tr.is_closing():
            c.tr.close()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(c.closed for c in app.clients.values())), 60)
    except asyncio.TimeoutError:
        st.error("clients did not close within 60 s")
    for t in bg:
        t.cancel()
    await asyncio.gather(*bg, return_exceptions=True)
    server.close()
    await asyncio.wait_for(server.wait_closed(), 30)
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return samples


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loop", default="fastloop", choices=["fastloop", "asyncio", "uvloop"])
    ap.add_argument("-c", "--connections", type=int, default=2000)
    ap.add_argument("-d", "--duration", type=float, default=180.0, help="seconds")
    ap.add_argument("-w", "--warmup", type=float, default=30.0,
                    help="seconds of samples left out of the slopes")
    ap.add_argument("-i", "--interval", type=float, default=5.0, help="sampling period")
    ap.add_argument("--churn", type=int, default=5,
                    help="connections closed and reopened every second")
    ap.add_argument("--unix", action="store_true", help="Unix socket instead of TCP")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--max-rss-slope", type=float, help="KiB/min; fail above")
    ap.add_argument("--max-fd-slope", type=float, help="fds/min; fail above")
    ap.add_argument("--max-ref-slope", type=float, help="refs/min (debug CPython)")
    ap.add_argument("--inject-leak", type=int, default=0, metavar="BYTES",
                    help="keep a BYTES-long object per message (shows that "
                    "the flatness checks fail on a leak)")
    args = ap.parse_args(argv)

    limit = raise_fd_limit(2 * args.connections + 2 * args.churn + 512)
    if limit < 2 * args.connections + 256:
        ap.error("RLIMIT_NOFILE hard limit %d is too low for %d connections"
                 % (limit, args.connections))
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    fds_before = nfds()
    loop = make_loop(args.loop)
    asyncio.set_event_loop(loop)
    app = App(loop, args)
    loop.set_exception_handler(
        lambda lp, ctx: app.stats.error("exception handler: %s %r" % (
            ctx.get("message"), ctx.get("exception"))))
    try:
        samples = loop.run_until_complete(soak(app))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
    del loop
    gc.collect()
    fds_after = nfds()
    st = app.stats

    steady = [s for s in samples if s["t"] >= args.warmup]
    series = {"rss_kb": [(s["t"], s["rss_kb"]) for s in steady],
              "fds": [(s["t"], s["fds"]) for s in steady]}
    if steady and steady[0]["refs"] is not None:
        series["refs"] = [(s["t"], s["refs"]) for s in steady]
    slopes = {"%s_per_min" % k: slope_per_minute(v) for k, v in series.items()}
    slopes.setdefault("refs_per_min", None)
    stderrs = {"%s_per_min" % k: slope_stderr_per_minute(v)
               for k, v in series.items()}
    levels = {k: {"first": v[0][1], "last": v[-1][1],
                  "min": min(y for _, y in v), "max": max(y for _, y in v),
                  "mean": sum(y for _, y in v) / len(v)}
              for k, v in series.items() if v}
    checks = {
        "no_errors": not st.errors,
        "checksums_match": app.totals[0] == app.totals[1] and app.crcs[0] == app.crcs[1],
        "no_fd_leak": fds_after == fds_before,
    }
    # Flat after warm-up: a series counts as growing if its slope is both
    # significant (over 3 standard errors) and material (over 1 % of its
    # level per minute; fds: over 1 per minute).
    for k, v in series.items():
        if len(v) >= 3:
            b, se = slopes[k + "_per_min"], stderrs[k + "_per_min"]
            floor = 1.0 if k == "fds" else 0.01 * levels[k]["mean"]
            checks["%s_flat" % k] = not (b > 3 * se and b > floor)
    if args.max_rss_slope is not None:
        checks["rss_slope"] = slopes["rss_kb_per_min"] <= args.max_rss_slope
    if args.max_fd_slope is not None:
        checks["fd_slope"] = slopes["fds_per_min"] <= args.max_fd_slope
    if args.max_ref_slope is not None and slopes["refs_per_min"] is not None:
        checks["ref_slope"] = slopes["refs_per_min"] <= args.max_ref_slope
    report = {
        "loop": args.loop, "python": sys.version.split()[0],
        "debug_build": hasattr(sys, "gettotalrefcount"),
        "args": vars(args),
        "messages": st.messages, "bytes_echoed": st.bytes,
        "bytes_sent": app.totals[0], "bytes_received": app.totals[1],
        "crc_sent": "%08x" % app.crcs[0], "crc_received": "%08x" % app.crcs[1],
        "connects": st.connects, "reconnects": st.reconnects,
        "server_pauses": st.pauses, "timers_fired": st.timers_fired,
        "timers_cancelled": st.timers_cancelled, "subprocesses": st.subprocesses,
        "fds_before": fds_before, "fds_after": fds_after,
        "slopes_after_warmup": slopes, "slope_stderrs": stderrs,
        "levels_after_warmup": levels, "samples": samples,
        "errors": st.errors[:50], "n_errors": len(st.errors),
        "checks": checks, "ok": all(checks.values()),
    }
    print("\n%s on Python %s%s: %d messages, %.1f MiB echoed, %d connects "
          "(%d reconnects), %d subprocesses, %d timers fired"
          % (args.loop, report["python"], " (debug)" if report["debug_build"] else "",
             st.messages, st.bytes / 2 ** 20, st.connects, st.reconnects,
             st.subprocesses, st.timers_fired))
    print("bytes sent %d received %d, crc %s / %s" % (
        app.totals[0], app.totals[1], report["crc_sent"], report["crc_received"]))
    print("slopes after %.0fs warm-up (+- standard error): %s" % (
        args.warmup, ", ".join(
            "%s %+.2f +- %.2f/min" % (k[:-8], v, stderrs.get(k, 0.0))
            for k, v in slopes.items() if v is not None)))
    for k, lv in levels.items():
        print("  %s after warm-up: first %d, last %d, min %d, max %d, mean %.0f"
              % (k, lv["first"], lv["last"], lv["min"], lv["max"], lv["mean"]))
    print("fds before %d after %d" % (fds_before, fds_after))
    for e in st.errors[:20]:
        print("ERROR", e)
    print("checks:", ", ".join("%s=%s" % kv for kv in checks.items()))
    print("RESULT:", "OK" if report["ok"] else "FAILED")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
