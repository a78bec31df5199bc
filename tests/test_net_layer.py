"""Smoke tests of fastloop's Python networking layer (fastloop/_net.py,
_server.py, _sockops.py, _dns.py) on top of the C StreamTransport/Listener.

Parametrized tests run on fastloop and on asyncio's SelectorEventLoop (the
``loop`` fixture): asyncio is the reference. Version-dependent asyncio
behaviour that fastloop deliberately extends (Server.wait_closed semantics of
3.12.1+, close_clients on < 3.13, sock_recvfrom/sock_sendto on < 3.11) is
tested on fastloop, or on asyncio only where it has it.
"""
import asyncio
import errno
import gc
import inspect
import io
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import warnings

import pytest

from conftest import run

import fastloop
from fastloop import _dns

PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)

MB = 1024 * 1024


# -- helpers ------------------------------------------------------------------


def is_fastloop(loop):
    return isinstance(loop, fastloop.Loop)


class Echo(asyncio.Protocol):
    def __init__(self):
        self.transport = None
        self.lost = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()

    def connection_lost(self, exc):
        self.lost = exc


class Collect(asyncio.Protocol):
    """Collects data; ``done`` resolves on connection_lost."""

    def __init__(self, loop, expect=None):
        self.data = bytearray()
        self.expect = expect
        self.done = loop.create_future()
        self.enough = loop.create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data
        if self.expect is not None and len(self.data) >= self.expect:
            if not self.enough.done():
                self.enough.set_result(None)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)
        if not self.enough.done():
            self.enough.set_result(None)


def _make_cert(dirname):
    """A self-signed certificate for localhost/127.0.0.1: (certfile, keyfile)."""
    cert = os.path.join(dirname, "cert.pem")
    key = os.path.join(dirname, "key.pem")
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("neither cryptography nor openssl available")
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", cert, "-days", "2",
                "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
        return cert, key
    pkey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    crt = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pkey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(pkey, hashes.SHA256())
    )
    with open(cert, "wb") as f:
        f.write(crt.public_bytes(serialization.Encoding.PEM))
    with open(key, "wb") as f:
        f.write(
            pkey.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert, key


@pytest.fixture(scope="session")
def certfiles(tmp_path_factory):
    return _make_cert(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def ssl_contexts(certfiles):
    cert, key = certfiles
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cert)
    return server, client


def refused_address():
    """(sock, addr): bound, not listening, so connecting is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()


def patch_getaddrinfo(loop, infos):
    """Make loop.getaddrinfo return ``infos`` for any non-numeric host."""

    async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
        return list(infos)

    loop.getaddrinfo = getaddrinfo


async def close_server(server):
    server.close()
    await server.wait_closed()


# -- signatures ---------------------------------------------------------------

METHODS = [
    "create_connection", "create_server", "create_unix_connection",
    "create_unix_server", "connect_accepted_socket", "start_tls", "sendfile",
    "sock_sendfile", "sock_recv", "sock_recv_into", "sock_sendall",
    "sock_connect", "sock_accept", "sock_recvfrom", "sock_recvfrom_into",
    "sock_sendto",
]


@pytest.mark.parametrize("name", METHODS)
def test_signature_matches_running_asyncio(name):
    ours = getattr(fastloop.Loop, name)
    assert inspect.iscoroutinefunction(ours)
    ref = getattr(asyncio.SelectorEventLoop, name, None)
    if ref is None:  # sock_recvfrom & co before 3.11: offered anyway
        assert name in ("sock_recvfrom", "sock_recvfrom_into", "sock_sendto")
        return
    assert inspect.signature(ours) == inspect.signature(ref)


def test_newer_keywords_rejected_on_older_pythons():
    loop = fastloop.new_event_loop()
    try:
        if not PY312:
            with pytest.raises(TypeError, match="all_errors"):
                loop.run_until_complete(
                    loop.create_connection(asyncio.Protocol, "x", 1, all_errors=True)
                )
        if not PY313:
            with pytest.raises(TypeError, match="keep_alive"):
                loop.run_until_complete(
                    loop.create_server(asyncio.Protocol, keep_alive=True)
                )
        if not PY311:
            with pytest.raises(TypeError, match="ssl_shutdown_timeout"):
                loop.run_until_complete(
                    loop.create_connection(
                        asyncio.Protocol, "x", 1, ssl_shutdown_timeout=1
                    )
                )
    finally:
        loop.close()


# -- address resolution -------------------------------------------------------

HOSTS = [
    "127.0.0.1", "::1", "fe80::1%lo", "fe80::1%1", "::1%lo", "::1%1",
    "fe80::1%nosuch", "127.0.0.1%lo", "ff02::1%lo", "ff05::1%lo",
    "fe80::1%4294967296", "fe80::1%", "::ffff:1.2.3.4", b"127.0.0.1",
    "1.2.3", "0.0.0.0", "localhost",
]


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("family", [0, socket.AF_INET, socket.AF_INET6])
@pytest.mark.parametrize("port", [80, "80", None, "", "http"])
def test_ipaddr_info_agrees_with_getaddrinfo(host, family, port):
    fast = _dns.ipaddr_info(host, port, family, socket.SOCK_STREAM, 0)
    if fast is None:
        return  # getaddrinfo() decides
    real = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0)
    assert fast == tuple(real[0])


def test_ipaddr_info_keeps_scope_and_flowinfo():
    info = _dns.ipaddr_info("fe80::1%lo", 443, 0, socket.SOCK_STREAM, 0)
    assert info[0] == socket.AF_INET6
    assert info[4] == ("fe80::1", 443, 0, socket.if_nametoindex("lo"))
    info = _dns.ipaddr_info("::1", 1, 0, socket.SOCK_DGRAM, 0, 5, 7)
    assert info == (socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", ("::1", 1, 5, 7))
    assert _dns.ipaddr_info("::1", 1, 0, socket.SOCK_RAW, 0) is None
    assert _dns.ipaddr_info("127.0.0.1", 1, 0, socket.SOCK_STREAM, 99) is None


def test_interleave_addrinfos():
    v4 = [(socket.AF_INET, 1, 6, "", ("1.1.1.%d" % i, 1)) for i in range(3)]
    v6 = [(socket.AF_INET6, 1, 6, "", ("::%d" % i, 1, 0, 0)) for i in range(2)]
    mixed = [v6[0], v6[1], v4[0], v4[1], v4[2]]
    assert _dns.interleave_addrinfos(mixed) == [v6[0], v4[0], v6[1], v4[1], v4[2]]
    assert _dns.interleave_addrinfos(mixed, 2) == [v6[0], v6[1], v4[0], v4[1], v4[2]]
    assert _dns.interleave_addrinfos([]) == []


# -- create_connection / create_server -----------------------------------------


def test_tcp_echo_protocols_and_streams(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()
        assert server.is_serving() and server.get_loop() is loop
        assert isinstance(server.sockets[0], asyncio.trsock.TransportSocket)

        data = os.urandom(2 * MB)
        tr, pr = await loop.create_connection(
            lambda: Collect(loop, len(data)), host, port
        )
        assert isinstance(tr, asyncio.Transport)
        assert tr.get_extra_info("peername") == (host, port)
        tr.write(data)
        await pr.enough
        assert bytes(pr.data) == data
        tr.close()
        await pr.done

        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"ping")
        await writer.drain()
        assert await reader.readexactly(4) == b"ping"
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        assert server.sockets == () and not server.is_serving()

    run(loop, main())


def test_start_server_streams(loop):
    async def handle(reader, writer):
        line = await reader.readline()
        writer.write(line.upper())
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection(
                *server.sockets[0].getsockname()
            )
            writer.write(b"hello\n")
            assert await reader.read() == b"HELLO\n"
            writer.close()
            await writer.wait_closed()

    run(loop, main())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(server_hostname="h"), "server_hostname is only meaningful with ssl"),
        (dict(ssl_handshake_timeout=1), "ssl_handshake_timeout is only meaningful"),
        (dict(ssl=True, host=None, port=1), "You must set server_hostname"),
        (dict(host=None, port=None), "host and port was not specified"),
        (dict(sock="S"), "host/port and sock can not be specified"),
    ],
)
def test_create_connection_validation(loop, kwargs, message):
    kwargs.setdefault("host", "127.0.0.1")
    kwargs.setdefault("port", 1)
    sock = None
    if kwargs.get("sock") == "S":
        sock = kwargs["sock"] = socket.socket()
    try:
        with pytest.raises(ValueError, match=message):
            run(loop, loop.create_connection(asyncio.Protocol, **kwargs))
    finally:
        if sock is not None:
            sock.close()


def test_create_connection_sock_validation(loop):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(ValueError, match="A Stream Socket was expected"):
            run(loop, loop.create_connection(asyncio.Protocol, sock=udp))
    finally:
        udp.close()
    with pytest.raises(TypeError, match="ssl argument must be an SSLContext"):
        run(loop, loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=True))
    with pytest.raises(ValueError, match="Neither host/port nor sock"):
        run(loop, loop.create_server(asyncio.Protocol))


def test_create_connection_refused_and_multiple(loop):
    s1, a1 = refused_address()
    s2, a2 = refused_address()
    try:
        with pytest.raises(ConnectionRefusedError):
            run(loop, loop.create_connection(asyncio.Protocol, *a1))

        infos = [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", a1),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", a2),
        ]
        patch_getaddrinfo(loop, infos)
        with pytest.raises(OSError, match="Multiple exceptions") as ei:
            run(loop, loop.create_connection(asyncio.Protocol, "name.invalid", 1))
        assert str(a1[1]) in str(ei.value) and str(a2[1]) in str(ei.value)
        if PY312:
            with pytest.raises(ExceptionGroup) as eg:  # noqa: F821
                run(
                    loop,
                    loop.create_connection(
                        asyncio.Protocol, "name.invalid", 1, all_errors=True
                    ),
                )
            assert len(eg.value.exceptions) == 2
            assert all(isinstance(e, ConnectionRefusedError) for e in eg.value.exceptions)
    finally:
        s1.close()
        s2.close()


@pytest.mark.parametrize("delay", [None, 0.05])
def test_create_connection_tries_next_address(loop, delay):
    bad, bad_addr = refused_address()

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        good_addr = server.sockets[0].getsockname()
        patch_getaddrinfo(
            loop,
            [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", bad_addr),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", good_addr),
            ],
        )
        tr, pr = await loop.create_connection(
            lambda: Collect(loop, 3),
            "name.invalid",
            1,
            happy_eyeballs_delay=delay,
            interleave=2 if delay else None,
        )
        assert tr.get_extra_info("peername") == good_addr
        tr.write(b"abc")
        await pr.enough
        tr.close()
        await pr.done
        await close_server(server)

    try:
        run(loop, main())
    finally:
        bad.close()


@pytest.mark.skipif(not PY312, reason="eager_task_factory is 3.12+")
def test_happy_eyeballs_with_eager_task_factory(loop):
    if not is_fastloop(loop):
        pytest.skip("asyncio's staggered_race asserts with eager tasks (3.12.1/3.13.0)")
    bad, bad_addr = refused_address()

    async def main():
        loop.set_task_factory(asyncio.eager_task_factory)
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        good_addr = server.sockets[0].getsockname()
        patch_getaddrinfo(
            loop,
            [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", bad_addr),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", good_addr),
            ],
        )
        tr, _ = await loop.create_connection(
            asyncio.Protocol, "name.invalid", 1, happy_eyeballs_delay=0.05
        )
        assert tr.get_extra_info("peername") == good_addr
        tr.close()
        await close_server(server)

    try:
        run(loop, main())
    finally:
        bad.close()


def test_create_connection_local_addr(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        tr, _ = await loop.create_connection(
            asyncio.Protocol, *addr, local_addr=("127.0.0.1", 0)
        )
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        tr.close()
        await close_server(server)

    run(loop, main())


def test_create_connection_sock_cancelled_closes_once(loop):
    """uvloop #738: cancelling create_connection(sock=) must not close the
    fd twice (a later socket reusing the number must survive)."""

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        sock = socket.socket()
        sock.connect(server.sockets[0].getsockname())
        sock.setblocking(False)
        task = loop.create_task(loop.create_connection(asyncio.Protocol, sock=sock))
        await asyncio.sleep(0)  # transport made, waiting for its waiter
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(3):
            await asyncio.sleep(0)
        assert sock.fileno() == -1
        other = socket.socket()
        try:
            sock.close()  # must not close `other`
            other.getsockname()
            os.fstat(other.fileno())
        finally:
            other.close()
        await close_server(server)

    run(loop, main())


def test_create_connection_protocol_factory_error_closes_socket(loop, loop_kind):
    class Boom(Exception):
        pass

    def factory():
        raise Boom

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        with pytest.raises(Boom):
            await loop.create_connection(factory, *server.sockets[0].getsockname())
        await close_server(server)

    gc.collect()
    with warnings.catch_warnings():
        if loop_kind == "asyncio":
            # asyncio (3.9-3.13) leaves the connected socket to be dropped
            # with the exception: "unclosed socket", an error under -X dev
            # -W error.  fastloop closes it (no warning allowed there).
            warnings.simplefilter("ignore", ResourceWarning)
        run(loop, main())
        gc.collect()
    # the loop fixture checks that no fd leaked


def test_create_server_multiple_hosts_and_reuse_port(loop):
    async def main():
        server = await loop.create_server(
            Echo, ["127.0.0.1", "127.0.0.1"], 0, reuse_port=True
        )
        assert len(server.sockets) == 1  # the same address is bound once
        sock = server.sockets[0]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        await close_server(server)

    run(loop, main())


@pytest.mark.skipif(not PY313, reason="keep_alive is 3.13+")
def test_create_server_keep_alive(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, keep_alive=True)
        assert server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        await close_server(server)

    run(loop, main())


def test_create_server_bind_error(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(OSError) as ei:
            await loop.create_server(Echo, "127.0.0.1", port, reuse_address=False)
        assert ei.value.errno == errno.EADDRINUSE
        assert "error while attempting to bind on address" in str(ei.value)
        await close_server(server)

    run(loop, main())


def test_server_start_serving_false_and_serve_forever(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        addr = server.sockets[0].getsockname()
        task = loop.create_task(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        with pytest.raises(RuntimeError, match="already being awaited"):
            await server.serve_forever()
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        writer.close()
        await writer.wait_closed()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving() and server.sockets == ()
        with pytest.raises(RuntimeError, match="is closed"):
            await server.serve_forever()

    run(loop, main())


def test_server_wait_closed_waits_for_clients(loop):
    if not is_fastloop(loop) and sys.version_info < (3, 12, 1):
        pytest.skip("asyncio < 3.12.1 returns early")

    async def main():
        protos = []

        def factory():
            protos.append(Echo())
            return protos[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            *server.sockets[0].getsockname()
        )
        writer.write(b"a")
        await reader.readexactly(1)
        waiter = loop.create_task(server.wait_closed())
        await asyncio.sleep(0.01)
        assert not waiter.done()  # still open
        server.close()
        await asyncio.sleep(0.01)
        assert not waiter.done()  # a client is connected
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(waiter, 5)
        await server.wait_closed()  # returns at once now

    run(loop, main())


def test_server_close_and_abort_clients(loop):
    if not is_fastloop(loop) and not PY313:
        pytest.skip("asyncio has close_clients/abort_clients from 3.13")

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        streams = [await asyncio.open_connection(*addr) for _ in range(3)]
        for reader, writer in streams:  # make sure they are accepted
            writer.write(b"1")
            await reader.readexactly(1)
        server.close()
        server.close_clients()
        for reader, writer in streams:
            assert await reader.read() == b""
            writer.close()
        await asyncio.wait_for(server.wait_closed(), 5)

        server = await loop.create_server(Echo, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"1")
        await reader.readexactly(1)
        server.abort_clients()
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await reader.readexactly(1)
        writer.close()
        await close_server(server)

    run(loop, main())


def test_connect_accepted_socket(loop):
    async def main():
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        client = socket.create_connection(lsock.getsockname())
        conn, _ = lsock.accept()
        lsock.close()
        tr, pr = await loop.connect_accepted_socket(lambda: Collect(loop, 5), conn)
        client.sendall(b"hello")
        await pr.enough
        assert bytes(pr.data) == b"hello"
        tr.write(b"back")
        client.settimeout(5)
        assert client.recv(10) == b"back"
        client.close()
        await pr.done
        tr.close()

    run(loop, main())


# -- Unix sockets -----------------------------------------------------------------


@pytest.fixture
def sockpath():
    d = tempfile.mkdtemp()
    yield os.path.join(d, "s.sock")
    shutil.rmtree(d, ignore_errors=True)


def test_unix_echo_and_stale_file(loop, sockpath):
    async def main():
        # A stale socket file from a dead server is replaced.
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(sockpath)
        stale.close()
        server = await loop.create_unix_server(Echo, sockpath)
        tr, pr = await loop.create_unix_connection(lambda: Collect(loop, 4), sockpath)
        tr.write(b"unix")
        await pr.enough
        assert bytes(pr.data) == b"unix"
        assert tr.get_extra_info("peername") == sockpath
        tr.close()
        await pr.done
        r, w = await asyncio.open_unix_connection(sockpath)
        w.write(b"s")
        assert await r.readexactly(1) == b"s"
        w.close()
        await w.wait_closed()
        await close_server(server)
        # 3.13 removes the socket file on close (cleanup_socket=True)
        assert os.path.exists(sockpath) is (not PY313)

    run(loop, main())


@pytest.mark.skipif(not PY313, reason="cleanup_socket is 3.13+")
def test_unix_server_cleanup_socket_false(loop, sockpath):
    async def main():
        server = await loop.create_unix_server(Echo, sockpath, cleanup_socket=False)
        await close_server(server)
        assert os.path.exists(sockpath)

    run(loop, main())


def test_unix_abstract_namespace(loop):
    name = "\0fastloop-test-%d-%d" % (os.getpid(), id(loop))

    async def main():
        server = await loop.create_unix_server(Echo, name)
        r, w = await asyncio.open_unix_connection(name)
        w.write(b"abs")
        assert await r.readexactly(3) == b"abs"
        w.close()
        await w.wait_closed()
        await close_server(server)

    run(loop, main())


def test_unix_validation(loop, sockpath):
    tcp = socket.socket()
    try:
        with pytest.raises(ValueError, match="UNIX Domain Stream Socket"):
            run(loop, loop.create_unix_connection(asyncio.Protocol, sock=tcp))
        with pytest.raises(ValueError, match="UNIX Domain Stream Socket"):
            run(loop, loop.create_unix_server(asyncio.Protocol, sock=tcp))
    finally:
        tcp.close()
    with pytest.raises(ValueError, match="no path and sock"):
        run(loop, loop.create_unix_connection(asyncio.Protocol))
    with pytest.raises(ValueError, match="you have to pass server_hostname"):
        run(loop, loop.create_unix_connection(asyncio.Protocol, sockpath, ssl=True))
    with pytest.raises(FileNotFoundError):
        run(loop, loop.create_unix_connection(asyncio.Protocol, sockpath))


# -- TLS ----------------------------------------------------------------------------


def test_tls_echo(loop, ssl_contexts):
    server_ctx, client_ctx = ssl_contexts

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_ctx)
        host, port = server.sockets[0].getsockname()
        reader, writer = await asyncio.open_connection(
            host, port, ssl=client_ctx, server_hostname="localhost"
        )
        assert writer.get_extra_info("sslcontext") is client_ctx
        assert writer.get_extra_info("peercert") is not None
        data = os.urandom(3 * MB)
        writer.write(data)
        assert await reader.readexactly(len(data)) == data
        writer.close()
        await writer.wait_closed()
        await close_server(server)

    run(loop, main())


def test_tls_handshake_failure(loop, ssl_contexts):
    server_ctx, _ = ssl_contexts
    untrusting = ssl.create_default_context()  # does not know our CA

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_ctx)
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(
                asyncio.Protocol,
                *server.sockets[0].getsockname(),
                ssl=untrusting,
                server_hostname="localhost",
            )
        await close_server(server)

    run(loop, main())


class Silent(asyncio.Protocol):
    """Accepts and never answers (a TLS handshake against it stalls)."""

    transports = []

    def connection_made(self, transport):
        self.transports.append(transport)


def test_tls_handshake_cancelled_closes_socket(loop, ssl_contexts):
    _, client_ctx = ssl_contexts

    async def main():
        Silent.transports = []
        server = await loop.create_server(Silent, "127.0.0.1", 0)
        task = loop.create_task(
            loop.create_connection(
                asyncio.Protocol,
                *server.sockets[0].getsockname(),
                ssl=client_ctx,
                server_hostname="localhost",
            )
        )
        while not Silent.transports:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The client side goes away: the server sees EOF.
        tr = Silent.transports[0]
        for _ in range(200):
            if tr.is_closing():
                break
            tr.write(b"")  # no-op; just wait for the EOF to close it
            await asyncio.sleep(0.005)
        for t in Silent.transports:
            t.close()
        await close_server(server)
        for _ in range(5):
            await asyncio.sleep(0)

    run(loop, main())


def test_tls_handshake_timeout(loop, ssl_contexts):
    _, client_ctx = ssl_contexts

    async def main():
        Silent.transports = []
        server = await loop.create_server(Silent, "127.0.0.1", 0)
        with pytest.raises((ConnectionAbortedError, asyncio.TimeoutError)):
            await loop.create_connection(
                asyncio.Protocol,
                *server.sockets[0].getsockname(),
                ssl=client_ctx,
                server_hostname="localhost",
                ssl_handshake_timeout=0.1,
            )
        for t in Silent.transports:
            t.close()
        await close_server(server)
        for _ in range(5):
            await asyncio.sleep(0)

    run(loop, main())


def test_connect_accepted_socket_tls(loop, ssl_contexts):
    server_ctx, client_ctx = ssl_contexts

    async def main():
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.setblocking(False)
        accept = loop.create_task(loop.sock_accept(lsock))
        client = loop.create_task(
            asyncio.open_connection(
                *lsock.getsockname(), ssl=client_ctx, server_hostname="localhost"
            )
        )
        conn, _ = await accept
        lsock.close()
        tr, pr = await loop.connect_accepted_socket(
            lambda: Collect(loop, 4), conn, ssl=server_ctx
        )
        reader, writer = await client
        writer.write(b"tls!")
        await pr.enough
        assert bytes(pr.data) == b"tls!"
        tr.write(b"back")
        assert await reader.readexactly(4) == b"back"
        writer.close()
        await pr.done
        tr.close()
        await asyncio.sleep(0.01)

    run(loop, main())


@pytest.mark.skipif(not PY311, reason="StreamWriter.start_tls is 3.11+")
def test_start_tls_streams(loop, ssl_contexts):
    server_ctx, client_ctx = ssl_contexts

    async def handle(reader, writer):
        await reader.readline()
        writer.write(b"GO\n")
        await writer.drain()
        await writer.start_tls(server_ctx)
        data = await reader.readexactly(3)
        writer.write(data[::-1])
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"GO\n"
        await writer.start_tls(client_ctx, server_hostname="localhost")
        assert writer.get_extra_info("cipher") is not None
        writer.write(b"abc")
        assert await reader.read() == b"cba"
        writer.close()
        await writer.wait_closed()
        await close_server(server)

    run(loop, main())


def test_start_tls_protocols(loop, ssl_contexts):
    server_ctx, client_ctx = ssl_contexts

    async def main():
        server_done = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr

            def data_received(self, data):
                if data == b"UP":
                    self.tr.write(b"OK")
                    loop.create_task(self.upgrade())

            async def upgrade(self):
                app = Collect(loop, 5)
                tls = await loop.start_tls(self.tr, app, server_ctx, server_side=True)
                await app.enough
                tls.write(bytes(app.data).upper())
                server_done.set_result(tls)

        server = await loop.create_server(Server, "127.0.0.1", 0)
        pr = Collect(loop, 2)
        tr, _ = await loop.create_connection(lambda: pr, *server.sockets[0].getsockname())
        tr.write(b"UP")
        await pr.enough
        app = Collect(loop, 5)
        tls = await loop.start_tls(tr, app, client_ctx, server_hostname="localhost")
        tls.write(b"hello")
        server_tls = await server_done
        while len(app.data) < 5:
            await asyncio.sleep(0.005)
        assert bytes(app.data) == b"HELLO"
        tls.close()
        server_tls.close()  # (left open: "unclosed transport" under -X dev)
        await close_server(server)

    run(loop, main())


def test_start_tls_type_errors(loop, ssl_contexts):
    _, client_ctx = ssl_contexts

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        tr, _ = await loop.create_connection(asyncio.Protocol, *server.sockets[0].getsockname())
        with pytest.raises(TypeError, match="sslcontext is expected"):
            await loop.start_tls(tr, asyncio.Protocol(), object())
        tr.close()
        await close_server(server)

    run(loop, main())


# -- sendfile --------------------------------------------------------------------------


@pytest.fixture
def bigfile():
    data = os.urandom(4 * MB + 123)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        f.seek(0)
        yield f, data


async def _collecting_server(loop, expect, ssl_ctx=None):
    collected = []

    def factory():
        collected.append(Collect(loop, expect))
        return collected[-1]

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ssl_ctx)
    return server, collected


def test_sendfile_native(loop, bigfile):
    f, data = bigfile

    async def main():
        server, collected = await _collecting_server(loop, len(data))
        pr = Collect(loop)
        tr, _ = await loop.create_connection(lambda: pr, *server.sockets[0].getsockname())
        tr.write(b"head:")
        n = await loop.sendfile(tr, f)
        assert n == len(data) and f.tell() == len(data)
        tr.write(b":tail")
        while not collected or len(collected[0].data) < len(data) + 10:
            await asyncio.sleep(0.01)
        assert bytes(collected[0].data) == b"head:" + data + b":tail"
        # offset/count
        f.seek(0)
        n = await loop.sendfile(tr, f, 100, 1000)
        assert n == 1000 and f.tell() == 1100
        tr.close()
        await close_server(server)

    run(loop, main())


@pytest.mark.parametrize("debug", [False, True])
def test_sendfile_from_accepted_transport(loop, bigfile, debug):
    """The server side sends a file after a large write() that is still
    buffered (native sendfile must wait for the buffer to drain)."""
    f, data = bigfile
    head = os.urandom(8 * MB)
    loop.set_debug(debug)

    async def main():
        done = loop.create_future()

        class Sender(asyncio.Protocol):
            def connection_made(self, tr):
                loop.create_task(self.send(tr))

            async def send(self, tr):
                try:
                    tr.write(head)
                    n = await loop.sendfile(tr, f)
                    tr.write(b"END")
                    tr.close()
                    done.set_result(n)
                except BaseException as exc:  # pragma: no cover - reported
                    done.set_exception(exc)
                    raise

        server = await loop.create_server(Sender, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        await asyncio.sleep(0.05)  # let the server's buffer fill up
        got = await reader.read()
        assert await done == len(data)
        assert len(got) == len(head) + len(data) + 3
        assert got == head + data + b"END"
        writer.close()
        await close_server(server)

    run(loop, main())


def test_sendfile_cancelled_midway_transport_still_usable(loop, fastloop_only):
    # fastloop only: asyncio does not restore the file position when the
    # native sendfile is cancelled (its writer callback, which would, is
    # removed first), so the bytes sent cannot be known there.
    data = os.urandom(32 * MB)

    async def main():
        got = bytearray()
        reading = asyncio.Event()

        class SlowReader(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr
                tr.pause_reading()  # fill the socket buffers first

            def data_received(self, d):
                got.extend(d)

        readers = []

        def factory():
            readers.append(SlowReader())
            return readers[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        pr = Collect(loop)
        tr, _ = await loop.create_connection(lambda: pr, *server.sockets[0].getsockname())
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            task = loop.create_task(loop.sendfile(tr, f))
            await asyncio.sleep(0.05)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            sent = f.tell()
            assert 0 < sent < len(data)
        # The transport works again: reading resumed, writes accepted.
        assert tr.is_reading() and not tr.is_closing()
        tr.write(b"after")
        readers[0].tr.resume_reading()
        while len(got) < sent + 5:
            await asyncio.sleep(0.01)
        assert bytes(got) == data[:sent] + b"after"
        readers[0].tr.write(b"pong")
        while len(pr.data) < 4:
            await asyncio.sleep(0.01)
        tr.close()
        await close_server(server)

    run(loop, main())


def test_sendfile_bytesio_fallback(loop):
    data = os.urandom(MB)

    async def main():
        server, collected = await _collecting_server(loop, len(data))
        tr, _ = await loop.create_connection(asyncio.Protocol, *server.sockets[0].getsockname())
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sendfile(tr, io.BytesIO(data), fallback=False)
        n = await loop.sendfile(tr, io.BytesIO(data))
        assert n == len(data)
        while not collected or len(collected[0].data) < len(data):
            await asyncio.sleep(0.01)
        assert bytes(collected[0].data) == data
        assert tr.is_reading()
        tr.close()
        await close_server(server)

    run(loop, main())


def test_sendfile_tls_fallback(loop, bigfile, ssl_contexts):
    f, data = bigfile
    server_ctx, client_ctx = ssl_contexts

    async def main():
        server, collected = await _collecting_server(loop, len(data), server_ctx)
        tr, pr = await loop.create_connection(
            lambda: Collect(loop),
            *server.sockets[0].getsockname(),
            ssl=client_ctx,
            server_hostname="localhost",
        )
        with pytest.raises(RuntimeError, match="fallback is disabled"):
            await loop.sendfile(tr, f, fallback=False)
        n = await loop.sendfile(tr, f)
        assert n == len(data)
        await asyncio.wait_for(collected[0].enough, 10)
        assert bytes(collected[0].data) == data
        assert tr.get_protocol() is pr
        tr.close()
        # (a TLS close takes round trips: a loop closed before it ends
        # leaves an "unclosed transport", an error under -X dev)
        await asyncio.wait_for(pr.done, 10)
        await close_server(server)

    run(loop, main())


def test_sendfile_closing_transport(loop, bigfile):
    f, _ = bigfile

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        tr, _ = await loop.create_connection(asyncio.Protocol, *server.sockets[0].getsockname())
        tr.close()
        with pytest.raises(RuntimeError, match="Transport is closing"):
            await loop.sendfile(tr, f)
        await close_server(server)

    run(loop, main())


# -- sock_* -----------------------------------------------------------------------------


@pytest.fixture
def tcp_pair():
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    a = socket.create_connection(lsock.getsockname())
    b, _ = lsock.accept()
    lsock.close()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_sock_ops_roundtrip(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        t = loop.create_task(loop.sock_recv(b, 100))
        await asyncio.sleep(0.01)
        assert not t.done()
        await loop.sock_sendall(a, b"hello")
        assert await t == b"hello"

        data = os.urandom(4 * MB)

        async def reader():
            buf = bytearray()
            while len(buf) < len(data):
                buf += await loop.sock_recv(b, 256 * 1024)
            return bytes(buf)

        r = loop.create_task(reader())
        await loop.sock_sendall(a, data)
        assert await r == data

        buf = bytearray(8)
        t = loop.create_task(loop.sock_recv_into(b, buf))
        await asyncio.sleep(0)
        await loop.sock_sendall(a, memoryview(b"xyz"))
        assert await t == 3 and buf[:3] == b"xyz"

    run(loop, main())


def test_sock_recv_cancel_unregisters(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        t = loop.create_task(loop.sock_recv(b, 10))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await asyncio.sleep(0)
        # The reader is gone: a plain add_reader works and nothing stale
        # consumes the data.
        assert loop.remove_reader(b.fileno()) is False
        await loop.sock_sendall(a, b"again")
        assert await loop.sock_recv(b, 10) == b"again"

    run(loop, main())


def test_sock_accept_and_connect_cancelled(loop):
    async def main():
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        lsock.setblocking(False)
        t = loop.create_task(loop.sock_accept(lsock))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await asyncio.sleep(0)
        assert loop.remove_reader(lsock.fileno()) is False
        # a later accept still works
        c = socket.socket()
        c.setblocking(False)
        t = loop.create_task(loop.sock_accept(lsock))
        await loop.sock_connect(c, lsock.getsockname())
        conn, _ = await t
        conn.close()
        c.close()
        lsock.close()

    run(loop, main())


def test_sock_connect_accept_and_resolution(loop):
    async def main():
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.setblocking(False)
        acc = loop.create_task(loop.sock_accept(lsock))
        c = socket.socket()
        c.setblocking(False)
        await loop.sock_connect(c, ("localhost", lsock.getsockname()[1]))
        conn, addr = await acc
        assert conn.gettimeout() == 0
        assert addr == c.getsockname()
        s, refused = refused_address()
        c2 = socket.socket()
        c2.setblocking(False)
        with pytest.raises(ConnectionRefusedError):
            await loop.sock_connect(c2, refused)
        for x in (lsock, c, conn, s, c2):
            x.close()

    run(loop, main())


def test_sock_datagram_ops_everywhere(loop):
    if not hasattr(loop, "sock_recvfrom"):
        pytest.skip("asyncio has sock_recvfrom from 3.11")

    async def main():
        u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u1.bind(("127.0.0.1", 0))
        u1.setblocking(False)
        u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u2.bind(("127.0.0.1", 0))
        u2.setblocking(False)
        t = loop.create_task(loop.sock_recvfrom(u1, 100))
        await asyncio.sleep(0)
        assert await loop.sock_sendto(u2, b"dgram", u1.getsockname()) == 5
        assert await t == (b"dgram", u2.getsockname())
        buf = bytearray(100)
        t = loop.create_task(loop.sock_recvfrom_into(u1, buf, 3))
        await asyncio.sleep(0)
        await loop.sock_sendto(u2, b"abcdef", u1.getsockname())
        assert await t == (3, u2.getsockname())
        assert buf[:3] == b"abc"
        u1.close()
        u2.close()

    run(loop, main())


def test_sock_blocking_socket_rejected_in_debug(loop, tcp_pair):
    a, b = tcp_pair
    b.setblocking(True)
    loop.set_debug(True)
    with pytest.raises(ValueError, match="the socket must be non-blocking"):
        run(loop, loop.sock_recv(b, 1))
    with pytest.raises(ValueError, match="the socket must be non-blocking"):
        run(loop, loop.sock_sendall(b, b"x"))


def test_sock_ssl_socket_rejected(loop, ssl_contexts):
    _, client_ctx = ssl_contexts
    raw = socket.socket()
    s = client_ctx.wrap_socket(raw, do_handshake_on_connect=False, server_hostname="x")
    try:
        with pytest.raises(TypeError, match="Socket cannot be of type SSLSocket"):
            run(loop, loop.sock_recv(s, 1))
    finally:
        s.close()


def test_sock_recv_on_transport_fd_is_refused(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        tr, _ = await loop.create_connection(asyncio.Protocol, *server.sockets[0].getsockname())
        await asyncio.sleep(0)
        sock = tr.get_extra_info("socket")
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_reader(sock.fileno(), lambda: None)
        tr.close()
        await close_server(server)

    run(loop, main())


def test_add_reader_on_a_closing_transport_fd(loop):
    """asyncio refuses the fd of a transport only while it is not closing:
    once close() is called, add_reader/remove_reader on it work."""
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        lost = loop.create_future()

        class P(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        tr, _ = await loop.create_connection(
            P, *server.sockets[0].getsockname())
        fd = tr.get_extra_info("socket").fileno()
        tr.close()
        assert tr.is_closing()
        loop.add_reader(fd, lambda: None)
        assert loop.remove_reader(fd) is True
        assert loop.remove_reader(fd) is False
        assert await asyncio.wait_for(lost, 10) is None
        await close_server(server)

    run(loop, main())


def test_sock_sendfile(loop, tcp_pair, bigfile):
    a, b = tcp_pair
    f, data = bigfile

    async def reader(n):
        buf = bytearray()
        while len(buf) < n:
            buf += await loop.sock_recv(b, 256 * 1024)
        return bytes(buf)

    async def main():
        r = loop.create_task(reader(len(data)))
        assert await loop.sock_sendfile(a, f) == len(data)
        assert await r == data
        assert f.tell() == len(data)
        r = loop.create_task(reader(500))
        assert await loop.sock_sendfile(a, f, 7, 500) == 500
        assert await r == data[7:507]
        assert f.tell() == 507
        r = loop.create_task(reader(1000))
        assert await loop.sock_sendfile(a, io.BytesIO(data[:1000])) == 1000
        assert await r == data[:1000]
        with pytest.raises(ValueError, match="offset must be a non-negative"):
            await loop.sock_sendfile(a, f, -1)
        with pytest.raises(TypeError, match="count must be a positive integer"):
            await loop.sock_sendfile(a, f, 0, 1.5)

    run(loop, main())
