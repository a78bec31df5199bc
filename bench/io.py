#!/usr/bin/env python3
"""Datagram, pipe and subprocess benchmarks: fastloop vs asyncio vs uvloop.

The companion of micro.py for the loop's I/O transports that do not need a
network peer: UDP echo, pipe throughput, spawning children and talking to
them.  Everything runs in this process (the children are /bin/true,
/bin/false and cat), with micro.py's method: a fresh loop per run, loops
alternated between repeats (micro.run_order), medians, ratios, an optional
A/A twin.  Every case checks what it got: the echoed datagrams byte for byte
and in order, every byte of the pipe stream, the children's exit codes and
output.

    python bench/io.py                    # all cases, 7 repeats
    python bench/io.py --quick            # 3 repeats, 1/5 of the work
    python bench/io.py --cases udp_echo_64B,pipe_throughput --repeat 11
    python bench/io.py --aa --pin 1 --json bench/results/io.json

See bench/README.md ("Datagrams, pipes and subprocesses").
"""
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import micro  # noqa: E402  (loops, running, alternation, summaries)

BenchError = micro.BenchError
_check = micro._check
perf_counter = time.perf_counter

KIB = 1024
MIB = 1024 * 1024

# A case that loses a datagram or never sees its child exit fails after
# this long instead of hanging (micro's --timeout watchdog is the backstop).
CASE_TIMEOUT = 60.0


async def _within(fut, what):
    try:
        return await asyncio.wait_for(fut, CASE_TIMEOUT)
    except asyncio.TimeoutError:
        raise BenchError("timed out after %g s: %s" % (CASE_TIMEOUT, what()))


# ---------------------------------------------------------------------------
# UDP echo
# ---------------------------------------------------------------------------

UDP_WINDOW = 16      # datagrams in flight
UDP_PATTERNS = 61    # distinct payloads, sent in turn (a prime: no alias with the window)


def _udp_payloads(size):
    rnd = random.Random(size)
    return [i.to_bytes(4, "little") + rnd.randbytes(size - 4) for i in range(UDP_PATTERNS)]


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

    def error_received(self, exc):
        raise BenchError("echo server: %r" % (exc,))


class _UdpClient(asyncio.DatagramProtocol):
    """Keeps UDP_WINDOW datagrams in flight until n have come back; each
    must be the next one sent (order and bytes)."""

    def __init__(self, payloads, n, done):
        self.payloads = payloads
        self.n = n
        self.done = done
        self.sent = 0
        self.received = 0
        self.error = None

    def connection_made(self, transport):
        self.transport = transport

    def start(self):
        for _ in range(min(UDP_WINDOW, self.n)):
            self._send()

    def _send(self):
        self.transport.sendto(self.payloads[self.sent % UDP_PATTERNS])
        self.sent += 1

    def datagram_received(self, data, addr):
        if self.error is not None:
            return
        if data != self.payloads[self.received % UDP_PATTERNS]:
            self.error = "datagram %d came back wrong (%d bytes)" % (self.received, len(data))
            self.done.set_exception(BenchError(self.error))
            return
        self.received += 1
        if self.sent < self.n:
            self._send()
        elif self.received == self.n:
            self.done.set_result(None)

    def error_received(self, exc):
        if self.error is None:
            self.error = "client: %r" % (exc,)
            self.done.set_exception(BenchError(self.error))


def _udp_case(size):
    async def case(loop, n, clock):
        payloads = _udp_payloads(size)
        server, _ = await loop.create_datagram_endpoint(
            _UdpEcho, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        done = loop.create_future()
        client, proto = await loop.create_datagram_endpoint(
            lambda: _UdpClient(payloads, n, done), remote_addr=addr)
        try:
            clock.start()
            proto.start()
            await _within(done, lambda: "%d of %d datagrams came back" % (proto.received, n))
            clock.stop()
        finally:
            client.close()
            server.close()
        _check(proto.received == n == proto.sent, "echoed %d of %d" % (proto.received, n))
    return case


# ---------------------------------------------------------------------------
# Pipe throughput
# ---------------------------------------------------------------------------

PIPE_CHUNK = 64 * KIB


def _pipe_pattern():
    chunk = random.Random(7).randbytes(PIPE_CHUNK)
    # Any read (at most 256 KiB on every loop) starting anywhere in a chunk
    # is a slice of this.
    return chunk, chunk * 6


class _PipeReader(asyncio.Protocol):
    def __init__(self, stream, total, done):
        self.stream = stream
        self.total = total
        self.done = done
        self.received = 0
        self.bad = None

    def data_received(self, data):
        off = self.received % PIPE_CHUNK
        n = len(data)
        if self.bad is None and data != self.stream[off:off + n]:
            self.bad = self.received
        self.received += n

    def eof_received(self):
        pass

    def connection_lost(self, exc):
        if exc is not None:
            self.done.set_exception(exc)
        elif self.bad is not None:
            self.done.set_exception(BenchError("wrong bytes at offset %d" % self.bad))
        elif self.received != self.total:
            self.done.set_exception(BenchError(
                "read %d bytes, %d were written" % (self.received, self.total)))
        else:
            self.done.set_result(None)


class _PipeWriter(asyncio.BaseProtocol):
    def __init__(self, loop):
        self.loop = loop
        self.resumed = None

    def pause_writing(self):
        self.resumed = self.loop.create_future()

    def resume_writing(self):
        self.resumed.set_result(None)
        self.resumed = None

    def connection_lost(self, exc):
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_exception(exc or BenchError("write pipe lost"))


async def case_pipe_throughput(loop, n, clock):
    """n bytes (a multiple of PIPE_CHUNK) through an os.pipe()."""
    chunk, stream = _pipe_pattern()
    rfd, wfd = os.pipe()
    rpipe, wpipe = os.fdopen(rfd, "rb", 0), os.fdopen(wfd, "wb", 0)
    done = loop.create_future()
    try:
        rtr, reader = await loop.connect_read_pipe(
            lambda: _PipeReader(stream, n, done), rpipe)
        wtr, writer = await loop.connect_write_pipe(lambda: _PipeWriter(loop), wpipe)
    except BaseException:
        rpipe.close()
        wpipe.close()
        raise
    try:
        clock.start()
        for _ in range(n // PIPE_CHUNK):
            if writer.resumed is not None:
                await writer.resumed
            wtr.write(chunk)
        wtr.close()
        await _within(done, lambda: "read %d of %d bytes" % (reader.received, n))
        clock.stop()
    finally:
        wtr.close()
        rtr.close()


# ---------------------------------------------------------------------------
# Streams client (asyncio.open_connection) against an in-process echo
# ---------------------------------------------------------------------------

STREAMS_CLIENTS = 10


class _EchoProto(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def _streams_client_case(size):
    async def case(loop, n, clock):
        """n request/response round trips of size bytes by
        STREAMS_CLIENTS open_connection() clients (write, drain,
        readexactly) against a Protocol echo server on the same loop."""
        server = await loop.create_server(_EchoProto, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()[:2]
        conns = [await asyncio.open_connection(*addr) for _ in range(STREAMS_CLIENTS)]
        msg = random.Random(size).randbytes(size)
        counts = [0] * STREAMS_CLIENTS

        async def client(i, reader, writer, rounds):
            for _ in range(rounds):
                writer.write(msg)
                await writer.drain()
                if await reader.readexactly(size) != msg:
                    raise BenchError("client %d: the echo differs" % i)
                counts[i] += 1

        per = [n // STREAMS_CLIENTS + (i < n % STREAMS_CLIENTS)
               for i in range(STREAMS_CLIENTS)]
        try:
            clock.start()
            await _within(asyncio.gather(*[client(i, r, w, per[i])
                                           for i, (r, w) in enumerate(conns)]),
                          lambda: "%d of %d round trips" % (sum(counts), n))
            clock.stop()
        finally:
            for _, w in conns:
                w.close()
            server.close()
            for _, w in conns:
                try:
                    await w.wait_closed()
                except OSError:
                    pass
            await server.wait_closed()
        _check(sum(counts) == n, "%d of %d round trips" % (sum(counts), n))
    return case


# ---------------------------------------------------------------------------
# Subprocesses
# ---------------------------------------------------------------------------

SPAWN_CONCURRENCY = 4
TRUE = shutil.which("true") or "/bin/true"
FALSE = shutil.which("false") or "/bin/false"
CAT = shutil.which("cat") or "/bin/cat"
ROUNDTRIP_SIZE = 4 * KIB


async def _workers(n, work):
    """Runs work(i) for i in range(n), SPAWN_CONCURRENCY at a time."""
    it = iter(range(n))

    async def worker():
        for i in it:
            await work(i)

    await asyncio.gather(*[worker() for _ in range(min(SPAWN_CONCURRENCY, n))])


async def case_subprocess_spawn(loop, n, clock):
    """create_subprocess_exec of true/false (in turn) + wait(), 4 at a
    time; the exit codes must be 0/1."""
    codes = {}
    devnull = subprocess.DEVNULL

    async def work(i):
        proc = await asyncio.create_subprocess_exec(
            FALSE if i & 1 else TRUE, stdin=devnull, stdout=devnull, stderr=devnull)
        codes[i] = await proc.wait()

    clock.start()
    await _within(_workers(n, work), lambda: "%d of %d children done" % (len(codes), n))
    clock.stop()
    bad = [i for i in range(n) if codes.get(i) != (i & 1)]
    _check(not bad, "%d wrong exit codes, e.g. child %s: %r" % (
        len(bad), bad[:1], [codes.get(i) for i in bad[:1]]))


async def case_subprocess_roundtrip(loop, n, clock):
    """create_subprocess_exec('cat') with stdin/stdout pipes: write 4 KiB,
    close stdin, read stdout to EOF, wait(); 4 at a time.  The output must
    be the input, the exit code 0."""
    data = [random.Random(i).randbytes(ROUNDTRIP_SIZE) for i in range(8)]
    ok = [0]
    pipe = subprocess.PIPE

    async def work(i):
        proc = await asyncio.create_subprocess_exec(CAT, stdin=pipe, stdout=pipe)
        sent = data[i % 8]
        proc.stdin.write(sent)
        await proc.stdin.drain()
        proc.stdin.close()
        out = await proc.stdout.read()
        rc = await proc.wait()
        if out != sent or rc != 0:
            raise BenchError("cat %d: %d bytes back (sent %d), exit code %r" % (
                i, len(out), len(sent), rc))
        ok[0] += 1

    clock.start()
    await _within(_workers(n, work), lambda: "%d of %d round trips done" % (ok[0], n))
    clock.stop()
    _check(ok[0] == n, "%d of %d round trips" % (ok[0], n))


# ---------------------------------------------------------------------------
# The case list
# ---------------------------------------------------------------------------


class Case(micro.Case):
    """micro.Case plus how to show a rate: n / median seconds / per."""

    def __init__(self, name, func, n, unit, doc, per=1, step=1, cpu_per=None):
        super().__init__(name, func, n, unit, doc)
        self.cpu_per = cpu_per or unit.split("/")[0]
        self.per = per      # the table shows (n / per) per second
        self.step = step    # n is rounded down to a multiple of this


# n is sized so that one asyncio run takes roughly 0.1-0.5 s here.
CASES = [
    Case("udp_echo_64B", _udp_case(64), 20_000, "datagrams/s",
         "UDP echo on 127.0.0.1, 64 B datagrams, 16 in flight; a datagram is one round trip",
         cpu_per="datagram"),
    Case("udp_echo_1K", _udp_case(1024), 20_000, "datagrams/s",
         "the same with 1 KiB datagrams", cpu_per="datagram"),
    Case("pipe_throughput", case_pipe_throughput, 256 * MIB, "MiB/s",
         "64 KiB writes into an os.pipe(), read on the same loop, until EOF",
         per=MIB, step=PIPE_CHUNK, cpu_per="MiB"),
    Case("streams_client_1K", _streams_client_case(KIB), 20_000, "round trips/s",
         "10 asyncio.open_connection() clients: write 1 KiB, drain(), readexactly(1 KiB) "
         "from a Protocol echo server on the same loop", cpu_per="round trip"),
    Case("subprocess_spawn", case_subprocess_spawn, 400, "children/s",
         "create_subprocess_exec(true|false) + wait(), 4 at a time", cpu_per="child"),
    Case("subprocess_roundtrip", case_subprocess_roundtrip, 300, "children/s",
         "create_subprocess_exec(cat): write 4 KiB, close stdin, read to EOF, wait(); "
         "4 at a time", cpu_per="child"),
]
CASES_BY_NAME = {c.name: c for c in CASES}

# --quick: micro.py's QUICK_SCALE and QUICK_REPEAT (same command line).

# The CLI (python -m fastloop bench --suite io) wraps this one.
run_case = micro.run_case


def case_n(case, scale):
    n = max(case.step * 2, int(case.n * scale))
    return n // case.step * case.step


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _fmt(x):
    return micro.fmt_rate(x) if x >= 1000 else ("%.0f" % x if x >= 100 else "%.1f" % x)


def render_table(results, labels, subject, others):
    head = ["case", "unit"] + labels + ["%s/%s" % (micro.short(subject), micro.short(o))
                                        for o in others]
    rows = []
    for name, res in results.items():
        row = [name, res["unit"]]
        for label in labels:
            lr = res["loops"].get(label)
            if lr is None:
                row.append("-")
            elif "error" in lr:
                row.append("ERROR")
            else:
                row.append("%s ±%.0f%%" % (_fmt(lr["rate"]), lr["spread"] * 100))
        for o in others:
            ratio = res["ratios"].get("%s/%s" % (subject, o))
            row.append("-" if ratio is None else "%.2fx" % ratio)
        rows.append(row)
    _geomean_row(rows, results, labels, subject, others, "ratios", 2)
    return _render(head, rows)


def render_cpu_table(results, labels, subject, others):
    head = ["CPU of this process", "per"] + labels + [
        "%s/%s" % (micro.short(subject), micro.short(o)) for o in others]
    rows = []
    for name, res in results.items():
        row = [name, res["cpu_per"]]
        for label in labels:
            lr = res["loops"].get(label)
            if lr is None:
                row.append("-")
            elif "error" in lr:
                row.append("ERROR")
            else:
                row.append("%.2f us ±%.0f%%" % (lr["cpu_us"], lr["cpu_spread"] * 100))
        for o in others:
            ratio = res["cpu_ratios"].get("%s/%s" % (subject, o))
            row.append("-" if ratio is None else "%.2fx" % ratio)
        rows.append(row)
    _geomean_row(rows, results, labels, subject, others, "cpu_ratios", 2)
    return _render(head, rows)


def _geomean_row(rows, results, labels, subject, others, key, pad):
    if len(results) > 1 and others:
        row = ["geometric mean"] + [""] * (len(labels) + pad - 1)
        for o in others:
            g = micro.geomean([r[key].get("%s/%s" % (subject, o)) for r in results.values()])
            row.append("-" if g is None else "%.2fx" % g)
        rows.append(row)


def _render(head, rows):
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = []
    for i, r in enumerate([head] + rows):
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])] + [
            c.rjust(w) for c, w in zip(r[2:], widths[2:])]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summarize(case, n, raw, subject, others):
    """micro.summarize, plus the rate in the case's unit and the process
    CPU time per operation (children's CPU not included)."""
    out = micro.summarize(case, n, raw, subject, others)
    ops = n / case.per
    out["cpu_per"] = case.cpu_per
    out["cpu_ratios"] = {}
    for label, lr in out["loops"].items():
        if "error" in lr:
            continue
        lr["rate"] = ops / lr["median_s"]
        cpu = [c / ops * 1e6 for c in lr["cpu_s"]]
        med = statistics.median(cpu)
        lr["cpu_us"] = med
        lr["cpu_spread"] = statistics.median(abs(x - med) for x in cpu) / med if med else 0.0
    subj = out["loops"].get(subject, {})
    for other in others:
        o = out["loops"].get(other, {})
        if "cpu_us" in subj and "cpu_us" in o and subj["cpu_us"]:
            # > 1: the subject needs less CPU per operation.
            out["cpu_ratios"]["%s/%s" % (subject, other)] = o["cpu_us"] / subj["cpu_us"]
    return out


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_args(argv=None):
    return micro.parse_args(argv, micro.build_parser(
        "fastloop datagram, pipe and subprocess benchmarks (see bench/README.md)",
        pin_help="pin the process (its threads and its children) to one CPU"))


def select_cases(spec):
    return micro.select_cases(spec, CASES_BY_NAME)


def main(argv=None, title="fastloop I/O benchmarks"):
    args = parse_args(argv)
    if args.list:
        for c in CASES:
            print("%-21s N=%-10d %s" % (c.name, c.n, c.doc))
        return 0
    cases = select_cases(args.cases)
    default_spec = parse_args([]).loops
    entries, descs, notes = micro.select_loops(args.loops, args.aa, default_spec)
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
    labels = [label for label, _ in entries]
    subject, others = labels[0], labels[1:]

    def log(msg):
        if not args.quiet:
            sys.stderr.write(msg)
            sys.stderr.flush()

    if sys.flags.dev_mode or os.environ.get("PYTHONASYNCIODEBUG"):
        notes.append("WARNING: asyncio debug mode is on (-X dev / PYTHONASYNCIODEBUG): "
                     "numbers are not representative")

    info = micro.machine_info(args, descs)
    info["suite"] = "io"
    results = {}
    t_start = perf_counter()
    for case in cases:
        n = case_n(case, args.scale)
        log("%-21s " % case.name)
        t0 = perf_counter()
        raw = run_case(case, entries, n, args.repeat, args.warmup, args.gc,
                       args.timeout, log, fresh=args.fresh_loop)
        log(" %.1fs\n" % (perf_counter() - t0))
        results[case.name] = summarize(case, n, raw, subject, others)
    wall = perf_counter() - t_start

    micro.print_header(title, info, labels, descs, args, subject, "rate")
    print(render_table(results, labels, subject, others))
    print()
    print("CPU time of this process per operation (children not counted; "
          "%s/x > 1.00x: %s needs less):" % (micro.short(subject), subject))
    print()
    print(render_cpu_table(results, labels, subject, others))
    errors = micro.render_errors(results)
    if errors:
        print("\nerrors:")
        print("\n".join(errors))
    if args.aa:
        line = micro.aa_summary(results, subject, labels[-1])
        if line:
            print("\n" + line)
    for note in notes:
        print("note: " + note)
    print("total %.1f s" % wall)

    if args.json:
        info["wall_s"] = wall
        micro.write_json(args.json, info, results, subject, others, cpu_key="geomean_cpu")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
