"""run_forever / run_until_complete / stop / close semantics."""
import asyncio
import os
import sys
import threading
import time
import traceback
import warnings

import pytest

from conftest import LOOP_KINDS, make_loop, run

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)

# CPython 3.13.0's asyncio runs _run_forever_cleanup() even when
# _run_forever_setup() refused to start (already running / another loop
# running), clearing the running loop of the *outer* run: the reference
# itself is wrong there, so those asyncio variants are skipped.
ASYNCIO_RUN_FOREVER_CLEANUP_BUG = sys.version_info[:3] == (3, 13, 0)
BUG_REASON = "CPython 3.13.0 asyncio bug: failed run_forever() setup clobbers state"


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def collect_errors(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    return errors


async def coro_result(value, delay=0):
    await asyncio.sleep(delay)
    return value


class Boom(Exception):
    pass


# --------------------------------------------------------------------------
# states


def test_initial_state(loop):
    assert loop.is_running() is False
    assert loop.is_closed() is False


def test_close_idempotent(loop):
    loop.close()
    assert loop.is_closed() is True
    assert loop.is_running() is False
    loop.close()
    loop.close()
    assert loop.is_closed() is True


def test_is_running_inside_and_outside(loop):
    seen = []
    loop.call_soon(lambda: seen.append(loop.is_running()))
    run_once(loop)
    assert seen == [True]
    assert loop.is_running() is False

    async def main():
        return loop.is_running()

    assert run(loop, main()) is True
    assert loop.is_running() is False


def test_is_running_seen_from_other_thread(loop):
    seen = []

    def probe():
        seen.append(loop.is_running())
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(lambda: threading.Thread(target=probe).start())
    loop.run_forever()
    assert seen == [True]


def test_thread_id_attribute(loop):
    seen = []
    assert loop._thread_id is None
    loop.call_soon(lambda: seen.append(loop._thread_id))
    run_once(loop)
    assert seen == [threading.get_ident()]
    assert loop._thread_id is None


# --------------------------------------------------------------------------
# close


def test_close_while_running_raises(loop):
    caught = []

    def cb():
        try:
            loop.close()
        except RuntimeError as e:
            caught.append(str(e))

    loop.call_soon(cb)
    run_once(loop)
    assert len(caught) == 1 and "running" in caught[0]
    assert not loop.is_closed()


def test_close_while_running_in_coroutine(loop):
    async def main():
        with pytest.raises(RuntimeError):
            loop.close()
        return loop.is_closed()

    assert run(loop, main()) is False
    loop.close()
    assert loop.is_closed()


def test_close_from_other_thread_while_running_raises(loop):
    caught = []

    def worker():
        try:
            loop.close()
        except RuntimeError as e:
            caught.append(e)
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(lambda: threading.Thread(target=worker).start())
    loop.run_forever()
    assert len(caught) == 1
    assert not loop.is_closed()


def test_close_with_pending_work(loop):
    loop.call_soon(lambda: None)
    loop.call_later(3600, lambda: None)

    async def forever():
        await asyncio.sleep(3600)

    task = loop.create_task(forever())
    run_once(loop)  # start the task
    loop.close()
    assert loop.is_closed()
    assert not task.done()
    task._log_destroy_pending = False


# --------------------------------------------------------------------------
# running a closed loop


def test_run_forever_on_closed_loop(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_forever()
    assert not loop.is_running()


def test_run_until_complete_on_closed_loop(loop):
    fut = loop.create_future()
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_until_complete(fut)
    coro = coro_result(1)
    try:
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.run_until_complete(coro)
    finally:
        coro.close()
    assert not loop.is_running()


# --------------------------------------------------------------------------
# re-entrancy


def test_reentrant_run_forever_raises(loop, loop_kind):
    if loop_kind == "asyncio" and ASYNCIO_RUN_FOREVER_CLEANUP_BUG:
        pytest.skip(BUG_REASON)
    caught = []

    def cb():
        try:
            loop.run_forever()
        except RuntimeError as e:
            caught.append(str(e))
        # still running, still the running loop
        caught.append(loop.is_running())
        caught.append(asyncio.get_running_loop() is loop)

    loop.call_soon(cb)
    run_once(loop)
    assert len(caught) == 3
    assert "already running" in caught[0]
    assert caught[1:] == [True, True]
    assert not loop.is_running()


def test_reentrant_run_until_complete_raises(loop):
    async def main():
        fut = loop.create_future()
        with pytest.raises(RuntimeError, match="already running"):
            loop.run_until_complete(fut)
        assert asyncio.get_running_loop() is loop
        await asyncio.sleep(0)
        return "ok"

    assert run(loop, main()) == "ok"


def test_run_until_complete_from_other_thread_while_running(loop):
    caught = []

    def worker():
        fut = asyncio.Future(loop=loop)
        try:
            loop.run_until_complete(fut)
        except RuntimeError as e:
            caught.append(str(e))
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(lambda: threading.Thread(target=worker).start())
    loop.run_forever()
    assert len(caught) == 1 and "running" in caught[0]


def test_losing_a_race_to_run_leaves_the_winner_running():
    """Two threads starting one loop at once: both pass _check_running(),
    one then fails to mark the loop running (fastloop refuses where
    asyncio would run it twice). The loser must not undo the winner's
    state (is_running(), the running loop, asyncgen hooks). The race is
    made certain by skipping the loser's _check_running()."""
    loop = make_loop("fastloop")
    seen = []

    def loser():
        loop._check_running = lambda: None
        try:
            loop.run_forever()
        except RuntimeError as e:
            seen.append(str(e))
        finally:
            del loop._check_running
        loop.call_soon_threadsafe(check_and_stop)

    def check_and_stop():
        seen.append((loop.is_running(), asyncio.get_running_loop() is loop,
                     sys.get_asyncgen_hooks().firstiter is not None))
        loop.stop()

    try:
        loop.call_soon(lambda: threading.Thread(target=loser).start())
        loop.run_forever()
    finally:
        loop.close()
    assert len(seen) == 2 and "running" in seen[0], seen
    assert seen[1] == (True, True, True)


@pytest.mark.parametrize("inner_kind", LOOP_KINDS)
def test_running_another_loop_in_same_thread_raises(loop, inner_kind):
    if inner_kind == "asyncio" and ASYNCIO_RUN_FOREVER_CLEANUP_BUG:
        pytest.skip(BUG_REASON)
    inner = make_loop(inner_kind)
    caught = []

    def cb():
        with pytest.raises(RuntimeError, match="another loop"):
            inner.run_forever()
        fut = inner.create_future()
        with pytest.raises(RuntimeError, match="another loop"):
            inner.run_until_complete(fut)
        caught.append(inner.is_running())
        # the failed attempt did not clobber the outer loop's state
        caught.append(asyncio.get_running_loop() is loop)
        caught.append(loop.is_running())

    try:
        loop.call_soon(cb)
        run_once(loop)
        assert caught == [False, True, True]
        # once the outer loop has stopped, the inner one runs fine
        assert inner.run_until_complete(coro_result(5)) == 5
        assert asyncio._get_running_loop() is None
    finally:
        inner.close()


def test_asyncio_run_inside_running_loop_raises(loop):
    async def main():
        coro = coro_result(1)
        try:
            with pytest.raises(RuntimeError):
                asyncio.run(coro)
        finally:
            coro.close()
        return asyncio.get_running_loop() is loop

    assert run(loop, main()) is True


# --------------------------------------------------------------------------
# running loop registration


def test_get_running_loop_inside(loop):
    seen = []
    loop.call_soon(lambda: seen.append(asyncio.get_running_loop()))
    loop.call_soon(lambda: seen.append(asyncio._get_running_loop()))
    run_once(loop)
    assert seen == [loop, loop]

    async def main():
        return (asyncio.get_running_loop(), asyncio.get_event_loop(),
                asyncio._get_running_loop())

    assert run(loop, main()) == (loop, loop, loop)


def test_get_running_loop_outside_raises(loop):
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()
    run_once(loop)
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()
    assert asyncio._get_running_loop() is None


def test_running_loop_cleared_after_each_way_out(loop):
    run_once(loop)
    assert asyncio._get_running_loop() is None

    assert run(loop, coro_result(1)) == 1
    assert asyncio._get_running_loop() is None

    async def fail():
        raise Boom()

    with pytest.raises(Boom):
        loop.run_until_complete(fail())
    assert asyncio._get_running_loop() is None

    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError):
        loop.run_until_complete(fut)
    assert asyncio._get_running_loop() is None
    assert not loop.is_running()


# --------------------------------------------------------------------------
# run_until_complete


def test_run_until_complete_result_and_exception(loop):
    assert loop.run_until_complete(coro_result("x", 0.001)) == "x"

    async def fail():
        await asyncio.sleep(0)
        raise Boom("bad")

    with pytest.raises(Boom, match="bad"):
        loop.run_until_complete(fail())
    # still usable
    assert loop.run_until_complete(coro_result(2)) == 2


def test_run_until_complete_accepts_future_task_awaitable(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "fut")
    assert loop.run_until_complete(fut) == "fut"

    task = loop.create_task(coro_result("task"))
    assert loop.run_until_complete(task) == "task"

    class Awaitable:
        def __await__(self):
            return coro_result("awaitable").__await__()

    assert loop.run_until_complete(Awaitable()) == "awaitable"

    done = loop.create_future()
    done.set_result("done")
    assert loop.run_until_complete(done) == "done"


def test_run_until_complete_not_awaitable(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(42)
    with pytest.raises(TypeError):
        loop.run_until_complete(lambda: None)
    assert not loop.is_running()


@pytest.mark.parametrize("other_kind", LOOP_KINDS)
def test_run_until_complete_future_from_other_loop(loop, other_kind):
    other = make_loop(other_kind)
    try:
        fut = other.create_future()
        with pytest.raises(ValueError):
            loop.run_until_complete(fut)
        assert not loop.is_running()
        assert asyncio._get_running_loop() is None
        task = other.create_task(coro_result(1))
        with pytest.raises(ValueError):
            loop.run_until_complete(task)
        assert other.run_until_complete(task) == 1
    finally:
        other.close()


def test_stopped_before_future_completed(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError,
                       match="Event loop stopped before Future completed."):
        loop.run_until_complete(fut)
    assert not fut.done()
    # the future can still be completed by a later run
    loop.call_soon(fut.set_result, 3)
    assert loop.run_until_complete(fut) == 3


def test_stop_from_coroutine_in_run_until_complete(loop):
    async def main():
        loop.stop()
        await asyncio.sleep(3600)

    task = loop.create_task(main())
    with pytest.raises(RuntimeError, match="before Future completed"):
        loop.run_until_complete(task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


def test_run_until_complete_stops_promptly_after_done(loop):
    """Callbacks scheduled after the future completes are left queued."""
    out = []

    async def main():
        loop.call_soon(out.append, "same-iteration")
        return "r"

    assert loop.run_until_complete(main()) == "r"
    # run_until_complete returned; "same-iteration" either ran or is still
    # queued, but nothing is lost:
    run_once(loop)
    assert out == ["same-iteration"]


def test_sequential_runs(loop):
    for i in range(50):
        assert loop.run_until_complete(coro_result(i)) == i
    assert not loop.is_running()


# --------------------------------------------------------------------------
# stop


def test_stop_before_run_forever_runs_one_iteration(loop):
    out = []

    def first():
        out.append("first")
        loop.call_soon(out.append, "scheduled-by-first")

    loop.stop()
    loop.call_soon(first)
    loop.call_soon(out.append, "second")
    loop.run_forever()
    assert out == ["first", "second"]
    assert not loop.is_running()

    # the stop request was consumed: the next run goes on until stopped
    loop.call_soon(lambda: loop.call_soon(lambda: loop.call_soon(loop.stop)))
    loop.run_forever()
    assert out == ["first", "second", "scheduled-by-first"]


def test_stop_before_run_until_complete(loop):
    fut = loop.create_future()
    loop.stop()
    with pytest.raises(RuntimeError, match="before Future completed"):
        loop.run_until_complete(fut)
    loop.call_soon(fut.set_result, 1)
    assert loop.run_until_complete(fut) == 1


def test_stop_before_run_forever_with_expired_timer(loop):
    out = []
    loop.call_later(-1, out.append, "expired")
    loop.stop()
    loop.run_forever()
    assert out == ["expired"]


@pytest.mark.timeout(30)
def test_stop_from_other_thread_via_threadsafe(loop):
    def worker():
        time.sleep(0.02)
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=worker)
    t.start()
    loop.run_forever()
    t.join()
    assert not loop.is_running()


# --------------------------------------------------------------------------
# threads


@pytest.mark.timeout(30)
def test_loop_runs_in_non_main_thread(loop):
    result = {}

    async def main():
        result["loop"] = asyncio.get_running_loop()
        result["thread"] = threading.get_ident()
        fut = loop.create_future()
        result["fut"] = fut
        ready.set()
        await asyncio.sleep(0.001)
        return await fut

    ready = threading.Event()

    def worker():
        try:
            result["value"] = run(loop, main())
        except BaseException as e:  # pragma: no cover - reported below
            result["error"] = e
        result["running_after"] = asyncio._get_running_loop()

    t = threading.Thread(target=worker)
    t.start()
    assert ready.wait(10)
    loop.call_soon_threadsafe(result["fut"].set_result, "from-main")
    t.join(20)
    assert not t.is_alive()
    assert "error" not in result, result.get("error")
    assert result["value"] == "from-main"
    assert result["loop"] is loop
    assert result["thread"] == t.ident
    assert result["running_after"] is None
    # the main thread never saw a running loop
    assert asyncio._get_running_loop() is None


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_loop_created_run_closed_in_thread(kind):
    out = {}

    def worker():
        lp = make_loop(kind)
        try:
            out["value"] = lp.run_until_complete(coro_result(7, 0.001))
            out["timer"] = []
            lp.call_later(0.001, out["timer"].append, 1)
            lp.call_later(0.002, lp.stop)
            lp.run_forever()
        except BaseException as e:  # pragma: no cover
            out["error"] = e
        finally:
            lp.close()
            out["closed"] = lp.is_closed()

    t = threading.Thread(target=worker)
    t.start()
    t.join(20)
    assert "error" not in out, out.get("error")
    assert out["value"] == 7
    assert out["timer"] == [1]
    assert out["closed"] is True


@pytest.mark.timeout(30)
def test_two_loops_in_two_threads(loop_kind):
    results = []

    def worker(i):
        lp = make_loop(loop_kind)
        try:
            results.append(lp.run_until_complete(coro_result(i, 0.005)))
        finally:
            lp.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results) == [0, 1, 2, 3]


# --------------------------------------------------------------------------
# fork


def _child_work(kind):
    """Runs in the forked child: exercise a fresh loop, return status."""
    lp = make_loop(kind)
    try:
        async def main():
            await asyncio.sleep(0.001)
            fut = lp.create_future()
            th = threading.Thread(
                target=lambda: lp.call_soon_threadsafe(fut.set_result, 42))
            th.start()
            value = await fut
            th.join()
            r, w = os.pipe()
            try:
                got = lp.create_future()
                lp.add_reader(r, lambda: got.set_result(os.read(r, 10)))
                os.write(w, b"ping")
                data = await asyncio.wait_for(got, 10)
                lp.remove_reader(r)
            finally:
                os.close(r)
                os.close(w)
            return value, data

        res = lp.run_until_complete(asyncio.wait_for(main(), 10))
        return 0 if res == (42, b"ping") else 3
    finally:
        lp.close()


def _fork_and_check(child_fn):
    with warnings.catch_warnings():
        # 3.12+: DeprecationWarning when forking a multi-threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child
        status = 1
        try:
            status = child_fn()
        except BaseException:
            traceback.print_exc()
            status = 2
        finally:
            os._exit(status)
    deadline = time.monotonic() + 30
    while True:
        wpid, wstatus = os.waitpid(pid, os.WNOHANG)
        if wpid:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("forked child hung")
        time.sleep(0.005)
    assert os.WIFEXITED(wstatus), wstatus
    return os.WEXITSTATUS(wstatus)


@pytest.mark.timeout(60)
def test_new_loop_in_forked_child(loop, loop_kind):
    # use the parent's loop first so it has live state at fork time
    assert run(loop, coro_result(1, 0.001)) == 1
    pending = loop.call_later(3600, lambda: None)
    assert _fork_and_check(lambda: _child_work(loop_kind)) == 0
    # the parent's loop is unaffected
    assert run(loop, coro_result(2, 0.001)) == 2
    pending.cancel()


@pytest.mark.timeout(60)
def test_new_loop_in_child_forked_from_running_callback(loop, loop_kind):
    statuses = []

    def cb():
        statuses.append(_fork_and_check(lambda: _child_work(loop_kind)))

    loop.call_soon(cb)
    run_once(loop)
    assert statuses == [0]
    assert run(loop, coro_result(3)) == 3


# --------------------------------------------------------------------------
# asyncio.Runner / asyncio.run with a loop factory


@pytest.mark.skipif(not PY311, reason="asyncio.Runner is 3.11+")
def test_runner_with_loop_factory(loop_kind):
    made = []

    def factory():
        lp = make_loop(loop_kind)
        made.append(lp)
        return lp

    async def main(x):
        assert asyncio.get_running_loop() is made[0]
        await asyncio.sleep(0.001)
        return x * 2

    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.get_loop() is made[0]
        assert runner.run(main(1)) == 2
        assert runner.run(main(2)) == 4
    assert made[0].is_closed()


@pytest.mark.skipif(not PY312, reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_with_loop_factory(loop_kind):
    made = []

    def factory():
        lp = make_loop(loop_kind)
        made.append(lp)
        return lp

    async def main():
        await asyncio.sleep(0.001)
        return asyncio.get_running_loop()

    assert asyncio.run(main(), loop_factory=factory) is made[0]
    assert made[0].is_closed()


# --------------------------------------------------------------------------
# interpreter shutdown with loop objects still alive


_SHUTDOWN_TEST = '''
def noop(*a):
    pass

def test_fails_holding_handles(loop):
    hs = [loop.call_later(1000, noop) for _ in range(10)]
    for h in hs:
        h.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    keeper = loop.call_later(500, noop)
    assert keeper is None  # fails: the traceback keeps the handles alive
'''


@pytest.mark.timeout(120)
def test_shutdown_with_handles_in_failed_test_traceback(tmp_path, loop_kind):
    """Handles kept alive by a traceback until interpreter finalization are
    freed after the extension module: their dealloc must not touch freed
    module state (found with ASan: run under `make test-asan`)."""
    import shutil
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    shutil.copy(os.path.join(here, "conftest.py"), str(tmp_path))
    (tmp_path / "test_shutdown_probe.py").write_text(_SHUTDOWN_TEST)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(here)] + env.get("PYTHONPATH", "").split(os.pathsep))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:randomly", "-k", loop_kind, "test_shutdown_probe.py"],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=100)
    out = proc.stdout.decode(errors="replace")
    assert "AddressSanitizer" not in out, out[-3000:]
    assert "1 failed" in out, out[-3000:]
    assert proc.returncode == 1, (proc.returncode, out[-3000:])


# --------------------------------------------------------------------------
# 3.13's split run_forever: _run_forever_setup() / _run_forever_cleanup()
# (used by code that drives iterations itself, e.g. GUI integrations)


@pytest.mark.skipif(sys.version_info < (3, 13), reason="_run_forever_setup is 3.13+")
def test_run_forever_setup_marks_running(loop):
    assert loop.is_running() is False
    loop._run_forever_setup()
    try:
        assert loop.is_running() is True
        assert asyncio.get_running_loop() is loop
        assert loop._thread_id == threading.get_ident()
        # Iterations driven by hand run callbacks.
        seen = []
        loop.call_soon(seen.append, 1)
        loop._run_once()
        assert seen == [1]
        # A second run while set up is refused, as with asyncio.
        with pytest.raises(RuntimeError):
            loop.run_forever()
    finally:
        loop._run_forever_cleanup()
    assert loop.is_running() is False
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_closed_loop_is_freed_without_the_gc(loop_kind):
    # No reference cycle through the loop: once closed and dropped it goes
    # at once, as asyncio's does, not at some later GC pass (anyio's
    # test_asyncio_run_does_not_leak_event_loop checks right after a
    # worker thread lets go of it).
    import gc
    import weakref

    async def main(lp):
        await asyncio.sleep(0)
        fut = lp.create_future()
        lp.call_soon(fut.set_result, 1)
        await fut
        await asyncio.ensure_future(asyncio.sleep(0))
        await lp.run_in_executor(None, sum, [1])
        srv = await lp.create_server(asyncio.Protocol, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*srv.sockets[0].getsockname())
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        lp = make_loop(loop_kind)
        lp.run_until_complete(main(lp))
        lp.run_until_complete(lp.shutdown_default_executor())
        lp.close()
        ref = weakref.ref(lp)
        del lp
        assert ref() is None
    finally:
        if was_enabled:
            gc.enable()
