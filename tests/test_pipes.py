"""Pipe transports: loop.connect_read_pipe / connect_write_pipe and the
contract of asyncio's _UnixReadPipeTransport / _UnixWritePipeTransport.

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture); the reference loop proves the expectation right. Real pipes,
socketpairs and PTYs; the fixture checks that no file descriptor leaks, and
the tests check that each transport closes its fd exactly once (the number
is free afterwards, and a new fd that reuses it survives everything the old
transport and pipe object can still do: uvloop #763).
"""
import asyncio
import errno
import functools
import gc
import os
import socket
import stat
import sys
import tempfile
import tty
import warnings
import weakref

import pytest

from conftest import run
from nethelpers import payload, record_errors

HIGH = 64 * 1024


class PipeProto(asyncio.Protocol):
    """Records every callback; futures for connection_made/_lost and EOF."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.transport = None
        self.events = []
        self.data = bytearray()
        self.made = self.loop.create_future()
        self.eof = self.loop.create_future()
        self.lost = self.loop.create_future()
        self.paused = 0
        self.resumed = 0
        self.pause_sizes = []
        self._want = None

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        assert isinstance(data, bytes)
        assert "lost" not in self.events
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        if self._want is not None and len(self.data) >= self._want[0]:
            fut = self._want[1]
            self._want = None
            if not fut.done():
                fut.set_result(None)

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)

    def pause_writing(self):
        self.events.append("pause_writing")
        self.paused += 1
        self.pause_sizes.append(self.transport.get_write_buffer_size())

    def resume_writing(self):
        self.events.append("resume_writing")
        self.resumed += 1

    async def wait_for_bytes(self, n):
        if len(self.data) >= n:
            return
        fut = self.loop.create_future()
        self._want = (n, fut)
        await fut


def is_reading(tr):
    """tr.is_reading(), or None where asyncio's read pipe transport lacks
    it (3.9/3.10; fastloop has it everywhere)."""
    try:
        return tr.is_reading()
    except NotImplementedError:
        return None


def fd_is_free(fd):
    try:
        os.fstat(fd)
    except OSError as exc:
        return exc.errno == errno.EBADF
    return False


async def spin(n=5):
    for _ in range(n):
        await asyncio.sleep(0)


def drain_fd(fd):
    """Read everything currently available from the non-blocking fd."""
    out = bytearray()
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return bytes(out)
        if not chunk:
            return bytes(out)
        out += chunk


# ----------------------------------------------------------------------
# Reading


def test_read_pipe_data_eof_lost(loop):
    async def main():
        r, w = os.pipe()
        pipe = open(r, "rb", buffering=0)
        tr, proto = await loop.connect_read_pipe(PipeProto, pipe)
        assert isinstance(tr, asyncio.ReadTransport)
        assert proto.events == ["made"]
        assert tr.get_extra_info("pipe") is pipe
        assert tr.get_extra_info("nope", 7) == 7
        assert tr.get_protocol() is proto
        assert is_reading(tr) in (True, None)
        assert not tr.is_closing()
        assert "fd=" in repr(tr)
        # non-blocking now, as asyncio
        assert not os.get_blocking(r)
        os.write(w, b"hello ")
        os.write(w, b"world")
        await proto.wait_for_bytes(11)
        os.close(w)
        assert await proto.lost is None
        assert proto.events == ["made", "data", "eof", "lost"]
        assert bytes(proto.data) == b"hello world"
        assert tr.is_closing()
        assert is_reading(tr) in (False, None)
        # the transport closed the pipe object, hence the fd, once
        assert pipe.closed
        assert fd_is_free(r)
        tr.close()  # no-op
        pipe.close()  # no-op: the file object knows it is closed

    run(loop, main())


def test_read_pipe_close_by_transport(loop):
    async def main():
        r, w = os.pipe()
        pipe = open(r, "rb", buffering=0)
        tr, proto = await loop.connect_read_pipe(PipeProto, pipe)
        tr.close()
        assert tr.is_closing()
        assert is_reading(tr) in (False, None)
        tr.close()
        assert await proto.lost is None
        assert proto.events == ["made", "lost"]
        assert fd_is_free(r)
        os.close(w)

    run(loop, main())


def test_read_pipe_pause_resume(loop):
    async def main():
        r, w = os.pipe()
        tr, proto = await loop.connect_read_pipe(PipeProto, open(r, "rb", 0))
        tr.pause_reading()
        assert is_reading(tr) in (False, None)
        tr.pause_reading()  # no-op
        os.write(w, b"x" * 100)
        await asyncio.sleep(0.02)
        assert proto.data == b""
        tr.resume_reading()
        assert is_reading(tr) in (True, None)
        tr.resume_reading()  # no-op
        await proto.wait_for_bytes(100)
        # pause, then EOF arrives while paused: nothing until resumed
        tr.pause_reading()
        os.write(w, b"y")
        os.close(w)
        await asyncio.sleep(0.02)
        assert proto.events == ["made", "data"]
        tr.resume_reading()
        assert await proto.lost is None
        assert bytes(proto.data) == b"x" * 100 + b"y"
        assert proto.events == ["made", "data", "eof", "lost"]
        # pause/resume after the end are no-ops
        tr.pause_reading()
        tr.resume_reading()
        assert is_reading(tr) in (False, None)
        assert fd_is_free(r)

    run(loop, main())


def test_read_pipe_closed_while_paused(loop):
    async def main():
        r, w = os.pipe()
        tr, proto = await loop.connect_read_pipe(PipeProto, open(r, "rb", 0))
        tr.pause_reading()
        tr.close()
        assert await proto.lost is None
        assert fd_is_free(r)
        os.close(w)

    run(loop, main())


def test_read_pipe_set_protocol(loop):
    async def main():
        r, w = os.pipe()
        tr, proto = await loop.connect_read_pipe(PipeProto, open(r, "rb", 0))
        other = PipeProto()
        tr.set_protocol(other)
        assert tr.get_protocol() is other
        os.write(w, b"abc")
        os.close(w)
        assert await other.lost is None
        assert other.data == b"abc"
        assert proto.data == b""
        assert not proto.lost.done()

    run(loop, main())


def test_read_pipe_set_protocol_inside_data_received(loop):
    """data_received() swaps the protocol: the callable being run (a
    functools.partial the protocol hands out, as a C-implemented protocol
    hands out builtin methods) stays alive until it returns. fastloop used
    to drop its cached reference mid-call (use after free: a bound
    list.count whose items' __eq__ swapped the protocol segfaulted)."""
    seen = []

    class Swapping(asyncio.Protocol):
        handed_out = None

        def connection_made(self, transport):
            self.transport = transport

        @property
        def data_received(self):
            fn = functools.partial(Swapping._received, self)
            self.handed_out = weakref.ref(fn)
            return fn

        def _received(self, data):
            handed_out = self.handed_out
            self.transport.set_protocol(PipeProto())
            gc.collect()
            seen.append(handed_out() is not None)

    async def main():
        r, w = os.pipe()
        tr, _ = await loop.connect_read_pipe(Swapping, open(r, "rb", 0))
        os.write(w, b"x")
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        os.close(w)
        assert await tr.get_protocol().lost is None

    run(loop, main())
    assert seen == [True]


def test_read_pipe_data_received_error_reported(loop):
    """An exception from data_received goes to the exception handler; the
    transport keeps reading."""

    class Boom(PipeProto):
        def data_received(self, data):
            super().data_received(data)
            if data.startswith(b"boom"):
                raise ZeroDivisionError("boom")

    async def main():
        errors = record_errors(loop)
        r, w = os.pipe()
        tr, proto = await loop.connect_read_pipe(Boom, open(r, "rb", 0))
        os.write(w, b"boom")
        await proto.wait_for_bytes(4)
        await spin()
        assert len(errors) == 1
        assert isinstance(errors[0]["exception"], ZeroDivisionError)
        os.write(w, b"more")
        await proto.wait_for_bytes(8)
        os.close(w)
        assert await proto.lost is None
        assert proto.data == b"boommore"

    run(loop, main())


def test_read_pipe_large(loop):
    async def main():
        r, w = os.pipe()
        tr, proto = await loop.connect_read_pipe(PipeProto, open(r, "rb", 0))
        data = payload(4 * 1024 * 1024)
        wr = open(w, "wb", buffering=0)

        def writer():
            wr.write(data)
            wr.close()

        fut = loop.run_in_executor(None, writer)
        assert await proto.lost is None
        await fut
        assert bytes(proto.data) == data

    run(loop, main())


def test_read_pipe_bulk_then_small_reads(loop):
    # Bulk bursts (reads of tens of KiB) alternating with small writes the
    # reader sees one at a time: every chunk is bytes of at most asyncio's
    # max_size, nothing is lost, repeated or reordered.
    async def main():
        r, w = os.pipe()
        os.set_blocking(w, False)
        sizes = []

        class Sizes(PipeProto):
            def data_received(self, data):
                sizes.append(len(data))
                super().data_received(data)

        tr, proto = await loop.connect_read_pipe(Sizes, open(r, "rb", 0))
        expected = bytearray()
        for i in range(6):
            burst = payload(300 * 1024 + i, seed=i)
            small = b"<%d>" % i
            for piece in (burst, small):
                expected += piece
                view = memoryview(piece)
                while view:
                    try:
                        n = os.write(w, view)
                    except BlockingIOError:
                        n = 0
                    view = view[n:]
                    # Let the loop read (a full pipe would block the write).
                    await asyncio.sleep(0)
                await proto.wait_for_bytes(len(expected))
        os.close(w)
        assert await proto.lost is None
        assert bytes(proto.data) == bytes(expected)
        assert max(sizes) <= 256 * 1024 and min(sizes) > 0
        assert any(n >= 16 * 1024 for n in sizes) and any(n < 8 for n in sizes)

    run(loop, main())


# ----------------------------------------------------------------------
# Writing


def test_write_pipe_basic(loop):
    async def main():
        r, w = os.pipe()
        os.set_blocking(r, False)
        pipe = open(w, "wb", buffering=0)
        tr, proto = await loop.connect_write_pipe(PipeProto, pipe)
        assert isinstance(tr, asyncio.WriteTransport)
        assert tr.get_extra_info("pipe") is pipe
        assert tr.can_write_eof()
        assert tr.get_write_buffer_size() == 0
        assert tr.get_write_buffer_limits() == (HIGH // 4, HIGH)
        assert "fd=" in repr(tr)
        tr.write(b"abc")
        tr.write(bytearray(b"def"))
        tr.write(memoryview(b"ghi"))
        tr.writelines([b"jk", b"l"])
        tr.write(b"")
        assert drain_fd(r) == b"abcdefghijkl"
        tr.close()
        assert tr.is_closing()
        assert await proto.lost is None
        assert proto.events == ["made", "lost"]
        assert pipe.closed
        assert fd_is_free(w)
        assert os.read(r, 10) == b""  # EOF: the write end is gone
        os.close(r)

    run(loop, main())


def test_write_pipe_bad_data(loop):
    async def main():
        r, w = os.pipe()
        tr, proto = await loop.connect_write_pipe(PipeProto, open(w, "wb", 0))
        # asyncio asserts; fastloop raises TypeError
        with pytest.raises((TypeError, AssertionError)):
            tr.write("text")
        with pytest.raises((TypeError, AssertionError)):
            tr.write(None)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=-1)
        tr.close()
        await proto.lost
        os.close(r)

    run(loop, main())


def test_write_pipe_flow_control_and_drain(loop):
    async def main():
        r, w = os.pipe()
        os.set_blocking(r, False)
        tr, proto = await loop.connect_write_pipe(PipeProto, open(w, "wb", 0))
        tr.set_write_buffer_limits(high=128 * 1024)
        assert tr.get_write_buffer_limits() == (32 * 1024, 128 * 1024)
        data = payload(1024 * 1024)
        tr.write(data)  # the pipe takes 64 KiB at most; the rest queues
        assert tr.get_write_buffer_size() > 128 * 1024
        assert proto.paused == 1
        tr.write(b"tail")  # queued behind, no second pause
        assert proto.paused == 1
        got = bytearray()
        while len(got) < len(data) + 4:
            got += drain_fd(r)
            await asyncio.sleep(0)
        assert bytes(got) == data + b"tail"
        await spin()
        assert proto.resumed == 1
        assert tr.get_write_buffer_size() == 0
        tr.close()
        assert await proto.lost is None
        os.close(r)

    run(loop, main())


def test_write_pipe_set_limits_pauses(loop):
    async def main():
        r, w = os.pipe()
        tr, proto = await loop.connect_write_pipe(PipeProto, open(w, "wb", 0))
        tr.write(payload(200 * 1024))
        size = tr.get_write_buffer_size()
        assert size > 0
        assert proto.paused == 1  # default high water: 64 KiB
        tr.set_write_buffer_limits(high=size + 1)
        tr.set_write_buffer_limits(high=0)
        assert proto.paused == 1  # already paused
        tr.abort()
        assert tr.get_write_buffer_size() == 0
        assert await proto.lost is None
        os.close(r)

    run(loop, main())


def test_write_eof_drains_then_closes(loop):
    async def main():
        r, w = os.pipe()
        os.set_blocking(r, False)
        tr, proto = await loop.connect_write_pipe(PipeProto, open(w, "wb", 0))
        data = payload(300 * 1024)
        tr.write(data)
        tr.write_eof()
        assert tr.is_closing()
        tr.write_eof()  # no-op
        tr.write(b"dropped")  # asyncio drops writes after write_eof
        got = bytearray()
        while not proto.lost.done():
            got += drain_fd(r)
            await asyncio.sleep(0)
        got += drain_fd(r)
        assert bytes(got) == data
        assert await proto.lost is None
        assert fd_is_free(w)
        assert os.read(r, 1) == b""
        os.close(r)

    run(loop, main())


def test_write_pipe_abort_drops_buffer(loop):
    async def main():
        r, w = os.pipe()
        tr, proto = await loop.connect_write_pipe(PipeProto, open(w, "wb", 0))
        tr.write(payload(300 * 1024))
        assert tr.get_write_buffer_size() > 0
        tr.close()  # would drain first...
        tr.abort()  # ...but abort drops the rest
        assert tr.get_write_buffer_size() == 0
        assert await proto.lost is None
        await spin()
        assert proto.events.count("lost") == 1
        assert fd_is_free(w)
        os.close(r)

    run(loop, main())


def test_write_pipe_reader_closed_idle(loop):
    """The reader goes away with nothing queued: connection_lost(None)."""

    async def main():
        r, w = os.pipe()
        tr, proto = await loop.connect_write_pipe(PipeProto, open(w, "wb", 0))
        tr.write(b"abc")
        os.close(r)
        assert await asyncio.wait_for(proto.lost, 5) is None
        assert tr.is_closing()
        assert fd_is_free(w)

    run(loop, main())


def test_write_pipe_reader_closed_with_pending_data(loop):
    """The reader goes away while data is queued: BrokenPipeError."""

    async def main():
        r, w = os.pipe()
        tr, proto = await loop.connect_write_pipe(PipeProto, open(w, "wb", 0))
        tr.write(payload(300 * 1024))
        assert tr.get_write_buffer_size() > 0
        os.close(r)
        exc = await asyncio.wait_for(proto.lost, 5)
        assert isinstance(exc, BrokenPipeError)
        assert tr.get_write_buffer_size() == 0
        assert fd_is_free(w)
        # writes after the loss are counted and dropped
        for _ in range(3):
            tr.write(b"x")

    run(loop, main())


# ----------------------------------------------------------------------
# Both ends in the loop


def test_pipe_pairs_large_both_ways(loop):
    """10 MB each way through two pipe pairs, both ends in the loop."""
    size = 10 * 1024 * 1024

    async def one_way(data):
        r, w = os.pipe()
        rtr, rproto = await loop.connect_read_pipe(PipeProto, open(r, "rb", 0))
        wtr, wproto = await loop.connect_write_pipe(PipeProto, open(w, "wb", 0))
        view = memoryview(data)
        for off in range(0, len(data), 256 * 1024):
            wtr.write(view[off:off + 256 * 1024])
            if wtr.get_write_buffer_size() > HIGH:
                # wait for resume_writing (the reader drains the pipe)
                while wtr.get_write_buffer_size() > HIGH // 4:
                    await asyncio.sleep(0)
        wtr.close()
        assert await wproto.lost is None
        assert await rproto.lost is None
        assert rproto.events == ["made", "data", "eof", "lost"]
        assert wproto.paused >= 1 and wproto.resumed == wproto.paused
        return bytes(rproto.data), (r, w)

    async def main():
        a = payload(size, seed=1)
        b = payload(size, seed=2)
        (got_a, fds_a), (got_b, fds_b) = await asyncio.gather(one_way(a), one_way(b))
        assert got_a == a
        assert got_b == b
        for fd in fds_a + fds_b:
            assert fd_is_free(fd)

    run(loop, main(), timeout=60)


def test_write_pipe_close_reader_transport(loop):
    """Both ends are transports; the reader closes first."""

    async def main():
        r, w = os.pipe()
        rtr, rproto = await loop.connect_read_pipe(PipeProto, open(r, "rb", 0))
        wtr, wproto = await loop.connect_write_pipe(PipeProto, open(w, "wb", 0))
        wtr.write(b"hello")
        await rproto.wait_for_bytes(5)
        rtr.close()
        assert await rproto.lost is None
        assert await asyncio.wait_for(wproto.lost, 5) is None
        assert fd_is_free(r) and fd_is_free(w)

    run(loop, main())


# ----------------------------------------------------------------------
# Sockets and character devices


def test_socketpair_as_pipes(loop):
    async def main():
        a, b = socket.socketpair()
        rtr, rproto = await loop.connect_read_pipe(PipeProto, a)
        wtr, wproto = await loop.connect_write_pipe(PipeProto, b)
        assert rtr.get_extra_info("pipe") is a
        data = payload(512 * 1024)
        wtr.write(data)
        wtr.write_eof()
        assert await wproto.lost is None
        assert await rproto.lost is None
        assert bytes(rproto.data) == data
        assert a.fileno() == -1 and b.fileno() == -1  # closed by the transports

    run(loop, main())


def test_pty_read_until_eio(loop):
    """A PTY master reads what the slave writes; when the slave closes,
    read() fails with EIO, which ends the transport quietly."""

    async def main():
        errors = record_errors(loop)
        master, slave = os.openpty()
        tty.setraw(slave)
        mfile = open(master, "rb", buffering=0)
        tr, proto = await loop.connect_read_pipe(PipeProto, mfile)
        assert stat.S_ISCHR(os.fstat(master).st_mode)
        os.write(slave, b"from the slave")
        await proto.wait_for_bytes(14)
        assert bytes(proto.data) == b"from the slave"
        os.close(slave)
        exc = await asyncio.wait_for(proto.lost, 5)
        # Linux: EIO once the last slave fd is closed
        assert exc is None or (isinstance(exc, OSError) and exc.errno == errno.EIO)
        assert errors == []
        assert mfile.closed
        assert fd_is_free(master)

    run(loop, main())


def test_pty_write(loop):
    async def main():
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(slave, False)
        tr, proto = await loop.connect_write_pipe(PipeProto, open(master, "wb", 0))
        tr.write(b"to the slave")
        got = b""
        for _ in range(100):
            try:
                got += os.read(slave, 100)
            except BlockingIOError:
                pass
            if len(got) >= 12:
                break
            await asyncio.sleep(0.01)
        assert got == b"to the slave"
        tr.close()
        assert await proto.lost is None
        assert fd_is_free(master)
        os.close(slave)

    run(loop, main())


# ----------------------------------------------------------------------
# Bad input


def test_regular_file_rejected(loop):
    async def main():
        with tempfile.TemporaryFile() as f:
            with pytest.raises(ValueError):
                await loop.connect_read_pipe(PipeProto, f)
            with pytest.raises(ValueError):
                await loop.connect_write_pipe(PipeProto, f)
            # the caller still owns it
            os.fstat(f.fileno())
            assert not f.closed

    run(loop, main())


# asyncio's half-made transports fail in __del__ (no _closing attribute):
# noise of the reference loop, not of the test.
asyncio_del_noise = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"
)


@asyncio_del_noise
@pytest.mark.parametrize("bad", [None, 42, "pipe", object()])
def test_not_a_file_object(loop, bad):
    async def main():
        with pytest.raises((AttributeError, TypeError, ValueError)):
            await loop.connect_read_pipe(PipeProto, bad)
        with pytest.raises((AttributeError, TypeError, ValueError)):
            await loop.connect_write_pipe(PipeProto, bad)

    run(loop, main())


@asyncio_del_noise
def test_closed_file_object(loop, loop_kind):
    async def main():
        r, w = os.pipe()
        f = open(r, "rb", 0)
        f.close()
        with pytest.raises(ValueError):  # I/O operation on closed file
            await loop.connect_read_pipe(PipeProto, f)
        os.close(w)
        if loop_kind == "fastloop":
            # (asyncio raises too, then its half-made transport fails in
            # __del__)
            s1, s2 = socket.socketpair()
            s1.close()
            with pytest.raises(OSError):  # fileno() == -1: EBADF
                await loop.connect_read_pipe(PipeProto, s1)
            s2.close()

    run(loop, main())


def test_connect_pipe_on_closed_loop(loop):
    r, w = os.pipe()
    loop.close()
    pipe = open(r, "rb", 0)
    coro = loop.connect_read_pipe(PipeProto, pipe)
    with pytest.raises(RuntimeError):
        coro.send(None)
    coro.close()
    pipe.close()
    os.close(w)


def test_core_constructor_bad_arguments(fastloop_only, loop):
    from fastloop import _core

    r, w = os.pipe()
    proto = asyncio.Protocol()
    try:
        for cls in (_core.ReadPipeTransport, _core.WritePipeTransport):
            with pytest.raises(TypeError):
                cls()
            with pytest.raises(TypeError):
                cls(object(), open(r, "rb", 0, closefd=False), proto)
            with pytest.raises(TypeError):
                cls(loop, open(r, "rb", 0, closefd=False), proto, None, [1])
            # methods on an uninitialised instance raise, never crash
            t = cls.__new__(cls)
            with pytest.raises(RuntimeError):
                t.close()
            repr(t)
            del t
        assert not fd_is_free(r)
    finally:
        os.close(r)
        os.close(w)


# ----------------------------------------------------------------------
# Ownership of the fd


def test_fd_closed_exactly_once(loop):
    """After connection_lost the number is free; a new fd that reuses it
    survives the old transport being closed again, the old pipe object
    being closed by the user and a collection (uvloop #763)."""

    async def main():
        r, w = os.pipe()
        pipe = open(r, "rb", 0)
        tr, proto = await loop.connect_read_pipe(PipeProto, pipe)
        os.close(w)
        await proto.lost
        assert fd_is_free(r)
        new = os.open(os.devnull, os.O_RDONLY)
        try:
            assert new == r  # lowest free number
            tr.close()
            pipe.close()
            del tr, pipe
            gc.collect()
            await spin()
            os.fstat(new)  # still open
        finally:
            os.close(new)

        r, w = os.pipe()
        pipe = open(w, "wb", 0)
        tr, proto = await loop.connect_write_pipe(PipeProto, pipe)
        tr.close()
        await proto.lost
        assert fd_is_free(w)
        new = os.open(os.devnull, os.O_WRONLY)
        try:
            tr.close()
            pipe.close()
            del tr, pipe
            gc.collect()
            await spin()
            os.fstat(new)
        finally:
            os.close(new)
            os.close(r)

    run(loop, main())


def test_user_closes_pipe_object_first(loop):
    """The user closes the file object behind the transport's back, then
    the transport: no error, no second close."""

    async def main():
        errors = record_errors(loop)
        r, w = os.pipe()
        pipe = open(r, "rb", 0)
        tr, proto = await loop.connect_read_pipe(PipeProto, pipe)
        tr.pause_reading()
        pipe.close()
        tr.close()
        assert await proto.lost is None
        assert errors == []
        os.close(w)

    run(loop, main())


def test_unclosed_transport_warns_and_closes(loop):
    r, w = os.pipe()

    async def main():
        return await loop.connect_read_pipe(PipeProto, open(r, "rb", 0))

    tr, proto = run(loop, main())
    ref = weakref.ref(tr)
    loop.close()  # the loop lets go of the transport
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del tr, proto
        gc.collect()
    assert ref() is None
    assert any(
        issubclass(x.category, ResourceWarning) and "unclosed transport" in str(x.message)
        for x in caught
    ), caught
    assert fd_is_free(r)
    os.close(w)


def test_repr_and_forget_pipe_after_loop_close(loop):
    """repr() says 'open' once the loop is closed; `_pipe = None` makes the
    transport forget its pipe (asyncio's own tests do both)."""
    r, w = os.pipe()
    rpipe, wpipe = open(r, "rb", 0), open(w, "wb", 0)

    async def main():
        rt, _ = await loop.connect_read_pipe(PipeProto, rpipe)
        wt, _ = await loop.connect_write_pipe(PipeProto, wpipe)
        return rt, wt

    rt, wt = run(loop, main())
    loop.close()
    assert "open" in repr(rt)
    assert "open" in repr(wt)
    rpipe.close()
    wpipe.close()
    rt._pipe = None
    wt._pipe = None
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del rt, wt
        gc.collect()


def test_closed_transports_are_collected(loop):
    async def main():
        refs = []
        for _ in range(20):
            r, w = os.pipe()
            rtr, rp = await loop.connect_read_pipe(PipeProto, open(r, "rb", 0))
            wtr, wp = await loop.connect_write_pipe(PipeProto, open(w, "wb", 0))
            wtr.write(b"x")
            wtr.close()
            await rp.lost
            await wp.lost
            refs += [weakref.ref(rtr), weakref.ref(wtr)]
            del rtr, wtr, rp, wp
        await spin()
        gc.collect()
        assert all(ref() is None for ref in refs)

    run(loop, main())


def test_loop_methods_exist(loop):
    """Every method of asyncio.AbstractEventLoop is implemented."""
    import inspect

    for name, _ in inspect.getmembers(asyncio.AbstractEventLoop, inspect.isfunction):
        if name.startswith("__"):
            continue
        impl = getattr(type(loop), name)
        assert not impl.__qualname__.startswith("AbstractEventLoop."), name
