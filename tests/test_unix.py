"""Unix stream sockets: loop.create_unix_server / create_unix_connection.

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture).  Paths live under pytest's tmp_path; abstract-namespace names are
unique per test.  cleanup_socket (3.13) follows the running version.
"""
import asyncio
import errno
import os
import pathlib
import socket
import stat
import uuid

import pytest

from conftest import run
from nethelpers import (
    PY313,
    Echo,
    Proto,
    accepted,
    close_server,
    payload,
    wait_until,
)

MB = 1024 * 1024


@pytest.fixture
def sockpath(tmp_path):
    # AF_UNIX paths are limited to ~107 bytes; tmp_path can be long.
    p = tmp_path / "s.sock"
    if len(os.fsencode(str(p))) > 100:  # pragma: no cover
        import tempfile

        d = tempfile.mkdtemp(prefix="fl")
        p = pathlib.Path(d) / "s.sock"
    return p


def abstract_name():
    return "\0fastloop-test-" + uuid.uuid4().hex


async def unix_echo(loop, path=None, **kw):
    protos = []
    srv = await loop.create_unix_server(lambda: Echo(protos), path, **kw)
    return srv, protos


# --------------------------------------------------------------------------
# echo


@pytest.mark.parametrize("kind", ["str", "pathlib", "bytes"])
def test_unix_echo_path(loop, sockpath, kind):
    path = {"str": str(sockpath), "pathlib": sockpath, "bytes": os.fsencode(str(sockpath))}[kind]

    async def main():
        srv, sprotos = await unix_echo(loop, path)
        assert srv.is_serving()
        assert stat.S_ISSOCK(os.stat(sockpath).st_mode)
        s = srv.sockets[0]
        assert isinstance(s, asyncio.trsock.TransportSocket)
        assert s.family == socket.AF_UNIX
        p = Proto(loop)
        tr, _ = await loop.create_unix_connection(lambda: p, path)
        assert isinstance(tr, asyncio.Transport)
        tr.write(b"unix hello")
        assert await p.wait_bytes(10) == b"unix hello"
        await accepted(sprotos)
        peer = tr.get_extra_info("peername")
        assert os.fsdecode(peer) == str(sockpath)
        st = sprotos[0].transport
        assert os.fsdecode(st.get_extra_info("sockname")) == str(sockpath)
        assert isinstance(st.get_extra_info("socket"), asyncio.trsock.TransportSocket)
        assert tr.get_extra_info("socket").family == socket.AF_UNIX
        tr.close()
        assert await p.lost is None
        await close_server(srv, sprotos)

    run(loop, main())


def test_unix_half_close(loop, sockpath):
    async def main():
        sprotos = []
        srv = await loop.create_unix_server(
            lambda: sprotos.append(Proto(loop, keep_open=True)) or sprotos[-1],
            sockpath,
        )
        p = Proto(loop)
        tr, _ = await loop.create_unix_connection(lambda: p, sockpath)
        assert tr.can_write_eof()
        tr.write(b"abc")
        tr.write_eof()
        await wait_until(lambda: sprotos)
        sp = sprotos[0]
        await sp.eof
        assert bytes(sp.data) == b"abc"
        sp.transport.write(b"reply after eof")
        sp.transport.close()
        assert await p.wait_bytes(15) == b"reply after eof"
        await p.lost
        await sp.lost
        await close_server(srv)

    run(loop, main())


def test_unix_large_transfer_with_flow_control(loop, sockpath):
    N = 16 * MB
    data = payload(N, seed=21)

    async def main():
        srv, sprotos = await unix_echo(loop, sockpath)
        p = Proto(loop)
        tr, _ = await loop.create_unix_connection(lambda: p, sockpath)
        tr.write(data)
        # The kernel cannot take 16 MB at once: the protocol got paused.
        assert p.pauses and p.pauses[0] > tr.get_write_buffer_limits()[1]
        assert await p.wait_bytes(N) == data
        await wait_until(lambda: tr.get_write_buffer_size() == 0)
        assert len(p.resumes) == len(p.pauses)
        assert all(s <= tr.get_write_buffer_limits()[0] for s in p.resumes)
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main(), timeout=60)


def test_unix_many_clients(loop, sockpath):
    async def one(i):
        p = Proto(loop)
        tr, _ = await loop.create_unix_connection(lambda: p, sockpath)
        msg = b"client %d" % i
        tr.write(msg)
        got = await p.wait_bytes(len(msg))
        tr.close()
        await p.lost
        return got

    async def main():
        srv, sprotos = await unix_echo(loop, sockpath)
        got = await asyncio.gather(*(one(i) for i in range(100)))
        assert got == [b"client %d" % i for i in range(100)]
        await close_server(srv, sprotos)

    run(loop, main())


# --------------------------------------------------------------------------
# sock=


def test_unix_server_and_connection_with_sock(loop, sockpath):
    async def main():
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(str(sockpath))
        sprotos = []
        srv = await loop.create_unix_server(lambda: Echo(sprotos), sock=lsock)
        assert srv.sockets[0].fileno() == lsock.fileno()
        csock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        csock.connect(str(sockpath))
        p = Proto(loop)
        tr, _ = await loop.create_unix_connection(lambda: p, sock=csock)
        assert csock.getblocking() is False
        tr.write(b"via socks")
        assert await p.wait_bytes(9) == b"via socks"
        tr.close()
        await p.lost
        assert csock.fileno() == -1
        await close_server(srv, sprotos)
        assert lsock.fileno() == -1

    run(loop, main())


def test_unix_argument_errors(loop, sockpath):
    async def main():
        tcp = socket.socket()
        udg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        us = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with pytest.raises(ValueError):
                await loop.create_unix_connection(asyncio.Protocol, sock=tcp)
            with pytest.raises(ValueError):
                await loop.create_unix_connection(asyncio.Protocol, sock=udg)
            with pytest.raises(ValueError):
                await loop.create_unix_connection(asyncio.Protocol)
            with pytest.raises(ValueError):
                await loop.create_unix_connection(
                    asyncio.Protocol, str(sockpath), sock=us
                )
            with pytest.raises(ValueError):
                await loop.create_unix_connection(
                    asyncio.Protocol, str(sockpath), server_hostname="x"
                )
            with pytest.raises(ValueError):
                await loop.create_unix_server(asyncio.Protocol, sock=tcp)
            with pytest.raises(ValueError):
                await loop.create_unix_server(asyncio.Protocol, sock=udg)
            with pytest.raises(ValueError):
                await loop.create_unix_server(asyncio.Protocol)
            with pytest.raises(ValueError):
                await loop.create_unix_server(asyncio.Protocol, str(sockpath), sock=us)
            with pytest.raises(TypeError):
                await loop.create_unix_server(asyncio.Protocol, str(sockpath), ssl=True)
            assert not sockpath.exists()
        finally:
            tcp.close()
            udg.close()
            us.close()

    run(loop, main())


# --------------------------------------------------------------------------
# abstract namespace


@pytest.mark.parametrize("server_kind", ["str", "bytes"])
@pytest.mark.parametrize("client_kind", ["str", "bytes"])
def test_unix_abstract_namespace(loop, server_kind, client_kind):
    name = abstract_name()
    conv = {"str": lambda n: n, "bytes": lambda n: n.encode()}

    async def main():
        srv, sprotos = await unix_echo(loop, conv[server_kind](name))
        sockname = srv.sockets[0].getsockname()
        assert sockname == name.encode()  # Linux reports abstract names as bytes
        p = Proto(loop)
        tr, _ = await loop.create_unix_connection(lambda: p, conv[client_kind](name))
        tr.write(b"abstract")
        assert await p.wait_bytes(8) == b"abstract"
        assert tr.get_extra_info("peername") == name.encode()
        tr.close()
        await p.lost
        await close_server(srv, sprotos)
        # No file anywhere; the name is free again after close.
        srv2, sprotos2 = await unix_echo(loop, conv[server_kind](name))
        await close_server(srv2, sprotos2)

    run(loop, main())


def test_unix_abstract_name_in_use(loop):
    name = abstract_name()

    async def main():
        srv, sprotos = await unix_echo(loop, name)
        with pytest.raises(OSError) as ei:
            await loop.create_unix_server(Echo, name)
        assert ei.value.errno == errno.EADDRINUSE
        await close_server(srv, sprotos)

    run(loop, main())


# --------------------------------------------------------------------------
# the socket file: stale files, cleanup_socket


def test_stale_socket_file_removed(loop, sockpath):
    # A socket file left behind by a dead server.
    old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old.bind(str(sockpath))
    old.close()
    assert stat.S_ISSOCK(os.stat(sockpath).st_mode)

    async def main():
        # Nobody listens: a connection is refused.
        with pytest.raises(ConnectionRefusedError):
            await loop.create_unix_connection(asyncio.Protocol, sockpath)
        srv, sprotos = await unix_echo(loop, sockpath)
        p = Proto(loop)
        tr, _ = await loop.create_unix_connection(lambda: p, sockpath)
        tr.write(b"fresh")
        assert await p.wait_bytes(5) == b"fresh"
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_regular_file_not_removed(loop, sockpath):
    sockpath.write_bytes(b"not a socket")

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_unix_server(Echo, sockpath)
        assert ei.value.errno == errno.EADDRINUSE

    run(loop, main())
    assert sockpath.read_bytes() == b"not a socket"


def test_unix_connection_errors(loop, sockpath):
    async def main():
        with pytest.raises(FileNotFoundError):
            await loop.create_unix_connection(asyncio.Protocol, sockpath)
        with pytest.raises(ConnectionRefusedError):
            await loop.create_unix_connection(asyncio.Protocol, abstract_name())

    run(loop, main())


def test_socket_file_after_close(loop, sockpath):
    """3.13 removes the socket file on close (cleanup_socket=True is the
    default); earlier versions leave it."""

    async def main():
        srv, sprotos = await unix_echo(loop, sockpath)
        assert sockpath.exists()
        await close_server(srv, sprotos)

    run(loop, main())
    if PY313:
        assert not sockpath.exists()
    else:
        assert stat.S_ISSOCK(os.stat(sockpath).st_mode)


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in 3.13")
def test_cleanup_socket_false_keeps_file(loop, sockpath):
    async def main():
        srv, sprotos = await unix_echo(loop, sockpath, cleanup_socket=False)
        await close_server(srv, sprotos)

    run(loop, main())
    assert stat.S_ISSOCK(os.stat(sockpath).st_mode)


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in 3.13")
def test_cleanup_socket_with_sock(loop, sockpath):
    async def main():
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(str(sockpath))
        srv, sprotos = await unix_echo(loop, sock=lsock)
        await close_server(srv, sprotos)

    run(loop, main())
    assert not sockpath.exists()


@pytest.mark.skipif(not PY313, reason="cleanup_socket is new in 3.13")
def test_cleanup_socket_spares_replaced_file(loop, sockpath):
    # If the file was replaced by another socket, close() leaves it alone.
    async def main():
        srv, sprotos = await unix_echo(loop, sockpath)
        os.unlink(sockpath)
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(str(sockpath))
        try:
            await close_server(srv, sprotos)
            assert stat.S_ISSOCK(os.stat(sockpath).st_mode)
        finally:
            other.close()

    run(loop, main())


@pytest.mark.skipif(PY313, reason="cleanup_socket exists on 3.13")
def test_cleanup_socket_rejected_before_313(loop, sockpath):
    async def main():
        with pytest.raises(TypeError):
            await loop.create_unix_server(Echo, sockpath, cleanup_socket=True)

    run(loop, main())


def test_unix_start_serving_false(loop, sockpath):
    async def main():
        sprotos = []
        srv = await loop.create_unix_server(
            lambda: Echo(sprotos), sockpath, start_serving=False
        )
        assert not srv.is_serving()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_unix_connection(asyncio.Protocol, sockpath)
        await srv.start_serving()
        p = Proto(loop)
        tr, _ = await loop.create_unix_connection(lambda: p, sockpath)
        tr.write(b"x")
        assert await p.wait_bytes(1) == b"x"
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_unix_create_connection_cancelled_leaves_no_fd(loop, sockpath):
    from nethelpers import fds

    async def main():
        srv, sprotos = await unix_echo(loop, sockpath)
        base = fds()
        for steps in range(50):
            task = loop.create_task(
                loop.create_unix_connection(asyncio.Protocol, sockpath)
            )
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                tr, _ = await task
            except asyncio.CancelledError:
                done = False
            else:
                done = True
                tr.close()
            # The server may accept (and then close) the cancelled
            # connection a few iterations later: wait for the count to
            # settle; a leaked fd never comes back.
            try:
                await wait_until(lambda: fds() == base, timeout=3)
            except AssertionError:
                raise AssertionError("fd leaked after cancel at step %d" % steps)
            if done:
                break
        await close_server(srv, sprotos)

    run(loop, main())
