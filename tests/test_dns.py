"""loop.getaddrinfo / loop.getnameinfo.

Every test runs on fastloop and on asyncio's SelectorEventLoop (the `loop`
fixture) and compares with the socket module's answer.  Only numeric hosts
and 'localhost' (from /etc/hosts) are resolved, and errors are provoked with
AI_NUMERICHOST / unknown service names, so no query ever leaves the machine.
"""
import asyncio
import socket

import pytest

from conftest import run
from nethelpers import needs_ipv6


def _ga(*args, **kw):
    return socket.getaddrinfo(*args, **kw)


@pytest.mark.parametrize(
    "host,port,kw",
    [
        ("127.0.0.1", 80, dict(type=socket.SOCK_STREAM)),
        ("127.0.0.1", "80", dict(type=socket.SOCK_STREAM)),
        ("127.0.0.1", 0, {}),
        ("127.0.0.1", None, dict(family=socket.AF_INET)),
        (b"127.0.0.1", b"443", dict(type=socket.SOCK_STREAM)),
        ("127.0.0.1", 53, dict(type=socket.SOCK_DGRAM)),
        ("127.0.0.1", 80, dict(proto=socket.IPPROTO_TCP)),
        ("127.0.0.1", 80, dict(flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)),
        ("localhost", 80, dict(type=socket.SOCK_STREAM)),
        ("localhost", "http", dict(type=socket.SOCK_STREAM)),
        ("localhost", 0, {}),
        (None, 8080, dict(flags=socket.AI_PASSIVE, type=socket.SOCK_STREAM)),
        (None, 8080, dict(type=socket.SOCK_STREAM)),
    ],
)
def test_getaddrinfo_matches_socket(loop, host, port, kw):
    async def main():
        return await loop.getaddrinfo(host, port, **kw)

    got = run(loop, main())
    assert isinstance(got, list)
    assert got == _ga(host, port, **kw)
    for family, type_, proto, canon, addr in got:
        assert isinstance(family, socket.AddressFamily)
        assert isinstance(type_, socket.SocketKind)


@needs_ipv6
@pytest.mark.parametrize(
    "host,kw",
    [
        ("::1", dict(type=socket.SOCK_STREAM)),
        ("::1", dict(family=socket.AF_INET6)),
        ("::ffff:127.0.0.1", dict(type=socket.SOCK_STREAM)),
        ("fe80::1%lo", dict(type=socket.SOCK_STREAM)),
        ("fe80::1%lo", {}),
        ("fe80::1%1", dict(type=socket.SOCK_STREAM)),
        ("fe80::1%lo", dict(family=socket.AF_INET6, type=socket.SOCK_STREAM)),
    ],
)
def test_getaddrinfo_ipv6_matches_socket(loop, host, kw):
    async def main():
        return await loop.getaddrinfo(host, 443, **kw)

    got = run(loop, main())
    assert got == _ga(host, 443, **kw)


def test_getaddrinfo_ipv6_scope_id_preserved(loop):
    lo = socket.if_nametoindex("lo")

    async def main():
        return await loop.getaddrinfo("fe80::1%lo", 80, type=socket.SOCK_STREAM)

    got = run(loop, main())
    assert len(got) == 1
    family, _, _, _, addr = got[0]
    assert family == socket.AF_INET6
    assert addr == ("fe80::1", 80, 0, lo)  # (host, port, flowinfo, scope_id)
    assert got == _ga("fe80::1%lo", 80, type=socket.SOCK_STREAM)


def test_getaddrinfo_many_concurrent(loop):
    hosts = ["127.0.0.1", "localhost", "127.0.0.2", "10.1.2.3"] * 25

    async def main():
        return await asyncio.gather(
            *(loop.getaddrinfo(h, i, type=socket.SOCK_STREAM) for i, h in enumerate(hosts))
        )

    got = run(loop, main())
    assert got == [_ga(h, i, type=socket.SOCK_STREAM) for i, h in enumerate(hosts)]


def test_getaddrinfo_keyword_only(loop):
    async def main():
        with pytest.raises(TypeError):
            await loop.getaddrinfo("127.0.0.1", 80, socket.AF_INET)

    run(loop, main())


def _gaierror_of(*args, **kw):
    with pytest.raises(socket.gaierror) as ei:
        socket.getaddrinfo(*args, **kw)
    return ei.value


@pytest.mark.parametrize(
    "host,port,kw",
    [
        # Not numeric, but only numeric hosts allowed: no lookup is made.
        ("not-a-number.invalid", 80, dict(flags=socket.AI_NUMERICHOST)),
        ("256.1.1.1", 80, dict(flags=socket.AI_NUMERICHOST)),
        ("fe80::1%no-such-if0", 80, dict(flags=socket.AI_NUMERICHOST)),
        # Unknown service name (/etc/services).
        ("127.0.0.1", "no-such-service-xyz", dict(type=socket.SOCK_STREAM)),
        # Non-numeric service with AI_NUMERICSERV.
        ("127.0.0.1", "http", dict(flags=socket.AI_NUMERICSERV)),
        # Neither host nor port.
        (None, None, {}),
    ],
)
def test_getaddrinfo_errors_are_gaierror(loop, host, port, kw):
    expected = _gaierror_of(host, port, **kw)

    async def main():
        with pytest.raises(socket.gaierror) as ei:
            await loop.getaddrinfo(host, port, **kw)
        return ei.value

    exc = run(loop, main())
    assert type(exc) is socket.gaierror
    assert exc.errno == expected.errno
    assert isinstance(exc, OSError)


def test_getaddrinfo_cancelled(loop):
    async def main():
        for _ in range(20):
            task = loop.create_task(loop.getaddrinfo("localhost", 80))
            await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        # The loop still resolves afterwards.
        assert await loop.getaddrinfo("localhost", 80) == _ga("localhost", 80)

    run(loop, main())


# --------------------------------------------------------------------------
# getnameinfo


@pytest.mark.parametrize(
    "sockaddr,flags",
    [
        (("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
        (("127.0.0.1", 80), socket.NI_NUMERICHOST),
        (("127.0.0.1", 8080), 0),  # /etc/hosts: localhost
        (("127.0.0.1", 53), socket.NI_DGRAM | socket.NI_NUMERICHOST),
    ],
)
def test_getnameinfo_matches_socket(loop, sockaddr, flags):
    async def main():
        return await loop.getnameinfo(sockaddr, flags)

    got = run(loop, main())
    assert got == socket.getnameinfo(sockaddr, flags)
    assert isinstance(got, tuple) and len(got) == 2


@needs_ipv6
@pytest.mark.parametrize(
    "sockaddr",
    [("::1", 443, 0, 0), ("::1", 443), ("fe80::1", 80, 0, 1)],
)
def test_getnameinfo_ipv6(loop, sockaddr):
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV

    async def main():
        return await loop.getnameinfo(sockaddr, flags)

    got = run(loop, main())
    assert got == socket.getnameinfo(sockaddr, flags)


def test_getnameinfo_default_flags(loop):
    async def main():
        return await loop.getnameinfo(("127.0.0.1", 22))

    assert run(loop, main()) == socket.getnameinfo(("127.0.0.1", 22), 0)


def test_getnameinfo_errors(loop):
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    with pytest.raises(socket.gaierror) as ei:
        socket.getnameinfo(("not-numeric.invalid", 80), flags)
    expected_errno = ei.value.errno

    async def main():
        with pytest.raises(socket.gaierror) as ei:
            await loop.getnameinfo(("not-numeric.invalid", 80), flags)
        assert ei.value.errno == expected_errno
        with pytest.raises(TypeError):
            await loop.getnameinfo("127.0.0.1", flags)

    run(loop, main())


@pytest.mark.parametrize(
    "host,exc",
    [
        ("127.0.0.1\0", ValueError),
        (b"127.0.0.1\0", ValueError),
        (b"\xff", UnicodeError),
        (5, TypeError),
        (bytearray(b"127.0.0.1"), TypeError),
    ],
    ids=["nul", "bytes-nul", "bad-idna", "int", "bytearray"],
)
@pytest.mark.parametrize("meth", ["create_connection", "create_server", "sock_connect"])
def test_numeric_host_fast_path_errors(loop, meth, host, exc):
    # asyncio's _ipaddr_info raises for these instead of asking
    # getaddrinfo(), which would stop at the NUL byte and connect to (or
    # bind) 127.0.0.1.
    if meth == "create_server" and isinstance(host, (bytes, bytearray)):
        host = [host]  # create_server iterates a non-str host

    async def main():
        if meth == "sock_connect":
            with socket.socket() as s:
                s.setblocking(False)
                await loop.sock_connect(s, (host, 1))
        elif meth == "create_server":
            srv = await loop.create_server(asyncio.Protocol, host, 0)
            srv.close()
        else:
            await loop.create_connection(asyncio.Protocol, host, 1)

    with pytest.raises(exc):
        run(loop, main())
