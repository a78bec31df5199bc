"""The loop under test, its policy, and the "did this test use it" tracker.

``FASTLOOP_CONFORMANCE_LOOP`` selects the loop under test:

``fastloop`` (default)  ``fastloop.new_event_loop()`` / ``fastloop.Loop`` and
                        ``fastloop.EventLoopPolicy`` when the package defines
                        one (else asyncio's default policy with fastloop's loop
                        as its ``_loop_factory``).
``asyncio``             ``asyncio.SelectorEventLoop`` and asyncio's default
                        policy: the very same selection and adapters run on
                        the stdlib loop, which proves the harness (everything
                        that is not a harness-level skip must pass).
"""
import asyncio
import os
from asyncio import events

KIND = os.environ.get("FASTLOOP_CONFORMANCE_LOOP", "fastloop").strip().lower() or "fastloop"
if KIND not in ("fastloop", "asyncio"):
    raise ValueError(
        "FASTLOOP_CONFORMANCE_LOOP must be 'fastloop' or 'asyncio', not %r" % KIND
    )

# asyncio's own default policy class, captured before the runner swaps the
# name ``asyncio.DefaultEventLoopPolicy`` for the policy under test.
STDLIB_DEFAULT_POLICY = asyncio.DefaultEventLoopPolicy


class Unavailable(Exception):
    """The loop under test cannot be imported (e.g. the extension is not built)."""


class Tracker:
    """Counts, per stdlib test, the loops under test it created and ran.

    *created*: loops made by the loop-under-test factory or policy.
    *ran*: ``events._set_running_loop(loop)`` calls with a loop under test,
    i.e. ``run_forever``/``run_until_complete``/``asyncio.run``/
    ``IsolatedAsyncioTestCase`` actually ran it (both asyncio's
    ``BaseEventLoop`` and fastloop's Python layer go through
    ``events._set_running_loop``).
    *testloop*: stdlib ``test_utils.TestLoop`` (virtual clock) loops that were
    run as-is.
    """

    def __init__(self):
        self.loop_type = None
        self.reset()

    def reset(self):
        self.created = 0
        self.ran = 0
        self.testloop = 0

    def is_under_test(self, loop):
        return self.loop_type is not None and isinstance(loop, self.loop_type)

    def on_created(self, loop):
        if self.is_under_test(loop):
            self.created += 1

    def on_running(self, loop):
        if loop is not None and self.is_under_test(loop):
            self.ran += 1

    @property
    def used(self):
        return bool(self.created or self.ran)


tracker = Tracker()

_resolved = None


def _resolve():
    global _resolved
    if _resolved is not None:
        return _resolved
    if KIND == "asyncio":
        loop_type = asyncio.SelectorEventLoop
        factory = asyncio.SelectorEventLoop
        base_policy = STDLIB_DEFAULT_POLICY
        description = "asyncio.SelectorEventLoop (harness check)"
    else:
        try:
            import fastloop
            loop_type = fastloop.Loop
        except Exception as exc:  # ImportError, or a half-built package
            raise Unavailable(
                "cannot import fastloop (build it first: "
                "python setup.py build_ext --inplace): %r" % (exc,)
            ) from exc
        factory = getattr(fastloop, "new_event_loop", None) or fastloop.Loop
        base_policy = getattr(fastloop, "EventLoopPolicy", None)
        if base_policy is None:
            class base_policy(STDLIB_DEFAULT_POLICY):
                """asyncio's default (Unix) policy making fastloop loops."""

                _loop_factory = staticmethod(factory)

        description = "fastloop.%s from %s" % (
            loop_type.__name__,
            os.path.dirname(getattr(fastloop, "__file__", "?") or "?"),
        )

    class ConformancePolicy(base_policy):
        """The policy under test, counting the loops it creates."""

        def new_event_loop(self):
            loop = super().new_event_loop()
            tracker.on_created(loop)
            return loop

    ConformancePolicy.__name__ = ConformancePolicy.__qualname__ = base_policy.__name__
    tracker.loop_type = loop_type
    _resolved = (factory, ConformancePolicy, description)
    return _resolved


def check_available():
    """Raise Unavailable if the loop under test cannot be created."""
    factory, _, _ = _resolve()
    loop = factory()
    loop.close()


def description():
    return _resolve()[2]


def new_loop():
    """A fresh loop under test (counted by the tracker)."""
    loop = _resolve()[0]()
    tracker.on_created(loop)
    return loop


def policy_class():
    """The (instrumented) event loop policy class under test."""
    return _resolve()[1]


def pending_callbacks(loop):
    """Number of callbacks ready to run: asyncio's ``len(loop._ready)``;
    fastloop exposes the same count as ``loop._stats()["ready"]``."""
    ready = getattr(loop, "_ready", None)
    if ready is not None:
        return len(ready)
    return loop._stats()["ready"]


class _BaseEventsLogger:
    """Stands for ``asyncio.base_events.logger``, looked up at each use.

    fastloop logs through ``asyncio.log.logger``, the very object that
    ``asyncio.base_events.logger`` names; but the stdlib tests intercept the
    loop's logging with ``mock.patch('asyncio.base_events.logger')``, which
    rebinds only that module attribute. Routing fastloop's module-level
    ``logger`` through this proxy makes those tests observe fastloop's log
    calls (message text, level, exc_info) exactly as they observe asyncio's.
    Without a patch in place it forwards to the real logger: no change.
    """

    def __getattr__(self, name):
        from asyncio import base_events
        return getattr(base_events.logger, name)

    def __repr__(self):
        return "<conformance proxy for asyncio.base_events.logger>"


_PROXY = _BaseEventsLogger()
_fastloop_modules = (0, [])


def route_logger():
    """Point the ``logger`` global of fastloop's modules at asyncio.base_events.logger
    (see _BaseEventsLogger). Returns a list of (module, original) to restore.
    No-op for the asyncio loop."""
    if KIND != "fastloop":
        return []
    from asyncio.log import logger as asyncio_logger
    import sys
    global _fastloop_modules
    if len(sys.modules) != _fastloop_modules[0]:
        # (re)scan only when modules were imported since the last scan
        _fastloop_modules = (len(sys.modules), [
            module for name, module in list(sys.modules.items())
            if module is not None
            and (name == "fastloop" or name.startswith("fastloop."))
        ])
    saved = []
    for module in _fastloop_modules[1]:
        if getattr(module, "logger", None) is asyncio_logger:
            saved.append((module, asyncio_logger))
            module.logger = _PROXY
    return saved


def unroute_logger(saved):
    for module, original in saved:
        module.logger = original


def install_running_loop_probe():
    """Wrap events._set_running_loop so the tracker sees loops that run.

    Returns the original for restore_running_loop_probe().
    """
    orig = events._set_running_loop

    def _set_running_loop(loop):
        tracker.on_running(loop)
        return orig(loop)

    _set_running_loop.__wrapped__ = orig
    events._set_running_loop = _set_running_loop
    return orig
