"""loop.sock_* coroutines on non-blocking sockets.

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture).  sock_recvfrom / sock_recvfrom_into / sock_sendto are asyncio 3.11+
methods; fastloop has them on every version, so on 3.9/3.10 they are tested
on fastloop only.
"""
import asyncio
import errno
import socket
import ssl
import sys

import pytest

from conftest import run
from nethelpers import (
    PY311,
    Proto,
    needs_ipv6,
    payload,
    refused_addr,
    wait_until,
)

MB = 1024 * 1024


def _is_fastloop(loop):
    return type(loop).__module__.startswith("fastloop")


def needs_udp_methods(loop):
    if not PY311 and not _is_fastloop(loop):
        pytest.skip("sock_recvfrom/sock_recvfrom_into/sock_sendto are new in 3.11")


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def tcp_pair():
    """A connected pair of non-blocking TCP sockets on 127.0.0.1."""
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


@pytest.fixture
def udp_pair():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def no_watchers(loop, fd):
    """True if the loop watches nothing on fd (and then proves that a new
    reader and writer can be added and removed)."""
    r = loop.remove_reader(fd)
    w = loop.remove_writer(fd)
    if r or w:
        return False
    loop.add_reader(fd, lambda: None)
    loop.add_writer(fd, lambda: None)
    assert loop.remove_reader(fd) is True
    assert loop.remove_writer(fd) is True
    return True


# --------------------------------------------------------------------------
# recv / recv_into


def test_sock_recv(loop, pair):
    a, b = pair

    async def main():
        # Data already there: returned at once.
        b.send(b"ready")
        assert await loop.sock_recv(a, 100) == b"ready"
        # No data yet: waits for it.
        task = loop.create_task(loop.sock_recv(a, 100))
        await asyncio.sleep(0.01)
        assert not task.done()
        b.send(b"later")
        assert await task == b"later"
        # At most n bytes.
        b.send(b"0123456789")
        assert await loop.sock_recv(a, 4) == b"0123"
        assert await loop.sock_recv(a, 100) == b"456789"
        # EOF: b"".
        b.shutdown(socket.SHUT_WR)
        assert await loop.sock_recv(a, 100) == b""
        assert no_watchers(loop, a.fileno())

    run(loop, main())


def test_sock_recv_into(loop, pair):
    a, b = pair

    async def main():
        buf = bytearray(10)
        task = loop.create_task(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0.01)
        assert not task.done()
        b.send(b"abc")
        assert await task == 3
        assert buf[:3] == b"abc"
        b.send(b"0123456789XYZ")
        view = memoryview(buf)[2:6]
        assert await loop.sock_recv_into(a, view) == 4
        assert buf[:6] == b"ab0123"
        assert await loop.sock_recv_into(a, buf) == 9
        assert bytes(buf[:9]) == b"456789XYZ"
        b.close()
        assert await loop.sock_recv_into(a, buf) == 0
        assert no_watchers(loop, a.fileno())

    run(loop, main())


def test_sock_recv_peer_reset(loop, tcp_pair):
    import struct

    c, s = tcp_pair

    async def main():
        task = loop.create_task(loop.sock_recv(c, 100))
        await asyncio.sleep(0.01)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        with pytest.raises(ConnectionResetError):
            await task
        assert no_watchers(loop, c.fileno())

    run(loop, main())


def test_sock_recv_many_concurrent_sockets(loop):
    pairs = [socket.socketpair() for _ in range(50)]
    for a, b in pairs:
        a.setblocking(False)
        b.setblocking(False)

    async def main():
        tasks = [loop.create_task(loop.sock_recv(a, 100)) for a, _ in pairs]
        await asyncio.sleep(0.01)
        for i, (_, b) in reversed(list(enumerate(pairs))):
            b.send(b"%d" % i)
        assert await asyncio.gather(*tasks) == [b"%d" % i for i in range(50)]

    try:
        run(loop, main())
    finally:
        for a, b in pairs:
            a.close()
            b.close()


# --------------------------------------------------------------------------
# sendall


def test_sock_sendall_large(loop, tcp_pair):
    c, s = tcp_pair
    data = payload(8 * MB, seed=31)

    async def reader():
        got = bytearray()
        while len(got) < len(data):
            chunk = await loop.sock_recv(s, 256 * 1024)
            assert chunk, "EOF too early"
            got += chunk
            if len(got) % 7 == 0:
                await asyncio.sleep(0.001)  # be a slow reader at times
        return bytes(got)

    async def main():
        rtask = loop.create_task(reader())
        assert await loop.sock_sendall(c, data) is None
        assert await rtask == data
        assert no_watchers(loop, c.fileno())
        assert no_watchers(loop, s.fileno())
        # Empty and small payloads, bytes-like types.
        assert await loop.sock_sendall(c, b"") is None
        await loop.sock_sendall(c, bytearray(b"ab"))
        await loop.sock_sendall(c, memoryview(b"xxcdxx")[2:4])
        got = b""
        while len(got) < 4:
            got += await loop.sock_recv(s, 10)
        assert got == b"abcd"

    run(loop, main(), timeout=60)


def test_sock_sendall_waits_for_reader(loop, tcp_pair):
    c, s = tcp_pair
    data = payload(8 * MB, seed=32)

    async def main():
        task = loop.create_task(loop.sock_sendall(c, data))
        await asyncio.sleep(0.05)
        assert not task.done()  # the peer isn't reading: blocked
        got = bytearray()
        while len(got) < len(data):
            got += await loop.sock_recv(s, MB)
        await task
        assert bytes(got) == data

    run(loop, main())


def test_sock_sendall_to_closed_peer(loop, tcp_pair):
    import struct

    c, s = tcp_pair

    async def main():
        task = loop.create_task(loop.sock_sendall(c, payload(8 * MB)))
        await asyncio.sleep(0.01)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            await task
        assert no_watchers(loop, c.fileno())

    run(loop, main())


# --------------------------------------------------------------------------
# connect / accept


def test_sock_connect_and_accept(loop):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(5)
    lsock.setblocking(False)
    addr = lsock.getsockname()

    async def main():
        atask = loop.create_task(loop.sock_accept(lsock))
        await asyncio.sleep(0.01)
        assert not atask.done()
        c = socket.socket()
        c.setblocking(False)
        try:
            assert await loop.sock_connect(c, addr) is None
            conn, peer = await atask
            try:
                assert peer == c.getsockname()
                assert conn.getblocking() is False
                await loop.sock_sendall(c, b"hi")
                assert await loop.sock_recv(conn, 10) == b"hi"
            finally:
                conn.close()
        finally:
            c.close()
        assert no_watchers(loop, lsock.fileno())

    try:
        run(loop, main())
    finally:
        lsock.close()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_sock_connect_resolves_name(loop, host):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(5)
    lsock.setblocking(False)
    port = lsock.getsockname()[1]

    async def main():
        c = socket.socket()
        c.setblocking(False)
        try:
            await loop.sock_connect(c, (host, port))
            assert c.getpeername() == ("127.0.0.1", port)
            conn, _ = await loop.sock_accept(lsock)
            conn.close()
        finally:
            c.close()

    try:
        run(loop, main())
    finally:
        lsock.close()


@needs_ipv6
def test_sock_connect_ipv6(loop):
    lsock = socket.socket(socket.AF_INET6)
    lsock.bind(("::1", 0))
    lsock.listen(5)
    lsock.setblocking(False)
    port = lsock.getsockname()[1]

    async def main():
        c = socket.socket(socket.AF_INET6)
        c.setblocking(False)
        try:
            await loop.sock_connect(c, ("::1", port))
            assert c.getpeername()[:2] == ("::1", port)
            conn, peer = await loop.sock_accept(lsock)
            assert peer[:2] == c.getsockname()[:2]
            conn.close()
        finally:
            c.close()

    try:
        run(loop, main())
    finally:
        lsock.close()


def test_sock_connect_refused(loop):
    s, addr = refused_addr()

    async def main():
        c = socket.socket()
        c.setblocking(False)
        try:
            with pytest.raises(ConnectionRefusedError) as ei:
                await loop.sock_connect(c, addr)
            assert ei.value.errno == errno.ECONNREFUSED
            assert no_watchers(loop, c.fileno())
        finally:
            c.close()

    try:
        run(loop, main())
    finally:
        s.close()


def test_sock_connect_unix(loop, tmp_path):
    path = str(tmp_path / "s")
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(path)
    lsock.listen(1)
    lsock.setblocking(False)

    async def main():
        c = socket.socket(socket.AF_UNIX)
        c.setblocking(False)
        try:
            await loop.sock_connect(c, path)
            conn, _ = await loop.sock_accept(lsock)
            await loop.sock_sendall(conn, b"unix")
            assert await loop.sock_recv(c, 10) == b"unix"
            conn.close()
        finally:
            c.close()
        c = socket.socket(socket.AF_UNIX)
        c.setblocking(False)
        try:
            with pytest.raises(FileNotFoundError):
                await loop.sock_connect(c, path + "-missing")
        finally:
            c.close()

    try:
        run(loop, main())
    finally:
        lsock.close()


# --------------------------------------------------------------------------
# UDP: recvfrom / recvfrom_into / sendto


def test_sock_sendto_recvfrom(loop, udp_pair):
    needs_udp_methods(loop)
    a, b = udp_pair

    async def main():
        task = loop.create_task(loop.sock_recvfrom(b, 100))
        await asyncio.sleep(0.01)
        assert not task.done()
        n = await loop.sock_sendto(a, b"datagram", b.getsockname())
        assert n == 8
        data, addr = await task
        assert data == b"datagram"
        assert addr == a.getsockname()
        # bufsize truncates the datagram.
        await loop.sock_sendto(a, b"0123456789", b.getsockname())
        data, _ = await loop.sock_recvfrom(b, 4)
        assert data == b"0123"
        assert no_watchers(loop, b.fileno())

    run(loop, main())


def test_sock_recvfrom_into(loop, udp_pair):
    needs_udp_methods(loop)
    a, b = udp_pair

    async def main():
        buf = bytearray(16)
        task = loop.create_task(loop.sock_recvfrom_into(b, buf))
        await asyncio.sleep(0.01)
        assert not task.done()
        await loop.sock_sendto(a, b"hello", b.getsockname())
        n, addr = await task
        assert (n, bytes(buf[:n]), addr) == (5, b"hello", a.getsockname())
        # nbytes limits the read.
        await loop.sock_sendto(a, b"abcdefgh", b.getsockname())
        n, _ = await loop.sock_recvfrom_into(b, buf, 3)
        assert (n, bytes(buf[:3])) == (3, b"abc")
        await loop.sock_sendto(a, bytearray(b"xyz"), b.getsockname())
        n, _ = await loop.sock_recvfrom_into(b, memoryview(buf)[8:], 0)
        assert bytes(buf[8:11]) == b"xyz"
        assert no_watchers(loop, b.fileno())

    run(loop, main())


def test_sock_recvfrom_many_datagrams(loop, udp_pair):
    needs_udp_methods(loop)
    a, b = udp_pair

    async def main():
        for i in range(100):
            await loop.sock_sendto(a, b"%d" % i, b.getsockname())
        got = [(await loop.sock_recvfrom(b, 100))[0] for _ in range(100)]
        assert got == [b"%d" % i for i in range(100)]

    run(loop, main())


# --------------------------------------------------------------------------
# argument checks


def _calls(loop, sock, other):
    """(name, coroutine factory) for every sock_* method on `sock`."""
    buf = bytearray(10)
    calls = [
        ("sock_recv", lambda: loop.sock_recv(sock, 10)),
        ("sock_recv_into", lambda: loop.sock_recv_into(sock, buf)),
        ("sock_sendall", lambda: loop.sock_sendall(sock, b"x")),
        ("sock_connect", lambda: loop.sock_connect(sock, other)),
        ("sock_accept", lambda: loop.sock_accept(sock)),
    ]
    if PY311 or _is_fastloop(loop):
        calls += [
            ("sock_recvfrom", lambda: loop.sock_recvfrom(sock, 10)),
            ("sock_recvfrom_into", lambda: loop.sock_recvfrom_into(sock, buf)),
            ("sock_sendto", lambda: loop.sock_sendto(sock, b"x", other)),
        ]
    return calls


def test_blocking_socket_rejected_in_debug_mode(loop):
    # asyncio checks for a non-blocking socket in debug mode.
    loop.set_debug(True)
    loop.slow_callback_duration = 10
    s, addr = refused_addr()
    sock = socket.socket()
    assert sock.getblocking()

    async def main():
        for name, call in _calls(loop, sock, addr):
            coro = call()
            with pytest.raises(ValueError, match="non-blocking"):
                await coro

    try:
        run(loop, main())
    finally:
        sock.close()
        s.close()


def test_ssl_socket_rejected(loop):
    s, addr = refused_addr()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sslsock = ctx.wrap_socket(
        socket.socket(), server_hostname="x", do_handshake_on_connect=False
    )
    sslsock.setblocking(False)

    async def main():
        for name, call in _calls(loop, sslsock, addr):
            with pytest.raises(TypeError, match="SSLSocket"):
                await call()

    try:
        run(loop, main())
    finally:
        sslsock.close()
        s.close()


# --------------------------------------------------------------------------
# cancellation leaves no watcher


async def _cancel_after(loop, coro, steps):
    task = loop.create_task(coro)
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    try:
        return True, await task
    except asyncio.CancelledError:
        return False, None


@pytest.mark.parametrize("steps", [0, 1, 2, 5])
def test_cancel_sock_recv(loop, pair, steps):
    a, b = pair

    async def main():
        done, _ = await _cancel_after(loop, loop.sock_recv(a, 100), steps)
        assert not done
        assert no_watchers(loop, a.fileno())
        # The data that arrives later is not lost.
        b.send(b"after cancel")
        assert await loop.sock_recv(a, 100) == b"after cancel"
        buf = bytearray(10)
        done, _ = await _cancel_after(loop, loop.sock_recv_into(a, buf), steps)
        assert not done
        assert no_watchers(loop, a.fileno())

    run(loop, main())


@pytest.mark.parametrize("steps", [0, 1, 2, 5])
def test_cancel_sock_udp(loop, udp_pair, steps):
    needs_udp_methods(loop)
    a, b = udp_pair

    async def main():
        done, _ = await _cancel_after(loop, loop.sock_recvfrom(b, 100), steps)
        assert not done
        assert no_watchers(loop, b.fileno())
        done, _ = await _cancel_after(
            loop, loop.sock_recvfrom_into(b, bytearray(10)), steps
        )
        assert not done
        assert no_watchers(loop, b.fileno())
        await loop.sock_sendto(a, b"x", b.getsockname())
        assert (await loop.sock_recvfrom(b, 10))[0] == b"x"

    run(loop, main())


@pytest.mark.parametrize("steps", [0, 1, 3, 10])
def test_cancel_sock_sendall(loop, tcp_pair, steps):
    c, s = tcp_pair
    data = payload(8 * MB, seed=33)

    async def drain():
        while True:
            if not await loop.sock_recv(s, MB):
                return

    async def main():
        # Nobody reads: sendall is blocked on a writer.
        done, _ = await _cancel_after(loop, loop.sock_sendall(c, data), steps)
        assert not done
        assert no_watchers(loop, c.fileno())
        # With a reader the write events keep coming: cancel mid-way.
        dtask = loop.create_task(drain())
        done, _ = await _cancel_after(loop, loop.sock_sendall(c, data), steps)
        assert no_watchers(loop, c.fileno())
        c.shutdown(socket.SHUT_WR)
        await dtask

    run(loop, main())


def test_cancel_sock_accept(loop):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(5)
    lsock.setblocking(False)

    async def main():
        for steps in (0, 1, 3):
            done, _ = await _cancel_after(loop, loop.sock_accept(lsock), steps)
            assert not done
            assert no_watchers(loop, lsock.fileno())
        # A connection made after the cancellation is still there to accept.
        c = socket.socket()
        c.setblocking(False)
        await loop.sock_connect(c, lsock.getsockname())
        conn, _ = await loop.sock_accept(lsock)
        conn.close()
        c.close()

    try:
        run(loop, main())
    finally:
        lsock.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_cancel_sock_connect_at_each_step(loop, host):
    # A listener whose queue is full: further connects stay pending
    # (SYNs are dropped), so the connect is cancelled while in progress.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]

    async def main():
        for steps in range(60):
            c = socket.socket()
            c.setblocking(False)
            try:
                done, _ = await _cancel_after(
                    loop, loop.sock_connect(c, (host, port)), steps
                )
                # Let a resolver thread, if any, finish.
                assert no_watchers(loop, c.fileno())
            finally:
                c.close()
            if done:
                break
        # Completing a connect leaves no watcher either.
        c = socket.socket()
        c.setblocking(False)
        lsock2 = socket.socket()
        lsock2.bind(("127.0.0.1", 0))
        lsock2.listen(1)
        try:
            await loop.sock_connect(c, lsock2.getsockname())
            assert no_watchers(loop, c.fileno())
        finally:
            c.close()
            lsock2.close()

    try:
        run(loop, main(), timeout=60)
    finally:
        lsock.close()


# --------------------------------------------------------------------------
# an fd owned by a transport


def test_add_reader_on_transport_fd_raises(loop):
    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(Proto(loop)) or sprotos[-1], "127.0.0.1", 0
        )
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *srv.sockets[0].getsockname())
        await wait_until(lambda: sprotos and sprotos[0].made.done())
        for t in (tr, sprotos[0].transport):
            tsock = t.get_extra_info("socket")
            fd = tsock.fileno()
            for meth in (loop.add_reader, loop.add_writer):
                with pytest.raises(RuntimeError):
                    meth(fd, lambda: None)
                with pytest.raises(RuntimeError):
                    meth(tsock, lambda: None)
            for meth in (loop.remove_reader, loop.remove_writer):
                with pytest.raises(RuntimeError):
                    meth(fd)
        # The transports still work.
        tr.write(b"still ok")
        assert await sprotos[0].wait_bytes(8) == b"still ok"
        tr.close()
        await p.lost
        await sprotos[0].lost
        srv.close()
        await srv.wait_closed()

    run(loop, main())


def test_sock_recv_on_transport_fd_raises(loop):
    # sock_recv() that would have to wait on a transport's fd: RuntimeError.
    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(Proto(loop)) or sprotos[-1], "127.0.0.1", 0
        )
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *srv.sockets[0].getsockname())
        fd = tr.get_extra_info("socket").fileno()
        dup = socket.socket(fileno=fd)  # same fd number, another object
        # (the fd is non-blocking already; the object must say so too, or
        # debug mode, -X dev, raises ValueError first on both loops)
        dup.setblocking(False)
        try:
            with pytest.raises(RuntimeError):
                await loop.sock_recv(dup, 10)
        finally:
            dup.detach()
        tr.close()
        await p.lost
        srv.close()
        await wait_until(lambda: all(sp.lost.done() for sp in sprotos))
        await srv.wait_closed()

    run(loop, main())


def test_sock_connect_error_frames_drop_the_future(loop, loop_kind):
    # The refused connect's exception carries the frames it went through;
    # none may still hold the future it was stored in (that would be a
    # cycle exc -> traceback -> frame -> future -> exc, freed only by the
    # GC; CPython gh-124859, anyio's test_happy_eyeballs_refcycles).
    if loop_kind == "asyncio" and sys.version_info < (3, 10):
        pytest.skip("asyncio 3.9's _sock_connect_cb keeps its future")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    sock = socket.socket()
    sock.setblocking(False)
    try:
        with pytest.raises(ConnectionRefusedError) as ei:
            loop.run_until_complete(loop.sock_connect(sock, ("127.0.0.1", port)))
    finally:
        sock.close()
    tb = ei.value.__traceback__
    while tb is not None:
        held = tb.tb_frame.f_locals.get("fut")
        assert not isinstance(held, asyncio.Future), tb.tb_frame
        tb = tb.tb_next
