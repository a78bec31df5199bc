"""fastloop's native asyncio streams (src/streams.c).

A fastloop stream transport whose protocol is asyncio's own
StreamReaderProtocol moves the StreamReader and StreamWriter to C subclasses
(read(n), feed_data(), write(), drain() in C) and feeds received bytes
straight into the reader's buffer.  Every test here runs three ways: on
fastloop with native streams, on fastloop with them off
(``fastloop.native_streams(False)``: asyncio's Python over the same
transports) and on asyncio's SelectorEventLoop -- the last two prove the
expectations, the first must match them.
"""
import asyncio
import gc
import sys
import warnings

import pytest

import fastloop
from fastloop import _core
from conftest import make_loop, run
from nethelpers import HIGH, client_ctx, server_ctx, certs  # noqa: F401
from test_streams import line_echo

KINDS = ["native", "fastloop-py", "asyncio"]


@pytest.fixture(params=KINDS)
def sloop(request):
    kind = request.param
    prev = fastloop.native_streams(kind == "native")
    lp = make_loop("asyncio" if kind == "asyncio" else "fastloop")
    lp.kind = kind
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        if not lp.is_closed():
            lp.close()
        asyncio.set_event_loop(None)
        fastloop.native_streams(prev)


async def connect(limit=None, ssl=None, client_ssl=None):
    """A server and one client: (server, client reader, client writer,
    server-side reader, server-side writer)."""
    accepted = asyncio.get_running_loop().create_future()

    async def handler(r, w):
        accepted.set_result((r, w))

    kw = {} if limit is None else {"limit": limit}
    srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl, **kw)
    host, port = srv.sockets[0].getsockname()[:2]
    ckw = dict(kw)
    if client_ssl is not None:
        ckw.update(ssl=client_ssl, server_hostname="localhost")
    cr, cw = await asyncio.open_connection(host, port, **ckw)
    sr, sw = await asyncio.wait_for(accepted, 10)
    return srv, cr, cw, sr, sw


async def finish(srv, *writers):
    for w in writers:
        w.close()
    for w in writers:
        try:
            await asyncio.wait_for(w.wait_closed(), 10)
        except (ConnectionError, OSError):
            pass
    srv.close()
    await asyncio.wait_for(srv.wait_closed(), 10)


def fill_write_buffer(writer):
    """Writes until the transport's buffer is past the high-water mark."""
    while writer.transport.get_write_buffer_size() <= HIGH:
        writer.write(b"z" * 65536)


async def wait_until(pred, timeout=10.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


# ---------------------------------------------------------------- adoption


def test_adoption(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        for r in (cr, sr):
            assert isinstance(r, asyncio.StreamReader)
        for w in (cw, sw):
            assert isinstance(w, asyncio.StreamWriter)
        if sloop.kind == "native":
            assert type(sr) is _core.StreamReader
            assert type(cr) is _core.StreamReader
            # The writer of a server connection is adopted: from the
            # protocol, which keeps it on 3.9-3.12, and on 3.13 from the
            # arguments of the handler coroutine.
            assert type(sw) is _core.StreamWriter
            # open_connection() makes its writer after the transport:
            # asyncio's class until its first write().
            assert type(cw) is asyncio.StreamWriter
        else:
            assert type(sr) is type(cr) is asyncio.StreamReader
            assert type(sw) is type(cw) is asyncio.StreamWriter
        assert "StreamReader" in repr(sr)
        coros = [sr.read(1), sr.readexactly(1), sr.readline()]
        for coro in coros:
            native = type(coro) is _core.StreamOp
            assert native == (sloop.kind == "native")
            coro.close()
        await finish(srv, cw, sw)

    run(sloop, main())


def test_client_writer_adopted_at_its_first_write(sloop):
    """open_connection()'s writer is made after the connection; the
    transport adopts it when asyncio's StreamWriter.write() calls it."""
    async def main():
        srv, cr, cw, sr, sw = await connect()
        native = sloop.kind == "native"
        assert type(cw) is asyncio.StreamWriter
        cw.write(b"one")
        assert type(cw) is (_core.StreamWriter if native else asyncio.StreamWriter)
        await cw.drain()
        assert await sr.readexactly(3) == b"one"
        cw.writelines([b"tw", b"o"])
        cw.write(bytearray(b"three"))
        await cw.drain()
        assert await sr.readexactly(8) == b"twothree"
        sw.write(b"back")
        await sw.drain()
        assert await cr.readexactly(4) == b"back"
        await finish(srv, cw, sw)

    run(sloop, main())


def test_client_writer_adopted_at_its_first_writelines(sloop):
    """Clients that only use writelines() (redis-py does) are adopted too."""
    async def main():
        srv, cr, cw, sr, sw = await connect()
        cw.writelines([b"a", bytearray(b"bc"), memoryview(b"def")])
        native = sloop.kind == "native"
        assert type(cw) is (_core.StreamWriter if native else asyncio.StreamWriter)
        await cw.drain()
        assert await sr.readexactly(6) == b"abcdef"
        await finish(srv, cw, sw)

    run(sloop, main())


def test_client_writer_not_adopted_when_not_asyncio_s():
    """Writes that do not come from asyncio's StreamWriter.write() on an
    exact StreamWriter over the transport's protocol adopt nothing, and
    after two such writes the transport stops looking."""
    class Writer(asyncio.StreamWriter):
        pass

    async def main():
        loop = asyncio.get_running_loop()
        srv, cr, cw, sr, sw = await connect()
        tr = cw.transport
        sub = Writer(tr, cw._protocol, cr, loop)
        sub.write(b"a")
        assert type(sub) is Writer
        # Another protocol's writer over this transport: not adopted.
        other = asyncio.StreamWriter(tr, asyncio.StreamReaderProtocol(
            asyncio.StreamReader()), None, loop)
        other.write(b"b")
        assert type(other) is asyncio.StreamWriter
        # The probes are used up: the real writer stays asyncio's, and
        # works.
        cw.write(b"c")
        assert type(cw) is asyncio.StreamWriter
        await cw.drain()
        assert await sr.readexactly(3) == b"abc"
        await finish(srv, cw, sw)

        # A connection written through the transport directly first.
        got = []

        async def handler(r, w):
            got.append(await r.read())
            w.close()

        srv2 = await asyncio.start_server(handler, "127.0.0.1", 0)
        cr2, cw2 = await asyncio.open_connection(*srv2.sockets[0].getsockname())
        cw2.transport.write(b"x")
        cw2.transport.write(b"y")
        cw2.write(b"z")
        assert type(cw2) is asyncio.StreamWriter
        cw2.write_eof()
        assert await cr2.read() == b""
        assert got == [b"xyz"]
        await finish(srv2, cw2)

    fastloop.run(main())


def test_client_writer_not_adopted_when_write_is_patched(monkeypatch):
    calls = []
    orig = asyncio.StreamWriter.write

    def write(self, data):
        calls.append(bytes(data))
        return orig(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", write)

    async def main():
        srv, cr, cw, sr, sw = await connect()
        cw.write(b"p")
        cw.write(b"q")
        assert type(cw) is asyncio.StreamWriter
        assert await sr.readexactly(2) == b"pq"
        assert calls == [b"p", b"q"]
        await finish(srv, cw, sw)

    fastloop.run(main())


def test_server_writer_with_a_plain_callback(sloop):
    """client_connected_cb as a plain function: 3.9-3.12's protocol keeps
    the writer, so it is adopted; 3.13's does not and it stays asyncio's.
    Either way it works."""
    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()
        srv = await asyncio.start_server(
            lambda r, w: got.set_result((r, w)), "127.0.0.1", 0)
        cr, cw = await asyncio.open_connection(*srv.sockets[0].getsockname())
        sr, sw = await got
        if sloop.kind == "native" and sys.version_info < (3, 13):
            assert type(sw) is _core.StreamWriter
        else:
            assert type(sw) is asyncio.StreamWriter
        sw.write(b"ping")
        await sw.drain()
        assert await cr.readexactly(4) == b"ping"
        await finish(srv, cw, sw)

    run(sloop, main())


def test_no_adoption_of_subclasses():
    class Reader(asyncio.StreamReader):
        pass

    class Protocol(asyncio.StreamReaderProtocol):
        pass

    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()

        def cb(r, w):
            got.set_result((r, w))

        srv = await loop.create_server(
            lambda: Protocol(asyncio.StreamReader(), cb), "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()
        reader = Reader()
        proto = asyncio.StreamReaderProtocol(reader)
        tr, _ = await loop.create_connection(lambda: proto, *addr)
        sr, sw = await got
        assert type(sr) is asyncio.StreamReader
        assert type(sw) is asyncio.StreamWriter
        assert type(reader) is Reader
        sw.write(b"abc")
        assert await reader.read(10) == b"abc"
        tr.close()
        sw.close()
        srv.close()
        await srv.wait_closed()

    fastloop.run(main())


def test_no_adoption_when_asyncio_is_patched(monkeypatch):
    calls = []
    orig = asyncio.StreamReader.read

    async def read(self, n=-1):
        calls.append(n)
        return await orig(self, n)

    monkeypatch.setattr(asyncio.StreamReader, "read", read)

    async def main():
        srv, cr, cw, sr, sw = await connect()
        assert type(sr) is asyncio.StreamReader
        cw.write(b"xyz")
        assert await sr.read(10) == b"xyz"
        assert calls == [10]
        await finish(srv, cw, sw)

    fastloop.run(main())


def test_native_streams_switch():
    prev = fastloop.native_streams()
    try:
        assert fastloop.native_streams(False) is prev
        assert fastloop.native_streams() is False
        assert fastloop.native_streams(True) is False
        assert fastloop.native_streams() is True
    finally:
        fastloop.native_streams(prev)
    with pytest.raises(TypeError):
        _core._native_streams(1, 2)


# ------------------------------------------------------------------- read


def test_read_semantics(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        cw.write(b"hello world")
        await wait_until(lambda: len(sr._buffer) == 11)
        assert await sr.read(5) == b"hello"
        assert await sr.read(0) == b""
        assert await sr.read(100) == b" world"
        cw.write(b"abcdef")
        assert await sr.read(n=2) == b"ab"
        assert await sr.read(True) == b"c"  # asyncio's read() handles it
        cw.write(b"tail")
        cw.write_eof()
        assert await sr.read(-1) == b"deftail"
        assert sr.at_eof()
        assert await sr.read(10) == b""
        assert await sr.read() == b""
        with pytest.raises(TypeError):
            await sr.read("5")
        await finish(srv, cw, sw)

    run(sloop, main())


def test_read_waits_then_wakes_on_data_and_eof(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        t = asyncio.ensure_future(sr.read(4))
        await asyncio.sleep(0.01)
        assert not t.done()
        assert sr._waiter is not None
        cw.write(b"123456")
        assert await t == b"1234"
        assert sr._waiter is None
        assert await sr.read(4) == b"56"
        t = asyncio.ensure_future(sr.read(4))
        await asyncio.sleep(0.01)
        cw.write_eof()
        assert await t == b""
        await finish(srv, cw, sw)

    run(sloop, main())


def test_read_raises_the_stream_exception(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        sr.set_exception(ValueError("boom"))
        with pytest.raises(ValueError, match="boom"):
            await sr.read(5)
        with pytest.raises(ValueError, match="boom"):
            await sw.drain()
        # set_exception() wakes a waiting read with it.
        t = asyncio.ensure_future(cr.read(5))
        await asyncio.sleep(0.01)
        cr.set_exception(KeyError("k"))
        with pytest.raises(KeyError):
            await t
        await finish(srv, cw, sw)

    run(sloop, main())


def test_concurrent_read_raises(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        t = asyncio.ensure_future(sr.read(5))
        await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError, match=r"read\(\) called while "
                           "another coroutine is already waiting"):
            await sr.read(5)
        cw.write(b"data!")
        assert await t == b"data!"
        await finish(srv, cw, sw)

    run(sloop, main())


def test_read_cancelled_and_timed_out(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        t = asyncio.ensure_future(sr.read(5))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert sr._waiter is None
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sr.read(5), 0.02)
        assert sr._waiter is None
        cw.write(b"after")
        assert await sr.read(5) == b"after"
        await finish(srv, cw, sw)

    run(sloop, main())


def test_read_is_a_coroutine(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        coro = sr.read(5)
        assert asyncio.iscoroutine(coro)
        assert coro.__qualname__ == "StreamReader.read"
        task = asyncio.get_running_loop().create_task(coro)
        await asyncio.sleep(0.01)
        assert "StreamReader.read" in repr(task)
        cw.write(b"12345")
        assert await task == b"12345"
        await finish(srv, cw, sw)

    run(sloop, main())


def test_read_coroutine_protocol(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        # Waiting: send(None) yields the waiter future.
        coro = sr.read(5)
        fut = coro.send(None)
        assert isinstance(fut, asyncio.Future)
        assert sr._waiter is fut
        with pytest.raises(ValueError, match="thrown"):
            coro.throw(ValueError("thrown"))
        assert sr._waiter is None
        with pytest.raises(RuntimeError):
            coro.send(None)
        # close() of a waiting read runs its finally.
        coro = sr.read(5)
        coro.send(None)
        coro.close()
        assert sr._waiter is None
        coro.close()
        # An unstarted read: non-None send, throw, close.
        coro = sr.read(5)
        with pytest.raises(TypeError):
            coro.send(1)
        coro.close()
        coro = sr.read(5)
        with pytest.raises(KeyError):
            coro.throw(KeyError)
        with pytest.raises(RuntimeError):
            coro.send(None)
        # Data already there: the first send returns it.
        cw.write(b"abc")
        await wait_until(lambda: len(sr._buffer) == 3)
        coro = sr.read(5)
        with pytest.raises(StopIteration) as e:
            coro.send(None)
        assert e.value.value == b"abc"
        # The waiter's result arrives through send().
        coro = sr.read(5)
        fut = coro.send(None)
        cw.write(b"defgh")
        await wait_until(fut.done)
        with pytest.raises(StopIteration) as e:
            coro.send(None)
        assert e.value.value == b"defgh"
        await finish(srv, cw, sw)

    run(sloop, main())


def test_throw_into_a_finished_read(sloop):
    """throw() into a read coroutine that has finished (returned, raised,
    or ended by an earlier throw()) raises RuntimeError, as a coroutine
    does, instead of raising the exception thrown."""
    async def main():
        srv, cr, cw, sr, sw = await connect()
        cw.write(b"abc\ndef")
        await wait_until(lambda: len(sr._buffer) == 7)
        for coro in (sr.readline(), sr.read(1), sr.readexactly(1),
                     sr.readuntil(b"f")):
            with pytest.raises(StopIteration):
                coro.send(None)
            with pytest.raises(RuntimeError, match="cannot reuse"):
                coro.throw(KeyError)
            with pytest.raises(RuntimeError, match="cannot reuse"):
                coro.throw(GeneratorExit())
        coro = sr.read(5)
        with pytest.raises(KeyError):
            coro.throw(KeyError)
        with pytest.raises(RuntimeError, match="cannot reuse"):
            coro.throw(KeyError)
        cw.write(b"xy")
        cw.write_eof()
        await wait_until(lambda: sr._eof)
        coro = sr.readexactly(5)
        with pytest.raises(asyncio.IncompleteReadError):
            coro.send(None)
        with pytest.raises(RuntimeError, match="cannot reuse"):
            coro.throw(ValueError("v"))
        coro.close()
        await finish(srv, cw, sw)

    run(sloop, main())


def test_throw_of_a_bad_exception(sloop):
    """throw(42) into a read that has not started raises TypeError and
    leaves it usable; into a waiting read it ends the read (the TypeError
    is raised at its await) and clears the reader's waiter."""
    async def main():
        srv, cr, cw, sr, sw = await connect()
        cw.write(b"abc")
        await wait_until(lambda: len(sr._buffer) == 3)
        coro = sr.read(2)
        with pytest.raises(TypeError):
            coro.throw(42)
        with pytest.raises(TypeError), warnings.catch_warnings():
            # the (type, value) form is deprecated from 3.12
            warnings.simplefilter("ignore", DeprecationWarning)
            coro.throw(KeyError(), "value")
        with pytest.raises(StopIteration) as e:
            coro.send(None)
        assert e.value.value == b"ab"
        sr._buffer.clear()
        coro = sr.readexactly(5)
        coro.send(None)
        assert sr._waiter is not None
        with pytest.raises(TypeError):
            coro.throw(42)
        assert sr._waiter is None
        with pytest.raises(RuntimeError, match="cannot reuse"):
            coro.send(None)
        await finish(srv, cw, sw)

    run(sloop, main())


def test_waiting_read_collected_clears_waiter(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        coro = sr.read(5)
        coro.send(None)
        assert sr._waiter is not None
        del coro
        gc.collect()
        assert sr._waiter is None
        cw.write(b"x")
        assert await sr.read(5) == b"x"
        await finish(srv, cw, sw)

    run(sloop, main())


# ---------------------------------------------------- readexactly/readline


def test_readexactly(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect(limit=1024)
        cw.write(b"abc")
        t = asyncio.ensure_future(sr.readexactly(8))
        await asyncio.sleep(0.01)
        assert not t.done()
        cw.write(b"def")
        await asyncio.sleep(0.01)
        assert not t.done()
        cw.write(b"ghij")
        assert await t == b"abcdefgh"
        assert await sr.readexactly(2) == b"ij"
        assert await sr.readexactly(0) == b""
        with pytest.raises(ValueError):
            await sr.readexactly(-1)
        # More than twice the limit: the paused transport is resumed.
        big = bytes(range(256)) * 40
        cw.write(big)
        assert await sr.readexactly(len(big)) == big
        with pytest.raises(RuntimeError, match=r"readexactly\(\) called"):
            t = asyncio.ensure_future(sr.readexactly(3))
            await asyncio.sleep(0.01)
            await sr.readexactly(3)
        cw.write(b"xyz")
        assert await t == b"xyz"
        cw.write(b"tail")
        cw.write_eof()
        with pytest.raises(asyncio.IncompleteReadError) as e:
            await sr.readexactly(10)
        assert e.value.partial == b"tail"
        assert e.value.expected == 10
        assert sr._buffer == bytearray()
        await finish(srv, cw, sw)

    run(sloop, main())


def test_readline(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect(limit=64)
        cw.write(b"one\ntwo\nthr")
        assert await sr.readline() == b"one\n"
        assert await sr.readline() == b"two\n"
        t = asyncio.ensure_future(sr.readline())
        await asyncio.sleep(0.01)
        assert not t.done()
        cw.write(b"ee")
        await asyncio.sleep(0.01)
        assert not t.done()
        with pytest.raises(RuntimeError, match=r"readuntil\(\) called"):
            await sr.readline()
        cw.write(b"\nfour\n")
        assert await t == b"three\n"
        assert await sr.readline() == b"four\n"
        # Over the limit with the newline found: the line is dropped.
        cw.write(b"x" * 100 + b"\nnext\n")
        await wait_until(lambda: b"next" in sr._buffer)
        with pytest.raises(ValueError, match="Separator is found") as e:
            await sr.readline()
        assert isinstance(e.value.__context__, asyncio.LimitOverrunError)
        assert await sr.readline() == b"next\n"
        # Over the limit without a newline: the buffer is cleared.
        cw.write(b"y" * 200)
        with pytest.raises(ValueError, match="Separator is not found"):
            while True:
                await sr.readline()
        cw.write(b"z\n")
        line = await sr.readline()
        assert line.endswith(b"z\n") and set(line[:-2]) <= {ord("y")}
        # At EOF: the partial line, then b"".
        cw.write(b"partial")
        cw.write_eof()
        assert await sr.readline() == b"partial"
        assert await sr.readline() == b""
        with pytest.raises(TypeError):
            await sr.readline(5)
        await finish(srv, cw, sw)

    run(sloop, main())


def test_readuntil(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect(limit=64)
        cw.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody")
        head = await sr.readuntil(b"\r\n\r\n")
        assert head == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        assert await sr.readexactly(4) == b"body"
        # The separator split across arrivals, and a wait in between.
        t = asyncio.ensure_future(sr.readuntil(b"<END>"))
        for piece in (b"abc<E", b"N", b"D>rest"):
            await asyncio.sleep(0.01)
            assert not t.done()
            cw.write(piece)
        assert await t == b"abc<END>"
        with pytest.raises(RuntimeError, match=r"readuntil\(\) called"):
            t = asyncio.ensure_future(sr.readuntil(b"!"))
            await asyncio.sleep(0.01)
            await sr.readuntil(b"?")
        cw.write(b"!")
        assert await t == b"rest!"
        # Default separator, and keyword / other types through asyncio.
        cw.write(b"l1\nl2\nl3\n")
        assert await sr.readuntil() == b"l1\n"
        assert await sr.readuntil(separator=b"\n") == b"l2\n"
        assert await sr.readuntil(bytearray(b"\n")) == b"l3\n"
        with pytest.raises(ValueError):
            await sr.readuntil(b"")
        # Over the limit, separator found: LimitOverrunError, data kept.
        cw.write(b"x" * 100 + b"|tail|")
        await wait_until(lambda: b"tail|" in sr._buffer)
        with pytest.raises(asyncio.LimitOverrunError,
                           match="Separator is found") as e:
            await sr.readuntil(b"|")
        assert e.value.consumed == 100
        assert len(sr._buffer) == 106
        assert await sr.readexactly(101) == b"x" * 100 + b"|"
        assert await sr.readuntil(b"|") == b"tail|"
        # Over the limit, no separator: offset reported, data kept.
        cw.write(b"y" * 100)
        await wait_until(lambda: len(sr._buffer) == 100)
        with pytest.raises(asyncio.LimitOverrunError,
                           match="Separator is not found") as e:
            await sr.readuntil(b"zz")
        assert e.value.consumed == 99
        assert len(sr._buffer) == 100
        await sr.readexactly(100)
        # At EOF: IncompleteReadError with the rest, buffer cleared.
        cw.write(b"partial")
        cw.write_eof()
        with pytest.raises(asyncio.IncompleteReadError) as e:
            await sr.readuntil(b"#")
        assert e.value.partial == b"partial" and e.value.expected is None
        assert len(sr._buffer) == 0
        if sloop.kind == "native":
            coro = sr.readuntil(b"#")
            assert type(coro) is _core.StreamOp
            assert coro.__qualname__ == "StreamReader.readuntil"
            coro.close()
        await finish(srv, cw, sw)

    run(sloop, main())


def test_readuntil_cancelled_and_exception(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        cw.write(b"no sep")
        await wait_until(lambda: len(sr._buffer) == 6)
        t = asyncio.ensure_future(sr.readuntil(b"::"))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert sr._waiter is None
        cw.write(b":")
        await asyncio.sleep(0.01)
        t = asyncio.ensure_future(sr.readuntil(b"::"))
        await asyncio.sleep(0.01)
        sr.set_exception(ConnectionResetError("boom"))
        with pytest.raises(ConnectionResetError, match="boom"):
            await t
        with pytest.raises(ConnectionResetError, match="boom"):
            await sr.readuntil(b"::")
        await finish(srv, cw, sw)

    run(sloop, main())


def test_readline_cancelled_keeps_data(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        cw.write(b"no newline yet")
        await wait_until(lambda: len(sr._buffer) == 14)
        t = asyncio.ensure_future(sr.readline())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert sr._waiter is None
        cw.write(b"!\n")
        assert await sr.readline() == b"no newline yet!\n"
        names = set()
        for coro in (sr.readline(), sr.readexactly(1), sr.read(1)):
            names.add(coro.__qualname__)
            coro.close()
        assert names == {"StreamReader.readline", "StreamReader.readexactly",
                         "StreamReader.read"}
        await finish(srv, cw, sw)

    run(sloop, main())


def _long_line_reader(sloop):
    """A reader (native on the native run) with limit 4, paused, holding a
    10-byte line and b"rest"."""
    reader = asyncio.StreamReader(limit=4)
    reader.set_transport(_RecordingTransport())
    if sloop.kind == "native":
        reader.__class__ = _core.StreamReader
    reader.feed_data(b"a" * 10 + b"\nrest")
    return reader


def test_readline_overrun_error_in_its_handler_keeps_the_context(sloop):
    """readline() handles the LimitOverrunError of a long line in an
    except block: an error there (here resuming a transport that is gone)
    has the LimitOverrunError as its __context__."""
    async def main():
        reader = _long_line_reader(sloop)
        assert reader._paused
        reader._transport = None
        with pytest.raises(AttributeError) as e:
            await reader.readline()
        assert type(e.value.__context__) is asyncio.LimitOverrunError
        assert e.value.__context__.consumed == 10
        assert bytes(reader._buffer) == b"rest"
        assert not reader._paused

    run(sloop, main())


def test_readline_overrun_inside_an_except_block(sloop):
    """readline() past the limit run while an exception is being handled
    (an eager task started in an except block, a coroutine driven by
    hand): the ValueError's context is still the LimitOverrunError, and
    that one's is the exception being handled."""
    async def main():
        reader = _long_line_reader(sloop)
        try:
            raise KeyError("outer")
        except KeyError:
            coro = reader.readline()
            with pytest.raises(ValueError) as e:
                coro.send(None)
        assert type(e.value.__context__) is asyncio.LimitOverrunError
        assert type(e.value.__context__.__context__) is KeyError
        assert bytes(reader._buffer) == b"rest"

    run(sloop, main())


def test_line_protocol_many_lines(sloop):
    async def main():
        srv = await asyncio.start_server(line_echo, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*srv.sockets[0].getsockname())
        lines = [b"%d %s\n" % (i, b"x" * (i % 300)) for i in range(3000)]
        blob = b"".join(lines)

        async def send():
            for i in range(0, len(blob), 7777):
                w.write(blob[i:i + 7777])
                await w.drain()
            w.write_eof()

        sender = asyncio.ensure_future(send())
        got = []
        for _ in lines:
            got.append(await r.readline())
        await sender
        assert got == lines
        assert await r.readline() == b"bye\n"
        assert await r.readline() == b""
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(sloop, main(), timeout=60)


# -------------------------------------------------------------- feed_data


def test_feed_data_direct(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        sr.feed_data(b"ab")
        sr.feed_data(memoryview(b"cd"))
        sr.feed_data(bytearray(b"e"))
        sr.feed_data(b"")
        sr.feed_data([102, 103])  # bytearray.extend() takes it
        sr.feed_data(data=b"h")
        assert await sr.read(100) == b"abcdefgh"
        with pytest.raises(TypeError):
            sr.feed_data(5)
        sr.feed_eof()
        if sys.flags.optimize == 0:
            with pytest.raises(AssertionError):
                sr.feed_data(b"late")
        await finish(srv, cw, sw)

    run(sloop, main())


def test_feed_data_of_the_reader_s_own_buffer(sloop):
    """feed_data(reader._buffer) appends a copy of the buffer (asyncio's
    bytearray.extend()), small or large, instead of a BufferError."""
    async def main():
        srv, cr, cw, sr, sw = await connect()
        sr.feed_data(b"ab")
        sr.feed_data(sr._buffer)
        assert bytes(sr._buffer) == b"abab"
        assert await sr.read(3) == b"aba"
        big = b"x" * 100_000
        sr.feed_data(big)
        sr.feed_data(sr._buffer)
        assert await sr.readexactly(200_002) == b"b" + big + b"b" + big
        await finish(srv, cw, sw)

    run(sloop, main())


def test_flow_control_pauses_and_resumes_reading(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect(limit=1024)
        cw.write(b"x" * 65536)
        await wait_until(lambda: sr._paused)
        assert not sw.transport.is_reading()
        got = 0
        while got < 65536:
            got += len(await sr.read(4096))
        assert not sr._paused
        assert sw.transport.is_reading()
        await finish(srv, cw, sw)

    run(sloop, main())


# ------------------------------------------------------------ write/drain


def test_write_arguments(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        sw.write(b"a")
        sw.write(data=b"b")
        sw.write(bytearray(b"c"))
        sw.write(memoryview(b"d"))
        with pytest.raises(TypeError):
            sw.write("str")
        with pytest.raises(TypeError):
            sw.write()
        await sw.drain()
        got = b""
        while len(got) < 4:
            got += await cr.read(10)
        assert got == b"abcd"
        await finish(srv, cw, sw)

    run(sloop, main())


def test_drain_is_awaitable_and_a_coroutine(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        d = sw.drain()
        assert asyncio.iscoroutine(d)
        assert await d is None
        assert await asyncio.ensure_future(sw.drain()) is None
        with pytest.raises(TypeError):
            sw.drain(1)
        await finish(srv, cw, sw)

    run(sloop, main())


def test_drain_waits_under_back_pressure(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        fill_write_buffer(sw)
        sent = None
        d = asyncio.ensure_future(sw.drain())
        await asyncio.sleep(0.02)
        assert not d.done()
        sent = sw.transport.get_write_buffer_size()
        assert sent > HIGH
        total = 0
        while not d.done():
            total += len(await cr.read(1 << 20))
        assert await d is None
        await finish(srv, cw, sw)

    run(sloop, main())


def test_drain_after_close_and_after_reset(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        sw.write(b"bye")
        sw.close()
        outcome = []
        try:
            await sw.drain()
            outcome.append(None)
        except ConnectionResetError as e:
            outcome.append(type(e))
        # drain() after the connection is lost raises.
        await asyncio.sleep(0.05)
        with pytest.raises(ConnectionResetError):
            await sw.drain()
        cw.transport.abort()
        srv.close()
        await srv.wait_closed()
        return outcome

    out = run(sloop, main())
    # asyncio yields once and then asks the protocol: either outcome is
    # asyncio's, but the three ways must agree.
    assert out in ([None], [ConnectionResetError])
    test_drain_after_close_and_after_reset.outcomes[sloop.kind] = out


test_drain_after_close_and_after_reset.outcomes = {}


def test_drain_decides_when_awaited_not_when_called(sloop):
    """drain() is a coroutine: whether it waits or raises is decided when
    it first runs. A drain() made while nothing is buffered, started later
    (a task, asyncio.wait_for on 3.9-3.11, gather) after the writer has
    filled the buffer waits; one started after the connection was lost
    raises."""
    async def main():
        srv, cr, cw, sr, sw = await connect()
        d = asyncio.ensure_future(sw.drain())  # first step: next iteration
        fill_write_buffer(sw)
        await asyncio.sleep(0.02)
        assert not d.done()
        while not d.done():
            await cr.read(1 << 20)
        assert await d is None

        coro = sw.drain()
        sw.transport.abort()
        await wait_until(lambda: sr.at_eof())
        with pytest.raises(ConnectionResetError):
            await coro
        # made and dropped without being awaited: no warning, no waiter
        sw.drain().close()
        await finish(srv, cw, sw)

    run(sloop, main())


def test_drain_cancelled_while_waiting(sloop):
    async def main():
        srv, cr, cw, sr, sw = await connect()
        d = asyncio.ensure_future(sw.drain())
        fill_write_buffer(sw)
        await asyncio.sleep(0.02)
        d.cancel()
        with pytest.raises(asyncio.CancelledError):
            await d
        # the protocol holds no waiter of the cancelled drain
        waiters = getattr(sw._protocol, "_drain_waiters", None)
        if waiters is not None:
            assert len(waiters) == 0
        d2 = asyncio.ensure_future(sw.drain())
        while not d2.done():
            await cr.read(1 << 20)
        assert await d2 is None
        await finish(srv, cw, sw)

    run(sloop, main())


def test_drain_outcomes_agree():
    outs = test_drain_after_close_and_after_reset.outcomes
    if len(outs) < len(KINDS):
        pytest.skip("needs the three runs of the test before")
    assert len({tuple(map(str, v)) for v in outs.values()}) == 1, outs


# ------------------------------------------------------------ larger flows


@pytest.mark.parametrize("size", [1, 1000, 100_000, 3_000_000])
def test_echo(sloop, size):
    async def echo(reader, writer):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main():
        srv = await asyncio.start_server(echo, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*srv.sockets[0].getsockname())
        payload = bytes(range(256)) * (size // 256) + b"q" * (size % 256)

        async def send():
            for i in range(0, size, 40_000):
                w.write(payload[i:i + 40_000])
                await w.drain()
            w.write_eof()

        sender = asyncio.ensure_future(send())
        got = bytearray()
        while True:
            data = await r.read(70_000)
            if not data:
                break
            got += data
        await sender
        assert bytes(got) == payload
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(sloop, main(), timeout=60)


def test_many_connections(sloop):
    async def echo(reader, writer):
        data = await reader.readexactly(6)
        writer.write(data)
        await writer.drain()
        writer.close()

    async def client(addr, i):
        r, w = await asyncio.open_connection(*addr)
        w.write(b"%06d" % i)
        got = await r.read(6)
        w.close()
        await w.wait_closed()
        return got

    async def main():
        srv = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=500)
        addr = srv.sockets[0].getsockname()
        got = await asyncio.gather(*(client(addr, i) for i in range(200)))
        assert got == [b"%06d" % i for i in range(200)]
        srv.close()
        await srv.wait_closed()

    run(sloop, main(), timeout=60)


# ------------------------------------------------- the buffer's storage
# An emptied reader buffer keeps a small allocation and gives a large one to
# a pool that the next feed into an empty buffer takes from (src/bytebuf.c).


def test_mixed_sizes_over_many_connections(sloop):
    """Messages of 1 B to 300 KiB on 24 connections at once, five rounds:
    buffers take and give back storage of every size in every order, and
    every byte must still land in its own reader."""
    import random

    async def echo(reader, writer):
        while True:
            head = await reader.readexactly(4)
            n = int.from_bytes(head, "big")
            if n == 0:
                break
            body = bytearray()
            while len(body) < n:
                chunk = await reader.read(n - len(body))
                if not chunk:
                    raise AssertionError("early EOF")
                body += chunk
            writer.write(bytes(body))
            await writer.drain()
        writer.close()

    async def client(addr, seed):
        rnd = random.Random(seed)
        r, w = await asyncio.open_connection(*addr)
        for _ in range(5):
            n = rnd.choice([1, 700, 3000, 40_000, 100_000, 300_000])
            payload = rnd.randbytes(n) if hasattr(rnd, "randbytes") else \
                bytes(rnd.getrandbits(8) for _ in range(n))
            w.write(n.to_bytes(4, "big") + payload)
            await w.drain()
            got = await r.readexactly(n)
            assert got == payload
        w.write(b"\0\0\0\0")
        await w.drain()
        assert await r.read() == b""
        w.close()
        await w.wait_closed()

    async def main():
        srv = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=100)
        addr = srv.sockets[0].getsockname()
        await asyncio.gather(*(client(addr, i) for i in range(24)))
        srv.close()
        await srv.wait_closed()

    run(sloop, main(), timeout=120)


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("when", ["full", "empty"])
def test_buffer_exported_while_read_and_fed(sloop, when, warm):
    """A memoryview of reader._buffer blocks resizing: a read that would
    empty it and a feed that would grow it raise BufferError as asyncio's
    del and extend do (the feed's through the exception handler, closing
    the transport), and the data already there stays."""
    async def main():
        loop = asyncio.get_running_loop()
        errors = []
        loop.set_exception_handler(
            lambda lp, ctx: errors.append(type(ctx.get("exception"))))
        srv, cr, cw, sr, sw = await connect()
        if warm:
            # A large message first: on fastloop its storage (now pooled)
            # is what the next reads go straight into.
            cw.write(b"w" * 300_000)
            assert await sr.readexactly(300_000) == b"w" * 300_000
        if when == "full":
            cw.write(b"abc")
            await wait_until(lambda: len(sr._buffer) == 3)
        view = memoryview(sr._buffer)
        if when == "full":
            with pytest.raises(BufferError):
                await sr.read(10)
        cw.write(b"def")
        await wait_until(lambda: errors)
        assert errors == [BufferError]
        assert bytes(sr._buffer) == (b"abc" if when == "full" else b"")
        view.release()
        with pytest.raises(BufferError):
            await sr.read(10)  # connection_lost(exc) set the exception
        assert sw.transport.is_closing()
        for w in (cw, sw):
            w.close()
            try:
                await asyncio.wait_for(w.wait_closed(), 10)
            except (BufferError, ConnectionError):
                pass  # the server side's wait_closed() re-raises it
        srv.close()
        await srv.wait_closed()

    run(sloop, main())


def test_buffer_storage_pooled_then_freed_when_idle():
    """Fastloop only: after 100 KiB messages the storage of emptied
    buffers waits in the pool (stats()["stream_buffer_pool"]); a loop that
    then sleeps frees what stayed unused for a whole second."""
    prev = fastloop.native_streams(True)
    try:
        async def main():
            loop = asyncio.get_running_loop()
            srv, cr, cw, sr, sw = await connect()
            # The pool is the interpreter's: earlier tests may have left
            # some in it, which this loop's first sleep ages out.
            for _ in range(3):
                cw.write(b"x" * 100_000)
                got = 0
                while got < 100_000:
                    got += len(await sr.read(1 << 20))
            pooled = loop.stats()["stream_buffer_pool"]
            assert 100_000 <= pooled <= 32 * 1024 * 1024
            # Small messages keep their storage in the buffer itself.
            cw.write(b"y" * 100)
            assert await sr.read(1000) == b"y" * 100
            assert loop.stats()["stream_buffer_pool"] == pooled
            await finish(srv, cw, sw)
            deadline = loop.time() + 10
            while loop.stats()["stream_buffer_pool"] and \
                    loop.time() < deadline:
                await asyncio.sleep(0.25)
            assert loop.stats()["stream_buffer_pool"] == 0

        fastloop.run(main())
    finally:
        fastloop.native_streams(prev)


def test_buffer_pool_freed_when_a_loop_closes():
    prev = fastloop.native_streams(True)
    try:
        async def main():
            srv, cr, cw, sr, sw = await connect()
            cw.write(b"z" * 200_000)
            assert await sr.readexactly(200_000) == b"z" * 200_000
            pooled = asyncio.get_running_loop().stats()["stream_buffer_pool"]
            await finish(srv, cw, sw)
            return pooled

        assert fastloop.run(main()) >= 200_000
        lp = fastloop.new_event_loop()
        try:
            assert lp.stats()["stream_buffer_pool"] == 0
        finally:
            lp.close()
    finally:
        fastloop.native_streams(prev)


def test_tls_streams(sloop, server_ctx, client_ctx):
    async def main():
        srv, cr, cw, sr, sw = await connect(ssl=server_ctx,
                                            client_ssl=client_ctx)
        # Over TLS the readers get the C read paths (asyncio's SSLProtocol
        # feeds them through the protocol); the writers stay asyncio's.
        native = sloop.kind == "native"
        for r in (sr, cr):
            assert (type(r) is _core.StreamReader) == native
        big = bytes(range(256)) * 1200  # past the 64 KiB of a direct read
        for _ in range(3):
            cw.write(big)
            assert await sr.readexactly(len(big)) == big
        for i in range(20):
            cw.write(b"ping %d" % i)
            await cw.drain()
            got = b""
            while len(got) < len(b"ping %d" % i):
                got += await sr.read(100)
            assert got == b"ping %d" % i
            sw.write(got.upper())
            await sw.drain()
            assert await cr.readexactly(len(got)) == got.upper()
        await finish(srv, cw, sw)

    run(sloop, main())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks: 3.12+")
def test_eager_task_factory_handler(sloop):
    async def echo(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    async def main():
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        srv = await asyncio.start_server(echo, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*srv.sockets[0].getsockname())
        w.write(b"eager")
        assert await r.read(100) == b"eager"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    run(sloop, main())


# ------------------------------------------------- differential, randomized


class _RecordingTransport:
    """What a StreamReader asks of its transport, recorded."""

    def __init__(self):
        self.calls = []

    def pause_reading(self):
        self.calls.append("pause")

    def resume_reading(self):
        self.calls.append("resume")


def _outcome(task):
    if task.cancelled():
        return ("cancelled",)
    exc = task.exception()
    if exc is not None:
        return ("raised", type(exc).__name__, str(exc),
                getattr(exc, "partial", None), getattr(exc, "expected", None),
                type(exc.__context__).__name__)
    return ("ok", task.result())


def _state(reader):
    return (bytes(reader._buffer), reader._eof, reader._paused,
            reader._waiter is None, reader._transport.calls[:])


async def _python_and_native(limit, script, ops):
    """script(reader, ops) on asyncio's StreamReader, then on the native
    one; the two results."""
    results = []
    for native in (False, True):
        reader = asyncio.StreamReader(limit=limit)
        reader.set_transport(_RecordingTransport())
        if native:
            reader.__class__ = _core.StreamReader
        results.append(await script(reader, ops))
    return results


async def _run_script(reader, ops):
    """Runs ops on reader; returns what each step observed."""
    seen = []
    pending = None
    for op in ops:
        kind = op[0]
        if kind == "feed":
            reader.feed_data(op[1])
        elif kind == "eof":
            reader.feed_eof()
        elif kind == "exc":
            reader.set_exception(ValueError("set"))
        elif kind in ("read", "exactly", "line", "readall", "until"):
            if pending is not None and not pending.done():
                seen.append(("busy",))
                continue
            if kind == "read":
                coro = reader.read(op[1])
            elif kind == "exactly":
                coro = reader.readexactly(op[1])
            elif kind == "line":
                coro = reader.readline()
            elif kind == "until":
                coro = reader.readuntil(*op[1:])
            else:
                coro = reader.read()
            pending = asyncio.ensure_future(coro)
        elif kind == "cancel":
            if pending is not None:
                pending.cancel()
        # Let the step settle: wake-ups run within a few iterations.
        for _ in range(3):
            await asyncio.sleep(0)
        if pending is not None and pending.done():
            seen.append(_outcome(pending))
            pending = None
        seen.append(_state(reader))
    if pending is not None:
        pending.cancel()
        await asyncio.sleep(0)
    return seen


SMALL = dict(feeds=[0, 1, 2, 5, 17, 100, 300], reads=[1, 3, 10, 1000],
             exact=[1, 4, 50, 200])
# Sizes past the 2 KiB a buffer keeps and the 64 KiB of a direct read:
# emptied buffers give their storage to the pool and take it back.
LARGE = dict(feeds=[0, 1, 100, 3000, 70_000, 200_000],
             reads=[1, 1000, 5000, 100_000, 300_000],
             exact=[1, 3000, 80_000, 250_000])


# readuntil() arguments: the default, one to three bytes, and types the C
# method hands to asyncio's (a bytearray; b'' raises ValueError).
SEPARATORS = [(), (b"\n",), (b"ab",), (b"a\nb",), (b"bb\n",), (b"aaa",),
              (bytearray(b"b\n"),), (b"",)]


def _random_ops(rng, sizes=SMALL):
    ops = []
    eof = False
    for _ in range(rng.randrange(5, 40)):
        r = rng.random()
        if r < 0.35 and not eof:
            n = rng.choice(sizes["feeds"])
            data = bytes(rng.choices(b"ab\n", k=n))
            ops.append(("feed", data))
        elif r < 0.5:
            ops.append(("read", rng.choice(sizes["reads"])))
        elif r < 0.65:
            ops.append(("exactly", rng.choice(sizes["exact"])))
        elif r < 0.72:
            ops.append(("line",))
        elif r < 0.8:
            ops.append(("until",) + rng.choice(SEPARATORS))
        elif r < 0.85:
            ops.append(("readall",))
        elif r < 0.93:
            ops.append(("cancel",))
        elif r < 0.97:
            ops.append(("eof",))
            eof = True
        else:
            ops.append(("exc",))
    return ops


@pytest.mark.parametrize("sizes", ["small", "large"])
def test_differential_random_scripts(sizes):
    """Random feed/read/readexactly/readline/readuntil/cancel/EOF scripts give the
    same results, exceptions, buffer and transport calls on a native
    reader as on asyncio's."""
    import random

    async def main():
        nonlocal pooled
        rng = random.Random(20261204)
        for i in range(300 if sizes == "small" else 120):
            ops = _random_ops(rng, SMALL if sizes == "small" else LARGE)
            limit = rng.choice([8, 64, 2 ** 16] if sizes == "small"
                               else [64, 2 ** 16, 2 ** 20])
            results = await _python_and_native(limit, _run_script, ops)
            assert results[0] == results[1], (i, ops)
            pooled = max(pooled, asyncio.get_running_loop().stats()[
                "stream_buffer_pool"])
        # The large scripts moved storage through the pool.
        assert pooled > 0 or sizes == "small"

    pooled = 0
    fastloop.run(main())


def _exc_outcome(exc):
    return ("raised", type(exc).__name__, str(exc),
            getattr(exc, "partial", None), getattr(exc, "expected", None),
            getattr(exc, "consumed", None), type(exc.__context__).__name__)


def _poke_state(reader):
    waiter = reader._waiter
    return (bytes(reader._buffer), reader._eof, reader._paused,
            None if waiter is None else (waiter.done(), waiter.cancelled()),
            reader._limit,
            None if reader._transport is None else reader._transport.calls[:],
            type(reader._exception).__name__)


_POKE_READS = [("read", 1), ("read", 3), ("read", 100), ("read",),
               ("read", 0), ("readexactly", 1), ("readexactly", 4),
               ("readexactly", 30), ("readexactly", 0), ("readline",),
               ("readuntil",), ("readuntil", b"ab"), ("readuntil", b"a\nb")]


async def _run_poke_script(reader, ops):
    """Like _run_script, with two coroutines driven by hand (send, throw,
    close) or by tasks, and the reader's attributes poked in between."""
    seen = []
    coros = {}
    for op in ops:
        kind, res = op[0], None
        try:
            if kind == "feed":
                reader.feed_data(op[1])
            elif kind == "feed_self":
                reader.feed_data(reader._buffer)
            elif kind == "eof":
                reader.feed_eof()
            elif kind == "exc":
                reader.set_exception(op[1]())
            elif kind == "start":
                old = coros.get(op[1])
                if old is not None and not isinstance(old, asyncio.Future):
                    old.close()
                coros[op[1]] = getattr(reader, op[2][0])(*op[2][1:])
            elif kind in ("task", "send", "close", "throw", "cancel"):
                coro = coros.get(op[1])
                if isinstance(coro, asyncio.Future):
                    if kind == "cancel":
                        coro.cancel()
                elif coro is not None:
                    if kind == "task":
                        coros[op[1]] = asyncio.ensure_future(coro)
                    elif kind == "send":
                        try:
                            res = ("yield", type(coro.send(None)).__name__)
                        except StopIteration as e:
                            res = ("returned", e.value)
                            del coros[op[1]]
                    elif kind == "close":
                        coro.close()
                        del coros[op[1]]
                    elif kind == "throw":
                        del coros[op[1]]
                        coro.throw(op[2]())
            elif kind == "set_waiter":
                if reader._waiter is not None and not reader._waiter.done():
                    reader._waiter.set_result(None)
            else:  # attribute pokes: ("attr", name, value)
                setattr(reader, op[1], op[2]() if callable(op[2]) else op[2])
        except BaseException as e:
            res = _exc_outcome(e)
        for _ in range(3):
            await asyncio.sleep(0)
        finished = []
        for key, coro in list(coros.items()):
            if isinstance(coro, asyncio.Future) and coro.done():
                del coros[key]
                if coro.cancelled():
                    finished.append((key, "cancelled"))
                elif coro.exception() is not None:
                    finished.append((key, _exc_outcome(coro.exception())))
                else:
                    finished.append((key, "ok", coro.result()))
        seen.append((kind, res, finished, _poke_state(reader)))
    for coro in coros.values():
        if isinstance(coro, asyncio.Future):
            coro.cancel()
        else:
            coro.close()
    await asyncio.sleep(0)
    return seen


def _random_poke_ops(rng):
    ops = []
    for _ in range(rng.randrange(3, 30)):
        r = rng.random()
        slot = rng.choice("AB")
        if r < 0.25:
            ops.append(("feed", bytes(rng.choices(
                b"ab\n", k=rng.choice([0, 1, 2, 5, 9, 17, 40])))))
        elif r < 0.28:
            ops.append(("feed_self",))
        elif r < 0.4:
            ops.append(("start", slot, rng.choice(_POKE_READS)))
        elif r < 0.5:
            ops.append(("task", slot))
        elif r < 0.6:
            ops.append(("send", slot))
        elif r < 0.63:
            ops.append(("close", slot))
        elif r < 0.66:
            ops.append(("throw", slot, rng.choice(
                [KeyError, asyncio.CancelledError, GeneratorExit])))
        elif r < 0.7:
            ops.append(("cancel", slot))
        elif r < 0.73:
            ops.append(("eof",))
        elif r < 0.76:
            ops.append(("exc", rng.choice([ValueError, ConnectionResetError])))
        elif r < 0.79:
            ops.append(("set_waiter",))
        else:
            ops.append(("attr",) + rng.choice([
                ("_waiter", None), ("_limit", 1), ("_limit", 8),
                ("_limit", 10 ** 30), ("_limit", 3.5), ("_eof", False),
                ("_paused", True), ("_paused", False), ("_exception", None),
                ("_transport", None),
                ("_buffer", lambda: bytearray(b"ab\nba")),
                ("_buffer", bytearray)]))
    return ops


def test_differential_random_scripts_driven_by_hand_and_poked():
    """Random scripts that drive read coroutines by hand (send, throw,
    close) as well as by tasks, and set the reader's _waiter, _buffer,
    _limit, _eof, _paused, _exception and _transport in between (as
    libraries do), give the same results, exceptions and states on a
    native reader as on asyncio's."""
    import logging
    import random

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda *args: None)
        rng = random.Random(20261205)
        for i in range(400):
            ops = _random_poke_ops(rng)
            limit = rng.choice([4, 8, 64])
            results = await _python_and_native(limit, _run_poke_script, ops)
            assert results[0] == results[1], (i, ops)

    logging.disable(logging.CRITICAL)
    try:
        fastloop.run(main())
    finally:
        logging.disable(logging.NOTSET)


def test_read_pipe_streams(sloop):
    """connect_read_pipe() with a StreamReaderProtocol: the reader is
    adopted (fastloop's C pipe transport) and reads as asyncio's."""
    import os

    async def main():
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        reader = asyncio.StreamReader(limit=64)
        rpipe = os.fdopen(rfd, "rb", 0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), rpipe)
        assert (type(reader) is _core.StreamReader) == (sloop.kind == "native")
        os.write(wfd, b"first line\nsecond")
        assert await reader.readline() == b"first line\n"
        assert await reader.readexactly(3) == b"sec"
        os.write(wfd, b"\n" + b"x" * 1000)
        assert await reader.readline() == b"ond\n"
        got = b""
        while len(got) < 1000:
            got += await reader.read(100)
        assert got == b"x" * 1000
        os.write(wfd, b"end")
        os.close(wfd)
        assert await reader.read() == b"end"
        assert reader.at_eof()
        transport.close()
        await asyncio.sleep(0)

    run(sloop, main())


def test_subprocess_streams(sloop):
    """asyncio.create_subprocess_exec() pipes: the stdout/stderr readers are
    adopted on fastloop and read as asyncio's."""
    script = ("import sys\n"
              "for i in range(500):\n"
              "    sys.stdout.write('line %d\\n' % i)\n"
              "sys.stdout.write('tail')\n"
              "sys.stderr.write('err\\n')\n")

    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        await asyncio.sleep(0)
        native = type(proc.stdout) is _core.StreamReader
        assert native == (sloop.kind == "native")
        lines = []
        async for line in proc.stdout:
            lines.append(line)
        assert lines[:2] == [b"line 0\n", b"line 1\n"]
        assert lines[-1] == b"tail" and len(lines) == 501
        assert await proc.stderr.readexactly(4) == b"err\n"
        assert await proc.wait() == 0

    run(sloop, main())
