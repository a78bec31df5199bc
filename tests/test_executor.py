"""run_in_executor, default executor management, getaddrinfo/getnameinfo.
Runs on fastloop and asyncio."""
import asyncio
import concurrent.futures
import socket
import sys
import threading
import time
import warnings

import pytest

from conftest import run


def test_run_in_default_executor(loop):
    main_ident = threading.get_ident()

    def work(a, b):
        return a + b, threading.get_ident(), threading.current_thread().name

    async def main():
        fut = loop.run_in_executor(None, work, 2, 3)
        assert isinstance(fut, asyncio.Future)
        return await fut

    value, ident, name = run(loop, main())
    assert value == 5
    assert ident != main_ident
    assert name.startswith("asyncio")
    run(loop, loop.shutdown_default_executor())


def test_run_in_executor_exception(loop):
    def work():
        raise KeyError("in thread")

    async def main():
        with pytest.raises(KeyError):
            await loop.run_in_executor(None, work)

    run(loop, main())
    run(loop, loop.shutdown_default_executor())


def test_run_in_executor_many(loop):
    async def main():
        futs = [loop.run_in_executor(None, pow, i, 2) for i in range(50)]
        return await asyncio.gather(*futs)

    assert run(loop, main()) == [i * i for i in range(50)]
    run(loop, loop.shutdown_default_executor())


def test_run_in_executor_wakes_idle_loop(loop):
    """The result of a thread wakes the loop, which has nothing else to do."""
    def work():
        time.sleep(0.1)
        return "done"

    t0 = time.monotonic()
    assert loop.run_until_complete(loop.run_in_executor(None, work)) == "done"
    assert time.monotonic() - t0 < 5
    run(loop, loop.shutdown_default_executor())


def test_run_in_custom_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="custom") as ex:
        name = run(loop, loop.run_in_executor(
            ex, lambda: threading.current_thread().name))
    assert name.startswith("custom")


def test_set_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mine")
    try:
        loop.set_default_executor(ex)
        name = run(loop, loop.run_in_executor(
            None, lambda: threading.current_thread().name))
        assert name.startswith("mine")
        run(loop, loop.shutdown_default_executor())
        # shutdown_default_executor shut *our* executor down.
        with pytest.raises(RuntimeError):
            ex.submit(lambda: None)
    finally:
        ex.shutdown(wait=True)


def test_run_in_executor_after_shutdown_default_executor(loop):
    run(loop, loop.run_in_executor(None, lambda: None))
    run(loop, loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, lambda: None)


def test_shutdown_default_executor_without_executor(loop):
    """Never used: shutdown is a no-op but still forbids later use."""
    run(loop, loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, lambda: None)


def test_shutdown_default_executor_waits_for_work(loop):
    done = []

    def work():
        time.sleep(0.1)
        done.append(1)

    async def main():
        loop.run_in_executor(None, work)
        await asyncio.sleep(0.01)
        await loop.shutdown_default_executor()
        return list(done)

    assert run(loop, main()) == [1]


def test_custom_executor_usable_after_default_shutdown(loop):
    run(loop, loop.shutdown_default_executor())
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        assert run(loop, loop.run_in_executor(ex, lambda: 7)) == 7


@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="TypeError since 3.11 (DeprecationWarning before)")
def test_set_default_executor_type_error(loop):
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        with pytest.raises(TypeError):
            loop.set_default_executor(ex)
    with pytest.raises(TypeError):
        loop.set_default_executor(object())


@pytest.mark.skipif(sys.version_info >= (3, 11),
                    reason="3.9/3.10 warn instead of raising")
def test_set_default_executor_deprecation_warning(loop):
    class NotThreadPool(concurrent.futures.Executor):
        pass

    with pytest.warns(DeprecationWarning):
        loop.set_default_executor(NotThreadPool())


def test_run_in_executor_on_closed_loop(loop):
    loop.close()
    with pytest.raises(RuntimeError):
        loop.run_in_executor(None, lambda: None)


def test_close_shuts_down_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1)
    loop.set_default_executor(ex)
    run(loop, loop.run_in_executor(None, lambda: None))
    loop.close()
    with pytest.raises(RuntimeError):
        ex.submit(lambda: None)
    ex.shutdown(wait=True)


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="shutdown_default_executor(timeout): 3.12+")
def test_shutdown_default_executor_timeout_positional(loop):
    release = threading.Event()
    done = []

    def blocked():
        release.wait(10)
        done.append(1)

    async def main():
        loop.run_in_executor(None, blocked)
        await asyncio.sleep(0.01)
        threading.Timer(0.1, release.set).start()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await loop.shutdown_default_executor(5)  # positional, as Runner

    try:
        run(loop, main())
    finally:
        release.set()
    assert done == [1]


@pytest.mark.skipif(sys.version_info < (3, 13),
                    reason="asyncio 3.12.1 waits for the work despite timeout")
def test_shutdown_default_executor_timeout_expires(loop):
    release = threading.Event()

    def blocked():
        release.wait(10)

    async def main():
        loop.run_in_executor(None, blocked)
        await asyncio.sleep(0.01)
        t0 = time.monotonic()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            await loop.shutdown_default_executor(0.1)  # positional
        return time.monotonic() - t0, w

    try:
        elapsed, w = run(loop, main())
    finally:
        release.set()
    assert elapsed < 5
    assert any(issubclass(x.category, RuntimeWarning)
               and "did not finish" in str(x.message) for x in w), \
        [str(x.message) for x in w]


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="shutdown_default_executor(timeout): 3.12+")
def test_shutdown_default_executor_timeout_not_reached(loop):
    async def main():
        await loop.run_in_executor(None, lambda: None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await loop.shutdown_default_executor(timeout=5)

    run(loop, main())


def test_shutdown_default_executor_cancelled(loop):
    # Before 3.13 a cancelled shutdown_default_executor() still joins the
    # shutdown thread (``finally: thread.join()``), so the executor's work
    # is over when the CancelledError arrives; 3.13 returns at once.
    release = threading.Event()
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    async def main():
        loop.run_in_executor(None, release.wait, 10)
        await asyncio.sleep(0.01)
        task = loop.create_task(loop.shutdown_default_executor())
        await asyncio.sleep(0.05)
        threading.Timer(0.2, release.set).start()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return release.is_set()

    try:
        waited = run(loop, main())
    finally:
        release.set()
    assert waited == (sys.version_info < (3, 13))


# -- getaddrinfo / getnameinfo ------------------------------------------------------


def test_getaddrinfo_numeric(loop):
    expected = socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    got = run(loop, loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
    assert got == expected
    assert got[0][4] == ("127.0.0.1", 80)
    run(loop, loop.shutdown_default_executor())


def test_getaddrinfo_localhost(loop):
    got = run(loop, loop.getaddrinfo("localhost", 8080, family=socket.AF_INET,
                                     proto=socket.IPPROTO_TCP))
    assert got
    for family, type_, proto, canonname, sockaddr in got:
        assert family == socket.AF_INET
        assert proto == socket.IPPROTO_TCP
        assert sockaddr[1] == 8080
    assert ("127.0.0.1", 8080) in [g[4] for g in got]
    run(loop, loop.shutdown_default_executor())


def test_getaddrinfo_keywords_and_none_port(loop):
    expected = socket.getaddrinfo("127.0.0.1", None, socket.AF_INET,
                                  socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
    got = run(loop, loop.getaddrinfo("127.0.0.1", None, family=socket.AF_INET,
                                     type=socket.SOCK_DGRAM,
                                     flags=socket.AI_NUMERICHOST))
    assert got == expected
    run(loop, loop.shutdown_default_executor())


def test_getaddrinfo_error(loop):
    async def main():
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo("not a valid host", 80,
                                   flags=socket.AI_NUMERICHOST)

    run(loop, main())
    run(loop, loop.shutdown_default_executor())


def test_getnameinfo(loop):
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    got = run(loop, loop.getnameinfo(("127.0.0.1", 80), flags))
    assert got == ("127.0.0.1", "80")
    assert got == socket.getnameinfo(("127.0.0.1", 80), flags)
    got = run(loop, loop.getnameinfo(("127.0.0.1", 0)))
    assert got == socket.getnameinfo(("127.0.0.1", 0), 0)
    run(loop, loop.shutdown_default_executor())
