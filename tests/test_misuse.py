"""Misuse: wrong argument types, closed loops, tampering.  The loop must
raise the same exceptions as asyncio where asyncio defines them, and must
never crash the interpreter."""
import asyncio
import contextvars
import gc
import os
import sys
import tempfile
import warnings

import pytest

from conftest import LOOP_KINDS, _count_fds, make_loop, param_repr

PY311 = sys.version_info >= (3, 11)


def noop(*args):
    pass


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def collect_errors(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    return errors


# --------------------------------------------------------------------------
# timers: wrong argument types


@pytest.mark.parametrize("bad", ["x", b"1", None, [], {}, object()], ids=param_repr)
def test_call_later_bad_delay(loop, bad):
    with pytest.raises(TypeError):
        loop.call_later(bad, noop)
    run_once(loop)  # nothing half-scheduled breaks the loop


def test_call_later_swapped_arguments(loop):
    with pytest.raises(TypeError):
        loop.call_later(noop, 1)


def test_call_later_missing_callback(loop):
    with pytest.raises(TypeError):
        loop.call_later(1)
    with pytest.raises(TypeError):
        loop.call_at(1)


def test_call_later_overflowing_int(loop):
    with pytest.raises(OverflowError):
        loop.call_later(10**400, noop)


def test_call_at_none(loop, loop_kind):
    if loop_kind == "asyncio" and not PY311:
        pytest.skip("asyncio < 3.11 does not validate call_at(None)")
    with pytest.raises(TypeError):
        loop.call_at(None, noop)


@pytest.mark.parametrize("bad", ["x", b"1", [], object()], ids=param_repr)
def test_call_at_bad_when_fastloop(loop, fastloop_only, bad):
    # asyncio pushes any ``when`` into its heap and fails later
    with pytest.raises(TypeError):
        loop.call_at(bad, noop)
    run_once(loop)


def test_call_at_overflowing_int_fastloop(loop, fastloop_only):
    with pytest.raises((OverflowError, ValueError)):
        loop.call_at(10**400, noop)
    run_once(loop)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")],
                         ids=param_repr)
def test_call_later_non_finite_no_crash(loop, loop_kind, value):
    """asyncio accepts these; fastloop may reject them with ValueError.
    Either way the loop keeps working and short timers still fire."""
    if loop_kind == "asyncio" and value != value:
        pytest.skip("asyncio itself breaks on NaN (3.13: ValueError in poll)")
    out = []
    try:
        h = loop.call_later(value, out.append, "odd")
    except (ValueError, OverflowError):
        h = None
    loop.call_later(0.002, out.append, "short")
    loop.call_later(0.005, loop.stop)
    loop.run_forever()
    assert "short" in out
    if h is not None:
        h.cancel()
    run_once(loop)


# --------------------------------------------------------------------------
# call_soon: wrong argument types


def test_call_soon_keyword_for_callback(loop):
    with pytest.raises(TypeError):
        loop.call_soon(noop, bogus=1)
    with pytest.raises(TypeError):
        loop.call_later(0, noop, bogus=1)
    with pytest.raises(TypeError):
        loop.call_soon_threadsafe(noop, bogus=1)


@pytest.mark.parametrize("bad_ctx", [123, "ctx", {}], ids=param_repr)
def test_bad_context_no_crash(loop, bad_ctx):
    """asyncio fails when the callback runs (exception handler); rejecting
    the context up front with TypeError is fine too."""
    errors = collect_errors(loop)
    out = []
    try:
        loop.call_soon(out.append, "bad", context=bad_ctx)
        rejected = False
    except TypeError:
        rejected = True
    loop.call_soon(out.append, "good")
    run_once(loop)
    assert "good" in out
    assert "bad" not in out
    if not rejected:
        assert len(errors) == 1


def test_non_callable_callback_fastloop(loop, fastloop_only):
    for bad in (None, 1, "x"):
        with pytest.raises(TypeError):
            loop.call_soon(bad)


def test_non_callable_callback_asyncio_reports_at_run(loop, loop_kind):
    """In non-debug mode asyncio accepts a non-callable and reports the
    failure through the exception handler; fastloop rejects it upfront."""
    loop.set_debug(False)  # -X dev / PYTHONASYNCIODEBUG turn debug on
    errors = collect_errors(loop)
    try:
        loop.call_soon(None)
    except TypeError:
        assert loop_kind == "fastloop"
        return
    run_once(loop)
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], TypeError)


# --------------------------------------------------------------------------
# readers / writers: invalid file objects


@pytest.mark.parametrize("bad", ["x", None, 1.5, object(), -1, -100],
                         ids=param_repr)
@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_add_watcher_invalid_fd(loop, method, bad):
    with pytest.raises(ValueError):
        getattr(loop, method)(bad, noop)


@pytest.mark.parametrize("bad", ["x", None, object(), -1], ids=param_repr)
@pytest.mark.parametrize("method", ["remove_reader", "remove_writer"])
def test_remove_watcher_invalid_fd(loop, method, bad):
    with pytest.raises(ValueError):
        getattr(loop, method)(bad)


def test_add_reader_object_with_bad_fileno(loop):
    class BadFileno:
        def fileno(self):
            return "not-an-int"

    class RaisingFileno:
        def fileno(self):
            raise ValueError("closed file")

    with pytest.raises(ValueError):
        loop.add_reader(BadFileno(), noop)
    with pytest.raises(ValueError):
        loop.add_reader(RaisingFileno(), noop)


def test_add_reader_fd_overflow_does_not_alias_low_fd(loop):
    with pytest.raises((OverflowError, ValueError, OSError)):
        loop.add_reader(2**32, noop)  # truncated to 32 bits this is fd 0
    with pytest.raises((OverflowError, ValueError, OSError)):
        loop.add_writer(2**32 + 1, noop)
    assert loop.remove_reader(0) is False
    assert loop.remove_writer(1) is False


@pytest.mark.parametrize("fd", [2**31, 2**40, 2**100])
def test_fd_beyond_a_c_int(loop, fd):
    """As asyncio: epoll refuses it (OverflowError); removing it finds
    nothing; a file object whose fileno() is that big is refused alike."""
    class F:
        def fileno(self):
            return fd

    with pytest.raises(OverflowError):
        loop.add_reader(fd, noop)
    with pytest.raises(OverflowError):
        loop.add_writer(F(), noop)
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(F()) is False


def test_hugely_negative_fd_named_in_the_error(loop):
    with pytest.raises(ValueError, match=str(-2**70)):
        loop.add_reader(-2**70, noop)
    with pytest.raises(ValueError, match=str(-2**70)):
        loop.remove_writer(-2**70)


def test_add_reader_closed_fd(loop):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError):
        loop.add_reader(r, noop)
    with pytest.raises(OSError):
        loop.add_writer(w, noop)
    # the failed registration left nothing behind
    assert loop.remove_reader(r) is False
    assert loop.remove_writer(w) is False
    run_once(loop)


def test_add_reader_regular_file(loop):
    with tempfile.TemporaryFile() as f:
        with pytest.raises(OSError):  # epoll: EPERM
            loop.add_reader(f.fileno(), noop)
        assert loop.remove_reader(f.fileno()) is False


def test_remove_unregistered_fd(loop):
    r, w = os.pipe()
    try:
        assert loop.remove_reader(r) is False
        assert loop.remove_writer(w) is False
    finally:
        os.close(r)
        os.close(w)


# --------------------------------------------------------------------------
# closed loop


def test_methods_on_closed_loop_raise(loop):
    loop.close()
    r, w = os.pipe()
    try:
        for call in (
            lambda: loop.call_soon(noop),
            lambda: loop.call_later(1, noop),
            lambda: loop.call_at(1, noop),
            lambda: loop.call_soon_threadsafe(noop),
            lambda: loop.run_forever(),
            lambda: loop.run_until_complete(asyncio.Future(loop=loop)),
            lambda: loop.add_reader(r, noop),
            lambda: loop.add_writer(w, noop),
            lambda: loop.run_in_executor(None, noop),
        ):
            with pytest.raises(RuntimeError, match="closed"):
                call()
        # asyncio's selector loop answers False here rather than raising
        assert loop.remove_reader(r) is False
        assert loop.remove_writer(w) is False
    finally:
        os.close(r)
        os.close(w)


def test_create_task_on_closed_loop(loop):
    loop.close()

    async def c():
        pass

    coro = c()
    try:
        with pytest.raises(RuntimeError, match="closed"):
            loop.create_task(coro)
    finally:
        coro.close()


def test_add_signal_handler_on_closed_loop(loop):
    import signal

    loop.close()
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, noop)


def test_harmless_methods_on_closed_loop(loop):
    loop.close()
    assert isinstance(loop.time(), float)
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    loop.stop()  # no error
    assert loop.is_closed() and not loop.is_running()
    f = loop.create_future()  # asyncio allows it
    f.cancel()
    loop.call_exception_handler({"message": "after close"})
    assert isinstance(repr(loop), str)


def test_handles_survive_close(loop):
    h = loop.call_soon(noop)
    t = loop.call_later(10, noop)
    loop.close()
    h.cancel()
    t.cancel()
    assert h.cancelled() and t.cancelled()
    repr(h)
    repr(t)
    gc.collect()


def test_core_private_methods_on_closed_loop(loop, fastloop_only):
    loop.close()
    with pytest.raises(RuntimeError):
        loop._run_once()
    with pytest.raises(RuntimeError):
        loop._run()
    loop._close_core()  # idempotent
    st = loop._stats()
    assert isinstance(st, dict)


# --------------------------------------------------------------------------
# Handle tampering must not crash the C core (asyncio does not define it)


TAMPER = [
    ("_args", None), ("_args", [1, 2]), ("_args", "ab"), ("_args", 5),
    ("_callback", None), ("_callback", 5),
    ("_context", None), ("_context", 5),
    ("_cancelled", 1), ("_cancelled", None),
]
DELETE = ["_args", "_callback", "_context", "_cancelled", "_loop"]


def _survives(loop):
    """Run one iteration; an Exception escaping is tolerated, a crash or a
    loop stuck 'running' is not.  The loop must remain usable."""
    try:
        run_once(loop)
    except Exception:
        pass
    assert not loop.is_running()
    out = []
    loop.call_soon(out.append, "alive")
    try:
        run_once(loop)
    except Exception:
        run_once(loop)
    assert "alive" in out


@pytest.mark.parametrize("attr,value", TAMPER, ids=param_repr)
@pytest.mark.parametrize("kind", ["soon", "later"])
def test_tampered_handle_no_crash(loop, fastloop_only, kind, attr, value):
    collect_errors(loop)
    if kind == "soon":
        h = loop.call_soon(noop, 1)
    else:
        h = loop.call_later(-1, noop, 1)
    try:
        setattr(h, attr, value)
    except (AttributeError, TypeError):
        pass
    _survives(loop)
    try:
        repr(h)  # asyncio's own repr may raise on tampered slots
    except Exception:
        pass


@pytest.mark.parametrize("attr", DELETE)
@pytest.mark.parametrize("kind", ["soon", "later"])
def test_deleted_handle_slot_no_crash(loop, fastloop_only, kind, attr):
    collect_errors(loop)
    if kind == "soon":
        h = loop.call_soon(noop, 1)
    else:
        h = loop.call_later(-1, noop, 1)
    try:
        delattr(h, attr)
    except (AttributeError, TypeError):
        pass
    _survives(loop)
    try:
        repr(h)
    except Exception:
        pass
    try:
        h.cancel()
    except Exception:
        pass


def test_handle_constructors_no_crash(loop, fastloop_only):
    from fastloop import _core

    for cls in (_core.Handle, _core.TimerHandle):
        for args in ((), (noop,), (noop, (), loop), (noop, (), loop, None),
                     (1.0, noop, (), loop), (1.0, noop, (), loop, None),
                     (None, None, None, None)):
            try:
                h = cls(*args)
            except Exception:  # any clean error is fine
                continue
            for m in ("__repr__", "_run", "cancel", "cancelled", "_run"):
                try:
                    getattr(h, m)()
                except Exception:
                    pass
    run_once(loop)


def test_exception_with_broken_str_is_reported(loop, caplog):
    class Nasty(Exception):
        def __str__(self):
            raise RuntimeError("no str for you")

        __repr__ = __str__

    out = []

    def cb():
        raise Nasty()

    loop.call_soon(cb)
    loop.call_soon(out.append, "after")
    run_once(loop)
    assert out == ["after"]


def test_set_exception_handler_non_callable(loop):
    with pytest.raises(TypeError):
        loop.set_exception_handler(42)
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


def test_run_until_complete_non_awaitable(loop):
    for bad in (None, 1, "x", noop):
        with pytest.raises(TypeError):
            loop.run_until_complete(bad)
    assert not loop.is_running()


# --------------------------------------------------------------------------
# class / instance properties


def test_is_abstract_event_loop(loop):
    assert isinstance(loop, asyncio.AbstractEventLoop)


def test_fastloop_loop_no_args():
    import fastloop

    lp = fastloop.Loop()
    try:
        assert isinstance(lp, asyncio.AbstractEventLoop)
        assert not lp.is_closed() and not lp.is_running()
        out = []
        lp.call_soon(out.append, 1)
        run_once(lp)
        assert out == [1]
    finally:
        lp.close()


def test_fastloop_loop_rejects_args():
    """A failed construction raises TypeError, leaks no fd and does not
    warn about an 'unclosed event loop' that the caller never got."""
    import fastloop

    fds = _count_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TypeError):
            fastloop.Loop(1, 2, 3, nonsense=True)
        gc.collect()
    assert _count_fds() <= fds
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_new_attributes(loop):
    loop.some_new_attribute = 42
    assert loop.some_new_attribute == 42
    del loop.some_new_attribute
    assert not hasattr(loop, "some_new_attribute")


def test_subclassable():
    import fastloop

    class MyLoop(fastloop.Loop):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag
            self.errors = []

        def call_exception_handler(self, context):
            self.errors.append(context["exception"])

        def extra(self):
            return self.tag * 2

    lp = MyLoop("ab")
    try:
        assert isinstance(lp, fastloop.Loop)
        assert isinstance(lp, asyncio.AbstractEventLoop)
        assert lp.extra() == "abab"

        async def main():
            assert asyncio.get_running_loop() is lp
            await asyncio.sleep(0.001)
            return "ok"

        assert lp.run_until_complete(main()) == "ok"
        exc = ValueError("x")

        def boom():
            raise exc

        lp.call_soon(boom)
        run_once(lp)
        assert lp.errors == [exc]
    finally:
        lp.close()
    assert lp.is_closed()


def test_subclass_without_calling_init():
    """A subclass that forgets super().__init__() must not crash."""
    import fastloop

    class Lazy(fastloop.Loop):
        def __init__(self):
            pass

    try:
        lp = Lazy()
    except TypeError:
        return
    for call in (lambda: lp.call_soon(noop), lambda: run_once(lp),
                 lambda: lp.time(), lambda: lp.is_running(),
                 lambda: lp.close()):
        try:
            call()
        except Exception:
            pass


def test_set_event_loop(loop):
    asyncio.set_event_loop(loop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert asyncio.get_event_loop() is loop
            assert asyncio.get_event_loop_policy().get_event_loop() is loop
    finally:
        asyncio.set_event_loop(None)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_unclosed_loop_warns_and_releases_fds(kind):
    fds = _count_fds()
    lp = make_loop(kind)
    run_once(lp)
    with pytest.warns(ResourceWarning):
        del lp
        gc.collect()
    gc.collect()
    assert _count_fds() <= fds


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_many_loops_no_fd_leak(kind):
    fds = _count_fds()
    for _ in range(200):
        lp = make_loop(kind)
        lp.call_soon(noop)
        run_once(lp)
        lp.close()
    del lp
    gc.collect()
    assert _count_fds() <= fds


def test_callback_keeps_loop_alive_cycle(loop_kind):
    """A loop referenced from its own pending callbacks is collectable
    once closed (no leak through the C core)."""
    import weakref

    lp = make_loop(loop_kind)
    lp.call_soon(noop, lp)
    lp.call_later(100, noop, lp)
    ctx = contextvars.copy_context()
    lp.call_soon(noop, lp, context=ctx)
    lp.close()
    ref = weakref.ref(lp)
    del lp
    gc.collect()
    assert ref() is None


# --------------------------------------------------------------------------
# signatures: asyncio's parameters can be passed by keyword


def test_callback_params_by_keyword(loop):
    """asyncio: call_soon(self, callback, *args, context=None) etc. -- the
    named parameters are ordinary (not positional-only) parameters."""
    out = []
    loop.call_soon(callback=lambda: out.append("soon"))
    loop.call_soon_threadsafe(callback=lambda: out.append("threadsafe"))
    loop.call_later(delay=0, callback=lambda: out.append("later"))
    loop.call_later(0, callback=lambda: out.append("later2"))
    loop.call_at(when=loop.time(), callback=lambda: out.append("at"))
    loop.call_later(0.002, loop.stop)
    loop.run_forever()
    assert sorted(out) == ["at", "later", "later2", "soon", "threadsafe"]


def test_reader_params_by_keyword(loop):
    r, w = os.pipe()
    try:
        loop.add_reader(fd=r, callback=noop)
        loop.add_writer(fd=w, callback=noop)
        assert loop.remove_reader(fd=r) is True
        assert loop.remove_writer(fd=w) is True
    finally:
        os.close(r)
        os.close(w)


# --------------------------------------------------------------------------
# transports: write buffer limits out of range


async def _transport(loop, kind, stack):
    """A transport of each kind fastloop implements in C (closed by stack)."""
    import socket

    if kind == "stream":
        a, b = socket.socketpair()
        stack.append(b.close)
        tr, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
    elif kind == "datagram":
        tr, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    else:
        r, w = os.pipe()
        stack.append(lambda: os.close(r))
        tr, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(w, "wb", 0))
    stack.append(tr.close)
    return tr


@pytest.mark.parametrize("kind", ["stream", "datagram", "pipe"])
def test_write_limits_low_overflow_fastloop(loop, fastloop_only, kind):
    """4 * low must fit a Py_ssize_t (asyncio computes it with Python ints):
    OverflowError, the limits unchanged; a huge high is fine."""
    stack = []

    async def main():
        tr = await _transport(loop, kind, stack)
        with pytest.raises(OverflowError, match="low is too large"):
            tr.set_write_buffer_limits(low=2**62)
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        tr.set_write_buffer_limits(high=2**62)
        assert tr.get_write_buffer_limits() == (2**60, 2**62)
        with pytest.raises(ValueError, match=r"high \(1\) must be >= low"):
            tr.set_write_buffer_limits(high=1, low=2)

    try:
        loop.run_until_complete(main())
    finally:
        for f in reversed(stack):
            f()
        run_once(loop)


def test_fileops_helpers_bad_input():
    # The C helpers behind sendfile() and Unix server sockets (fileops.c)
    # raise what os.sendfile/os.stat/os.unlink raise.
    from fastloop import _core

    for bad in (None, 1.5, object()):
        with pytest.raises(TypeError):
            _core._stat(bad)
        with pytest.raises(TypeError):
            _core._unlink(bad)
        with pytest.raises(TypeError):
            _core._sendfile(bad, 0, 0, 1)
    with pytest.raises(TypeError):
        _core._sendfile(1, 2, 3)
    with pytest.raises(ValueError):
        _core._sendfile(-1, 0, 0, 1)
    with pytest.raises(ValueError):
        _core._sendfile(1, 0, -5, 1)
    with tempfile.TemporaryDirectory() as d:
        missing = os.path.join(d, "missing")
        with pytest.raises(FileNotFoundError) as ei:
            _core._stat(missing)
        assert ei.value.filename == missing
        with pytest.raises(FileNotFoundError):
            _core._unlink(missing)
        path = os.path.join(d, "f")
        with open(path, "wb") as f:
            f.write(b"abcdef")
        st = os.stat(path)
        assert _core._stat(path) == (st.st_mode, st.st_ino)
        assert _core._stat(os.fsencode(path)) == (st.st_mode, st.st_ino)
        r, w = os.pipe()
        try:
            with open(path, "rb") as f:
                assert _core._sendfile(w, f.fileno(), 2, 100) == 4
                assert os.read(r, 100) == b"cdef"
                with pytest.raises(OSError):  # EBADF, as os.sendfile
                    _core._sendfile(r, f.fileno(), 0, 1)
        finally:
            os.close(r)
            os.close(w)
        _core._unlink(path)
        assert not os.path.exists(path)
