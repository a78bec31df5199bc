"""Exceptions escaping callbacks, the exception handler API, and
SystemExit/KeyboardInterrupt propagation. Runs on fastloop and asyncio."""
import asyncio
import contextvars
import gc
import logging
import sys

import pytest


class Boom(Exception):
    pass


def _raise(exc):
    raise exc


@pytest.fixture
def recorder(loop):
    contexts = []

    def handler(lp, context):
        assert lp is loop
        contexts.append(context)

    loop.set_exception_handler(handler)
    return contexts


# -- exceptions in callbacks ----------------------------------------------------


def test_callback_exception_context_keys(loop, recorder):
    exc = Boom("in callback")
    h = loop.call_soon(_raise, exc)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(recorder) == 1
    ctx = recorder[0]
    assert ctx["message"].startswith("Exception in callback ")
    assert "_raise" in ctx["message"]
    assert ctx["exception"] is exc
    assert ctx["handle"] is h
    assert isinstance(ctx["handle"], asyncio.Handle)


def test_timer_callback_exception_context(loop, recorder):
    exc = Boom("in timer")
    h = loop.call_later(0.001, _raise, exc)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert len(recorder) == 1
    ctx = recorder[0]
    assert ctx["message"].startswith("Exception in callback ")
    assert ctx["exception"] is exc
    assert ctx["handle"] is h
    assert isinstance(ctx["handle"], asyncio.TimerHandle)


def test_threadsafe_callback_exception_context(loop, recorder):
    exc = Boom("threadsafe")
    loop.call_soon_threadsafe(_raise, exc)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(recorder) == 1
    assert recorder[0]["exception"] is exc
    assert isinstance(recorder[0]["handle"], asyncio.Handle)


def test_loop_keeps_running_after_callback_exception(loop, recorder):
    order = []
    loop.call_soon(order.append, 1)
    loop.call_soon(_raise, Boom())
    loop.call_soon(order.append, 2)
    loop.call_later(0.01, order.append, 3)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert order == [1, 2, 3]
    assert len(recorder) == 1
    assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


def test_many_callback_exceptions(loop, recorder):
    for i in range(100):
        loop.call_soon(_raise, Boom(i))
    loop.run_until_complete(asyncio.sleep(0.01))
    assert [c["exception"].args[0] for c in recorder] == list(range(100))


def test_base_exception_subclass_goes_to_handler(loop, recorder):
    """Only SystemExit and KeyboardInterrupt propagate; other BaseExceptions
    (e.g. GeneratorExit-like custom ones) are reported."""
    class MyBase(BaseException):
        pass

    loop.call_soon(_raise, MyBase())
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(recorder) == 1
    assert isinstance(recorder[0]["exception"], MyBase)


# -- set/get_exception_handler ------------------------------------------------------


def test_get_set_exception_handler(loop):
    assert loop.get_exception_handler() is None

    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


@pytest.mark.parametrize("bad", [1, "handler", object()])
def test_set_exception_handler_not_callable(loop, bad):
    with pytest.raises(TypeError):
        loop.set_exception_handler(bad)
    assert loop.get_exception_handler() is None


def test_call_exception_handler_directly(loop, recorder):
    loop.call_exception_handler({"message": "custom", "extra": 1})
    assert recorder == [{"message": "custom", "extra": 1}]


def test_default_exception_handler_logs(loop, caplog):
    exc = Boom("logged")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.call_soon(_raise, exc)
    loop.run_until_complete(asyncio.sleep(0.01))
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    rec = records[0]
    assert rec.levelno == logging.ERROR
    assert rec.getMessage().startswith("Exception in callback ")
    assert rec.exc_info is not None and rec.exc_info[1] is exc


def test_default_exception_handler_called_directly(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.default_exception_handler({"message": "direct call", "x": 42})
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert "direct call" in records[0].getMessage()
    assert "x: 42" in records[0].getMessage()


def test_reset_handler_to_default_logs_again(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(ctx))
    loop.call_soon(_raise, Boom(1))
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(seen) == 1
    assert not [r for r in caplog.records if r.name == "asyncio"]
    loop.set_exception_handler(None)
    loop.call_soon(_raise, Boom(2))
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(seen) == 1
    assert len([r for r in caplog.records if r.name == "asyncio"]) == 1


def test_subclass_default_exception_handler_is_used(loop, caplog):
    """call_exception_handler calls default_exception_handler as a method, so
    an instance override is honoured."""
    seen = []
    loop.default_exception_handler = seen.append
    loop.call_soon(_raise, Boom())
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(seen) == 1
    assert isinstance(seen[0]["exception"], Boom)


def test_call_exception_handler_override_is_used(loop):
    """The loop reports callback errors through call_exception_handler looked
    up on the loop object (subclasses/instances may override it)."""
    seen = []
    loop.call_exception_handler = seen.append
    loop.call_soon(_raise, Boom())
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(seen) == 1
    assert isinstance(seen[0]["exception"], Boom)


def test_handler_that_raises_is_logged(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    handler_exc = Boom("handler failed")

    def handler(lp, ctx):
        raise handler_exc

    loop.set_exception_handler(handler)
    loop.call_soon(_raise, Boom("callback failed"))
    order = []
    loop.call_soon(order.append, "after")
    loop.run_until_complete(asyncio.sleep(0.01))
    assert order == ["after"]  # the loop survives a failing handler
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    msg = records[0].getMessage()
    assert "Unhandled error in exception handler" in msg
    assert records[0].exc_info[1] is handler_exc


def test_handler_runs_while_the_error_is_handled(loop, caplog):
    """asyncio calls the handler inside Handle._run's except block:
    sys.exc_info() is the callback's error (so logger.exception() in a
    handler logs it), and an error the handler raises has it as context."""
    seen = []
    first = Boom("callback failed")
    second = Boom("callback failed again")

    def handler(lp, ctx):
        seen.append(sys.exc_info()[1])
        if ctx["exception"] is second:
            raise KeyError("in handler")

    loop.set_exception_handler(handler)
    loop.call_soon(_raise, first)
    loop.call_soon(_raise, second)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.run_until_complete(asyncio.sleep(0.01))
    assert seen == [first, second]
    assert sys.exc_info() == (None, None, None)
    logged = [r.exc_info[1] for r in caplog.records
              if r.name == "asyncio" and r.exc_info]
    assert len(logged) == 1 and isinstance(logged[0], KeyError)
    assert logged[0].__context__ is second


def test_transport_errors_reported_while_handled(loop):
    """The same for errors escaping protocol callbacks of a stream, a
    datagram and a read pipe transport (asyncio reports them from an
    except block: _fatal_error, or the reader's handle)."""
    import socket

    seen = []

    def handler(lp, ctx):
        seen.append(sys.exc_info()[1] is ctx.get("exception"))

    class P(asyncio.Protocol):
        def data_received(self, data):
            raise Boom("stream")

    class D(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            raise Boom("datagram")

    async def main():
        a, b = socket.socketpair()
        await loop.connect_accepted_socket(P, a)
        b.send(b"x")
        u, _ = await loop.create_datagram_endpoint(
            D, local_addr=("127.0.0.1", 0))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", u.get_extra_info("sockname"))
        r, w = socket.socketpair()
        pipe, _ = await loop.connect_read_pipe(P, r.makefile("rb"))
        w.send(b"x")
        for _ in range(200):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.01)
        for o in (b, s, w):
            o.close()
        u.close()
        pipe.close()
        await asyncio.sleep(0.01)
        r.close()

    loop.set_exception_handler(handler)
    loop.run_until_complete(main())
    assert seen == [True, True, True]


def test_handler_runs_in_handle_context(loop, loop_kind, recorder):
    """3.12+: a custom handler runs inside the context of the failing handle;
    before 3.12 asyncio runs it in the loop's own (outer) context. fastloop
    gives the 3.12 behaviour on every version (documented difference)."""
    var = contextvars.ContextVar("var", default="outer")
    seen = []

    def handler(lp, ctx):
        seen.append(var.get())

    loop.set_exception_handler(handler)
    ctx = contextvars.copy_context()
    ctx.run(var.set, "inner")
    loop.call_soon(_raise, Boom(), context=ctx)
    loop.run_until_complete(asyncio.sleep(0.01))
    newer = sys.version_info >= (3, 12) or loop_kind == "fastloop"
    expected = "inner" if newer else "outer"
    assert seen == [expected]


def test_handler_runs_in_task_context(loop):
    """3.12+: for a context with a 'task', the handler runs in the task's
    context (here: an exception that was never retrieved)."""
    var = contextvars.ContextVar("var", default="outer")
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(
        (ctx["message"], var.get())))

    async def failing():
        var.set("task")
        raise Boom()

    task = loop.create_task(failing())
    loop.run_until_complete(asyncio.sleep(0.01))
    assert task.done()
    del task
    gc.collect()
    assert len(seen) == 1
    assert "exception was never retrieved" in seen[0][0]
    expected = "task" if sys.version_info >= (3, 12) else "outer"
    assert seen[0][1] == expected


# -- reports driven by Futures and Tasks ----------------------------------------------


def test_future_exception_never_retrieved(loop, recorder):
    fut = loop.create_future()
    exc = Boom("never retrieved")
    fut.set_exception(exc)
    del fut
    gc.collect()
    assert len(recorder) == 1
    ctx = recorder[0]
    assert ctx["message"] == "Future exception was never retrieved"
    assert ctx["exception"] is exc
    assert isinstance(ctx["future"], asyncio.Future)


def test_future_exception_retrieved_not_reported(loop, recorder):
    fut = loop.create_future()
    fut.set_exception(Boom())
    assert isinstance(fut.exception(), Boom)
    del fut
    gc.collect()
    assert recorder == []


def test_task_exception_never_retrieved(loop, recorder):
    async def failing():
        raise Boom("task failed")

    task = loop.create_task(failing())
    loop.run_until_complete(asyncio.sleep(0.01))
    del task
    gc.collect()
    assert len(recorder) == 1
    ctx = recorder[0]
    assert ctx["message"] == "Task exception was never retrieved"
    assert isinstance(ctx["exception"], Boom)
    assert isinstance(ctx["future"], asyncio.Task)


def test_task_destroyed_pending(loop, recorder):
    async def waits_forever(fut):
        await fut

    fut = loop.create_future()
    task = loop.create_task(waits_forever(fut))
    loop.run_until_complete(asyncio.sleep(0.01))
    assert not task.done()
    del task, fut
    gc.collect()
    msgs = [c for c in recorder
            if c["message"] == "Task was destroyed but it is pending!"]
    assert len(msgs) == 1
    assert isinstance(msgs[0]["task"], asyncio.Task)


def test_future_report_after_loop_closed(loop, recorder):
    """Reports from Future.__del__ can arrive after close(); the handler is
    still called and nothing raises."""
    fut = loop.create_future()
    fut.set_exception(Boom())
    loop.close()
    del fut
    gc.collect()
    assert len(recorder) == 1
    assert recorder[0]["message"] == "Future exception was never retrieved"


# -- SystemExit / KeyboardInterrupt -------------------------------------------------------


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_exit_exceptions_propagate_from_run_until_complete(loop, recorder,
                                                            exc_type):
    loop.call_soon(_raise, exc_type(3))
    with pytest.raises(exc_type):
        loop.run_until_complete(asyncio.sleep(10))
    assert not loop.is_running()
    assert recorder == []
    # The loop can run again afterwards.
    assert loop.run_until_complete(asyncio.sleep(0.001, "again")) == "again"
    assert asyncio._get_running_loop() is None


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_exit_exceptions_propagate_from_run_forever(loop, recorder, exc_type):
    loop.call_later(0.01, _raise, exc_type())
    loop.call_later(10, loop.stop)
    with pytest.raises(exc_type):
        loop.run_forever()
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert recorder == []


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_callbacks_after_exit_exception_run_on_next_run(loop, exc_type):
    order = []
    loop.call_soon(order.append, "a")
    loop.call_soon(_raise, exc_type())
    loop.call_soon(order.append, "b")
    with pytest.raises(exc_type):
        loop.run_forever()
    assert order == ["a"]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["a", "b"]


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_exit_exception_in_task_propagates(loop, exc_type):
    async def main():
        await asyncio.sleep(0)
        raise exc_type()

    with pytest.raises(exc_type):
        loop.run_until_complete(main())
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0, 5)) == 5


def test_exit_exception_from_reader_propagates(loop):
    import socket

    a, b = socket.socketpair()
    try:
        loop.add_reader(a.fileno(), _raise, SystemExit(7))
        b.send(b"x")
        with pytest.raises(SystemExit) as exc_info:
            loop.run_until_complete(asyncio.sleep(10))
        assert exc_info.value.code == 7
        loop.remove_reader(a.fileno())
        assert loop.run_until_complete(asyncio.sleep(0, 1)) == 1
    finally:
        a.close()
        b.close()


def test_exit_exception_from_exception_handler_propagates(loop):
    """SystemExit raised by a custom exception handler propagates too."""
    def handler(lp, ctx):
        raise SystemExit(9)

    loop.set_exception_handler(handler)
    loop.call_soon(_raise, Boom())
    fut = loop.create_future()
    loop.call_later(10, fut.set_result, None)
    with pytest.raises(SystemExit):
        loop.run_until_complete(fut)
    assert not loop.is_running()
