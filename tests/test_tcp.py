"""TCP transports: loop.create_connection / create_server and the transport
and protocol contract (asyncio.Transport, Protocol, BufferedProtocol).

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture); the reference loop proves the expectation right.  Real sockets on
127.0.0.1 and ::1; the fixture checks that no file descriptor leaks.
"""
import asyncio
import contextvars
import errno
import gc
import inspect
import socket
import struct
import sys
import warnings
import weakref

import pytest

from conftest import run
from nethelpers import (
    HIGH,
    LOW,
    PY312,
    Echo,
    Proto,
    accepted,
    close_server,
    echo_server,
    fds,
    needs_ipv6,
    payload,
    record_errors,
    refused_addr,
    wait_until,
)

MB = 1024 * 1024


class PausedEcho(Echo):
    """Echo that starts with reading paused (the test resumes it) and
    optional write-buffer limits (high, low)."""

    def __init__(self, limits=None):
        super().__init__()
        self.limits = limits

    pause_on_made = True

    def connection_made(self, transport):
        super().connection_made(transport)
        if self.limits:
            transport.set_write_buffer_limits(*self.limits)


async def _server_with(loop, factory, host="127.0.0.1", **kw):
    protos = []

    def f():
        p = factory()
        protos.append(p)
        return p

    srv = await loop.create_server(f, host, 0, **kw)
    return srv, srv.sockets[0].getsockname(), protos


# --------------------------------------------------------------------------
# echo


@pytest.mark.parametrize("family", ["ipv4", pytest.param("ipv6", marks=needs_ipv6)])
def test_echo_protocol(loop, family):
    host = "127.0.0.1" if family == "ipv4" else "::1"

    async def main():
        srv, addr, sprotos = await echo_server(loop, host)
        p = Proto(loop)
        tr, pr = await loop.create_connection(lambda: p, host, addr[1])
        assert pr is p
        assert p.transport is tr
        assert p.events == ["made"]
        assert tr.get_protocol() is p
        tr.write(b"hello ")
        tr.write(bytearray(b"world "))
        tr.write(memoryview(b"!!"))
        assert await p.wait_bytes(14) == b"hello world !!"
        tr.close()
        assert tr.is_closing()
        assert await p.lost is None
        assert p.events == ["made", "data", "lost"]
        await close_server(srv, sprotos)
        assert len(sprotos) == 1

    run(loop, main())


def test_echo_many_round_trips(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        expected = b""
        for i in range(200):
            msg = b"message %d;" % i
            expected += msg
            tr.write(msg)
            assert await p.wait_bytes(len(expected)) == expected
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


class KeepSome(asyncio.Protocol):
    """Echo server that keeps every other chunk it receives (the object
    itself), hashes and drops the others: a loop that recycles the bytes
    objects it passes to data_received() must never touch one that is still
    referenced, nor hand out one with a stale cached hash."""

    def __init__(self):
        self.kept = []  # (object, a copy made when it arrived)
        self.bad_hash = 0
        self.n = 0

    def connection_made(self, transport):
        self.transport = transport
        self.lost = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc):
        self.lost.set_result(exc)

    def data_received(self, data):
        assert type(data) is bytes
        copy = bytes(memoryview(data))
        assert copy is not data and copy == data
        if hash(data) != hash(copy) or data not in {copy: 1}:
            self.bad_hash += 1
        self.n += 1
        if self.n % 2:
            self.kept.append((data, copy))
        self.transport.write(data)


def test_data_received_bytes_stay_intact(loop):
    size = 1500  # above pymalloc's limit: glibc malloc

    async def main():
        srv, addr, sprotos = await _server_with(loop, KeepSome)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        sent = b""
        for i in range(60):
            msg = (b"%04d" % i) * (size // 4)
            sent += msg
            tr.write(msg)
            assert await p.wait_bytes(len(sent)) == sent
        server = sprotos[0]
        assert server.bad_hash == 0
        assert server.kept
        for obj, copy in server.kept:
            assert obj == copy
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


class BufProto(asyncio.BufferedProtocol):
    def __init__(self, loop, bufsize=4096, echo=False):
        self.loop = loop
        self.buf = bytearray(bufsize)
        self.echo = echo
        self.data = bytearray()
        self.sizehints = []
        self.updates = 0
        self.transport = None
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.events = []

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def get_buffer(self, sizehint):
        assert isinstance(sizehint, int)
        self.sizehints.append(sizehint)
        return memoryview(self.buf)

    def buffer_updated(self, nbytes):
        assert 0 < nbytes <= len(self.buf)
        chunk = bytes(self.buf[:nbytes])
        self.data += chunk
        self.updates += 1
        if self.echo:
            self.transport.write(chunk)

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


def test_echo_buffered_protocol_client(loop):
    data = payload(1 * MB, seed=1)

    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = BufProto(loop, bufsize=4096)
        tr, pr = await loop.create_connection(lambda: p, *addr)
        assert pr is p
        tr.write(data)
        await wait_until(lambda: len(p.data) >= len(data))
        assert bytes(p.data) == data
        assert p.updates >= len(data) // 4096
        assert p.sizehints and len(p.sizehints) >= p.updates
        tr.close()
        assert await p.lost is None
        assert p.events == ["made", "lost"]
        await close_server(srv, sprotos)

    run(loop, main())


def test_echo_buffered_protocol_server(loop):
    data = payload(512 * 1024, seed=2)

    async def main():
        sp = []
        srv = await loop.create_server(
            lambda: sp.append(BufProto(loop, 1000, echo=True)) or sp[-1],
            "127.0.0.1",
            0,
        )
        addr = srv.sockets[0].getsockname()
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        tr.write(data)
        tr.write_eof()
        assert await p.wait_bytes(len(data)) == data
        # The server's BufferedProtocol got EOF; returning None closes it.
        await sp[0].eof
        assert await sp[0].lost is None
        assert sp[0].events == ["made", "eof", "lost"]
        await p.lost
        tr.close()
        await close_server(srv, sp)

    run(loop, main())


def test_buffered_protocol_bytearray_buffer(loop):
    # get_buffer() may return any writable buffer, e.g. a bytearray.
    class P(BufProto):
        def get_buffer(self, sizehint):
            return self.buf

    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = P(loop, 7)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        tr.write(b"0123456789abcdef")
        await wait_until(lambda: len(p.data) >= 16)
        assert bytes(p.data) == b"0123456789abcdef"
        assert p.updates >= 3
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


# --------------------------------------------------------------------------
# transport type and extra info


def test_transport_isinstance(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        for t in (tr, sprotos[0].transport):
            assert isinstance(t, asyncio.Transport)
            assert isinstance(t, asyncio.WriteTransport)
            assert isinstance(t, asyncio.ReadTransport)
            assert isinstance(t, asyncio.BaseTransport)
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_get_extra_info(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        st = sprotos[0].transport

        csock = tr.get_extra_info("socket")
        ssock = st.get_extra_info("socket")
        for s in (csock, ssock):
            assert isinstance(s, asyncio.trsock.TransportSocket)
            assert s.family == socket.AF_INET
            assert s.type == socket.SOCK_STREAM
            assert s.fileno() >= 0
        assert csock.fileno() != ssock.fileno()

        assert tr.get_extra_info("peername") == addr
        assert tr.get_extra_info("sockname") == csock.getsockname()
        assert csock.getpeername() == addr
        assert st.get_extra_info("sockname") == addr
        assert st.get_extra_info("peername") == tr.get_extra_info("sockname")
        assert st.get_extra_info("peername") == ssock.getpeername()

        assert tr.get_extra_info("no-such-key") is None
        assert tr.get_extra_info("no-such-key", "dflt") == "dflt"
        # No SSL on a plain transport.
        assert tr.get_extra_info("sslcontext") is None
        assert tr.get_extra_info("ssl_object") is None

        peer = tr.get_extra_info("peername")
        tr.close()
        await p.lost
        # Extra info survives the connection.
        assert tr.get_extra_info("peername") == peer
        await close_server(srv, sprotos)

    run(loop, main())


@needs_ipv6
def test_get_extra_info_ipv6(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop, "::1")
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, "::1", addr[1])
        s = tr.get_extra_info("socket")
        assert s.family == socket.AF_INET6
        peer = tr.get_extra_info("peername")
        assert peer[:2] == ("::1", addr[1])
        assert len(peer) == 4
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_tcp_nodelay_set(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        for t in (tr, sprotos[0].transport):
            s = t.get_extra_info("socket")
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_tcp_nodelay_on_sockets_with_proto_0(loop, loop_kind):
    # A listening socket made with socket.socket() has proto 0, and so do
    # the sockets it accepts. asyncio sets TCP_NODELAY only when proto is
    # IPPROTO_TCP, so a server given such a sock= (uvicorn --fd, gunicorn
    # workers) answers small split writes after the peer's delayed ACK
    # (~40 ms); fastloop, like uvloop, sets it on every TCP socket
    # (README, "Differences from asyncio").
    async def main():
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        assert lsock.proto == 0
        sprotos = []

        def factory():
            p = Proto(loop)
            sprotos.append(p)
            return p

        srv = await loop.create_server(factory, sock=lsock)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *lsock.getsockname())
        await accepted(sprotos)
        s = sprotos[0].transport.get_extra_info("socket")
        assert s.proto == 0
        nodelay = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert nodelay == (loop_kind == "fastloop")
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


# --------------------------------------------------------------------------
# write buffer limits and flow control


def test_write_buffer_limits(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        assert tr.get_write_buffer_limits() == (LOW, HIGH)
        assert tr.get_write_buffer_size() == 0

        tr.set_write_buffer_limits(high=100)
        assert tr.get_write_buffer_limits() == (25, 100)
        tr.set_write_buffer_limits(low=100)
        assert tr.get_write_buffer_limits() == (100, 400)
        tr.set_write_buffer_limits(high=1000, low=10)
        assert tr.get_write_buffer_limits() == (10, 1000)
        tr.set_write_buffer_limits(high=0)
        assert tr.get_write_buffer_limits() == (0, 0)
        tr.set_write_buffer_limits(200, 200)  # positional: high, low
        assert tr.get_write_buffer_limits() == (200, 200)
        tr.set_write_buffer_limits()
        assert tr.get_write_buffer_limits() == (LOW, HIGH)

        for kw in (
            dict(high=10, low=20),
            dict(high=-1),
            dict(low=-1),
            dict(high=-4, low=-1),
            dict(high=5, low=-1),
        ):
            with pytest.raises(ValueError):
                tr.set_write_buffer_limits(**kw)
            # A rejected call changes nothing.
            assert tr.get_write_buffer_limits() == (LOW, HIGH)
        # Idle connection: the limits never paused the protocol.
        assert p.pauses == [] and p.resumes == []
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_write_buffer_size_and_set_limits_pauses(loop):
    data = payload(8 * MB, seed=3)

    async def main():
        srv, addr, sprotos = await _server_with(loop, lambda: PausedEcho())
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        tr.set_write_buffer_limits(high=64 * MB)
        tr.write(data)
        size = tr.get_write_buffer_size()
        # The peer is not reading: the kernel cannot take 8 MB.
        assert 0 < size <= len(data)
        assert p.pauses == []  # under the (huge) high-water mark
        # Lowering the limits below the buffered amount pauses at once.
        tr.set_write_buffer_limits(high=size - 1, low=LOW)
        assert p.pauses == [size]
        # Raising them again does not resume: only draining does.
        tr.set_write_buffer_limits(high=64 * MB, low=LOW)
        assert p.resumes == []
        p.transport.pause_reading()  # we don't need the echo
        sprotos[0].transport.resume_reading()
        await wait_until(lambda: p.resumes)
        assert p.resumes[0] <= LOW
        await wait_until(lambda: tr.get_write_buffer_size() == 0)
        assert p.events.count("pause_writing") == 1
        assert p.events.count("resume_writing") == 1
        tr.abort()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


class Throttled(Proto):
    """Client protocol that pauses reading for a moment every ~1 MB and
    asserts that no data arrives while paused."""

    def __init__(self, loop, **kw):
        super().__init__(loop, **kw)
        self.paused = False
        self.read_pauses = 0
        self._next = MB

    def data_received(self, data):
        assert not self.paused, "data_received() while reading is paused"
        super().data_received(data)
        if len(self.data) >= self._next:
            self._next += MB
            self.paused = True
            self.read_pauses += 1
            self.transport.pause_reading()
            assert not self.transport.is_reading()
            self.loop.call_later(0.002, self._resume)

    def _resume(self):
        self.paused = False
        self.transport.resume_reading()
        assert self.transport.is_reading() or self.transport.is_closing()


def _check_flow_events(events, pauses, resumes, high, low):
    seq = [e for e in events if e in ("pause_writing", "resume_writing")]
    # pause, resume, pause, resume, ... (never twice in a row)
    for i, e in enumerate(seq):
        assert e == ("pause_writing" if i % 2 == 0 else "resume_writing"), seq
    assert all(s > high for s in pauses), (pauses, high)
    assert all(s <= low for s in resumes), (resumes, low)


@pytest.mark.parametrize("limits", [None, (256 * 1024, 32 * 1024)])
def test_large_transfer_flow_control_both_ways(loop, limits):
    N = 16 * MB
    data = payload(N, seed=4)
    high, low = limits or (HIGH, LOW)

    async def main():
        srv, addr, sprotos = await _server_with(loop, lambda: PausedEcho(limits))
        p = Throttled(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        if limits:
            tr.set_write_buffer_limits(high, low)
        await accepted(sprotos)
        sp = sprotos[0]

        # The client does not read yet; the server does not read yet.
        tr.pause_reading()
        tr.write(data)
        # Far over the high-water mark: pause_writing() ran inside write().
        assert len(p.pauses) == 1 and p.pauses[0] > high

        # The server echoes into a client that doesn't read: its buffer
        # grows over the mark and it pauses too (Echo stops reading).
        sp.transport.resume_reading()
        await wait_until(lambda: sp.pauses)
        assert not sp.transport.is_reading()

        tr.resume_reading()
        await p.wait_bytes(N)
        assert len(p.data) == N
        assert bytes(p.data) == data
        assert p.read_pauses >= 10

        _check_flow_events(p.events, p.pauses, p.resumes, high, low)
        # The client's buffer drained completely: the last call was resume.
        assert len(p.resumes) == len(p.pauses) >= 1
        assert tr.get_write_buffer_size() == 0
        await wait_until(lambda: sp.transport.get_write_buffer_size() == 0)
        assert all(s > high for s in sp.pauses), sp.pauses
        assert all(s <= low for s in sp.resumes), sp.resumes
        assert len(sp.resumes) == len(sp.pauses) >= 1

        tr.close()
        assert await p.lost is None
        await close_server(srv, sprotos)

    run(loop, main(), timeout=60)


def test_pause_resume_reading(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        assert tr.is_reading()
        tr.pause_reading()
        assert not tr.is_reading()
        tr.pause_reading()  # idempotent
        assert not tr.is_reading()
        tr.write(b"ping")
        await accepted(sprotos)
        # The echo comes back but must not be delivered while paused.
        await asyncio.sleep(0.1)
        assert p.data == b""
        tr.resume_reading()
        assert tr.is_reading()
        tr.resume_reading()  # idempotent
        assert await p.wait_bytes(4) == b"ping"
        tr.close()
        assert not tr.is_reading()
        # Neither raises on a closing transport.
        tr.pause_reading()
        tr.resume_reading()
        assert not tr.is_reading()
        await p.lost
        assert not tr.is_reading()
        await close_server(srv, sprotos)

    run(loop, main())


def test_paused_reading_does_not_see_eof(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        tr.pause_reading()
        sprotos[0].transport.close()
        await asyncio.sleep(0.1)
        assert p.events == ["made"]
        tr.resume_reading()
        await p.eof
        assert await p.lost is None
        assert p.events == ["made", "eof", "lost"]
        await close_server(srv, sprotos)

    run(loop, main())


# --------------------------------------------------------------------------
# write / writelines


def test_writelines(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        tr.writelines([b"a", bytearray(b"bc"), memoryview(b"def")])
        tr.writelines([])
        tr.writelines(iter([b"g", b"h"]))
        assert await p.wait_bytes(8) == b"abcdefgh"
        big = [payload(100 * 1024, seed=i) for i in range(30)]
        tr.writelines(big)
        expected = b"abcdefgh" + b"".join(big)
        assert await p.wait_bytes(len(expected)) == expected
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


@pytest.mark.parametrize("action", ["raise", "close", "abort"])
def test_writelines_iterable_acts_midway(loop, loop_kind, action):
    # asyncio takes every item before queueing any: an iterable that raises
    # queues nothing, and one that closes or aborts the transport does so
    # before its data is looked at.  fastloop queued the items one by one:
    # the first ones went out later (raise), after abort(), or were sent at
    # once with connection_lost() never called (close).
    async def main():
        a, b = socket.socketpair()
        p = Proto(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: p, a)

        def lines():
            yield b"abc"
            if action == "raise":
                raise ValueError("midway")
            getattr(tr, action)()
            yield b"def"

        if action == "raise":
            with pytest.raises(ValueError):
                tr.writelines(lines())
            assert tr.get_write_buffer_size() == 0
            tr.write(b"!")
            tr.close()
        elif action == "close" and loop_kind == "asyncio" and PY312:
            # 3.12+'s close() drops _write_ready, which writelines() then
            # calls (asyncio's own bug); nothing is sent either way.
            with pytest.raises(TypeError):
                tr.writelines(lines())
        else:
            tr.writelines(lines())
        assert await asyncio.wait_for(p.lost, 5) is None
        b.settimeout(5)
        got = b""
        while True:
            chunk = b.recv(65536)
            if not chunk:
                break
            got += chunk
        assert got == (b"!" if action == "raise" else b"")
        b.close()

    run(loop, main())


def test_empty_waiter_reset_by_its_own_done(loop):
    # sendfile's empty waiter (a future of loop.create_future()) is reset
    # by code its done() runs, while the drained buffer settles it: fastloop
    # went on to call set_result() on the freed future.
    freed = []
    calls = []

    class F(asyncio.Future):
        def done(self):
            tr._reset_empty_waiter()
            return super().done()

        def set_result(self, result):
            calls.append(bool(freed))
            super().set_result(result)

    async def main():
        nonlocal tr
        a, b = socket.socketpair()
        p = Proto(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: p, a)
        tr.write(b"x" * (8 * MB))
        assert tr.get_write_buffer_size() > 0
        loop.create_future = lambda: F(loop=loop)
        w = tr._make_empty_waiter()
        ref = weakref.ref(w, lambda r: freed.append(1))
        del w, loop.create_future
        b.setblocking(False)
        got = 0
        while got < 8 * MB:
            try:
                got += len(b.recv(MB))
            except BlockingIOError:
                await asyncio.sleep(0.001)
        await wait_until(lambda: calls or ref() is None)
        tr.close()
        await p.lost
        b.close()

    tr = None
    run(loop, main())
    assert calls == [False]


def test_write_type_errors_and_empty(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        for bad in ("text", 123, None, [b"x"]):
            with pytest.raises(TypeError):
                tr.write(bad)
        tr.write(b"")  # no-op
        assert tr.get_write_buffer_size() == 0
        tr.write(b"ok")
        assert await p.wait_bytes(2) == b"ok"
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_writelines_more_buffers_than_iov_max(loop):
    # Thousands of small buffers queued while the peer doesn't read:
    # flushed in order however the transport batches them (IOV_MAX is 1024).
    pieces = [b"%06d," % i for i in range(5000)]

    async def main():
        srv, addr, sprotos = await _server_with(
            loop, lambda: Proto(loop, pause_on_made=True)
        )
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        sp = sprotos[0]
        tr.write(payload(8 * MB, seed=10))  # fill the kernel buffers
        assert tr.get_write_buffer_size() > 0
        tr.writelines(pieces)
        for piece in pieces:
            tr.write(piece)
        tail = b"".join(pieces) * 2
        sp.transport.resume_reading()
        data = await sp.wait_bytes(8 * MB + len(tail))
        assert data[8 * MB :] == tail
        await wait_until(lambda: tr.get_write_buffer_size() == 0)
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main(), timeout=60)


def test_producer_driven_by_resume_writing(loop):
    """The classic producer: write until pause_writing(), continue from
    resume_writing() (which runs while the transport is flushing)."""
    N = 16 * MB
    data = payload(N, seed=13)
    CHUNK = 100_000

    class Producer(Proto):
        def __init__(self, loop):
            super().__init__(loop)
            self.pos = 0
            self.paused = False
            self.done = loop.create_future()

        def connection_made(self, transport):
            super().connection_made(transport)
            self.produce()

        def produce(self):
            while not self.paused and self.pos < N:
                self.transport.write(data[self.pos : self.pos + CHUNK])
                self.pos += CHUNK
            if self.pos >= N and not self.done.done():
                self.done.set_result(None)

        def pause_writing(self):
            super().pause_writing()
            self.paused = True

        def resume_writing(self):
            super().resume_writing()
            self.paused = False
            self.produce()  # writes from inside the transport's flush

    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(Producer(loop)) or sprotos[-1], "127.0.0.1", 0
        )
        p = Throttled(loop)
        tr, _ = await loop.create_connection(lambda: p, *srv.sockets[0].getsockname())
        assert await p.wait_bytes(N) == data
        sp = sprotos[0]
        await sp.done
        assert len(sp.pauses) >= 2
        _check_flow_events(sp.events, sp.pauses, sp.resumes, HIGH, LOW)
        tr.close()
        await p.lost
        await sp.lost
        await close_server(srv)

    run(loop, main(), timeout=60)


def test_close_inside_data_received_stops_delivery(loop):
    class Closer(Proto):
        def data_received(self, data):
            super().data_received(data)
            self.transport.close()

    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(Closer(loop)) or sprotos[-1], "127.0.0.1", 0
        )
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *srv.sockets[0].getsockname())
        tr.write(b"first")
        await accepted(sprotos)
        sp = sprotos[0]
        await wait_until(lambda: sp.data)
        for _ in range(5):
            tr.write(b"more")
            await asyncio.sleep(0.01)
        assert await sp.lost is None
        assert sp.chunks == 1
        assert sp.events == ["made", "data", "lost"]
        exc = await p.lost
        assert exc is None or isinstance(exc, OSError)
        await close_server(srv)

    run(loop, main())


# --------------------------------------------------------------------------
# half-close


class HalfCloseServer(Proto):
    """On EOF: keep the transport open (return True), then reply and close."""

    def __init__(self, loop):
        super().__init__(loop, keep_open=True)
        self.closing_after_eof = None

    def eof_received(self):
        r = super().eof_received()
        self.loop.call_soon(self._reply)
        return r

    def _reply(self):
        self.closing_after_eof = self.transport.is_closing()
        self.transport.write(b"got:" + bytes(self.data))
        self.transport.close()


def test_half_close(loop):
    async def main():
        srv, addr, sprotos = await _server_with(loop, lambda: HalfCloseServer(loop))
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        assert tr.can_write_eof() is True
        tr.write(b"question")
        tr.write_eof()
        tr.write_eof()  # idempotent
        assert not tr.is_closing()
        with pytest.raises(RuntimeError):
            tr.write(b"more")
        with pytest.raises(RuntimeError):
            tr.writelines([b"more"])
        await p.eof
        assert bytes(p.data) == b"got:question"
        # The client returned None from eof_received(): it closes itself.
        assert await p.lost is None
        assert p.events == ["made", "data", "eof", "lost"]
        sp = sprotos[0]
        assert await sp.lost is None
        assert sp.events == ["made", "data", "eof", "lost"]
        # eof_received() returned True: still open for writing after EOF.
        assert sp.closing_after_eof is False
        await close_server(srv, sprotos)

    run(loop, main())


def test_write_eof_after_buffered_data(loop):
    data = payload(8 * MB, seed=5)

    async def main():
        srv, addr, sprotos = await _server_with(
            loop, lambda: Proto(loop, pause_on_made=True, keep_open=True)
        )
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        sp = sprotos[0]
        tr.write(data)
        assert tr.get_write_buffer_size() > 0
        tr.write_eof()  # sent once the buffer drains
        sp.transport.resume_reading()
        await sp.eof
        assert bytes(sp.data) == data
        assert sp.events == ["made", "data", "eof"]
        sp.transport.write(b"bye")
        sp.transport.close()
        assert await p.wait_bytes(3) == b"bye"
        await p.lost
        await sp.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_eof_received_false_closes(loop):
    async def main():
        srv, addr, sprotos = await _server_with(loop, lambda: Proto(loop))
        p = Proto(loop, keep_open=True)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        tr.write_eof()
        # Server's eof_received() returns False: the server closes...
        assert await sprotos[0].lost is None
        # ... and the client (keep_open=True) sees EOF and stays open.
        await p.eof
        await asyncio.sleep(0.05)
        assert not tr.is_closing()
        assert not p.lost.done()
        tr.close()
        assert await p.lost is None
        await close_server(srv, sprotos)

    run(loop, main())


# --------------------------------------------------------------------------
# abort, reset, close


def test_abort_mid_write(loop):
    data = payload(8 * MB, seed=6)

    async def main():
        srv, addr, sprotos = await _server_with(
            loop, lambda: Proto(loop, pause_on_made=True)
        )
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        sp = sprotos[0]
        tr.write(data)
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        assert tr.is_closing()
        assert not p.lost.done()  # connection_lost() comes later
        tr.abort()  # idempotent
        tr.close()
        assert await p.lost is None
        assert tr.get_write_buffer_size() == 0
        assert p.events == ["made", "pause_writing", "lost"]
        # The server sees the connection end before all the data arrived.
        sp.transport.resume_reading()
        exc = await sp.lost
        assert exc is None or isinstance(exc, OSError), exc
        assert len(sp.data) < len(data)
        assert bytes(sp.data) == data[: len(sp.data)]
        await close_server(srv, sprotos)

    run(loop, main())


def _rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_peer_reset_while_reading(loop):
    errors = record_errors(loop)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    async def main():
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *lsock.getsockname())
        conn, _ = lsock.accept()
        conn.sendall(b"partial")
        assert await p.wait_bytes(7) == b"partial"
        _rst_close(conn)
        exc = await p.lost
        assert isinstance(exc, ConnectionResetError), repr(exc)
        assert p.events == ["made", "data", "lost"]
        assert tr.is_closing()
        tr.close()  # harmless
        tr.write(b"x")  # does not raise

    try:
        run(loop, main())
    finally:
        lsock.close()
    # An OSError is not reported to the exception handler.
    assert errors == []


def test_peer_reset_while_writing(loop):
    errors = record_errors(loop)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    data = payload(8 * MB, seed=7)

    async def main():
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *lsock.getsockname())
        conn, _ = lsock.accept()
        tr.pause_reading()  # only the write side can notice
        tr.write(data)
        assert tr.get_write_buffer_size() > 0
        _rst_close(conn)
        exc = await p.lost
        assert isinstance(exc, OSError), repr(exc)
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), repr(exc)
        assert tr.is_closing()
        assert tr.get_write_buffer_size() == 0
        tr.write(b"x")  # does not raise

    try:
        run(loop, main())
    finally:
        lsock.close()
    assert errors == []


def test_write_after_close_does_not_raise(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        tr.close()
        tr.write(b"ignored")  # closing, empty buffer: silently dropped
        await p.lost
        for _ in range(10):  # after connection_lost too (asyncio logs)
            tr.write(b"ignored")
        tr.close()
        await close_server(srv, sprotos)
        assert not any(sp.transport.get_write_buffer_size() for sp in sprotos)

    run(loop, main())


def test_close_with_empty_buffer_calls_connection_lost_later(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        tr.close()
        assert tr.is_closing()
        assert p.events == ["made"]  # not called from inside close()
        tr.close()  # idempotent
        assert await p.lost is None
        assert p.events == ["made", "lost"]
        await close_server(srv, sprotos)

    run(loop, main())


def test_close_flushes_buffer(loop):
    data = payload(12 * MB, seed=8)

    async def main():
        srv, addr, sprotos = await _server_with(
            loop, lambda: Proto(loop, pause_on_made=True)
        )
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        sp = sprotos[0]
        tr.write(data)
        assert tr.get_write_buffer_size() > 0
        tr.close()
        assert tr.is_closing()
        assert not tr.is_reading()
        await asyncio.sleep(0.05)
        assert not p.lost.done()  # still flushing: the server isn't reading
        sp.transport.resume_reading()
        await sp.eof
        assert bytes(sp.data) == data
        assert await p.lost is None
        assert tr.get_write_buffer_size() == 0
        assert p.events[-1] == "lost"
        assert await sp.lost is None
        await close_server(srv, sprotos)

    run(loop, main())


def test_connection_lost_called_once(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        sprotos[0].transport.close()
        tr.close()
        tr.abort()
        await p.lost
        await asyncio.sleep(0.05)
        assert p.events.count("lost") == 1
        await close_server(srv, sprotos)

    run(loop, main())


# --------------------------------------------------------------------------
# protocol errors


class Raising(Proto):
    def __init__(self, loop, where):
        super().__init__(loop)
        self.where = where
        self.exc = ZeroDivisionError("boom in " + where)

    def data_received(self, data):
        super().data_received(data)
        if self.where == "data_received":
            raise self.exc

    def eof_received(self):
        super().eof_received()
        if self.where == "eof_received":
            raise self.exc


class RaisingBuf(BufProto):
    def __init__(self, loop, where):
        super().__init__(loop)
        self.where = where
        self.exc = ZeroDivisionError("boom in " + where)

    def get_buffer(self, sizehint):
        if self.where == "get_buffer":
            raise self.exc
        if self.where == "empty_buffer":
            return bytearray()
        return super().get_buffer(sizehint)

    def buffer_updated(self, nbytes):
        super().buffer_updated(nbytes)
        if self.where == "buffer_updated":
            raise self.exc


@pytest.mark.parametrize(
    "where",
    ["data_received", "eof_received", "get_buffer", "buffer_updated", "empty_buffer"],
)
def test_protocol_exception_goes_to_handler_and_closes(loop, where):
    errors = record_errors(loop)
    cls = Raising if where in ("data_received", "eof_received") else RaisingBuf

    async def main():
        srv, addr, sprotos = await _server_with(loop, lambda: cls(loop, where))
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        tr.write(b"hello")
        if where == "eof_received":
            await wait_until(lambda: sprotos and sprotos[0].data)
            tr.write_eof()
        await accepted(sprotos)
        sp = sprotos[0]
        exc = await sp.lost
        # The client sees the server go away.
        cexc = await p.lost
        assert cexc is None or isinstance(cexc, OSError)
        assert sp.transport.is_closing()
        tr.close()
        await close_server(srv, sprotos)
        return sp, exc

    sp, exc = run(loop, main())
    assert len(errors) == 1, errors
    ctx = errors[0]
    if where == "empty_buffer":
        assert isinstance(exc, RuntimeError)
        msg = "Fatal error: protocol.get_buffer() call failed."
    else:
        assert exc is sp.exc
        msg = "Fatal error: protocol.%s() call failed." % where
    assert ctx["message"] == msg
    assert ctx["exception"] is exc
    assert ctx["transport"] is sp.transport
    assert ctx["protocol"] is sp


def test_pause_writing_exception_goes_to_handler(loop):
    errors = record_errors(loop)

    class P(Proto):
        def pause_writing(self):
            super().pause_writing()
            raise ValueError("pause")

        def resume_writing(self):
            super().resume_writing()
            raise KeyError("resume")

    async def main():
        srv, addr, sprotos = await _server_with(
            loop, lambda: Proto(loop, pause_on_made=True)
        )
        p = P(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await accepted(sprotos)
        tr.write(payload(8 * MB))
        assert len(p.pauses) == 1
        assert len(errors) == 1
        sprotos[0].transport.resume_reading()
        await wait_until(lambda: p.resumes)
        await wait_until(lambda: tr.get_write_buffer_size() == 0)
        tr.close()
        assert await p.lost is None
        await close_server(srv, sprotos)

    run(loop, main())
    assert [e["message"] for e in errors] == [
        "protocol.pause_writing() failed",
        "protocol.resume_writing() failed",
    ]
    assert isinstance(errors[0]["exception"], ValueError)
    assert isinstance(errors[1]["exception"], KeyError)
    assert all("transport" in e and "protocol" in e for e in errors)


def test_connection_made_exception_goes_to_handler(loop):
    errors = record_errors(loop)

    class P(Proto):
        def connection_made(self, transport):
            super().connection_made(transport)
            raise ValueError("in connection_made")

    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = P(loop)
        # connection_made() is a plain callback: its error is reported and
        # the connection carries on.
        tr, _ = await loop.create_connection(lambda: p, *addr)
        tr.write(b"still works")
        assert await p.wait_bytes(11) == b"still works"
        tr.close()
        assert await p.lost is None
        await close_server(srv, sprotos)

    run(loop, main())
    assert len(errors) == 1, errors
    assert isinstance(errors[0]["exception"], ValueError)
    assert errors[0]["message"].startswith("Exception in callback")
    errors.clear()


def test_connection_lost_exception_still_closes_socket(loop):
    errors = record_errors(loop)

    class P(Proto):
        def connection_lost(self, exc):
            super().connection_lost(exc)
            raise ValueError("in connection_lost")

    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = P(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        fd = tr.get_extra_info("socket").fileno()
        tr.close()
        await p.lost
        await asyncio.sleep(0)
        # The socket is closed although connection_lost() raised.
        import os

        with pytest.raises(OSError):
            os.fstat(fd)
        await close_server(srv, sprotos)

    run(loop, main())
    assert [type(e.get("exception")) for e in errors] == [ValueError]
    errors.clear()


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="asyncio 3.9/3.10 start reading even if connection_made() paused",
)
def test_pause_reading_in_connection_made_holds(loop):
    class P(Proto):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()

    async def main():
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(P(loop)) or sprotos[-1], "127.0.0.1", 0
        )
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *srv.sockets[0].getsockname())
        tr.write(b"early data")
        await wait_until(lambda: sprotos and sprotos[0].made.done())
        await asyncio.sleep(0.05)
        sp = sprotos[0]
        assert sp.data == b""
        assert not sp.transport.is_reading()
        sp.transport.resume_reading()
        assert await sp.wait_bytes(10) == b"early data"
        tr.close()
        await p.lost
        await sp.lost
        await close_server(srv)

    run(loop, main())


def test_buffered_protocol_pause_in_buffer_updated(loop):
    data = payload(2 * MB, seed=9)

    class P(BufProto):
        paused = False

        def buffer_updated(self, nbytes):
            assert not self.paused, "buffer_updated() while paused"
            super().buffer_updated(nbytes)
            if self.updates % 10 == 0:
                self.paused = True
                self.transport.pause_reading()
                self.loop.call_later(0.001, self._resume)

        def _resume(self):
            self.paused = False
            self.transport.resume_reading()

        def eof_received(self):
            super().eof_received()
            return True  # keep open: we still answer

    async def main():
        sp = []
        srv = await loop.create_server(
            lambda: sp.append(P(loop, 8192)) or sp[-1], "127.0.0.1", 0
        )
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, *srv.sockets[0].getsockname())
        tr.write(data)
        tr.write_eof()
        await sp[0].eof
        assert bytes(sp[0].data) == data
        assert not sp[0].transport.is_closing()
        sp[0].transport.write(b"done")
        sp[0].transport.close()
        assert await p.wait_bytes(4) == b"done"
        await p.lost
        await sp[0].lost
        await close_server(srv)

    run(loop, main())


def test_close_after_loop_closed_raises(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        tr, _ = await loop.create_connection(asyncio.Protocol, *addr)
        await accepted(sprotos)
        srv.close()
        return tr

    tr = run(loop, main())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        loop.close()
        # Like call_soon() on a closed loop.
        with pytest.raises(RuntimeError):
            tr.close()
        del tr
        gc.collect()


# --------------------------------------------------------------------------
# set_protocol / get_protocol


def test_set_protocol_mid_stream(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p1 = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p1, *addr)
        tr.write(b"one")
        assert await p1.wait_bytes(3) == b"one"
        p2 = Proto(loop)
        tr.set_protocol(p2)
        assert tr.get_protocol() is p2
        tr.write(b"two")
        assert await p2.wait_bytes(3) == b"two"
        assert p1.data == b"one"
        # Switch to a BufferedProtocol mid-stream.
        p3 = BufProto(loop, 16)
        tr.set_protocol(p3)
        assert tr.get_protocol() is p3
        tr.write(b"three")
        await wait_until(lambda: len(p3.data) >= 5)
        assert bytes(p3.data) == b"three"
        # ... and back to a plain Protocol.
        p4 = Proto(loop)
        tr.set_protocol(p4)
        tr.write(b"four")
        assert await p4.wait_bytes(4) == b"four"
        tr.close()
        assert await p4.lost is None
        assert p1.events == ["made", "data"]
        assert p2.events == ["data"]
        assert p3.events == []
        assert not p1.lost.done() and not p2.lost.done()
        await close_server(srv, sprotos)

    run(loop, main())


class _RaisingGetBuffer(asyncio.BufferedProtocol):
    """A BufferedProtocol whose get_buffer attribute cannot be looked up."""

    @property
    def get_buffer(self):
        raise ZeroDivisionError("no get_buffer")

    def buffer_updated(self, nbytes):
        pass


def test_set_protocol_buffered_lookup_fails(loop):
    # asyncio looks the BufferedProtocol's methods up at each read: the
    # failing lookup is a fatal read error, not a crash (fastloop cached
    # NULL there and called it).
    async def main():
        a, b = socket.socketpair()
        p1 = Proto(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: p1, a)
        bad = _RaisingGetBuffer()
        bad.lost = loop.create_future()
        bad.connection_lost = bad.lost.set_result
        errors = record_errors(loop)
        tr.set_protocol(bad)
        b.send(b"hello")
        exc = await bad.lost
        assert isinstance(exc, ZeroDivisionError)
        assert errors
        b.close()

    run(loop, main())


def test_get_buffer_replaces_protocol(loop):
    # get_buffer() switches to a plain Protocol: buffer_updated() is then
    # looked up on the new protocol, as asyncio's self._protocol does.
    async def main():
        a, b = socket.socketpair()
        p2 = Proto(loop)

        class Switch(BufProto):
            def get_buffer(self, sizehint):
                self.transport.set_protocol(p2)
                return super().get_buffer(sizehint)

        p1 = Switch(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: p1, a)
        errors = record_errors(loop)
        b.send(b"hello")
        exc = await p2.lost
        assert isinstance(exc, AttributeError)
        assert errors
        assert p1.updates == 0
        b.close()

    run(loop, main())


def test_data_received_callable_kept_alive_while_called(loop):
    # The protocol's data_received is a C method (list.remove) whose list
    # only the protocol holds; a comparison made by that method replaces the
    # protocol.  asyncio holds the bound method while calling it: fastloop
    # called its cached reference, freed during the call (use after free).
    seen = []

    class WeakList(list):
        pass

    class Other(asyncio.Protocol):
        def __init__(self):
            self.lost = loop.create_future()

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    other = Other()

    class Switch:
        def __init__(self, tr, lst):
            self.tr = tr
            self.lst = weakref.ref(lst)

        def __eq__(self, data):
            tr, self.tr = self.tr, None
            if tr is not None:
                tr.set_protocol(other)
                seen.append(self.lst() is not None)
            return False

    class P(asyncio.Protocol):
        def __init__(self):
            self.lst = WeakList()
            self.data_received = self.lst.remove

        def connection_made(self, tr):
            lst = self.lst
            del self.lst
            lst.append(Switch(tr, lst))
            lst.extend(object() for _ in range(20))

    async def main():
        a, b = socket.socketpair()
        # The transport holds the only reference to the protocol.
        tr = (await loop.connect_accepted_socket(P, a))[0]
        record_errors(loop)
        b.send(b"hello")
        # list.remove() raised ValueError: a fatal read error.
        assert isinstance(await other.lost, ValueError)
        b.close()

    run(loop, main())
    assert seen == [True]


# --------------------------------------------------------------------------
# contextvars


cvar = contextvars.ContextVar("cvar", default="unset")


class CtxProto(Proto):
    def __init__(self, loop, **kw):
        super().__init__(loop, **kw)
        self.seen = {}

    def _see(self, name):
        self.seen.setdefault(name, set()).add(cvar.get())

    def connection_made(self, t):
        self._see("connection_made")
        super().connection_made(t)

    def data_received(self, d):
        self._see("data_received")
        super().data_received(d)

    def eof_received(self):
        self._see("eof_received")
        return super().eof_received()

    def connection_lost(self, exc):
        self._see("connection_lost")
        super().connection_lost(exc)


def test_protocol_callbacks_run_in_creation_context(loop):
    async def start_server():
        cvar.set("server")
        sprotos = []
        srv = await loop.create_server(
            lambda: sprotos.append(CtxProto(loop, echo=True)) or sprotos[-1],
            "127.0.0.1",
            0,
        )
        cvar.set("server-changed-after")
        return srv, sprotos

    async def client(addr):
        cvar.set("client")
        p = CtxProto(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        cvar.set("client-changed-after")
        tr.write(b"x" * 100)
        await p.wait_bytes(100)
        tr.write_eof()
        await p.eof
        await p.lost
        return p

    async def main():
        srv, sprotos = await loop.create_task(start_server())
        addr = srv.sockets[0].getsockname()
        p = await loop.create_task(client(addr))
        assert cvar.get() == "unset"
        await sprotos[0].lost
        await close_server(srv, sprotos)
        return p, sprotos[0]

    p, sp = run(loop, main())
    expected = {"connection_made", "data_received", "eof_received", "connection_lost"}
    assert set(p.seen) == expected
    assert set(sp.seen) == expected
    for name in expected:
        assert p.seen[name] == {"client"}, (name, p.seen)
        assert sp.seen[name] == {"server"}, (name, sp.seen)


def test_protocol_context_changes_do_not_leak(loop):
    # A callback's cvar.set() does not reach the creating task.
    class Setter(Proto):
        def connection_made(self, t):
            cvar.set("set-in-callback")
            super().connection_made(t)

    async def main():
        srv, addr, sprotos = await echo_server(loop)
        cvar.set("task")
        p = Setter(loop)
        tr, _ = await loop.create_connection(lambda: p, *addr)
        await p.made
        assert cvar.get() == "task"
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


# --------------------------------------------------------------------------
# many connections


def test_1000_concurrent_connections(loop):
    N = 1000

    async def main():
        srv, addr, sprotos = await echo_server(loop, backlog=N)
        protos = [Proto(loop) for _ in range(N)]
        pairs = await asyncio.gather(
            *(loop.create_connection(lambda p=p: p, *addr) for p in protos)
        )
        await wait_until(lambda: len(sprotos) == N)
        # All N are open at once.
        assert all(not tr.is_closing() for tr, _ in pairs)
        for i, (tr, _) in enumerate(pairs):
            tr.write(b"hello %d\n" % i)
        for i, p in enumerate(protos):
            msg = b"hello %d\n" % i
            assert await p.wait_bytes(len(msg)) == msg
        for tr, _ in pairs:
            tr.close()
        excs = await asyncio.gather(*(p.lost for p in protos))
        assert excs == [None] * N
        await close_server(srv, sprotos)

    run(loop, main(), timeout=60)


# --------------------------------------------------------------------------
# create_connection: errors and options


def test_create_connection_refused(loop):
    s, addr = refused_addr()

    async def main():
        with pytest.raises(ConnectionRefusedError) as ei:
            await loop.create_connection(asyncio.Protocol, *addr)
        assert ei.value.errno == errno.ECONNREFUSED

    try:
        run(loop, main())
    finally:
        s.close()


@needs_ipv6
def test_create_connection_refused_ipv6(loop):
    s, addr = refused_addr(socket.AF_INET6)

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, "::1", addr[1])

    try:
        run(loop, main())
    finally:
        s.close()


def _fake_resolver(loop, addrs):
    """Make `loop.getaddrinfo` answer with the given real (refused or
    listening) IPv4 addresses: the loop's only way to learn several addresses
    for one name on a machine whose 'localhost' has one."""

    async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", a)
            for a in addrs
        ]

    loop.getaddrinfo = getaddrinfo


def test_create_connection_multiple_addresses_all_refused(loop):
    s1, a1 = refused_addr()
    s2, a2 = refused_addr()
    _fake_resolver(loop, [a1, a2])

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_connection(asyncio.Protocol, "multi.invalid", 80)
        exc = ei.value
        assert type(exc) is OSError
        assert str(exc).startswith("Multiple exceptions: ")
        assert str(a1[1]) in str(exc) and str(a2[1]) in str(exc)

    try:
        run(loop, main())
    finally:
        s1.close()
        s2.close()


def test_create_connection_localhost_multiple_addresses(loop):
    infos = socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)
    fams = {i[0] for i in infos}
    if len(infos) < 2 or fams != {socket.AF_INET, socket.AF_INET6}:
        pytest.skip("'localhost' does not resolve to both 127.0.0.1 and ::1")
    s4, a4 = refused_addr()
    s6 = socket.socket(socket.AF_INET6)
    try:
        s6.bind(("::1", a4[1]))
    except OSError:
        s4.close()
        s6.close()
        pytest.skip("port not free on ::1")

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_connection(asyncio.Protocol, "localhost", a4[1])
        assert str(ei.value).startswith("Multiple exceptions: ")

    try:
        run(loop, main())
    finally:
        s4.close()
        s6.close()


@pytest.mark.skipif(not PY312, reason="all_errors is new in 3.12")
def test_create_connection_all_errors(loop):
    s1, a1 = refused_addr()
    s2, a2 = refused_addr()

    async def main():
        with pytest.raises(ExceptionGroup) as ei:  # noqa: F821
            await loop.create_connection(asyncio.Protocol, *a1, all_errors=True)
        assert len(ei.value.exceptions) == 1
        assert isinstance(ei.value.exceptions[0], ConnectionRefusedError)
        _fake_resolver(loop, [a1, a2])
        with pytest.raises(ExceptionGroup) as ei:  # noqa: F821
            await loop.create_connection(
                asyncio.Protocol, "multi.invalid", 80, all_errors=True
            )
        assert len(ei.value.exceptions) == 2
        assert all(
            isinstance(e, ConnectionRefusedError) for e in ei.value.exceptions
        )

    try:
        run(loop, main())
    finally:
        s1.close()
        s2.close()


@pytest.mark.parametrize("delay,interleave", [(None, 1), (0.05, None), (0.05, 2)])
def test_create_connection_falls_back_to_next_address(loop, delay, interleave):
    s, bad = refused_addr()

    async def main():
        srv, good, sprotos = await echo_server(loop)
        _fake_resolver(loop, [bad, good])
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p,
            "multi.invalid",
            80,
            happy_eyeballs_delay=delay,
            interleave=interleave,
        )
        assert tr.get_extra_info("peername") == good
        tr.write(b"hi")
        assert await p.wait_bytes(2) == b"hi"
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    try:
        run(loop, main())
    finally:
        s.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_create_connection_happy_eyeballs_accepted(loop, host):
    async def main():
        sprotos = []
        srv = await loop.create_server(lambda: Echo(sprotos), host, 0)
        port = srv.sockets[0].getsockname()[1]
        for kw in (
            dict(happy_eyeballs_delay=0.25),
            dict(interleave=1),
            dict(happy_eyeballs_delay=0.1, interleave=2),
        ):
            p = Proto(loop)
            tr, _ = await loop.create_connection(lambda: p, host, port, **kw)
            tr.write(b"he")
            assert await p.wait_bytes(2) == b"he"
            tr.close()
            await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_create_connection_with_sock(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        sock = socket.create_connection(addr)  # blocking, connected
        p = Proto(loop)
        tr, _ = await loop.create_connection(lambda: p, sock=sock)
        assert sock.getblocking() is False  # made non-blocking
        assert tr.get_extra_info("socket").fileno() == sock.fileno()
        assert tr.get_extra_info("peername") == addr
        tr.write(b"via sock")
        assert await p.wait_bytes(8) == b"via sock"
        tr.close()
        await p.lost
        # The transport owned the socket: it is closed.
        assert sock.fileno() == -1
        await close_server(srv, sprotos)

    run(loop, main())


def test_create_connection_argument_errors(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        sock = socket.socket()
        dgram = socket.socket(type=socket.SOCK_DGRAM)
        try:
            with pytest.raises(ValueError):
                await loop.create_connection(asyncio.Protocol, *addr, sock=sock)
            with pytest.raises(ValueError):
                await loop.create_connection(asyncio.Protocol)
            with pytest.raises(ValueError):
                await loop.create_connection(asyncio.Protocol, sock=dgram)
            with pytest.raises(ValueError):
                await loop.create_connection(
                    asyncio.Protocol, *addr, server_hostname="x"
                )
            with pytest.raises(ValueError):
                await loop.create_connection(
                    asyncio.Protocol, *addr, ssl_handshake_timeout=1
                )
            if sys.version_info >= (3, 11):
                with pytest.raises(ValueError):
                    await loop.create_connection(
                        asyncio.Protocol, *addr, ssl_shutdown_timeout=1
                    )
        finally:
            sock.close()
            dgram.close()
        await close_server(srv, sprotos)

    run(loop, main())


def test_create_connection_local_addr(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p, *addr, local_addr=("127.0.0.1", 0)
        )
        local = tr.get_extra_info("sockname")
        assert local[0] == "127.0.0.1" and local[1] != 0
        await accepted(sprotos)
        assert sprotos[0].transport.get_extra_info("peername") == local
        tr.close()
        await p.lost

        # A fixed local port (found free just before).
        with socket.socket() as tmp:
            tmp.bind(("127.0.0.1", 0))
            port = tmp.getsockname()[1]
        p = Proto(loop)
        tr, _ = await loop.create_connection(
            lambda: p, *addr, local_addr=("127.0.0.1", port)
        )
        assert tr.get_extra_info("sockname") == ("127.0.0.1", port)
        tr.close()
        await p.lost
        await close_server(srv, sprotos)

    run(loop, main())


def test_create_connection_local_addr_in_use(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        with pytest.raises(OSError) as ei:
            # The server's own (listening) address is not free.
            await loop.create_connection(asyncio.Protocol, *addr, local_addr=addr)
        assert ei.value.errno == errno.EADDRINUSE
        await close_server(srv, sprotos)

    run(loop, main())


@needs_ipv6
def test_create_connection_local_addr_other_family(loop):
    # 3.10+ skips local addresses of another family ("no matching local
    # address"); 3.9 tries to bind them, and an IPv6 address on an IPv4
    # socket is a TypeError.
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        try:
            if sys.version_info >= (3, 10):
                with pytest.raises(OSError, match="no matching local address"):
                    await loop.create_connection(
                        asyncio.Protocol, *addr, local_addr=("::1", 0)
                    )
            else:
                with pytest.raises(TypeError):
                    await loop.create_connection(
                        asyncio.Protocol, *addr, local_addr=("::1", 0)
                    )
        finally:
            await close_server(srv, sprotos)

    run(loop, main())


# --------------------------------------------------------------------------
# cancellation


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_create_connection_cancelled_at_each_step(loop, host):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(100)
    lsock.setblocking(False)
    port = lsock.getsockname()[1]

    def drain_backlog():
        while True:
            try:
                c, _ = lsock.accept()
            except BlockingIOError:
                return
            c.close()

    # Every step up to 200, then doubling: with "localhost" the executor's
    # getaddrinfo() must finish within the steps, which on a slow build
    # (ASan) can take more sleep(0) iterations than the first 400.
    schedule = list(range(200)) + [200 << k for k in range(1, 14)]

    async def main():
        base = fds()
        cancelled = 0
        for steps in schedule:
            task = loop.create_task(loop.create_connection(asyncio.Protocol, host, port))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                tr, _ = await task
            except asyncio.CancelledError:
                cancelled += 1
                done = False
            else:
                done = True
                tr.close()
            for _ in range(5):
                await asyncio.sleep(0)
            drain_backlog()
            # A cancelled getaddrinfo() may still run in an executor thread,
            # which briefly opens files (/etc/hosts): wait for it to settle
            # before counting, and only fail on an fd that stays.
            for _ in range(100):
                if fds() == base:
                    break
                await asyncio.sleep(0.01)
                drain_backlog()
            assert fds() == base, "fd leaked after cancel at step %d" % steps
            if done:
                break
        else:
            raise AssertionError("create_connection never completed")
        assert cancelled >= 2
        return steps

    try:
        run(loop, main(), timeout=60)
    finally:
        drain_backlog()
        lsock.close()


# --------------------------------------------------------------------------
# ResourceWarning


def test_unclosed_transport_resource_warning(loop):
    async def main():
        srv, addr, sprotos = await echo_server(loop)
        tr, _ = await loop.create_connection(asyncio.Protocol, *addr)
        await accepted(sprotos)
        srv.close()  # the listener; the accepted connection stays open
        return weakref.ref(tr)

    run(loop, main())
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        loop.close()
        gc.collect()
        gc.collect()
    # (The warning's `source` may keep the transport object alive; its
    # socket is closed all the same: the fixture checks the fds.)
    msgs = [
        str(x.message) for x in w if issubclass(x.category, ResourceWarning)
    ]
    assert any("unclosed transport" in m for m in msgs), msgs


_NEWER_KEYWORDS = [
    ("create_connection", "ssl_shutdown_timeout", (3, 11)),
    ("create_connection", "all_errors", (3, 12)),
    ("create_server", "ssl_shutdown_timeout", (3, 11)),
    ("create_server", "keep_alive", (3, 13)),
    ("create_unix_connection", "ssl_shutdown_timeout", (3, 11)),
    ("create_unix_server", "ssl_shutdown_timeout", (3, 11)),
    ("create_unix_server", "cleanup_socket", (3, 13)),
    ("connect_accepted_socket", "ssl_shutdown_timeout", (3, 11)),
    ("start_tls", "ssl_shutdown_timeout", (3, 11)),
]


@pytest.mark.parametrize(
    "meth,kw,since", _NEWER_KEYWORDS, ids=[f"{m}-{k}" for m, k, _ in _NEWER_KEYWORDS]
)
def test_newer_keyword_rejected_at_call(loop, meth, kw, since):
    # A keyword the running Python's asyncio does not have is a TypeError
    # raised by the call itself (not when the coroutine is awaited), and
    # the message names asyncio's method as Python does.
    if sys.version_info >= since:
        pytest.skip(f"{kw} exists on this version")
    if sys.version_info >= (3, 10):
        name = getattr(asyncio.SelectorEventLoop, meth).__qualname__
    else:
        name = meth
    with pytest.raises(TypeError) as ei:
        coro = getattr(loop, meth)(asyncio.Protocol, None, **{kw: 1})
        coro.close()
    assert str(ei.value) == f"{name}() got an unexpected keyword argument {kw!r}"
    assert kw not in inspect.signature(getattr(loop, meth)).parameters
