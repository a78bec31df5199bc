"""Address resolution helpers for fastloop's networking methods.

``ipaddr_info`` is the numeric-host fast path that lets ``create_connection``,
``create_server`` and ``sock_connect`` skip the executor round trip of
``getaddrinfo`` when the host is already an IP address (asyncio's
``base_events._ipaddr_info``). Unlike asyncio it also handles IPv6 literals
with a zone index (``'fe80::1%eth0'``, ``'fe80::1%2'``): the result is the one
``socket.getaddrinfo`` gives (``('fe80::1', port, flowinfo, scope_id)``), and
whatever glibc would reject or treat differently goes to ``getaddrinfo``.
"""

import collections
import itertools
import socket

__all__ = (
    "HAS_IPV6",
    "ipaddr_info",
    "interleave_addrinfos",
    "ensure_resolved",
)

HAS_IPV6 = hasattr(socket, "AF_INET6")

_UINT32_MAX = 2**32 - 1


def _scope_id(addr, zone):
    """The scope id of IPv6 address ``addr`` (a str) for zone ``zone``.

    Mirrors glibc's ``__inet6_scopeid_pton``: an interface name is accepted
    for link-local unicast and node-/link-local multicast addresses, a
    decimal number for any address. None: let getaddrinfo() decide.
    """
    if not zone:
        return None
    if zone.isascii() and zone.isdigit():
        number = int(zone)
        return number if number <= _UINT32_MAX else None
    try:
        packed = socket.inet_pton(socket.AF_INET6, addr)
    except (OSError, ValueError):
        return None
    link_local = packed[0] == 0xFE and (packed[1] & 0xC0) == 0x80
    mc_scoped = packed[0] == 0xFF and (packed[1] & 0x0F) in (1, 2)
    if not (link_local or mc_scoped):
        return None
    try:
        return socket.if_nametoindex(zone)
    except (OSError, ValueError):
        return None


def ipaddr_info(host, port, family, type, proto, flowinfo=0, scopeid=0):
    """Resolve a numeric ``host`` without getaddrinfo(), or return None.

    Returns one addrinfo 5-tuple, as asyncio's ``_ipaddr_info`` does, when
    ``host`` is an IPv4/IPv6 literal, ``port`` a number (or empty) and
    ``type`` SOCK_STREAM or SOCK_DGRAM; None when getaddrinfo() must decide
    (names, service names, other socket types or protocols).
    """
    if host is None or proto not in (0, socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        return None
    if type == socket.SOCK_STREAM:
        proto = socket.IPPROTO_TCP
    elif type == socket.SOCK_DGRAM:
        proto = socket.IPPROTO_UDP
    else:
        return None

    if port is None or port == b"" or port == "":
        port = 0
    else:
        # A service name such as "http" needs getaddrinfo().
        try:
            port = int(port)
        except (TypeError, ValueError):
            return None

    if family == socket.AF_UNSPEC:
        families = (socket.AF_INET, socket.AF_INET6) if HAS_IPV6 else (socket.AF_INET,)
    else:
        families = (family,)

    # As asyncio: a host that cannot be decoded, is not a string or holds
    # a NUL byte is an error here (UnicodeError, TypeError, ValueError),
    # not something for getaddrinfo() (which would stop at the NUL).
    if isinstance(host, bytes):
        host = host.decode("idna")

    if "%" in host:
        # inet_pton() rejects zone indices: split the zone off ourselves.
        if (
            not isinstance(host, str)
            or not HAS_IPV6
            or socket.AF_INET6 not in families
        ):
            return None
        addr, _, zone = host.partition("%")
        try:
            socket.inet_pton(socket.AF_INET6, addr)
        except (OSError, ValueError):
            return None
        scope = _scope_id(addr, zone)
        if scope is None:
            return None
        return socket.AF_INET6, type, proto, "", (addr, port, flowinfo, scope)

    for af in families:
        try:
            socket.inet_pton(af, host)
        except OSError:
            continue
        if HAS_IPV6 and af == socket.AF_INET6:
            return af, type, proto, "", (host, port, flowinfo, scopeid)
        return af, type, proto, "", (host, port)
    return None


def interleave_addrinfos(addrinfos, first_address_family_count=1):
    """Reorder addrinfos so that address families alternate (RFC 8305).

    The first ``first_address_family_count`` entries of the first family are
    kept at the head (asyncio's ``_interleave_addrinfos``).
    """
    by_family = collections.OrderedDict()
    for info in addrinfos:
        by_family.setdefault(info[0], []).append(info)
    groups = list(by_family.values())

    result = []
    if first_address_family_count > 1 and groups:
        head = first_address_family_count - 1
        result.extend(groups[0][:head])
        del groups[0][:head]
    result.extend(
        info
        for info in itertools.chain.from_iterable(itertools.zip_longest(*groups))
        if info is not None
    )
    return result


async def ensure_resolved(
    loop, address, *, family=0, type=socket.SOCK_STREAM, proto=0, flags=0
):
    """Resolve ``address`` (a tuple starting with host, port) to addrinfos.

    BaseEventLoop._ensure_resolved: numeric hosts are resolved in place,
    anything else goes to ``loop.getaddrinfo()``.
    """
    host, port = address[:2]
    info = ipaddr_info(host, port, family, type, proto, *address[2:])
    if info is not None:
        return [info]
    return await loop.getaddrinfo(
        host, port, family=family, type=type, proto=proto, flags=flags
    )
