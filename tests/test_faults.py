"""Fault injection: what happens when the world misbehaves.

* peers that reset in the middle of a large write, half-close then keep
  writing;
* accept() hitting EMFILE (a child process with a low RLIMIT_NOFILE): the
  server reports it, does not spin, and serves again once fds are free;
* a signal every millisecond (setitimer) during TCP/Unix I/O: EINTR on every
  system call;
* protocol callbacks that close, abort, pause or replace the protocol from
  inside every callback (compared with asyncio's own event sequence);
* loop.close() with live transports, servers and pending futures; a loop
  dropped with live transports; stop()/call_soon_threadsafe() from other
  threads; os.fork() while a loop runs;
* bad input to every method and constructor of the loop and of the C types,
  including instances made with ``Type.__new__(Type)`` (in a subprocess, so
  that a crash fails the test instead of killing pytest).

Where asyncio defines the behaviour the test runs on both loops (the `loop`
fixture); child processes are this file run as a script
(``python tests/test_faults.py <mode> <args>``).
"""
import asyncio
import errno
import gc
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:  # run as a script (child processes)
    sys.path.insert(0, HERE)

from conftest import make_loop, run  # noqa: E402

PY312 = sys.version_info >= (3, 12)
MB = 1024 * 1024


def run_child(*args, timeout=120, env_extra=None):
    """Run this file as a script in a fresh interpreter; returns the
    CompletedProcess.  A crash shows up as a negative returncode.
    env_extra: variables to set in the child's environment."""
    import fastloop

    # The child imports the same fastloop build as this process (the
    # checkout, or a copy on PYTHONPATH built for a debug/ASan interpreter).
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastloop.__file__)))
    env = dict(os.environ, PYTHONFAULTHANDLER="1",
               PYTHONPATH=os.pathsep.join([pkg_root, HERE]))
    env.pop("PYTHONASYNCIODEBUG", None)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, os.path.abspath(__file__)] + [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def child_json(proc):
    assert proc.returncode == 0, "child failed (rc=%s):\n%s\n%s" % (
        proc.returncode, proc.stdout[-3000:], proc.stderr[-5000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fds():
    return len(os.listdir("/proc/self/fd"))


def digest(data):
    return hashlib.sha256(data).hexdigest()


class Recorder(asyncio.Protocol):
    """Records callbacks; futures for made/eof/lost; collects data."""

    def __init__(self, loop, keep_open=False):
        self.loop = loop
        self.keep_open = keep_open
        self.transport = None
        self.events = []
        self.data = bytearray()
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.paused = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")
        self.made.set_result(None)

    def data_received(self, data):
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)
        return self.keep_open

    def pause_writing(self):
        self.events.append("pause_writing")
        if not self.paused.done():
            self.paused.set_result(None)

    def resume_writing(self):
        self.events.append("resume_writing")

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


async def until(pred, timeout=10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def record_errors(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    return errors


# --------------------------------------------------------------------------
# peer reset in the middle of a large write


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_peer_reset_during_large_write(loop, family, tmp_path):
    errors = record_errors(loop)

    async def main():
        if family == "tcp":
            lsn = socket.socket()
            lsn.bind(("127.0.0.1", 0))
        else:
            lsn = socket.socket(socket.AF_UNIX)
            lsn.bind(str(tmp_path / "s"))
        lsn.listen(1)
        peer = socket.socket(lsn.family)
        peer.connect(lsn.getsockname())
        srv_sock, _ = lsn.accept()
        lsn.close()
        p = Recorder(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: p, srv_sock)
        data = os.urandom(MB) * 16
        tr.write(data)
        assert tr.get_write_buffer_size() > 0
        await p.paused
        # The peer reads a little, then resets (SO_LINGER 0: RST, not FIN).
        peer.settimeout(5)
        got = peer.recv(65536)
        assert got == data[: len(got)]
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        exc = await asyncio.wait_for(p.lost, 10)
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), exc
        assert p.events.count("lost") == 1
        assert tr.is_closing()
        assert tr.get_write_buffer_size() == 0
        # Writing to a lost connection is silently dropped (asyncio counts
        # and logs after 5), never raises, never reaches another socket.
        for _ in range(3):
            tr.write(b"late")
        tr.close()
        tr.abort()
        await asyncio.sleep(0.01)
        assert srv_sock.fileno() == -1 or tr.get_extra_info("socket").fileno() == -1
        assert p.events.count("lost") == 1

    run(loop, main())
    # OSErrors of the connection are not reported to the handler (asyncio
    # logs them in debug mode only).
    assert not errors, errors


def test_peer_reset_while_draining_stream(loop):
    """asyncio streams: drain() raises ConnectionResetError (not hang)."""

    async def main():
        reset = loop.create_future()

        async def handler(reader, writer):
            writer.write(b"x" * (8 * MB))
            try:
                await asyncio.wait_for(writer.drain(), 10)
            except (ConnectionResetError, BrokenPipeError) as e:
                reset.set_result(type(e).__name__)
            else:
                reset.set_result("drained")
            writer.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*srv.sockets[0].getsockname())
        await r.readexactly(1000)
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()
        assert await asyncio.wait_for(reset, 10) in (
            "ConnectionResetError", "BrokenPipeError")
        srv.close()
        await srv.wait_closed()

    run(loop, main())


# --------------------------------------------------------------------------
# half-close


def test_write_eof_then_peer_keeps_writing(loop):
    """Our side sends EOF; the peer keeps writing 2 MB; we receive it all and
    write() after write_eof() raises RuntimeError (both loops)."""

    async def main():
        a, b = socket.socketpair()
        b.setblocking(False)
        p = Recorder(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: p, a)
        tr.write(b"request")
        tr.write_eof()
        assert tr.can_write_eof()
        with pytest.raises(RuntimeError):
            tr.write(b"more")
        got = bytearray()
        while True:  # the peer sees our data then EOF
            try:
                chunk = b.recv(4096)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            if not chunk:
                break
            got += chunk
        assert got == b"request"
        reply = os.urandom(2 * MB)
        await loop.sock_sendall(b, reply)
        b.shutdown(socket.SHUT_WR)
        await p.eof
        await asyncio.wait_for(p.lost, 10)
        assert bytes(p.data) == reply
        assert p.events == ["made", "data", "eof", "lost"]
        b.close()

    run(loop, main())


@pytest.mark.parametrize("keep_open", [True, False])
def test_peer_eof_then_we_write(loop, keep_open):
    """The peer half-closes; from eof_received() we write 1 MB.  keep_open:
    we then write more and close; not keep_open: the transport closes
    itself after flushing (asyncio's close() on a falsy eof_received)."""

    async def main():
        a, b = socket.socketpair()
        b.setblocking(False)
        out = os.urandom(MB)

        class P(Recorder):
            def eof_received(self):
                super().eof_received()
                self.transport.write(out)
                return keep_open

        p = P(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: p, a)
        b.shutdown(socket.SHUT_WR)
        await p.eof
        if keep_open:
            await asyncio.sleep(0.01)
            assert not tr.is_closing()
            tr.write(b"tail")
            tr.close()
        got = bytearray()
        while True:
            try:
                chunk = b.recv(1 << 16)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            if not chunk:
                break
            got += chunk
        expected = out + (b"tail" if keep_open else b"")
        assert len(got) == len(expected) and got == expected
        assert await asyncio.wait_for(p.lost, 10) is None
        b.close()

    run(loop, main())


# --------------------------------------------------------------------------
# accept() out of file descriptors: reported, no busy loop, serves again


def _child_emfile(kind):
    import resource

    loop = make_loop(kind)
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    accepted = []

    class Echo(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr
            accepted.append(tr)

        def data_received(self, data):
            self.tr.write(data)

    async def echo_check(socks, tag):
        for i, s in enumerate(socks):
            msg = b"%s %d" % (tag, i)
            await loop.sock_sendall(s, msg)
            got = b""
            while len(got) < len(msg):
                chunk = await asyncio.wait_for(loop.sock_recv(s, 100), 5)
                assert chunk, "EOF"
                got += chunk
            assert got == msg, (got, msg)

    async def main():
        srv = await loop.create_server(Echo, "127.0.0.1", 0, backlog=50)
        addr = srv.sockets[0].getsockname()
        clients = [socket.socket() for _ in range(3)]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        hog = []
        try:
            while True:
                hog.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        for c in clients:
            c.connect(addr)  # completes in the kernel; accept() fails
            c.setblocking(False)
        deadline = loop.time() + 5
        while not errors and loop.time() < deadline:
            await asyncio.sleep(0.01)
        # CPU time used while out of fds with connections pending: a loop
        # that retries accept() on every iteration burns a whole core.
        iters0 = loop._stats()["iterations"] if kind == "fastloop" else 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(1.0)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        iters = (loop._stats()["iterations"] - iters0) if kind == "fastloop" else 0
        n_during = len(accepted)
        for fd in hog:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        t_free = loop.time()
        while len(accepted) < 3 and loop.time() < t_free + 5:
            await asyncio.sleep(0.01)
        resumed = loop.time() - t_free
        await echo_check(clients, b"old")
        # New connections after the recovery.
        fresh = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            await loop.sock_connect(s, addr)
            fresh.append(s)
        await echo_check(fresh, b"new")
        for s in clients + fresh:
            s.close()
        srv.close()
        for tr in accepted:
            tr.close()
        await srv.wait_closed()
        return {
            "messages": [e.get("message") for e in errors],
            "errnos": [getattr(e.get("exception"), "errno", None) for e in errors],
            "cpu": cpu,
            "wall": wall,
            "iterations": iters,
            "accepted_while_exhausted": n_during,
            "accepted": len(accepted),
            "resumed_after": resumed,
        }

    res = loop.run_until_complete(asyncio.wait_for(main(), 60))
    loop.close()
    print(json.dumps(res))


def test_accept_emfile_no_busy_loop_and_recovers(loop_kind):
    res = child_json(run_child("emfile", loop_kind))
    assert "socket.accept() out of system resource" in res["messages"], res
    assert errno.EMFILE in res["errnos"], res
    assert res["accepted_while_exhausted"] == 0, res
    # An idle loop uses a few ms of CPU per second; a spinning one ~1 s
    # (at least ~0.4 s even on a loaded 2-core machine).
    assert res["cpu"] < 0.25, res
    if loop_kind == "fastloop":
        assert res["iterations"] < 200, res
    assert res["accepted"] == 6, res  # 3 queued during EMFILE + 3 new
    assert res["resumed_after"] < 4, res


# --------------------------------------------------------------------------
# a signal every millisecond during I/O: EINTR everywhere


def _child_signals(kind, mode):
    loop = make_loop(kind)
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    alarms = [0]

    def on_alarm(*args):
        alarms[0] += 1

    class Echo(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr

        def data_received(self, data):
            self.tr.write(data)

    async def stream_echo(connect, nbytes):
        p = Recorder(loop)
        tr, _ = await connect(lambda: p)
        payload = os.urandom(nbytes)
        view = memoryview(payload)
        for i in range(0, nbytes, 65536 + 17):
            tr.write(view[i:i + 65536 + 17])
            if i % (8 * 65536) == 0:
                await asyncio.sleep(0)
        while len(p.data) < nbytes:
            await asyncio.sleep(0.001)
        # many small round trips
        for i in range(300):
            before = len(p.data)
            msg = b"ping %d;" % i
            tr.write(msg)
            while len(p.data) < before + len(msg):
                await asyncio.sleep(0)
        tr.close()
        await p.lost
        expected = payload + b"".join(b"ping %d;" % i for i in range(300))
        return digest(bytes(p.data)) == digest(expected)

    async def main(tmpdir):
        if mode == "loop_handler":
            loop.add_signal_handler(signal.SIGALRM, on_alarm)
        else:
            signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
        try:
            srv = await loop.create_server(Echo, "127.0.0.1", 0)
            host, port = srv.sockets[0].getsockname()
            path = os.path.join(tmpdir, "s")
            usrv = await loop.create_unix_server(Echo, path)
            ok_tcp = await stream_echo(
                lambda f: loop.create_connection(f, host, port), 4 * MB)
            ok_unix = await stream_echo(
                lambda f: loop.create_unix_connection(f, path), 4 * MB)
            # sock_* coroutines
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            blob = os.urandom(2 * MB)
            send = loop.create_task(loop.sock_sendall(a, blob))
            got = bytearray()
            while len(got) < len(blob):
                got += await loop.sock_recv(b, 65536)
            await send
            ok_sock = bytes(got) == blob
            a.close()
            b.close()
            # timers
            t0 = loop.time()
            for _ in range(20):
                await asyncio.sleep(0.005)
            slept = loop.time() - t0
            srv.close()
            usrv.close()
            await srv.wait_closed()
            await usrv.wait_closed()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            if mode == "loop_handler":
                loop.remove_signal_handler(signal.SIGALRM)
        return {"tcp": ok_tcp, "unix": ok_unix, "sock": ok_sock,
                "slept": slept, "alarms": alarms[0],
                "errors": [repr(e.get("exception")) or e.get("message")
                           for e in errors]}

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        res = loop.run_until_complete(asyncio.wait_for(main(d), 90))
    loop.close()
    print(json.dumps(res))


@pytest.mark.parametrize("mode", ["signal_module", "loop_handler"])
def test_signal_every_millisecond_during_io(loop_kind, mode):
    res = child_json(run_child("signals", loop_kind, mode, timeout=150))
    assert res["tcp"] and res["unix"] and res["sock"], res
    assert res["errors"] == [], res
    assert res["alarms"] >= 50, res  # the signals really were delivered
    assert res["slept"] >= 0.1, res  # 20 sleeps of 5 ms: none returned early


# --------------------------------------------------------------------------
# protocol callbacks that close / abort / pause / replace the protocol


CALLBACKS = ["connection_made", "data_received", "pause_writing",
             "resume_writing", "eof_received", "connection_lost"]
ACTIONS = ["close", "abort", "pause_reading", "resume_reading",
           "set_protocol", "write", "write_eof"]


def drive_callback_action(loop, callback, action):
    """Runs one connection through all six callbacks with `action` done to
    the transport from inside `callback` (once).  Returns a normalised
    trace: the protocol calls (data collapsed), exceptions raised by the
    action, and what the peer received."""
    trace = []

    class P(asyncio.Protocol):
        def __init__(self, tag):
            self.tag = tag
            self.transport = None
            self.done = False

        def _act(self, name):
            if name != callback or self.done or self.tag != "p1":
                return
            self.done = True
            tr = self.transport
            try:
                if action == "close":
                    tr.close()
                elif action == "abort":
                    tr.abort()
                elif action == "pause_reading":
                    tr.pause_reading()
                elif action == "resume_reading":
                    tr.resume_reading()
                elif action == "set_protocol":
                    p2.transport = tr
                    tr.set_protocol(p2)
                elif action == "write":
                    tr.write(b"from-" + name.encode())
                elif action == "write_eof":
                    tr.write_eof()
                trace.append(("acted", name, action))
            except Exception as e:
                trace.append(("raised", name, action, type(e).__name__))

        def _ev(self, name):
            if trace and trace[-1] == (self.tag, name) and name == "data_received":
                return
            trace.append((self.tag, name))

        def connection_made(self, transport):
            self.transport = transport
            self._ev("connection_made")
            self._act("connection_made")

        def data_received(self, data):
            self._ev("data_received")
            self._act("data_received")

        def eof_received(self):
            self._ev("eof_received")
            self._act("eof_received")
            return None

        def pause_writing(self):
            self._ev("pause_writing")
            self._act("pause_writing")

        def resume_writing(self):
            self._ev("resume_writing")
            self._act("resume_writing")

        def connection_lost(self, exc):
            self._ev("connection_lost")
            self._act("connection_lost")
            lost.set_result(exc)

    p1, p2 = P("p1"), P("p2")
    lost = loop.create_future()
    peer_got = bytearray()

    async def settle():
        for _ in range(3):
            await asyncio.sleep(0.002)

    def peer_drain():
        while True:
            try:
                chunk = b.recv(1 << 20)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
            peer_got.extend(chunk)

    async def main():
        tr, _ = await loop.connect_accepted_socket(lambda: p1, a)
        await settle()
        try:
            b.send(b"hello")
        except OSError as e:  # closed from connection_made()
            trace.append(("peer-send", type(e).__name__))
        await settle()
        trace.append(("step", "write"))
        if not tr.is_closing():
            try:
                tr.write(b"w" * (2 * MB))
            except Exception as e:
                trace.append(("write-raised", type(e).__name__))
        await settle()
        trace.append(("step", "drain"))
        for _ in range(400):
            open_ = peer_drain()
            if not open_ or lost.done() or tr.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.002)
        await settle()
        peer_drain()
        trace.append(("step", "peer-eof"))
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        await settle()
        trace.append(("step", "close"))
        tr.close()
        for _ in range(500):
            if lost.done():
                break
            peer_drain()
            await asyncio.sleep(0.002)
        peer_drain()
        assert lost.done(), ("connection_lost never came", trace)
        return tr

    a, b = socket.socketpair()
    b.setblocking(False)
    try:
        tr = loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        b.close()
    assert tr.is_closing()
    n = len(peer_got)
    trace.append(("peer", "hello" if not n else "w*" if peer_got.strip(b"w") in (
        b"", b"from-" + callback.encode(), b"from-" + callback.encode() + b"w")
        else "other"))
    return trace, bytes(peer_got)


def _check_trace_invariants(trace, callback, action):
    events = [t for t in trace if t[0] in ("p1", "p2")]
    names = [e[1] for e in events]
    assert names[0] == "connection_made", trace
    assert names.count("connection_lost") == 1 and names[-1] == "connection_lost", trace
    if "eof_received" in names:
        after = names[names.index("eof_received") + 1:]
        assert "data_received" not in after, trace
    # pause/resume alternate, starting with pause
    pr = [n for n in names if n in ("pause_writing", "resume_writing")]
    assert pr == ["pause_writing", "resume_writing"] * (len(pr) // 2) + (
        ["pause_writing"] if len(pr) % 2 else []), trace
    if action == "set_protocol" and ("p1", callback) in events:
        i = events.index(("p1", callback))
        assert all(tag == "p2" for tag, _ in events[i + 1:]), trace


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("callback", CALLBACKS)
def test_action_inside_callback(loop, loop_kind, callback, action):
    trace, got = drive_callback_action(loop, callback, action)
    _check_trace_invariants(trace, callback, action)
    if action in ("close", "write_eof", "write") or action.endswith("_reading"):
        # graceful paths: whatever was written before is delivered intact
        stripped = got.replace(b"from-" + callback.encode(), b"")
        assert stripped.strip(b"w") == b"", got[:100]
    if loop_kind == "fastloop":
        ref_loop = asyncio.SelectorEventLoop()
        try:
            ref, ref_got = drive_callback_action(ref_loop, callback, action)
        finally:
            ref_loop.close()
        if ((callback, action) == ("connection_made", "pause_reading")
                and ("p1", "data_received") in ref):
            # Older asyncio (3.9, 3.10, early 3.11 such as Debian's 3.11.2)
            # starts reading after connection_made() without looking at a
            # pause made there; fastloop honours the pause everywhere.
            assert ("p1", "data_received") not in trace, trace
            return
        assert trace == ref, "fastloop:\n%s\nasyncio:\n%s" % (trace, ref)
        if action != "abort":
            assert got == ref_got, (len(got), len(ref_got))


# --------------------------------------------------------------------------
# loop.close() with live transports, servers and pending futures


def test_close_loop_with_live_objects(loop_kind):
    base = fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop = make_loop(loop_kind)

        async def setup():
            protos = []

            class S(asyncio.Protocol):
                def connection_made(self, tr):
                    protos.append(tr)

            srv = await loop.create_server(S, "127.0.0.1", 0)
            client = Recorder(loop)
            ctr, _ = await loop.create_connection(
                lambda: client, *srv.sockets[0].getsockname())
            await until(lambda: protos)
            udp, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            pending = loop.create_future()
            task = loop.create_task(asyncio.sleep(3600))
            loop.call_later(3600, print, "never")
            await asyncio.sleep(0)
            return srv, ctr, protos[0], udp, pending, task

        srv, ctr, str_, udp, pending, task = loop.run_until_complete(setup())
        loop.close()
        assert loop.is_closed()
        loop.close()  # idempotent
        assert not pending.done()
        # Using the objects afterwards raises RuntimeError or does nothing.
        # (abort() on a closed loop: test_transport_method_on_closed_loop)
        for fn in (lambda: ctr.write(b"x"), ctr.close, str_.close, udp.close,
                   srv.close, lambda: loop.call_soon(print),
                   lambda: loop.create_future().set_result(1),
                   pending.cancel, lambda: ctr.pause_reading()):
            try:
                fn()
            except RuntimeError:
                pass
        del srv, ctr, str_, udp, pending, task, loop, setup, fn
        for _ in range(3):
            gc.collect()
    assert fds() <= base, "fds leaked after closing the loop and dropping all"
    msgs = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any("unclosed" in m for m in msgs), msgs


async def _open_transport(loop, kind, keep):
    if kind == "stream":
        a, b = socket.socketpair()
        keep.append(b)
        tr, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
    elif kind == "udp":
        tr, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    elif kind == "rpipe":
        r, w = os.pipe()
        keep.append(os.fdopen(w, "wb", 0))
        tr, _ = await loop.connect_read_pipe(asyncio.Protocol, os.fdopen(r, "rb", 0))
    else:
        r, w = os.pipe()
        keep.append(os.fdopen(r, "rb", 0))
        tr, _ = await loop.connect_write_pipe(
            asyncio.BaseProtocol, os.fdopen(w, "wb", 0))
    return tr


CLOSED_LOOP_BUGS = set()  # R2 fixed


@pytest.mark.parametrize("method", ["close", "abort"])
@pytest.mark.parametrize("kind", ["stream", "udp", "rpipe", "wpipe"])
def test_transport_method_on_closed_loop(loop, loop_kind, kind, method, request):
    """close()/abort() of a live transport after loop.close(): asyncio raises
    RuntimeError('Event loop is closed') (call_soon on a closed loop); it
    must not be swallowed and printed as 'Exception ignored'."""
    if loop_kind == "fastloop" and (kind, method) in CLOSED_LOOP_BUGS:
        request.applymarker(pytest.mark.xfail(
            strict=True,
            reason="core bug (docs/NOTES-core-bugs.md, R2): "
            "abort() on a closed loop reports RuntimeError as unraisable "
            "and returns"))
    if kind == "rpipe" and method == "abort":
        pytest.skip("read pipe transports have no abort()")
    keep = []
    tr = loop.run_until_complete(_open_transport(loop, kind, keep))
    loop.close()
    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(repr(u.exc_value))
    try:
        getattr(tr, method)()
        outcome = "returned"
    except RuntimeError as e:
        outcome = "raised" if "closed" in str(e) else repr(e)
    finally:
        sys.unraisablehook = old_hook
        for f in keep:
            f.close()
        # The transport could not be closed (its loop is): dropping it
        # gives "unclosed transport" on both loops, an error under -W error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del tr
            gc.collect()
    assert outcome == "raised" and not unraisable, (outcome, unraisable)


def test_drop_loop_with_live_transports(loop_kind):
    """A loop that is neither closed nor referenced, with live transports:
    collected, every fd closed, ResourceWarnings for the loop and the
    transports (as asyncio)."""
    base = fds()

    def make():
        loop = make_loop(loop_kind)

        async def setup():
            srv = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            tr, _ = await loop.create_connection(
                asyncio.Protocol, *srv.sockets[0].getsockname())
            a, b = socket.socketpair()
            tr2, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
            b.close()
            loop.create_future()
            await asyncio.sleep(0.01)

        loop.run_until_complete(setup())
        asyncio.set_event_loop(None)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
        for _ in range(3):
            gc.collect()
    msgs = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any(m.startswith("unclosed event loop") for m in msgs), msgs
    assert sum(m.startswith("unclosed transport") for m in msgs) >= 2, msgs
    assert fds() <= base, "fds leaked"


def test_loop_holds_its_module():
    """A loop's dealloc frees into its module's state (close_core), so the
    loop holds the module: the final collection at exit can otherwise free
    the module first (seen under ASan: heap-use-after-free in close_core
    from a loop whose last reference was a future in a closure cell).
    Checked on a private instance of _core, whose loop must keep it alive
    after every other reference is gone."""
    import importlib.util
    import weakref

    spec = importlib.util.find_spec("fastloop._core")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    loop = mod.Loop()
    assert mod in gc.get_referents(loop)
    wmod = weakref.ref(mod)
    del mod, spec
    gc.collect()
    assert wmod() is not None
    del loop
    gc.collect()
    assert wmod() is None


EXIT_WITH_LIVE_LOOPS = r"""
import asyncio, gc, fastloop

def cycle(loop):
    fut = loop.create_future()
    def cb(f):
        return fut
    fut.add_done_callback(cb)
    return cb

class Sub(fastloop.Loop):
    pass

keep = []
for make in (fastloop.new_event_loop, Sub):
    for close in (False, True):
        loop = make()
        keep.append(cycle(loop))
        if close:
            loop.close()
        del loop
gc.collect()
asyncio.set_event_loop(fastloop.new_event_loop())
print("ok")
"""


def test_exit_with_loops_left_in_cycles():
    """Loops (open, closed, subclassed) whose last references are cycles
    still alive at exit: the interpreter exits cleanly. A smoke test of the
    path above (whether the module goes first depends on the collector's
    order, so the check that can fail is test_loop_holds_its_module; under
    the asan job any use of freed state here is reported)."""
    proc = subprocess.run(
        [sys.executable, "-W", "ignore::ResourceWarning", "-c",
         EXIT_WITH_LIVE_LOOPS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["ok"]
    assert proc.stderr == b"", proc.stderr.decode()


# --------------------------------------------------------------------------
# other threads: stop() and call_soon_threadsafe() while the loop runs


def test_call_soon_threadsafe_storm_order_and_count(loop):
    nthreads, per = 4, 5000
    seen = {t: [] for t in range(nthreads)}
    done = threading.Event()

    def cb(t, i):
        seen[t].append(i)

    def worker(t):
        for i in range(per):
            loop.call_soon_threadsafe(cb, t, i)

    def coordinator():
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        loop.call_soon_threadsafe(loop.stop)
        done.set()

    threading.Thread(target=coordinator).start()
    loop.run_forever()
    assert done.wait(30)
    for t in range(nthreads):
        assert seen[t] == list(range(per)), t


def test_stop_from_other_thread(loop):
    """loop.stop() called directly from another thread (not thread-safe in
    asyncio terms, but common): the loop stops at its next wake-up."""
    ticks = [0]

    def tick():
        ticks[0] += 1
        loop.call_later(0.005, tick)

    loop.call_soon(tick)
    t = threading.Timer(0.05, loop.stop)
    t.start()
    t0 = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - t0 < 10
    assert ticks[0] >= 2
    t.join()
    # and it can run again
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_threadsafe_calls_across_stop_run_cycles(loop):
    """Threads keep calling call_soon_threadsafe while the main thread stops
    and restarts the loop 20 times: no callback is lost or run twice."""
    sent = [0]
    got = []
    stop_threads = threading.Event()

    def worker(t):
        i = 0
        while not stop_threads.is_set():
            loop.call_soon_threadsafe(got.append, (t, i))
            i += 1
            if i % 100 == 0:
                time.sleep(0.0005)
        sent[0] += i

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    try:
        for _ in range(20):
            loop.call_later(0.005, loop.stop)
            loop.run_forever()
    finally:
        stop_threads.set()
        for th in threads:
            th.join()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(got) == sent[0]
    assert len(set(got)) == len(got)


def test_threadsafe_racing_close_hits_no_other_fd(loop_kind):
    """call_soon_threadsafe() from threads while the loop closes: RuntimeError
    after the close, never a wake-up written into an fd that reuses the
    loop's number (pipes opened right after the close stay empty)."""
    for _ in range(10):
        loop = make_loop(loop_kind)
        give_up = threading.Event()
        outcomes = []

        def worker():
            # Until the loop is closed: every call after the close raises.
            while not give_up.is_set():
                try:
                    loop.call_soon_threadsafe(len, "")
                except RuntimeError:
                    outcomes.append("closed")
                    return

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for th in threads:
            th.start()
        loop.call_later(0.002, loop.stop)
        loop.run_forever()
        loop.close()
        pipes = [os.pipe() for _ in range(4)]
        for th in threads:
            th.join(10)
        give_up.set()
        for r, w in pipes:
            os.set_blocking(r, False)
            try:
                stray = os.read(r, 100)
            except BlockingIOError:
                stray = b""
            os.close(r)
            os.close(w)
            assert stray == b"", "a wake-up landed in a reused fd"
        assert outcomes == ["closed", "closed"]


# --------------------------------------------------------------------------
# os.fork() while a loop runs


def _fork_child_work(kind):
    """In the child: a fresh loop does timers, a socketpair transport echo,
    call_soon_threadsafe from a thread and add_reader."""
    if sys.version_info < (3, 12):  # 3.12+ reset it in an at-fork hook
        asyncio.events._set_running_loop(None)
    new = make_loop(kind)
    try:
        async def main():
            await asyncio.sleep(0.01)
            a, b = socket.socketpair()
            p = Recorder(new)
            tr, _ = await new.connect_accepted_socket(lambda: p, a)
            b.sendall(b"child data")
            await until(lambda: len(p.data) >= 10)
            tr.write(b"reply")
            b.settimeout(5)
            assert b.recv(10) == b"reply"
            tr.close()
            await p.lost
            fut = new.create_future()
            threading.Thread(
                target=new.call_soon_threadsafe, args=(fut.set_result, 7)).start()
            assert await asyncio.wait_for(fut, 5) == 7
            r, w = os.pipe()
            rd = new.create_future()
            new.add_reader(r, lambda: rd.set_result(os.read(r, 10)))
            os.write(w, b"z")
            assert await asyncio.wait_for(rd, 5) == b"z"
            new.remove_reader(r)
            os.close(r)
            os.close(w)
            b.close()
            return bytes(p.data)

        return new.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        new.close()


def test_fork_while_running_then_fresh_loop_in_child(loop, loop_kind):
    async def main():
        srv = await loop.create_server(lambda: Recorder(loop), "127.0.0.1", 0)
        p = Recorder(loop)
        tr, _ = await loop.create_connection(lambda: p, *srv.sockets[0].getsockname())
        loop.call_later(3600, print, "parent timer")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # threads
            pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 1
            try:
                ok = _fork_child_work(loop_kind) == b"child data"
                code = 0 if ok else 2
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 3
            finally:
                os._exit(code)
        # parent: the loop keeps working while the child runs
        for i in range(50):
            tr.write(b"parent %d" % i)
            await asyncio.sleep(0.001)
        deadline = loop.time() + 30
        while True:
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid:
                break
            assert loop.time() < deadline, "child did not finish"
            await asyncio.sleep(0.01)
        tr.close()
        await p.lost
        srv.close()
        await srv.wait_closed()
        return status

    status = run(loop, main(), timeout=60)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_child_closing_inherited_loop_keeps_parent_watchers(loop, loop_kind):
    # The epoll instance is shared with a forked child: the child closing
    # its copy of the loop (asyncio.run()'s finally, a worker dropping an
    # inherited loop) must not unregister the parent's fds. asyncio's
    # close() only closes the epoll fd; fastloop unregistered every fd.
    r, w = os.pipe()
    a, b = socket.socketpair()
    got = []
    loop.add_reader(r, lambda: got.append(os.read(r, 10)))

    async def connect():
        p = Recorder(loop)
        await loop.connect_accepted_socket(lambda: p, a)
        return p

    p = run(loop, connect())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # threads
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            loop.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    try:
        os.write(w, b"x")
        b.sendall(b"data")

        async def main():
            await until(lambda: got and len(p.data) >= 4, timeout=5)

        run(loop, main())
        assert got == [b"x"] and p.data == b"data"
        loop.remove_reader(r)
        p.transport.close()
        run(loop, asyncio.sleep(0.01))  # the close completes
    finally:
        os.close(r)
        os.close(w)
        b.close()


DROP_INHERITED_LOOP = r"""
import gc, os, time
from fastloop import _core
# the C loop alone: no __del__ that would close() it first
loop = _core.Loop()
r, w = os.pipe()
got = []
loop.add_reader(r, lambda: got.append(os.read(r, 10)))
pid = os.fork()
if pid == 0:
    # the child neither closes nor keeps the loop: collected
    del loop
    gc.collect()
    os._exit(0)
os.waitpid(pid, 0)
os.write(w, b"x")
end = time.monotonic() + 5
while not got and time.monotonic() < end:
    loop.call_later(0.05, lambda: None)
    loop._run_once()
print(got)
"""


def test_child_dropping_inherited_loop_keeps_parent_watchers():
    """As above, when the child's copy of the C loop is collected unclosed
    (its dealloc drops the watchers too)."""
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", DROP_INHERITED_LOOP],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "[b'x']", proc.stderr.decode()


# --------------------------------------------------------------------------
# bad input to every method and constructor (child process)


BAD_ARGS = [
    (), (None,), (0,), (-1,), (2 ** 31,), (2 ** 64,), (1.5,), (float("nan"),),
    ("x",), (b"x",), (object(),), ([],), (None, None), (None, None, None),
    (print,), (1, 2, 3, 4, 5, 6, 7, 8),
]
BAD_VALUES = [None, 1, "x", -1, 2 ** 64, 1.5, object()]
# Exceptions a C method may raise for bad input.
CLEAN = ("TypeError", "ValueError", "RuntimeError", "OverflowError",
         "OSError", "NotImplementedError", "BlockingIOError",
         "FileNotFoundError", "PermissionError", "ConnectionRefusedError")
# These block by design (run the loop); they are exercised elsewhere.
BLOCKING = {"_run", "_run_once", "run_forever"}

TARGETS = [
    "loop", "Loop_new", "core_loop_new",
    "stream", "stream_new", "stream_closed", "stream_loop_closed",
    "listener", "listener_new", "listener_closed",
    "dgram", "dgram_new", "dgram_closed",
    "rpipe", "rpipe_new", "wpipe", "wpipe_new",
    "handle", "handle_new", "timer", "timer_new",
]


def _bad_input_factory(target, keep):
    import fastloop
    from fastloop import _core

    class DummyServer:
        def _attach(self, t):
            pass

        def _detach(self, t):
            pass

    def lp():
        loop = fastloop.new_event_loop()
        keep.append(loop)
        return loop

    def settle(loop):
        loop.run_until_complete(asyncio.sleep(0.001))

    base, _, state = target.partition("_")
    if target == "loop":
        return lp()
    if target == "Loop_new":
        return fastloop.Loop.__new__(fastloop.Loop)
    if target == "core_loop_new":
        return _core.Loop.__new__(_core.Loop)
    types = {"stream": _core.StreamTransport, "listener": _core.Listener,
             "dgram": _core.DatagramTransport, "rpipe": _core.ReadPipeTransport,
             "wpipe": _core.WritePipeTransport, "handle": _core.Handle,
             "timer": _core.TimerHandle}
    T = types[base]
    if state == "new":
        return T.__new__(T)
    loop = lp()
    if base == "stream":
        a, b = socket.socketpair()
        keep.append(b)
        obj = _core.StreamTransport(loop, a, asyncio.Protocol())
    elif base == "listener":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        obj = _core.Listener(loop, s, asyncio.Protocol, DummyServer())
        obj.start()
    elif base == "dgram":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        obj = _core.DatagramTransport(loop, s, asyncio.DatagramProtocol())
    elif base == "rpipe":
        r, w = os.pipe()
        keep.append(os.fdopen(w, "wb", 0))
        obj = _core.ReadPipeTransport(loop, os.fdopen(r, "rb", 0), asyncio.Protocol())
    elif base == "wpipe":
        r, w = os.pipe()
        keep.append(os.fdopen(r, "rb", 0))
        obj = _core.WritePipeTransport(loop, os.fdopen(w, "wb", 0), asyncio.BaseProtocol())
    elif base == "handle":
        obj = loop.call_soon(len, "")
    else:
        obj = loop.call_later(3600, len, "")
    if base in ("stream", "dgram", "rpipe", "wpipe"):
        settle(loop)
    if state == "closed":
        obj.close()
        settle(loop)
    elif state == "loop":  # stream_loop_closed
        loop.close()
    return obj


def _reference_factory(target, keep):
    """asyncio's own analog of a bad-input target, or None."""
    base, _, state = target.partition("_")
    if target == "loop":
        loop = asyncio.SelectorEventLoop()
        keep.append(loop)
        return loop
    if target in ("Loop_new", "core_loop_new"):
        T = asyncio.SelectorEventLoop
        return T.__new__(T)
    if base in ("handle", "timer"):
        T = asyncio.Handle if base == "handle" else asyncio.TimerHandle
        if state == "new":
            return T.__new__(T)
        loop = asyncio.SelectorEventLoop()
        keep.append(loop)
        if base == "handle":
            return loop.call_soon(len, "")
        return loop.call_later(3600, len, "")
    return None


def _child_bad_input(target, skip=""):
    """Calls every method of a fresh `target` with every BAD_ARGS tuple (a
    fresh object per call, then the same call again on it), sets and
    deletes every attribute, calls the constructor with bad arguments.
    Prints a JSON report of what raised what; exits non-zero only by
    crashing."""
    import inspect

    import fastloop

    warnings.simplefilter("ignore")
    skip = set(filter(None, skip.split(",")))

    class Hang(BaseException):
        pass

    def on_alarm(*a):
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    report = {"calls": 0, "bad": [], "hangs": []}
    keep = []

    def outcome(label, fn, c_level):
        report["calls"] += 1
        signal.setitimer(signal.ITIMER_REAL, 5)
        try:
            r = fn()
            if inspect.iscoroutine(r):
                try:  # drive it: the checks of coroutine methods run here
                    lp = keep[0] if keep else fastloop.new_event_loop()
                    if lp.is_closed() or lp.is_running():
                        r.close()
                    else:
                        lp.run_until_complete(asyncio.wait_for(r, 3))
                except (Hang, asyncio.TimeoutError):
                    raise
                except BaseException as e:
                    return type(e).__name__
            return "ok"
        except Hang:
            report["hangs"].append(label)
            return "HANG"
        except SystemError as e:
            report["bad"].append([label, "SystemError", str(e)[:200]])
            return "SystemError"
        except BaseException as e:
            name = type(e).__name__
            if c_level and name not in CLEAN and name != ref(label):
                report["bad"].append([label, name, str(e)[:200]])
            return name
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def ref(label):
        """What asyncio's analog raises for the same call (or '')."""
        call = ref_calls.get(label)
        if call is None:
            return ""
        rkeep = []
        try:
            call(rkeep)
        except BaseException as e:
            return type(e).__name__
        finally:
            for lp in rkeep:
                lp.close()
        return "ok"

    ref_calls = {}

    def cleanup():
        for obj in keep:
            try:
                if hasattr(obj, "is_running") and not obj.is_running():
                    obj.close()
                elif hasattr(obj, "close"):
                    obj.close()
            except Exception:
                pass
        del keep[:]

    sample = _bad_input_factory(target, keep)
    T = type(sample)
    cleanup()
    names = {}
    for klass in reversed(T.__mro__):
        if klass is object:
            continue
        for n in vars(klass):
            if n.startswith("__") and n not in ("__init__", "__repr__"):
                continue
            names[n] = klass
    for n in sorted(names):
        if n in BLOCKING or n in skip:
            continue
        klass = names[n]
        # C-level: defined by a fastloop._core type (not an inherited
        # asyncio Python method, which may raise what asyncio raises)
        c_level = klass.__module__ == "fastloop._core" or (
            target in ("loop", "Loop_new") and not n.startswith("_"))
        attr = inspect.getattr_static(sample, n)
        kind = type(attr).__name__
        if kind in ("getset_descriptor", "member_descriptor", "property"):
            for v in BAD_VALUES:
                o = _bad_input_factory(target, keep)
                outcome(n + " = v", lambda: setattr(o, n, v), False)
                outcome(n + " get", lambda: getattr(o, n), c_level)
                cleanup()
            o = _bad_input_factory(target, keep)
            outcome("del " + n, lambda: delattr(o, n), False)
            outcome(n + " get after del", lambda: getattr(o, n), c_level)
            cleanup()
            continue
        if not callable(attr) and kind not in ("classmethod_descriptor", "staticmethod"):
            continue
        for args in BAD_ARGS:
            o = _bad_input_factory(target, keep)
            label = "%s%r" % (n, args)

            def ref_call(rkeep, n=n, args=args, twice=False, rep=False):
                r = _reference_factory(target, rkeep)
                if r is None:
                    raise LookupError  # no reference: never equal
                try:
                    res = getattr(r, n)(*args)
                    if inspect.iscoroutine(res):
                        res.close()
                except Exception:
                    if not (twice or rep):
                        raise
                if twice:
                    getattr(r, n)(*args)
                if rep:
                    repr(r)

            ref_calls[label] = ref_call
            ref_calls[label + " again"] = lambda k, f=ref_call: f(k, twice=True)
            ref_calls[label + " repr"] = lambda k, f=ref_call: f(k, rep=True)
            outcome(label, lambda: getattr(o, n)(*args), c_level)
            outcome(label + " again", lambda: getattr(o, n)(*args), c_level)
            outcome(label + " repr", lambda: repr(o), c_level)
            cleanup()
    if not target.startswith(("loop", "Loop", "core")):
        rT = {"Handle": asyncio.Handle, "TimerHandle": asyncio.TimerHandle}.get(
            T.__name__)
        for args in BAD_ARGS:
            label = "%s%r" % (T.__name__, args)
            if rT is not None:
                ref_calls[label] = lambda k, a=args: rT(*a)
            outcome(label, lambda: T(*args), True)
            cleanup()
    gc.collect()
    print(json.dumps(report))


def _bad_input_verdict(target, skip=""):
    proc = run_child("bad_input", target, skip, timeout=300)
    assert proc.returncode == 0, "crashed (rc=%s) in %s:\n%s" % (
        proc.returncode, target, proc.stderr[-4000:])
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rep["calls"] > 50, rep
    assert not rep["hangs"], rep["hangs"]
    assert not rep["bad"], rep["bad"]


@pytest.mark.parametrize("target", TARGETS)
def test_bad_input_never_crashes(target):
    # StreamTransport.__new__(...)._sock: see the dedicated xfail below.
    _bad_input_verdict(target)


def _child_uninit_sock():
    from fastloop import _core

    t = _core.StreamTransport.__new__(_core.StreamTransport)
    try:
        t._sock
    except (RuntimeError, AttributeError, ValueError, TypeError):
        pass
    print(json.dumps({"fd0": os.fstat(0).st_ino, "sock_fd": t._sock_fd}))


def test_uninitialised_stream_transport_sock():
    """R1 (fixed): _sock of an instance made by __new__ alone is None."""
    res = child_json(run_child("uninit_sock"))
    assert res["sock_fd"] == -1, res


def test_bad_input_harness_catches_crashes():
    """The child harness really reports a crash as a failure."""
    # The crash is on purpose: under ASan/UBSan (.ci/jobs/asan) the
    # sanitizers must leave the SIGSEGV alone, or it counts as a report.
    env = {}
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if os.environ.get(var):
            env[var] = os.environ[var] + ":handle_segv=0"
    proc = run_child("crash", env_extra=env)
    assert proc.returncode != 0, proc.returncode  # -11
    with pytest.raises(AssertionError):
        child_json(proc)


# --------------------------------------------------------------------------
# a replaced time() that returns NaN


def test_nan_loop_time_fires_timers(loop):
    # asyncio's _run_once stops collecting at "handle._when >= end_time",
    # which is false for a NaN clock: every timer fires (fastloop compared
    # "when < end" and never fired one, spinning instead).
    got = []
    loop.call_later(0.01, got.append, "a")
    loop.call_at(5, got.append, "b")
    loop.time = lambda: float("nan")
    loop.call_later(0.02, got.append, "c")  # a NaN deadline
    loop.call_soon(got.append, "soon")
    loop._run_once()  # one iteration collects (and runs) every timer
    assert sorted(got) == ["a", "b", "c", "soon"]
    assert got[0] == "soon"
    del loop.time
    if hasattr(loop, "stats"):
        assert loop.stats()["lag_max"] == loop.stats()["lag_max"]  # not NaN


# --------------------------------------------------------------------------
# child-process entry point


def _child_main(argv):
    mode, args = argv[0], argv[1:]
    if mode == "emfile":
        _child_emfile(*args)
    elif mode == "signals":
        _child_signals(*args)
    elif mode == "bad_input":
        _child_bad_input(*args)
    elif mode == "uninit_sock":
        _child_uninit_sock()
    elif mode == "crash":
        import ctypes

        ctypes.string_at(0)
    else:
        raise SystemExit("unknown mode %r" % mode)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
