"""Helpers shared by the networking tests (test_tcp, test_server, test_unix,
test_sockops, test_streams, test_ssl, test_sendfile, test_dns).

Everything here runs on real sockets (127.0.0.1, ::1, Unix paths); nothing is
mocked.  Waits are on events (futures), never on sleeps, except where a test
must show that something does *not* happen.
"""
import asyncio
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys

import pytest

PY310 = sys.version_info >= (3, 10)
PY311 = sys.version_info >= (3, 11)
PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)

HIGH = 64 * 1024  # asyncio's default write-buffer high-water mark
LOW = 16 * 1024  # ... and low-water mark


def _has_ipv6():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            s.listen(1)
            with socket.create_connection(s.getsockname()[:2], timeout=5):
                pass
    except OSError:
        return False
    return True


HAS_IPV6 = _has_ipv6()
needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="IPv6 (::1) unavailable")


def payload(n, seed=0):
    """n pseudo-random bytes (deterministic, no repeating period)."""
    import random

    return random.Random(seed).randbytes(n)


def refused_addr(family=socket.AF_INET):
    """A (socket, address) pair: the socket is bound but not listening, so a
    connect to the address is refused and the port cannot be reused by
    anybody else while the socket is open.  Close the socket after use."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    return s, s.getsockname()


def fds():
    return len(os.listdir("/proc/self/fd"))


class Proto(asyncio.Protocol):
    """A protocol that records everything and lets a test await it.

    ``keep_open`` is what eof_received() returns.  ``echo`` writes every
    chunk back.  ``pause_on_made`` pauses reading in connection_made.
    """

    def __init__(self, loop, *, keep_open=False, echo=False, pause_on_made=False):
        self.loop = loop
        self.keep_open = keep_open
        self.echo = echo
        self.pause_on_made = pause_on_made
        self.transport = None
        self.data = bytearray()
        self.chunks = 0
        self.events = []
        self.made = loop.create_future()
        self.ready = loop.create_future()  # made, and paused if asked to
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self._waiters = []
        self.pauses = []  # write-buffer size seen by pause_writing()
        self.resumes = []  # write-buffer size seen by resume_writing()

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport
        self.made.set_result(transport)
        if self.pause_on_made:
            pause_reading_now_and_soon(transport, self.ready)
        else:
            self.ready.set_result(None)

    def data_received(self, data):
        assert isinstance(data, bytes), type(data)
        assert data, "data_received() with empty data"
        if "data" not in self.events:
            self.events.append("data")
        assert "eof" not in self.events, "data after eof"
        assert "lost" not in self.events, "data after connection_lost"
        self.data += data
        self.chunks += 1
        if self.echo:
            self.transport.write(data)
        self._wake()

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)
        self._wake()
        return self.keep_open

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)
        self._wake()

    def pause_writing(self):
        self.pauses.append(self.transport.get_write_buffer_size())
        self.events.append("pause_writing")

    def resume_writing(self):
        self.resumes.append(self.transport.get_write_buffer_size())
        self.events.append("resume_writing")

    def _wake(self):
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_bytes(self, n):
        """Wait until at least n bytes arrived (fails on EOF/loss first)."""
        while len(self.data) < n:
            if self.eof.done() or self.lost.done():
                raise AssertionError(
                    "connection ended after %d of %d bytes" % (len(self.data), n)
                )
            fut = self.loop.create_future()
            self._waiters.append(fut)
            await fut
        return bytes(self.data)


def pause_reading_now_and_soon(transport, ready):
    """Pause reading one iteration after connection_made() and set future
    `ready` then.

    asyncio 3.9/3.10 register the reader *after* connection_made() without
    checking whether it paused (fixed in 3.11), and a second pause_reading()
    is a no-op there, so the pause happens once, one iteration later; tests
    wait for `ready` before sending anything."""

    def pause():
        transport.pause_reading()
        if not ready.done():
            ready.set_result(None)

    asyncio.get_running_loop().call_soon(pause)


async def accepted(protos, n=1, timeout=10):
    """Wait until the server made n protocols and each one is `ready`."""
    await wait_until(lambda: len(protos) >= n, timeout)
    for p in protos[:n]:
        ready = getattr(p, "ready", None)
        if ready is not None:
            await asyncio.wait_for(asyncio.shield(ready), timeout)


class Echo(asyncio.Protocol):
    """Echo server protocol with flow control: when the transport's write
    buffer is over the high-water mark it stops reading until it drains."""

    pause_on_made = False

    def __init__(self, registry=None):
        # Protocol factories are called by the running loop.
        loop = asyncio.get_running_loop()
        self.transport = None
        self.pauses = []
        self.resumes = []
        self.lost = loop.create_future()
        self.ready = loop.create_future()
        if registry is not None:
            registry.append(self)

    def connection_made(self, transport):
        self.transport = transport
        if self.pause_on_made:
            pause_reading_now_and_soon(transport, self.ready)
        else:
            self.ready.set_result(None)

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.lost.set_result(exc)

    def pause_writing(self):
        self.pauses.append(self.transport.get_write_buffer_size())
        self.transport.pause_reading()

    def resume_writing(self):
        self.resumes.append(self.transport.get_write_buffer_size())
        self.transport.resume_reading()


async def echo_server(loop, host="127.0.0.1", **kw):
    """Start an Echo server on an ephemeral port: (server, address, protos)."""
    protos = []
    srv = await loop.create_server(lambda: Echo(protos), host, 0, **kw)
    return srv, srv.sockets[0].getsockname(), protos


async def close_server(srv, protos=(), timeout=10):
    """Close the server, wait until every server-side protocol in `protos`
    that got connection_made() got connection_lost() (so no transport
    outlives the test, whatever the version's wait_closed() does), then
    wait_closed()."""
    srv.close()
    for p in protos:
        if p.transport is None:  # e.g. a TLS handshake that failed
            continue
        await asyncio.wait_for(asyncio.shield(p.lost), timeout)
    await asyncio.wait_for(srv.wait_closed(), timeout)


async def wait_until(pred, timeout=10, interval=0.001):
    """Poll pred() every `interval` seconds (loop keeps running)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in %ss" % timeout)
        await asyncio.sleep(interval)


def record_errors(loop):
    """Install an exception handler that records contexts; returns the list."""
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    return errors


# --------------------------------------------------------------------------
# TLS: a self-signed certificate for 'localhost', 127.0.0.1 and ::1


def _make_cert_cryptography(certfile, keyfile):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_cert_openssl(certfile, keyfile):
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(keyfile), "-out", str(certfile), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    certfile, keyfile = d / "cert.pem", d / "key.pem"
    try:
        import cryptography  # noqa: F401
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor openssl available")
        _make_cert_openssl(certfile, keyfile)
    else:
        _make_cert_cryptography(certfile, keyfile)
    return str(certfile), str(keyfile)


@pytest.fixture
def server_ctx(certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs)
    return ctx


@pytest.fixture
def client_ctx(certs):
    ctx = ssl.create_default_context(cafile=certs[0])
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    return ctx
