"""Async generator hooks: shutdown_asyncgens, GC finalization through the
loop, the warning for generators first iterated after shutdown. Runs on
fastloop and asyncio."""
import asyncio
import gc
import sys
import warnings

from conftest import run


def _agen_factory(log, name="agen"):
    async def agen():
        try:
            log.append(f"{name} start")
            yield 1
            yield 2
        finally:
            log.append(f"{name} finally")
            await asyncio.sleep(0)  # the loop really runs the aclose()
            log.append(f"{name} closed")

    return agen()


def test_hooks_installed_only_while_running(loop):
    before = sys.get_asyncgen_hooks()

    async def main():
        return sys.get_asyncgen_hooks()

    during = run(loop, main())
    assert during.firstiter is not None
    assert during.finalizer is not None
    assert during != before
    assert sys.get_asyncgen_hooks() == before


def test_shutdown_asyncgens_finalizes_suspended_generators(loop):
    log = []
    gens = [_agen_factory(log, f"g{i}") for i in range(3)]

    async def main():
        for g in gens:
            assert await g.__anext__() == 1
        await loop.shutdown_asyncgens()

    run(loop, main())
    for i in range(3):
        assert log.count(f"g{i} closed") == 1
    for g in gens:
        assert g.ag_frame is None  # closed


def test_shutdown_asyncgens_after_run(loop):
    """Generators iterated in one run are finalized by shutdown_asyncgens in a
    later run (the usual asyncio.run() shutdown sequence)."""
    log = []
    g = _agen_factory(log)

    async def first():
        return await g.__anext__()

    assert run(loop, first()) == 1
    assert log == ["agen start"]
    run(loop, loop.shutdown_asyncgens())
    assert log == ["agen start", "agen finally", "agen closed"]


def test_shutdown_asyncgens_skips_finished_and_unstarted(loop):
    log = []
    finished = _agen_factory(log, "fin")
    unstarted = _agen_factory(log, "new")

    async def main():
        async for _ in finished:
            pass
        await loop.shutdown_asyncgens()

    run(loop, main())
    assert log == ["fin start", "fin finally", "fin closed"]
    unstarted.aclose().close()  # never started: nothing to finalize


def test_shutdown_asyncgens_reports_aclose_error(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def bad():
        try:
            yield 1
        finally:
            raise ZeroDivisionError("in finally")

    g = bad()

    async def main():
        await g.__anext__()
        await loop.shutdown_asyncgens()

    run(loop, main())
    assert len(contexts) == 1
    ctx = contexts[0]
    assert "error occurred during closing of asynchronous generator" in \
        ctx["message"]
    assert isinstance(ctx["exception"], ZeroDivisionError)
    assert ctx["asyncgen"] is g


def test_gc_finalized_generator_is_aclosed_by_loop(loop):
    log = []

    async def main():
        g = _agen_factory(log)
        assert await g.__anext__() == 1
        del g
        gc.collect()
        # The finalizer hook scheduled aclose() on the loop.
        for _ in range(20):
            if "agen closed" in log:
                break
            await asyncio.sleep(0)
        return list(log)

    assert run(loop, main()) == ["agen start", "agen finally", "agen closed"]


def test_gc_finalized_generator_in_task(loop):
    """Generator dropped by a finished task (refcount drop, no gc)."""
    log = []

    async def consumer():
        g = _agen_factory(log)
        await g.__anext__()
        # g goes away when this frame ends

    async def main():
        await loop.create_task(consumer())
        for _ in range(20):
            if "agen closed" in log:
                break
            await asyncio.sleep(0)

    run(loop, main())
    assert log == ["agen start", "agen finally", "agen closed"]


def test_generator_finalized_in_other_thread_wakes_loop(loop):
    """The last reference dies in another thread: the finalizer hook runs
    there and schedules aclose() thread-safely; the idle loop wakes up."""
    import threading

    log = []

    async def main():
        closed = loop.create_future()

        async def agen():
            try:
                yield 1
            finally:
                log.append(threading.get_ident())
                closed.set_result(None)

        holder = [agen()]
        assert await holder[0].__anext__() == 1

        def drop():
            holder.clear()  # last reference: finalized in this thread

        t = threading.Thread(target=drop)
        t.start()
        t.join()
        assert not holder
        await asyncio.wait_for(closed, 5)

    run(loop, main())
    assert log == [threading.get_ident()]  # aclose() ran in the loop thread


def test_firstiter_after_shutdown_warns(loop):
    log = []
    run(loop, loop.shutdown_asyncgens())

    async def main():
        g = _agen_factory(log)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            await g.__anext__()
        await g.aclose()
        return w

    w = run(loop, main())
    msgs = [str(x.message) for x in w
            if issubclass(x.category, ResourceWarning)]
    assert any("was scheduled after loop.shutdown_asyncgens() call" in m
               for m in msgs), msgs


def test_firstiter_before_shutdown_does_not_warn(loop):
    async def main():
        g = _agen_factory([])
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            await g.__anext__()
        await g.aclose()
        return w

    w = run(loop, main())
    assert not [x for x in w if "shutdown_asyncgens" in str(x.message)]
