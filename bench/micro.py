#!/usr/bin/env python3
"""Scheduling micro-benchmarks: fastloop vs asyncio vs uvloop, in one run.

Every case runs on every selected loop in the same process, with a fresh
loop per run.  The repeats alternate the loops (each repeat runs every loop
once, in an order that changes from repeat to repeat: see run_order), so
slow drift of the machine (another tenant, CPU frequency, the host stealing
time) is spread over all loops instead of landing on whichever ran last.
The table shows medians and the ratio of fastloop's median to each other
loop's (> 1.00x means fastloop is faster).

    python bench/micro.py                      # all cases, 7 repeats
    python bench/micro.py --quick              # 3 repeats, 1/5 of the work
    python bench/micro.py --cases call_soon_batch,timer_cancel --repeat 11
    python bench/micro.py --aa                 # add a second fastloop entry
    python bench/micro.py --pin 1 --json out.json

See bench/README.md for the method and how to read the numbers.
"""
import argparse
import asyncio
import faulthandler
import gc
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

perf_counter = time.perf_counter
process_time = time.process_time


def _minflt():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


_TICK = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _steal():
    """Seconds the hypervisor has stolen from all of this VM's CPUs."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
        return int(fields[8]) * _TICK  # cpu user nice system idle iowait irq softirq steal
    except (OSError, IndexError, ValueError):
        return 0.0


class Clock:
    """What one timed run cost: wall time (what the table shows), process
    CPU time, minor page faults (one costs 11-42 us on these VMs) and the
    time the host stole from the VM's CPUs meanwhile (/proc/stat, in clock
    ticks of 10 ms, summed over CPUs).  The counters are read outside the
    wall-clock interval.
    """

    __slots__ = ("wall", "cpu", "faults", "steal")

    def start(self):
        self.steal = _steal()
        self.faults = _minflt()
        self.cpu = process_time()
        self.wall = perf_counter()

    def stop(self):
        wall = perf_counter()
        cpu = process_time()
        faults = _minflt()
        self.wall = wall - self.wall
        self.cpu = cpu - self.cpu
        self.faults = faults - self.faults
        self.steal = _steal() - self.steal


class BenchError(Exception):
    """A case computed a wrong result (a loop bug, not a slow loop)."""


def _check(cond, what):
    if not cond:
        raise BenchError(what)


def _delays(n, lo, hi, seed=12345):
    """n deterministic pseudo-random delays in [lo, hi)."""
    rnd = random.Random(seed)
    return [lo + (hi - lo) * rnd.random() for _ in range(n)]


# ---------------------------------------------------------------------------
# Cases.  Each one is a coroutine function (loop, n, clock).  It does its
# set-up (threads, delay tables) before starting the clock, measures only the
# work that depends on the loop, and checks the result, so that a loop that
# drops callbacks fails loudly instead of looking fast.
# ---------------------------------------------------------------------------


async def case_call_soon_batch(loop, n, clock):
    box = [0]

    def cb():
        box[0] += 1

    call_soon = loop.call_soon
    done = loop.create_future()
    clock.start()
    for _ in range(n):
        call_soon(cb)
    call_soon(done.set_result, None)
    await done
    clock.stop()
    _check(box[0] == n, "ran %d of %d callbacks" % (box[0], n))


async def case_call_soon_chain(loop, n, clock):
    box = [0]
    call_soon = loop.call_soon
    done = loop.create_future()

    def cb():
        box[0] += 1
        if box[0] < n:
            call_soon(cb)
        else:
            done.set_result(None)

    clock.start()
    call_soon(cb)
    await done
    clock.stop()
    _check(box[0] == n, "ran %d of %d callbacks" % (box[0], n))


async def case_timer_cancel(loop, n, clock):
    delays = _delays(n, 10.0, 20.0)

    def cb():
        raise AssertionError("a cancelled timer fired")

    call_later = loop.call_later
    clock.start()
    handles = [call_later(d, cb) for d in delays]
    for h in handles:
        h.cancel()
    # One iteration, so a loop that drops cancelled timers lazily pays here.
    await asyncio.sleep(0)
    clock.stop()
    _check(all(h.cancelled() for h in handles), "timer not cancelled")


async def case_timer_fire(loop, n, clock):
    # Delays in [1 ms, 2 ms): uvloop turns a delay that rounds to 0 ms into
    # call_soon, which would not be a timer any more.  The measured time
    # includes at most ~2 ms of waiting for the last timer.
    delays = _delays(n, 0.001, 0.002)
    box = [0]
    done = loop.create_future()

    def cb():
        box[0] += 1
        if box[0] == n:
            done.set_result(None)

    call_later = loop.call_later
    clock.start()
    for d in delays:
        call_later(d, cb)
    await done
    clock.stop()
    _check(box[0] == n, "fired %d of %d timers" % (box[0], n))


async def case_create_task(loop, n, clock):
    box = [0]

    async def trivial():
        box[0] += 1

    create_task = loop.create_task
    clock.start()
    for _ in range(n - 1):
        create_task(trivial())
    # Tasks start in FIFO order, so the last one finishes after the others.
    await create_task(trivial())
    clock.stop()
    _check(box[0] == n, "ran %d of %d tasks" % (box[0], n))


async def case_sleep0_pingpong(loop, n, clock):
    half = n // 2
    box = [0]

    async def player():
        for _ in range(half):
            await asyncio.sleep(0)
            box[0] += 1

    clock.start()
    a = loop.create_task(player())
    b = loop.create_task(player())
    await a
    await b
    clock.stop()
    _check(box[0] == 2 * half, "did %d of %d sleeps" % (box[0], 2 * half))


GATHER_WIDTH = 10_000


async def case_gather(loop, n, clock):
    box = [0]

    async def trivial():
        box[0] += 1

    rounds = max(1, n // GATHER_WIDTH)
    clock.start()
    for _ in range(rounds):
        await asyncio.gather(*[trivial() for _ in range(GATHER_WIDTH)])
    clock.stop()
    _check(box[0] == rounds * GATHER_WIDTH, "gather lost tasks")


async def case_future(loop, n, clock):
    create_future = loop.create_future
    call_soon = loop.call_soon
    total = 0
    clock.start()
    for i in range(n):
        f = create_future()
        call_soon(f.set_result, i)
        total += await f
    clock.stop()
    _check(total == n * (n - 1) // 2, "wrong future results")


async def case_threadsafe_burst(loop, n, clock):
    box = [0]
    done = loop.create_future()

    def cb():
        box[0] += 1
        if box[0] == n:
            done.set_result(None)

    go = threading.Event()

    def producer():
        go.wait()
        cst = loop.call_soon_threadsafe
        for _ in range(n):
            cst(cb)

    th = threading.Thread(target=producer, daemon=True)
    th.start()
    clock.start()
    go.set()
    await done
    clock.stop()
    th.join()
    _check(box[0] == n, "ran %d of %d callbacks" % (box[0], n))


async def case_thread_pingpong(loop, n, clock):
    # One round trip: the thread hands a callback to the loop with
    # call_soon_threadsafe and blocks on a lock; the callback (on the loop)
    # releases the lock.  This is the wake-up latency of an idle loop.
    done = loop.create_future()
    lock = threading.Lock()
    lock.acquire()
    box = [0]
    go = threading.Event()

    def pong():
        box[0] += 1
        lock.release()

    def client():
        go.wait()
        cst = loop.call_soon_threadsafe
        for _ in range(n):
            cst(pong)
            lock.acquire()
        cst(done.set_result, None)

    th = threading.Thread(target=client, daemon=True)
    th.start()
    clock.start()
    go.set()
    await done
    clock.stop()
    th.join()
    _check(box[0] == n, "did %d of %d round trips" % (box[0], n))


class Case:
    def __init__(self, name, func, n, unit, doc):
        self.name = name
        self.func = func
        self.n = n
        self.unit = unit
        self.doc = doc


# n is sized so that one asyncio run takes roughly 0.05-0.3 s here.
CASES = [
    Case("call_soon_batch", case_call_soon_batch, 200_000, "callbacks",
         "schedule N callbacks with call_soon, then run them"),
    Case("call_soon_chain", case_call_soon_chain, 100_000, "callbacks",
         "each callback schedules the next: one callback per iteration"),
    Case("timer_cancel", case_timer_cancel, 100_000, "timers",
         "call_later N timers (10-20 s), cancel them all, one iteration"),
    Case("timer_fire", case_timer_fire, 50_000, "timers",
         "call_later N timers of 1-2 ms and wait until all have fired"),
    Case("create_task", case_create_task, 50_000, "tasks",
         "create_task of N trivial coroutines, run them all"),
    Case("sleep0_pingpong", case_sleep0_pingpong, 100_000, "switches",
         "two tasks alternating on asyncio.sleep(0), N sleeps in all"),
    Case("gather", case_gather, 20_000, "tasks",
         "asyncio.gather of 10,000 trivial coroutines, N/10,000 times"),
    Case("future", case_future, 30_000, "futures",
         "create_future, set_result from a call_soon callback, await"),
    # 200,000: a burst must outlast the interpreter's 5 ms GIL switch
    # interval many times over, or a run measures where the forced switches
    # between the two threads fall (at 20,000, ~5 ms, A/A spread 20 %).
    Case("threadsafe_burst", case_threadsafe_burst, 200_000, "callbacks",
         "a thread calls call_soon_threadsafe N times; run them all"),
    Case("thread_pingpong", case_thread_pingpong, 5_000, "round trips",
         "thread -> call_soon_threadsafe -> loop releases a lock -> thread"),
]
CASES_BY_NAME = {c.name: c for c in CASES}

QUICK_SCALE = 0.2
QUICK_REPEAT = 3


# ---------------------------------------------------------------------------
# Loops.
# ---------------------------------------------------------------------------

# fastloop-io-first: fastloop with set_io_first(True) (uvloop's order of I/O
# and queued callbacks; README "Optional: uvloop's order"), on request only.
# fastloop-py-streams: fastloop with native_streams(False), asyncio's Python
# StreamReader/StreamWriter (README "Native asyncio streams"); the switch is
# process-wide, so this kind is for bench/net.py, whose servers run one loop
# per process.
LOOP_KINDS = ("fastloop", "asyncio", "uvloop", "fastloop-io-first",
              "fastloop-py-streams")


def _import_fastloop():
    """Import fastloop with its C core.

    The installed package wins.  Failing that, a checkout with an in-place
    build (`make debug`, `python setup.py build_ext --inplace`) is used.
    """
    try:
        import fastloop
        import fastloop._core  # noqa: F401
        return fastloop
    except ImportError as exc:
        first = exc
    for mod in [m for m in sys.modules if m.split(".")[0] == "fastloop"]:
        del sys.modules[mod]
    sys.path.insert(0, ROOT)
    try:
        import fastloop
        import fastloop._core  # noqa: F401,F811
        return fastloop
    except ImportError:
        sys.path.remove(ROOT)
        raise first


def loop_factory(kind):
    """Return (factory, description) for a loop kind; raises ImportError."""
    if kind == "fastloop":
        fastloop = _import_fastloop()
        desc = "fastloop %s (%s)" % (
            getattr(fastloop, "__version__", "?"),
            os.path.dirname(fastloop.__file__),
        )
        return fastloop.new_event_loop, desc
    if kind == "fastloop-io-first":
        factory, desc = loop_factory("fastloop")

        def io_first_loop():
            loop = factory()
            loop.set_io_first(True)
            return loop

        return io_first_loop, desc + ", set_io_first(True)"
    if kind == "fastloop-py-streams":
        factory, desc = loop_factory("fastloop")
        fastloop = _import_fastloop()

        def py_streams_loop():
            fastloop.native_streams(False)
            return factory()

        return py_streams_loop, desc + ", native_streams(False)"
    if kind == "asyncio":
        return asyncio.SelectorEventLoop, "asyncio.SelectorEventLoop"
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop, "uvloop %s" % uvloop.__version__
    raise ValueError("unknown loop %r (known: %s)" % (kind, ", ".join(LOOP_KINDS)))


# ---------------------------------------------------------------------------
# Running.
# ---------------------------------------------------------------------------


def run_one(loop, case, n, keep_gc, timeout):
    """Run case once on loop; returns its Clock."""
    clock = Clock()
    loop.set_debug(False)
    gc.collect()
    if not keep_gc:
        gc.disable()
    # A loop that never wakes up would hang the whole run: dump the
    # stacks and exit instead.
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        loop.run_until_complete(case.func(loop, n, clock))
    finally:
        faulthandler.cancel_dump_traceback_later()
        gc.enable()
    return clock


def run_order(items, r):
    """The order of the loops in repeat r.

    Repeats go in pairs: a rotation of the list, then the same rotation
    reversed; the next pair rotates by one more.  Every loop thus runs in
    every position, and runs after each other loop about as often as before
    it: a run that benefits from following a run of a similar loop (warm
    caches, arenas of the right size still mapped) cannot always favour the
    same loop.
    """
    k = (r // 2) % len(items)
    order = items[k:] + items[:k]
    return order if r % 2 == 0 else order[::-1]


def run_case(case, entries, n, repeat, warmup, keep_gc, timeout, log,
             fresh=False):
    """Returns {label: {"samples": [Clock, ...]} or {"error": str}}.

    Each loop kind gets one loop for the case's warm-up and timed runs (an
    application's loop is long-lived: the warm-up warms the loop's own
    memory too), closed at the end of the case; fresh=True makes a new loop
    for every run instead (--fresh-loop)."""
    res = {label: {"samples": []} for label, _ in entries}
    factories = dict(entries)
    labels = [label for label, _ in entries]
    loops = {}

    def attempt(label, record):
        if "error" in res[label]:
            return
        try:
            loop = loops.get(label)
            if loop is None:
                loop = loops[label] = factories[label]()
            try:
                clock = run_one(loop, case, n, keep_gc, timeout)
            finally:
                if fresh:
                    del loops[label]
                    loop.close()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a loop under construction may raise
            res[label] = {"error": "%s: %s" % (type(exc).__name__, exc)}
            log(" [%s failed: %s]" % (label, res[label]["error"]))
            return
        if record:
            res[label]["samples"].append(clock)

    try:
        for _ in range(warmup):
            for label in labels:
                attempt(label, False)
        for r in range(repeat):
            for label in run_order(labels, r):
                attempt(label, True)
            log(".")
    finally:
        for loop in loops.values():
            loop.close()
    return res


def summarize(case, n, raw, subject, others):
    out = {"n": n, "unit": case.unit, "doc": case.doc, "loops": {}, "ratios": {}}
    for label, r in raw.items():
        if "error" in r:
            out["loops"][label] = {"error": r["error"]}
            continue
        s = [c.wall for c in r["samples"]]
        med = statistics.median(s)
        out["loops"][label] = {
            "samples_s": s,
            "cpu_s": [c.cpu for c in r["samples"]],
            "minor_faults": [c.faults for c in r["samples"]],
            "steal_s": [c.steal for c in r["samples"]],
            "median_s": med,
            "ops_per_s": n / med,
            "ns_per_op": med / n * 1e9,
            # Median absolute deviation, relative: robust to the odd run
            # that the host slowed down (min and max are in samples_s).
            "spread": statistics.median(abs(x - med) for x in s) / med,
            "median_faults": statistics.median(c.faults for c in r["samples"]),
        }
    subj = out["loops"].get(subject, {})
    for other in others:
        o = out["loops"].get(other, {})
        if "median_s" in subj and "median_s" in o:
            # Ratio of throughputs: > 1 means the subject is faster.
            out["ratios"]["%s/%s" % (subject, other)] = o["median_s"] / subj["median_s"]
    return out


# ---------------------------------------------------------------------------
# Output.
# ---------------------------------------------------------------------------


def fmt_rate(x):
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return "%.2f%s" % (x / div, suffix)
    return "%.0f" % x


def short(label):
    base, twin = (label[:-2], "-b") if label.endswith("-b") else (label, "")
    return {"fastloop": "fl", "asyncio": "aio", "uvloop": "uv"}.get(base, base) + twin


def render_table(results, labels, subject, others):
    head = ["case"] + labels + ["%s/%s" % (short(subject), short(o)) for o in others]
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
                row.append("%s ±%.0f%%" % (fmt_rate(lr["ops_per_s"]), lr["spread"] * 100))
        for o in others:
            ratio = res["ratios"].get("%s/%s" % (subject, o))
            row.append("-" if ratio is None else "%.2fx" % ratio)
        rows.append(row)
    if len(results) > 1 and others:
        row = ["geometric mean"] + [""] * len(labels)
        for o in others:
            g = geomean([r["ratios"].get("%s/%s" % (subject, o)) for r in results.values()])
            row.append("-" if g is None else "%.2fx" % g)
        rows.append(row)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = []
    for i, r in enumerate([head] + rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def geomean(xs):
    xs = [x for x in xs if x]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def render_errors(results):
    lines = []
    for name, res in results.items():
        for label, lr in res["loops"].items():
            if "error" in lr:
                lines.append("  %s on %s: %s" % (name, label, lr["error"]))
    return lines


def aa_summary(results, subject, twin):
    key = "%s/%s" % (subject, twin)
    dev = [abs(r["ratios"][key] - 1) for r in results.values() if key in r["ratios"]]
    if not dev:
        return None
    return "A/A noise (%s vs %s): median |ratio-1| = %.1f%%, max = %.1f%% over %d cases" % (
        subject, twin, statistics.median(dev) * 100, max(dev) * 100, len(dev))


def _git_rev():
    try:
        out = subprocess.run(
            ["git", "-C", ROOT, "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(args, descs):
    info = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "git": _git_rev(),
        "loops": descs,
        "repeat": args.repeat,
        "warmup": args.warmup,
        "scale": args.scale,
        "gc": "enabled" if args.gc else "disabled during timed runs",
        "loop_per": "run" if getattr(args, "fresh_loop", False) else "case",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return info


# ---------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------


def build_parser(description="fastloop scheduling micro-benchmarks (see bench/README.md)",
                 pin_help="pin the process (and the threads it starts) to one CPU"):
    """The command line of micro.py, shared by io.py (same method, other cases)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--cases", help="comma-separated case names (default: all; see --list)")
    p.add_argument("--loops", default="fastloop,asyncio,uvloop",
                   help="comma-separated loops; the first is the one compared "
                        "(default: fastloop,asyncio,uvloop; uvloop is skipped "
                        "if not installed)")
    p.add_argument("--repeat", type=int, help="timed runs per loop and case (default 7, --quick 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per loop and case (default 1)")
    p.add_argument("--scale", type=float, help="multiply every case's N (default 1, --quick 0.2)")
    p.add_argument("--quick", action="store_true", help="3 repeats of 1/5 of the work")
    p.add_argument("--aa", action="store_true",
                   help="A/A run: add a second entry of the first loop to show the noise")
    p.add_argument("--pin", type=int, metavar="CPU", help=pin_help)
    p.add_argument("--fresh-loop", action="store_true",
                   help="a new loop for every run (default: one loop per loop "
                        "kind for a case's warm-up and timed runs)")
    p.add_argument("--gc", action="store_true",
                   help="leave the cyclic GC enabled during timed runs")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="abort (with stack dumps) if one run takes longer (s)")
    p.add_argument("--json", metavar="FILE", help="also write all samples and metadata as JSON")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p


def parse_args(argv=None, parser=None):
    p = parser if parser is not None else build_parser()
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = QUICK_REPEAT if args.quick else 7
    if args.scale is None:
        args.scale = QUICK_SCALE if args.quick else 1.0
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    return args


def select_cases(spec, by_name=None):
    """The cases named by --cases (all when spec is empty), from by_name
    (default: this file's cases)."""
    by_name = CASES_BY_NAME if by_name is None else by_name
    if not spec:
        return list(by_name.values())
    out = []
    for name in spec.split(","):
        name = name.strip()
        if name not in by_name:
            raise SystemExit("unknown case %r; known: %s" % (name, ", ".join(by_name)))
        out.append(by_name[name])
    return out


def select_loops(spec, aa, default_spec):
    """Returns ([(label, factory)], {label: description}, [notes])."""
    kinds = [k.strip() for k in spec.split(",") if k.strip()]
    entries, descs, notes = [], {}, []
    for kind in kinds:
        if kind not in LOOP_KINDS:
            raise SystemExit("unknown loop %r; known: %s" % (kind, ", ".join(LOOP_KINDS)))
        try:
            factory, desc = loop_factory(kind)
        except ImportError as exc:
            # Only uvloop is optional, and only when not asked for by name.
            if kind == "uvloop" and spec == default_spec:
                notes.append("uvloop is not installed: skipped (pip install uvloop)")
                continue
            raise SystemExit("cannot load %s: %s" % (kind, exc))
        entries.append((kind, factory))
        descs[kind] = desc
    if not entries:
        raise SystemExit("no loop to run")
    if aa:
        label, factory = entries[0]
        twin = label + "-b"
        entries.append((twin, factory))
        descs[twin] = descs[label] + " (A/A twin)"
    return entries, descs, notes


def print_header(title, info, labels, descs, args, subject, unit):
    """The lines above the table: machine, loops, method (io.py too)."""
    print()
    print("%s: CPython %s, %s, %s" % (title, info["python"], info["platform"], info["cpu"]))
    for label in labels:
        print("  %-10s %s" % (label, descs[label]))
    print("  %d timed runs per loop and case, loops alternated, %s; cell = median "
          "%s ±(median absolute deviation / median)" % (
              args.repeat, "a fresh loop per run" if info.get("loop_per") == "run"
              else "one loop per case", unit))
    print("  GC %s%s; %s/x > 1.00x: %s is faster than x" % (
        info["gc"], ", pinned to CPU %d" % args.pin if args.pin is not None else "",
        short(subject), subject))
    print()


def write_json(path, info, results, subject, others, cpu_key=None):
    """--json: the metadata, every case's results and the geometric mean of
    each subject/other ratio; with cpu_key, also those of the cases'
    "cpu_ratios" under that key (net.py's and io.py's CPU tables)."""
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    data = {"meta": info, "results": results, "geomean": {}}
    if cpu_key:
        data[cpu_key] = {}
    for o in others:
        key = "%s/%s" % (subject, o)
        data["geomean"][key] = geomean([r["ratios"].get(key) for r in results.values()])
        if cpu_key:
            data[cpu_key][key] = geomean([r["cpu_ratios"].get(key) for r in results.values()])
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    print("wrote %s" % path)


def main(argv=None, title="fastloop micro-benchmarks"):
    args = parse_args(argv)
    if args.list:
        for c in CASES:
            print("%-18s N=%-8d %s" % (c.name, c.n, c.doc))
        return 0
    cases = select_cases(args.cases)
    default_spec = parse_args([]).loops
    entries, descs, notes = select_loops(args.loops, args.aa, default_spec)
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

    info = machine_info(args, descs)
    results = {}
    t_start = perf_counter()
    for case in cases:
        n = max(2, int(case.n * args.scale))
        if case.name == "gather":
            n = max(GATHER_WIDTH, n // GATHER_WIDTH * GATHER_WIDTH)
        log("%-18s " % case.name)
        t0 = perf_counter()
        raw = run_case(case, entries, n, args.repeat, args.warmup, args.gc,
                       args.timeout, log, fresh=args.fresh_loop)
        log(" %.1fs\n" % (perf_counter() - t0))
        results[case.name] = summarize(case, n, raw, subject, others)
    wall = perf_counter() - t_start

    print_header(title, info, labels, descs, args, subject, "ops/s")
    print(render_table(results, labels, subject, others))
    errors = render_errors(results)
    if errors:
        print("\nerrors:")
        print("\n".join(errors))
    if args.aa:
        line = aa_summary(results, subject, labels[-1])
        if line:
            print("\n" + line)
    for note in notes:
        print("note: " + note)
    print("total %.1f s" % wall)

    if args.json:
        info["wall_s"] = wall
        write_json(args.json, info, results, subject, others)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
