"""Futures, tasks, task factories and asyncio primitives on the loop."""
import asyncio
import contextvars
import gc
import sys
import threading

import pytest

from conftest import run, param_repr

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)

cvar = contextvars.ContextVar("task_cvar", default="default")


async def coro_result(value, delay=0):
    await asyncio.sleep(delay)
    return value


async def returns_immediately(value):
    return value


class Boom(Exception):
    pass


# --------------------------------------------------------------------------
# create_future / create_task


def test_create_future_exact_type(loop):
    f = loop.create_future()
    assert type(f) is asyncio.Future
    assert f.get_loop() is loop
    assert not f.done()
    loop.call_soon(f.set_result, 1)
    assert loop.run_until_complete(f) == 1


def test_futures_and_tasks_belong_to_their_loop_wherever_made(loop):
    """Inside its own callbacks, outside any run, and from a callback of
    another loop running in another thread, create_future/create_task bind
    the loop they were called on (fastloop on 3.12+ skips the loop=
    keyword only when the loop is the one running in the calling
    thread)."""
    # Debug mode (-X dev) would reject the other thread's calls on `loop`
    # (call_soon's thread check); this test is about which loop is bound.
    loop.set_debug(False)
    other = asyncio.new_event_loop()
    other.set_debug(False)
    made = {}

    async def inside():
        made["inside"] = (loop.create_future(), loop.create_task(returns_immediately(1)))
        await made["inside"][1]
        # while loop runs here, another thread runs `other` and calls
        # loop's methods from other's callback (blocking loop meanwhile)
        th = threading.Thread(target=in_other_thread)
        th.start()
        th.join()

    def in_other_thread():
        asyncio.set_event_loop(other)

        async def on_other():
            # `other` is running here; loop is not
            f = loop.create_future()
            t = loop.create_task(returns_immediately(2))
            made["other"] = (f, t)

        other.run_until_complete(on_other())

    try:
        made["before"] = (loop.create_future(), loop.create_task(returns_immediately(0)))
        run(loop, inside())
        for where, (f, t) in made.items():
            assert f.get_loop() is loop, where
            assert t.get_loop() is loop, where
        run(loop, asyncio.gather(made["before"][1], made["other"][1]))
    finally:
        other.close()


def test_create_future_distinct_objects(loop):
    a, b = loop.create_future(), loop.create_future()
    assert a is not b
    a.cancel()
    assert a.cancelled() and not b.cancelled()


def test_create_task_exact_type(loop):
    t = loop.create_task(coro_result(3))
    assert type(t) is asyncio.Task
    assert t.get_loop() is loop
    assert loop.run_until_complete(t) == 3


def test_create_task_name(loop):
    t = loop.create_task(coro_result(1), name="my-task")
    assert t.get_name() == "my-task"
    t2 = loop.create_task(coro_result(2))
    assert t2.get_name().startswith("Task-")
    loop.run_until_complete(asyncio.gather(t, t2))


def test_create_task_requires_coroutine(loop):
    with pytest.raises(TypeError):
        loop.create_task(42)
    with pytest.raises(TypeError):
        loop.create_task(lambda: None)


def test_create_task_on_closed_loop(loop):
    loop.close()
    coro = coro_result(1)
    try:
        with pytest.raises(RuntimeError, match="closed"):
            loop.create_task(coro)
    finally:
        coro.close()


def test_task_is_current_task_and_in_all_tasks(loop):
    async def main():
        me = asyncio.current_task()
        assert me is not None and me.get_loop() is loop
        assert me in asyncio.all_tasks()
        return me

    t = loop.create_task(main())
    assert loop.run_until_complete(t) is t
    assert asyncio.current_task(loop) is None


def test_create_task_starts_on_next_iteration(loop):
    out = []

    async def body():
        out.append("task")

    loop.create_task(body())
    assert out == []
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["task"]


@pytest.mark.skipif(not PY311, reason="create_task(context=) is 3.11+")
def test_create_task_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(cvar.set, "given")

    async def body():
        v = cvar.get()
        cvar.set("set-in-task")
        return v

    t = loop.create_task(body(), context=ctx)
    assert loop.run_until_complete(t) == "given"
    assert ctx[cvar] == "set-in-task"
    assert cvar.get() == "default"


@pytest.mark.skipif(not PY312, reason="eager_start is 3.12+")
def test_create_task_forwards_eager_start(loop, fastloop_only):
    """fastloop forwards extra keyword arguments to Task (like 3.14)."""
    out = []

    async def body():
        out.append("ran")
        return 1

    async def main():
        t = loop.create_task(body(), eager_start=True)
        # an eager task whose coroutine does not suspend is done already
        assert out == ["ran"]
        assert t.done() and t.result() == 1
        t2 = loop.create_task(body(), eager_start=False)
        assert not t2.done()
        return await t2

    assert run(loop, main()) == 1
    assert out == ["ran", "ran"]


@pytest.mark.skipif(PY312, reason="eager_start exists on 3.12+")
def test_create_task_unknown_kwarg_rejected_pre312(loop, fastloop_only):
    coro = coro_result(1)
    try:
        with pytest.raises(TypeError):
            loop.create_task(coro, eager_start=True)
    finally:
        coro.close()


# --------------------------------------------------------------------------
# task factory


def test_task_factory_default_none(loop):
    assert loop.get_task_factory() is None


def test_set_task_factory_used_and_name_applied(loop):
    calls = []

    class MyTask(asyncio.Task):
        pass

    def factory(lp, coro):
        calls.append(lp)
        return MyTask(coro, loop=lp)

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    t = loop.create_task(coro_result(5), name="named")
    assert type(t) is MyTask
    assert t.get_name() == "named"
    assert calls == [loop]
    assert loop.run_until_complete(t) == 5

    # run_until_complete(coro) goes through create_task too
    assert loop.run_until_complete(coro_result(6)) == 6
    assert len(calls) == 2

    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    t = loop.create_task(coro_result(7))
    assert type(t) is asyncio.Task
    assert loop.run_until_complete(t) == 7
    assert len(calls) == 2


def test_task_factory_can_return_any_future(loop):
    class NamedFuture(asyncio.Future):
        def set_name(self, name):  # 3.13 calls set_name() on the result
            pass

    def factory(lp, coro):
        coro.close()
        f = NamedFuture(loop=lp)
        f.set_result("from-factory")
        return f

    loop.set_task_factory(factory)
    f = loop.create_task(coro_result(1))
    assert loop.run_until_complete(f) == "from-factory"


@pytest.mark.skipif(not PY311, reason="create_task(context=) is 3.11+")
def test_task_factory_receives_context(loop):
    got = []
    ctx = contextvars.copy_context()

    def factory(lp, coro, **kwargs):
        got.append(kwargs)
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    t = loop.create_task(coro_result(1), context=ctx)
    assert got[-1].get("context") is ctx
    loop.run_until_complete(t)
    # a two-argument factory still works when no context is given
    loop.set_task_factory(lambda lp, coro: asyncio.Task(coro, loop=lp))
    assert loop.run_until_complete(loop.create_task(coro_result(2))) == 2


@pytest.mark.parametrize("bad", [1, "factory", object()], ids=param_repr)
def test_set_task_factory_non_callable(loop, bad):
    with pytest.raises(TypeError):
        loop.set_task_factory(bad)
    assert loop.get_task_factory() is None


def test_task_factory_exception_propagates(loop):
    def factory(lp, coro):
        coro.close()
        raise Boom("factory")

    loop.set_task_factory(factory)
    with pytest.raises(Boom):
        loop.create_task(coro_result(1))


@pytest.mark.skipif(not PY312, reason="eager_task_factory is 3.12+")
def test_eager_task_factory(loop):
    out = []

    async def body(v):
        out.append(v)
        return v

    async def suspends(v):
        out.append(("start", v))
        await asyncio.sleep(0)
        out.append(("end", v))
        return v

    async def main():
        t = loop.create_task(body(1))
        # ran synchronously inside create_task
        assert out == [1]
        assert t.done() and t.result() == 1
        t2 = loop.create_task(suspends(2))
        assert out == [1, ("start", 2)]
        assert not t2.done()
        assert await t2 == 2
        return await asyncio.gather(*(body(i) for i in range(10, 15)))

    loop.set_task_factory(asyncio.eager_task_factory)
    assert loop.get_task_factory() is asyncio.eager_task_factory
    assert run(loop, main()) == [10, 11, 12, 13, 14]
    assert out[:3] == [1, ("start", 2), ("end", 2)]


# --------------------------------------------------------------------------
# many tasks, gather, cancellation


def test_gather_10k_tasks(loop):
    async def work(i):
        await asyncio.sleep(0)
        return i * 2

    async def main():
        return await asyncio.gather(*(work(i) for i in range(10_000)))

    assert run(loop, main()) == [i * 2 for i in range(10_000)]


def test_gather_10k_tasks_with_timers(loop):
    async def work(i):
        await asyncio.sleep((i % 5) * 0.001)
        return i

    async def main():
        tasks = [loop.create_task(work(i)) for i in range(10_000)]
        return await asyncio.gather(*tasks)

    assert run(loop, main()) == list(range(10_000))


def test_gather_return_exceptions(loop):
    async def bad():
        raise Boom("x")

    async def main():
        return await asyncio.gather(coro_result(1), bad(),
                                    return_exceptions=True)

    res = run(loop, main())
    assert res[0] == 1 and isinstance(res[1], Boom)


def test_task_cancel(loop):
    state = []

    async def victim():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            state.append("cancelled")
            raise

    async def main():
        t = loop.create_task(victim())
        await asyncio.sleep(0)
        assert t.cancel() is True
        with pytest.raises(asyncio.CancelledError):
            await t
        assert t.cancelled()
        assert t.cancel() is False  # already done
        return "ok"

    assert run(loop, main()) == "ok"
    assert state == ["cancelled"]


def test_task_cancel_with_message(loop):
    seen = []

    async def victim():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError as e:
            seen.append(e.args)
            raise

    async def main():
        t = loop.create_task(victim())
        await asyncio.sleep(0)
        t.cancel("the-reason")
        with pytest.raises(asyncio.CancelledError):
            await t
        return t.cancelled()

    assert run(loop, main()) is True
    assert seen == [("the-reason",)]


def test_cancel_before_start(loop):
    started = []

    async def body():
        started.append(1)

    t = loop.create_task(body())
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(t)
    assert started == []


def test_cancel_swallowed_by_task(loop):
    async def stubborn():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return "survived"

    async def main():
        t = loop.create_task(stubborn())
        await asyncio.sleep(0)
        t.cancel()
        return await t

    assert run(loop, main()) == "survived"


def test_shield(loop):
    async def main():
        inner = loop.create_task(coro_result("inner", 0.005))
        outer = asyncio.ensure_future(asyncio.shield(inner))
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        return await inner

    assert run(loop, main()) == "inner"


def test_future_callbacks_run_via_loop(loop):
    out = []

    async def main():
        f = loop.create_future()
        f.add_done_callback(lambda fut: out.append(("cb", fut.result())))
        f.set_result(1)
        # done callbacks are scheduled with call_soon, not run inline
        assert out == []
        await asyncio.sleep(0)
        assert out == [("cb", 1)]

    run(loop, main())


def test_sleep0_ping_pong(loop):
    out = []
    n = 2000

    async def player(name):
        for i in range(n):
            out.append(name)
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(player("a"), player("b"))

    run(loop, main())
    assert len(out) == 2 * n
    assert out == ["a", "b"] * n


def test_future_ping_pong(loop):
    n = 2000

    async def main():
        channel = [loop.create_future()]

        async def responder():
            for _ in range(n):
                value, reply = await channel[0]
                channel[0] = loop.create_future()
                reply.set_result(value + 1)

        task = loop.create_task(responder())
        value = 0
        for _ in range(n):
            reply = loop.create_future()
            channel[0].set_result((value, reply))
            value = await reply
        await task
        return value

    assert run(loop, main()) == n


def test_task_exception_propagates(loop):
    async def bad():
        await asyncio.sleep(0)
        raise Boom("task-exc")

    t = loop.create_task(bad())
    with pytest.raises(Boom, match="task-exc"):
        loop.run_until_complete(t)
    assert isinstance(t.exception(), Boom)


def test_unretrieved_task_exception_reported(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    async def bad():
        raise Boom("never-retrieved")

    t = loop.create_task(bad())
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.run_until_complete(asyncio.sleep(0))
    assert t.done()
    del t
    gc.collect()
    assert any(isinstance(c.get("exception"), Boom) for c in errors)


# --------------------------------------------------------------------------
# contextvars in tasks


def test_task_context_is_copy_at_creation(loop):
    async def child():
        seen = cvar.get()
        cvar.set("child-value")
        return seen

    async def main():
        cvar.set("parent")
        t = loop.create_task(child())
        cvar.set("parent-after-create")
        seen = await t
        return seen, cvar.get()

    assert run(loop, main()) == ("parent", "parent-after-create")
    assert cvar.get() == "default"


def test_context_preserved_across_suspensions(loop):
    async def worker(name):
        cvar.set(name)
        for _ in range(20):
            await asyncio.sleep(0)
            assert cvar.get() == name
        return cvar.get()

    async def main():
        return await asyncio.gather(*(worker("w%d" % i) for i in range(20)))

    assert run(loop, main()) == ["w%d" % i for i in range(20)]


# --------------------------------------------------------------------------
# TaskGroup (3.11+)


@pytest.mark.skipif(not PY311, reason="TaskGroup is 3.11+")
def test_taskgroup_results(loop):
    async def main():
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(coro_result(i, 0.001 * (i % 3)))
                     for i in range(100)]
        return [t.result() for t in tasks]

    assert run(loop, main()) == list(range(100))


@pytest.mark.skipif(not PY311, reason="TaskGroup is 3.11+")
def test_taskgroup_error_cancels_siblings(loop):
    cancelled = []

    async def sibling():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    async def failing():
        await asyncio.sleep(0.001)
        raise Boom("tg")

    async def main():
        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(5):
                    tg.create_task(sibling())
                tg.create_task(failing())
        except BaseException as eg:  # ExceptionGroup (3.11+ builtin)
            return eg

    eg = run(loop, main())
    assert type(eg).__name__ == "ExceptionGroup"
    assert [type(e) for e in eg.exceptions] == [Boom]
    assert cancelled == [1] * 5


# --------------------------------------------------------------------------
# synchronization primitives / queues


def test_queue_producer_consumer(loop):
    async def main():
        q = asyncio.Queue(maxsize=10)
        got = []

        async def producer():
            for i in range(1000):
                await q.put(i)
            await q.put(None)

        async def consumer():
            while True:
                item = await q.get()
                q.task_done()
                if item is None:
                    return
                got.append(item)

        await asyncio.gather(producer(), consumer())
        await q.join()
        return got

    assert run(loop, main()) == list(range(1000))


def test_queue_get_timeout(loop):
    async def main():
        q = asyncio.Queue()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(q.get(), 0.005)
        q.put_nowait(1)
        return await asyncio.wait_for(q.get(), 1)

    assert run(loop, main()) == 1


def test_lock_mutual_exclusion(loop):
    async def main():
        lock = asyncio.Lock()
        inside = 0
        max_inside = 0
        order = []

        async def worker(i):
            nonlocal inside, max_inside
            async with lock:
                inside += 1
                max_inside = max(max_inside, inside)
                order.append(i)
                await asyncio.sleep(0)
                inside -= 1

        await asyncio.gather(*(worker(i) for i in range(50)))
        return max_inside, order

    max_inside, order = run(loop, main())
    assert max_inside == 1
    assert order == list(range(50))  # FIFO fairness


def test_event(loop):
    async def main():
        ev = asyncio.Event()
        woke = []

        async def waiter(i):
            await ev.wait()
            woke.append(i)

        tasks = [loop.create_task(waiter(i)) for i in range(10)]
        await asyncio.sleep(0)
        assert woke == []
        loop.call_later(0.002, ev.set)
        await asyncio.gather(*tasks)
        return sorted(woke)

    assert run(loop, main()) == list(range(10))


def test_semaphore_bounds_concurrency(loop):
    async def main():
        sem = asyncio.Semaphore(3)
        active = 0
        peak = 0

        async def worker():
            nonlocal active, peak
            async with sem:
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0.001)
                active -= 1

        await asyncio.gather(*(worker() for _ in range(30)))
        return peak

    assert run(loop, main()) == 3


def test_condition(loop):
    async def main():
        cond = asyncio.Condition()
        items = []

        async def consumer():
            async with cond:
                await cond.wait_for(lambda: len(items) >= 3)
                return list(items)

        t = loop.create_task(consumer())
        for i in range(3):
            await asyncio.sleep(0)
            async with cond:
                items.append(i)
                cond.notify_all()
        return await t

    assert run(loop, main()) == [0, 1, 2]


def test_wait_first_completed(loop):
    async def main():
        fast = loop.create_task(coro_result("fast", 0.001))
        slow = loop.create_task(coro_result("slow", 3600))
        done, pending = await asyncio.wait(
            {fast, slow}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {fast} and pending == {slow}
        slow.cancel()
        return fast.result()

    assert run(loop, main()) == "fast"


def test_as_completed(loop):
    async def main():
        coros = [coro_result(i, 0.001 * (3 - i)) for i in range(3)]
        return [await f for f in asyncio.as_completed(coros)]

    assert sorted(run(loop, main())) == [0, 1, 2]


def test_run_coroutine_threadsafe(loop):
    results = []

    def worker():
        fut = asyncio.run_coroutine_threadsafe(coro_result(9, 0.001), loop)
        results.append(fut.result(10))
        loop.call_soon_threadsafe(loop.stop)

    th = threading.Thread(target=worker)
    loop.call_soon(th.start)
    loop.run_forever()
    th.join()
    assert results == [9]


# --------------------------------------------------------------------------
# reference counting


def _refcounts(*objs):
    gc.collect()
    return [sys.getrefcount(o) for o in objs]


@pytest.mark.parametrize("with_factory", [False, True],
                         ids=["default", "factory"])
def test_no_reference_leaks_tasks_futures(loop, with_factory):
    class Arg:
        pass

    arg = Arg()

    async def body(a):
        await asyncio.sleep(0)
        return a

    def factory(lp, coro, **kwargs):
        return asyncio.Task(coro, loop=lp, **kwargs)

    if with_factory:
        loop.set_task_factory(factory)

    async def main(n):
        for _ in range(n):
            f = loop.create_future()
            f.set_result(arg)
            await f
            t = loop.create_task(body(arg), name="t")
            assert await t is arg
            t = loop.create_task(body(arg))
            t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass

    loop.run_until_complete(main(10))
    before = _refcounts(arg, loop, body, factory)
    loop.run_until_complete(main(300))
    for _ in range(50):
        loop.run_until_complete(body(arg))
    after = _refcounts(arg, loop, body, factory)
    assert after == before, "refcounts (arg, loop, body, factory) changed"
