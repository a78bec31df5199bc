"""Pipes and child processes for fastloop.Loop.

``SubprocessMixin`` supplies ``connect_read_pipe``, ``connect_write_pipe``,
``subprocess_exec`` and ``subprocess_shell``. The pipe transports are the C
``_core.ReadPipeTransport`` / ``_core.WritePipeTransport`` (src/pipe.c);
``SubprocessTransport`` reproduces asyncio's
``base_subprocess.BaseSubprocessTransport`` + ``_UnixSubprocessTransport``
of the running Python over them, so ``asyncio.create_subprocess_exec`` /
``create_subprocess_shell`` work unchanged.

Children are started with ``subprocess.Popen`` and every keyword asyncio
passes (it runs no fork hooks of its own); their stdio pipes are real pipes
(``os.pipe()`` through Popen), not socketpairs, so a child can reopen
``/proc/self/fd/1``. The loop watches each child itself, without asyncio's
child watchers or policies (deprecated, removed in 3.14): a pidfd
(``os.pidfd_open``, Linux 5.3+) watched with ``add_reader`` and reaped with
``waitpid(WNOHANG)`` when it becomes readable; where pidfds are unavailable,
a daemon thread per child waits for it and hands the status to the loop
with ``call_soon_threadsafe`` (as asyncio's ThreadedChildWatcher). The watch
reaps the child under a lock that ``send_signal()`` also takes, so a signal
never reaches a recycled pid; when the child was reaped behind its back
(``Popen.poll()``, which ``close()`` calls as asyncio's does, or
``Popen.wait()``) it takes the status from the Popen object instead of
asyncio's 255. Closing the loop while children still run closes their
pidfds and leaves a thread to reap each.
"""

import collections
import errno
import os
import signal
import subprocess
import sys
import threading
import warnings

from asyncio import base_events
from asyncio import protocols
from asyncio import transports
from asyncio.log import logger
from asyncio.subprocess import SubprocessStreamProtocol as _SubprocessStreamProtocol

from . import _core

__all__ = ("SubprocessMixin", "SubprocessTransport")

# 3.11 moved the wake-up of wait() from process exit to connection_lost()
# (after every pipe closed).
_WAIT_AFTER_PIPES = sys.version_info >= (3, 11)

# Cleared at the first pidfd_open() that fails for want of kernel support.
_pidfd_usable = hasattr(os, "pidfd_open")
_HAVE_WAITID = hasattr(os, "waitid")


# _ChildWatch._reap(): the child was reaped by someone else (Popen.poll() or
# wait() on the Popen object, a stray waitpid(-1)).
_REAPED_ELSEWHERE = object()


def _format_pipe(fd):
    # asyncio.base_events._format_pipe
    if fd == subprocess.PIPE:
        return "<pipe>"
    elif fd == subprocess.STDOUT:
        return "<stdout>"
    else:
        return repr(fd)


def _exitcode(status):
    return os.waitstatus_to_exitcode(status)


# ----------------------------------------------------------------------
# Child watches


class _ChildWatch:
    """Waits for one child of ``loop`` and calls ``callback(returncode)`` in
    the loop. Subclasses decide how the exit is noticed; reaping happens
    under ``_lock``, which ``send_signal`` holds too."""

    def __init__(self, loop, proc, callback):
        self._loop = loop
        self._proc = proc
        self.pid = proc.pid
        self._callback = callback
        self._lock = threading.Lock()
        self._reaped = False

    def _reap(self, flags):
        """waitpid() under the lock. Returns the exit code (negative for a
        signal), None when the child is still running (WNOHANG), or
        _REAPED_ELSEWHERE."""
        with self._lock:
            if self._reaped:
                return _REAPED_ELSEWHERE
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:
                self._reaped = True
                return _REAPED_ELSEWHERE
            if pid == 0:
                return None
            self._reaped = True
            return _exitcode(status)

    def _returncode(self, code):
        if code is not _REAPED_ELSEWHERE:
            return code
        if self._proc is None:  # pragma: no cover - delivered once
            return 255
        # Reaped elsewhere (Popen.poll()/wait() on the Popen object): the
        # Popen object may know the status; asyncio reports 255.
        rc = self._proc.returncode
        if rc is None:
            logger.warning(
                "Unknown child process pid %d, will report returncode 255",
                self.pid,
            )
            rc = 255
        return rc

    def _deliver(self, code):
        """Runs in the loop: forget the watch, pass the code on."""
        children = self._loop._fl_child_watches
        if children is not None and children.get(self.pid) is self:
            del children[self.pid]
        callback, self._callback = self._callback, None
        rc = self._returncode(code)
        self._proc = None
        if callback is not None:
            callback(rc)

    def send_signal(self, sig):
        with self._lock:
            if self._reaped:
                return
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def _wait_thread(self, deliver):
        """Body of a waiter thread: wait for the exit without reaping (so
        that the pid stays valid for send_signal), reap under the lock, and
        hand the code to the loop if ``deliver``."""
        if _HAVE_WAITID:
            try:
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                # Reaped behind our back: never wait on the pid again (it
                # may already name another child).
                with self._lock:
                    self._reaped = True
                code = _REAPED_ELSEWHERE
            else:
                # A zombie now: reaping it cannot block.
                code = self._reap(os.WNOHANG)
                if code is None:  # pragma: no cover - reaped and reused
                    with self._lock:
                        self._reaped = True
                    code = _REAPED_ELSEWHERE
        else:  # pragma: no cover - Linux has waitid
            try:
                _, status = os.waitpid(self.pid, 0)
                code = _exitcode(status)
            except ChildProcessError:
                code = _REAPED_ELSEWHERE
            self._reaped = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if code is not _REAPED_ELSEWHERE:
                # Tell the Popen object at once: its poll()/wait() can no
                # longer see the child, and its __del__ must not report it
                # as running when no loop is left to do it.
                proc.returncode = code
        if not deliver:
            return
        loop = self._loop
        try:
            loop.call_soon_threadsafe(self._deliver, code)
        except RuntimeError:
            if not loop.is_closed():
                raise
            logger.warning(
                "Loop %r that handles pid %r is closed", loop, self.pid
            )

    def _start_thread(self, deliver):
        thread = threading.Thread(
            target=self._wait_thread,
            args=(deliver,),
            name=f"fastloop-waitpid-{self.pid}",
            daemon=True,
        )
        thread.start()

    def loop_closing(self):
        """The loop closes with the child still running."""


class _ThreadWatch(_ChildWatch):
    """Fallback: a daemon thread blocks in waitid() for the child."""

    def __init__(self, loop, proc, callback):
        super().__init__(loop, proc, callback)
        self._start_thread(True)


class _PidfdWatch(_ChildWatch):
    """The loop watches a pidfd of the child: readable once it exited."""

    def __init__(self, loop, proc, callback, pidfd):
        super().__init__(loop, proc, callback)
        self._pidfd = pidfd
        try:
            loop.add_reader(pidfd, self._ready)
        except BaseException:
            self._pidfd = -1
            os.close(pidfd)
            raise

    def _close_pidfd(self):
        pidfd, self._pidfd = self._pidfd, -1
        if pidfd >= 0:
            try:
                if not self._loop.is_closed():
                    self._loop.remove_reader(pidfd)
            finally:
                os.close(pidfd)

    def _ready(self):
        code = self._reap(os.WNOHANG)
        if code is None:
            return  # not exited after all: keep watching
        self._close_pidfd()
        self._deliver(code)

    def loop_closing(self):
        # No loop will watch the pidfd any more: reap from a thread.
        self._close_pidfd()
        if not self._reaped:
            self._start_thread(False)

    def __del__(self):
        pidfd, self._pidfd = getattr(self, "_pidfd", -1), -1
        if pidfd >= 0:
            os.close(pidfd)


def _watch_child(loop, proc, callback):
    """Start watching ``proc`` (a Popen of ``loop``'s): a pidfd when the
    kernel has them, else a thread."""
    global _pidfd_usable

    watch = None
    if _pidfd_usable:
        try:
            pidfd = os.pidfd_open(proc.pid)
        except ProcessLookupError:
            pidfd = None  # already reaped (Popen.poll()?): the thread copes
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
                # No pidfds here (kernel < 5.3, seccomp): stop trying.
                _pidfd_usable = False
            pidfd = None  # EMFILE and the like: a thread for this one
        if pidfd is not None:
            watch = _PidfdWatch(loop, proc, callback, pidfd)
    if watch is None:
        watch = _ThreadWatch(loop, proc, callback)
    if loop._fl_child_watches is None:
        loop._fl_child_watches = {}
    loop._fl_child_watches[proc.pid] = watch
    return watch


# ----------------------------------------------------------------------
# The subprocess transport


class _WritePipeProto(protocols.BaseProtocol):
    """Protocol of a child's stdin pipe (asyncio's WriteSubprocessPipeProto)."""

    def __init__(self, proc, fd):
        self.proc = proc
        self.fd = fd
        self.pipe = None
        self.disconnected = False

    def connection_made(self, transport):
        self.pipe = transport

    def __repr__(self):
        return f"<{self.__class__.__name__} fd={self.fd} pipe={self.pipe!r}>"

    def connection_lost(self, exc):
        self.disconnected = True
        self.proc._pipe_connection_lost(self.fd, exc)
        self.proc = None

    def pause_writing(self):
        self.proc._protocol.pause_writing()

    def resume_writing(self):
        self.proc._protocol.resume_writing()


class _ReadPipeProto(_WritePipeProto, protocols.Protocol):
    """Protocol of a child's stdout/stderr pipe."""

    def data_received(self, data):
        self.proc._pipe_data_received(self.fd, data)


class _NeverConnected:
    """Stands in for a pipe whose transport could not be created."""

    pipe = None
    disconnected = True


class SubprocessTransport(transports.SubprocessTransport):
    """asyncio's BaseSubprocessTransport + _UnixSubprocessTransport over
    fastloop's pipe transports and child watches."""

    def __init__(
        self, loop, protocol, args, shell, stdin, stdout, stderr, bufsize,
        waiter=None, extra=None, **kwargs
    ):
        super().__init__(extra)
        self._closed = False
        self._protocol = protocol
        self._loop = loop
        self._proc = None
        self._pid = None
        self._returncode = None
        self._exit_waiters = []
        self._pending_calls = collections.deque()
        self._pipes = {}
        self._finished = False
        self._watch = None

        if stdin == subprocess.PIPE:
            self._pipes[0] = None
        if stdout == subprocess.PIPE:
            self._pipes[1] = None
        if stderr == subprocess.PIPE:
            self._pipes[2] = None

        # Create the child process: set the _proc attribute
        try:
            self._start(
                args=args, shell=shell, stdin=stdin, stdout=stdout,
                stderr=stderr, bufsize=bufsize, **kwargs
            )
        except:  # noqa: E722 - as asyncio: close on anything, re-raise
            self.close()
            raise

        self._pid = self._proc.pid
        self._extra["subprocess"] = self._proc

        if self._loop.get_debug():
            if isinstance(args, (bytes, str)):
                program = args
            else:
                program = args[0]
            logger.debug("process %r created: pid %s", program, self._pid)

        try:
            self._watch = _watch_child(loop, self._proc, self._process_exited)
            self._loop.create_task(self._connect_pipes(waiter))
        except BaseException:
            # Nothing will ever reap the child: kill and reap it here.
            self._abandon()
            raise

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        self._proc = subprocess.Popen(
            args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
            universal_newlines=False, bufsize=bufsize, **kwargs
        )

    def _abandon(self):
        proc = self._proc
        self._closed = True
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                f.close()
        if self._watch is not None:
            self._watch.send_signal(signal.SIGKILL)
            self._watch.loop_closing()
        else:
            try:
                proc.kill()
            except OSError:
                pass
            proc.wait()

    def __repr__(self):
        info = [self.__class__.__name__]
        if self._closed:
            info.append("closed")
        if self._pid is not None:
            info.append(f"pid={self._pid}")
        if self._returncode is not None:
            info.append(f"returncode={self._returncode}")
        elif self._pid is not None:
            info.append("running")
        else:
            info.append("not started")

        stdin = self._pipes.get(0)
        if stdin is not None:
            info.append(f"stdin={stdin.pipe}")

        stdout = self._pipes.get(1)
        stderr = self._pipes.get(2)
        if stdout is not None and stderr is stdout:
            info.append(f"stdout=stderr={stdout.pipe}")
        else:
            if stdout is not None:
                info.append(f"stdout={stdout.pipe}")
            if stderr is not None:
                info.append(f"stderr={stderr.pipe}")

        return "<{}>".format(" ".join(info))

    def set_protocol(self, protocol):
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closed

    def close(self):
        if self._closed:
            return
        self._closed = True

        for proto in self._pipes.values():
            if proto is None or proto.pipe is None:
                continue
            proto.pipe.close()

        if (
            self._proc is not None
            # has the child process finished?
            and self._returncode is None
            # the child process has finished, but the
            # transport hasn't been notified yet?
            and self._proc.poll() is None
        ):
            # (poll() may reap the child behind the watch: the watch then
            # takes the status from the Popen object.)
            if self._loop is not None and self._loop.get_debug():
                logger.warning("Close running child process: kill %r", self)

            try:
                self._proc.kill()
            except (ProcessLookupError, PermissionError):
                # the process may have already exited or may be running setuid
                pass

            # Don't clear the _proc reference yet: _connect_pipes() may
            # still run

    def __del__(self, _warn=warnings.warn):
        if not self._closed:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            loop = self._loop
            if loop is not None and loop.is_closed():
                # The pipe transports cannot schedule their close any more
                # (their own finalisers close the fds); kill the child.
                self._closed = True
                if self._watch is not None and self._returncode is None:
                    self._watch.send_signal(signal.SIGKILL)
                return
            self.close()

    def get_pid(self):
        return self._pid

    def get_returncode(self):
        return self._returncode

    def get_pipe_transport(self, fd):
        proto = self._pipes.get(fd)
        return None if proto is None else proto.pipe

    def _check_proc(self):
        if self._proc is None:
            raise ProcessLookupError()

    def send_signal(self, signal):
        self._check_proc()
        if self._watch is not None:
            self._watch.send_signal(signal)
            return
        try:
            os.kill(self._proc.pid, signal)
        except ProcessLookupError:
            pass

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def _fl_adopt_streams(self):
        # asyncio.create_subprocess_*(): the protocol made its StreamReaders
        # in connection_made(); native streams take them over (README
        # "Native asyncio streams").
        protocol = self._protocol
        if type(protocol) is _SubprocessStreamProtocol:
            for reader in (protocol.stdout, protocol.stderr):
                if reader is not None:
                    _core._streams_adopt_reader(reader)

    async def _connect_pipes(self, waiter):
        proc = self._proc
        loop = self._loop
        try:
            if proc.stdin is not None:
                _, pipe = await loop.connect_write_pipe(
                    lambda: _WritePipeProto(self, 0), proc.stdin
                )
                self._pipes[0] = pipe
                if self._closed:
                    pipe.pipe.close()

            if proc.stdout is not None:
                _, pipe = await loop.connect_read_pipe(
                    lambda: _ReadPipeProto(self, 1), proc.stdout
                )
                self._pipes[1] = pipe
                if self._closed:
                    pipe.pipe.close()

            if proc.stderr is not None:
                _, pipe = await loop.connect_read_pipe(
                    lambda: _ReadPipeProto(self, 2), proc.stderr
                )
                self._pipes[2] = pipe
                if self._closed:
                    pipe.pipe.close()

            assert self._pending_calls is not None

            loop.call_soon(self._protocol.connection_made, self)
            loop.call_soon(self._fl_adopt_streams)
            for callback, data in self._pending_calls:
                loop.call_soon(callback, *data)
            self._pending_calls = None
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            # The pipes left unconnected will never report their loss:
            # close their files and count them as gone, so that the
            # transport can still finish once the child exits.
            for fd, f in ((0, proc.stdin), (1, proc.stdout), (2, proc.stderr)):
                if fd in self._pipes and self._pipes[fd] is None:
                    self._pipes[fd] = _NeverConnected()
                    if f is not None:
                        f.close()
            if waiter is not None and not waiter.cancelled():
                waiter.set_exception(exc)
            if self._returncode is not None and not self._finished:
                self._try_finish()
        else:
            if waiter is not None and not waiter.cancelled():
                waiter.set_result(None)

    def _call(self, cb, *data):
        if self._pending_calls is not None:
            self._pending_calls.append((cb, data))
        else:
            self._loop.call_soon(cb, *data)

    def _pipe_connection_lost(self, fd, exc):
        self._call(self._protocol.pipe_connection_lost, fd, exc)
        self._try_finish()

    def _pipe_data_received(self, fd, data):
        self._call(self._protocol.pipe_data_received, fd, data)

    def _process_exited(self, returncode):
        if self._returncode is not None or self._loop is None:
            return
        if self._loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        self._returncode = returncode
        if self._proc.returncode is None:
            # The watch reaped the child: copy the status into the Popen
            # object (which would otherwise warn that it still runs).
            self._proc.returncode = returncode
        self._call(self._protocol.process_exited)
        self._try_finish()
        if not _WAIT_AFTER_PIPES:
            # 3.9/3.10: wake up futures waiting for wait() at exit.
            self._wake_waiters()

    def _wake_waiters(self):
        waiters, self._exit_waiters = self._exit_waiters, None
        for waiter in waiters or ():
            if not waiter.cancelled():
                waiter.set_result(self._returncode)

    async def _wait(self):
        """Wait until the process exit and return the process return code.

        This method is a coroutine."""
        if self._returncode is not None:
            return self._returncode

        waiter = self._loop.create_future()
        self._exit_waiters.append(waiter)
        return await waiter

    def _try_finish(self):
        if self._finished or self._returncode is None:
            return
        if all(p is not None and p.disconnected for p in self._pipes.values()):
            self._finished = True
            self._call(self._call_connection_lost, None)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            if _WAIT_AFTER_PIPES:
                # wake up futures waiting for wait()
                self._wake_waiters()
            self._loop = None
            self._proc = None
            self._protocol = None
            self._watch = None


# ----------------------------------------------------------------------
# The loop methods


class SubprocessMixin:
    """Pipe and subprocess methods of fastloop.Loop (see module docstring)."""

    # pid -> _ChildWatch of the children being waited for; created lazily.
    _fl_child_watches = None

    def close(self):
        """Close the loop; children still running are reaped by threads."""
        if not self.is_running() and not self.is_closed():
            watches = self._fl_child_watches
            self._fl_child_watches = None
            for watch in list((watches or {}).values()):
                watch.loop_closing()
        super().close()

    # ------------------------------------------------------------------
    # Pipes

    def _fl_log_transport(self, level, msg, transport):
        """Debug-mode log line of a C pipe transport (asyncio's)."""
        logger.log(level, msg, transport)

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return _core.ReadPipeTransport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return _core.WritePipeTransport(self, pipe, protocol, waiter, extra)

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Register the read end of ``pipe`` (a pipe, socket or character
        device file object) in the loop (BaseEventLoop.connect_read_pipe)."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_read_pipe_transport(pipe, protocol, waiter)

        try:
            await waiter
        except:  # noqa: E722 - as asyncio
            transport.close()
            raise

        if self.get_debug():
            logger.debug(
                "Read pipe %r connected: (%r, %r)", pipe.fileno(), transport, protocol
            )
        return transport, protocol

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Register the write end of ``pipe`` in the loop
        (BaseEventLoop.connect_write_pipe)."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_write_pipe_transport(pipe, protocol, waiter)

        try:
            await waiter
        except:  # noqa: E722 - as asyncio
            transport.close()
            raise

        if self.get_debug():
            logger.debug(
                "Write pipe %r connected: (%r, %r)", pipe.fileno(), transport, protocol
            )
        return transport, protocol

    # ------------------------------------------------------------------
    # Subprocesses

    def _log_subprocess(self, msg, stdin, stdout, stderr):
        info = [msg]
        if stdin is not None:
            info.append(f"stdin={_format_pipe(stdin)}")
        if stdout is not None and stderr == subprocess.STDOUT:
            info.append(f"stdout=stderr={_format_pipe(stdout)}")
        else:
            if stdout is not None:
                info.append(f"stdout={_format_pipe(stdout)}")
            if stderr is not None:
                info.append(f"stderr={_format_pipe(stderr)}")
        logger.debug(" ".join(info))

    # asyncio's own argument checks and debug logging, for each Python
    # version; they end in _make_subprocess_transport below. (Tools that
    # look for blocking calls in coroutines, such as blockbuster, exempt
    # Popen's error-pipe read under these two methods by name.)
    subprocess_shell = base_events.BaseEventLoop.subprocess_shell
    subprocess_exec = base_events.BaseEventLoop.subprocess_exec

    async def _make_subprocess_transport(
        self, protocol, args, shell, stdin, stdout, stderr, bufsize,
        extra=None, **kwargs
    ):
        self._check_closed()
        waiter = self.create_future()
        transp = SubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, **kwargs
        )
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise

        return transp
