"""Typing stub for fastloop._sockops (the loop.sock_* coroutines)."""

import asyncio
import socket
from typing import Any, Dict, List, Optional, Tuple

from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ("SockOpsMixin", "check_ssl_socket")

_SENDFILE_MAX: int

def check_ssl_socket(sock: socket.socket) -> None: ...
def _byte_view(data: ReadableBuffer) -> memoryview: ...

class SockOpsMixin:
    _fl_sock_readers: Optional[Dict[int, asyncio.Future[Any]]]
    _fl_sock_writers: Optional[Dict[int, asyncio.Future[Any]]]
    def _fl_init_sockops(self) -> None: ...
    def _fl_check_sock(self, sock: socket.socket) -> None: ...
    def _fl_wait_readable(
        self, fut: asyncio.Future[Any], sock: socket.socket, callback: Any, *args: Any
    ) -> None: ...
    def _fl_read_done(self, fd: int, fut: asyncio.Future[Any]) -> None: ...
    def _fl_wait_writable(
        self, fut: asyncio.Future[Any], sock: socket.socket, callback: Any, *args: Any
    ) -> None: ...
    def _fl_write_done(self, fd: int, fut: asyncio.Future[Any]) -> None: ...
    async def sock_recv(self, sock: socket.socket, n: int) -> bytes: ...
    async def sock_recv_into(self, sock: socket.socket, buf: WriteableBuffer) -> int: ...
    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> Tuple[bytes, Any]: ...
    async def sock_recvfrom_into(
        self, sock: socket.socket, buf: WriteableBuffer, nbytes: int = 0
    ) -> Tuple[int, Any]: ...
    async def sock_sendall(self, sock: socket.socket, data: ReadableBuffer) -> None: ...
    async def sock_sendto(
        self, sock: socket.socket, data: ReadableBuffer, address: Any
    ) -> int: ...
    async def sock_connect(self, sock: socket.socket, address: Any) -> None: ...
    async def sock_accept(self, sock: socket.socket) -> Tuple[socket.socket, Any]: ...
    async def sock_sendfile(
        self,
        sock: socket.socket,
        file: Any,
        offset: int = 0,
        count: Optional[int] = None,
        *,
        fallback: bool = True,
    ) -> int: ...
    def _check_sendfile_params(
        self, sock: socket.socket, file: Any, offset: int, count: Optional[int]
    ) -> None: ...
    async def _sock_sendfile_native(
        self, sock: socket.socket, file: Any, offset: int, count: Optional[int]
    ) -> int: ...
    async def _sock_sendfile_fallback(
        self, sock: socket.socket, file: Any, offset: int, count: Optional[int]
    ) -> int: ...

class _SendfileState:
    loop: asyncio.AbstractEventLoop
    sock: socket.socket
    fd: int
    fileno: int
    offset: int
    count: Optional[int]
    blocksize: int
    sent: int
    fut: asyncio.Future[int]
    registered: bool
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        fileno: int,
        offset: int,
        count: Optional[int],
        blocksize: int,
    ) -> None: ...
    def step(self) -> None: ...
