"""Shared fixtures: every asyncio-defined behaviour runs on fastloop and on
asyncio's own loop, so the reference proves the test right."""
import asyncio
import gc
import os
import shlex
import subprocess
import sys

import pytest

LOOP_KINDS = ["fastloop", "asyncio"]


def param_repr(val):
    """A parametrize id: repr(val), but the type's name for a value whose
    repr holds an address (``<object object at 0x...>``), so that every
    process collecting the suite (pytest-xdist's workers) sees the same
    ids."""
    r = repr(val)
    return type(val).__name__ if " at 0x" in r else r


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """pytest-xdist starts its workers as plain ``python -u -c ...``:
    give them this interpreter's flags, so that ``python -X dev -W error
    -m pytest -n 4`` runs every test in debug mode with warnings as errors,
    as it does without ``-n``.  (Environment variables would reach the
    tests' own child processes too; flags reach only the workers.)"""
    tx = getattr(config.option, "tx", None)
    if hasattr(config, "workerinput") or not tx:
        return
    flags = subprocess._args_from_interpreter_flags()
    if not flags:
        return
    python = "python=" + " ".join(map(shlex.quote, [sys.executable, *flags]))
    config.option.tx = [
        spec if "python=" in spec else spec + "//" + python for spec in tx
    ]


def make_loop(kind):
    if kind == "fastloop":
        import fastloop

        return fastloop.new_event_loop()
    if kind == "asyncio":
        return asyncio.SelectorEventLoop()
    raise ValueError(kind)


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request):
    return request.param


@pytest.fixture
def loop(loop_kind):
    """A fresh loop of each kind; closed (and checked for leaked fds) after."""
    fds_before = _count_fds()
    lp = make_loop(loop_kind)
    errors = []
    lp._test_errors = errors
    yield lp
    if lp.is_running():
        lp.stop()
    if not lp.is_closed():
        # Leftover tasks are the test's own business; just close.
        lp.close()
    asyncio.set_event_loop(None)
    del lp
    # A full collection costs 30-100 ms per test; only pay for it when fds
    # are still open (objects in reference cycles may hold them).
    if _count_fds() > fds_before:
        gc.collect()
    assert _count_fds() <= fds_before, "file descriptors leaked"


@pytest.fixture
def fastloop_only(loop_kind):
    if loop_kind != "fastloop":
        pytest.skip("fastloop-specific behaviour")


def _count_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover - non-Linux
        return 0


def run(loop, coro, timeout=30):
    """Run coro to completion on loop with a safety timeout."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


collect_ignore = []
if sys.version_info < (3, 9):  # pragma: no cover
    collect_ignore.append(".")
