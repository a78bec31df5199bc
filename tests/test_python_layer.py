"""Smoke tests of fastloop's Python layer (fastloop/_base.py, _loop.py,
__init__.py): running and closing, async generators, the executor, DNS,
the exception handler API, debug hooks, the package API.

Parametrized tests run on fastloop and on asyncio's SelectorEventLoop (the
``loop`` fixture); asyncio is the reference.
"""
import asyncio
import concurrent.futures
import contextvars
import gc
import logging
import signal
import socket
import sys
import threading
import time
import warnings

import pytest

from conftest import make_loop

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)

cvar = contextvars.ContextVar("cvar", default="default")


class Boom(Exception):
    pass


def collect_errors(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    return errors


def run_briefly(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


# -- repr, running, stopping ---------------------------------------------------


def test_repr(loop):
    name = type(loop).__name__
    debug = loop.get_debug()  # True under -X dev / PYTHONASYNCIODEBUG
    assert repr(loop) == f"<{name} running=False closed=False debug={debug}>"
    seen = []
    loop.call_soon(lambda: seen.append(repr(loop)))
    run_briefly(loop)
    assert seen == [f"<{name} running=True closed=False debug={debug}>"]
    loop.close()
    assert repr(loop) == f"<{name} running=False closed=True debug={debug}>"
    loop.set_debug(not debug)
    assert repr(loop).endswith(f" debug={not debug}>")


def test_run_until_complete_result_and_exception(loop):
    assert loop.run_until_complete(asyncio.sleep(0.001, "ok")) == "ok"

    async def fail():
        raise Boom("x")

    with pytest.raises(Boom):
        loop.run_until_complete(fail())
    fut = loop.create_future()
    loop.call_soon(fut.set_result, 42)
    assert loop.run_until_complete(fut) == 42


def test_run_until_complete_stopped_early(loop):
    loop.call_soon(loop.stop)
    fut = loop.create_future()
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed."):
        loop.run_until_complete(fut)
    assert not loop.is_running()


def test_running_loop_state_inside_and_after(loop):
    seen = {}

    async def main():
        seen["running"] = asyncio.get_running_loop()
        seen["is_running"] = loop.is_running()
        seen["thread"] = loop._thread_id
        seen["hooks"] = sys.get_asyncgen_hooks()

    before = sys.get_asyncgen_hooks()
    loop.run_until_complete(main())
    assert seen["running"] is loop
    assert seen["is_running"] is True
    assert seen["thread"] == threading.get_ident()
    assert seen["hooks"].firstiter == loop._asyncgen_firstiter_hook
    assert seen["hooks"].finalizer == loop._asyncgen_finalizer_hook
    assert sys.get_asyncgen_hooks() == before
    assert asyncio.events._get_running_loop() is None
    assert loop._thread_id is None
    assert not loop.is_running()


def test_nested_run_refused(loop, loop_kind):
    errors = []
    calls = [lambda: loop.run_until_complete(loop.create_future())]
    if not (loop_kind == "asyncio" and sys.version_info[:3] == (3, 13, 0)):
        # asyncio 3.13.0's run_forever() runs its cleanup even when its
        # checks refuse to start, clobbering the outer run's state.
        calls.append(loop.run_forever)

    def nested():
        for call in calls:
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))

    loop.call_soon(nested)
    run_briefly(loop)
    assert errors == ["This event loop is already running"] * len(calls)
    # The failed nested calls did not clobber the outer loop's state.
    assert loop.run_until_complete(asyncio.sleep(0, 1)) == 1


def test_other_loop_running_refused(loop, loop_kind):
    other = make_loop(loop_kind)
    errors = []

    def inner():
        try:
            other.run_until_complete(other.create_future())
        except RuntimeError as exc:
            errors.append(str(exc))
        errors.append(asyncio.get_running_loop() is loop)

    try:
        loop.call_soon(inner)
        run_briefly(loop)
    finally:
        other.close()
    assert errors == ["Cannot run the event loop while another loop is running", True]


def test_stop_before_run_forever_runs_one_batch(loop):
    out = []
    loop.call_soon(out.append, 1)
    loop.stop()
    loop.run_forever()
    assert out == [1]
    # _stopping was reset: the next run_forever needs another stop().
    loop.call_soon(out.append, 2)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert out == [1, 2]


# -- close / __del__ -------------------------------------------------------------


def test_close_running_refused_and_idempotent(loop):
    errors = []

    def try_close():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))

    loop.call_soon(try_close)
    run_briefly(loop)
    assert errors == ["Cannot close a running event loop"]
    assert not loop.is_closed()
    loop.close()
    loop.close()
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_forever()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_until_complete(coro)
    coro.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_in_executor(None, int)


def test_close_debug_log(loop, caplog):
    loop.set_debug(True)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.close()
    assert any(r.getMessage().startswith("Close <") for r in caplog.records)


def test_unclosed_loop_resource_warning(loop_kind):
    lp = make_loop(loop_kind)
    with pytest.warns(ResourceWarning, match="unclosed event loop <"):
        del lp
        gc.collect()


# -- async generators --------------------------------------------------------------


def test_shutdown_asyncgens(loop):
    closed = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def main():
        g = agen()
        assert await g.__anext__() == 1
        return g

    g = loop.run_until_complete(main())
    assert g in loop._asyncgens
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert closed == [True]
    assert len(loop._asyncgens) == 0

    async def late():
        g2 = agen()
        await g2.__anext__()
        await g2.aclose()

    with pytest.warns(ResourceWarning, match="was scheduled after"):
        loop.run_until_complete(late())


def test_shutdown_asyncgens_reports_errors(loop):
    errors = collect_errors(loop)

    async def agen():
        try:
            yield 1
        finally:
            raise Boom("in aclose")

    async def main():
        g = agen()
        await g.__anext__()
        return g

    g = loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(errors) == 1
    assert errors[0]["asyncgen"] is g
    assert isinstance(errors[0]["exception"], Boom)
    assert errors[0]["message"].startswith("an error occurred during closing")


def test_asyncgen_finalizer_closes_on_loop(loop):
    closed = []

    async def agen():
        try:
            yield 1
        finally:
            closed.append(asyncio.get_running_loop())

    async def main():
        g = agen()
        await g.__anext__()
        del g
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert closed == [loop]


# -- executor ----------------------------------------------------------------------


def test_run_in_executor_default(loop):
    async def main():
        name = await loop.run_in_executor(
            None, lambda: threading.current_thread().name)
        value = await loop.run_in_executor(None, pow, 2, 10)
        return name, value

    name, value = loop.run_until_complete(main())
    assert name.startswith("asyncio")
    assert value == 1024
    assert isinstance(loop._default_executor, concurrent.futures.ThreadPoolExecutor)
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, int)
    # An explicit executor is still accepted.
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        assert loop.run_until_complete(loop.run_in_executor(ex, int, "7")) == 7


def test_run_in_executor_debug_rejects_coroutines(loop):
    loop.set_debug(True)

    async def coro_fn():
        pass

    with pytest.raises(TypeError, match="coroutines cannot be used with run_in_executor"):
        loop.run_in_executor(None, coro_fn)


def test_set_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1)
    loop.set_default_executor(ex)
    assert loop._default_executor is ex
    name = loop.run_until_complete(
        loop.run_in_executor(None, lambda: threading.current_thread().name))
    assert name.startswith("ThreadPoolExecutor")

    class NotThreadPool(concurrent.futures.Executor):
        pass

    if PY311:
        with pytest.raises(TypeError, match="ThreadPoolExecutor"):
            loop.set_default_executor(NotThreadPool())
        assert loop._default_executor is ex
    else:
        with pytest.warns(DeprecationWarning):
            loop.set_default_executor(NotThreadPool())
        loop.set_default_executor(ex)
    loop.close()  # shuts the default executor down without waiting
    assert ex._shutdown


def test_shutdown_default_executor_positional_timeout(loop, loop_kind):
    if loop_kind == "asyncio" and not PY312:
        pytest.skip("asyncio < 3.12 has no timeout parameter")
    loop.run_until_complete(loop.run_in_executor(None, int))
    loop.run_until_complete(loop.shutdown_default_executor(5))


def test_shutdown_default_executor_timeout_warns(loop, loop_kind):
    if loop_kind == "asyncio" and sys.version_info < (3, 13):
        pytest.skip("asyncio's timeout is only effective from 3.13")
    release = threading.Event()
    loop.run_in_executor(None, release.wait, 10)
    try:
        with pytest.warns(RuntimeWarning, match="did not finishing joining"):
            loop.run_until_complete(loop.shutdown_default_executor(0.05))
    finally:
        release.set()


# -- DNS ---------------------------------------------------------------------------


def test_getaddrinfo_getnameinfo(loop):
    infos = loop.run_until_complete(
        loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
    assert infos == socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    host, port = loop.run_until_complete(
        loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV))
    assert (host, port) == ("127.0.0.1", "80")


def test_getaddrinfo_debug_logs(loop, caplog):
    loop.set_debug(True)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_until_complete(loop.getaddrinfo("127.0.0.1", 80, family=socket.AF_INET))
    msgs = [r.getMessage() for r in caplog.records]
    assert "Get address info 127.0.0.1:80, family=<AddressFamily.AF_INET: 2>" in msgs
    assert any(m.startswith("Getting address info 127.0.0.1:80") for m in msgs)


# -- exception handler -------------------------------------------------------------


def test_exception_handler_api(loop):
    assert loop.get_exception_handler() is None
    with pytest.raises(TypeError, match="A callable object or None is expected"):
        loop.set_exception_handler(42)

    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


def my_failing_callback():
    raise Boom("cb")


def test_callback_error_context(loop):
    errors = collect_errors(loop)
    h = loop.call_soon(my_failing_callback)
    run_briefly(loop)
    assert len(errors) == 1
    ctx = errors[0]
    # debug mode (-X dev) adds where the handle was created
    extra = {"source_traceback"} if loop.get_debug() else set()
    assert set(ctx) == {"message", "exception", "handle"} | extra
    assert ctx["handle"] is h
    if extra:
        assert ctx["source_traceback"][-1].name == "test_callback_error_context"
    assert isinstance(ctx["exception"], Boom)
    assert ctx["message"].startswith("Exception in callback my_failing_callback()")
    assert "test_python_layer.py:" in ctx["message"]


def test_callback_error_after_self_cancel(loop):
    """A callback that cancels its own handle, then raises: asyncio formats
    the (now None) callback; nothing else breaks."""
    errors = collect_errors(loop)
    holder = []

    def cb():
        holder[0].cancel()
        raise Boom("after cancel")

    holder.append(loop.call_soon(cb))
    run_briefly(loop)
    assert len(errors) == 1
    assert errors[0]["message"].startswith("Exception in callback")
    assert errors[0]["handle"] is holder[0]


def test_custom_handler_runs_in_handle_context(loop):
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(cvar.get()))
    ctx = contextvars.copy_context()
    ctx.run(cvar.set, "from-handle")
    loop.call_soon(my_failing_callback, context=ctx)
    run_briefly(loop)
    if loop_kind_is_asyncio(loop) and not PY312:
        assert seen == ["default"]  # asyncio < 3.12 ran it in no context
    else:
        assert seen == ["from-handle"]


def loop_kind_is_asyncio(loop):
    import fastloop

    return not isinstance(loop, fastloop.Loop)


def test_default_handler_logs(loop, caplog):
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "hello", "zzz": 1, "aaa": "x"})
        loop.call_exception_handler({"exception": Boom("e")})
    recs = caplog.records
    assert recs[0].getMessage() == "hello\naaa: 'x'\nzzz: 1"
    assert not recs[0].exc_info
    assert recs[1].getMessage() == "Unhandled exception in event loop"
    assert recs[1].exc_info[0] is Boom


def test_failing_custom_handler(loop, caplog):
    def bad(lp, ctx):
        raise Boom("handler")

    loop.set_exception_handler(bad)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "orig"})
    (rec,) = caplog.records
    assert rec.getMessage().startswith("Unhandled error in exception handler\ncontext: ")
    assert rec.exc_info[0] is Boom


def test_failing_default_handler(loop, caplog, monkeypatch):
    def bad(ctx):
        raise Boom("default")

    monkeypatch.setattr(loop, "default_exception_handler", bad)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "orig"})
    (rec,) = caplog.records
    assert rec.getMessage() == "Exception in default exception handler"


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_handler_base_exceptions_propagate(loop, exc):
    def bad(lp, ctx):
        raise exc()

    loop.set_exception_handler(bad)
    with pytest.raises(exc):
        loop.call_exception_handler({"message": "x"})


def test_call_exception_handler_after_close(loop, caplog):
    loop.close()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "late", "exception": Boom()})
    assert caplog.records[0].getMessage() == "late"


def test_debug_handle_traceback(loop, caplog):
    loop.set_debug(True)

    def cb():
        loop.call_exception_handler({"message": "from cb"})

    loop.call_soon(cb)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run_briefly(loop)
    msg = [r.getMessage() for r in caplog.records if r.getMessage().startswith("from cb")]
    assert msg and "handle_traceback: Handle created at (most recent call last):" in msg[0]


def test_slow_callback_logged(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.03)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        run_briefly(loop)
    msgs = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Executing <Handle sleep(0.03)") and " took 0.0" in m
               for m in msgs), msgs


def test_debug_coroutine_origin_tracking(loop):
    seen = []
    loop.set_debug(True)
    loop.call_soon(lambda: seen.append(sys.get_coroutine_origin_tracking_depth()))
    depth = sys.get_coroutine_origin_tracking_depth()
    run_briefly(loop)
    assert seen == [10]
    assert sys.get_coroutine_origin_tracking_depth() == depth


# -- signals (the basics; tests/test_signals.py has the rest) ------------------------


def test_signal_handler_roundtrip(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
    try:
        loop.call_later(0.01, signal.raise_signal, signal.SIGUSR1)
        loop.run_until_complete(asyncio.sleep(0.1))
    finally:
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert got == ["usr1"]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1


def test_run_forever_restores_wakeup_fd(loop, fastloop_only):
    assert signal.set_wakeup_fd(-1) == -1
    seen = []
    loop.call_soon(lambda: seen.append(signal.set_wakeup_fd(-1)))
    run_briefly(loop)
    # run_forever pointed the wake-up fd at its self-pipe...
    assert seen and seen[0] == loop._csock.fileno()
    # ...and left none behind (the callback above already reset it).
    assert signal.set_wakeup_fd(-1) == -1

    loop.call_soon(loop.stop)
    loop.run_forever()
    assert signal.set_wakeup_fd(-1) == -1


def test_python_signal_handler_wakes_idle_loop(loop, fastloop_only):
    """The main thread blocks SIGUSR1: only the wake-up fd installed by
    run_forever can wake the loop for the Python-level handler."""
    old = signal.signal(signal.SIGUSR1, lambda s, f: loop.stop())
    go = threading.Event()

    def sender():
        go.wait(10)
        time.sleep(0.1)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

    t = threading.Thread(target=sender)
    t.start()
    watchdog = threading.Timer(5, loop.call_soon_threadsafe, (loop.stop,))
    watchdog.start()
    t0 = time.monotonic()
    try:
        go.set()
        loop.run_forever()
    finally:
        watchdog.cancel()
        t.join()
        signal.signal(signal.SIGUSR1, old)
    assert time.monotonic() - t0 < 2


# -- the package ----------------------------------------------------------------------


def test_run_basic():
    import fastloop

    seen = []

    async def main(x):
        seen.append(type(asyncio.get_running_loop()))
        await asyncio.sleep(0.001)
        return x

    assert fastloop.run(main("ok")) == "ok"
    assert seen == [fastloop.Loop]
    assert fastloop.run(asyncio.sleep(0.001, "ok2")) == "ok2"


def test_run_debug_and_cleanup():
    import fastloop

    state = {}

    async def leftover():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    async def main():
        loop = asyncio.get_running_loop()
        state["loop"] = loop
        state["debug"] = loop.get_debug()
        loop.create_task(leftover())
        await loop.run_in_executor(None, int)
        await asyncio.sleep(0)

    fastloop.run(main(), debug=True)
    assert state["debug"] is True
    assert state["cancelled"] is True
    assert state["loop"].is_closed()
    assert state["loop"]._default_executor is None


def test_run_rejects_other_loops_and_non_coroutines():
    import fastloop

    async def main():
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # main is closed, not leaked
        with pytest.raises(TypeError, match="non-fastloop event loop"):
            fastloop.run(main(), loop_factory=asyncio.SelectorEventLoop)
        gc.collect()
    with pytest.raises(ValueError, match="a coroutine was expected"):
        fastloop.run(main)

    class Sub(fastloop.Loop):
        pass

    assert fastloop.run(main(), loop_factory=Sub) == 1


def test_run_from_running_loop():
    import fastloop

    async def outer():
        coro = asyncio.sleep(0)
        try:
            with pytest.raises(RuntimeError, match="running event loop"):
                fastloop.run(coro)
        finally:
            coro.close()

    fastloop.run(outer())


@pytest.mark.skipif(not PY311, reason="asyncio.Runner is 3.11+")
def test_asyncio_runner_with_factory():
    import fastloop

    with asyncio.Runner(loop_factory=fastloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), fastloop.Loop)
        assert runner.run(asyncio.sleep(0.001, 5)) == 5
        assert runner.run(asyncio.sleep(0, 6)) == 6


def test_policy_and_install():
    import fastloop

    Policy = fastloop.EventLoopPolicy
    assert Policy is fastloop.EventLoopPolicy
    assert issubclass(Policy, asyncio.DefaultEventLoopPolicy)
    loop = Policy().new_event_loop()
    try:
        assert isinstance(loop, fastloop.Loop)
    finally:
        loop.close()
    try:
        if PY312:
            with pytest.warns(DeprecationWarning, match="fastloop.install"):
                fastloop.install()
        else:
            fastloop.install()
        assert isinstance(asyncio.get_event_loop_policy(), Policy)
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, fastloop.Loop)
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(None)
    with pytest.raises(AttributeError):
        fastloop.no_such_name
    assert fastloop.__version__ == "0.1.0"
    for name in fastloop.__all__:
        assert getattr(fastloop, name)


def test_loop_class_shape():
    import fastloop
    from fastloop import _core
    from fastloop._base import BaseLoopMixin

    mro = fastloop.Loop.__mro__
    assert mro[1] is _core.Loop
    assert mro[-2] is asyncio.AbstractEventLoop
    assert BaseLoopMixin in mro
    with pytest.raises(TypeError):
        fastloop.Loop(1)

    class Sub(fastloop.Loop):
        def __init__(self, x):
            super().__init__()
            self.x = x

    lp = Sub(3)
    try:
        lp.extra = "attr"
        assert (lp.x, lp.extra) == (3, "attr")
        assert lp.run_until_complete(asyncio.sleep(0, "sub")) == "sub"
        asyncio.set_event_loop(lp)  # the policy's isinstance check passes
        asyncio.set_event_loop(None)
    finally:
        lp.close()
