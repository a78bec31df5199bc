"""Collect stdlib asyncio tests as cases and run one case at a time.

Each case is one stdlib test method. It runs as a one-test
``unittest.TestSuite`` (so ``setUpModule``/``setUpClass`` and their teardowns
behave exactly as under unittest) with a fresh policy under test installed and
the process-wide asyncio state saved and restored around it; the unittest
outcome is then translated to a pytest outcome.
"""
import asyncio
import collections
import contextlib
import fnmatch
import gc
import importlib
import inspect
import json
import os
import signal
import sys
import threading
import traceback
import unittest
from asyncio import events

from . import expectations as ex
from . import loops, suites

PREFIX = "test.test_asyncio."
VERSION = "%d.%d" % sys.version_info[:2]

TIMEOUT = float(os.environ.get("FASTLOOP_CONFORMANCE_TIMEOUT", "30"))

TESTLOOP_MODE = os.environ.get("FASTLOOP_CONFORMANCE_TESTLOOP", "skip").strip().lower()
TESTLOOP_REASON = (
    "uses the stdlib test_utils.TestLoop with a virtual clock "
    "(new_test_loop(gen)): tests asyncio itself, not the loop under test"
)


class StdlibUnavailable(Exception):
    pass


def import_stdlib_tests():
    """Import test.test_asyncio (and its utils) or raise StdlibUnavailable."""
    try:
        import test.support  # noqa: F401
        _import_unrewritten("test.test_asyncio")
        test_utils = _import_unrewritten("test.test_asyncio.utils")
    except Exception as exc:  # ImportError, unittest.SkipTest, ...
        raise StdlibUnavailable(
            "CPython's test.test_asyncio package is not installed: %r" % (exc,)
        ) from exc
    return test_utils


# ---------------------------------------------------------------------------
# Expectations


def _expectation_entries():
    return [(p, k, r, VERSION) for p, k, r in ex.EXPECTATIONS.get(VERSION, ())] + [
        (p, k, r, "*") for p, k, r in ex.EXPECTATIONS.get("*", ())
    ]


_matched_patterns = set()


def expectation_for(case_id):
    """(kind, reason) for a case id, or (None, None)."""
    for pattern, kind, reason, key in _expectation_entries():
        if kind not in ex.KINDS:
            raise ValueError("unknown expectation kind %r for %r" % (kind, pattern))
        if fnmatch.fnmatchcase(case_id, pattern):
            _matched_patterns.add((key, pattern))
            if kind in ex.APPLIES[loops.KIND]:
                return kind, reason
    return None, None


def stale_patterns():
    """Expectation patterns (of this version and "*") matching no collected case."""
    return [
        (key, pattern)
        for pattern, kind, reason, key in _expectation_entries()
        if (key, pattern) not in _matched_patterns
    ]


# ---------------------------------------------------------------------------
# Collection


class Case:
    __slots__ = ("id", "module", "cls", "method", "kind", "reason")

    def __init__(self, id, module, cls, method, kind=None, reason=None):
        self.id = id
        self.module = module
        self.cls = cls
        self.method = method
        self.kind = kind
        self.reason = reason

    def __repr__(self):
        return "<Case %s>" % self.id


# (module, class) -> reason, for the report
EXCLUDED_CLASSES = {}
# case id -> expectation kind (None: must pass), for the report
CASE_KINDS = {}


def _adapt(suite, module, cls):
    overrides = {}
    for base_name, make in suite.adapters.items():
        base = getattr(module, base_name, None)
        if isinstance(base, type) and issubclass(cls, base):
            overrides = make(module, cls)
            break
    if not overrides:
        return cls
    ns = dict(overrides)
    ns.update(__module__=cls.__module__, __qualname__=cls.__qualname__,
              __doc__=cls.__doc__)
    return type(cls.__name__, (cls,), ns)


def with_transports():
    return os.environ.get(suites.TRANSPORT_MODULES_ENV, "1") != "0"


def _import_unrewritten(name):
    """Import a stdlib test module bypassing pytest's assertion rewriting.

    pytest rewrites every imported module named like a test file
    (``test_*.py``), stdlib ones included: that costs seconds of AST work and
    would run the stdlib tests as modified code. Without the hook they run
    exactly as under unittest.
    """
    hooks = [(i, f) for i, f in enumerate(sys.meta_path)
             if type(f).__name__ == "AssertionRewritingHook"]
    for _, hook in hooks:
        sys.meta_path.remove(hook)
    try:
        return importlib.import_module(name)
    finally:
        for i, hook in hooks:
            sys.meta_path.insert(i, hook)


def collect():
    """All cases of the selected suites for this Python version.

    Transport suites/classes that are not enabled are still enumerated (their
    ids are checked against the expectations, so that only truly stale
    patterns are reported) but yield no case.
    """
    import_stdlib_tests()
    loader = unittest.TestLoader()
    transports = with_transports()
    cases = []
    for suite in suites.SUITES:
        if not suite.applies():
            continue
        enabled = transports or not suite.transports
        try:
            module = _import_unrewritten(PREFIX + suite.name)
        except (unittest.SkipTest, ImportError) as exc:
            if enabled:
                cases.append(Case(suite.name, suite.name, None, None, ex.HARNESS,
                                  "cannot import %s: %r" % (suite.name, exc)))
            continue
        classes = []
        for name, obj in list(vars(module).items()):
            if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)):
                continue
            if obj.__module__ != module.__name__ or obj.__name__ != name:
                continue
            if name in suite.exclude:
                EXCLUDED_CLASSES[(suite.name, name)] = suite.exclude[name]
                continue
            on = enabled and (transports or name not in suite.transport_classes)
            classes.append((_adapt(suite, module, obj), None, on))
        if suite.extra is not None:
            classes.extend((cls, only, enabled) for cls, only in suite.extra(module))
        for cls, only, on in classes:
            for method in loader.getTestCaseNames(cls):
                if only is not None and method not in only:
                    continue
                case_id = "%s.%s.%s" % (suite.name, cls.__name__, method)
                kind, reason = expectation_for(case_id)
                if on:
                    cases.append(Case(case_id, suite.name, cls, method, kind, reason))
                    CASE_KINDS[case_id] = kind
    return cases


# ---------------------------------------------------------------------------
# Running


class Result(unittest.TestResult):
    """Collects a single test's outcome (errors, failures, skips ...)."""


class Outcome:
    """What happened in one case, for the pytest translation and the report."""

    def __init__(self):
        self.problems = []      # formatted tracebacks
        self.skip_reason = None
        self.expected_failure = False
        self.created = 0
        self.ran = 0
        self.testloop = 0
        self.leaks = []
        self.timeouts = 0


# case id -> Outcome (filled by run_case, read by the Reporter)
OUTCOMES = {}

_orig_new_test_loop = None


def _close_unstarted_coroutines(frame):
    """Close the coroutines a stdlib test made before asking for a TestLoop
    (test_as_completed_concurrent: `a = asyncio.sleep(...)`): skipped there,
    they would be "never awaited", an error under -X dev -W error."""
    for value in list(frame.f_locals.values()):
        items = value if isinstance(value, (list, tuple, set, frozenset)) else (value,)
        for obj in items:
            if (inspect.iscoroutine(obj)
                    and inspect.getcoroutinestate(obj) == inspect.CORO_CREATED):
                obj.close()


def _new_test_loop(self, gen=None):
    """test_utils.TestCase.new_test_loop bound to the loop under test."""
    if gen is not None:
        if TESTLOOP_MODE != "run":
            _close_unstarted_coroutines(sys._getframe(1))
            raise unittest.SkipTest(TESTLOOP_REASON)
        loops.tracker.testloop += 1
        return _orig_new_test_loop(self, gen)
    loop = loops.new_loop()
    self.set_event_loop(loop)
    return loop


def _wakeup_fd():
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def _close_policy_loop(policy):
    local = getattr(policy, "_local", None)
    loop = getattr(local, "_loop", None)
    if loop is not None and not loop.is_running() and not loop.is_closed():
        try:
            loop.close()
        except Exception:
            pass


@contextlib.contextmanager
def isolated(outcome):
    """Install the loop under test for one case and restore global state."""
    global _orig_new_test_loop
    test_utils = import_stdlib_tests()
    if _orig_new_test_loop is None:
        _orig_new_test_loop = test_utils.TestCase.new_test_loop

    main_thread = threading.current_thread() is threading.main_thread()
    saved_policy = events._event_loop_policy
    saved_default_policy = asyncio.DefaultEventLoopPolicy
    saved_hooks = sys.get_asyncgen_hooks()
    saved_depth = sys.get_coroutine_origin_tracking_depth()
    saved_sigint = signal.getsignal(signal.SIGINT)
    saved_wakeup = _wakeup_fd() if main_thread else None

    policy_cls = loops.policy_class()
    asyncio.DefaultEventLoopPolicy = policy_cls
    policy = policy_cls()
    events.set_event_loop_policy(policy)
    orig_set_running_loop = loops.install_running_loop_probe()
    routed_loggers = loops.route_logger()
    test_utils.TestCase.new_test_loop = _new_test_loop
    loops.tracker.reset()
    try:
        yield
    finally:
        tr = loops.tracker
        outcome.created, outcome.ran, outcome.testloop = tr.created, tr.ran, tr.testloop
        test_utils.TestCase.new_test_loop = _orig_new_test_loop
        loops.unroute_logger(routed_loggers)
        events._set_running_loop = orig_set_running_loop
        if events._get_running_loop() is not None:
            outcome.leaks.append("a running loop was left set")
            orig_set_running_loop(None)
        for p in {id(policy): policy, id(events._event_loop_policy): events._event_loop_policy}.values():
            _close_policy_loop(p)
        events._event_loop_policy = saved_policy
        asyncio.DefaultEventLoopPolicy = saved_default_policy
        if tuple(sys.get_asyncgen_hooks()) != tuple(saved_hooks):
            outcome.leaks.append("asyncgen hooks were left installed")
            sys.set_asyncgen_hooks(*saved_hooks)
        if sys.get_coroutine_origin_tracking_depth() != saved_depth:
            outcome.leaks.append("coroutine origin tracking depth was left changed")
            sys.set_coroutine_origin_tracking_depth(saved_depth)
        if signal.getsignal(signal.SIGINT) is not saved_sigint:
            outcome.leaks.append("SIGINT handler was left changed")
            signal.signal(signal.SIGINT, saved_sigint)
        if main_thread:
            fd = signal.set_wakeup_fd(saved_wakeup)
            if fd != saved_wakeup:
                outcome.leaks.append("signal wakeup fd was left set (fd %d)" % fd)


def _first_line(text):
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "?"


class ConformanceTimeout(BaseException):
    """Raised by the watchdog alarm in a test that takes too long."""


@contextlib.contextmanager
def watchdog(outcome, timeout):
    """SIGALRM watchdog: raise ConformanceTimeout after *timeout* seconds and
    then again every second, so that a test whose cleanup also hangs (e.g.
    closing a loop that waits for a wake-up that never comes) still ends.
    Unlike pytest-timeout's one-shot alarm this keeps the run going."""
    if threading.current_thread() is not threading.main_thread() or timeout <= 0:
        yield
        return

    def on_alarm(signum, frame):
        outcome.timeouts += 1
        raise ConformanceTimeout(
            "the stdlib test did not finish within %gs (alarm #%d)"
            % (timeout, outcome.timeouts)
        )

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _run_isolated(test, result, outcome, timeout):
    with isolated(outcome):
        try:
            with watchdog(outcome, timeout):
                unittest.TestSuite([test]).run(result)
        except ConformanceTimeout:
            # the alarm hit unittest's own bookkeeping, not the test
            outcome.problems.append(traceback.format_exc())


def run_case(case, timeout=TIMEOUT):
    """Run one stdlib test; return its Outcome (translation is the caller's)."""
    outcome = Outcome()
    OUTCOMES[case.id] = outcome
    test = case.cls(case.method)
    result = Result()
    # Park everything that exists now (pytest, the collected cases, ...) in
    # gc's permanent generation for the duration of the test: many stdlib
    # tests call gc.collect() in loops, and a full collection of a big pytest
    # heap takes ~100 ms; the freeze makes it cost what it does under
    # unittest. unfreeze() hands the objects back to the collector.
    gc.freeze()
    try:
        _run_isolated(test, result, outcome, timeout)
    finally:
        gc.unfreeze()
    for holder, text in result.errors + result.failures:
        label = "" if holder is test else "[%s] " % holder
        outcome.problems.append(label + text)
    for holder in result.unexpectedSuccesses:
        outcome.problems.append("unexpected success of a stdlib @expectedFailure test")
    for holder, reason in result.skipped:
        # A skipped subtest does not make the whole test skipped; a SkipTest
        # from setUpClass/setUpModule comes with an error holder and the
        # test never starts.
        if holder is test or result.testsRun == 0:
            outcome.skip_reason = reason or "skipped by the stdlib test"
    if result.expectedFailures:
        outcome.expected_failure = True
    if not outcome.problems and result.testsRun == 0 and outcome.skip_reason is None:
        outcome.problems.append("the test did not run")
    return outcome


def failure_message(outcome):
    head = "; ".join(_first_line(p) for p in outcome.problems)
    return head + "\n\n" + "\n".join(outcome.problems)


# ---------------------------------------------------------------------------
# Report


class Reporter:
    """pytest plugin: per-module numbers and loop usage at the end of the run."""

    def __init__(self, nodeid_prefix):
        self.prefix = nodeid_prefix
        self.final = {}   # case id -> pytest outcome

    def _case_id(self, nodeid):
        if "[" not in nodeid or not nodeid.endswith("]"):
            return None
        head, _, param = nodeid.partition("[")
        if not head.endswith(self.prefix):
            return None
        return param[:-1]

    def pytest_runtest_logreport(self, report):
        cid = self._case_id(report.nodeid)
        if cid is None:
            return
        wasxfail = hasattr(report, "wasxfail")
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.passed:
                res = "xpassed" if wasxfail else "passed"
            elif report.skipped:
                res = "xfailed" if wasxfail else "skipped"
            else:
                res = "failed" if report.when == "call" else "error"
            self.final[cid] = res
        elif report.when == "teardown" and report.failed:
            self.final[cid] = "error"

    def rows(self):
        table = collections.OrderedDict()
        for cid, res in self.final.items():
            module = cid.split(".", 1)[0]
            row = table.setdefault(module, collections.Counter())
            row["items"] += 1
            row[res] += 1
            out = OUTCOMES.get(cid)
            if res == "passed" and out is not None:
                if out.testloop:
                    # FASTLOOP_CONFORMANCE_TESTLOOP=run: the body ran on the
                    # stdlib TestLoop, whatever setUp made
                    row["testloop"] += 1
                elif out.created or out.ran:
                    row["used"] += 1
                    if out.ran:
                        row["ran"] += 1
        return table

    def skip_categories(self):
        cats = collections.Counter()
        for cid, res in self.final.items():
            if res != "skipped":
                continue
            kind = CASE_KINDS.get(cid)
            out = OUTCOMES.get(cid)
            if kind in ex.SKIP_KINDS:
                cats[kind] += 1
            elif out is not None and out.skip_reason == TESTLOOP_REASON:
                cats["testloop (virtual-clock TestLoop)"] += 1
            else:
                cats["skipped by the stdlib test itself"] += 1
        return cats

    def summary_lines(self):
        cols = ["items", "passed", "failed", "error", "xfailed", "xpassed",
                "skipped", "used", "ran"]
        lines = [
            "loop under test: %s; Python %s" % (loops.description(), sys.version.split()[0]),
            "used = passed tests that created a loop under test; "
            "ran = passed tests that ran one",
            "%-26s" % "module" + "".join("%8s" % c for c in cols),
        ]
        total = collections.Counter()
        for module, row in self.rows().items():
            total.update(row)
            lines.append("%-26s" % module + "".join("%8d" % row[c] for c in cols))
        lines.append("%-26s" % "TOTAL" + "".join("%8d" % total[c] for c in cols))
        cats = self.skip_categories()
        if cats:
            lines.append("skipped: " + ", ".join(
                "%d %s" % (n, cat) for cat, n in sorted(cats.items())))
        lines.append(
            "passed on the loop under test: %d (of which ran it: %d); passed "
            "without touching it (mock loops, pure asyncio): %d"
            % (total["used"], total["ran"],
               total["passed"] - total["used"] - total["testloop"]))
        if total["testloop"]:
            lines.append("passed on the stdlib virtual-clock TestLoop (run as-is): %d"
                         % total["testloop"])
        if not with_transports():
            lines.append("transport suites not collected (%s=1 adds them)"
                         % suites.TRANSPORT_MODULES_ENV)
        leaks = {cid: o.leaks for cid, o in OUTCOMES.items() if o.leaks}
        if leaks:
            lines.append("tests that left process-wide asyncio state behind (restored):")
            for cid, what in sorted(leaks.items()):
                lines.append("  %s: %s" % (cid, "; ".join(what)))
        stale = stale_patterns()
        if stale and self.final:
            lines.append("expectation patterns matching no collected test:")
            for key, pattern in stale:
                lines.append("  [%s] %s" % (key, pattern))
        return lines, total

    def pytest_terminal_summary(self, terminalreporter):
        if not self.final:
            return
        lines, total = self.summary_lines()
        terminalreporter.write_sep("=", "stdlib asyncio conformance")
        for line in lines:
            terminalreporter.write_line(line)
        path = os.environ.get("FASTLOOP_CONFORMANCE_REPORT")
        if path:
            data = {
                "python": sys.version.split()[0],
                "loop": loops.KIND,
                "loop_description": loops.description(),
                "modules": {m: dict(r) for m, r in self.rows().items()},
                "total": dict(total),
                "skipped": dict(self.skip_categories()),
                "outcomes": self.final,
                "failures": {
                    cid: _first_line("\n".join(OUTCOMES[cid].problems))
                    for cid, res in self.final.items()
                    if cid in OUTCOMES and OUTCOMES[cid].problems
                },
            }
            with open(path, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
