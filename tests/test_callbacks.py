"""call_soon / call_soon_threadsafe / Handle semantics.

Every parametrized test runs on fastloop and on asyncio's own loop (see the
``loop`` fixture in conftest.py): asyncio is the reference that proves the
test right.  Tests that need fastloop-specific behaviour use ``fastloop_only``.
"""
import asyncio
import contextvars
import gc
import logging
import sys
import threading
import time
import weakref

import pytest

from conftest import param_repr

PY312 = sys.version_info >= (3, 12)

cvar = contextvars.ContextVar("cvar", default="default")


def run_once(loop):
    """Run the callbacks that are ready now (one batch), then return."""
    loop.call_soon(loop.stop)
    loop.run_forever()


def collect_errors(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    return errors


def my_named_callback(*args):
    pass


class Boom(Exception):
    pass


class CustomBase(BaseException):
    """A BaseException that is neither SystemExit nor KeyboardInterrupt."""


def raiser(exc):
    def cb():
        raise exc
    return cb


# --------------------------------------------------------------------------
# ordering and batches


def test_call_soon_is_fifo(loop):
    out = []
    for i in range(1000):
        loop.call_soon(out.append, i)
    run_once(loop)
    assert out == list(range(1000))


def test_args_are_passed_positionally_and_by_identity(loop):
    seen = []
    sentinel = object()

    def cb(*args):
        seen.append(args)

    loop.call_soon(cb)
    loop.call_soon(cb, 1, "a", None, sentinel)
    many = tuple(range(100))
    loop.call_soon(cb, *many)
    run_once(loop)
    assert seen[0] == ()
    assert seen[1][:3] == (1, "a", None)
    assert seen[1][3] is sentinel
    assert seen[2] == many


def test_call_soon_rejects_keyword_arguments_for_callback(loop):
    with pytest.raises(TypeError):
        loop.call_soon(my_named_callback, x=1)


def test_callback_scheduled_during_batch_runs_in_next_iteration(loop):
    """Only callbacks ready at the start of an iteration run in it.

    ``stop()`` lets the current batch complete; the callback scheduled
    during the batch stays queued and runs first in the next run.
    """
    out = []

    def a():
        out.append("a")
        loop.call_soon(out.append, "c")

    def b():
        out.append("b")
        loop.stop()

    loop.call_soon(a)
    loop.call_soon(b)
    loop.run_forever()
    assert out == ["a", "b"]
    assert not loop.is_running()

    run_once(loop)
    assert out == ["a", "b", "c"]


def test_stop_lets_current_batch_complete(loop):
    out = []

    def first():
        out.append(1)
        loop.stop()
        loop.call_soon(out.append, "next-run")

    loop.call_soon(first)
    for i in range(2, 6):
        loop.call_soon(out.append, i)
    loop.run_forever()
    assert out == [1, 2, 3, 4, 5]

    # the callback scheduled after stop() ran in the following run
    run_once(loop)
    assert out == [1, 2, 3, 4, 5, "next-run"]


def test_stop_twice_in_one_batch(loop):
    out = []
    loop.call_soon(loop.stop)
    loop.call_soon(loop.stop)
    loop.call_soon(out.append, 1)
    loop.run_forever()
    assert out == [1]
    # the stopping flag was reset: a new run goes on until stopped again
    loop.call_soon(lambda: loop.call_soon(lambda: loop.call_soon(loop.stop)))
    loop.call_soon(lambda: loop.call_soon(out.append, 2))
    loop.run_forever()
    assert out == [1, 2]


def test_chain_of_call_soon_one_per_iteration(loop):
    """A self-rescheduling chain advances by exactly one step per batch."""
    steps = []

    def step(n):
        steps.append(n)
        loop.call_soon(step, n + 1)

    loop.call_soon(step, 0)
    for expected in range(1, 6):
        run_once(loop)
        assert steps == list(range(expected))


def test_busy_ready_queue_does_not_starve_timers(loop):
    count = [0]

    def spin():
        count[0] += 1
        loop.call_soon(spin)

    loop.call_soon(spin)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert count[0] > 0


@pytest.mark.timeout(30)
def test_busy_ready_queue_does_not_starve_threadsafe_calls(loop):
    count = [0]

    def spin():
        count[0] += 1
        loop.call_soon(spin)

    def other():
        time.sleep(0.02)
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=other)
    loop.call_soon(spin)
    loop.call_soon(t.start)
    loop.run_forever()
    t.join()
    assert count[0] > 0


# --------------------------------------------------------------------------
# contexts


def test_context_argument_is_used(loop):
    ctx = contextvars.Context()
    ctx.run(cvar.set, "in-ctx")
    seen = []

    def cb():
        seen.append(cvar.get())
        cvar.set("changed-by-cb")

    loop.call_soon(cb, context=ctx)
    run_once(loop)
    assert seen == ["in-ctx"]
    # the callback ran *inside* ctx: its change is visible there ...
    assert ctx[cvar] == "changed-by-cb"
    # ... and not in the caller's context
    assert cvar.get() == "default"


def test_same_context_shared_by_two_callbacks(loop):
    ctx = contextvars.copy_context()
    seen = []
    loop.call_soon(cvar.set, "first", context=ctx)
    loop.call_soon(lambda: seen.append(cvar.get()), context=ctx)
    run_once(loop)
    assert seen == ["first"]
    assert ctx[cvar] == "first"


def test_default_context_is_copy_at_schedule_time(loop):
    seen = []
    token = cvar.set("at-schedule")
    try:
        loop.call_soon(lambda: seen.append(cvar.get()))
        loop.call_soon(lambda: seen.append(cvar.get()), context=None)
        cvar.set("after-schedule")
        run_once(loop)
    finally:
        cvar.reset(token)
    assert seen == ["at-schedule", "at-schedule"]


def test_default_context_isolated_between_callbacks(loop):
    seen = []

    def setter():
        cvar.set("leaked?")

    loop.call_soon(setter)
    loop.call_soon(lambda: seen.append(cvar.get()))
    run_once(loop)
    assert seen == ["default"]
    assert cvar.get() == "default"


def test_context_for_timers_and_threadsafe(loop):
    ctx = contextvars.Context()
    ctx.run(cvar.set, "ctx")
    seen = []
    loop.call_later(0, lambda: seen.append(("later", cvar.get())), context=ctx)
    loop.call_at(loop.time(), lambda: seen.append(("at", cvar.get())),
                 context=ctx)
    loop.call_soon_threadsafe(lambda: seen.append(("ts", cvar.get())),
                              context=ctx)
    loop.call_later(0.001, loop.stop)
    loop.run_forever()
    assert sorted(seen) == [("at", "ctx"), ("later", "ctx"), ("ts", "ctx")]


@pytest.mark.skipif(not PY312, reason="Handle.get_context() is 3.12+")
def test_handle_get_context(loop):
    ctx = contextvars.copy_context()
    assert loop.call_soon(my_named_callback, context=ctx).get_context() is ctx
    assert loop.call_later(1, my_named_callback,
                           context=ctx).get_context() is ctx
    token = cvar.set("x")
    try:
        h = loop.call_soon(my_named_callback)
    finally:
        cvar.reset(token)
    default_ctx = h.get_context()
    assert isinstance(default_ctx, contextvars.Context)
    assert default_ctx[cvar] == "x"


# --------------------------------------------------------------------------
# Handle API


def test_call_soon_returns_handle(loop):
    h = loop.call_soon(my_named_callback)
    assert isinstance(h, asyncio.Handle)
    assert not isinstance(h, asyncio.TimerHandle)
    assert h.cancelled() is False
    h2 = loop.call_soon_threadsafe(my_named_callback)
    assert isinstance(h2, asyncio.Handle)
    assert not isinstance(h2, asyncio.TimerHandle)


def test_handle_types_are_core_subclasses(loop, fastloop_only):
    from fastloop import _core

    h = loop.call_soon(my_named_callback)
    assert type(h) is _core.Handle
    assert issubclass(_core.Handle, asyncio.Handle)
    t = loop.call_later(1, my_named_callback)
    assert type(t) is _core.TimerHandle
    assert issubclass(_core.TimerHandle, asyncio.TimerHandle)
    assert type(loop.call_soon_threadsafe(my_named_callback)) is _core.Handle


def test_cancelled_handle_is_not_run(loop):
    out = []
    h = loop.call_soon(out.append, "cancelled")
    loop.call_soon(out.append, "kept")
    h.cancel()
    assert h.cancelled() is True
    h.cancel()  # idempotent
    assert h.cancelled() is True
    run_once(loop)
    assert out == ["kept"]


def test_cancel_from_earlier_callback_in_same_batch(loop):
    out = []
    handles = {}

    def canceller():
        out.append("canceller")
        handles["victim"].cancel()

    loop.call_soon(canceller)
    handles["victim"] = loop.call_soon(out.append, "victim")
    loop.call_soon(out.append, "after")
    run_once(loop)
    assert out == ["canceller", "after"]
    assert handles["victim"].cancelled()


def test_callback_cancelling_its_own_handle(loop):
    out = []
    handles = []

    def cb():
        handles[0].cancel()
        out.append("ran")

    handles.append(loop.call_soon(cb))
    run_once(loop)
    run_once(loop)
    assert out == ["ran"]


def test_cancel_after_run_is_harmless(loop):
    out = []
    h = loop.call_soon(out.append, 1)
    run_once(loop)
    h.cancel()
    run_once(loop)
    assert out == [1]


def test_cancelled_threadsafe_handle_is_not_run(loop):
    out = []
    handles = []

    def worker():
        handles.append(loop.call_soon_threadsafe(out.append, "x"))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    handles[0].cancel()
    run_once(loop)
    assert out == []


def test_handle_repr(loop):
    h = loop.call_soon(my_named_callback, 1)
    r = repr(h)
    assert r.startswith("<") and r.endswith(">")
    assert "Handle" in r
    assert "my_named_callback" in r
    h.cancel()
    assert "cancelled" in repr(h)


def test_handle_repr_bound_method(loop):
    class Thing:
        def some_method(self):
            pass

    r = repr(loop.call_soon(Thing().some_method))
    assert "some_method" in r


def test_cancel_releases_callback_args(loop):
    class Payload:
        pass

    p = Payload()
    ref = weakref.ref(p)
    h = loop.call_soon(my_named_callback, p)
    del p
    gc.collect()
    assert ref() is not None  # held by the pending handle
    h.cancel()
    gc.collect()
    assert ref() is None, "cancelled handle keeps its args alive"
    run_once(loop)


def test_loop_drops_executed_handles(loop):
    class Payload:
        pass

    p = Payload()
    pref = weakref.ref(p)
    href = weakref.ref(loop.call_soon(my_named_callback, p))
    del p
    run_once(loop)
    gc.collect()
    assert href() is None, "executed handle still referenced"
    assert pref() is None, "executed callback args still referenced"


def test_handle_runs_once(loop):
    out = []
    loop.call_soon(out.append, 1)
    run_once(loop)
    run_once(loop)
    run_once(loop)
    assert out == [1]


# --------------------------------------------------------------------------
# call_soon_threadsafe


@pytest.mark.timeout(60)
def test_threadsafe_many_threads(loop):
    n_threads, per_thread = 8, 500
    total = n_threads * per_thread
    got = []
    barrier = threading.Barrier(n_threads)

    def on_item(item):
        got.append(item)
        if len(got) == total:
            loop.stop()

    def worker(tid):
        barrier.wait()
        for i in range(per_thread):
            loop.call_soon_threadsafe(on_item, (tid, i))

    threads = [threading.Thread(target=worker, args=(t,))
               for t in range(n_threads)]

    def start():
        for t in threads:
            t.start()

    loop.call_soon(start)
    loop.run_forever()
    for t in threads:
        t.join()
    assert len(got) == total
    for tid in range(n_threads):
        assert [i for (t, i) in got if t == tid] == list(range(per_thread))


@pytest.mark.timeout(60)
def test_threadsafe_bursts(loop):
    n_threads, bursts, burst = 4, 30, 100
    total = n_threads * bursts * burst
    got = []

    def on_item(item):
        got.append(item)
        if len(got) == total:
            loop.stop()

    def worker(tid):
        k = 0
        for _ in range(bursts):
            for _ in range(burst):
                loop.call_soon_threadsafe(on_item, (tid, k))
                k += 1
            time.sleep(0.0005)

    threads = [threading.Thread(target=worker, args=(t,))
               for t in range(n_threads)]
    for t in threads:
        t.start()
    loop.run_forever()
    for t in threads:
        t.join()
    assert len(got) == total
    for tid in range(n_threads):
        assert [k for (t, k) in got if t == tid] == list(range(bursts * burst))


@pytest.mark.timeout(30)
def test_threadsafe_wakes_idle_loop_without_timers(loop):
    ran = []

    def worker():
        time.sleep(0.05)  # let the loop block in its poller
        loop.call_soon_threadsafe(ran.append, threading.get_ident())
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=worker)
    t.start()
    loop.run_forever()
    t.join()
    assert ran == [t.ident]


@pytest.mark.timeout(30)
def test_threadsafe_wakes_loop_blocked_on_far_timer(loop):
    far = loop.call_later(3600, my_named_callback)

    def worker():
        time.sleep(0.05)
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=worker)
    t.start()
    loop.run_forever()
    t.join()
    assert not far.cancelled()
    far.cancel()


@pytest.mark.timeout(60)
def test_threadsafe_repeated_wakeups_are_not_lost(loop):
    """Ping-pong: each call must wake an idle loop (no lost wake-ups)."""
    rounds = 200
    done = threading.Event()
    seen = []

    def on_ping(i):
        seen.append(i)
        done.set()
        if i == rounds - 1:
            loop.stop()

    def worker():
        for i in range(rounds):
            done.clear()
            loop.call_soon_threadsafe(on_ping, i)
            if not done.wait(10):
                return  # the loop never woke up; main thread times out
            if i % 20 == 0:
                time.sleep(0.002)  # let the loop go idle again

    t = threading.Thread(target=worker)
    loop.call_soon(t.start)
    loop.run_forever()
    t.join()
    assert seen == list(range(rounds))


def test_threadsafe_before_run_is_queued(loop):
    out = []

    def worker():
        loop.call_soon_threadsafe(out.append, "from-thread")

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    loop.call_soon(out.append, "from-main")
    run_once(loop)
    assert out == ["from-thread", "from-main"]


def test_threadsafe_from_loop_thread(loop):
    out = []

    def cb():
        out.append("cb")
        loop.call_soon_threadsafe(out.append, "threadsafe")
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(cb)
    loop.run_forever()
    assert out == ["cb", "threadsafe"]


def test_threadsafe_args_and_fifo_with_call_soon(loop):
    out = []
    loop.call_soon_threadsafe(out.append, 1)
    loop.call_soon(out.append, 2)
    loop.call_soon_threadsafe(out.append, 3)
    run_once(loop)
    assert out == [1, 2, 3]


# --------------------------------------------------------------------------
# exceptions in callbacks


def test_exception_goes_to_handler_and_loop_continues(loop):
    errors = collect_errors(loop)
    out = []
    exc = Boom("boom")
    h = loop.call_soon(raiser(exc))
    loop.call_soon(out.append, "after")
    run_once(loop)
    assert out == ["after"]
    assert len(errors) == 1
    ctx = errors[0]
    assert ctx["exception"] is exc
    assert ctx["handle"] is h
    assert ctx["message"].startswith("Exception in callback")
    assert not loop.is_running()


def test_exception_handler_receives_the_loop(loop):
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(lp))
    loop.call_soon(raiser(Boom()))
    run_once(loop)
    assert got == [loop]


def test_many_exceptions_in_one_batch(loop):
    errors = collect_errors(loop)
    out = []
    for i in range(50):
        loop.call_soon(raiser(Boom(i)))
        loop.call_soon(out.append, i)
    run_once(loop)
    assert out == list(range(50))
    assert [e["exception"].args[0] for e in errors] == list(range(50))


def test_base_exception_subclass_goes_to_handler(loop):
    errors = collect_errors(loop)
    out = []
    exc = CustomBase("custom")
    loop.call_soon(raiser(exc))
    loop.call_soon(out.append, "after")
    run_once(loop)
    assert out == ["after"]
    assert [e["exception"] for e in errors] == [exc]


def test_timer_exception_goes_to_handler(loop):
    errors = collect_errors(loop)
    exc = Boom()
    h = loop.call_later(0, raiser(exc))
    loop.call_later(0.001, loop.stop)
    loop.run_forever()
    assert len(errors) == 1
    assert errors[0]["exception"] is exc
    assert errors[0]["handle"] is h


def test_default_exception_handler_logs(loop, caplog):
    out = []
    loop.call_soon(raiser(Boom("logged-boom")))
    loop.call_soon(out.append, "after")
    with caplog.at_level(logging.DEBUG):
        run_once(loop)
    assert out == ["after"]
    assert "Exception in callback" in caplog.text
    assert "logged-boom" in caplog.text


def test_exception_handler_that_raises(loop, caplog):
    out = []

    def bad_handler(lp, ctx):
        raise RuntimeError("handler failed")

    loop.set_exception_handler(bad_handler)
    loop.call_soon(raiser(Boom()))
    loop.call_soon(out.append, "after")
    with caplog.at_level(logging.DEBUG):
        run_once(loop)
    assert out == ["after"]
    assert "handler failed" in caplog.text


def test_subclass_call_exception_handler_is_used(loop):
    """The loop calls call_exception_handler by name (overridable)."""
    seen = []

    class Sub(type(loop)):
        def call_exception_handler(self, context):
            seen.append(context["exception"])

    lp = Sub()
    try:
        exc = Boom()
        lp.call_soon(raiser(exc))
        run_once(lp)
        assert seen == [exc]
    finally:
        lp.close()


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_systemexit_keyboardinterrupt_propagate_from_run_forever(loop,
                                                                 exc_type):
    errors = collect_errors(loop)
    out = []
    loop.call_soon(out.append, "before")
    loop.call_soon(raiser(exc_type()))
    loop.call_soon(out.append, "after")
    with pytest.raises(exc_type):
        loop.run_forever()
    assert errors == []
    assert out == ["before"]
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None
    # the loop is still usable and the rest of the batch was not lost
    run_once(loop)
    assert out == ["before", "after"]


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_systemexit_keyboardinterrupt_propagate_from_run_until_complete(
        loop, exc_type):
    async def main():
        loop.call_soon(raiser(exc_type()))
        await asyncio.sleep(10)

    task = loop.create_task(main())
    with pytest.raises(exc_type):
        loop.run_until_complete(task)
    assert not loop.is_running()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_systemexit_from_timer_propagates(loop, exc_type):
    loop.call_later(0, raiser(exc_type()))
    loop.call_later(5, loop.stop)  # safety net
    with pytest.raises(exc_type):
        loop.run_forever()
    assert not loop.is_running()


# --------------------------------------------------------------------------
# stop / close from callbacks


def test_close_from_callback_raises_and_loop_survives(loop):
    errors = collect_errors(loop)
    caught = []

    def cb():
        try:
            loop.close()
        except RuntimeError as e:
            caught.append(e)
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert len(caught) == 1
    assert errors == []
    assert not loop.is_closed()
    run_once(loop)  # still usable


def test_close_from_callback_uncaught_goes_to_handler(loop):
    errors = collect_errors(loop)
    loop.call_soon(loop.close)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], RuntimeError)
    assert not loop.is_closed()


# --------------------------------------------------------------------------
# argument checking


NOT_CALLABLE = [None, 1, "string", object()]


@pytest.mark.parametrize("bad", NOT_CALLABLE, ids=param_repr)
def test_non_callable_rejected_in_debug_mode(loop, bad):
    """asyncio checks the callback only in debug mode."""
    loop.set_debug(True)
    with pytest.raises(TypeError):
        loop.call_soon(bad)
    with pytest.raises(TypeError):
        loop.call_later(1, bad)
    with pytest.raises(TypeError):
        loop.call_at(loop.time() + 1, bad)
    with pytest.raises(TypeError):
        loop.call_soon_threadsafe(bad)


@pytest.mark.parametrize("bad", NOT_CALLABLE, ids=param_repr)
def test_non_callable_rejected_fastloop(loop, fastloop_only, bad):
    """fastloop checks the callback in all modes."""
    with pytest.raises(TypeError):
        loop.call_soon(bad)
    with pytest.raises(TypeError):
        loop.call_later(1, bad)
    with pytest.raises(TypeError):
        loop.call_at(loop.time() + 1, bad)
    with pytest.raises(TypeError):
        loop.call_soon_threadsafe(bad)


def test_coroutine_function_rejected_in_debug_mode(loop):
    async def coro_fn():
        pass

    loop.set_debug(True)
    with pytest.raises(TypeError):
        loop.call_soon(coro_fn)
    with pytest.raises(TypeError):
        loop.call_later(1, coro_fn)
    coro = coro_fn()
    try:
        with pytest.raises(TypeError):
            loop.call_soon(coro)
    finally:
        coro.close()


def test_call_soon_without_callback(loop):
    with pytest.raises(TypeError):
        loop.call_soon()
    with pytest.raises(TypeError):
        loop.call_soon_threadsafe()


# --------------------------------------------------------------------------
# closed loop


def test_scheduling_on_closed_loop_raises(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon(my_named_callback)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_later(0, my_named_callback)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_later(1, my_named_callback)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_at(loop.time() + 1, my_named_callback)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon_threadsafe(my_named_callback)


def test_threadsafe_on_closed_loop_from_other_thread(loop):
    loop.close()
    caught = []

    def worker():
        try:
            loop.call_soon_threadsafe(my_named_callback)
        except RuntimeError as e:
            caught.append(str(e))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert caught and "Event loop is closed" in caught[0]


def test_pending_callbacks_dropped_on_close(loop):
    class Payload:
        pass

    p = Payload()
    ref = weakref.ref(p)
    loop.call_soon(my_named_callback, p)
    loop.call_later(3600, my_named_callback, p)
    del p
    loop.close()
    gc.collect()
    assert ref() is None, "close() keeps pending callbacks alive"


# --------------------------------------------------------------------------
# queue growth, callable kinds, many args, debug repr, close races


def test_ready_queue_growth_during_batch(loop):
    """A callback that schedules many callbacks mid-batch (forcing the ready
    queue to grow while it is being drained) keeps FIFO and batch rules."""
    out = []

    def spawner():
        out.append("spawner")
        for i in range(20000):
            loop.call_soon(out.append, i)

    loop.call_soon(spawner)
    loop.call_soon(out.append, "same-batch")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["spawner", "same-batch"]
    run_once(loop)
    assert out == ["spawner", "same-batch"] + list(range(20000))


def test_ready_queue_grow_shrink_cycles(loop):
    for n in (1, 50000, 3, 20000, 0, 7, 50000):
        out = []
        for i in range(n):
            loop.call_soon(out.append, i)
        run_once(loop)
        assert out == list(range(n))


def test_call_soon_from_finalizer_during_batch(loop):
    """Handles freed while the batch runs may schedule new callbacks from
    __del__ (re-entering the ready queue while it is being drained)."""
    out = []

    class Finalizer:
        def __init__(self, i):
            self.i = i

        def __del__(self):
            loop.call_soon(out.append, ("del", self.i))

    for i in range(100):
        loop.call_soon(out.append, i)
        loop.call_soon(my_named_callback, Finalizer(i))
    run_once(loop)
    run_once(loop)
    gc.collect()
    run_once(loop)
    assert [x for x in out if not isinstance(x, tuple)] == list(range(100))
    assert sorted(x[1] for x in out if isinstance(x, tuple)) == \
        list(range(100))


def test_callable_kinds(loop):
    import functools

    out = []

    class CallableObj:
        def __call__(self, *args):
            out.append(("obj",) + args)

    class Klass:
        def __init__(self, x):
            out.append(("class", x))

        def method(self, x):
            out.append(("method", x))

        @staticmethod
        def static(x):
            out.append(("static", x))

        @classmethod
        def clsmethod(cls, x):
            out.append(("classmethod", x))

    lst = []
    loop.call_soon(CallableObj(), 1)
    loop.call_soon(Klass, 2)
    loop.call_soon(Klass(0).method, 3)
    loop.call_soon(Klass.static, 4)
    loop.call_soon(Klass.clsmethod, 5)
    loop.call_soon(functools.partial(out.append), ("partial", 6))
    loop.call_soon(lst.append, 7)          # builtin bound method
    loop.call_soon(list.append, lst, 8)    # method descriptor
    loop.call_soon(lambda: out.append(("lambda", 9)))
    loop.call_soon(out.extend, [("builtin", 10)])
    run_once(loop)
    assert out == [("class", 0), ("obj", 1), ("class", 2), ("method", 3),
                   ("static", 4), ("classmethod", 5), ("partial", 6),
                   ("lambda", 9), ("builtin", 10)]
    assert lst == [7, 8]


@pytest.mark.parametrize("nargs", [0, 1, 5, 8, 9, 16, 17, 64, 1000, 10000])
def test_many_args(loop, nargs):
    seen = []
    args = tuple(range(nargs))
    loop.call_soon(lambda *a: seen.append(a), *args)
    loop.call_later(0, lambda *a: seen.append(a), *args)
    loop.call_soon_threadsafe(lambda *a: seen.append(a), *args)
    loop.call_later(0.001, loop.stop)
    loop.run_forever()
    assert seen == [args, args, args]


def test_debug_cancel_keeps_repr(loop):
    """asyncio: in debug mode a cancelled handle keeps its repr."""
    loop.set_debug(True)
    h = loop.call_soon(my_named_callback, 1)
    h.cancel()
    r = repr(h)
    assert "my_named_callback" in r
    assert "cancelled" in r
    t = loop.call_later(10, my_named_callback)
    t.cancel()
    assert "my_named_callback" in repr(t)
    run_once(loop)


def test_debug_source_traceback_on_handles(loop):
    loop.set_debug(True)
    h = loop.call_soon(my_named_callback)
    t = loop.call_later(10, my_named_callback)
    for handle in (h, t):
        tb = handle._source_traceback
        assert tb, "no _source_traceback in debug mode"
        # the innermost frame is this test, not loop internals
        assert tb[-1][0] == __file__
        assert "created at" in repr(handle)
    t.cancel()
    run_once(loop)


@pytest.mark.timeout(60)
def test_threadsafe_racing_close(loop):
    """Threads hammering call_soon_threadsafe while the loop closes: they
    get RuntimeError('Event loop is closed'), nothing crashes."""
    stop_flag = threading.Event()
    outcomes = []

    def worker():
        n = 0
        while not stop_flag.is_set():
            try:
                loop.call_soon_threadsafe(my_named_callback, n)
            except RuntimeError as e:
                outcomes.append(str(e))
                return
            n += 1
            if n % 100 == 0:
                time.sleep(0)
        outcomes.append("stopped")

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    loop.close()
    time.sleep(0.01)
    stop_flag.set()
    for t in threads:
        t.join(20)
    assert len(outcomes) == 3
    assert all("closed" in o for o in outcomes), outcomes


def test_exception_handler_schedules_and_cancels(loop):
    out = []
    victim = []

    def handler(lp, ctx):
        out.append("handler")
        lp.call_soon(out.append, "from-handler")
        victim[0].cancel()

    loop.set_exception_handler(handler)
    loop.call_soon(raiser(Boom()))
    victim.append(loop.call_soon(out.append, "victim"))
    run_once(loop)
    run_once(loop)
    assert out == ["handler", "from-handler"]


# --------------------------------------------------------------------------
# reference counting (catches refcount leaks in the C paths)


def _refcounts(*objs):
    gc.collect()
    return [sys.getrefcount(o) for o in objs]


@pytest.mark.parametrize("debug", [False, True], ids=["nodebug", "debug"])
@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at",
                                    "call_soon_threadsafe"])
def test_no_reference_leaks(loop, method, debug):
    loop.set_debug(debug)

    class Arg:
        pass

    arg = Arg()
    ctx = contextvars.copy_context()
    calls = [0]

    def cb(a):
        calls[0] += 1

    def schedule(**kw):
        if method == "call_soon":
            return loop.call_soon(cb, arg, **kw)
        if method == "call_later":
            return loop.call_later(0, cb, arg, **kw)
        if method == "call_at":
            return loop.call_at(loop.time(), cb, arg, **kw)
        return loop.call_soon_threadsafe(cb, arg, **kw)

    def round_trip(n):
        for _ in range(n):
            schedule()
            schedule(context=ctx)
            schedule().cancel()
            schedule(context=ctx).cancel()
        run_once(loop)

    round_trip(10)  # warm-up (caches, free lists)
    before = _refcounts(arg, cb, ctx, loop, Arg)
    calls[0] = 0
    round_trip(500)
    after = _refcounts(arg, cb, ctx, loop, Arg)
    assert calls[0] == 1000
    assert after == before, "refcounts (arg, cb, ctx, loop, type) changed"


@pytest.mark.parametrize("debug", [False, True], ids=["nodebug", "debug"])
def test_no_reference_leaks_on_error_path(loop, debug, caplog):
    loop.set_debug(debug)
    seen = [0]

    def handler(lp, context):
        seen[0] += 1

    class Arg:
        pass

    arg = Arg()
    exc = Boom("shared")

    def cb(a):
        raise exc

    def round_trip(n):
        for _ in range(n):
            loop.call_soon(cb, arg)
            loop.call_later(0, cb, arg)
        run_once(loop)

    loop.set_exception_handler(handler)
    round_trip(10)
    exc.__traceback__ = None
    before = _refcounts(arg, cb, exc, handler, loop)
    seen[0] = 0
    round_trip(300)
    exc.__traceback__ = None
    after = _refcounts(arg, cb, exc, handler, loop)
    assert seen[0] == 600
    assert after == before, "refcounts (arg, cb, exc, handler, loop) changed"


@pytest.mark.parametrize("exc_type", [StopIteration, GeneratorExit,
                                      asyncio.CancelledError, RecursionError,
                                      MemoryError, asyncio.InvalidStateError])
def test_other_exception_types_go_to_handler(loop, exc_type):
    errors = collect_errors(loop)
    out = []
    exc = exc_type()
    loop.call_soon(raiser(exc))
    loop.call_soon(out.append, "after")
    run_once(loop)
    assert out == ["after"]
    assert [e["exception"] for e in errors] == [exc]


# --------------------------------------------------------------------------
# loop attributes shared with asyncio; fastloop core internals


def test_current_handle_in_debug_mode(loop):
    loop.set_debug(True)
    seen = []
    box = []
    box.append(loop.call_soon(lambda: seen.append(loop._current_handle)))
    run_once(loop)
    assert seen == [box[0]]
    assert loop._current_handle is None


def test_current_handle_after_a_nested_handle_run(loop):
    """A callback that runs another handle's _run() is still the loop's
    _current_handle afterwards (the exception handler's "Handle created
    at" comes from it)."""
    loop.set_debug(True)
    seen = []
    other = loop.call_later(3600, seen.append, "other")

    def cb():
        other._run()
        seen.append(loop._current_handle)

    handle = loop.call_soon(cb)
    run_once(loop)
    assert seen == ["other", handle]
    assert loop._current_handle is None
    other.cancel()


def test_slow_callback_duration_attribute(loop):
    assert loop.slow_callback_duration == 0.1
    loop.slow_callback_duration = 0.5
    assert loop.slow_callback_duration == 0.5


def test_readonly_core_attributes(loop, fastloop_only):
    for name, value in (("_thread_id", 123), ("_closed", True),
                        ("_current_handle", None)):
        with pytest.raises(AttributeError):
            setattr(loop, name, value)
    assert loop._thread_id is None and loop._closed is False


def test_core_stats(loop, fastloop_only):
    st = loop._stats()
    assert st["ready"] == 0 and st["timers"] == 0
    hs = [loop.call_soon(my_named_callback) for _ in range(3)]
    ts = [loop.call_later(100, my_named_callback) for _ in range(4)]
    st = loop._stats()
    assert st["ready"] == 3
    assert st["timers"] == 4
    hs[0].cancel()
    for t in ts:
        t.cancel()
    run_once(loop)
    st = loop._stats()
    assert st["ready"] == 0
    assert st["timers"] == 0


def test_core_run_once(loop, fastloop_only):
    """_run_once() runs exactly one batch (ready at its start)."""
    out = []

    def a():
        out.append("a")
        loop.call_soon(out.append, "b")

    loop.call_soon(a)
    loop.call_later(-1, out.append, "expired")
    loop._run_once()
    assert sorted(out) == ["a", "expired"]
    loop._run_once()
    assert sorted(out) == ["a", "b", "expired"]
    assert not loop.is_running()


def test_core_reentrant_run_once_no_crash(loop, fastloop_only):
    """Calling the private _run_once()/_run() from inside a callback must
    either be refused (RuntimeError) or be safe: every callback still runs
    exactly once and nothing crashes."""
    out = []
    caught = []

    def nested(name):
        def cb():
            out.append(name)
            try:
                getattr(loop, name)()
            except RuntimeError as e:
                caught.append(e)
        return cb

    loop.call_soon(nested("_run_once"))
    loop.call_soon(out.append, 1)
    loop.call_soon(nested("_run"))
    loop.call_soon(out.append, 2)
    loop.call_soon(loop.stop)
    loop.run_forever()
    run_once(loop)
    assert sorted(map(str, out)) == ["1", "2", "_run", "_run_once"]
    assert not loop.is_running()


# --------------------------------------------------------------------------
# garbage collection and tracing while a batch is running


def test_gc_collect_inside_batch(loop):
    """gc.collect() from callbacks, timers and the exception handler while
    the loop is half-way through a batch (GC traverses the loop's queues)."""
    errors = []

    def handler(lp, ctx):
        errors.append(type(ctx["exception"]))
        gc.collect()

    loop.set_exception_handler(handler)
    out = []

    class Cyclic:
        def __init__(self):
            self.me = self
            self.loop = loop

    def collector(i):
        out.append(i)
        # cyclic garbage that references the loop and a pending handle
        c = Cyclic()
        c.h = loop.call_soon(my_named_callback, c)
        if i % 3 == 0:
            c.h.cancel()
        del c
        if i % 10 == 0:  # full collections are slow in a big process
            gc.collect()

    for i in range(60):
        loop.call_soon(collector, i)
        loop.call_later(0, collector, 1000 + i)
        if i % 10 == 0:
            loop.call_soon(raiser(Boom()))
    loop.call_later(0.002, loop.stop)
    loop.run_forever()
    run_once(loop)
    gc.collect()
    assert sorted(out) == sorted(list(range(60)) + list(range(1000, 1060)))
    assert errors == [Boom] * 6


def test_tracing_and_profiling_active(loop):
    out = []
    events = []

    def tracer(frame, event, arg):
        return None

    def profiler(frame, event, arg):
        events.append(event)

    loop.call_soon(out.append, 1)
    loop.call_soon(lambda: out.append(2))
    loop.call_later(0, out.append, 3)
    old_trace, old_profile = sys.gettrace(), sys.getprofile()
    sys.settrace(tracer)
    sys.setprofile(profiler)
    try:
        loop.call_later(0.001, loop.stop)
        loop.run_forever()
    finally:
        sys.settrace(old_trace)
        sys.setprofile(old_profile)
    assert sorted(out) == [1, 2, 3]
    assert "c_call" in events or "call" in events
