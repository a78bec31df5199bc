"""Reference, memory-block and file-descriptor leak checks on whole
scenarios (marker ``leaks``; helper: tests/leakcheck.py, STYLE.md 4.5).

Every scenario creates its own fastloop loop, does a realistic amount of
work on it, closes everything and closes the loop; ``assert_no_leaks``
runs it 3 times to warm up and 4 more times measuring.  On a debug CPython
(``sys.gettotalrefcount``) the total reference count is checked too; on
every build the allocated memory blocks, the open fds and the reference
counts of the ``fastloop._core`` types (each live instance of a heap type
holds one) are.

Set FASTLOOP_LEAKS_CONTROL=1 to run every scenario on asyncio's own
SelectorEventLoop as well: a scenario that "leaks" there is a broken
scenario, not a fastloop bug.
"""
import asyncio
import errno
import os
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading

import pytest

import fastloop
from fastloop import _core
from leakcheck import HAS_TOTALREFCOUNT, assert_no_leaks, leaks_in, measure

pytestmark = pytest.mark.leaks

KINDS = ["fastloop"]
if os.environ.get("FASTLOOP_LEAKS_CONTROL") == "1":
    KINDS.append("asyncio")

CORE_TYPES = tuple(
    getattr(_core, name)
    for name in ("Handle", "TimerHandle", "StreamTransport", "Listener",
                 "DatagramTransport", "ReadPipeTransport",
                 "WritePipeTransport", "Loop", "StreamReader",
                 "StreamWriter", "StreamOp")
    if hasattr(_core, name)
)

HAS_PIPES = hasattr(fastloop.Loop, "connect_read_pipe") and hasattr(
    fastloop.Loop, "connect_write_pipe"
)
HAS_SUBPROCESS = hasattr(fastloop.Loop, "subprocess_exec")


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def new_loop(kind):
    if kind == "fastloop":
        return fastloop.new_event_loop()
    return asyncio.SelectorEventLoop()


def scenario(kind, main, expect_errors=None):
    """A function running `main(loop, errors)` on a fresh loop of `kind` and
    closing the loop.  Exceptions reported to the loop's handler go into
    `errors` (not to logging: pytest's log capture would keep them, which is
    a leak of the test harness, not of the loop).  expect_errors(errors)
    checks them (by default: there must be none)."""

    def fn():
        loop = new_loop(kind)
        # Debug mode (-X dev, PYTHONASYNCIODEBUG; .ci/jobs/asan) is off in
        # the scenarios: it keeps ~17 memory blocks per run on asyncio's own
        # loop too (FASTLOOP_LEAKS_CONTROL=1 shows it) and captures a stack
        # per handle, 10-20x slower.  Debug mode is tested in test_debug.py.
        loop.set_debug(False)
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        try:
            loop.run_until_complete(asyncio.wait_for(main(loop, errors), 30))
        finally:
            loop.close()
        if expect_errors is None:
            assert not errors, [e.get("message") for e in errors]
        else:
            expect_errors(errors)
        del errors[:]

    return fn


def check(fn):
    assert_no_leaks(fn, types=CORE_TYPES)


# --------------------------------------------------------------------------
# the checker itself must be able to fail


_hoard = []


@pytest.mark.skipif(sys.getallocatedblocks() == 0,
                    reason="PYTHONMALLOC=malloc: no block counts")
def test_checker_catches_object_leak():
    def leaky():
        _hoard.append(object())

    try:
        found = leaks_in(measure(leaky))
    finally:
        del _hoard[:]
    assert "blocks" in found, found


def test_checker_catches_fd_leak():
    fds = []

    def leaky():
        fds.append(os.open(os.devnull, os.O_RDONLY))

    try:
        found = leaks_in(measure(leaky))
    finally:
        for fd in fds:
            os.close(fd)
    assert found.get("fds") == [1, 1, 1, 1], found


@pytest.mark.skipif(not HAS_TOTALREFCOUNT, reason="needs a debug CPython")
def test_checker_catches_reference_leak():
    """One reference to an existing object per run, no allocation: only
    sys.gettotalrefcount() can see it."""
    import ctypes

    target = object()
    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    decref = ctypes.pythonapi.Py_DecRef
    decref.argtypes = [ctypes.py_object]
    count = [0]

    def leaky():
        incref(target)
        count[0] += 1

    try:
        found = leaks_in(measure(leaky))
    finally:
        for _ in range(count[0]):
            decref(target)
    assert "refs" in found, found  # (the first run may count warm-up)


def test_checker_catches_leaked_core_handle():
    loop = fastloop.new_event_loop()
    kept = []
    try:
        found = leaks_in(
            measure(lambda: kept.append(loop.call_soon(len, "")), types=CORE_TYPES)
        )
    finally:
        loop.close()
        del kept[:]
    assert "type refs" in found, found


# --------------------------------------------------------------------------
# scheduling


def test_call_soon_storm(kind):
    async def main(loop, errors):
        done = loop.create_future()
        count = [0]

        def cb(i):
            count[0] += 1
            if count[0] == 6000:
                done.set_result(None)

        def chain(n):
            count[0] += 1
            if n:
                loop.call_soon(chain, n - 1)
            elif count[0] == 6000:
                done.set_result(None)

        for i in range(4000):
            loop.call_soon(cb, i)
        for i in range(1000):
            loop.call_soon_threadsafe(cb, i)
        for i in range(200):
            loop.call_soon(cb, i).cancel()
        loop.call_soon(chain, 999)
        await done
        assert count[0] == 6000

    check(scenario(kind, main))


def test_call_soon_threadsafe_from_threads(kind):
    async def main(loop, errors):
        done = loop.create_future()
        count = [0]
        total = 4 * 500

        def cb():
            count[0] += 1
            if count[0] == total:
                done.set_result(None)

        def worker():
            for _ in range(500):
                loop.call_soon_threadsafe(cb)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        await done
        for t in threads:
            t.join()

    check(scenario(kind, main))


def test_timer_churn(kind):
    async def main(loop, errors):
        fired = [0]
        done = loop.create_future()

        def cb(i):
            fired[0] += 1

        handles = []
        now = loop.time()
        for i in range(1500):
            handles.append(loop.call_later((i % 20) / 10000.0, cb, i))
            handles.append(loop.call_at(now + (i % 7) / 5000.0, cb, i))
            handles.append(loop.call_later(3600 + i, cb, i))
        for h in handles[::2]:
            h.cancel()
        for h in handles[2::3]:  # the far ones: nothing waits for them
            h.cancel()
        loop.call_later(0.01, done.set_result, None)
        await done
        for h in handles:
            h.cancel()  # including fired ones (a no-op)
        assert fired[0] > 0
        # Churn on the heap's head: schedule/cancel the earliest timer.
        for i in range(500):
            loop.call_later(0, cb, i).cancel()
            await asyncio.sleep(0)
        await asyncio.sleep(0.001)

    check(scenario(kind, main))


def test_many_loops(kind):
    def fn():
        for _ in range(20):
            loop = new_loop(kind)
            loop.call_soon(len, "")
            loop.call_later(3600, len, "")
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    check(fn)


def test_add_remove_reader_writer(kind):
    async def main(loop, errors):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            for i in range(200):
                fut = loop.create_future()

                def on_read(f=fut):
                    data = a.recv(100)
                    loop.remove_reader(a)
                    f.set_result(data)

                loop.add_reader(a.fileno(), on_read)
                if i % 2:
                    loop.add_reader(a, on_read)  # replaces the first
                b.send(b"x")
                assert await fut == b"x"

                wfut = loop.create_future()

                def on_write(f=wfut):
                    loop.remove_writer(b.fileno())
                    f.set_result(None)

                loop.add_writer(b, on_write)
                await wfut
                loop.add_reader(a, len, "")
                loop.add_writer(a, len, "")
                assert loop.remove_reader(a)
                assert loop.remove_writer(a)
                assert not loop.remove_reader(a)
        finally:
            a.close()
            b.close()

    check(scenario(kind, main))


def test_close_loop_with_watchers(kind):
    def fn():
        loop = new_loop(kind)
        a, b = socket.socketpair()
        loop.add_reader(a, len, "")
        loop.add_writer(b, len, "")
        loop.call_later(3600, len, "")
        loop.close()
        a.close()
        b.close()

    check(fn)


# --------------------------------------------------------------------------
# streams


class EchoServer(asyncio.Protocol):
    def __init__(self, registry):
        self.transport = None
        self.lost = asyncio.get_running_loop().create_future()
        registry.append(self)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class PingClient(asyncio.Protocol):
    """Sends message i, waits for its echo, sends message i+1..."""

    def __init__(self, loop, n, done):
        self.loop = loop
        self.n = n
        self.i = 0
        self.done = done
        self.buf = bytearray()
        self.lost = loop.create_future()
        self.sent = 0
        self.received = 0

    def msg(self):
        return b"message %06d;" % self.i

    def connection_made(self, transport):
        self.transport = transport
        self.transport.write(self.msg())

    def data_received(self, data):
        self.buf += data
        m = self.msg()
        while len(self.buf) >= len(m):
            assert bytes(self.buf[: len(m)]) == m, (self.buf, m)
            del self.buf[: len(m)]
            self.i += 1
            if self.i == self.n:
                self.done.set_result(None)
                return
            m = self.msg()
            self.transport.write(m)

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


async def ping_pong(loop, connect, n=1000):
    done = loop.create_future()
    tr, p = await connect(lambda: PingClient(loop, n, done))
    await done
    tr.close()
    assert await p.lost is None


def test_tcp_echo_1000_messages(kind):
    async def main(loop, errors):
        protos = []
        srv = await loop.create_server(lambda: EchoServer(protos), "127.0.0.1", 0)
        host, port = srv.sockets[0].getsockname()
        await ping_pong(loop, lambda f: loop.create_connection(f, host, port))
        srv.close()
        for p in protos:
            await p.lost
        await srv.wait_closed()

    check(scenario(kind, main))


def test_unix_echo_1000_messages(kind):
    async def main(loop, errors):
        d = tempfile.mkdtemp(prefix="fl-leak")
        path = os.path.join(d, "s")
        try:
            protos = []
            srv = await loop.create_unix_server(lambda: EchoServer(protos), path)
            await ping_pong(loop, lambda f: loop.create_unix_connection(f, path))
            srv.close()
            for p in protos:
                await p.lost
            await srv.wait_closed()
        finally:
            shutil.rmtree(d)

    check(scenario(kind, main))


def test_streams_api_echo(kind):
    async def main(loop, errors):
        async def handle(reader, writer):
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(line)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*srv.sockets[0].getsockname())
        for i in range(200):
            w.write(b"line %d\n" % i)
            assert await r.readline() == b"line %d\n" % i
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    check(scenario(kind, main))


async def started_then_cancelled(coro):
    """Runs coro as a task until its first wait, then cancels it."""
    t = asyncio.ensure_future(coro)
    await asyncio.sleep(0)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass


def test_native_streams_edge_paths(kind):
    """The C read()/drain() paths that end other than with data: cancelled
    and timed-out reads, a second reader, an exception set on the stream,
    ops thrown into, closed or dropped while waiting, drain() under
    back-pressure and after the peer is gone."""

    async def main(loop, errors):
        got = loop.create_future()

        async def handle(reader, writer):
            got.set_result((reader, writer))

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        cr, cw = await asyncio.open_connection(*srv.sockets[0].getsockname())
        sr, sw = await got
        t = asyncio.ensure_future(sr.read(5))
        await asyncio.sleep(0)
        try:
            await sr.read(5)
        except RuntimeError:
            pass
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass
        try:
            await asyncio.wait_for(sr.read(5), 0.001)
        except asyncio.TimeoutError:
            pass
        for end in ("throw", "close", "drop"):
            op = sr.read(5)
            op.send(None)
            if end == "throw":
                try:
                    op.throw(ValueError("x"))
                except ValueError:
                    pass
            elif end == "close":
                op.close()
            del op
        cw.write(b"abcdef")
        assert await sr.readexactly(6) == b"abcdef"
        cw.write(b"x" * 70000 + b"\nline\n")
        try:
            await sr.readline()
        except ValueError:
            pass
        assert await sr.readline() == b"line\n"
        # readuntil(): found, over the limit, waiting then cancelled, at
        # EOF (below); the client writer adopted through writelines().
        cw.writelines([b"head\r\n\r\n", b"y" * 70000, b"::"])
        assert await sr.readuntil(b"\r\n\r\n") == b"head\r\n\r\n"
        try:
            await sr.readuntil(b"::")
        except asyncio.LimitOverrunError:
            pass
        assert len(await sr.readexactly(70002)) == 70002
        await started_then_cancelled(sr.readuntil(b"::"))
        # Large messages: emptied buffers pool their storage, and reads
        # go straight into a buffer with room (src/bytebuf.c).
        for size in (200_000, 150_000, 3_000):
            cw.write(b"q" * size)
            got = 0
            while got < size:
                got += len(await sr.read(size))
        await started_then_cancelled(sr.readline())
        chunk = b"z" * 65536
        for _ in range(64):
            sw.write(chunk)
        d = asyncio.ensure_future(sw.drain())
        n = 0
        while n < 64 * 65536:
            n += len(await cr.read(1 << 20))
        await d
        cr.feed_eof()
        try:
            await cr.readexactly(10)
        except asyncio.IncompleteReadError:
            pass
        try:
            await cr.readuntil(b"#")
        except asyncio.IncompleteReadError:
            pass
        sr.set_exception(ValueError("set"))
        for coro in (sr.read(5), sw.drain()):
            try:
                await coro
            except ValueError:
                pass
        cw.close()
        await cw.wait_closed()
        sw.close()
        srv.close()
        await srv.wait_closed()

    check(scenario(kind, main))


def test_server_close_with_live_clients(kind):
    async def main(loop, errors):
        protos = []
        srv = await loop.create_server(lambda: EchoServer(protos), "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()
        clients = []
        for _ in range(20):
            done = loop.create_future()
            clients.append(
                await loop.create_connection(lambda: PingClient(loop, 3, done), *addr)
            )
            await done
        srv.close()  # the listener goes; the connections stay
        assert not srv.is_serving()
        for tr, p in clients[:10]:  # still echoing after the close
            p.done = loop.create_future()
            p.i = 0
            tr.write(p.msg())
            await p.done
        for p in protos[:10]:  # server side closes half of them
            p.transport.close()
        for tr, p in clients:
            tr.close()
            await p.lost
        for p in protos:
            await p.lost
        await srv.wait_closed()

    check(scenario(kind, main))


def test_server_start_stop_serving(kind):
    async def main(loop, errors):
        for _ in range(10):
            srv = await loop.create_server(
                asyncio.Protocol, "127.0.0.1", 0, start_serving=False
            )
            await srv.start_serving()
            async with srv:
                assert srv.is_serving()
            await srv.wait_closed()

    check(scenario(kind, main))


def test_udp_echo_1000_datagrams(kind):
    async def main(loop, errors):
        class EchoUDP(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                self.transport.sendto(data, addr)

        class Client(asyncio.DatagramProtocol):
            def __init__(self):
                self.i = 0
                self.done = loop.create_future()
                self.lost = loop.create_future()

            def connection_made(self, transport):
                self.transport = transport
                transport.sendto(b"dgram %d" % self.i)

            def datagram_received(self, data, addr):
                assert data == b"dgram %d" % self.i
                self.i += 1
                if self.i == 1000:
                    self.done.set_result(None)
                else:
                    self.transport.sendto(b"dgram %d" % self.i)

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        st, sp = await loop.create_datagram_endpoint(
            EchoUDP, local_addr=("127.0.0.1", 0)
        )
        ct, cp = await loop.create_datagram_endpoint(
            Client, remote_addr=st.get_extra_info("sockname")
        )
        await cp.done
        ct.close()
        await cp.lost
        st.close()
        await asyncio.sleep(0)

    check(scenario(kind, main))


@pytest.mark.skipif(not HAS_PIPES, reason="connect_read_pipe not implemented")
def test_pipes(kind):
    async def main(loop, errors):
        class Reader(asyncio.Protocol):
            def __init__(self):
                self.data = bytearray()
                self.lost = loop.create_future()

            def data_received(self, data):
                self.data += data

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        class Writer(asyncio.BaseProtocol):
            def __init__(self):
                self.lost = loop.create_future()

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        rfd, wfd = os.pipe()
        rt, rp = await loop.connect_read_pipe(Reader, os.fdopen(rfd, "rb", 0))
        wt, wp = await loop.connect_write_pipe(Writer, os.fdopen(wfd, "wb", 0))
        expected = bytearray()
        for i in range(300):
            chunk = b"chunk %d " % i * 20
            wt.write(chunk)
            expected += chunk
            if i % 50 == 0:
                await asyncio.sleep(0)
        wt.close()
        assert await wp.lost is None
        assert await rp.lost is None
        assert rp.data == expected

    check(scenario(kind, main))


@pytest.mark.skipif(not HAS_SUBPROCESS, reason="subprocess_exec not implemented")
def test_subprocess(kind):
    cat = shutil.which("cat") or "/bin/cat"

    async def main(loop, errors):
        p = await asyncio.create_subprocess_exec(
            cat, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await p.communicate(b"hello subprocess\n" * 200)
        assert out == b"hello subprocess\n" * 200
        assert p.returncode == 0
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.exit(3)",
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert await p.wait() == 3

    # Spawning is slow: fewer measured runs than the other scenarios.
    assert_no_leaks(scenario(kind, main), warmup=2, runs=4, types=CORE_TYPES)


# --------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory):
    from nethelpers import _make_cert_cryptography, _make_cert_openssl

    d = tmp_path_factory.mktemp("leak-tls")
    certfile, keyfile = d / "cert.pem", d / "key.pem"
    try:
        import cryptography  # noqa: F401
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither cryptography nor openssl available")
        _make_cert_openssl(certfile, keyfile)
    else:
        _make_cert_cryptography(certfile, keyfile)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(str(certfile), str(keyfile))
    cctx = ssl.create_default_context(cafile=str(certfile))
    return sctx, cctx


def test_tls_echo(kind, tls_contexts):
    sctx, cctx = tls_contexts

    async def main(loop, errors):
        protos = []
        srv = await loop.create_server(
            lambda: EchoServer(protos), "127.0.0.1", 0, ssl=sctx
        )
        host, port = srv.sockets[0].getsockname()
        for _ in range(3):
            await ping_pong(
                loop,
                lambda f: loop.create_connection(
                    f, host, port, ssl=cctx, server_hostname="localhost"
                ),
                n=100,
            )
        srv.close()
        for p in protos:
            await p.lost
        await srv.wait_closed()

    check(scenario(kind, main))


def test_tls_handshake_failure(kind, tls_contexts):
    sctx, _ = tls_contexts
    bad_client = ssl.create_default_context()  # does not trust the cert

    async def main(loop, errors):
        protos = []
        srv = await loop.create_server(
            lambda: EchoServer(protos), "127.0.0.1", 0, ssl=sctx
        )
        host, port = srv.sockets[0].getsockname()
        for _ in range(3):
            with pytest.raises(ssl.SSLError):
                await loop.create_connection(
                    asyncio.Protocol, host, port, ssl=bad_client,
                    server_hostname="localhost",
                )
        srv.close()
        await srv.wait_closed()
        for _ in range(3):
            await asyncio.sleep(0)

    # fastloop reports transport-creation errors of incoming connections in
    # every mode (README); asyncio only in debug mode.
    check(scenario(kind, main, expect_errors=lambda errors: None))


# --------------------------------------------------------------------------
# error paths


def test_connect_refused(kind):
    async def main(loop, errors):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))  # bound, not listening: refused
        addr = s.getsockname()
        try:
            for _ in range(30):
                with pytest.raises(ConnectionRefusedError):
                    await loop.create_connection(asyncio.Protocol, *addr)
                c = socket.socket()
                c.setblocking(False)
                with pytest.raises(ConnectionRefusedError):
                    await loop.sock_connect(c, addr)
                c.close()
        finally:
            s.close()

    check(scenario(kind, main))


def test_connection_reset_by_peer(kind):
    async def main(loop, errors):
        class Resetter(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.transport = transport

            def data_received(self, data):
                self.transport.abort()  # RST, not FIN

        class Client(asyncio.Protocol):
            def __init__(self):
                self.lost = loop.create_future()

            def connection_made(self, transport):
                transport.write(b"x" * 1000)

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        srv = await loop.create_server(Resetter, "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()
        for _ in range(20):
            tr, p = await loop.create_connection(Client, *addr)
            exc = await p.lost
            assert exc is None or isinstance(exc, ConnectionResetError), exc
        srv.close()
        await srv.wait_closed()

    check(scenario(kind, main))


def test_cancelled_connect(kind):
    async def main(loop, errors):
        # A listener with a full backlog: further SYNs are dropped, so the
        # connects below stay pending until they are cancelled.
        lsn = socket.socket()
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(0)
        addr = lsn.getsockname()
        fillers = []
        try:
            for _ in range(3):
                f = socket.socket()
                f.setblocking(False)
                try:
                    f.connect(addr)
                except BlockingIOError:
                    pass
                fillers.append(f)
            for i in range(20):
                task = loop.create_task(
                    loop.create_connection(asyncio.Protocol, *addr)
                )
                for _ in range(i % 4):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    tr, _ = await task
                except asyncio.CancelledError:
                    pass
                else:  # connected before the cancel
                    tr.close()
                c = socket.socket()
                c.setblocking(False)
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(loop.sock_connect(c, addr), 0.001)
                c.close()
        finally:
            for f in fillers:
                f.close()
            lsn.close()
        await asyncio.sleep(0)

    check(scenario(kind, main))


def test_cancelled_accept_and_recv(kind):
    async def main(loop, errors):
        lsn = socket.socket()
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(10)
        lsn.setblocking(False)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            for i in range(30):
                task = loop.create_task(loop.sock_accept(lsn))
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(loop.sock_recv(a, 100), 0.0005)
                buf = bytearray(100)
                task = loop.create_task(loop.sock_recv_into(a, buf))
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            # sendall that cannot complete (nobody reads b), cancelled
            task = loop.create_task(loop.sock_sendall(a, b"z" * (8 << 20)))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            a.close()
            b.close()
            lsn.close()

    check(scenario(kind, main))


class Boom(Exception):
    pass


CALLBACKS = ["connection_made", "data_received", "eof_received",
             "connection_lost", "pause_writing", "resume_writing"]


def test_exception_in_each_stream_callback(kind):
    """Each protocol callback raises; the loop reports it, closes the
    transport where asyncio does, and nothing is kept alive."""

    async def one(loop, raising):
        class P(asyncio.Protocol):
            def __init__(self):
                self.lost = loop.create_future()

            def connection_made(self, transport):
                self.transport = transport
                transport.set_write_buffer_limits(high=4096, low=1024)
                if raising == "connection_made":
                    raise Boom(raising)

            def data_received(self, data):
                if raising == "data_received":
                    raise Boom(raising)

            def eof_received(self):
                if raising == "eof_received":
                    raise Boom(raising)

            def pause_writing(self):
                if raising == "pause_writing":
                    raise Boom(raising)

            def resume_writing(self):
                if raising == "resume_writing":
                    raise Boom(raising)

            def connection_lost(self, exc):
                if not self.lost.done():
                    self.lost.set_result(exc)
                if raising == "connection_lost":
                    raise Boom(raising)

        a, b = socket.socketpair()
        tr, p = await loop.connect_accepted_socket(P, a)
        b.setblocking(False)
        await asyncio.sleep(0)
        b.send(b"hello")
        await asyncio.sleep(0.001)
        if not tr.is_closing():
            tr.write(b"y" * 400000)  # over the limit: pause_writing
        while True:  # drain: resume_writing
            try:
                chunk = b.recv(1 << 20)
            except BlockingIOError:
                if tr.is_closing() or not tr.get_write_buffer_size():
                    break
                await asyncio.sleep(0.0005)
                continue
            if not chunk:
                break
        b.shutdown(socket.SHUT_WR)  # eof_received
        await asyncio.sleep(0.001)
        tr.close()
        await asyncio.wait_for(p.lost, 10)
        b.close()

    async def main(loop, errors):
        for raising in CALLBACKS:
            await one(loop, raising)
        await asyncio.sleep(0)

    def expect(errors):
        for e in errors:
            assert isinstance(e.get("exception"), Boom), e
        reported = {e["exception"].args[0] for e in errors}
        assert reported == set(CALLBACKS), reported

    check(scenario(kind, main, expect_errors=expect))


def test_exception_in_get_buffer_and_buffer_updated(kind):
    async def main(loop, errors):
        for raising in ("get_buffer", "buffer_updated"):

            class P(asyncio.BufferedProtocol):
                def __init__(self):
                    self.buf = bytearray(100)
                    self.lost = loop.create_future()

                def get_buffer(self, sizehint):
                    if raising == "get_buffer":
                        raise Boom(raising)
                    return self.buf

                def buffer_updated(self, n):
                    if raising == "buffer_updated":
                        raise Boom(raising)

                def connection_lost(self, exc):
                    self.lost.set_result(exc)

            a, b = socket.socketpair()
            tr, p = await loop.connect_accepted_socket(P, a)
            b.send(b"data")
            exc = await asyncio.wait_for(p.lost, 10)
            assert exc is not None
            b.close()

    def expect(errors):
        assert len(errors) == 2, errors

    check(scenario(kind, main, expect_errors=expect))


def test_exception_in_datagram_callbacks(kind):
    async def main(loop, errors):
        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                raise Boom("datagram_received")

            def error_received(self, exc):
                raise Boom("error_received")

        tr, p = await loop.create_datagram_endpoint(
            P, local_addr=("127.0.0.1", 0)
        )
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(50):
                out.sendto(b"d%d" % i, tr.get_extra_info("sockname"))
            for _ in range(20):
                await asyncio.sleep(0.001)
                if len(errors) >= 50:
                    break
        finally:
            out.close()
        # error_received: a connected endpoint to a closed port gets
        # ECONNREFUSED (ICMP) on the next send or receive.
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()
        s.close()
        ct, cp = await loop.create_datagram_endpoint(P, remote_addr=dead)
        for _ in range(5):
            try:
                ct.sendto(b"ping")
            except Boom:
                pass  # error_received() raised from inside sendto()
            await asyncio.sleep(0.001)
        ct.close()
        tr.close()
        await asyncio.sleep(0)

    def expect(errors):
        assert errors
        for e in errors:
            assert isinstance(e.get("exception"), Boom), e

    check(scenario(kind, main, expect_errors=expect))


def test_exception_in_plain_callbacks(kind):
    async def main(loop, errors):
        def boom(i):
            raise Boom(i)

        for i in range(300):
            loop.call_soon(boom, i)
            loop.call_later(0, boom, i)
        a, b = socket.socketpair()
        loop.add_reader(a, boom, -1)
        b.send(b"x")
        for _ in range(3):
            await asyncio.sleep(0)
        loop.remove_reader(a)
        a.close()
        b.close()
        fut = loop.create_future()
        fut.set_exception(Boom("never retrieved"))
        del fut

    def expect(errors):
        assert len(errors) >= 601, len(errors)

    check(scenario(kind, main, expect_errors=expect))


def test_task_exceptions_and_cancellation(kind):
    async def main(loop, errors):
        async def fail(i):
            await asyncio.sleep(0)
            raise Boom(i)

        async def sleeper():
            await asyncio.sleep(3600)

        for i in range(100):
            with pytest.raises(Boom):
                await loop.create_task(fail(i))
            t = loop.create_task(sleeper())
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
        res = await asyncio.gather(*(fail(i) for i in range(50)),
                                   return_exceptions=True)
        assert all(isinstance(r, Boom) for r in res)

    check(scenario(kind, main))


def test_sock_timeouts(kind):
    async def main(loop, errors):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            for _ in range(50):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(loop.sock_recv(a, 10), 0.0002)
            b.send(b"late")
            assert await loop.sock_recv(a, 10) == b"late"
        finally:
            a.close()
            b.close()

    check(scenario(kind, main))


def test_os_error_on_every_watch(kind):
    """add_reader on a closed fd / bad fd raises; nothing kept."""

    async def main(loop, errors):
        for _ in range(50):
            r, w = os.pipe()
            os.close(r)
            os.close(w)
            with pytest.raises((OSError, ValueError)) as ei:
                loop.add_reader(r, len, "")
            if isinstance(ei.value, OSError):
                assert ei.value.errno == errno.EBADF
            assert not loop.remove_reader(r)

    check(scenario(kind, main))


def test_other_failed_calls(kind):
    """Calls that fail before any transport exists: connect to a missing
    Unix path, bind to an address in use (server, client local_addr, UDP),
    a protocol factory that raises (client side and on accept)."""

    async def main(loop, errors):
        d = tempfile.mkdtemp(prefix="fl-leak")
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        busy_addr = busy.getsockname()
        ubusy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ubusy.bind(("127.0.0.1", 0))

        def factory_boom():
            raise Boom("factory")

        srv = await loop.create_server(factory_boom, "127.0.0.1", 0)
        srv_addr = srv.sockets[0].getsockname()
        ok = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        ok_addr = ok.sockets[0].getsockname()
        try:
            for _ in range(10):
                with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
                    await loop.create_unix_connection(
                        asyncio.Protocol, os.path.join(d, "missing"))
                with pytest.raises(OSError) as ei:
                    await loop.create_server(asyncio.Protocol, *busy_addr)
                assert ei.value.errno == errno.EADDRINUSE
                with pytest.raises(OSError):
                    await loop.create_connection(
                        asyncio.Protocol, *srv_addr, local_addr=busy_addr)
                with pytest.raises(OSError):
                    await loop.create_datagram_endpoint(
                        asyncio.DatagramProtocol,
                        local_addr=ubusy.getsockname())
                with pytest.raises(Boom):
                    await loop.create_connection(factory_boom, *ok_addr)
                # The server's factory raises on accept: reported, the
                # accepted socket closed, so the client sees EOF.
                r, w = await asyncio.open_connection(*srv_addr)
                assert await r.read() == b""
                w.close()
                await w.wait_closed()
        finally:
            srv.close()
            ok.close()
            await srv.wait_closed()
            await ok.wait_closed()
            busy.close()
            ubusy.close()
            shutil.rmtree(d)

    def expect(errors):
        # fastloop reports transport-creation errors of incoming
        # connections in every mode (README); asyncio only in debug mode.
        assert len(errors) == (10 if kind == "fastloop" else 0), errors
        for e in errors:
            assert isinstance(e.get("exception"), Boom), e

    check(scenario(kind, main, expect_errors=expect))


def test_write_after_close_and_reset(kind):
    """Writes to closing, closed and reset transports; write_eof; abort
    with a full buffer."""

    async def main(loop, errors):
        for i in range(20):
            a, b = socket.socketpair()
            tr, p = await loop.connect_accepted_socket(
                lambda: PingClient(loop, 1, loop.create_future()), a)
            if i % 2:
                b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
            b.close()  # the peer goes away (reset or EOF)
            for _ in range(50):
                tr.write(b"z" * 65536)  # fills, then errors or is dropped
                if tr.is_closing():
                    break
                await asyncio.sleep(0)
            tr.write(b"after")
            tr.close()
            tr.write(b"after close")
            await p.lost
            tr.write(b"after lost")
            a2, b2 = socket.socketpair()
            tr2, p2 = await loop.connect_accepted_socket(asyncio.Protocol, a2)
            tr2.write(b"x" * (1 << 20))  # nobody reads b2: stays buffered
            if i % 2:
                tr2.write_eof()
            tr2.abort()
            b2.close()
            await asyncio.sleep(0)

    check(scenario(kind, main))


# --------------------------------------------------------------------------
# pipes and subprocesses: errors


@pytest.mark.skipif(not HAS_PIPES, reason="connect_read_pipe not implemented")
def test_exception_in_pipe_protocol_callbacks(kind):
    async def main(loop, errors):
        for raising in ("connection_made", "data_received", "eof_received",
                        "connection_lost"):

            class Reader(asyncio.Protocol):
                def __init__(self):
                    self.lost = loop.create_future()

                def connection_made(self, transport):
                    if raising == "connection_made":
                        raise Boom(raising)

                def data_received(self, data):
                    if raising == "data_received":
                        raise Boom(raising)

                def eof_received(self):
                    if raising == "eof_received":
                        raise Boom(raising)

                def connection_lost(self, exc):
                    self.lost.set_result(exc)
                    if raising == "connection_lost":
                        raise Boom(raising)

            rfd, wfd = os.pipe()
            rt, rp = await loop.connect_read_pipe(Reader, os.fdopen(rfd, "rb", 0))
            os.write(wfd, b"data")
            await asyncio.sleep(0.001)
            os.close(wfd)
            await asyncio.wait_for(rp.lost, 10)
            rt.close()

        for raising in ("pause_writing", "resume_writing", "connection_lost"):

            class Writer(asyncio.BaseProtocol):
                def __init__(self):
                    self.lost = loop.create_future()

                def pause_writing(self):
                    if raising == "pause_writing":
                        raise Boom(raising)

                def resume_writing(self):
                    if raising == "resume_writing":
                        raise Boom(raising)

                def connection_lost(self, exc):
                    self.lost.set_result(exc)
                    if raising == "connection_lost":
                        raise Boom(raising)

            rfd, wfd = os.pipe()
            os.set_blocking(rfd, False)
            wt, wp = await loop.connect_write_pipe(Writer, os.fdopen(wfd, "wb", 0))
            wt.set_write_buffer_limits(high=4096, low=1024)
            wt.write(b"w" * 300000)  # more than the pipe holds: pause
            while wt.get_write_buffer_size():
                try:
                    os.read(rfd, 1 << 20)  # drain: resume
                except BlockingIOError:
                    await asyncio.sleep(0.0005)
            wt.close()
            await asyncio.wait_for(wp.lost, 10)
            os.close(rfd)
        await asyncio.sleep(0)

    def expect(errors):
        got = sorted(e["exception"].args[0] for e in errors
                     if isinstance(e.get("exception"), Boom))
        assert got == sorted(["connection_made", "data_received",
                              "eof_received", "connection_lost",
                              "pause_writing", "resume_writing",
                              "connection_lost"]), errors

    check(scenario(kind, main, expect_errors=expect))


@pytest.mark.skipif(not HAS_SUBPROCESS, reason="subprocess_exec not implemented")
def test_subprocess_error_paths(kind):
    """A program that does not exist, kill/terminate of a running child,
    subprocess_shell, a cancelled communicate(), and an exception raised
    from every SubprocessProtocol callback."""
    cat = shutil.which("cat") or "/bin/cat"
    sleep = shutil.which("sleep") or "/bin/sleep"
    callbacks = ("connection_made", "pipe_data_received",
                 "pipe_connection_lost", "process_exited")

    async def main(loop, errors):
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/fl-leak-prog")
        p = await asyncio.create_subprocess_exec(sleep, "60")
        p.kill()
        assert await p.wait() == -9
        p = await asyncio.create_subprocess_shell(
            "exec %s 60" % sleep, stdin=asyncio.subprocess.PIPE)
        p.terminate()
        assert await p.wait() == -15
        p = await asyncio.create_subprocess_exec(
            sleep, "60", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        task = loop.create_task(p.communicate())  # waits for stdout's EOF
        await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        p.kill()
        await p.wait()

        for raising in callbacks:

            class P(asyncio.SubprocessProtocol):
                def __init__(self):
                    self.exited = loop.create_future()

                def connection_made(self, transport):
                    if raising == "connection_made":
                        raise Boom(raising)

                def pipe_data_received(self, fd, data):
                    if raising == "pipe_data_received":
                        raise Boom(raising)

                def pipe_connection_lost(self, fd, exc):
                    if raising == "pipe_connection_lost":
                        raise Boom(raising)

                def process_exited(self):
                    self.exited.set_result(None)
                    if raising == "process_exited":
                        raise Boom(raising)

            tr, pr = await loop.subprocess_exec(
                P, cat, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE)
            tr.get_pipe_transport(0).write(b"some input")
            await asyncio.sleep(0.01)
            tr.get_pipe_transport(0).close()
            await asyncio.wait_for(pr.exited, 10)
            tr.close()
            for _ in range(3):
                await asyncio.sleep(0)

    def expect(errors):
        got = {e["exception"].args[0] for e in errors
               if isinstance(e.get("exception"), Boom)}
        assert got == set(callbacks), errors

    assert_no_leaks(scenario(kind, main, expect_errors=expect), warmup=2,
                    runs=4, types=CORE_TYPES)


# --------------------------------------------------------------------------
# TLS: errors


def test_tls_error_paths(kind, tls_contexts):
    """start_tls on a plain connection; an exception from data_received
    over TLS; the peer resetting a TLS connection; a TLS connect cancelled
    during a handshake the server never answers."""
    sctx, cctx = tls_contexts

    async def main(loop, errors):
        protos = []
        srv = await loop.create_server(
            lambda: EchoServer(protos), "127.0.0.1", 0, ssl=sctx)
        addr = srv.sockets[0].getsockname()
        silent = socket.socket()  # accepts (backlog), never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(10)
        try:
            # start_tls: a plain server upgraded after one line
            async def upgrade(reader, writer):
                assert await reader.readline() == b"STARTTLS\n"
                # The client waits for this line before its ClientHello:
                # start_tls() stops reading before the hello can arrive.
                writer.write(b"GO\n")
                await writer.start_tls(sctx)
                writer.write(await reader.readline())
                await writer.drain()
                writer.close()

            if hasattr(asyncio.StreamWriter, "start_tls"):
                up = await asyncio.start_server(upgrade, "127.0.0.1", 0)
                r, w = await asyncio.open_connection(*up.sockets[0].getsockname())
                w.write(b"STARTTLS\n")
                assert await r.readline() == b"GO\n"
                await w.start_tls(cctx, server_hostname="localhost")
                w.write(b"secret\n")
                assert await r.readline() == b"secret\n"
                w.close()
                await w.wait_closed()
                up.close()
                await up.wait_closed()

            for i in range(3):
                class P(asyncio.Protocol):
                    def __init__(self):
                        self.lost = loop.create_future()

                    def connection_made(self, transport):
                        self.transport = transport
                        transport.write(b"ping")

                    def data_received(self, data):
                        raise Boom("tls data_received")

                    def connection_lost(self, exc):
                        self.lost.set_result(exc)

                tr, p = await loop.create_connection(
                    P, *addr, ssl=cctx, server_hostname="localhost")
                await asyncio.wait_for(p.lost, 10)

                # reset under a live TLS connection
                tr, p = await loop.create_connection(
                    lambda: PingClient(loop, 2, loop.create_future()), *addr,
                    ssl=cctx, server_hostname="localhost")
                await p.done
                protos[-1].transport.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                protos[-1].transport.abort()
                await asyncio.wait_for(p.lost, 10)
                tr.close()

                task = loop.create_task(loop.create_connection(
                    asyncio.Protocol, *silent.getsockname(), ssl=cctx,
                    server_hostname="localhost"))
                await asyncio.sleep(0.005 * (i + 1))
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
        finally:
            srv.close()
            for p in protos:
                await p.lost
            await srv.wait_closed()
            silent.close()
        for _ in range(3):
            await asyncio.sleep(0)

    def expect(errors):
        booms = [e for e in errors if isinstance(e.get("exception"), Boom)]
        assert len(booms) == 3, errors

    check(scenario(kind, main, expect_errors=expect))
