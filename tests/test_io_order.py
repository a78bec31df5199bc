"""Order of I/O callbacks and queued callbacks within an iteration.

asyncio runs the callbacks queued before a poll first, then the I/O
callbacks of that poll; fastloop does the same by default. With
``loop.set_io_first(True)`` (or ``FASTLOOP_IO_FIRST=1``) the I/O callbacks
of fastloop's own transports come first, as on uvloop -- except in the
first iteration of a run, where what was queued while the loop was stopped
still runs first (uvloop too runs its ready queue before its first poll).
"""
import asyncio
import socket
import time

import pytest

import fastloop

from conftest import run


class Recorder(asyncio.Protocol):
    def __init__(self, out):
        self.out = out

    def data_received(self, data):
        self.out.append("data")


class DgramRecorder(asyncio.DatagramProtocol):
    def __init__(self, out):
        self.out = out

    def datagram_received(self, data, addr):
        self.out.append("data")


async def _stream_pair(loop, out):
    a, b = socket.socketpair()
    tr, _ = await loop.create_unix_connection(lambda: Recorder(out), sock=a)
    return tr, b


def _send_then_queue(loop, peer, out):
    """A callback: the peer sends (loopback delivers at once), a callback is
    queued behind it, and the callback takes long enough (2 ms) that the
    next iteration polls -- fastloop skips a non-blocking poll for up to
    0.5 ms while callbacks are waiting."""
    peer.sendall(b"x")
    loop.call_soon(out.append, "cb")
    time.sleep(0.002)


def use_order(loop, io_first):
    """Sets fastloop's order (whatever FASTLOOP_IO_FIRST says); the
    I/O-first order does not exist on asyncio's loop."""
    if isinstance(loop, fastloop.Loop):
        loop.set_io_first(io_first)
    elif io_first:
        pytest.skip("fastloop-specific behaviour")


def _run_order(loop, io_first):
    out = []

    async def main():
        tr, peer = await _stream_pair(loop, out)
        try:
            await asyncio.sleep(0.01)  # connection_made and reading started
            loop.call_soon(_send_then_queue, loop, peer, out)
            for _ in range(100):
                if len(out) == 2:
                    break
                await asyncio.sleep(0.005)
        finally:
            tr.close()
            peer.close()
            await asyncio.sleep(0)

    if isinstance(loop, fastloop.Loop):
        loop.set_io_first(io_first)  # whatever FASTLOOP_IO_FIRST says
    run(loop, main())
    return out


def test_queued_callbacks_run_before_io_of_the_next_poll(loop):
    # asyncio's order, fastloop's default.
    assert _run_order(loop, io_first=False) == ["cb", "data"]


def test_io_first_runs_io_before_earlier_callbacks(loop, fastloop_only):
    assert _run_order(loop, io_first=True) == ["data", "cb"]


def test_io_first_is_off_by_default_and_switchable(loop, fastloop_only,
                                                   monkeypatch):
    monkeypatch.delenv("FASTLOOP_IO_FIRST", raising=False)
    lp = fastloop.new_event_loop()
    assert lp.get_io_first() is False
    lp.close()
    loop.set_io_first(1)
    assert loop.get_io_first() is True
    loop.set_io_first(0)
    assert loop.get_io_first() is False
    # Off again: asyncio's order.
    assert _run_order(loop, io_first=False) == ["cb", "data"]


def test_set_io_first_propagates_truth_errors(loop, fastloop_only):
    class Bad:
        def __bool__(self):
            raise ZeroDivisionError

    loop.set_io_first(False)
    with pytest.raises(ZeroDivisionError):
        loop.set_io_first(Bad())
    assert loop.get_io_first() is False


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True),
                                             ("0", False), ("", False)])
def test_env_var_sets_the_default(monkeypatch, value, expected):
    monkeypatch.setenv("FASTLOOP_IO_FIRST", value)
    lp = fastloop.new_event_loop()
    try:
        assert lp.get_io_first() is expected
    finally:
        lp.close()


@pytest.mark.parametrize("io_first", [False, True])
def test_first_iteration_of_a_run_keeps_queued_callbacks_first(loop, io_first):
    """The pattern of CPython's test_datagram_send_to_non_listening_address:
    a datagram sent while the loop is stopped, then run_until_complete() of
    a coroutine that prepares for it. The coroutine's first step was queued
    before the run, so it runs before the datagram is delivered."""
    use_order(loop, io_first)
    out = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    tr, _ = loop.run_until_complete(
        loop.create_datagram_endpoint(lambda: DgramRecorder(out), sock=sock))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # Let the loop run a few iterations so io_first is in effect.
        loop.run_until_complete(asyncio.sleep(0.01))
        sender.sendto(b"x", sock.getsockname())

        async def prepare():
            out.append("cb")

        loop.run_until_complete(prepare())
        loop.run_until_complete(asyncio.sleep(0.01))
        assert out == ["cb", "data"]
    finally:
        sender.close()
        tr.close()
        loop.run_until_complete(asyncio.sleep(0))


# A callback raising SystemExit or KeyboardInterrupt ends run_forever()
# mid-iteration (aiohttp's run_app stops on KeyboardInterrupt from a
# callback); other exceptions go to the exception handler.
Interrupt = SystemExit


def _raise_interrupt():
    raise Interrupt


def _interrupted_iteration(loop, raise_in_data):
    """Two transports with data waiting and a callback queued before the
    poll; a callback of that iteration raises. Returns what ran, in order,
    when the loop runs again with a callback queued after the interruption:
    the I/O callbacks of the interrupted iteration come before it."""
    out = []
    raised = []

    class Rec(asyncio.Protocol):
        def __init__(self, name):
            self.name = name

        def data_received(self, data):
            out.append(self.name)
            if raise_in_data and not raised:
                raised.append(self.name)
                raise Interrupt

    pairs = []

    async def setup():
        for name in ("t1", "t2"):
            a, b = socket.socketpair()
            tr, _ = await loop.create_unix_connection(
                lambda name=name: Rec(name), sock=a)
            pairs.append((tr, b))
        await asyncio.sleep(0.01)

    loop.run_until_complete(setup())
    try:
        for _, peer in pairs:
            peer.sendall(b"x")
        if not raise_in_data:
            loop.call_soon(_raise_interrupt)
        with pytest.raises(Interrupt):
            loop.run_forever()
        out.append("|")
        loop.call_soon(out.append, "after")
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        for tr, peer in pairs:
            tr.close()
            peer.close()
        loop.run_until_complete(asyncio.sleep(0))
    return out


@pytest.mark.parametrize("io_first", [False, True])
def test_io_of_an_interrupted_iteration_runs_before_later_callbacks(
        loop, io_first):
    # A callback queued before the poll raises: the poll's I/O callbacks
    # are still due before anything queued afterwards (asyncio keeps them
    # in _ready).
    use_order(loop, io_first)
    out = _interrupted_iteration(loop, raise_in_data=False)
    assert out[0] == "|" and sorted(out[1:3]) == ["t1", "t2"], out
    assert out[3:] == ["after"], out


@pytest.mark.parametrize("io_first", [False, True])
def test_io_after_an_interrupting_io_callback_runs_before_later_callbacks(
        loop, io_first):
    # data_received of one transport raises: the other transport's event of
    # the same poll is delivered before callbacks queued afterwards.
    use_order(loop, io_first)
    out = _interrupted_iteration(loop, raise_in_data=True)
    assert len(out) == 4 and out[1] == "|", out
    assert sorted([out[0], out[2]]) == ["t1", "t2"], out
    assert out[3] == "after", out


def _ticks_before_peer_sees(loop, action, raw=False):
    """A client and a server end on one loop; a callback writes or closes
    on one end and starts a chain of callbacks, one per iteration (so the
    ready queue is never empty). Returns how many ticks ran before the
    other end saw the data or EOF: asyncio polls on every iteration, so
    that is the iteration in which the loop could first have seen it.
    With raw=True the acting end is a plain non-blocking socket (for the
    sock_* methods) instead of a transport."""
    out = []
    if isinstance(loop, fastloop.Loop):
        loop.set_io_first(False)  # whatever FASTLOOP_IO_FIRST says

    class End(asyncio.Protocol):
        def data_received(self, data):
            out.append("data")

        def eof_received(self):
            out.append("eof")

    def tick(n):
        out.append("tick")
        if n < 40 and len(out) < 60:
            loop.call_soon(tick, n + 1)

    async def main():
        a, b = socket.socketpair()
        if raw:
            a.setblocking(False)
            ta = a
        else:
            ta, _ = await loop.create_unix_connection(End, sock=a)
        tb, _ = await loop.create_unix_connection(End, sock=b)
        await asyncio.sleep(0.01)

        def act():
            action(ta)
            loop.call_soon(tick, 0)

        loop.call_soon(act)
        for _ in range(200):
            if "data" in out or "eof" in out:
                break
            await asyncio.sleep(0.001)
        ta.close()
        tb.close()
        await asyncio.sleep(0)

    run(loop, main())
    seen = [i for i, x in enumerate(out) if x in ("data", "eof")]
    assert seen, out
    return out[:seen[0]].count("tick")


def test_peer_sees_a_write_in_the_next_iteration(loop):
    # The write's iteration queues the first tick; the next iteration polls
    # (asyncio: always; fastloop: after a write on its transport) and runs
    # the tick, then the read.
    assert _ticks_before_peer_sees(loop, lambda tr: tr.write(b"x")) == 1


def test_peer_sees_a_close_as_asyncio_does(loop):
    # close(): connection_lost (and the socket's close) in the next
    # iteration, the peer's EOF in the one after.
    assert _ticks_before_peer_sees(loop, lambda tr: tr.close()) == 2


def test_peer_sees_write_eof_in_the_next_iteration(loop):
    assert _ticks_before_peer_sees(loop, lambda tr: tr.write_eof()) == 1


def test_peer_sees_sock_sendall_as_asyncio_does(loop):
    # The task's first step (next iteration) sends; the one after polls.
    assert _ticks_before_peer_sees(
        loop, lambda a: asyncio.ensure_future(loop.sock_sendall(a, b"x")),
        raw=True) == 2
