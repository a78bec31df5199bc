"""Child processes: loop.subprocess_exec / subprocess_shell, the subprocess
transport and protocol contract, and asyncio.create_subprocess_exec/_shell
on top of them.

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture); the reference loop proves the expectation right. Where asyncio
versions differ (3.9/3.10 wake wait() at exit, 3.11+ once every pipe
closed) the expectation follows the running version. Each test checks that
its children were reaped (waitpid() on their pid fails with ECHILD) and the
fixture checks that no file descriptor leaks.
"""
import asyncio
import inspect
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
import weakref

import pytest

from conftest import make_loop, run
from nethelpers import payload

PIPE = asyncio.subprocess.PIPE
SH = "/bin/sh"
PY = sys.executable
PY311 = sys.version_info >= (3, 11)
POPEN_PARAMS = inspect.signature(subprocess.Popen).parameters


def assert_reaped(*pids):
    """Each pid is no child of ours any more (no zombie left behind)."""
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


async def wait_reaped(pid, timeout=5.0):
    """Wait until someone else reaps pid (peeking with WNOWAIT only)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        assert time.monotonic() < deadline, f"pid {pid} not reaped"
        await asyncio.sleep(0.01)


class SubProto(asyncio.SubprocessProtocol):
    """Records every callback in order."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.events = []
        self.data = {1: bytearray(), 2: bytearray()}
        self.transport = None
        self.done = self.loop.create_future()
        self.exited = self.loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def pipe_data_received(self, fd, data):
        assert "lost" not in self.events
        self.data[fd] += data
        ev = ("data", fd)
        if self.events[-1] != ev:
            self.events.append(ev)

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_lost", fd, exc))

    def process_exited(self):
        self.events.append("exited")
        self.exited.set_result(self.transport.get_returncode())

    def connection_lost(self, exc):
        self.events.append("lost")
        self.done.set_result(exc)


# ----------------------------------------------------------------------
# asyncio.create_subprocess_*


def test_echo_communicate(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", "echo out; echo err >&2", stdout=PIPE, stderr=PIPE
        )
        out, err = await proc.communicate()
        assert (out, err) == (b"out\n", b"err\n")
        assert proc.returncode == 0
        assert_reaped(proc.pid)

    run(loop, main())


def test_cat_10mb_through_stdin_stdout(loop):
    async def main():
        data = payload(10 * 1024 * 1024)
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=PIPE, stdout=PIPE
        )
        out, err = await proc.communicate(data)
        assert err is None
        assert len(out) == len(data) and out == data
        assert proc.returncode == 0
        assert_reaped(proc.pid)

    run(loop, main(), timeout=60)


def test_large_stdin_drain(loop):
    """stdin.write + drain (flow control on the write pipe), stdout read
    concurrently."""

    async def main():
        proc = await asyncio.create_subprocess_exec(
            "wc", "-c", stdin=PIPE, stdout=PIPE
        )
        chunk = payload(256 * 1024)
        for _ in range(20):
            proc.stdin.write(chunk)
            await proc.stdin.drain()
        proc.stdin.close()
        out = await proc.stdout.read()
        assert int(out) == 20 * len(chunk)
        assert await proc.wait() == 0
        assert_reaped(proc.pid)

    run(loop, main(), timeout=60)


def test_readline_streaming(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", "for i in 1 2 3 4 5; do echo line$i; sleep 0.01; done",
            stdout=PIPE,
        )
        lines = []
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert lines == [b"line%d\n" % i for i in range(1, 6)]
        assert await proc.wait() == 0
        assert_reaped(proc.pid)

    run(loop, main())


def test_exit_codes(loop):
    async def main():
        for code in (0, 1, 7, 255):
            proc = await asyncio.create_subprocess_exec(SH, "-c", f"exit {code}")
            assert await proc.wait() == code
            assert proc.returncode == code
            assert_reaped(proc.pid)

    run(loop, main())


@pytest.mark.parametrize(
    "method,sig",
    [
        ("terminate", signal.SIGTERM),
        ("kill", signal.SIGKILL),
        ("send_signal", signal.SIGUSR1),
        ("send_signal", signal.SIGHUP),  # returncode -1
    ],
)
def test_signals_negative_returncode(loop, method, sig):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", "echo ready; exec sleep 30", stdout=PIPE
        )
        assert await proc.stdout.readline() == b"ready\n"
        if method == "send_signal":
            proc.send_signal(sig)
        else:
            getattr(proc, method)()
        assert await proc.wait() == -sig
        assert proc.returncode == -sig
        assert_reaped(proc.pid)
        # the process is gone: signalling it is a no-op, or
        # ProcessLookupError once the transport let go of it
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    run(loop, main())


def test_many_concurrent_children(loop):
    async def one(i):
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", f"echo child{i}; exit {i % 5}", stdout=PIPE
        )
        out, _ = await proc.communicate()
        return proc.pid, out, proc.returncode

    async def main():
        results = await asyncio.gather(*(one(i) for i in range(50)))
        for i, (pid, out, rc) in enumerate(results):
            assert out == b"child%d\n" % i
            assert rc == i % 5
        assert_reaped(*(pid for pid, _, _ in results))

    run(loop, main(), timeout=60)


def test_kill_mid_output(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("yes", stdout=PIPE)
        got = 0
        while got < 1024 * 1024:
            got += len(await proc.stdout.read(65536))
        proc.kill()
        rest = await proc.stdout.read()  # until EOF: the child is gone
        assert set(rest) <= set(b"y\n")
        assert await proc.wait() == -signal.SIGKILL
        assert_reaped(proc.pid)

    run(loop, main())


def test_stderr_to_stdout(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", "echo out; echo err >&2", stdout=PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert proc.stderr is None
        out, err = await proc.communicate()
        assert err is None
        assert sorted(out.splitlines()) == [b"err", b"out"]
        assert_reaped(proc.pid)

    run(loop, main())


def test_devnull(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=asyncio.subprocess.DEVNULL, stdout=PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdin is None and proc.stderr is None
        out, _ = await proc.communicate()
        assert out == b""
        assert proc.returncode == 0
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", "echo hidden; echo hidden >&2",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is None
        assert await proc.wait() == 0
        assert_reaped(proc.pid)

    run(loop, main())


def test_stdio_from_fds_and_files(loop, tmp_path):
    async def main():
        src = tmp_path / "in.txt"
        src.write_bytes(b"from a file\n")
        dst = tmp_path / "out.txt"
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            proc = await asyncio.create_subprocess_exec(
                "cat", stdin=fin, stdout=fout.fileno()
            )
            assert await proc.wait() == 0
        assert dst.read_bytes() == b"from a file\n"
        assert_reaped(proc.pid)

    run(loop, main())


def test_pass_fds(loop):
    async def main():
        r, w = os.pipe()
        try:
            write_to = "import os, sys; os.write(int(sys.argv[1]), b'via-fd\\n')"
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", write_to, str(w), pass_fds=(w,)
            )
            assert await proc.wait() == 0
            os.close(w)
            w = -1
            assert os.read(r, 100) == b"via-fd\n"
            # without pass_fds the fd is not inherited
            r2, w2 = os.pipe()
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", write_to, str(w2), stderr=asyncio.subprocess.DEVNULL
            )
            assert await proc.wait() != 0
            os.close(r2)
            os.close(w2)
            assert_reaped(proc.pid)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    run(loop, main())


def test_cwd_and_env(loop, tmp_path):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", 'pwd; echo "$FOO"', stdout=PIPE, cwd=str(tmp_path),
            env={"FOO": "bar baz", "PATH": os.environ.get("PATH", "/bin")},
        )
        out, _ = await proc.communicate()
        assert out.splitlines() == [os.fsencode(os.path.realpath(tmp_path)), b"bar baz"]
        assert_reaped(proc.pid)

    run(loop, main())


def test_child_reopens_proc_self_fd_1(loop):
    """stdout is a real pipe: the child can open /proc/self/fd/1 (a
    socketpair fails with ENXIO: uvloop #505)."""

    async def main():
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", "echo reopened > /proc/self/fd/1; echo err > /proc/self/fd/2",
            stdout=PIPE, stderr=PIPE,
        )
        out, err = await proc.communicate()
        assert (out, err) == (b"reopened\n", b"err\n")
        assert proc.returncode == 0
        assert_reaped(proc.pid)

    run(loop, main())


def test_create_subprocess_shell(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "echo $((1 + 2)) | tr 3 x; exit 4", stdout=PIPE
        )
        out, _ = await proc.communicate()
        assert out == b"x\n"
        assert proc.returncode == 4
        assert_reaped(proc.pid)

    run(loop, main())


def test_program_not_found(loop):
    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec(
                "/nonexistent/program", stdin=PIPE, stdout=PIPE, stderr=PIPE
            )
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec(PY, "-c", "", cwd="/nonexistent/dir")

    run(loop, main())


def test_stdin_to_child_that_does_not_read(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("true", stdin=PIPE)
        out, err = await proc.communicate(payload(1024 * 1024))
        assert (out, err) == (None, None)
        assert proc.returncode == 0
        assert_reaped(proc.pid)

    run(loop, main())


# ----------------------------------------------------------------------
# Popen keywords


def test_popen_keywords(loop):
    async def main():
        # start_new_session
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import os; print(os.getsid(0) == os.getpid())",
            stdout=PIPE, start_new_session=True,
        )
        assert (await proc.communicate())[0] == b"True\n"
        # preexec_fn (runs in the child)
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", 'echo "$MARK"', stdout=PIPE,
            preexec_fn=lambda: os.environ.__setitem__("MARK", "preexec"),
        )
        out, _ = await proc.communicate()
        assert out in (b"preexec\n", b"\n")  # environ copy is implementation-defined
        if "umask" in POPEN_PARAMS:
            proc = await asyncio.create_subprocess_exec(
                SH, "-c", "umask", stdout=PIPE, umask=0o027
            )
            assert (await proc.communicate())[0].strip() == b"0027"
        if "process_group" in POPEN_PARAMS:
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", "import os; print(os.getpgid(0) == os.getpid())",
                stdout=PIPE, process_group=0,
            )
            assert (await proc.communicate())[0] == b"True\n"
        if "user" in POPEN_PARAMS:
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", "import os; print(os.getuid(), os.getgid())",
                stdout=PIPE, user=os.getuid(), group=os.getgid(),
            )
            out = (await proc.communicate())[0]
            assert out == f"{os.getuid()} {os.getgid()}\n".encode()
        with pytest.raises(TypeError):
            await asyncio.create_subprocess_exec("true", no_such_keyword=1)

    run(loop, main())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"universal_newlines": True},
        {"shell": True},
        {"bufsize": 1},
        {"text": True},
        {"encoding": "utf-8"},
        {"errors": "strict"},
    ],
)
def test_exec_argument_validation(loop, kwargs):
    async def main():
        made = []
        with pytest.raises(ValueError):
            await loop.subprocess_exec(lambda: made.append(1), "true", **kwargs)
        assert made == []  # validated before the protocol is made

    run(loop, main())


@pytest.mark.parametrize(
    "cmd,kwargs",
    [
        (["echo", "x"], {}),
        (42, {}),
        ("true", {"shell": False}),
        ("true", {"universal_newlines": True}),
        ("true", {"bufsize": 1}),
        ("true", {"text": True}),
        ("true", {"encoding": "utf-8"}),
        ("true", {"errors": "strict"}),
    ],
)
def test_shell_argument_validation(loop, cmd, kwargs):
    async def main():
        with pytest.raises(ValueError):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, cmd, **kwargs)

    run(loop, main())


# ----------------------------------------------------------------------
# The transport and protocol


def test_protocol_callback_order(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(
            SubProto, SH, "-c", "echo out; echo err >&2; exit 3"
        )
        assert isinstance(tr, asyncio.SubprocessTransport)
        assert proto.events[0] == "made"
        pid = tr.get_pid()
        assert isinstance(pid, int) and pid > 0
        popen = tr.get_extra_info("subprocess")
        assert isinstance(popen, subprocess.Popen) and popen.pid == pid
        pipes = {fd: tr.get_pipe_transport(fd) for fd in (0, 1, 2)}
        assert isinstance(pipes[0], asyncio.WriteTransport)
        assert isinstance(pipes[1], asyncio.ReadTransport)
        assert isinstance(pipes[2], asyncio.ReadTransport)
        assert tr.get_pipe_transport(3) is None
        # uvloop #595: the pipe transports know their pipe
        for fd, t in pipes.items():
            assert t.get_extra_info("pipe") is not None
        assert "pid=" in repr(tr)
        assert await proto.exited == 3
        assert await proto.done is None
        assert tr.get_returncode() == 3
        assert popen.returncode == 3
        ev = proto.events
        assert ev[0] == "made" and ev[-1] == "lost"
        assert ev.index("exited") < ev.index("lost")
        # stdin ends too: the child's exit closes its read end
        assert {e for e in ev if isinstance(e, tuple) and e[0] == "pipe_lost"} == {
            ("pipe_lost", 0, None), ("pipe_lost", 1, None), ("pipe_lost", 2, None)
        }
        assert bytes(proto.data[1]) == b"out\n"
        assert bytes(proto.data[2]) == b"err\n"
        # stdin is still open: close it through the transport
        tr.close()
        assert tr.is_closing()
        await asyncio.sleep(0.01)
        assert pipes[0].is_closing()
        assert_reaped(pid)
        with pytest.raises(ProcessLookupError):
            tr.send_signal(signal.SIGTERM)
        with pytest.raises(ProcessLookupError):
            tr.kill()

    run(loop, main())


def test_connection_lost_waits_for_every_pipe(loop):
    """A grandchild keeps stdout open after the child exited:
    process_exited comes first, connection_lost only once stdout closes."""

    async def main():
        tr, proto = await loop.subprocess_exec(
            SubProto, SH, "-c", "(sleep 0.3; echo late) & exit 0", stdin=None,
            stderr=None,
        )
        assert await proto.exited == 0
        await asyncio.sleep(0.05)
        assert not proto.done.done()
        assert await proto.done is None
        assert bytes(proto.data[1]) == b"late\n"
        tr.close()

    run(loop, main())


def test_wait_semantics_follow_the_version(loop):
    """3.9/3.10 wake wait() at exit; 3.11+ once every pipe closed."""

    async def main():
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", "(sleep 0.5; echo late) & sleep 0.15; exit 0", stdout=PIPE
        )
        t0 = time.monotonic()
        assert await proc.wait() == 0
        elapsed = time.monotonic() - t0
        if PY311:
            assert elapsed >= 0.4
        else:
            assert elapsed < 0.4
        assert await proc.stdout.read() == b"late\n"
        # wait() after the end returns at once
        assert await proc.wait() == 0
        await asyncio.sleep(0.05)  # let the transport finish

    run(loop, main())


def test_transport_close_kills_running_child(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(SubProto, "sleep", "30")
        pid = tr.get_pid()
        tr.close()
        tr.close()  # idempotent
        assert tr.is_closing()
        assert await asyncio.wait_for(proto.exited, 5) == -signal.SIGKILL
        assert await proto.done is None
        assert_reaped(pid)

    run(loop, main())


def test_pipe_transport_flow_control_via_protocol(loop):
    """pause_writing/resume_writing of the stdin pipe reach the subprocess
    protocol."""

    class P(SubProto):
        def __init__(self):
            super().__init__()
            self.pauses = 0
            self.resumes = 0

        def pause_writing(self):
            self.pauses += 1

        def resume_writing(self):
            self.resumes += 1

    async def main():
        tr, proto = await loop.subprocess_exec(
            P, SH, "-c", "sleep 0.1; exec cat >/dev/null", stdout=None, stderr=None
        )
        stdin = tr.get_pipe_transport(0)
        stdin.write(payload(1024 * 1024))
        assert proto.pauses == 1
        while stdin.get_write_buffer_size():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)
        assert proto.resumes == 1
        stdin.close()
        assert await proto.exited == 0
        await proto.done
        tr.close()

    run(loop, main())


def test_unclosed_subprocess_transport_warns(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(SubProto, "true")
        await proto.done
        return weakref.ref(tr)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = run(loop, main())
        gc_collect()
    assert ref() is None or any(w.source is ref() for w in caught)
    assert any(
        issubclass(w.category, ResourceWarning) and "unclosed transport" in str(w.message)
        for w in caught
    ), caught


def gc_collect():
    import gc

    for _ in range(3):
        gc.collect()


def test_cancelled_while_starting(loop):
    """Cancelled while the pipes are being connected: the child is killed
    and reaped, nothing leaks."""

    async def main():
        before = set(os.listdir("/proc/self/fd"))
        task = loop.create_task(
            asyncio.create_subprocess_exec("sleep", "30", stdin=PIPE, stdout=PIPE)
        )
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            await asyncio.sleep(0.01)
            if set(os.listdir("/proc/self/fd")) <= before:
                break

    run(loop, main())


# ----------------------------------------------------------------------
# Threads, zombies, watchers


def test_loop_in_a_thread_runs_a_subprocess(loop_kind):
    result = {}

    def target():
        lp = make_loop(loop_kind)
        try:
            async def main():
                proc = await asyncio.create_subprocess_exec(
                    SH, "-c", "echo from-thread; exit 5", stdout=PIPE
                )
                out, _ = await proc.communicate()
                return proc.pid, out, proc.returncode

            result["value"] = lp.run_until_complete(asyncio.wait_for(main(), 20))
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc
        finally:
            lp.close()

    t = threading.Thread(target=target)
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert "error" not in result, result.get("error")
    pid, out, rc = result["value"]
    assert (out, rc) == (b"from-thread\n", 5)
    assert_reaped(pid)


def test_thread_watcher_fallback(fastloop_only, loop, monkeypatch):
    """Without pidfds a thread per child waits for it."""
    from fastloop import _subprocess

    monkeypatch.setattr(_subprocess, "_pidfd_usable", False)

    async def main():
        procs = [
            await asyncio.create_subprocess_exec(SH, "-c", f"exit {i}")
            for i in range(10)
        ]
        assert [await p.wait() for p in procs] == list(range(10))
        proc = await asyncio.create_subprocess_exec("sleep", "30", stdout=PIPE)
        watch = loop._fl_child_watches[proc.pid]
        assert isinstance(watch, _subprocess._ThreadWatch)
        proc.terminate()
        assert await proc.wait() == -signal.SIGTERM
        assert_reaped(proc.pid, *(p.pid for p in procs))

    run(loop, main())


def test_child_reaped_through_popen(fastloop_only, loop):
    """Popen.wait() on the Popen object reaps the child behind the pidfd
    watch: the status comes from the Popen object (asyncio reports 255).
    (With a waiter thread, Popen.wait() races the thread, as it races
    asyncio's ThreadedChildWatcher.)"""
    from fastloop import _subprocess

    if not _subprocess._pidfd_usable:
        pytest.skip("no pidfd_open on this kernel")

    async def main():
        tr, proto = await loop.subprocess_exec(
            SubProto, SH, "-c", "exit 9", stdin=None, stdout=None, stderr=None
        )
        popen = tr.get_extra_info("subprocess")
        assert popen.wait() == 9
        assert await proto.exited == 9
        await proto.done
        tr.close()

    run(loop, main())


def test_pidfd_watch_used(fastloop_only, loop):
    from fastloop import _subprocess

    if not _subprocess._pidfd_usable:
        pytest.skip("no pidfd_open on this kernel")

    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        assert isinstance(loop._fl_child_watches[proc.pid], _subprocess._PidfdWatch)
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL
        assert proc.pid not in loop._fl_child_watches

    run(loop, main())


@pytest.mark.parametrize("pidfd", [True, False])
def test_loop_closed_with_children_running(fastloop_only, loop, monkeypatch, pidfd):
    """Closing the loop with children still running leaks no pidfd, and
    the children are still reaped once they exit."""
    from fastloop import _subprocess

    if not pidfd:
        monkeypatch.setattr(_subprocess, "_pidfd_usable", False)

    async def main():
        tr, proto = await loop.subprocess_exec(
            asyncio.SubprocessProtocol, "sleep", "0.2", stdin=None, stdout=None,
            stderr=None,
        )
        return tr

    tr = run(loop, main())
    pid = tr.get_pid()
    tr.close()  # kills; the exit is not seen by the loop any more
    loop.close()
    probe = asyncio.new_event_loop()
    try:
        probe.run_until_complete(wait_reaped(pid))
    finally:
        probe.close()


def test_no_zombies_after_many_children(loop):
    async def main():
        pids = []
        for _ in range(3):
            procs = await asyncio.gather(
                *(asyncio.create_subprocess_exec("true") for _ in range(15))
            )
            await asyncio.gather(*(p.wait() for p in procs))
            pids += [p.pid for p in procs]
        assert_reaped(*pids)
        # and none of them lingers as a zombie in /proc
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            assert not (fields[0] == "Z" and int(fields[1]) == os.getpid())

    run(loop, main())


# Set by test_no_fork_hooks_run only; os.register_at_fork() hooks cannot be
# removed, so the hook does nothing once the test is over.
_FORK_HOOK_FD = None


def _after_fork_in_child():
    if _FORK_HOOK_FD is not None:
        os.write(_FORK_HOOK_FD, b"hook ran\n")


def test_no_fork_hooks_run(loop):
    """Spawning runs no os.register_at_fork() hooks (uvloop #749): Popen
    execs without them unless preexec_fn is given."""
    global _FORK_HOOK_FD

    if not hasattr(test_no_fork_hooks_run, "registered"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        test_no_fork_hooks_run.registered = True

    async def main():
        global _FORK_HOOK_FD
        r, w = os.pipe()
        os.set_blocking(r, False)
        _FORK_HOOK_FD = w
        try:
            proc = await asyncio.create_subprocess_exec(
                "true", stdin=PIPE, stdout=PIPE, stderr=PIPE
            )
            await proc.communicate()
            proc = await asyncio.create_subprocess_shell("true")
            await proc.wait()
        finally:
            _FORK_HOOK_FD = None
            os.close(w)
        try:
            got = os.read(r, 100)
        except BlockingIOError:
            got = b""
        os.close(r)
        assert got == b""

    run(loop, main())


def test_no_child_watcher_needed(fastloop_only, loop, monkeypatch):
    """fastloop never asks asyncio's policy for a child watcher (they are
    deprecated, and gone in 3.14)."""

    def boom(*args, **kwargs):  # pragma: no cover - must not be called
        raise AssertionError("child watcher machinery used")

    for name in ("get_child_watcher", "set_child_watcher"):
        if hasattr(asyncio, name):
            monkeypatch.setattr(asyncio, name, boom)
        if hasattr(asyncio.events, name):
            monkeypatch.setattr(asyncio.events, name, boom)
    monkeypatch.setattr(asyncio, "get_event_loop_policy", boom)
    monkeypatch.setattr(asyncio.events, "get_event_loop_policy", boom)

    async def main():
        proc = await asyncio.create_subprocess_exec(SH, "-c", "exit 3")
        assert await proc.wait() == 3

    run(loop, main())


def test_thread_loop_with_thread_watcher(fastloop_only, monkeypatch):
    """A loop in a non-main thread, without pidfds."""
    from fastloop import _subprocess

    monkeypatch.setattr(_subprocess, "_pidfd_usable", False)
    test_loop_in_a_thread_runs_a_subprocess("fastloop")
