"""TLS over the loop's transports: create_server(ssl=...) /
create_connection(ssl=...), extra info, start_tls, handshake timeout, large
transfers, asyncio streams with ssl.

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture).  The certificate is self-signed and made for the test session
(with the `cryptography` package if it is installed, else `openssl req`);
nothing leaves 127.0.0.1.
"""
import asyncio
import socket
import ssl

import pytest

from conftest import run
from nethelpers import (  # noqa: F401 (fixtures)
    PY311,
    Echo,
    Proto,
    accepted,
    certs,
    client_ctx,
    server_ctx,
    close_server,
    payload,
    record_errors,
    wait_until,
)

MB = 1024 * 1024


async def tls_echo(loop, server_ctx, **kw):
    protos = []
    srv = await loop.create_server(
        lambda: Echo(protos), "127.0.0.1", 0, ssl=server_ctx, **kw
    )
    return srv, srv.sockets[0].getsockname(), protos


# --------------------------------------------------------------------------
# round trip and extra info


def test_tls_round_trip(loop, server_ctx, client_ctx):
    async def main():
        srv, addr, sprotos = await tls_echo(loop, server_ctx)
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p, *addr, ssl=client_ctx, server_hostname="localhost"
        )
        assert isinstance(tr, asyncio.Transport)
        assert p.events == ["made"]
        for i in range(20):
            msg = b"secret %d;" % i
            tr.write(msg)
        expected = b"".join(b"secret %d;" % i for i in range(20))
        assert await p.wait_bytes(len(expected)) == expected
        tr.close()
        assert await p.lost is None
        await close_server(srv, sprotos)

    run(loop, main())


def test_tls_extra_info(loop, server_ctx, client_ctx):
    async def main():
        srv, addr, sprotos = await tls_echo(loop, server_ctx)
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p, *addr, ssl=client_ctx, server_hostname="localhost"
        )
        await accepted(sprotos)
        st = sprotos[0].transport

        assert tr.get_extra_info("sslcontext") is client_ctx
        assert st.get_extra_info("sslcontext") is server_ctx
        for t in (tr, st):
            obj = t.get_extra_info("ssl_object")
            assert isinstance(obj, ssl.SSLObject)
            assert obj.version() in ("TLSv1.2", "TLSv1.3")
            cipher = t.get_extra_info("cipher")
            assert isinstance(cipher, tuple) and len(cipher) == 3
            assert cipher == obj.cipher()
            assert t.get_extra_info("compression") == obj.compression()
            sock = t.get_extra_info("socket")
            assert isinstance(sock, asyncio.trsock.TransportSocket)
        assert tr.get_extra_info("ssl_object").server_side is False
        assert st.get_extra_info("ssl_object").server_side is True
        peercert = tr.get_extra_info("peercert")
        assert isinstance(peercert, dict)
        assert ((("commonName", "localhost"),)) in peercert["subject"]
        assert ("DNS", "localhost") in peercert["subjectAltName"]
        # The server did not ask for a client certificate.
        assert st.get_extra_info("peercert") is None
        assert tr.get_extra_info("peername") == addr
        assert st.get_extra_info("sockname") == addr
        assert st.get_extra_info("peername") == tr.get_extra_info("sockname")
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_tls_half_close_not_supported(loop, server_ctx, client_ctx):
    async def main():
        srv, addr, sprotos = await tls_echo(loop, server_ctx)
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p, *addr, ssl=client_ctx, server_hostname="localhost"
        )
        assert tr.can_write_eof() is False
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_tls_server_close_gives_client_eof(loop, server_ctx, client_ctx):
    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(Proto(loop)) or sprotos[-1],
            "127.0.0.1",
            0,
            ssl=server_ctx,
        )
        addr = srv.sockets[0].getsockname()
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p, *addr, ssl=client_ctx, server_hostname="localhost"
        )
        await wait_until(lambda: sprotos and sprotos[0].made.done())
        sp = sprotos[0]
        sp.transport.write(b"last words")
        sp.transport.close()
        assert await p.wait_bytes(10) == b"last words"
        # (3.11+ call eof_received() on close_notify, 3.9/3.10 do not.)
        assert await p.lost is None
        assert await sp.lost is None
        await close_server(srv)

    run(loop, main())


# --------------------------------------------------------------------------
# certificate errors


@pytest.mark.parametrize("case", ["untrusted", "wrong_hostname"])
def test_tls_verification_failure(loop, server_ctx, client_ctx, case):
    errors = record_errors(loop)

    async def main():
        srv, addr, sprotos = await tls_echo(loop, server_ctx)
        if case == "untrusted":
            # System CAs only: the self-signed certificate is not trusted.
            ctx, name = ssl.create_default_context(), "localhost"
        else:
            ctx, name = client_ctx, "not-localhost.invalid"
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(
                asyncio.Protocol, *addr, ssl=ctx, server_hostname=name
            )
        await close_server(srv, sprotos)

    run(loop, main())
    errors.clear()


def test_tls_server_hostname_required_without_host(loop, client_ctx):
    async def main():
        a, b = socket.socketpair()
        try:
            with pytest.raises(ValueError):
                await loop.create_connection(asyncio.Protocol, sock=a, ssl=client_ctx)
        finally:
            a.close()
            b.close()

    run(loop, main())


# --------------------------------------------------------------------------
# handshake timeout


def test_tls_client_handshake_timeout(loop, client_ctx):
    # A TCP listener that never answers the ClientHello.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    errors = record_errors(loop)

    async def main():
        t0 = loop.time()
        with pytest.raises((ConnectionAbortedError, asyncio.TimeoutError)):
            await loop.create_connection(
                asyncio.Protocol,
                *lsock.getsockname(),
                ssl=client_ctx,
                server_hostname="localhost",
                ssl_handshake_timeout=0.3,
            )
        dt = loop.time() - t0
        assert 0.25 <= dt < 5, dt

    try:
        run(loop, main())
    finally:
        lsock.close()
    errors.clear()


def test_tls_server_handshake_timeout(loop, server_ctx):
    errors = record_errors(loop)

    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(Proto(loop)) or sprotos[-1],
            "127.0.0.1",
            0,
            ssl=server_ctx,
            ssl_handshake_timeout=0.3,
        )
        addr = srv.sockets[0].getsockname()
        # A plain TCP client that never starts the handshake.
        p = Proto(loop)
        t0 = loop.time()
        tr, _ = await loop.create_connection(lambda: p, *addr)
        exc = await p.lost  # the server gave up on us
        assert exc is None or isinstance(exc, OSError)
        dt = loop.time() - t0
        assert 0.25 <= dt < 5, dt
        assert p.data == b""
        # The application protocol never saw a connection.
        assert sprotos == [] or sprotos[0].events == []
        await close_server(srv)

    run(loop, main())
    errors.clear()


def test_tls_server_failed_handshake_debug_context(loop, server_ctx):
    # In debug mode a failed handshake of an accepted connection is
    # reported with the application-side transport asyncio's
    # _accept_connection2 made for it (not None once the protocol has
    # forgotten it).
    loop.set_debug(True)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main():
        srv = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=server_ctx)
        addr = srv.sockets[0].getsockname()
        # Plain text instead of a ClientHello.
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        tr.write(b"GET / HTTP/1.0\r\n\r\n" * 10)
        await p.lost
        await wait_until(lambda: contexts)
        await close_server(srv)

    run(loop, main())
    [ctx] = [
        c for c in contexts
        if c["message"] == "Error on transport creation for incoming connection"
    ]
    assert isinstance(ctx["exception"], ssl.SSLError)
    assert isinstance(ctx["transport"], asyncio.Transport)
    assert ctx["transport"].is_closing()
    assert isinstance(ctx["protocol"], asyncio.Protocol)


# --------------------------------------------------------------------------
# large transfer


def test_tls_large_transfer(loop, server_ctx, client_ctx):
    N = 8 * MB
    data = payload(N, seed=51)

    async def main():
        srv, addr, sprotos = await tls_echo(loop, server_ctx)
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p, *addr, ssl=client_ctx, server_hostname="localhost"
        )
        tr.write(data)
        # (Whether one big write pauses the protocol depends on the
        # version's sslproto: 3.11+ encrypt it all into the raw transport.)
        assert await p.wait_bytes(N) == data
        await wait_until(lambda: tr.get_write_buffer_size() == 0)
        assert len(p.resumes) == len(p.pauses)
        tr.close()
        assert await p.lost is None
        await close_server(srv, sprotos)

    run(loop, main(), timeout=90)


# --------------------------------------------------------------------------
# start_tls


def test_start_tls_upgrade(loop, server_ctx, client_ctx):
    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(Proto(loop)) or sprotos[-1], "127.0.0.1", 0
        )
        addr = srv.sockets[0].getsockname()
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        assert tr.get_extra_info("sslcontext") is None
        tr.write(b"STARTTLS\n")
        await wait_until(lambda: sprotos and len(sprotos[0].data) >= 9)
        sp = sprotos[0]
        assert bytes(sp.data) == b"STARTTLS\n"
        # The server answers in clear text and upgrades at once (before the
        # client can send its ClientHello).
        sp.transport.write(b"OK\n")
        stask = loop.create_task(
            loop.start_tls(sp.transport, sp, server_ctx, server_side=True)
        )
        assert await p.wait_bytes(3) == b"OK\n"
        ctr = await loop.start_tls(tr, p, client_ctx, server_hostname="localhost")
        st = await stask
        assert ctr is not tr and st is not sp.transport
        assert isinstance(ctr, asyncio.Transport)
        assert ctr.get_extra_info("sslcontext") is client_ctx
        assert isinstance(ctr.get_extra_info("ssl_object"), ssl.SSLObject)
        assert ctr.get_protocol() is p
        # The application protocols keep going over TLS.
        ctr.write(b"over tls")
        await wait_until(lambda: len(sp.data) >= 9 + 8)
        assert bytes(sp.data) == b"STARTTLS\nover tls"
        st.write(b"reply")
        assert await p.wait_bytes(8) == b"OK\nreply"
        assert p.events.count("made") == 1 and sp.events.count("made") == 1
        ctr.close()
        assert await p.lost is None
        assert await sp.lost is None
        await close_server(srv)

    run(loop, main())


def test_start_tls_bad_arguments(loop, server_ctx):
    async def main():
        srv, addr, sprotos = await tls_echo(loop, server_ctx)
        p = Proto(loop)
        a, b = socket.socketpair()
        tr, _ = await loop.connect_accepted_socket(lambda: p, a)
        with pytest.raises(TypeError):
            await loop.start_tls(tr, p, "not a context")
        tr.close()
        b.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


# --------------------------------------------------------------------------
# streams


def test_streams_with_ssl(loop, server_ctx, client_ctx):
    async def handler(reader, writer):
        assert writer.get_extra_info("sslcontext") is server_ctx
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    async def main():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx)
        addr = srv.sockets[0].getsockname()
        reader, writer = await asyncio.open_connection(
            *addr, ssl=client_ctx, server_hostname="localhost"
        )
        for i in range(20):
            writer.write(b"line %d\n" % i)
            await writer.drain()
            assert await reader.readline() == b"LINE %d\n" % i
        big = b"".join(b"%05d" % i + b"y" * 994 + b"\n" for i in range(3000))

        async def send():
            writer.write(big)
            await writer.drain()

        _, got = await asyncio.gather(send(), reader.readexactly(len(big)))
        assert got == big.upper()
        writer.close()
        await writer.wait_closed()
        srv.close()
        await asyncio.wait_for(srv.wait_closed(), 10)

    run(loop, main(), timeout=60)


@pytest.mark.skipif(not PY311, reason="StreamWriter.start_tls is new in 3.11")
def test_stream_writer_start_tls(loop, server_ctx, client_ctx):
    async def handler(reader, writer):
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"GO\n")
        await writer.drain()
        await writer.start_tls(server_ctx)
        line = await reader.readline()
        writer.write(b"tls:" + line)
        await writer.drain()
        writer.close()

    async def main():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"GO\n"
        await writer.start_tls(client_ctx, server_hostname="localhost")
        assert writer.get_extra_info("sslcontext") is client_ctx
        writer.write(b"hello\n")
        assert await reader.readline() == b"tls:hello\n"
        writer.close()
        await writer.wait_closed()
        srv.close()
        await asyncio.wait_for(srv.wait_closed(), 10)

    run(loop, main())


def test_unix_tls(loop, server_ctx, client_ctx, tmp_path):
    path = str(tmp_path / "tls.sock")

    async def main():
        sprotos = []
        srv = await loop.create_unix_server(lambda: Echo(sprotos), path, ssl=server_ctx)
        with pytest.raises(ValueError):  # server_hostname is required
            await loop.create_unix_connection(asyncio.Protocol, path, ssl=client_ctx)
        p = Proto(loop)
        tr, _ = await loop.create_unix_connection(
            lambda: p, path, ssl=client_ctx, server_hostname="localhost"
        )
        tr.write(b"unix tls")
        assert await p.wait_bytes(8) == b"unix tls"
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


@pytest.mark.skipif(not PY311, reason="ssl_shutdown_timeout is new in 3.11")
def test_ssl_shutdown_timeout_accepted(loop, server_ctx, client_ctx):
    async def main():
        srv, addr, sprotos = await tls_echo(loop, server_ctx, ssl_shutdown_timeout=5)
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p,
            *addr,
            ssl=client_ctx,
            server_hostname="localhost",
            ssl_shutdown_timeout=5,
        )
        tr.write(b"x")
        assert await p.wait_bytes(1) == b"x"
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_many_tls_clients(loop, server_ctx, client_ctx):
    async def one(addr, i):
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p, *addr, ssl=client_ctx, server_hostname="localhost"
        )
        msg = b"tls client %d" % i
        tr.write(msg)
        got = await p.wait_bytes(len(msg))
        tr.close()
        await p.lost
        return got

    async def main():
        srv, addr, sprotos = await tls_echo(loop, server_ctx)
        got = await asyncio.gather(*(one(addr, i) for i in range(50)))
        assert got == [b"tls client %d" % i for i in range(50)]
        await close_server(srv, sprotos)

    run(loop, main(), timeout=60)



# --------------------------------------------------------------------------
# closing a TLS client in the middle of a download (uvloop #471: the
# aiohttp client's connection kept receiving after close())


class _Streamer(asyncio.Protocol):
    """Server side: writes 64 KiB chunks for as long as it may.

    Never more than 16 in one callback: once the peer has started the TLS
    shutdown, asyncio's SSL transport drops writes without pausing the
    protocol or reporting is_closing(), so a loop until paused would spin.
    """

    def __init__(self, loop, protos):
        self.loop = loop
        self.lost = loop.create_future()
        self.paused = False
        protos.append(self)

    def connection_made(self, transport):
        self.transport = transport
        self._fill()

    def _fill(self):
        for _ in range(16):
            if self.paused or self.transport.is_closing() or self.lost.done():
                return
            self.transport.write(b"d" * 65536)
        self.loop.call_soon(self._fill)

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        self.loop.call_soon(self._fill)

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


@pytest.mark.parametrize("how", ["close", "abort"])
def test_tls_client_closed_mid_download(loop, server_ctx, client_ctx, how):
    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: _Streamer(loop, sprotos), "127.0.0.1", 0, ssl=server_ctx
        )
        addr = srv.sockets[0].getsockname()
        p = Proto(loop)
        kw = {"ssl_shutdown_timeout": 5.0} if PY311 else {}
        tr, _ = await loop.create_connection(
            lambda: p, *addr, ssl=client_ctx, server_hostname="localhost", **kw
        )
        await p.wait_bytes(1 << 20)
        getattr(tr, how)()
        assert tr.is_closing()
        seen = len(p.data)
        # The client's connection ends promptly (well before the shutdown
        # timeout), and without data after close().
        exc = await asyncio.wait_for(p.lost, 10)
        assert exc is None or isinstance(exc, (ConnectionError, ssl.SSLError))
        assert len(p.data) == seen
        # The server learns of it too: its transport is lost.
        await asyncio.wait_for(sprotos[0].lost, 10)
        srv.close()
        await srv.wait_closed()

    run(loop, main(), timeout=60)
