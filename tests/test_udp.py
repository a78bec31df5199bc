"""Datagram endpoints: loop.create_datagram_endpoint and the datagram
transport contract (asyncio.DatagramTransport, DatagramProtocol).

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture); the reference loop proves the expectation right.  Real sockets on
127.0.0.1, ::1 and Unix paths; the fixture checks that no file descriptor
leaks.  Where asyncio versions differ (empty datagrams, the write-buffer
size of queued datagrams, reuse_address, pause_reading) the expectation
follows the running version.
"""
import asyncio
import contextvars
import errno
import functools
import gc
import inspect
import logging
import os
import socket
import sys
import tempfile
import warnings
import weakref

import pytest

from conftest import run
from nethelpers import PY311, PY312, PY313, needs_ipv6, payload, record_errors

PY310 = sys.version_info >= (3, 10)
HIGH = 64 * 1024
LOW = 16 * 1024
# asyncio 3.13+ counts 8 header bytes per queued datagram
HEADER = 8 if PY313 else 0


class DProto(asyncio.DatagramProtocol):
    """Records everything; `echo` sends every datagram back to its sender."""

    def __init__(self, echo=False):
        self.loop = asyncio.get_running_loop()
        self.echo = echo
        self.transport = None
        self.received = []
        self.errors = []
        self.events = []
        self.pauses = []
        self.resumes = []
        self.made = self.loop.create_future()
        self.lost = self.loop.create_future()
        self._waiters = []

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport
        self.made.set_result(transport)

    def datagram_received(self, data, addr):
        assert isinstance(data, bytes), type(data)
        assert "lost" not in self.events, "datagram after connection_lost"
        if "data" not in self.events:
            self.events.append("data")
        self.received.append((data, addr))
        if self.echo:
            self.transport.sendto(data, addr)
        self._wake()

    def error_received(self, exc):
        self.events.append("error")
        self.errors.append(exc)
        self._wake()

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)
        self._wake()

    def pause_writing(self):
        self.events.append("pause_writing")
        self.pauses.append(self.transport.get_write_buffer_size())

    def resume_writing(self):
        self.events.append("resume_writing")
        self.resumes.append(self.transport.get_write_buffer_size())

    def _wake(self):
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def until(self, pred, timeout=10):
        """Wait until pred() holds (re-checked on every protocol event)."""

        async def wait():
            while not pred():
                fut = self.loop.create_future()
                self._waiters.append(fut)
                await fut

        await asyncio.wait_for(wait(), timeout)

    async def wait_count(self, n, timeout=10):
        await self.until(lambda: len(self.received) >= n, timeout)
        return self.received


async def endpoint(loop, echo=False, **kw):
    p_holder = []

    def factory():
        p = DProto(echo=echo)
        p_holder.append(p)
        return p

    tr, pr = await loop.create_datagram_endpoint(factory, **kw)
    assert pr is p_holder[0]
    return tr, pr


async def close_all(*transports):
    for tr in transports:
        tr.close()
    for tr in transports:
        pr = tr.get_protocol()
        if isinstance(pr, DProto):
            await asyncio.wait_for(asyncio.shield(pr.lost), 10)
    await asyncio.sleep(0)


@pytest.fixture
def tmpdir_short():
    # AF_UNIX paths are limited to 107 bytes: keep them short.
    d = tempfile.mkdtemp(prefix="flu")
    yield d
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


def free_udp_port(host="127.0.0.1", family=socket.AF_INET):
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# echo over IPv4 / IPv6


@pytest.mark.parametrize("family", ["ipv4", pytest.param("ipv6", marks=needs_ipv6)])
def test_udp_echo(loop, family):
    host = "127.0.0.1" if family == "ipv4" else "::1"

    async def main():
        stra, spr = await endpoint(loop, echo=True, local_addr=(host, 0))
        saddr = stra.get_extra_info("sockname")
        assert saddr[0] == host and saddr[1] != 0
        assert stra.get_extra_info("peername") is None

        ctra, cpr = await endpoint(loop, remote_addr=(host, saddr[1]))
        assert cpr.events == ["made"]
        assert ctra.get_extra_info("peername")[:2] == saddr[:2]
        caddr = ctra.get_extra_info("sockname")

        for i in range(5):
            ctra.sendto(b"ping %d" % i)
        got = await cpr.wait_count(5)
        assert [d for d, _ in got] == [b"ping %d" % i for i in range(5)]
        # The source address is converted as the socket module does.
        for _, addr in got:
            assert addr == saddr
        for _, addr in spr.received:
            assert addr == caddr
            assert len(addr) == (2 if family == "ipv4" else 4)
        # sendto() with the connected address (or None) is accepted
        ctra.sendto(b"again", saddr[:2] if family == "ipv4" else saddr)
        await cpr.wait_count(6)
        assert cpr.errors == [] and spr.errors == []
        await close_all(ctra, stra)
        assert cpr.lost.result() is None and spr.lost.result() is None
        assert cpr.events[-1] == "lost"

    run(loop, main())


@pytest.mark.parametrize("family", ["ipv4", pytest.param("ipv6", marks=needs_ipv6)])
def test_udp_echo_interleaved_senders(loop, family):
    # One unconnected server, three clients whose datagrams arrive in runs
    # and interleaved: each datagram is reported with its own sender, and
    # sendto(data, addr) with that address reaches that sender only.
    host = "127.0.0.1" if family == "ipv4" else "::1"

    async def main():
        srv, spr = await endpoint(loop, echo=True, local_addr=(host, 0))
        saddr = srv.get_extra_info("sockname")
        clients = [await endpoint(loop, remote_addr=saddr[:2]) for _ in range(3)]
        order = [0, 0, 0, 1, 2, 1, 1, 0, 2, 2, 0, 1, 2, 0]
        for k, i in enumerate(order):
            clients[i][0].sendto(b"%d:%d" % (i, k))
        await spr.wait_count(len(order))
        for i, (tr, pr) in enumerate(clients):
            mine = [b"%d:%d" % (i, k) for k, j in enumerate(order) if j == i]
            got = await pr.wait_count(len(mine))
            assert [d for d, _ in got] == mine
            assert all(a == saddr for _, a in got)
        caddrs = [tr.get_extra_info("sockname") for tr, _ in clients]
        assert [a for _, a in spr.received] == [caddrs[i] for i in order]
        assert all(len(a) == (2 if family == "ipv4" else 4) for _, a in spr.received)
        # An equal address that is another object works as well.
        srv.sendto(b"copy", tuple(list(caddrs[1])))
        got = await clients[1][1].wait_count(order.count(1) + 1)
        assert got[-1][0] == b"copy"
        await close_all(srv, *[tr for tr, _ in clients])

    run(loop, main())


def test_udp_unconnected_sendto(loop):
    async def main():
        a, apr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        b, bpr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        a.sendto(b"x" * 100, b.get_extra_info("sockname"))
        # host given as a name: resolved by the socket module
        b.sendto(b"y", ("localhost", a.get_extra_info("sockname")[1]))
        (data, addr), = await bpr.wait_count(1)
        assert data == b"x" * 100 and addr == a.get_extra_info("sockname")
        (data, addr), = await apr.wait_count(1)
        assert data == b"y" and addr == b.get_extra_info("sockname")
        # bytearray and memoryview are accepted
        a.sendto(bytearray(b"ba"), b.get_extra_info("sockname"))
        a.sendto(memoryview(b"0mv0")[1:3], b.get_extra_info("sockname"))
        await bpr.wait_count(3)
        assert [d for d, _ in bpr.received[1:]] == [b"ba", b"mv"]
        await close_all(a, b)

    run(loop, main())


def test_udp_family_only_autobinds(loop):
    async def main():
        srv, spr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr, pr = await endpoint(loop, family=socket.AF_INET)
        assert tr.get_extra_info("peername") is None
        assert tr.get_extra_info("sockname") == ("0.0.0.0", 0)
        tr.sendto(b"hi", srv.get_extra_info("sockname"))
        (data, addr), = await spr.wait_count(1)
        assert data == b"hi" and addr[1] != 0
        await close_all(tr, srv)

    run(loop, main())


def test_udp_1000_datagrams_intact(loop):
    N = 1000
    WINDOW = 32  # UDP may drop on a full receive queue: bound what's in flight

    async def main():
        srv, spr = await endpoint(loop, echo=True, local_addr=("127.0.0.1", 0))
        tr, pr = await endpoint(loop, remote_addr=srv.get_extra_info("sockname"))
        msgs = [i.to_bytes(4, "big") + payload(i % 1400 + 1, seed=i) for i in range(N)]
        sent = 0
        while sent < N:
            while sent < N and sent - len(pr.received) < WINDOW:
                tr.sendto(msgs[sent])
                sent += 1
            await pr.wait_count(sent - WINDOW // 2 if sent < N else N)
        got = [d for d, _ in pr.received]
        assert got == msgs
        assert [d for d, _ in spr.received] == msgs
        assert tr.get_write_buffer_size() == 0
        await close_all(tr, srv)

    run(loop, main())


def test_unix_1000_datagrams_intact_with_queueing(loop, tmpdir_short):
    # Unix datagram sockets do not drop: a full peer queue makes sendto()
    # return EAGAIN, so the transport queues and flushes later, in order.
    N = 1000
    spath = os.path.join(tmpdir_short, "s")
    cpath = os.path.join(tmpdir_short, "c")

    async def main():
        srv, spr = await endpoint(
            loop, echo=True, local_addr=spath, family=socket.AF_UNIX
        )
        tr, pr = await endpoint(
            loop, local_addr=cpath, remote_addr=spath, family=socket.AF_UNIX
        )
        msgs = [i.to_bytes(4, "big") + payload(i % 3000 + 1, seed=i) for i in range(N)]
        for m in msgs:
            tr.sendto(m)
        await pr.wait_count(N, timeout=30)
        assert [d for d, _ in spr.received] == msgs
        assert [d for d, _ in pr.received] == msgs
        assert all(a == cpath for _, a in spr.received)
        assert all(a == spath for _, a in pr.received)
        await close_all(tr, srv)

    run(loop, main())


# --------------------------------------------------------------------------
# Unix datagram sockets


def test_unix_with_remote_addr(loop, tmpdir_short):
    spath = os.path.join(tmpdir_short, "srv")
    cpath = os.path.join(tmpdir_short, "cli")

    async def main():
        srv, spr = await endpoint(
            loop, echo=True, local_addr=spath, family=socket.AF_UNIX
        )
        assert srv.get_extra_info("sockname") == spath
        assert srv.get_extra_info("peername") is None
        tr, pr = await endpoint(
            loop, local_addr=cpath, remote_addr=spath, family=socket.AF_UNIX
        )
        assert tr.get_extra_info("peername") == spath
        assert tr.get_extra_info("sockname") == cpath
        tr.sendto(b"hello")
        tr.sendto(b"world", spath)
        got = await pr.wait_count(2)
        assert got == [(b"hello", spath), (b"world", spath)]
        assert spr.received == [(b"hello", cpath), (b"world", cpath)]
        with pytest.raises(ValueError, match="Invalid address: must be None or"):
            tr.sendto(b"x", os.path.join(tmpdir_short, "other"))
        await close_all(tr, srv)

    run(loop, main())


def test_unix_remote_addr_only_unbound_client(loop, tmpdir_short):
    # The client is not bound: the server sees no address (None), as
    # socket.recvfrom() reports it.
    spath = os.path.join(tmpdir_short, "srv")

    async def main():
        srv, spr = await endpoint(loop, local_addr=spath, family=socket.AF_UNIX)
        tr, pr = await endpoint(loop, remote_addr=spath, family=socket.AF_UNIX)
        tr.sendto(b"anon")
        (data, addr), = await spr.wait_count(1)
        assert data == b"anon" and addr is None
        await close_all(tr, srv)

    run(loop, main())


def test_unix_without_remote_addr(loop, tmpdir_short):
    spath = os.path.join(tmpdir_short, "srv")
    cpath = os.path.join(tmpdir_short, "cli")

    async def main():
        srv, spr = await endpoint(
            loop, echo=True, local_addr=spath, family=socket.AF_UNIX
        )
        tr, pr = await endpoint(loop, local_addr=cpath, family=socket.AF_UNIX)
        assert tr.get_extra_info("peername") is None
        tr.sendto(b"one", spath)
        tr.sendto(b"two", spath.encode())  # bytes paths too
        got = await pr.wait_count(2)
        assert got == [(b"one", spath), (b"two", spath)]
        assert spr.received == [(b"one", cpath), (b"two", cpath)]
        # A stale socket file is removed when binding again.
        await close_all(tr)
        assert os.path.exists(cpath)
        tr2, pr2 = await endpoint(loop, local_addr=cpath, family=socket.AF_UNIX)
        await close_all(tr2, srv)

    run(loop, main())


def test_unix_abstract_addresses(loop):
    name_s = "\0fl-test-s-%d" % os.getpid()
    name_c = "\0fl-test-c-%d" % os.getpid()

    async def main():
        srv, spr = await endpoint(
            loop, echo=True, local_addr=name_s, family=socket.AF_UNIX
        )
        tr, pr = await endpoint(loop, local_addr=name_c, family=socket.AF_UNIX)
        tr.sendto(b"abs", name_s)
        (data, addr), = await pr.wait_count(1)
        assert data == b"abs" and addr == name_s.encode()
        assert spr.received == [(b"abs", name_c.encode())]
        await close_all(tr, srv)

    run(loop, main())


def test_unix_socketpair_sock(loop):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    async def main():
        errors = record_errors(loop)
        ta, pa = await endpoint(loop, sock=a)
        # socketpair peers are unnamed: the sender address is None ...
        b.send(b"ba")
        (data, addr), = await pa.wait_count(1)
        assert (data, addr) == (b"ba", None)
        # ... and peername is '', which is false: asyncio then calls
        # sock.sendto(data, None), a fatal TypeError.
        assert ta.get_extra_info("peername") == ""
        ta.sendto(b"ab")
        exc = await asyncio.wait_for(pa.lost, 10)
        assert isinstance(exc, TypeError)
        assert errors[0]["message"] == "Fatal write error on datagram transport"
        b.close()

    run(loop, main())
    assert a.fileno() == -1


def test_unix_address_type_errors(loop):
    async def main():
        with pytest.raises(TypeError, match="string is expected"):
            await loop.create_datagram_endpoint(
                DProto, local_addr=("127.0.0.1", 0), family=socket.AF_UNIX
            )
        with pytest.raises(TypeError, match="string is expected"):
            await loop.create_datagram_endpoint(
                DProto, remote_addr=b"/tmp/x", family=socket.AF_UNIX
            )

    run(loop, main())


# --------------------------------------------------------------------------
# broadcast


def test_broadcast_needs_allow_broadcast(loop):
    port = free_udp_port()

    async def main():
        tr, pr = await endpoint(loop, local_addr=("0.0.0.0", 0))
        tr.sendto(b"b", ("255.255.255.255", port))
        # EACCES without SO_BROADCAST goes to error_received(), from sendto()
        assert len(pr.errors) == 1
        assert isinstance(pr.errors[0], PermissionError)
        assert pr.errors[0].errno == errno.EACCES
        assert not tr.is_closing()
        await close_all(tr)

        # remote_addr on the broadcast address: connect() is refused too
        with pytest.raises(PermissionError):
            await loop.create_datagram_endpoint(
                DProto, remote_addr=("255.255.255.255", port)
            )

    run(loop, main())


def test_broadcast_allowed(loop):
    port = free_udp_port()

    async def main():
        tr, pr = await endpoint(loop, local_addr=("0.0.0.0", 0), allow_broadcast=True)
        sock = tr.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
        tr.sendto(b"b", ("255.255.255.255", port))
        await asyncio.sleep(0.01)
        errs = [e for e in pr.errors if e.errno != errno.ENETUNREACH]
        assert errs == []
        await close_all(tr)

        # With allow_broadcast the remote address is not connect()ed: it is
        # the transport's fixed destination.
        tr, pr = await endpoint(
            loop, remote_addr=("255.255.255.255", port), allow_broadcast=True
        )
        assert tr.get_extra_info("peername") is None
        assert tr._address == ("255.255.255.255", port)
        tr.sendto(b"c")
        with pytest.raises(ValueError, match="Invalid address"):
            tr.sendto(b"d", ("127.0.0.1", port))
        await close_all(tr)

    run(loop, main())


# --------------------------------------------------------------------------
# flow control and the write buffer


async def _filled_pair(loop, tmpdir, limits=None):
    """A transport on a Unix datagram socket connected to a peer socket
    that does not read, written until the protocol is paused."""
    path = os.path.join(tmpdir, "peer")
    b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.bind(path)
    b.setblocking(False)
    tr, pr = await endpoint(loop, remote_addr=path, family=socket.AF_UNIX)
    if limits:
        tr.set_write_buffer_limits(*limits)
    msg_size = 1000
    sent = []
    i = 0
    while not pr.pauses:
        m = i.to_bytes(4, "big") + payload(msg_size - 4, seed=i)
        tr.sendto(m)
        sent.append(m)
        i += 1
        assert i < 100000, "the socket never blocked"
    return tr, pr, b, sent


def _drain_peer(b, into):
    while True:
        try:
            into.append(b.recv(65536))
        except BlockingIOError:
            return


def test_flow_control_pause_resume(loop, tmpdir_short):
    async def main():
        tr, pr, b, sent = await _filled_pair(loop, tmpdir_short)
        high = tr.get_write_buffer_limits()[1]
        assert tr.get_write_buffer_limits() == (LOW, HIGH)
        assert pr.pauses and pr.pauses[0] > high
        size = tr.get_write_buffer_size()
        queued = [m for m in sent]  # some were sent at once, the rest queued
        assert size > high
        assert size % (1000 + HEADER) == 0
        got = []
        # reading on the peer frees space; the transport flushes its queue
        while not pr.resumes:
            _drain_peer(b, got)
            await asyncio.sleep(0.001)
        assert pr.resumes[0] <= LOW
        while len(got) < len(queued):
            _drain_peer(b, got)
            await asyncio.sleep(0.001)
        assert got == sent
        if not (PY313 and type(loop) is asyncio.SelectorEventLoop):
            # (asyncio 3.13.0 adds 8 bytes per queued datagram but removes
            # only the data's length when sending it.)
            assert tr.get_write_buffer_size() == 0
        assert pr.events.count("pause_writing") == 1
        assert pr.events.count("resume_writing") == 1
        await close_all(tr)
        b.close()

    run(loop, main())


def test_write_buffer_limits(loop, tmpdir_short):
    async def main():
        tr, pr, b, sent = await _filled_pair(loop, tmpdir_short, limits=(8000, 2000))
        assert tr.get_write_buffer_limits() == (2000, 8000)
        assert pr.pauses[0] > 8000
        # raising the high mark above the buffer does not resume by itself
        tr.set_write_buffer_limits(high=10**9)
        assert pr.resumes == []
        with pytest.raises(ValueError, match="must be >="):
            tr.set_write_buffer_limits(high=1, low=2)
        got = []
        while len(got) < len(sent):
            _drain_peer(b, got)
            await asyncio.sleep(0.001)
        assert got == sent
        assert len(pr.resumes) == 1
        # lowering the high mark below the queued size pauses again
        tr.set_write_buffer_limits(high=0)
        assert tr.get_write_buffer_limits() == (0, 0)
        await close_all(tr)
        b.close()

    run(loop, main())


def test_close_flushes_queue_then_connection_lost(loop, tmpdir_short):
    async def main():
        tr, pr, b, sent = await _filled_pair(loop, tmpdir_short)
        tr.close()
        assert tr.is_closing()
        await asyncio.sleep(0.01)
        assert not pr.lost.done()  # waiting for the queue to drain
        got = []
        while not pr.lost.done():
            _drain_peer(b, got)
            await asyncio.sleep(0.001)
        _drain_peer(b, got)
        assert got == sent
        assert pr.lost.result() is None
        b.close()

    run(loop, main())


def test_abort_drops_queue(loop, tmpdir_short):
    async def main():
        tr, pr, b, sent = await _filled_pair(loop, tmpdir_short)
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        assert tr.is_closing()
        if type(loop) is not asyncio.SelectorEventLoop or not PY311:
            # (asyncio 3.11+ forgets to reset its byte count here)
            assert tr.get_write_buffer_size() == 0
        assert await asyncio.wait_for(pr.lost, 10) is None
        got = []
        _drain_peer(b, got)
        assert len(got) < len(sent) and got == sent[: len(got)]
        b.close()

    run(loop, main())


def test_abort_from_sock_sendto_while_draining(loop, fastloop_only, tmpdir_short):
    # The queue drains through sock.sendto() when the socket module must
    # convert the address (here a bytearray path); a socket whose sendto()
    # is Python code (a subclass, a wrapper) can abort the transport in
    # there. fastloop used to pop the queue head after the send, i.e. pop
    # an emptied queue (segfault). (asyncio calls connection_lost twice
    # here: its _sendto_ready calls it directly after abort scheduled it.)
    class Sock(socket.socket):
        transport = None

        def sendto(self, data, addr):
            n = super().sendto(data, addr)
            tr = self.transport
            if data == b"abort" and not tr.is_closing():
                tr.abort()
            return n

    async def main():
        path = os.path.join(tmpdir_short, "peer")
        b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        b.bind(path)
        b.setblocking(False)
        sock = Sock(socket.AF_UNIX, socket.SOCK_DGRAM)
        tr, pr = await endpoint(loop, sock=sock)
        sock.transport = tr
        i = 0
        while not tr.get_write_buffer_size():
            tr.sendto(b"x" * 1000, path)
            i += 1
            assert i < 100000, "the socket never blocked"
        for _ in range(3):
            tr.sendto(b"abort", bytearray(path.encode()))
        tr.sendto(b"after", path)
        got = []
        while not pr.lost.done():
            _drain_peer(b, got)
            await asyncio.sleep(0.005)
        _drain_peer(b, got)
        b.close()
        assert pr.lost.result() is None
        assert pr.events.count("lost") == 1
        assert tr.get_write_buffer_size() == 0
        assert got.count(b"abort") == 1 and b"after" not in got

    run(loop, main())


# --------------------------------------------------------------------------
# errors


def test_error_received_econnrefused_connected(loop):
    port = free_udp_port()

    async def main():
        tr, pr = await endpoint(loop, remote_addr=("127.0.0.1", port))
        # The ICMP port-unreachable makes a later recv() (or send()) fail
        # with ECONNREFUSED: it goes to error_received(), the transport
        # stays open.
        for _ in range(50):
            tr.sendto(b"anyone?")
            if pr.errors:
                break
            await asyncio.sleep(0.01)
        await pr.until(lambda: pr.errors)
        assert all(isinstance(e, ConnectionRefusedError) for e in pr.errors)
        assert not tr.is_closing()
        assert not pr.lost.done()
        await close_all(tr)
        assert pr.lost.result() is None

    run(loop, main())


def test_error_received_unix_peer_gone(loop, tmpdir_short):
    spath = os.path.join(tmpdir_short, "srv")

    async def main():
        srv, spr = await endpoint(loop, local_addr=spath, family=socket.AF_UNIX)
        tr, pr = await endpoint(loop, remote_addr=spath, family=socket.AF_UNIX)
        await close_all(srv)
        tr.sendto(b"gone")
        assert len(pr.errors) == 1
        assert isinstance(pr.errors[0], ConnectionRefusedError)
        assert not tr.is_closing()
        await close_all(tr)

    run(loop, main())


def test_error_received_raising_propagates_from_sendto(loop):
    port = free_udp_port()

    class Raising(DProto):
        def error_received(self, exc):
            super().error_received(exc)
            raise RuntimeError("from error_received")

    async def main():
        tr, pr = await loop.create_datagram_endpoint(
            Raising, local_addr=("0.0.0.0", 0)
        )
        with pytest.raises(RuntimeError, match="from error_received"):
            tr.sendto(b"b", ("255.255.255.255", port))
        assert not tr.is_closing()
        await close_all(tr)

    run(loop, main())


def test_error_received_emsgsize(loop):
    async def main():
        srv, spr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr, pr = await endpoint(loop, remote_addr=srv.get_extra_info("sockname"))
        tr.sendto(b"x" * 70000)  # larger than any UDP datagram
        assert len(pr.errors) == 1 and pr.errors[0].errno == errno.EMSGSIZE
        tr.sendto(b"fits")
        await spr.wait_count(1)
        assert spr.received[0][0] == b"fits"
        await close_all(tr, srv)

    run(loop, main())


@needs_ipv6
def test_udp_ipv6_unconnected_address_forms(loop):
    async def main():
        srv, spr = await endpoint(loop, local_addr=("::1", 0))
        port = srv.get_extra_info("sockname")[1]
        tr, pr = await endpoint(loop, local_addr=("::1", 0))
        tr.sendto(b"2", ("::1", port))
        tr.sendto(b"4", ("::1", port, 0, 0))
        tr.sendto(b"m", ("::ffff:127.0.0.1", port))  # v4-mapped: not ours
        tr.sendto(b"z", ("0:0::1", port))
        await spr.wait_count(3)
        assert sorted(d for d, _ in spr.received) == [b"2", b"4", b"z"]
        assert len(pr.errors) <= 1  # the v4-mapped one may be unreachable
        src = tr.get_extra_info("sockname")
        assert all(a == src for _, a in spr.received)
        await close_all(tr, srv)

    run(loop, main())


def test_sendto_bad_data_type(loop):
    async def main():
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        for bad in ("str", 123, None, [b"x"]):
            with pytest.raises(TypeError, match="data argument must be a bytes-like"):
                tr.sendto(bad, ("127.0.0.1", 9))
        assert not tr.is_closing()
        await close_all(tr)

    run(loop, main())


def test_sendto_bad_address_is_fatal(loop):
    # asyncio: the socket module's TypeError is a fatal write error.
    async def main():
        errors = record_errors(loop)
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr.sendto(b"x", "not-a-tuple")
        assert tr.is_closing()
        exc = await asyncio.wait_for(pr.lost, 10)
        assert isinstance(exc, TypeError)
        assert len(errors) == 1
        assert errors[0]["message"] == "Fatal write error on datagram transport"
        assert errors[0]["exception"] is exc
        assert errors[0]["transport"] is tr

    run(loop, main())


def test_sendto_unconnected_without_address_is_fatal(loop):
    async def main():
        errors = record_errors(loop)
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr.sendto(b"x")
        exc = await asyncio.wait_for(pr.lost, 10)
        assert isinstance(exc, TypeError)
        assert errors[0]["message"] == "Fatal write error on datagram transport"

    run(loop, main())


def test_sendto_port_out_of_range_is_fatal(loop):
    async def main():
        errors = record_errors(loop)
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr.sendto(b"x", ("127.0.0.1", 70000))
        exc = await asyncio.wait_for(pr.lost, 10)
        assert isinstance(exc, OverflowError)
        assert errors[0]["exception"] is exc

    run(loop, main())


def test_sendto_connected_wrong_address(loop):
    async def main():
        srv, spr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        addr = srv.get_extra_info("sockname")
        tr, pr = await endpoint(loop, remote_addr=addr)
        with pytest.raises(ValueError) as ei:
            tr.sendto(b"x", ("127.0.0.1", addr[1] + 1 if addr[1] < 65535 else 1))
        assert str(ei.value) == f"Invalid address: must be None or {addr}"
        tr.sendto(b"ok", addr)
        tr.sendto(b"ok2", None)
        await spr.wait_count(2)
        await close_all(tr, srv)

    run(loop, main())


def test_datagram_received_exception_is_reported_and_reading_goes_on(loop):
    class Boom(DProto):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"boom":
                raise ZeroDivisionError("boom")

    async def main():
        errors = record_errors(loop)
        srv, spr = await loop.create_datagram_endpoint(
            Boom, local_addr=("127.0.0.1", 0)
        )
        tr, pr = await endpoint(loop, remote_addr=srv.get_extra_info("sockname"))
        tr.sendto(b"boom")
        await spr.wait_count(1)
        await asyncio.sleep(0)
        tr.sendto(b"after")
        await spr.wait_count(2)
        assert [d for d, _ in spr.received] == [b"boom", b"after"]
        assert len(errors) == 1
        assert isinstance(errors[0]["exception"], ZeroDivisionError)
        assert errors[0]["message"].startswith("Exception in callback")
        assert "_read_ready" in errors[0]["message"]
        assert not srv.is_closing()
        await close_all(tr, srv)

    run(loop, main())


def test_set_protocol_inside_datagram_received_keeps_the_callable(loop):
    # datagram_received() swaps the protocol: the callable being run (here
    # a functools.partial the protocol hands out, as a C-implemented
    # protocol hands out builtin methods) must stay alive until it returns.
    # fastloop used to drop its cached reference mid-call (use after free).
    seen = []

    class Swapping(asyncio.DatagramProtocol):
        def __init__(self):
            self.handed_out = None

        def connection_made(self, transport):
            self.transport = transport

        @property
        def datagram_received(self):
            fn = functools.partial(Swapping._received, self)
            self.handed_out = weakref.ref(fn)
            return fn

        def _received(self, data, addr):
            handed_out = self.handed_out
            self.transport.set_protocol(asyncio.DatagramProtocol())
            gc.collect()
            seen.append(handed_out() is not None)
            done.set_result(None)

    async def main():
        nonlocal done
        done = loop.create_future()
        srv, _ = await loop.create_datagram_endpoint(
            Swapping, local_addr=("127.0.0.1", 0)
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"x", srv.get_extra_info("sockname"))
            await done
        srv.close()
        await asyncio.sleep(0)

    done = None
    run(loop, main())
    assert seen == [True]


def test_empty_datagram(loop):
    async def main():
        srv, spr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr, pr = await endpoint(loop, remote_addr=srv.get_extra_info("sockname"))
        tr.sendto(b"")
        tr.sendto(b"end")
        await spr.wait_count(1)
        await asyncio.sleep(0.01)
        got = [d for d, _ in spr.received]
        # asyncio 3.13 sends empty datagrams; earlier versions drop them
        assert got == ([b"", b"end"] if PY313 else [b"end"])
        await close_all(tr, srv)

    run(loop, main())


# --------------------------------------------------------------------------
# closing


def test_sendto_after_close_connected(loop, caplog):
    async def main():
        srv, spr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr, pr = await endpoint(loop, remote_addr=srv.get_extra_info("sockname"))
        tr.close()
        tr.close()  # idempotent
        assert tr.is_closing()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(7):
                tr.sendto(b"dropped")  # silently dropped, counted
        assert tr._conn_lost == 8
        warnings_logged = [
            r for r in caplog.records if "socket.send() raised exception." in r.message
        ]
        assert len(warnings_logged) == 3
        await asyncio.wait_for(pr.lost, 10)
        tr.sendto(b"dropped")
        await asyncio.sleep(0.01)
        assert spr.received == []
        await close_all(srv)

    run(loop, main())


def test_sendto_after_close_unconnected(loop):
    async def main():
        srv, spr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr.close()
        # asyncio still sends until connection_lost() has run
        tr.sendto(b"late", srv.get_extra_info("sockname"))
        await asyncio.wait_for(pr.lost, 10)
        await spr.wait_count(1)
        assert pr.events == ["made", "lost"]
        await close_all(srv)

    run(loop, main())


def test_sendto_after_connection_lost_unconnected(loop, fastloop_only):
    # asyncio raises AttributeError from its internals here (its _sock and
    # _loop are None); fastloop drops the datagram like a connected one.
    async def main():
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr.close()
        await asyncio.wait_for(pr.lost, 10)
        tr.sendto(b"late", ("127.0.0.1", 9))
        assert tr._conn_lost == 2
        assert tr.get_extra_info("socket") is not None  # extra info survives

    run(loop, main())


def test_close_before_reading_started(loop):
    async def main():
        srv, spr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        made = []

        class P(DProto):
            def connection_made(self, transport):
                super().connection_made(transport)
                transport.close()
                made.append(transport)

        tr, pr = await loop.create_datagram_endpoint(
            P, remote_addr=srv.get_extra_info("sockname")
        )
        assert await asyncio.wait_for(pr.lost, 10) is None
        assert pr.events == ["made", "lost"]
        await close_all(srv)

    run(loop, main())


def test_connection_lost_exception_reported(loop):
    class Bad(DProto):
        def connection_lost(self, exc):
            super().connection_lost(exc)
            raise RuntimeError("lost failed")

    async def main():
        errors = record_errors(loop)
        tr, pr = await loop.create_datagram_endpoint(Bad, local_addr=("127.0.0.1", 0))
        sock = tr.get_extra_info("socket")
        tr.close()
        await asyncio.wait_for(pr.lost, 10)
        await asyncio.sleep(0)
        assert len(errors) == 1 and isinstance(errors[0]["exception"], RuntimeError)
        assert sock.fileno() == -1  # closed all the same

    run(loop, main())


def test_unclosed_transport_resource_warning(loop):
    async def main():
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        return weakref.ref(tr)

    run(loop, main())
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        loop.close()
        gc.collect()
        gc.collect()
    msgs = [str(x.message) for x in w if issubclass(x.category, ResourceWarning)]
    assert any("unclosed transport" in m for m in msgs), msgs


def test_close_after_loop_closed(loop):
    async def main():
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        return tr

    tr = run(loop, main())
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        tr.close()
    assert tr.is_closing()
    tr.close()  # already closing: nothing to do
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del tr
        gc.collect()


def test_transport_freed_after_close(loop):
    async def main():
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        tr.sendto(b"x", tr.get_extra_info("sockname"))
        await pr.wait_count(1)
        await close_all(tr)
        ref = weakref.ref(tr)
        pref = weakref.ref(pr)
        return ref, pref

    ref, pref = run(loop, main())
    gc.collect()
    assert ref() is None and pref() is None


# --------------------------------------------------------------------------
# sock=, reuse_port, reuse_address, argument checks


def test_sock_argument(loop):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    addr = s.getsockname()

    async def main():
        tr, pr = await endpoint(loop, sock=s)
        assert not s.getblocking()
        ts = tr.get_extra_info("socket")
        assert ts.fileno() == s.fileno()
        assert ts.family == socket.AF_INET and ts.type == socket.SOCK_DGRAM
        assert tr.get_extra_info("sockname") == addr
        assert tr.get_extra_info("peername") is None
        assert tr.get_extra_info("nope", 42) == 42
        tr.sendto(b"self", addr)
        (data, src), = await pr.wait_count(1)
        assert data == b"self" and src == addr
        await close_all(tr)

    run(loop, main())
    assert s.fileno() == -1  # the transport closed it


def test_sock_argument_checks(loop):
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            with pytest.raises(ValueError, match="socket modifier keyword arguments"):
                await loop.create_datagram_endpoint(
                    DProto, sock=s, local_addr=("127.0.0.1", 0)
                )
            with pytest.raises(ValueError, match="allow_broadcast=True"):
                await loop.create_datagram_endpoint(
                    DProto, sock=s, allow_broadcast=True
                )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            msg = "A datagram socket was expected" if PY313 else "A UDP Socket was expected"
            with pytest.raises(ValueError, match=msg):
                await loop.create_datagram_endpoint(DProto, sock=s)

    run(loop, main())


def test_argument_errors(loop):
    async def main():
        with pytest.raises(ValueError, match="unexpected address family"):
            await loop.create_datagram_endpoint(DProto)
        # 3.10's asyncio asserts instead of raising TypeError
        exc_types = AssertionError if PY310 and not PY311 else TypeError
        with pytest.raises(exc_types):
            await loop.create_datagram_endpoint(DProto, local_addr="127.0.0.1")
        with pytest.raises(exc_types):
            await loop.create_datagram_endpoint(DProto, remote_addr=("127.0.0.1", 1, 2))
        with pytest.raises(OSError):
            await loop.create_datagram_endpoint(
                DProto, local_addr=("127.0.0.1", 0), remote_addr=("::1", 9),
                family=socket.AF_INET,
            )

    run(loop, main())


def test_signature_matches_asyncio(loop):
    mine = inspect.signature(loop.create_datagram_endpoint)
    ref = inspect.signature(asyncio.SelectorEventLoop.create_datagram_endpoint)
    ref = ref.replace(parameters=list(ref.parameters.values())[1:])
    assert str(mine) == str(ref)


def test_reuse_port(loop):
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT")

    async def main():
        t1, p1 = await endpoint(loop, local_addr=("127.0.0.1", 0), reuse_port=True)
        addr = t1.get_extra_info("sockname")
        t2, p2 = await endpoint(loop, local_addr=addr, reuse_port=True)
        assert t2.get_extra_info("sockname") == addr
        assert t2.get_extra_info("socket").getsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEPORT
        )
        with pytest.raises(OSError) as ei:
            await loop.create_datagram_endpoint(DProto, local_addr=addr)
        assert ei.value.errno == errno.EADDRINUSE
        await close_all(t1, t2)

    run(loop, main())


def test_reuse_address(loop):
    async def main():
        if PY311:
            with pytest.raises(TypeError):
                await loop.create_datagram_endpoint(
                    DProto, local_addr=("127.0.0.1", 0), reuse_address=True
                )
            return
        with pytest.raises(ValueError, match="reuse_address=True"):
            await loop.create_datagram_endpoint(
                DProto, local_addr=("127.0.0.1", 0), reuse_address=True
            )
        with pytest.warns(DeprecationWarning, match="reuse_address"):
            tr, pr = await loop.create_datagram_endpoint(
                DProto, local_addr=("127.0.0.1", 0), reuse_address=False
            )
        await close_all(tr)

    run(loop, main())


@pytest.mark.skipif(not PY311, reason="reuse_address exists before 3.11")
def test_reuse_address_type_error_names_asyncio_method(loop):
    # 3.11+ has no reuse_address: Python's TypeError at the call names
    # asyncio's method.
    with pytest.raises(TypeError) as ei:
        loop.create_datagram_endpoint(DProto, reuse_address=False)
    assert str(ei.value) == (
        "BaseEventLoop.create_datagram_endpoint() got an unexpected "
        "keyword argument 'reuse_address'"
    )


def test_protocol_factory_error_closes_socket(loop):
    def factory():
        raise ZeroDivisionError

    async def main():
        with pytest.raises(ZeroDivisionError):
            await loop.create_datagram_endpoint(factory, local_addr=("127.0.0.1", 0))

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        run(loop, main())
        gc.collect()
    leaked = [x for x in w if issubclass(x.category, ResourceWarning)]
    if type(loop) is not asyncio.SelectorEventLoop:
        # (asyncio leaves its socket to the finalizer)
        assert leaked == []


# --------------------------------------------------------------------------
# transport API details


def test_transport_is_an_asyncio_datagram_transport(loop):
    async def main():
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        if type(loop) is not asyncio.SelectorEventLoop or PY312:
            # (asyncio's is one since 3.12)
            assert isinstance(tr, asyncio.DatagramTransport)
        assert isinstance(tr, asyncio.Transport)
        assert isinstance(tr, asyncio.BaseTransport)
        assert tr.get_protocol() is pr
        assert not tr.is_closing()
        assert "fd=" in repr(tr)
        p2 = DProto()
        tr.set_protocol(p2)
        assert tr.get_protocol() is p2
        tr.sendto(b"to p2", tr.get_extra_info("sockname"))
        await p2.wait_count(1)
        assert pr.received == []
        tr.close()
        await asyncio.wait_for(p2.lost, 10)
        assert not pr.lost.done()

    run(loop, main())


def test_pause_resume_reading(loop):
    if type(loop) is asyncio.SelectorEventLoop and not PY311:
        pytest.skip("asyncio < 3.11 datagram transports cannot pause reading")

    async def main():
        srv, spr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        await asyncio.sleep(0)
        tr, pr = await endpoint(loop, remote_addr=srv.get_extra_info("sockname"))
        assert srv.is_reading()
        srv.pause_reading()
        srv.pause_reading()
        assert not srv.is_reading()
        tr.sendto(b"1")
        tr.sendto(b"2")
        await asyncio.sleep(0.02)
        assert spr.received == []
        srv.resume_reading()
        assert srv.is_reading()
        await spr.wait_count(2)
        srv.close()
        assert not srv.is_reading()
        await close_all(tr, srv)

    run(loop, main())


def test_transport_fd_is_not_available_to_add_reader(loop):
    async def main():
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        fd = tr.get_extra_info("socket").fileno()
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_reader(fd, lambda: None)
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_writer(fd, lambda: None)
        if hasattr(tr, "pause_reading") and (
            type(loop) is not asyncio.SelectorEventLoop or PY311
        ):
            tr.pause_reading()
            with pytest.raises(RuntimeError, match="is used by transport"):
                loop.add_reader(fd, lambda: None)
        await close_all(tr)

    run(loop, main())


def test_context_of_protocol_callbacks(loop):
    var = contextvars.ContextVar("var", default="unset")

    class P(DProto):
        def connection_made(self, transport):
            self.ctx_made = var.get()
            super().connection_made(transport)

        def datagram_received(self, data, addr):
            self.ctx_data = var.get()
            super().datagram_received(data, addr)

    async def main():
        var.set("creator")
        tr, pr = await loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", 0))
        var.set("changed later")
        tr.sendto(b"x", tr.get_extra_info("sockname"))
        await pr.wait_count(1)
        assert pr.ctx_made == "creator"
        assert pr.ctx_data == "creator"
        await close_all(tr)

    run(loop, main())


def test_waiter_cancelled_closes_transport(loop):
    async def main():
        made = []

        def factory():
            p = DProto()
            made.append(p)
            return p

        task = loop.create_task(
            loop.create_datagram_endpoint(factory, local_addr=("127.0.0.1", 0))
        )
        # let it create the transport and wait for its waiter, then cancel
        while not made:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(made[0].lost, 10)

    run(loop, main())


# --------------------------------------------------------------------------
# fastloop's C type directly


def test_core_type_argument_checks(loop, fastloop_only):
    from fastloop import _core

    async def main():
        p = DProto()
        with pytest.raises(TypeError):
            _core.DatagramTransport()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            with pytest.raises(TypeError, match="fastloop Loop"):
                _core.DatagramTransport(object(), s, p)
        with pytest.raises(TypeError, match="socket"):
            _core.DatagramTransport(loop, 3, p)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            with pytest.raises(TypeError, match="extra"):
                _core.DatagramTransport(loop, s, p, None, None, [])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            with pytest.raises(ValueError, match="datagram socket"):
                _core.DatagramTransport(loop, s, p)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.close()
        with pytest.raises(ValueError):
            _core.DatagramTransport(loop, s, p)
        # an uninitialised object refuses to work instead of crashing
        t = _core.DatagramTransport.__new__(_core.DatagramTransport)
        with pytest.raises(RuntimeError):
            t.sendto(b"x")
        with pytest.raises(RuntimeError):
            t.close()
        assert t.get_write_buffer_size() == 0
        repr(t)
        del t
        # sendto() argument parsing
        tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        with pytest.raises(TypeError):
            tr.sendto()
        with pytest.raises(TypeError):
            tr.sendto(b"x", None, None)
        with pytest.raises(TypeError):
            tr.sendto(b"x", bogus=1)
        tr.sendto(data=b"kw", addr=tr.get_extra_info("sockname"))
        await pr.wait_count(1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            with pytest.raises(RuntimeError):
                tr.__init__(loop, s, p)
        await close_all(tr)

    run(loop, main())
