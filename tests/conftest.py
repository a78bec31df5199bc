"""Shared fixtures: every asyncio-defined behaviour runs on fastloop and on
asyncio's own loop, so the reference proves the test right."""
import asyncio
import gc
import os
import sys

import pytest

LOOP_KINDS = ["fastloop", "asyncio"]


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
