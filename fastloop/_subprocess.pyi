"""Typing stub for fastloop._subprocess (pipes and child processes)."""

import asyncio
import subprocess
import threading
from collections import deque
from typing import IO, Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union

from . import _core

__all__ = ("SubprocessMixin", "SubprocessTransport")

_P = TypeVar("_P", bound=asyncio.BaseProtocol)
_FileArg = Union[None, int, IO[Any]]
_Cmd = Union[str, bytes]

_WAIT_AFTER_PIPES: bool
_pidfd_usable: bool
_HAVE_WAITID: bool
_REAPED_ELSEWHERE: object

def _format_pipe(fd: object) -> str: ...
def _exitcode(status: int) -> int: ...

class _ChildWatch:
    _loop: Any
    _proc: Optional[subprocess.Popen[bytes]]
    pid: int
    _callback: Optional[Callable[[int], object]]
    _lock: threading.Lock
    _reaped: bool
    def __init__(
        self, loop: Any, proc: subprocess.Popen[bytes], callback: Callable[[int], object]
    ) -> None: ...
    def _reap(self, flags: int) -> object: ...
    def _returncode(self, code: object) -> int: ...
    def _deliver(self, code: object) -> None: ...
    def send_signal(self, sig: int) -> None: ...
    def _wait_thread(self, deliver: bool) -> None: ...
    def _start_thread(self, deliver: bool) -> None: ...
    def loop_closing(self) -> None: ...

class _ThreadWatch(_ChildWatch): ...

class _PidfdWatch(_ChildWatch):
    _pidfd: int
    def __init__(
        self,
        loop: Any,
        proc: subprocess.Popen[bytes],
        callback: Callable[[int], object],
        pidfd: int,
    ) -> None: ...
    def _close_pidfd(self) -> None: ...
    def _ready(self) -> None: ...
    def __del__(self) -> None: ...

def _watch_child(
    loop: Any, proc: subprocess.Popen[bytes], callback: Callable[[int], object]
) -> _ChildWatch: ...

class _WritePipeProto(asyncio.BaseProtocol):
    proc: Optional[SubprocessTransport]
    fd: int
    pipe: Optional[asyncio.BaseTransport]
    disconnected: bool
    def __init__(self, proc: SubprocessTransport, fd: int) -> None: ...

class _ReadPipeProto(_WritePipeProto, asyncio.Protocol): ...

class _NeverConnected:
    pipe: None
    disconnected: bool

class SubprocessTransport(asyncio.SubprocessTransport):
    _closed: bool
    _protocol: asyncio.SubprocessProtocol
    _loop: Any
    _proc: Optional[subprocess.Popen[bytes]]
    _pid: Optional[int]
    _returncode: Optional[int]
    _exit_waiters: List[asyncio.Future[int]]
    _pending_calls: deque[Tuple[Callable[..., object], Tuple[Any, ...]]]
    _pipes: Dict[int, Any]
    _finished: bool
    _watch: Optional[_ChildWatch]
    def __init__(
        self,
        loop: Any,
        protocol: asyncio.SubprocessProtocol,
        args: Any,
        shell: bool,
        stdin: _FileArg,
        stdout: _FileArg,
        stderr: _FileArg,
        bufsize: int,
        waiter: Optional[asyncio.Future[Any]] = None,
        extra: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None: ...
    def _start(
        self,
        args: Any,
        shell: bool,
        stdin: _FileArg,
        stdout: _FileArg,
        stderr: _FileArg,
        bufsize: int,
        **kwargs: Any,
    ) -> None: ...
    def _abandon(self) -> None: ...
    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None: ...
    def get_protocol(self) -> asyncio.BaseProtocol: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...
    def __del__(self, _warn: Callable[..., None] = ...) -> None: ...
    def get_pid(self) -> int: ...
    def get_returncode(self) -> Optional[int]: ...
    def get_pipe_transport(self, fd: int) -> Optional[asyncio.BaseTransport]: ...
    def _check_proc(self) -> None: ...
    def send_signal(self, signal: int) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    async def _connect_pipes(self, waiter: Optional[asyncio.Future[Any]]) -> None: ...
    def _call(self, cb: Callable[..., object], *data: Any) -> None: ...
    def _pipe_connection_lost(self, fd: int, exc: Optional[BaseException]) -> None: ...
    def _pipe_data_received(self, fd: int, data: bytes) -> None: ...
    def _process_exited(self, returncode: int) -> None: ...
    def _wake_waiters(self) -> None: ...
    async def _wait(self) -> int: ...
    def _try_finish(self) -> None: ...
    def _call_connection_lost(self, exc: Optional[BaseException]) -> None: ...

class SubprocessMixin:
    _fl_child_watches: Optional[Dict[int, _ChildWatch]]
    def close(self) -> None: ...
    def _fl_log_transport(self, level: int, msg: str, transport: asyncio.BaseTransport) -> None: ...
    def _make_read_pipe_transport(
        self,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: Optional[asyncio.Future[Any]] = None,
        extra: Optional[Dict[str, Any]] = None,
    ) -> _core.ReadPipeTransport: ...
    def _make_write_pipe_transport(
        self,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: Optional[asyncio.Future[Any]] = None,
        extra: Optional[Dict[str, Any]] = None,
    ) -> _core.WritePipeTransport: ...
    async def connect_read_pipe(
        self, protocol_factory: Callable[[], _P], pipe: Any
    ) -> Tuple[asyncio.ReadTransport, _P]: ...
    async def connect_write_pipe(
        self, protocol_factory: Callable[[], _P], pipe: Any
    ) -> Tuple[asyncio.WriteTransport, _P]: ...
    def _log_subprocess(
        self, msg: str, stdin: _FileArg, stdout: _FileArg, stderr: _FileArg
    ) -> None: ...
    async def subprocess_shell(
        self,
        protocol_factory: Callable[[], _P],
        cmd: _Cmd,
        *,
        stdin: _FileArg = ...,
        stdout: _FileArg = ...,
        stderr: _FileArg = ...,
        universal_newlines: bool = False,
        shell: bool = True,
        bufsize: int = 0,
        encoding: None = None,
        errors: None = None,
        text: Optional[bool] = None,
        **kwargs: Any,
    ) -> Tuple[asyncio.SubprocessTransport, _P]: ...
    async def subprocess_exec(
        self,
        protocol_factory: Callable[[], _P],
        program: Any,
        *args: Any,
        stdin: _FileArg = ...,
        stdout: _FileArg = ...,
        stderr: _FileArg = ...,
        universal_newlines: bool = False,
        shell: bool = False,
        bufsize: int = 0,
        encoding: None = None,
        errors: None = None,
        text: Optional[bool] = None,
        **kwargs: Any,
    ) -> Tuple[asyncio.SubprocessTransport, _P]: ...
    async def _make_subprocess_transport(
        self,
        protocol: asyncio.SubprocessProtocol,
        args: Any,
        shell: bool,
        stdin: _FileArg,
        stdout: _FileArg,
        stderr: _FileArg,
        bufsize: int,
        extra: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> SubprocessTransport: ...
