"""asyncio streams (open_connection / start_server, open_unix_connection /
start_unix_server) on top of the loop's transports.

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture).  The streams module is asyncio's own; what is tested is that the
loop's transports and servers carry it: readline, readexactly, read to EOF,
drain() under flow control, many clients.
"""
import asyncio
import inspect
import socket

import pytest

from conftest import run
from nethelpers import HIGH, needs_ipv6, payload, record_errors

MB = 1024 * 1024


async def line_echo(reader, writer):
    """Echo lines until EOF, then answer b'bye\\n' and close."""
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
        writer.write(b"bye\n")
        await writer.drain()
    finally:
        writer.close()


async def start(loop, handler, **kw):
    srv = await asyncio.start_server(handler, "127.0.0.1", 0, **kw)
    return srv, srv.sockets[0].getsockname()


async def stop(srv):
    srv.close()
    await asyncio.wait_for(srv.wait_closed(), 10)


def test_readline_echo(loop):
    async def main():
        srv, addr = await start(loop, line_echo)
        reader, writer = await asyncio.open_connection(*addr)
        assert isinstance(writer.transport, asyncio.Transport)
        assert writer.get_extra_info("peername") == addr
        for i in range(50):
            writer.write(b"line %d\n" % i)
            await writer.drain()
            assert await reader.readline() == b"line %d\n" % i
        # A line sent in pieces comes back whole.
        for piece in (b"sp", b"lit ", b"line", b"\n"):
            writer.write(piece)
            await writer.drain()
        assert await reader.readline() == b"split line\n"
        assert writer.can_write_eof()
        writer.write_eof()
        assert await reader.readline() == b"bye\n"
        assert await reader.readline() == b""
        assert reader.at_eof()
        writer.close()
        await writer.wait_closed()
        await stop(srv)

    run(loop, main())


def test_readexactly_readuntil_read_to_eof(loop):
    blob = payload(3 * MB, seed=41)

    async def handler(reader, writer):
        writer.write(b"HEAD:1234|tail;")
        writer.write(blob)
        await writer.drain()
        writer.close()

    async def main():
        srv, addr = await start(loop, handler)
        reader, writer = await asyncio.open_connection(*addr)
        assert await reader.readexactly(5) == b"HEAD:"
        assert await reader.readuntil(b"|") == b"1234|"
        assert await reader.readuntil(b";") == b"tail;"
        rest = await reader.read()  # until EOF
        assert rest == blob
        assert await reader.read() == b""
        with pytest.raises(asyncio.IncompleteReadError) as ei:
            await reader.readexactly(1)
        assert ei.value.partial == b""
        writer.close()
        await writer.wait_closed()
        await stop(srv)

    run(loop, main())


def test_readexactly_incomplete(loop):
    async def handler(reader, writer):
        writer.write(b"short")
        writer.close()

    async def main():
        srv, addr = await start(loop, handler)
        reader, writer = await asyncio.open_connection(*addr)
        with pytest.raises(asyncio.IncompleteReadError) as ei:
            await reader.readexactly(100)
        assert ei.value.partial == b"short"
        assert ei.value.expected == 100
        writer.close()
        await writer.wait_closed()
        await stop(srv)

    run(loop, main())


def test_readline_limit(loop):
    async def handler(reader, writer):
        writer.write(b"x" * 200 + b"\nok\n")
        await writer.drain()
        writer.close()

    async def main():
        srv, addr = await start(loop, handler)
        reader, writer = await asyncio.open_connection(*addr, limit=64)
        with pytest.raises(ValueError):
            await reader.readline()
        writer.close()
        await writer.wait_closed()
        reader, writer = await asyncio.open_connection(*addr, limit=64)
        with pytest.raises(asyncio.LimitOverrunError):
            await reader.readuntil(b"\n")
        writer.close()
        await writer.wait_closed()
        await stop(srv)

    run(loop, main())


def test_drain_under_flow_control(loop):
    N = 16 * MB
    data = payload(N, seed=42)
    state = {}

    async def slow_reader(reader, writer):
        got = bytearray()
        # Don't read at first: the client's buffer must fill up.
        await state["client_blocked"]
        while True:
            chunk = await reader.read(256 * 1024)
            if not chunk:
                break
            got += chunk
        state["got"] = bytes(got)
        writer.close()

    async def main():
        state["client_blocked"] = loop.create_future()
        srv, addr = await start(loop, slow_reader)
        reader, writer = await asyncio.open_connection(*addr)
        tr = writer.transport
        blocked = 0
        for off in range(0, N, MB):
            writer.write(data[off : off + MB])
            over = tr.get_write_buffer_size() > HIGH
            drain = loop.create_task(writer.drain())
            await asyncio.sleep(0)
            if over and not drain.done():
                blocked += 1
                if not state["client_blocked"].done():
                    state["client_blocked"].set_result(None)
            await drain
            # drain() returns only once the protocol is not paused: at most
            # the high-water mark is buffered (at most the low one if it
            # had to wait).
            assert tr.get_write_buffer_size() <= tr.get_write_buffer_limits()[1]
        assert blocked >= 1
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await stop(srv)
        assert state["got"] == data

    run(loop, main(), timeout=60)


def test_many_clients(loop):
    N = 200

    async def client(addr, i):
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"client %d\n" % i)
        await writer.drain()
        line = await reader.readline()
        writer.write_eof()
        assert await reader.readline() == b"bye\n"
        writer.close()
        await writer.wait_closed()
        return line

    async def main():
        srv, addr = await start(loop, line_echo, backlog=N)
        got = await asyncio.gather(*(client(addr, i) for i in range(N)))
        assert got == [b"client %d\n" % i for i in range(N)]
        await stop(srv)

    run(loop, main(), timeout=60)


@needs_ipv6
def test_streams_ipv6(loop):
    async def main():
        srv = await asyncio.start_server(line_echo, "::1", 0)
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("::1", port)
        writer.write(b"v6\n")
        assert await reader.readline() == b"v6\n"
        writer.close()
        await writer.wait_closed()
        await stop(srv)

    run(loop, main())


def test_start_server_serve_forever_and_async_with(loop):
    async def main():
        srv, addr = await start(loop, line_echo, start_serving=False)
        async with srv:
            task = loop.create_task(srv.serve_forever())
            await asyncio.sleep(0)
            reader, writer = await asyncio.open_connection(*addr)
            writer.write(b"served\n")
            assert await reader.readline() == b"served\n"
            writer.close()
            await writer.wait_closed()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert not srv.is_serving()

    run(loop, main())


def test_writer_close_and_wait_closed(loop):
    async def handler(reader, writer):
        data = await reader.read()
        writer.write(b"got %d" % len(data))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        srv, addr = await start(loop, handler)
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"12345")
        writer.write_eof()
        assert await reader.read() == b"got 5"
        assert not writer.is_closing()
        writer.close()
        assert writer.is_closing()
        await writer.wait_closed()
        await stop(srv)

    run(loop, main())


def test_drain_after_peer_reset_raises(loop):
    import struct

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    async def main():
        reader, writer = await asyncio.open_connection(*lsock.getsockname())
        conn, _ = lsock.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        with pytest.raises(ConnectionResetError):
            await reader.read(10)
        with pytest.raises(ConnectionResetError):
            for _ in range(100):
                writer.write(b"x" * 1000)
                await writer.drain()
        writer.close()
        with pytest.raises(ConnectionResetError):
            await writer.wait_closed()

    try:
        run(loop, main())
    finally:
        lsock.close()


_HANDLER_ERRORS_REPORTED = "Unhandled exception in client_connected_cb" in (
    inspect.getsource(asyncio.streams)
)


@pytest.mark.skipif(
    not _HANDLER_ERRORS_REPORTED,
    reason="this asyncio does not report client_connected_cb errors",
)
def test_handler_exception_reported_and_transport_closed(loop):
    errors = record_errors(loop)

    async def handler(reader, writer):
        await reader.readline()
        raise ZeroDivisionError("handler failed")

    async def main():
        srv, addr = await start(loop, handler)
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"go\n")
        assert await reader.read() == b""  # the server closed the transport
        writer.close()
        await writer.wait_closed()
        await stop(srv)

    run(loop, main())
    msgs = [(e["message"], type(e.get("exception"))) for e in errors]
    errors.clear()
    assert ("Unhandled exception in client_connected_cb", ZeroDivisionError) in msgs


# --------------------------------------------------------------------------
# Unix streams


def test_unix_streams(loop, tmp_path):
    path = str(tmp_path / "streams.sock")

    async def main():
        srv = await asyncio.start_unix_server(line_echo, path)
        reader, writer = await asyncio.open_unix_connection(path)
        for i in range(20):
            writer.write(b"unix %d\n" % i)
            assert await reader.readline() == b"unix %d\n" % i
        blob = b"".join(b"%06d" % i + b"x" * 993 + b"\n" for i in range(2000))

        async def send():
            writer.write(blob)
            await writer.drain()

        _, got = await asyncio.gather(send(), reader.readexactly(len(blob)))
        assert got == blob
        writer.write_eof()
        assert await reader.readline() == b"bye\n"
        writer.close()
        await writer.wait_closed()
        await stop(srv)

    run(loop, main())


def test_unix_streams_large_and_many(loop, tmp_path):
    path = str(tmp_path / "streams.sock")
    blob = payload(4 * MB, seed=44)

    async def handler(reader, writer):
        data = await reader.read()
        writer.write(data)
        await writer.drain()
        writer.close()

    async def client(i):
        reader, writer = await asyncio.open_unix_connection(path)
        msg = blob if i == 0 else b"small %d" % i
        writer.write(msg)
        await writer.drain()
        writer.write_eof()
        got = await reader.read()
        writer.close()
        await writer.wait_closed()
        return got == msg

    async def main():
        srv = await asyncio.start_unix_server(handler, path)
        assert all(await asyncio.gather(*(client(i) for i in range(50))))
        await stop(srv)

    run(loop, main(), timeout=60)


def test_open_unix_connection_with_sock(loop, tmp_path):
    path = str(tmp_path / "s.sock")

    async def main():
        srv = await asyncio.start_unix_server(line_echo, path)
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        reader, writer = await asyncio.open_unix_connection(sock=s)
        writer.write(b"sock\n")
        assert await reader.readline() == b"sock\n"
        writer.close()
        await writer.wait_closed()
        assert s.fileno() == -1
        await stop(srv)

    run(loop, main())
