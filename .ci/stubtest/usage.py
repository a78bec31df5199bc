"""Typing examples for fastloop's stubs, checked by `mypy --strict` in
.ci/jobs/stubtest (never run).  Each line states what a user's type checker
must infer; a `# type: ignore[code]` marks a call that must be an error
(--strict has warn_unused_ignores, so an ignore that matches no error
fails the check)."""

import asyncio
import socket
import sys
from typing import Any, List, Tuple

import fastloop
from fastloop import _core


async def answer() -> int:
    await asyncio.sleep(0)
    return 42


def on_value(x: int, y: str) -> None:
    pass


class Echo(asyncio.Protocol):
    pass


class Datagrams(asyncio.DatagramProtocol):
    pass


async def main(loop: fastloop.Loop) -> None:
    # Scheduling: callbacks are checked against their arguments (3.11+:
    # TypeVarTuple), handles are asyncio's types.
    h: asyncio.Handle = loop.call_soon(on_value, 1, "a")
    t: asyncio.TimerHandle = loop.call_later(0.1, on_value, 1, "a")
    t2: asyncio.TimerHandle = loop.call_at(loop.time() + 1, on_value, 1, "a")
    h2: asyncio.Handle = loop.call_soon_threadsafe(on_value, 1, "a")
    for x in (h, t, t2, h2):
        x.cancel()
    if sys.version_info >= (3, 11):
        loop.call_soon(on_value, "not an int", "a")  # type: ignore[arg-type]
    fut: asyncio.Future[Any] = loop.create_future()
    fut.cancel()
    task: asyncio.Task[int] = loop.create_task(answer(), name="answer")
    n: int = await task
    debug: bool = loop.get_debug()
    running: bool = loop.is_running()
    loop.set_debug(debug and running and n == 42)

    # Networking (the mixins' methods, typed as asyncio.AbstractEventLoop's).
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    tr, proto = await loop.create_connection(Echo, "127.0.0.1", port)
    echo: Echo = proto
    transport: asyncio.Transport = tr
    transport.close()
    server.close()
    await server.wait_closed()
    dtr, dproto = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
    dtransport: asyncio.DatagramTransport = dtr
    dtransport.close()
    data: bytes = await loop.sock_recv(socket.socket(), 10)
    infos: List[Tuple[Any, ...]] = await loop.getaddrinfo("localhost", 80)
    del echo, dproto, data, infos


def runners() -> None:
    result: int = fastloop.run(answer())
    fastloop.run(answer(), debug=True)
    loop: fastloop.Loop = fastloop.new_event_loop()
    loop.close()
    if sys.version_info >= (3, 12):
        result = asyncio.run(answer(), loop_factory=fastloop.new_event_loop)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=fastloop.new_event_loop) as runner:
            result = runner.run(answer())
    policy: asyncio.AbstractEventLoopPolicy = fastloop.EventLoopPolicy()
    del policy, result
    fastloop.run(answer)  # type: ignore[arg-type]
    version: str = fastloop.__version__
    poller: str = _core.POLLER
    del version, poller
