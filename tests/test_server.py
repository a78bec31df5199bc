"""loop.create_server, the Server object and connect_accepted_socket.

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture).  Where asyncio's Server changed between versions (wait_closed in
3.12, close_clients/abort_clients and keep_alive in 3.13) the test follows
the running version; fastloop offers close_clients/abort_clients on every
version.
"""
import asyncio
import errno
import gc
import socket
import warnings

import pytest

from conftest import run
from nethelpers import (
    HAS_IPV6,
    PY312,
    PY313,
    Echo,
    Proto,
    accepted,
    close_server,
    echo_server,
    needs_ipv6,
    payload,
    record_errors,
    wait_until,
)

MB = 1024 * 1024


async def roundtrip(loop, host, port, msg=b"ping"):
    p = Proto(loop)
    tr, _ = await loop.create_connection(lambda: p, host, port)
    tr.write(msg)
    got = await p.wait_bytes(len(msg))
    tr.close()
    await p.lost
    return got


def refused(host, port, family=socket.AF_INET):
    """True if a blocking connect to (host, port) is refused."""
    with socket.socket(family) as s:
        s.settimeout(5)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        return False


def _factory(registry, cls=Echo):
    def f():
        p = cls()
        registry.append(p)
        return p

    return f


# --------------------------------------------------------------------------
# hosts and ports


def test_create_server_host_string_port_zero(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop, "127.0.0.1")
        assert len(srv.sockets) == 1
        assert addr[0] == "127.0.0.1" and addr[1] != 0
        assert await roundtrip(loop, *addr) == b"ping"
        await close_server(srv, sprotos)

    run(loop, main())


def test_create_server_host_none(loop):
    async def main():
        sprotos = []
        srv = await loop.create_server(_factory(sprotos), None, 0)
        socks = srv.sockets
        fams = {s.family for s in socks}
        assert socket.AF_INET in fams
        if HAS_IPV6:
            assert fams == {socket.AF_INET, socket.AF_INET6}
        for s in socks:
            host, port = s.getsockname()[:2]
            assert port != 0
            if s.family == socket.AF_INET:
                assert host == "0.0.0.0"
                assert await roundtrip(loop, "127.0.0.1", port) == b"ping"
            else:
                assert host == "::"
                # asyncio sets IPV6_V6ONLY on the IPv6 socket.
                assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
                assert await roundtrip(loop, "::1", port) == b"ping"
        await close_server(srv, sprotos)

    run(loop, main())


def test_create_server_host_empty_string_is_all_interfaces(loop):
    async def main():
        srv = await loop.create_server(Echo, "", 0)
        hosts = {s.getsockname()[0] for s in srv.sockets}
        assert "0.0.0.0" in hosts
        await close_server(srv)

    run(loop, main())


@needs_ipv6
def test_create_server_host_list(loop):
    async def main():
        sprotos = []
        srv = await loop.create_server(_factory(sprotos), ["127.0.0.1", "::1"], 0)
        assert len(srv.sockets) == 2
        names = {s.getsockname()[0]: s.getsockname()[1] for s in srv.sockets}
        assert set(names) == {"127.0.0.1", "::1"}
        for host, port in names.items():
            assert await roundtrip(loop, host, port, host.encode()) == host.encode()
        await close_server(srv, sprotos)

    run(loop, main())


def test_create_server_host_list_duplicates_collapse(loop):
    async def main():
        srv = await loop.create_server(Echo, ["127.0.0.1", "127.0.0.1"], 0)
        assert len(srv.sockets) == 1
        await close_server(srv)

    run(loop, main())


def test_create_server_localhost(loop):
    async def main():
        sprotos = []
        srv = await loop.create_server(_factory(sprotos), "localhost", 0)
        infos = socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)
        assert len(srv.sockets) == len({i[4][0] for i in infos})
        for s in srv.sockets:
            host, port = s.getsockname()[:2]
            assert await roundtrip(loop, host, port) == b"ping"
        await close_server(srv, sprotos)

    run(loop, main())


def test_create_server_fixed_port_in_use(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        with pytest.raises(OSError) as ei:
            await loop.create_server(Echo, *addr)
        assert ei.value.errno == errno.EADDRINUSE
        # A failed create_server leaves the first one alone.
        assert srv.is_serving()
        assert await roundtrip(loop, *addr) == b"ping"
        await close_server(srv, sprotos)

    run(loop, main())


def test_create_server_with_sock(loop):
    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        addr = sock.getsockname()
        sprotos = []
        srv = await loop.create_server(_factory(sprotos), sock=sock)
        assert [s.getsockname() for s in srv.sockets] == [addr]
        assert srv.sockets[0].fileno() == sock.fileno()
        assert await roundtrip(loop, *addr) == b"ping"
        await close_server(srv, sprotos)
        assert sock.fileno() == -1  # the server closed it

    run(loop, main())


def test_create_server_argument_errors(loop):
    async def main():
        sock = socket.socket()
        dgram = socket.socket(type=socket.SOCK_DGRAM)
        try:
            with pytest.raises(ValueError):
                await loop.create_server(Echo, "127.0.0.1", 0, sock=sock)
            with pytest.raises(ValueError):
                await loop.create_server(Echo)  # neither host/port nor sock
            with pytest.raises(ValueError):
                await loop.create_server(Echo, sock=dgram)
            with pytest.raises(ValueError):
                await loop.create_server(
                    Echo, "127.0.0.1", 0, ssl_handshake_timeout=1
                )
        finally:
            sock.close()
            dgram.close()

    run(loop, main())


# --------------------------------------------------------------------------
# socket options and backlog


def test_reuse_address_default_and_false(loop):
    async def main():
        srv = await loop.create_server(Echo, "127.0.0.1", 0)
        s = srv.sockets[0]
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        await close_server(srv)
        srv = await loop.create_server(Echo, "127.0.0.1", 0, reuse_address=False)
        s = srv.sockets[0]
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
        await close_server(srv)
        srv = await loop.create_server(Echo, "127.0.0.1", 0, reuse_address=True)
        assert srv.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        await close_server(srv)

    run(loop, main())


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
def test_reuse_port(loop):
    async def main():
        p1, p2 = [], []
        srv1 = await loop.create_server(_factory(p1), "127.0.0.1", 0, reuse_port=True)
        s = srv1.sockets[0]
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
        port = s.getsockname()[1]
        # Without reuse_port the port is taken...
        with pytest.raises(OSError) as ei:
            await loop.create_server(Echo, "127.0.0.1", port)
        assert ei.value.errno == errno.EADDRINUSE
        # ... with it, a second server shares it.
        srv2 = await loop.create_server(_factory(p2), "127.0.0.1", port, reuse_port=True)
        assert srv2.sockets[0].getsockname()[1] == port
        for _ in range(4):
            assert await roundtrip(loop, "127.0.0.1", port) == b"ping"
        assert len(p1) + len(p2) == 4
        await close_server(srv1, p1)
        # srv2 still serves the port alone.
        assert await roundtrip(loop, "127.0.0.1", port) == b"ping"
        await close_server(srv2, p2)

    run(loop, main())


def test_reuse_port_default_off(loop):
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT")

    async def main():
        srv = await loop.create_server(Echo, "127.0.0.1", 0)
        assert srv.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        await close_server(srv)

    run(loop, main())


@pytest.mark.parametrize("backlog", [1, 5, 100, 1000])
def test_backlog(loop, backlog):
    async def main():
        sprotos = []
        srv = await loop.create_server(
            _factory(sprotos), "127.0.0.1", 0, backlog=backlog
        )
        port = srv.sockets[0].getsockname()[1]
        # Sequential connections always get through.
        for _ in range(3):
            assert await roundtrip(loop, "127.0.0.1", port) == b"ping"
        # And a burst of concurrent ones that fits the queue (a bigger one
        # would only measure the kernel's SYN retransmission timer).
        n = min(20, backlog)
        got = await asyncio.gather(
            *(roundtrip(loop, "127.0.0.1", port, b"%d" % i) for i in range(n))
        )
        assert got == [b"%d" % i for i in range(n)]
        await close_server(srv, sprotos)

    run(loop, main())


@pytest.mark.skipif(not PY313, reason="keep_alive is new in 3.13")
def test_keep_alive(loop):
    async def main():
        sprotos = []
        srv = await loop.create_server(_factory(sprotos), "127.0.0.1", 0, keep_alive=True)
        s = srv.sockets[0]
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *s.getsockname())
        await accepted(sprotos)
        st = sprotos[0].transport.get_extra_info("socket")
        assert st.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

        srv = await loop.create_server(Echo, "127.0.0.1", 0)
        assert srv.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        await close_server(srv)

    run(loop, main())


# --------------------------------------------------------------------------
# Server API


def test_server_api(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        assert isinstance(srv, asyncio.AbstractServer)
        assert srv.get_loop() is loop
        assert srv.is_serving() is True
        socks = srv.sockets
        assert isinstance(socks, tuple) and len(socks) == 1
        assert isinstance(socks[0], asyncio.trsock.TransportSocket)
        assert socks[0].getsockname() == addr
        assert socks[0].type == socket.SOCK_STREAM
        srv.close()
        assert srv.is_serving() is False
        assert srv.sockets == ()
        srv.close()  # idempotent
        await asyncio.wait_for(srv.wait_closed(), 5)
        await asyncio.wait_for(srv.wait_closed(), 5)  # again: returns
        assert refused(*addr)

    run(loop, main())


def test_server_async_with(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        async with srv as s:
            assert s is srv
            assert srv.is_serving()
            assert await roundtrip(loop, *addr) == b"ping"
            await wait_until(lambda: all(p.lost.done() for p in sprotos))
        assert not srv.is_serving()
        assert srv.sockets == ()
        assert refused(*addr)

    run(loop, main())


def test_start_serving_false_then_start_serving(loop):
    async def main():
        sprotos = []
        srv = await loop.create_server(
            _factory(sprotos), "127.0.0.1", 0, start_serving=False
        )
        addr = srv.sockets[0].getsockname()
        assert srv.is_serving() is False
        # Bound but not listening yet.
        assert refused(*addr)
        await srv.start_serving()
        assert srv.is_serving() is True
        await srv.start_serving()  # idempotent
        assert await roundtrip(loop, *addr) == b"ping"
        await close_server(srv, sprotos)

    run(loop, main())


def test_serve_forever_and_cancel(loop):
    async def main():
        sprotos = []
        srv = await loop.create_server(
            _factory(sprotos), "127.0.0.1", 0, start_serving=False
        )
        addr = srv.sockets[0].getsockname()
        task = loop.create_task(srv.serve_forever())
        await asyncio.sleep(0)
        assert srv.is_serving()
        assert await roundtrip(loop, *addr) == b"ping"
        await wait_until(lambda: all(p.lost.done() for p in sprotos))
        with pytest.raises(RuntimeError):
            await srv.serve_forever()  # already being awaited
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Cancelling serve_forever() closes the server.
        assert not srv.is_serving()
        assert srv.sockets == ()
        assert refused(*addr)
        with pytest.raises(RuntimeError):
            await srv.serve_forever()  # closed
        await asyncio.wait_for(srv.wait_closed(), 5)

    run(loop, main())


def test_close_ends_serve_forever(loop):
    async def main():
        srv, addr, _ = await echo_server(loop)
        task = loop.create_task(srv.serve_forever())
        await asyncio.sleep(0)
        srv.close()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert task.cancelled()
        await asyncio.wait_for(srv.wait_closed(), 5)

    run(loop, main())


def test_wait_closed_blocks_while_serving(loop):
    async def main():
        srv, addr, _ = await echo_server(loop)
        waiter = loop.create_task(srv.wait_closed())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        srv.close()
        await asyncio.wait_for(waiter, 5)

    run(loop, main())


def test_server_close_keeps_live_clients(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        srv.close()
        assert not srv.is_serving()
        assert refused(*addr)  # no new connections
        # The existing connection still works.
        tr.write(b"still here")
        assert await p.wait_bytes(10) == b"still here"
        assert not sprotos[0].transport.is_closing()
        tr.close()
        await p.lost
        await sprotos[0].lost
        await asyncio.wait_for(srv.wait_closed(), 5)

    run(loop, main())


def test_wait_closed_and_active_connections(loop):
    """3.12+: wait_closed() waits until every connection is gone.
    Up to 3.11 asyncio's returned as soon as the server was closed;
    fastloop's Server has the 3.12.1+ semantics on every version (see
    fastloop/_server.py)."""
    waits = PY312 or _is_fastloop(loop)

    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        srv.close()
        waiter = loop.create_task(srv.wait_closed())
        await asyncio.sleep(0.05)
        if waits:
            assert not waiter.done()
            tr.close()
            await p.lost
            await asyncio.wait_for(waiter, 5)
            assert sprotos[0].lost.done()
        else:
            assert waiter.done()
            tr.close()
            await p.lost
            await sprotos[0].lost

    run(loop, main())


def _needs_close_clients(loop):
    if not hasattr(asyncio.Server, "close_clients") and not _is_fastloop(loop):
        pytest.skip("asyncio.Server.close_clients/abort_clients are new in 3.13")


def _is_fastloop(loop):
    return type(loop).__module__.startswith("fastloop")


def test_close_clients(loop):
    _needs_close_clients(loop)
    big = payload(8 * MB, seed=11)

    class Sender(Proto):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(big)

    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(Sender(loop)) or sprotos[-1], "127.0.0.1", 0
        )
        addr = srv.sockets[0].getsockname()
        clients = []
        for _ in range(3):
            p = Proto(loop)
            await loop.create_connection(lambda: p, *addr)
            p.transport.pause_reading()
            clients.append(p)
        await accepted(sprotos, 3)
        srv.close()
        srv.close_clients()
        for sp in sprotos:
            assert sp.transport.is_closing()
        # close(), not abort(): the buffered data is still delivered.
        for p in clients:
            p.transport.resume_reading()
        for p in clients:
            await p.eof
            assert bytes(p.data) == big
            assert await p.lost is None
        await asyncio.wait_for(srv.wait_closed(), 10)
        assert all(sp.lost.done() for sp in sprotos)

    run(loop, main())


def test_abort_clients(loop):
    _needs_close_clients(loop)
    big = payload(8 * MB, seed=12)

    class Sender(Proto):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(big)

    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(Sender(loop)) or sprotos[-1], "127.0.0.1", 0
        )
        addr = srv.sockets[0].getsockname()
        p = Proto(loop)
        await loop.create_connection(lambda: p, *addr)
        p.transport.pause_reading()
        await accepted(sprotos)
        sp = sprotos[0]
        assert sp.transport.get_write_buffer_size() > 0
        srv.close()
        srv.abort_clients()
        assert await sp.lost is None
        assert sp.transport.get_write_buffer_size() == 0
        p.transport.resume_reading()
        exc = await p.lost
        assert exc is None or isinstance(exc, OSError)
        assert len(p.data) < len(big)
        assert bytes(p.data) == big[: len(p.data)]
        await asyncio.wait_for(srv.wait_closed(), 10)

    run(loop, main())


def test_close_clients_without_clients(loop):
    _needs_close_clients(loop)

    async def main():
        srv, addr, _ = await echo_server(loop)
        srv.close_clients()
        srv.abort_clients()
        assert srv.is_serving()
        srv.close()
        srv.close_clients()
        await asyncio.wait_for(srv.wait_closed(), 5)

    run(loop, main())


# --------------------------------------------------------------------------
# protocol factory errors


@pytest.mark.parametrize("debug", [False, True])
def test_protocol_factory_error(loop, debug):
    errors = record_errors(loop)
    loop.set_debug(debug)
    loop.slow_callback_duration = 10
    seen = []

    def bad_factory():
        raise ZeroDivisionError("no protocol")

    async def main():
        srv = await loop.create_server(bad_factory, "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        if debug:
            await wait_until(lambda: errors)
        else:
            await asyncio.sleep(0.05)
        seen.extend((e.get("message"), type(e.get("exception"))) for e in errors)
        errors.clear()  # a context's traceback may hold the dropped socket
        gc.collect()
        # The accepted socket is dropped: the client sees the end.
        exc = await p.lost
        assert exc is None or isinstance(exc, OSError)
        await close_server(srv)

    with warnings.catch_warnings():
        # asyncio drops the accepted socket without closing it.
        warnings.simplefilter("ignore", ResourceWarning)
        run(loop, main())
        gc.collect()
    msg = "Error on transport creation for incoming connection"
    if debug or _is_fastloop(loop):
        # asyncio reports the failure in debug mode only; fastloop's C
        # accept loop always does (docs/internals.md, Listener).
        assert (msg, ZeroDivisionError) in seen, seen
    else:
        assert msg not in [m for m, _ in seen], seen


# --------------------------------------------------------------------------
# connect_accepted_socket


def test_connect_accepted_socket(loop):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(5)

    async def main():
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *lsock.getsockname())
        conn, peer = lsock.accept()  # already queued by the kernel
        assert conn.getblocking() is True
        sp = Proto(loop, echo=True)
        str_, spr = await loop.connect_accepted_socket(lambda: sp, conn)
        assert spr is sp
        assert isinstance(str_, asyncio.Transport)
        assert conn.getblocking() is False
        assert str_.get_extra_info("peername") == tr.get_extra_info("sockname")
        assert str_.get_extra_info("socket").fileno() == conn.fileno()
        tr.write(b"accepted")
        assert await p.wait_bytes(8) == b"accepted"
        assert bytes(sp.data) == b"accepted"
        tr.close()
        await p.lost
        assert await sp.lost is None
        assert conn.fileno() == -1

    try:
        run(loop, main())
    finally:
        lsock.close()


def test_connect_accepted_socket_errors(loop):
    async def main():
        dgram = socket.socket(type=socket.SOCK_DGRAM)
        a, b = socket.socketpair()
        try:
            with pytest.raises(ValueError):
                await loop.connect_accepted_socket(asyncio.Protocol, dgram)
            with pytest.raises(ValueError):
                await loop.connect_accepted_socket(
                    asyncio.Protocol, a, ssl_handshake_timeout=1
                )
        finally:
            dgram.close()
            a.close()
            b.close()

    run(loop, main())


def test_connect_accepted_socket_unix_pair(loop):
    # Any connected stream socket will do, e.g. one end of a socketpair.
    async def main():
        a, b = socket.socketpair()
        p = Proto(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: p, a)
        b.sendall(b"from b")
        assert await p.wait_bytes(6) == b"from b"
        b.close()
        await p.eof
        assert await p.lost is None
        assert a.fileno() == -1

    run(loop, main())


# --------------------------------------------------------------------------
# accept() out of file descriptors (in a subprocess: it lowers RLIMIT_NOFILE)

_EMFILE_SCRIPT = r"""
import asyncio, json, os, resource, socket, sys, time
kind = sys.argv[1]
if kind == "fastloop":
    import fastloop
    loop = fastloop.new_event_loop()
else:
    loop = asyncio.SelectorEventLoop()
errors = []
loop.set_exception_handler(lambda l, c: errors.append(c))
made = []

class P(asyncio.Protocol):
    def connection_made(self, tr):
        made.append((loop.time(), tr))

async def main():
    srv = await loop.create_server(P, "127.0.0.1", 0)
    addr = srv.sockets[0].getsockname()
    clients = [socket.socket() for _ in range(3)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    hog = []
    try:
        while True:
            hog.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    for c in clients:
        c.connect(addr)
    deadline = loop.time() + 5
    while not errors and loop.time() < deadline:
        await asyncio.sleep(0.01)
    t_free = loop.time()
    for fd in hog:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    while len(made) < 3 and loop.time() < t_free + 5:
        await asyncio.sleep(0.01)
    for _, tr in made:
        tr.close()
    for c in clients:
        c.close()
    srv.close()
    await asyncio.sleep(0.01)
    return {
        "messages": [e.get("message") for e in errors],
        "errnos": [getattr(e.get("exception"), "errno", None) for e in errors],
        "accepted": len(made),
        "resumed_after": (made[-1][0] - t_free) if made else None,
    }

print(json.dumps(loop.run_until_complete(main())))
loop.close()
"""


def test_accept_emfile_reported_and_retried(loop_kind):
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run(
        [sys.executable, "-c", _EMFILE_SCRIPT, loop_kind],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert "socket.accept() out of system resource" in res["messages"], res
    assert errno.EMFILE in res["errnos"], res
    # Accepting resumes by itself once descriptors are available again
    # (asyncio retries after ACCEPT_RETRY_DELAY, 1 s).
    assert res["accepted"] == 3, res
    assert res["resumed_after"] < 4, res
