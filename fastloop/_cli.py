"""``python -m fastloop``: build information and the benchmark suite.

    python -m fastloop info [--json]
    python -m fastloop bench [--suite micro,net,io|all] [--plot FILE.png]
                             [--bench-dir DIR] [suite options]

``bench`` runs benchmark suites from bench/ -- micro.py (scheduling),
net.py (echo and HTTP servers under a C load generator, a quick subset by
default) and io.py (UDP, pipes, subprocesses) -- on fastloop, asyncio's
SelectorEventLoop and uvloop, with a progress line, each suite's table of
medians and ratios, and an overall line of geometric means.  bench/ is part
of the source checkout, not of the installed
package: it is looked for next to the ``fastloop`` package (an editable
install or a checkout on ``sys.path``), in ``$FASTLOOP_BENCH_DIR`` and in
``--bench-dir``.  Options ``bench`` does not know itself (``--quick``,
``--cases`` (with one suite), ``--loops``, ``--repeat``, ``--json FILE``, ...)
go to each suite unchanged; ``python -m fastloop bench --help-micro`` lists
micro.py's.
"""

import argparse
import importlib.util
import inspect
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import fastloop
from fastloop import _core

BENCH_ENV = "FASTLOOP_BENCH_DIR"

_INTEGRATIONS = (
    # (distribution, how to select fastloop there)
    ("uvicorn", "uvicorn app:app --loop fastloop:new_event_loop  (0.36+)"),
    ("aiohttp", "web.run_app(app, loop=fastloop.new_event_loop())"),
    ("gunicorn", "--worker-class fastloop.gunicorn.GunicornWorker / UvicornWorker"),
    ("uvicorn-worker", "base of fastloop.gunicorn.UvicornWorker"),
    ("pytest-asyncio", "see docs/frameworks.md"),
    ("anyio", "backend_options={'loop_factory': fastloop.new_event_loop}"),
)


def _dist_version(name):
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------


def collect_info():
    """Everything ``python -m fastloop info`` reports, as a dict."""
    pkg_dir = os.path.dirname(os.path.abspath(fastloop.__file__))
    bench_dir, bench_how = find_bench_dir()
    debug_build = getattr(_core, "DEBUG_BUILD", None)
    return {
        "fastloop": fastloop.__version__,
        "package": pkg_dir,
        "core": os.path.abspath(_core.__file__),
        "poller": getattr(_core, "POLLER", None),
        "debug_build": None if debug_build is None else bool(debug_build),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "uvloop": _dist_version("uvloop"),
        "bench_dir": bench_dir,
        "bench_dir_found_by": bench_how,
        "integrations": {name: _dist_version(name) for name, _ in _INTEGRATIONS},
    }


def cmd_info(args):
    info = collect_info()
    if args.json:
        json.dump(info, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    db = info["debug_build"]
    rows = [
        ("fastloop", "%s (%s)" % (info["fastloop"], info["package"])),
        ("C core", info["core"]),
        ("poller", info["poller"] or "?"),
        ("debug build", "?" if db is None else (
            "yes (DEBUG_BUILD=1: -O0, asserts, FL_DEBUG checks)" if db
            else "no (DEBUG_BUILD=0)")),
        ("Python", "%s %s (%s)" % (info["implementation"], info["python"],
                                   info["executable"])),
        ("platform", info["platform"]),
        ("uvloop", info["uvloop"] or "not installed"),
        ("bench/", info["bench_dir"] and "%s (%s)" % (info["bench_dir"], info["bench_dir_found_by"])
         or "not found (not installed with the package; see python -m fastloop bench --help)"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print("%-*s  %s" % (width, k, v))
    print()
    print("frameworks installed:")
    for name, how in _INTEGRATIONS:
        ver = info["integrations"][name]
        print("  %-15s %-12s %s" % (name, ver or "-", how if ver else ""))
    return 0


# ---------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------


def _is_bench_dir(d):
    return bool(d) and os.path.isfile(os.path.join(d, "micro.py"))


def find_bench_dir(explicit=None):
    """Returns (directory or None, how it was found)."""
    if explicit:
        return (os.path.abspath(explicit), "--bench-dir") if _is_bench_dir(explicit) else (None, None)
    env = os.environ.get(BENCH_ENV)
    if env:
        return (os.path.abspath(env), "$" + BENCH_ENV) if _is_bench_dir(env) else (None, None)
    pkg_dir = os.path.dirname(os.path.abspath(fastloop.__file__))
    checkout = os.path.join(os.path.dirname(pkg_dir), "bench")
    if _is_bench_dir(checkout):
        return checkout, "source checkout next to the fastloop package"
    cwd = os.path.join(os.getcwd(), "bench")
    if _is_bench_dir(cwd):
        return os.path.abspath(cwd), "./bench in the current directory"
    return None, None


def load_bench_module(bench_dir, filename):
    """Import bench_dir/<filename> as a module under a private name (net.py
    and io.py import micro.py themselves, with bench_dir on sys.path)."""
    if bench_dir not in sys.path:
        sys.path.insert(0, bench_dir)
    path = os.path.join(bench_dir, filename)
    name = "_fastloop_bench_" + os.path.splitext(filename)[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses/pickle look modules up here
    spec.loader.exec_module(mod)
    return mod


def load_micro(bench_dir):
    """Import bench_dir/micro.py as a module (not as a top-level ``micro``)."""
    return load_bench_module(bench_dir, "micro.py")


class Progress:
    """One status line on stderr: [case k/N] name, runs done, elapsed.

    On a terminal the line is redrawn in place; otherwise one line is
    written per finished case.
    """

    def __init__(self, total, runs_per_case, stream=None):
        self.total = total
        self.runs_per_case = runs_per_case
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.index = 0
        self.name = ""
        self.runs = 0
        self.t0 = time.monotonic()
        self.case_t0 = self.t0

    def _bar(self):
        width = 20
        done = min(self.runs, self.runs_per_case)
        fill = int(width * done / max(1, self.runs_per_case))
        return "[" + "#" * fill + "." * (width - fill) + "]"

    def _draw(self):
        line = "[%d/%d] %-18s %s %d/%d repeats  %5.1fs" % (
            self.index, self.total, self.name, self._bar(), self.runs,
            self.runs_per_case, time.monotonic() - self.t0)
        self.stream.write("\r" + line + "\033[K")
        self.stream.flush()

    def start_case(self, name):
        self.index += 1
        self.name = name
        self.runs = 0
        self.case_t0 = time.monotonic()
        if self.tty:
            self._draw()

    def log(self, msg):
        # micro.run_case logs "." after each repeat and " [loop failed: ...]"
        # when a loop fails.
        if msg == ".":
            self.runs += 1
            if self.tty:
                self._draw()
        elif msg.strip():
            self.stream.write(("\n" if self.tty else "") + msg.strip() + "\n")
            self.stream.flush()

    def end_case(self):
        took = time.monotonic() - self.case_t0
        if self.tty:
            self._draw()
            self.stream.write("\n")
        else:
            self.stream.write("[%d/%d] %-18s %d repeats  %.1fs\n" % (
                self.index, self.total, self.name, self.runs, took))
        self.stream.flush()


def _hook_progress(micro, progress):
    """Wrap micro.run_case so that every case and repeat reports to progress.

    micro.main() looks run_case up in its module globals at call time, so
    replacing the module attribute is enough.  Returns an undo function.
    """
    orig = micro.run_case
    try:
        sig = inspect.signature(orig)
    except (TypeError, ValueError):  # pragma: no cover
        sig = None

    def run_case(case, *args, **kwargs):
        progress.start_case(getattr(case, "name", str(case)))
        if sig is not None and "log" in sig.parameters:
            bound = sig.bind(case, *args, **kwargs)
            bound.arguments["log"] = progress.log
            args, kwargs = bound.args[1:], bound.kwargs
        try:
            return orig(case, *args, **kwargs)
        finally:
            progress.end_case()

    micro.run_case = run_case

    def undo():
        micro.run_case = orig

    return undo


def _bench_plan(micro, argv):
    """(number of cases, timed runs per case, number of loops, micro.py's
    parsed arguments), or None when micro.py rejects the command line."""
    try:
        margs = micro.parse_args(argv)
        cases = micro.select_cases(margs.cases)
        loops = [x for x in margs.loops.split(",") if x.strip()]
        nloops = len(loops) + (1 if getattr(margs, "aa", False) else 0)
        return len(cases), margs.repeat, nloops, margs
    except SystemExit:
        return None


def plot_ratios(data, path, title=None):
    """Bar chart of the ratio columns of a micro.py JSON result (fastloop's
    median time over each other loop's: > 1 means fastloop is faster)."""
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    results = data["results"]
    cases = list(results)
    keys = []
    for r in results.values():
        for k in r.get("ratios", {}):
            if k not in keys:
                keys.append(k)
    if not keys:
        raise ValueError("no ratios to plot (only one loop was run?)")
    n = len(keys)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.9 * len(cases)), 4.5))
    allys = []
    for i, key in enumerate(keys):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(cases))]
        pts = [(x, results[c].get("ratios", {}).get(key)) for x, c in zip(xs, cases)]
        pts = [(x, y) for x, y in pts if y]  # a loop that failed has no ratio
        # Bars start at 1x: up when fastloop is faster, down when slower.
        ax.bar([x for x, _ in pts], [y - 1.0 for _, y in pts], width, bottom=1.0,
               label=key)
        allys.extend(y for _, y in pts)
        for x, y in pts:
            up = y >= 1.0
            ax.annotate("%.2f" % y, (x, y), ha="center", va="bottom" if up else "top",
                        fontsize=7, xytext=(0, 1 if up else -1), textcoords="offset points")
    # Ratios: a log scale puts 0.5x and 2x at the same distance from 1x.
    from matplotlib.ticker import FuncFormatter  # type: ignore[import-not-found,unused-ignore]

    from matplotlib.ticker import FixedLocator, NullLocator  # type: ignore[import-not-found,unused-ignore]

    ax.set_yscale("log")
    lo = min([1.0] + allys) / 1.25
    hi = max([1.0] + allys) * 1.3
    ax.set_ylim(lo, hi)
    ticks = [m * 10.0 ** e for e in range(-3, 4) for m in (1, 2, 5)]
    ax.yaxis.set_major_locator(FixedLocator([t for t in ticks if lo <= t <= hi]))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: "%gx" % y))
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=30, ha="right")
    ax.set_ylabel("speed ratio, log scale (> 1x: %s faster)" % keys[0].split("/")[0])
    meta = data.get("meta", {})
    ax.set_title(title or "fastloop micro-benchmarks (Python %s)" % meta.get("python", "?"))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# The suites ``bench`` knows: name -> (file in bench/, what it measures).
SUITES = {
    "micro": ("micro.py", "scheduling: callbacks, timers, tasks, futures, threads"),
    "net": ("net.py", "TCP/Unix echo and HTTP servers under a C load generator"),
    "io": ("io.py", "UDP, pipes and subprocesses"),
}
DEFAULT_SUITES = "micro,net"
# What ``bench`` runs of net.py when no --cases is given: one case per
# server shape, quickly (the whole set takes ~20 minutes: python bench/net.py).
NET_DEFAULT_CASES = (
    "tcp_proto_1K_c10,tcp_buffered_1K_c10,tcp_streams_1K_c10,tcp_sock_1K_c10,"
    "unix_proto_1K_c10,tcp_connect_c10,http_raw_c100,http_aiohttp_c100,"
    "http_aiohttp_c100_wrk")


def parse_suites(spec, bench_dir):
    """The suites named by --suite, in order; SystemExit for an unknown one."""
    names = list(SUITES) if spec == "all" else [x.strip() for x in spec.split(",") if x.strip()]
    if not names:
        raise SystemExit("python -m fastloop bench: --suite names no suite")
    for name in names:
        if name not in SUITES:
            raise SystemExit("python -m fastloop bench: unknown suite %r (known: %s, all)"
                             % (name, ", ".join(SUITES)))
    if spec == "all":
        names = [n for n in names if os.path.isfile(os.path.join(bench_dir, SUITES[n][0]))]
    return names


def _suite_parser(mod):
    """The argparse parser behind a suite's parse_args() (micro.py and net.py
    build theirs inside the function): caught while parsing no arguments."""
    caught = []
    orig = argparse.ArgumentParser.parse_args

    def grab(self, args=None, namespace=None):
        caught.append(self)
        return orig(self, [], namespace)

    argparse.ArgumentParser.parse_args = grab  # type: ignore[method-assign]
    try:
        mod.parse_args([])
    finally:
        argparse.ArgumentParser.parse_args = orig  # type: ignore[method-assign]
    return caught[0] if caught else None


def _drop_unknown(mod, argv):
    """(argv without the options this suite does not take, [dropped]).
    --scale is micro.py's, --duration net.py's: with several suites each
    gets the options it knows."""
    parser = _suite_parser(mod)
    if parser is None:
        return list(argv), []
    _ns, extras = parser.parse_known_args(argv)
    out, dropped = list(argv), []
    for tok in extras:
        out.remove(tok)
        dropped.append(tok)
    return out, dropped


def _case_names(mod):
    return set(getattr(mod, "CASES_BY_NAME", {}) or {})


def split_cases(spec, mods):
    """{suite: "case,case"} for a --cases list given without --suite: each
    case goes to the suite that has it."""
    out = {}
    for case in [c.strip() for c in spec.split(",") if c.strip()]:
        owners = [name for name, mod in mods.items() if case in _case_names(mod)]
        if not owners:
            known = sorted(set().union(*(_case_names(m) for m in mods.values())))
            raise SystemExit("python -m fastloop bench: unknown case %r; known: %s"
                             % (case, ", ".join(known)))
        out.setdefault(owners[0], []).append(case)
    return {name: ",".join(cases) for name, cases in out.items()}


def _suite_argv(name, rest, several):
    """micro.py/net.py/io.py arguments for one suite of a ``bench`` run."""
    argv = list(rest)
    if name == "net" and "--cases" not in argv and "--list" not in argv:
        argv = ["--cases", NET_DEFAULT_CASES] + argv
        if "--quick" not in argv:
            argv.append("--quick")
    if several and "--json" in argv:
        # One JSON per suite, combined at the end.
        i = argv.index("--json")
        del argv[i:i + 2]
    return argv


def _with_cases(argv, cases):
    """argv with its --cases value replaced by cases."""
    argv = list(argv)
    i = argv.index("--cases")
    argv[i + 1] = cases
    return argv


def _check_plot_deps():
    try:
        import matplotlib  # noqa: F401 # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        sys.stderr.write("python -m fastloop bench: --plot needs matplotlib "
                         "(pip install matplotlib)\n")
        return False
    return True


def _no_bench_dir(args):
    where = args.bench_dir or os.environ.get(BENCH_ENV)
    sys.stderr.write(
        "python -m fastloop bench: bench/micro.py not found%s.\n"
        "bench/ ships with the source checkout, not with the installed "
        "package: run this from a checkout (an editable install, "
        "pip install -e .), or point --bench-dir or $%s at the "
        "checkout's bench/ directory.\n"
        % (" in %s" % where if where else "", BENCH_ENV))
    return 2


def run_suite(mod, name, argv, json_path, quiet):
    """Runs one suite's main() with our progress line; returns its status."""
    plan = _bench_plan(mod, argv)
    if plan is None:
        mod.parse_args(argv)  # let the suite print its usage error (exits)
        return 2
    ncases, repeat, _nloops, margs = plan
    if margs.list:
        return mod.main(argv)
    if json_path:
        argv = argv + ["--json", json_path]
    undo = None
    if not (quiet or margs.quiet):
        progress = Progress(ncases, repeat)
        undo = _hook_progress(mod, progress)
        argv = argv + ["--quiet"]
    try:
        return mod.main(argv, title="fastloop %s benchmarks (python -m fastloop bench)" % name)
    finally:
        if undo is not None:
            undo()


def combine_results(datas):
    """One micro.py-shaped result ({"meta", "results"}) from several suites'
    JSON: case names get the suite as a prefix when there is more than one."""
    if len(datas) == 1:
        return next(iter(datas.values()))
    results, meta = {}, {}
    for name, data in datas.items():
        meta = meta or data.get("meta", {})
        for case, r in data.get("results", {}).items():
            results["%s:%s" % (name, case)] = r
    return {"meta": meta, "results": results, "suites": datas}


def overall_summary(datas):
    """Lines: per suite, the geometric mean of each ratio over its cases."""
    lines = []
    for name, data in datas.items():
        keys = []
        for r in data.get("results", {}).values():
            for k in r.get("ratios", {}):
                if k not in keys:
                    keys.append(k)
        parts = []
        for k in keys:
            xs = [r["ratios"][k] for r in data["results"].values() if r.get("ratios", {}).get(k)]
            if xs:
                gm = 1.0
                for x in xs:
                    gm *= x
                parts.append("%s %.2fx" % (k, gm ** (1.0 / len(xs))))
        lines.append("  %-6s %s" % (name, ", ".join(parts) or "no ratios"))
    return lines


def cmd_bench(args, rest):
    bench_dir, how = find_bench_dir(args.bench_dir)
    if bench_dir is None:
        return _no_bench_dir(args)
    if args.plot and not _check_plot_deps():
        return 2
    mods = {}

    def module(name):
        if name not in mods:
            mods[name] = load_bench_module(bench_dir, SUITES[name][0])
        return mods[name]

    per_suite_cases = None
    if args.suite is None and "--cases" in rest and rest.index("--cases") + 1 < len(rest):
        # No --suite: the cases say which suites run.
        present = [n for n in SUITES if os.path.isfile(os.path.join(bench_dir, SUITES[n][0]))]
        per_suite_cases = split_cases(rest[rest.index("--cases") + 1],
                                      {n: module(n) for n in present})
        suites = list(per_suite_cases)
    else:
        suites = parse_suites(args.suite or DEFAULT_SUITES, bench_dir)
    several = len(suites) > 1
    if several and per_suite_cases is None and "--cases" in rest:
        raise SystemExit("python -m fastloop bench: --cases needs a single --suite")
    if args.help_micro:
        module(suites[0]).parse_args(["--help"])  # exits
    quiet = "-q" in rest or "--quiet" in rest
    json_out = None
    if "--json" in rest:
        i = rest.index("--json")
        json_out = rest[i + 1] if i + 1 < len(rest) else None
    if args.plot and not json_out:
        # The plot is drawn from the JSON: keep it beside the picture.
        json_out = os.path.splitext(args.plot)[0] + ".json"
    tmpdir = tempfile.mkdtemp(prefix="fastloop-bench-")
    datas, status = {}, 0
    try:
        for name in suites:
            path = os.path.join(bench_dir, SUITES[name][0])
            if not os.path.isfile(path):
                sys.stderr.write("bench: suite %s: %s not found, skipped\n" % (name, path))
                continue
            print("bench: suite %s (%s): %s (%s)" % (name, SUITES[name][1], path, how),
                  file=sys.stderr)
            mod = module(name)
            argv = _suite_argv(name, rest, several)
            if per_suite_cases is not None:
                argv = _with_cases(argv, per_suite_cases[name])
            if several:
                argv, dropped = _drop_unknown(mod, argv)
                if dropped:
                    sys.stderr.write("bench: suite %s does not take %s: left out for it\n"
                                     % (name, " ".join(dropped)))
            # Always kept, for the overall line (and --json/--plot).
            jpath = os.path.join(tmpdir, name + ".json")
            try:
                st = run_suite(mod, name, argv, jpath, quiet)
            except SystemExit as exc:
                # A suite that cannot run here (no C compiler for net.py's
                # load generator, ...) says why; the others still run.
                if exc.code in (0, None):
                    st = 0
                else:
                    sys.stderr.write("bench: suite %s did not run: %s\n" % (name, exc.code))
                    st = exc.code if isinstance(exc.code, int) else 1
            status = status or st
            if os.path.isfile(jpath):
                with open(jpath) as f:
                    datas[name] = json.load(f)
                # The suite's own "wrote <tmp>/x.json" line names a file
                # that is gone when we return: the combined one is --json.
            print()
        if several and datas:
            print("overall (geometric means of the ratios; > 1.00x: fastloop is faster):")
            print("\n".join(overall_summary(datas)))
        if json_out and datas:
            combined = combine_results(datas)
            if os.path.dirname(json_out):
                os.makedirs(os.path.dirname(json_out), exist_ok=True)
            with open(json_out, "w") as f:
                json.dump(combined, f, indent=1)
            print("wrote %s" % json_out)
            if args.plot:
                plot_ratios(combined, args.plot,
                            title=None if not several else "fastloop benchmarks: %s"
                            % ", ".join(datas))
                print("wrote %s" % args.plot)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return status


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m fastloop",
        description="fastloop %s: build information and benchmarks" % fastloop.__version__)
    p.add_argument("--version", action="version", version="fastloop %s" % fastloop.__version__)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    pi = sub.add_parser("info", help="version, poller, build flags, Python, uvloop, frameworks")
    pi.add_argument("--json", action="store_true", help="print the information as JSON")
    pb = sub.add_parser(
        "bench",
        help="run the benchmarks in bench/ (fastloop vs asyncio vs uvloop)",
        description="Runs benchmark suites from the source checkout's bench/ "
                    "(not installed with the package), each on fastloop, asyncio "
                    "and uvloop (if installed), loops alternated, medians and ratios. "
                    "Suites: micro (scheduling), net (TCP/Unix echo and HTTP under a "
                    "C load generator; wrk cases when wrk is installed; quick subset "
                    "unless --cases is given), io (UDP, pipes, subprocesses). Options "
                    "not listed here go to each suite: --quick, --loops L1,L2, "
                    "--repeat N, --json FILE, --aa, --pin CPU, -q, --cases A,B (each "
                    "case runs in the suite that has it); an option a suite does not "
                    "take (micro's --scale, net's --duration) is left out for that "
                    "suite (see --help-micro).")
    pb.add_argument("--suite", default=None, metavar="S1,S2",
                    help="suites to run: micro, net, io or all (default: the "
                    "suites of the --cases given, else %s)" % DEFAULT_SUITES)
    pb.add_argument("--plot", metavar="FILE.png",
                    help="draw the fastloop/asyncio and fastloop/uvloop ratios per "
                         "case as a bar chart (needs matplotlib); without --json "
                         "the samples are also kept in FILE.json")
    pb.add_argument("--bench-dir", metavar="DIR",
                    help="the bench/ directory of a fastloop checkout (default: "
                         "next to the fastloop package, $%s, ./bench)" % BENCH_ENV)
    pb.add_argument("--help-micro", action="store_true",
                    help="show the options of the first --suite's script")
    return p


def main(argv=None):
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        return cmd_bench(args, rest)
    if rest:
        parser.error("unrecognized arguments: %s" % " ".join(rest))
    if args.command == "info":
        return cmd_info(args)
    parser.print_help()
    return 0
