"""Typing stub for fastloop._udp (the datagram endpoints of fastloop.Loop).

Signatures follow asyncio.SelectorEventLoop on each Python version.
"""

import asyncio
import socket
import sys
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, Union

from . import _core

__all__ = ("DatagramMixin",)

_P = TypeVar("_P", bound=asyncio.BaseProtocol)
_Addr = Union[Tuple[str, int], str, None]

_PY311: bool
_PY313: bool
_DatagramTransport = _core.DatagramTransport
_unset: object

def _set_reuseport(sock: socket.socket) -> None: ...
def _check_sock_type(sock: socket.socket) -> None: ...

class DatagramMixin:
    def _make_datagram_transport(
        self,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: Optional[asyncio.Future[Any]] = None,
        extra: Optional[Dict[str, Any]] = None,
    ) -> _core.DatagramTransport: ...
    if sys.version_info >= (3, 11):
        async def create_datagram_endpoint(
            self,
            protocol_factory: Callable[[], _P],
            local_addr: _Addr = None,
            remote_addr: _Addr = None,
            *,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            reuse_port: Optional[bool] = None,
            allow_broadcast: Optional[bool] = None,
            sock: Optional[socket.socket] = None,
        ) -> Tuple[asyncio.DatagramTransport, _P]: ...
    else:
        async def create_datagram_endpoint(
            self,
            protocol_factory: Callable[[], _P],
            local_addr: _Addr = None,
            remote_addr: _Addr = None,
            *,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            reuse_address: Optional[bool] = ...,
            reuse_port: Optional[bool] = None,
            allow_broadcast: Optional[bool] = None,
            sock: Optional[socket.socket] = None,
        ) -> Tuple[asyncio.DatagramTransport, _P]: ...

    async def _fl_datagram_endpoint(
        self,
        protocol_factory: Callable[[], _P],
        local_addr: _Addr,
        remote_addr: _Addr,
        family: int,
        proto: int,
        flags: int,
        reuse_address: object,
        reuse_port: Optional[bool],
        allow_broadcast: Optional[bool],
        sock: Optional[socket.socket],
    ) -> Tuple[asyncio.DatagramTransport, _P]: ...
