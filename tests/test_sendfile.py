"""loop.sendfile(transport, file, ...) and loop.sock_sendfile(sock, file, ...).

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture).  Files live under tmp_path; what the peer receives is compared
byte for byte.
"""
import asyncio
import io
import socket

import pytest

from conftest import run
from nethelpers import (  # noqa: F401 (fixtures)
    Proto,
    accepted,
    certs,
    client_ctx,
    close_server,
    payload,
    server_ctx,
)

MB = 1024 * 1024
SIZE = 6 * MB + 12345  # not a multiple of any buffer size


@pytest.fixture(scope="module")
def blob():
    return payload(SIZE, seed=61)


@pytest.fixture
def datafile(tmp_path, blob):
    path = tmp_path / "data.bin"
    path.write_bytes(blob)
    with open(path, "rb") as f:
        yield f


async def receiver_pair(loop, **kw):
    """A server whose protocol records everything, and a client connection
    to it: (server, server_protos, client_transport, client_proto)."""
    sprotos = []
    srv = await loop.create_server(
        lambda: sprotos.append(Proto(loop)) or sprotos[-1], "127.0.0.1", 0, **kw
    )
    p = Proto(loop)
    tr, _ = await loop.create_connection(lambda: p, *srv.sockets[0].getsockname())
    await accepted(sprotos)
    return srv, sprotos, tr, p


async def finish(srv, sprotos, tr, p):
    tr.close()
    await p.lost
    await close_server(srv, sprotos)


# --------------------------------------------------------------------------
# loop.sendfile


def test_sendfile_whole_file(loop, datafile, blob):
    async def main():
        srv, sprotos, tr, p = await receiver_pair(loop)
        sp = sprotos[0]
        n = await loop.sendfile(tr, datafile)
        assert n == SIZE
        assert datafile.tell() == SIZE
        assert await sp.wait_bytes(SIZE) == blob
        # The transport works normally afterwards, protocol unchanged.
        assert tr.get_protocol() is p
        assert tr.is_reading()
        tr.write(b"trailer")
        assert await sp.wait_bytes(SIZE + 7) == blob + b"trailer"
        sp.transport.write(b"answer")
        assert await p.wait_bytes(6) == b"answer"
        await finish(srv, sprotos, tr, p)

    run(loop, main(), timeout=60)


@pytest.mark.parametrize(
    "offset,count",
    [(0, 1), (1000, 123456), (SIZE - 10, None), (5, SIZE - 5), (77, 4 * MB)],
)
def test_sendfile_offset_count(loop, datafile, blob, offset, count):
    expected = blob[offset : offset + count if count else None]

    async def main():
        srv, sprotos, tr, p = await receiver_pair(loop)
        sp = sprotos[0]
        n = await loop.sendfile(tr, datafile, offset, count)
        assert n == len(expected)
        assert datafile.tell() == offset + n
        assert await sp.wait_bytes(len(expected)) == expected
        await asyncio.sleep(0.01)
        assert len(sp.data) == len(expected)  # nothing more
        await finish(srv, sprotos, tr, p)

    run(loop, main(), timeout=60)


def test_sendfile_count_past_eof(loop, datafile, blob):
    async def main():
        srv, sprotos, tr, p = await receiver_pair(loop)
        n = await loop.sendfile(tr, datafile, SIZE - 100, 10 * MB)
        assert n == 100
        assert await sprotos[0].wait_bytes(100) == blob[-100:]
        assert await loop.sendfile(tr, datafile, SIZE) == 0  # at EOF
        await finish(srv, sprotos, tr, p)

    run(loop, main())


def test_sendfile_fallback_for_non_regular_file(loop, blob):
    """A BytesIO has no fileno(): native sendfile is unavailable, the
    fallback reads and writes it."""

    async def main():
        srv, sprotos, tr, p = await receiver_pair(loop)
        f = io.BytesIO(blob)
        n = await loop.sendfile(tr, f, 10, 3 * MB, fallback=True)
        assert n == 3 * MB
        assert f.tell() == 10 + 3 * MB
        assert await sprotos[0].wait_bytes(3 * MB) == blob[10 : 10 + 3 * MB]
        assert tr.get_protocol() is p
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sendfile(tr, io.BytesIO(blob), fallback=False)
        await finish(srv, sprotos, tr, p)

    run(loop, main(), timeout=60)


def test_sendfile_fallback_over_tls(loop, datafile, blob, server_ctx, client_ctx):
    """A TLS transport has no native sendfile: fallback=True sends it through
    the transport, fallback=False refuses."""

    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(Proto(loop)) or sprotos[-1],
            "127.0.0.1",
            0,
            ssl=server_ctx,
        )
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p,
            *srv.sockets[0].getsockname(),
            ssl=client_ctx,
            server_hostname="localhost",
        )
        await accepted(sprotos)
        with pytest.raises(RuntimeError):
            await loop.sendfile(tr, datafile, fallback=False)
        n = await loop.sendfile(tr, datafile, 0, 2 * MB)
        assert n == 2 * MB
        assert await sprotos[0].wait_bytes(2 * MB) == blob[: 2 * MB]
        assert tr.get_protocol() is p
        await finish(srv, sprotos, tr, p)

    run(loop, main(), timeout=60)


def test_sendfile_blocks_writes_while_in_progress(loop, datafile, blob):
    async def main():
        srv, sprotos, tr, p = await receiver_pair(loop)
        sp = sprotos[0]
        sp.transport.pause_reading()  # keep the sendfile pending
        task = loop.create_task(loop.sendfile(tr, datafile))
        await asyncio.sleep(0.05)
        assert not task.done()
        with pytest.raises(RuntimeError):
            tr.write(b"interleaved")
        sp.transport.resume_reading()
        assert await task == SIZE
        tr.write(b"after")
        assert await sp.wait_bytes(SIZE + 5) == blob + b"after"
        await finish(srv, sprotos, tr, p)

    run(loop, main(), timeout=60)


def test_sendfile_after_buffered_writes(loop, datafile, blob):
    # Data written before sendfile() goes first.
    head = payload(8 * MB, seed=62)

    async def main():
        srv, sprotos, tr, p = await receiver_pair(loop)
        sp = sprotos[0]
        sp.transport.pause_reading()
        tr.write(head)
        assert tr.get_write_buffer_size() > 0
        task = loop.create_task(loop.sendfile(tr, datafile))
        await asyncio.sleep(0.02)
        sp.transport.resume_reading()
        assert await task == SIZE
        assert await sp.wait_bytes(len(head) + SIZE) == head + blob
        await finish(srv, sprotos, tr, p)

    run(loop, main(), timeout=60)


def test_sendfile_argument_errors(loop, datafile, tmp_path):
    async def main():
        srv, sprotos, tr, p = await receiver_pair(loop)
        with pytest.raises(ValueError):
            await loop.sendfile(tr, datafile, -1)
        with pytest.raises(ValueError):
            await loop.sendfile(tr, datafile, 0, 0)
        with pytest.raises(TypeError):
            await loop.sendfile(tr, datafile, "0")
        with pytest.raises(TypeError):
            await loop.sendfile(tr, datafile, 0, 1.5)
        text = tmp_path / "t.txt"
        text.write_text("text")
        with open(text, "r") as tf:
            with pytest.raises(ValueError):
                await loop.sendfile(tr, tf)
        tr.close()
        with pytest.raises(RuntimeError):
            await loop.sendfile(tr, datafile)  # transport is closing
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_sendfile_peer_gone(loop, datafile):
    async def main():
        srv, sprotos, tr, p = await receiver_pair(loop)
        sp = sprotos[0]
        sp.transport.pause_reading()
        task = loop.create_task(loop.sendfile(tr, datafile))
        await asyncio.sleep(0.02)
        sp.transport.abort()
        with pytest.raises((ConnectionError, OSError)):
            await task
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main(), timeout=60)


# --------------------------------------------------------------------------
# loop.sock_sendfile


@pytest.fixture
def tcp_pair():
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    c = socket.create_connection(lsock.getsockname())
    s, _ = lsock.accept()
    lsock.close()
    c.setblocking(False)
    s.setblocking(False)
    yield c, s
    c.close()
    s.close()


async def _recv_all(loop, sock, n):
    got = bytearray()
    while len(got) < n:
        chunk = await loop.sock_recv(sock, MB)
        if not chunk:
            break
        got += chunk
    return bytes(got)


@pytest.mark.parametrize("offset,count", [(0, None), (12345, 2 * MB + 1)])
def test_sock_sendfile(loop, tcp_pair, datafile, blob, offset, count):
    c, s = tcp_pair
    expected = blob[offset : offset + count if count else None]

    async def main():
        rtask = loop.create_task(_recv_all(loop, s, len(expected)))
        n = await loop.sock_sendfile(c, datafile, offset, count)
        assert n == len(expected)
        assert datafile.tell() == offset + n
        assert await rtask == expected
        assert loop.remove_writer(c.fileno()) is False

    run(loop, main(), timeout=60)


def test_sock_sendfile_fallback(loop, tcp_pair, blob):
    c, s = tcp_pair

    async def main():
        f = io.BytesIO(blob)
        rtask = loop.create_task(_recv_all(loop, s, SIZE))
        n = await loop.sock_sendfile(c, f, fallback=True)
        assert n == SIZE
        assert f.tell() == SIZE
        assert await rtask == blob
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sock_sendfile(c, io.BytesIO(b"x"), fallback=False)

    run(loop, main(), timeout=60)


def test_sock_sendfile_unix(loop, datafile, blob):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def main():
        rtask = loop.create_task(_recv_all(loop, b, SIZE))
        assert await loop.sock_sendfile(a, datafile) == SIZE
        assert await rtask == blob

    try:
        run(loop, main(), timeout=60)
    finally:
        a.close()
        b.close()


def test_sock_sendfile_argument_errors(loop, datafile):
    async def main():
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        a, b = socket.socketpair()
        a.setblocking(False)
        try:
            with pytest.raises(ValueError):
                await loop.sock_sendfile(udp, datafile)
            with pytest.raises(ValueError):
                await loop.sock_sendfile(a, datafile, -1)
            with pytest.raises(ValueError):
                await loop.sock_sendfile(a, datafile, 0, 0)
            with pytest.raises(TypeError):
                await loop.sock_sendfile(a, datafile, 0, "1")
        finally:
            udp.close()
            a.close()
            b.close()

    run(loop, main())


def test_sock_sendfile_blocking_socket_in_debug(loop, datafile):
    loop.set_debug(True)
    loop.slow_callback_duration = 10
    a, b = socket.socketpair()

    async def main():
        with pytest.raises(ValueError):
            await loop.sock_sendfile(a, datafile)

    try:
        run(loop, main())
    finally:
        a.close()
        b.close()
