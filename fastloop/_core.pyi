"""Typing stub for fastloop._core, the C half of fastloop's event loop.

See docs/internals.md. Normal code uses fastloop.Loop, not these names.
"""

import asyncio
import contextvars
import socket
import sys
from typing import Any, Callable, Coroutine, Dict, Final, Generator, Optional, Tuple, TypeVar, Union, final

from _typeshed import FileDescriptorLike

if sys.version_info >= (3, 11):
    from typing import TypeVarTuple, Unpack

    _Ts = TypeVarTuple("_Ts")

_T = TypeVar("_T")
_TaskCompatibleCoro = Union[Generator[Any, None, _T], Coroutine[Any, Any, _T]]
_TaskFactory = Callable[
    [asyncio.AbstractEventLoop, _TaskCompatibleCoro[Any]], "asyncio.Future[Any]"
]

POLLER: Final[str]
"""Name of the readiness backend ("epoll")."""
DEBUG_BUILD: Final[int]
"""1 when built with FASTLOOP_DEBUG=1."""

@final
class Handle(asyncio.Handle):
    """A callback scheduled by a fastloop Loop (asyncio's __slots__)."""

    def cancel(self) -> None: ...
    def _run(self) -> None: ...

@final
class TimerHandle(asyncio.TimerHandle):
    """A timed callback scheduled by a fastloop Loop."""

    def cancel(self) -> None: ...
    def _run(self) -> None: ...

class Loop:
    """The C core of fastloop's event loop."""

    slow_callback_duration: float
    _stopping: bool
    _debug: bool
    @property
    def _thread_id(self) -> Optional[int]: ...
    @property
    def _current_handle(self) -> Optional[asyncio.Handle]: ...
    @property
    def _closed(self) -> bool: ...
    @property
    def _clock_resolution(self) -> float: ...
    def time(self) -> float: ...
    if sys.version_info >= (3, 11):
        def call_soon(
            self,
            callback: Callable[[Unpack[_Ts]], object],
            /,
            *args: Unpack[_Ts],
            context: Optional[contextvars.Context] = None,
        ) -> Handle: ...
        def call_soon_threadsafe(
            self,
            callback: Callable[[Unpack[_Ts]], object],
            /,
            *args: Unpack[_Ts],
            context: Optional[contextvars.Context] = None,
        ) -> Handle: ...
        def call_later(
            self,
            delay: float,
            callback: Callable[[Unpack[_Ts]], object],
            /,
            *args: Unpack[_Ts],
            context: Optional[contextvars.Context] = None,
        ) -> TimerHandle: ...
        def call_at(
            self,
            when: float,
            callback: Callable[[Unpack[_Ts]], object],
            /,
            *args: Unpack[_Ts],
            context: Optional[contextvars.Context] = None,
        ) -> TimerHandle: ...
        def add_reader(
            self,
            fd: FileDescriptorLike,
            callback: Callable[[Unpack[_Ts]], Any],
            /,
            *args: Unpack[_Ts],
        ) -> None: ...
        def add_writer(
            self,
            fd: FileDescriptorLike,
            callback: Callable[[Unpack[_Ts]], Any],
            /,
            *args: Unpack[_Ts],
        ) -> None: ...
    else:
        def call_soon(
            self,
            callback: Callable[..., object],
            /,
            *args: Any,
            context: Optional[contextvars.Context] = None,
        ) -> Handle: ...
        def call_soon_threadsafe(
            self,
            callback: Callable[..., object],
            /,
            *args: Any,
            context: Optional[contextvars.Context] = None,
        ) -> Handle: ...
        def call_later(
            self,
            delay: float,
            callback: Callable[..., object],
            /,
            *args: Any,
            context: Optional[contextvars.Context] = None,
        ) -> TimerHandle: ...
        def call_at(
            self,
            when: float,
            callback: Callable[..., object],
            /,
            *args: Any,
            context: Optional[contextvars.Context] = None,
        ) -> TimerHandle: ...
        def add_reader(
            self, fd: FileDescriptorLike, callback: Callable[..., Any], /, *args: Any
        ) -> None: ...
        def add_writer(
            self, fd: FileDescriptorLike, callback: Callable[..., Any], /, *args: Any
        ) -> None: ...

    def remove_reader(self, fd: FileDescriptorLike, /) -> bool: ...
    def remove_writer(self, fd: FileDescriptorLike, /) -> bool: ...
    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle, /) -> None: ...
    def stop(self) -> None: ...
    def is_running(self) -> bool: ...
    def is_closed(self) -> bool: ...
    def get_debug(self) -> bool: ...
    def set_debug(self, enabled: bool, /) -> None: ...
    def create_future(self) -> asyncio.Future[Any]: ...
    def create_task(
        self,
        coro: _TaskCompatibleCoro[_T],
        /,
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
        **kwargs: Any,
    ) -> asyncio.Task[_T]: ...
    def set_task_factory(self, factory: Optional[_TaskFactory], /) -> None: ...
    def get_task_factory(self) -> Optional[_TaskFactory]: ...
    def _run(self) -> None: ...
    def _run_once(self) -> None: ...
    def _close_core(self) -> None: ...
    def _stats(self) -> Dict[str, Union[int, str]]: ...

class DatagramTransport(asyncio.DatagramTransport, asyncio.Transport):
    """A datagram (UDP or Unix) transport of a fastloop Loop
    (asyncio's _SelectorDatagramTransport in C; src/udp.c)."""

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: Optional[asyncio.Future[Any]] = None,
        extra: Optional[Dict[str, Any]] = None,
    ) -> None: ...
    @property
    def max_size(self) -> int: ...
    @property
    def _sock(self) -> Optional[socket.socket]: ...
    @property
    def _sock_fd(self) -> int: ...
    @property
    def _address(self) -> Any: ...
    @property
    def _conn_lost(self) -> int: ...
    @property
    def _closing(self) -> bool: ...
    @property
    def _loop(self) -> Optional[Loop]: ...
    @property
    def _protocol(self) -> Optional[asyncio.BaseProtocol]: ...
    @property
    def _paused(self) -> bool: ...
    @property
    def _protocol_paused(self) -> bool: ...
    @property
    def _buffer_size(self) -> int: ...
    def sendto(
        self, data: Union[bytes, bytearray, memoryview], addr: Any = None
    ) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def is_reading(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_write_buffer_limits(
        self, high: Optional[int] = None, low: Optional[int] = None
    ) -> None: ...
    def get_write_buffer_limits(self) -> Tuple[int, int]: ...
    def get_write_buffer_size(self) -> int: ...
    def set_protocol(self, protocol: asyncio.BaseProtocol, /) -> None: ...
    def get_protocol(self) -> asyncio.BaseProtocol: ...
    def _call_connection_lost(self, exc: Optional[BaseException], /) -> None: ...
    def _force_close(self, exc: Optional[BaseException], /) -> None: ...
    def _fatal_error(
        self, exc: BaseException, message: str = "Fatal error on transport"
    ) -> None: ...
    def _fl_start_reading(self) -> None: ...
    def _read_ready(self) -> None: ...
    def _sendto_ready(self) -> None: ...
