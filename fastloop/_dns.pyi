"""Typing stub for fastloop._dns (address resolution helpers)."""

import asyncio
import socket
from typing import Any, List, Optional, Sequence, Tuple, TypeVar, Union

_T = TypeVar("_T")
_SockAddr = Union[Tuple[str, int], Tuple[str, int, int, int]]
_AddrInfo = Tuple[int, int, int, str, _SockAddr]
_Host = Union[str, bytes, None]
_Port = Union[str, bytes, int, None]

__all__ = ("HAS_IPV6", "ipaddr_info", "interleave_addrinfos", "ensure_resolved")

HAS_IPV6: bool

def _scope_id(addr: str, zone: str) -> Optional[int]: ...
def ipaddr_info(
    host: _Host,
    port: _Port,
    family: int,
    type: int,
    proto: int,
    flowinfo: int = 0,
    scopeid: int = 0,
) -> Optional[_AddrInfo]: ...
def interleave_addrinfos(
    addrinfos: Sequence[Tuple[Any, ...]], first_address_family_count: int = 1
) -> List[Tuple[Any, ...]]: ...
async def ensure_resolved(
    loop: asyncio.AbstractEventLoop,
    address: Tuple[Any, ...],
    *,
    family: int = 0,
    type: int = ...,
    proto: int = 0,
    flags: int = 0,
) -> List[Tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]]: ...
