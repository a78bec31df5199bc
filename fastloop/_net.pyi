"""Typing stub for fastloop._net (the networking methods of fastloop.Loop).

Signatures follow asyncio.SelectorEventLoop on each Python version.
"""

import asyncio
import os
import socket
import ssl
import sys
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, TypeVar, Union

from ._server import Server
from ._sockops import SockOpsMixin

__all__ = ("NetworkMixin",)

_F = TypeVar("_F", bound=Callable[..., Any])
_P = TypeVar("_P", bound=asyncio.BaseProtocol)
_SSL = Union[bool, None, ssl.SSLContext]
_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_Host = Union[str, Sequence[str], None]

_PY311: bool
_PY312: bool
_PY313: bool

def _since(**versions: Tuple[int, int]) -> Callable[[_F], _F]: ...
def _new_ssl_protocol(
    loop: asyncio.AbstractEventLoop,
    app_protocol: asyncio.BaseProtocol,
    sslcontext: Optional[ssl.SSLContext],
    waiter: Optional[asyncio.Future[Any]],
    server_side: bool,
    server_hostname: Optional[str],
    ssl_handshake_timeout: Optional[float],
    ssl_shutdown_timeout: Optional[float],
    call_connection_made: bool = True,
) -> Any: ...
def _bind_error_text(exc: OSError) -> str: ...
def _set_reuseport(sock: socket.socket) -> None: ...
def _is_stream_transport(transport: object) -> bool: ...
def _protocol_paused(transport: asyncio.BaseTransport) -> bool: ...

class _PlainTaskLoop:
    _loop: asyncio.AbstractEventLoop
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None: ...
    def create_task(
        self, coro: Any, *, name: Optional[str] = None, context: Any = None
    ) -> asyncio.Task[Any]: ...
    def __getattr__(self, name: str) -> Any: ...

class _SendfileFallbackProtocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, transp: asyncio.Transport) -> None: ...
    async def drain(self) -> None: ...
    async def restore(self) -> None: ...

class NetworkMixin(SockOpsMixin):
    _fl_listeners: dict[socket.socket, Any]
    _unix_server_sockets: dict[socket.socket, int]
    def _fl_init_net(self) -> None: ...
    def _start_serving(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
        sslcontext: Optional[ssl.SSLContext] = None,
        server: Optional[Server] = None,
        backlog: int = 100,
        ssl_handshake_timeout: Optional[float] = ...,
        ssl_shutdown_timeout: Optional[float] = ...,
    ) -> None: ...
    def _stop_serving(self, sock: socket.socket) -> None: ...
    async def _ensure_resolved(
        self,
        address: Tuple[Any, ...],
        *,
        family: int = 0,
        type: int = ...,
        proto: int = 0,
        flags: int = 0,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> List[Tuple[Any, ...]]: ...
    async def _create_server_getaddrinfo(
        self, host: Optional[str], port: Optional[int], family: int, flags: int
    ) -> List[Tuple[Any, ...]]: ...
    def _make_socket_transport(
        self,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: Optional[asyncio.Future[Any]] = None,
        *,
        extra: Optional[dict[str, Any]] = None,
        server: Optional[Server] = None,
    ) -> asyncio.Transport: ...
    def _make_ssl_transport(
        self,
        rawsock: socket.socket,
        protocol: asyncio.BaseProtocol,
        sslcontext: Optional[ssl.SSLContext],
        waiter: Optional[asyncio.Future[Any]] = None,
        *,
        server_side: bool = False,
        server_hostname: Optional[str] = None,
        extra: Optional[dict[str, Any]] = None,
        server: Optional[Server] = None,
        ssl_handshake_timeout: Optional[float] = ...,
        ssl_shutdown_timeout: Optional[float] = ...,
    ) -> asyncio.Transport: ...
    def _fl_wrap_accepted_ssl(
        self,
        sslcontext: ssl.SSLContext,
        ssl_handshake_timeout: Optional[float],
        ssl_shutdown_timeout: Optional[float],
        protocol: asyncio.BaseProtocol,
    ) -> asyncio.BaseProtocol: ...
    def _fl_accepted_ssl_done(
        self, transport: Any, protocol: asyncio.BaseProtocol, waiter: asyncio.Future[Any]
    ) -> None: ...
    async def _create_connection_transport(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], _P],
        ssl: _SSL,
        server_hostname: Optional[str],
        server_side: bool = False,
        ssl_handshake_timeout: Optional[float] = None,
        ssl_shutdown_timeout: Optional[float] = None,
        *,
        _own_sock: bool = False,
    ) -> Tuple[asyncio.Transport, _P]: ...
    async def _connect_sock(
        self,
        exceptions: List[List[OSError]],
        addr_info: Tuple[Any, ...],
        local_addr_infos: Optional[Sequence[Tuple[Any, ...]]] = None,
    ) -> socket.socket: ...
    async def _fl_connect_any(
        self,
        host: Optional[str],
        port: Optional[int],
        family: int,
        proto: int,
        flags: int,
        local_addr: Optional[Tuple[str, int]],
        happy_eyeballs_delay: Optional[float],
        interleave: Optional[int],
        all_errors: bool,
    ) -> socket.socket: ...
    def _fl_bind_server_sockets(
        self,
        infos: Iterable[Tuple[Any, ...]],
        reuse_address: Optional[bool],
        reuse_port: Optional[bool],
        keep_alive: Optional[bool],
    ) -> List[socket.socket]: ...
    if sys.version_info >= (3, 12):
        async def create_connection(
            self,
            protocol_factory: Callable[[], _P],
            host: Optional[str] = None,
            port: Optional[int] = None,
            *,
            ssl: _SSL = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: Optional[socket.socket] = None,
            local_addr: Optional[Tuple[str, int]] = None,
            server_hostname: Optional[str] = None,
            ssl_handshake_timeout: Optional[float] = None,
            ssl_shutdown_timeout: Optional[float] = None,
            happy_eyeballs_delay: Optional[float] = None,
            interleave: Optional[int] = None,
            all_errors: bool = False,
        ) -> Tuple[asyncio.Transport, _P]: ...
    elif sys.version_info >= (3, 11):
        async def create_connection(
            self,
            protocol_factory: Callable[[], _P],
            host: Optional[str] = None,
            port: Optional[int] = None,
            *,
            ssl: _SSL = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: Optional[socket.socket] = None,
            local_addr: Optional[Tuple[str, int]] = None,
            server_hostname: Optional[str] = None,
            ssl_handshake_timeout: Optional[float] = None,
            ssl_shutdown_timeout: Optional[float] = None,
            happy_eyeballs_delay: Optional[float] = None,
            interleave: Optional[int] = None,
        ) -> Tuple[asyncio.Transport, _P]: ...
    else:
        async def create_connection(
            self,
            protocol_factory: Callable[[], _P],
            host: Optional[str] = None,
            port: Optional[int] = None,
            *,
            ssl: _SSL = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: Optional[socket.socket] = None,
            local_addr: Optional[Tuple[str, int]] = None,
            server_hostname: Optional[str] = None,
            ssl_handshake_timeout: Optional[float] = None,
            happy_eyeballs_delay: Optional[float] = None,
            interleave: Optional[int] = None,
        ) -> Tuple[asyncio.Transport, _P]: ...
    if sys.version_info >= (3, 11):
        async def connect_accepted_socket(
            self,
            protocol_factory: Callable[[], _P],
            sock: socket.socket,
            *,
            ssl: _SSL = None,
            ssl_handshake_timeout: Optional[float] = None,
            ssl_shutdown_timeout: Optional[float] = None,
        ) -> Tuple[asyncio.Transport, _P]: ...
        async def create_unix_connection(
            self,
            protocol_factory: Callable[[], _P],
            path: Optional[str] = None,
            *,
            ssl: _SSL = None,
            sock: Optional[socket.socket] = None,
            server_hostname: Optional[str] = None,
            ssl_handshake_timeout: Optional[float] = None,
            ssl_shutdown_timeout: Optional[float] = None,
        ) -> Tuple[asyncio.Transport, _P]: ...
        async def start_tls(
            self,
            transport: asyncio.BaseTransport,
            protocol: asyncio.BaseProtocol,
            sslcontext: ssl.SSLContext,
            *,
            server_side: bool = False,
            server_hostname: Optional[str] = None,
            ssl_handshake_timeout: Optional[float] = None,
            ssl_shutdown_timeout: Optional[float] = None,
        ) -> asyncio.Transport: ...
    else:
        async def connect_accepted_socket(
            self,
            protocol_factory: Callable[[], _P],
            sock: socket.socket,
            *,
            ssl: _SSL = None,
            ssl_handshake_timeout: Optional[float] = None,
        ) -> Tuple[asyncio.Transport, _P]: ...
        async def create_unix_connection(
            self,
            protocol_factory: Callable[[], _P],
            path: Optional[str] = None,
            *,
            ssl: _SSL = None,
            sock: Optional[socket.socket] = None,
            server_hostname: Optional[str] = None,
            ssl_handshake_timeout: Optional[float] = None,
        ) -> Tuple[asyncio.Transport, _P]: ...
        async def start_tls(
            self,
            transport: asyncio.BaseTransport,
            protocol: asyncio.BaseProtocol,
            sslcontext: ssl.SSLContext,
            *,
            server_side: bool = False,
            server_hostname: Optional[str] = None,
            ssl_handshake_timeout: Optional[float] = None,
        ) -> asyncio.Transport: ...
    if sys.version_info >= (3, 13):
        async def create_server(
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            host: _Host = None,
            port: Optional[int] = None,
            *,
            family: int = ...,
            flags: int = ...,
            sock: Optional[socket.socket] = None,
            backlog: int = 100,
            ssl: _SSL = None,
            reuse_address: Optional[bool] = None,
            reuse_port: Optional[bool] = None,
            keep_alive: Optional[bool] = None,
            ssl_handshake_timeout: Optional[float] = None,
            ssl_shutdown_timeout: Optional[float] = None,
            start_serving: bool = True,
        ) -> Server: ...
        async def create_unix_server(
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            path: Optional[_Path] = None,
            *,
            sock: Optional[socket.socket] = None,
            backlog: int = 100,
            ssl: _SSL = None,
            ssl_handshake_timeout: Optional[float] = None,
            ssl_shutdown_timeout: Optional[float] = None,
            start_serving: bool = True,
            cleanup_socket: bool = True,
        ) -> Server: ...
    elif sys.version_info >= (3, 11):
        async def create_server(
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            host: _Host = None,
            port: Optional[int] = None,
            *,
            family: int = ...,
            flags: int = ...,
            sock: Optional[socket.socket] = None,
            backlog: int = 100,
            ssl: _SSL = None,
            reuse_address: Optional[bool] = None,
            reuse_port: Optional[bool] = None,
            ssl_handshake_timeout: Optional[float] = None,
            ssl_shutdown_timeout: Optional[float] = None,
            start_serving: bool = True,
        ) -> Server: ...
        async def create_unix_server(
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            path: Optional[_Path] = None,
            *,
            sock: Optional[socket.socket] = None,
            backlog: int = 100,
            ssl: _SSL = None,
            ssl_handshake_timeout: Optional[float] = None,
            ssl_shutdown_timeout: Optional[float] = None,
            start_serving: bool = True,
        ) -> Server: ...
    else:
        async def create_server(
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            host: _Host = None,
            port: Optional[int] = None,
            *,
            family: int = ...,
            flags: int = ...,
            sock: Optional[socket.socket] = None,
            backlog: int = 100,
            ssl: _SSL = None,
            reuse_address: Optional[bool] = None,
            reuse_port: Optional[bool] = None,
            ssl_handshake_timeout: Optional[float] = None,
            start_serving: bool = True,
        ) -> Server: ...
        async def create_unix_server(
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            path: Optional[_Path] = None,
            *,
            sock: Optional[socket.socket] = None,
            backlog: int = 100,
            ssl: _SSL = None,
            ssl_handshake_timeout: Optional[float] = None,
            start_serving: bool = True,
        ) -> Server: ...
    async def sendfile(
        self,
        transport: asyncio.WriteTransport,
        file: Any,
        offset: int = 0,
        count: Optional[int] = None,
        *,
        fallback: bool = True,
    ) -> int: ...
    async def _sendfile_native(
        self, transp: asyncio.WriteTransport, file: Any, offset: int, count: Optional[int]
    ) -> int: ...
    async def _sendfile_fallback(
        self, transp: asyncio.WriteTransport, file: Any, offset: int, count: Optional[int]
    ) -> int: ...
