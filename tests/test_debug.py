"""Debug mode: get/set_debug, PYTHONASYNCIODEBUG / -X dev, slow callbacks,
coroutine origin tracking, thread and callback checks, ResourceWarning for an
unclosed loop. Runs on fastloop and asyncio."""
import asyncio
import gc
import logging
import os
import re
import subprocess
import sys
import threading
import time
import warnings

import pytest

from conftest import make_loop, _count_fds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SLOW_RE = re.compile(r"^Executing <.*> took \d+\.\d{3} seconds$", re.S)


def asyncio_records(caplog, level=logging.WARNING):
    return [r for r in caplog.records
            if r.name == "asyncio" and r.levelno >= level]


# -- get_debug / set_debug -------------------------------------------------------


def test_get_set_debug(loop):
    default = asyncio.coroutines._is_debug_mode()
    assert loop.get_debug() is default
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_set_debug_truthy_values(loop):
    loop.set_debug(1)
    assert loop.get_debug()
    loop.set_debug(0)
    assert not loop.get_debug()


_PROBE = """
import asyncio, sys
kind = sys.argv[1]
if kind == "fastloop":
    import fastloop
    lp = fastloop.new_event_loop()
else:
    lp = asyncio.SelectorEventLoop()
try:
    print(lp.get_debug())
finally:
    lp.close()
"""


@pytest.mark.parametrize(
    "flags, envval, expected",
    [
        ([], None, False),
        ([], "1", True),
        ([], "", False),
        (["-E"], "1", False),
        (["-X", "dev"], None, True),
    ],
    ids=["plain", "env-1", "env-empty", "env-ignored", "dev-mode"],
)
def test_debug_default_from_environment(loop_kind, flags, envval, expected):
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("PYTHONDEVMODE", None)
    if envval is not None:
        env["PYTHONASYNCIODEBUG"] = envval
    out = subprocess.run(
        [sys.executable, *flags, "-c", _PROBE, loop_kind],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(expected), out.stderr


# -- slow callbacks -------------------------------------------------------------------
#
# Thresholds are low (30 ms) but each test looks for the records of its own
# deliberately slow callback by name, so that a loaded VM making some other
# callback slow does not fail it. Every "Executing" record must also report a
# plausible duration.

SLOW = 0.03


def slow_records(caplog, name=None):
    recs = [r for r in asyncio_records(caplog)
            if r.getMessage().startswith("Executing")]
    for r in recs:
        msg = r.getMessage()
        assert r.levelno == logging.WARNING
        assert SLOW_RE.match(msg), msg
        took = float(msg.rsplit(" took ", 1)[1].split()[0])
        assert 0 <= took < 30, msg  # an elapsed time, not a timestamp
    if name is not None:
        recs = [r for r in recs if name in r.getMessage()]
    return recs


def _took(rec):
    return float(rec.getMessage().rsplit(" took ", 1)[1].split()[0])


def slow_cb(seconds=SLOW * 2):
    time.sleep(seconds)


def _slow_timer_cb():
    slow_cb()


def _slow_threadsafe_cb():
    slow_cb()


def test_slow_callback_logged(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(True)
    assert loop.slow_callback_duration == pytest.approx(0.1)
    loop.slow_callback_duration = SLOW
    assert loop.slow_callback_duration == pytest.approx(SLOW)
    loop.call_soon(slow_cb)
    loop.run_until_complete(asyncio.sleep(0.01))
    recs = slow_records(caplog, "slow_cb")
    assert len(recs) == 1
    assert _took(recs[0]) >= SLOW * 2 - 0.005


def test_slow_task_step_logged(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW

    async def blocking_coro():
        time.sleep(SLOW * 2)

    loop.run_until_complete(blocking_coro())
    recs = slow_records(caplog, "blocking_coro")
    assert len(recs) == 1
    assert "Task" in recs[0].getMessage()


def test_slow_timer_and_threadsafe_callbacks_logged(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW

    loop.call_later(0.001, _slow_timer_cb)
    loop.call_soon_threadsafe(_slow_threadsafe_cb)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert len(slow_records(caplog, "_slow_timer_cb")) == 1
    assert len(slow_records(caplog, "_slow_threadsafe_cb")) == 1


def test_slow_reader_callback_logged(loop, caplog):
    import socket

    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW
    a, b = socket.socketpair()
    try:
        def on_read():
            a.recv(10)
            loop.remove_reader(a.fileno())
            slow_cb()

        loop.add_reader(a.fileno(), on_read)
        b.send(b"x")
        loop.run_until_complete(asyncio.sleep(0.1))
    finally:
        a.close()
        b.close()
    assert len(slow_records(caplog, "on_read")) == 1


def test_fast_callback_not_logged(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 10
    loop.call_soon(slow_cb)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert slow_records(caplog) == []


def test_slow_callback_not_logged_without_debug(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(False)
    loop.slow_callback_duration = 0.001
    loop.call_soon(slow_cb)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert slow_records(caplog) == []


def test_set_debug_while_running_enables_slow_logging(loop, caplog):
    """Debug switched on inside a callback: that callback was not timed (it
    started without debug) and must not be reported with a bogus duration;
    later slow callbacks are reported."""
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(False)
    loop.slow_callback_duration = SLOW

    async def main():
        await asyncio.sleep(0)
        loop.set_debug(True)
        await asyncio.sleep(0)
        loop.call_soon(slow_cb)
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    assert len(slow_records(caplog, "slow_cb")) == 1


# -- coroutine origin tracking ------------------------------------------------------


def test_origin_tracking_while_running_in_debug(loop):
    before = sys.get_coroutine_origin_tracking_depth()
    loop.set_debug(True)

    async def main():
        return sys.get_coroutine_origin_tracking_depth()

    assert loop.run_until_complete(main()) == asyncio.constants.DEBUG_STACK_DEPTH
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_no_origin_tracking_without_debug(loop):
    loop.set_debug(False)

    async def main():
        return sys.get_coroutine_origin_tracking_depth()

    assert loop.run_until_complete(main()) == 0


def test_set_debug_while_running_toggles_origin_tracking(loop):
    loop.set_debug(False)

    async def main():
        depths = [sys.get_coroutine_origin_tracking_depth()]
        loop.set_debug(True)
        for _ in range(3):
            await asyncio.sleep(0)
        depths.append(sys.get_coroutine_origin_tracking_depth())
        loop.set_debug(False)
        for _ in range(3):
            await asyncio.sleep(0)
        depths.append(sys.get_coroutine_origin_tracking_depth())
        return depths

    assert loop.run_until_complete(main()) == [
        0, asyncio.constants.DEBUG_STACK_DEPTH, 0]
    assert sys.get_coroutine_origin_tracking_depth() == 0


def test_never_awaited_warning_has_origin(loop):
    loop.set_debug(True)

    async def forgotten():
        pass

    async def main():
        forgotten()

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        loop.run_until_complete(main())
        gc.collect()
    msgs = [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)
            and "was never awaited" in str(x.message)]
    assert len(msgs) == 1
    assert "Coroutine created at" in msgs[0]
    assert "main" in msgs[0]


# -- thread checks and callback checks ------------------------------------------------


def _in_thread(fn):
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["exc"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join(10)
    assert not t.is_alive()
    return result


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_non_threadsafe_call_from_other_thread_in_debug(loop, method):
    loop.set_debug(True)
    noop = lambda: None  # noqa: E731

    def call():
        if method == "call_soon":
            return loop.call_soon(noop)
        if method == "call_later":
            return loop.call_later(10, noop)
        return loop.call_at(loop.time() + 10, noop)

    async def main():
        await asyncio.sleep(0)
        return _in_thread(call)  # blocks the running loop meanwhile

    result = loop.run_until_complete(main())
    assert isinstance(result.get("exc"), RuntimeError), result
    assert "Non-thread-safe operation" in str(result["exc"])


def test_call_soon_threadsafe_from_other_thread_in_debug(loop):
    loop.set_debug(True)
    done = []

    async def main():
        fut = loop.create_future()
        res = _in_thread(lambda: loop.call_soon_threadsafe(
            fut.set_result, "ok"))
        assert "exc" not in res, res
        done.append(await asyncio.wait_for(fut, 5))

    loop.run_until_complete(main())
    assert done == ["ok"]


def test_call_soon_from_other_thread_while_not_running(loop):
    """The debug thread check only applies while the loop runs."""
    loop.set_debug(True)
    got = []
    res = _in_thread(lambda: loop.call_soon(got.append, 1))
    assert "exc" not in res, res
    loop.run_until_complete(asyncio.sleep(0))
    assert got == [1]


def test_call_soon_from_other_thread_without_debug(loop):
    """Without debug asyncio does not check the thread: the call is accepted
    (here while the loop thread is blocked, so there is no race) and the
    callback runs on a later iteration."""
    loop.set_debug(False)
    got = []

    async def main():
        await asyncio.sleep(0)
        res = _in_thread(lambda: loop.call_soon(got.append, 1))
        assert "exc" not in res, res
        for _ in range(10):
            if got:
                break
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert got == [1]


async def _coro_fn():
    pass


@pytest.mark.parametrize(
    "method", ["call_soon", "call_later", "call_at", "call_soon_threadsafe"])
@pytest.mark.parametrize("what", ["coroutine function", "coroutine object",
                                  "not callable"])
def test_callback_checks_in_debug(loop, method, what):
    loop.set_debug(True)
    if what == "coroutine function":
        cb = _coro_fn
    elif what == "coroutine object":
        cb = _coro_fn()
    else:
        cb = 42
    try:
        with pytest.raises(TypeError):
            if method in ("call_soon", "call_soon_threadsafe"):
                getattr(loop, method)(cb)
            elif method == "call_later":
                loop.call_later(0, cb)
            else:
                loop.call_at(loop.time(), cb)
    finally:
        if what == "coroutine object":
            cb.close()


def test_run_in_executor_coroutine_function_in_debug(loop):
    loop.set_debug(True)
    with pytest.raises(TypeError):
        loop.run_in_executor(None, _coro_fn)


# -- source tracebacks ---------------------------------------------------------------


def _raise():
    raise ZeroDivisionError


def test_source_traceback_in_callback_error_context(loop):
    loop.set_debug(True)
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(ctx))
    loop.call_soon(_raise)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(seen) == 1
    tb = seen[0]["source_traceback"]
    assert tb
    assert any(f.name == "test_source_traceback_in_callback_error_context"
               for f in tb)


def test_no_source_traceback_without_debug(loop):
    loop.set_debug(False)
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(ctx))
    loop.call_soon(_raise)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(seen) == 1
    assert "source_traceback" not in seen[0]


def test_default_handler_adds_current_handle_traceback(loop, caplog):
    """In debug the default handler, called from inside a callback, shows
    where the running handle was created (loop._current_handle)."""
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(True)

    def report():
        loop.call_exception_handler({"message": "reported from callback"})

    loop.call_soon(report)
    loop.run_until_complete(asyncio.sleep(0.01))
    recs = [r for r in asyncio_records(caplog, logging.ERROR)
            if "reported from callback" in r.getMessage()]
    assert len(recs) == 1
    assert "Handle created at" in recs[0].getMessage()


def test_future_source_traceback_in_debug(loop):
    loop.set_debug(True)
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(ctx))
    fut = loop.create_future()
    fut.set_exception(ZeroDivisionError())
    del fut
    gc.collect()
    assert len(seen) == 1
    assert seen[0]["source_traceback"]


# -- unclosed loop ------------------------------------------------------------------


def test_unclosed_loop_resource_warning(loop_kind):
    fds = _count_fds()
    lp = make_loop(loop_kind)
    lp.run_until_complete(asyncio.sleep(0))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del lp
        gc.collect()
    msgs = [str(x.message) for x in w
            if issubclass(x.category, ResourceWarning)]
    assert any("unclosed event loop" in m for m in msgs), msgs
    # Collecting the open loop also released its fds.
    assert _count_fds() <= fds


def test_closed_loop_no_resource_warning(loop_kind):
    lp = make_loop(loop_kind)
    lp.close()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del lp
        gc.collect()
    assert not [x for x in w if "unclosed event loop" in str(x.message)]
