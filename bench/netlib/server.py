#!/usr/bin/env python3
"""The server side of bench/net.py: one server on one event loop.

    python bench/netlib/server.py --loop fastloop --server proto \
        --listen tcp:127.0.0.1:0
    python bench/netlib/server.py --loop uvloop --server http \
        --listen unix:/tmp/x.sock

It listens, prints one line "READY <addr>" (tcp: HOST:PORT, unix: PATH) on
stdout, and serves until SIGTERM or SIGINT (a loop signal handler stops the
loop), then prints "STATS errors=N" and exits.  Everything the loop's
exception handler receives is printed to stderr and counted: a loop that
reports errors under load is reported by net.py, not hidden behind its
throughput.

Servers (the same application code on every loop):
  proto     asyncio.Protocol echo: data_received -> transport.write(data)
  buffered  asyncio.BufferedProtocol echo into a 256 KiB bytearray
  streams   asyncio.start_server: reader.read(256 KiB) / writer.write /
            await writer.drain()
  sock      loop.sock_accept / sock_recv / sock_sendall, one task per client
  http      HTTP/1.1 on asyncio.Protocol: keep-alive, pipelining-safe,
            one fixed 13-byte response per request
  http_split  the same, each response written in two write() calls
            (header, then body), as servers that write headers first do
  afn_proto, afn_http  the proto and http servers through
            aiofastnet.create_server(loop, ...): aiofastnet's own transports
            over the loop's add_reader/add_writer (aiohttp 3.15+'s path)
  aiohttp   aiohttp.web hello world (AppRunner + TCPSite/UnixSite,
            access log off)
  uvicorn   uvicorn (httptools parser, lifespan and access log off)
            serving a plain ASGI hello world
"""
import argparse
import asyncio
import functools
import gc
import os
import signal
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bench/, for micro.loop_factory

import micro  # noqa: E402

READ_SIZE = 256 * 1024


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


# --buffer-offset: where in its memory page the BufferedProtocol's buffer
# starts (None: wherever bytearray(256 KiB) puts it, which is 16 bytes into
# a page with glibc).  A diagnostic: see docs/NOTES-perf.md.
BUFFER_OFFSET = None


def make_buffer():
    """(bytearray, start, what get_buffer() returns)."""
    if BUFFER_OFFSET is None:
        raw = bytearray(READ_SIZE)
        return raw, 0, raw
    import ctypes
    raw = bytearray(READ_SIZE + 8192)
    addr = ctypes.addressof((ctypes.c_char * len(raw)).from_buffer(raw))
    start = (BUFFER_OFFSET - addr) % 4096
    return raw, start, memoryview(raw)[start:start + READ_SIZE]


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    # As uvloop's examples/bench/echoserver.py: the slice copies, so the
    # next get_buffer() cannot overwrite data still queued for sending.
    def connection_made(self, transport):
        self.transport = transport
        self.raw, self.start, self.buffer = make_buffer()

    def get_buffer(self, sizehint):
        return self.buffer

    def buffer_updated(self, nbytes):
        start = self.start
        self.transport.write(self.raw[start:start + nbytes])


async def echo_streams(reader, writer):
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


RESPONSE = (b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Length: 13\r\n"
            b"\r\n"
            b"Hello, World!")


class HttpProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1: requests without bodies, keep-alive, pipelining."""

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        n = buf.count(b"\r\n\r\n")
        if n:
            end = buf.rfind(b"\r\n\r\n") + 4
            self.buf = buf[end:]
            self.respond(n)
        else:
            self.buf = buf

    def respond(self, n):
        self.transport.write(RESPONSE * n if n > 1 else RESPONSE)


RESPONSE_HEAD, RESPONSE_BODY = RESPONSE.split(b"\r\n\r\n")
RESPONSE_HEAD += b"\r\n\r\n"


class HttpSplitProtocol(HttpProtocol):
    """HttpProtocol writing each response's header and body separately."""

    def respond(self, n):
        write = self.transport.write
        for _ in range(n):
            write(RESPONSE_HEAD)
            write(RESPONSE_BODY)


# The servers that are a protocol class on create_server (afn_*: on
# aiofastnet.create_server).
PROTOCOLS = {"proto": EchoProtocol, "buffered": EchoBufferedProtocol,
             "http": HttpProtocol, "http_split": HttpSplitProtocol,
             "afn_proto": EchoProtocol, "afn_http": HttpProtocol}


async def sock_client(loop, conn):
    try:
        while True:
            data = await loop.sock_recv(conn, READ_SIZE)
            if not data:
                break
            await loop.sock_sendall(conn, data)
    except ConnectionError:
        pass
    finally:
        conn.close()


async def sock_server(loop, lsock):
    tasks = set()
    while True:
        conn, _ = await loop.sock_accept(lsock)
        conn.setblocking(False)
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = loop.create_task(sock_client(loop, conn))
        tasks.add(t)
        t.add_done_callback(tasks.discard)


def make_listen_socket(spec):
    kind, _, rest = spec.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        # proto IPPROTO_TCP, as getaddrinfo() gives when a loop makes the
        # socket itself: asyncio sets TCP_NODELAY on accepted sockets only
        # then (a proto-0 socket would cost asyncio's uvicorn server ~40 ms
        # of delayed ACK per response; fastloop and uvloop set it anyway).
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    elif kind == "unix":
        if os.path.exists(rest):
            os.unlink(rest)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(rest)
    else:
        raise SystemExit("bad --listen %r (tcp:HOST:PORT or unix:PATH)" % spec)
    sock.setblocking(False)
    return sock


def addr_text(sock):
    a = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return a
    return "%s:%d" % (a[0], a[1])


BACKLOG = 1024


async def start(loop, kind, lsock):
    """Start serving on lsock; returns a closer coroutine function."""
    if kind in PROTOCOLS:
        if kind.startswith("afn_"):
            import aiofastnet

            create_server = functools.partial(aiofastnet.create_server, loop)
        else:
            create_server = loop.create_server
        srv = await create_server(PROTOCOLS[kind], sock=lsock, backlog=BACKLOG)

        async def close():
            srv.close()
        return close
    if kind == "streams":
        if lsock.family == socket.AF_UNIX:
            srv = await asyncio.start_unix_server(echo_streams, sock=lsock,
                                                  backlog=BACKLOG)
        else:
            srv = await asyncio.start_server(echo_streams, sock=lsock,
                                             backlog=BACKLOG)

        async def close():
            srv.close()
        return close
    if kind == "sock":
        lsock.listen(BACKLOG)
        task = loop.create_task(sock_server(loop, lsock))

        async def close():
            task.cancel()
        return close
    if kind == "aiohttp":
        from aiohttp import web

        async def hello(request):
            return web.Response(text="Hello, World!")

        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.SockSite(runner, lsock, backlog=BACKLOG)
        await site.start()

        async def close():
            await runner.cleanup()
        return close
    if kind == "uvicorn":
        return await start_uvicorn(lsock)
    raise SystemExit("unknown server %r" % kind)


async def hello_asgi(scope, receive, send):
    """The ASGI hello world: 13 bytes with a Content-Length."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", b"13")]})
    await send({"type": "http.response.body", "body": b"Hello, World!"})


async def start_uvicorn(lsock):
    import uvicorn

    config = uvicorn.Config(hello_asgi, http="httptools", lifespan="off",
                            access_log=False, log_level="warning",
                            backlog=BACKLOG)
    server = uvicorn.Server(config)
    # uvicorn.Server.serve() installs its own SIGINT/SIGTERM handlers while
    # it runs; main() installs the loop's after this returns, so a signal
    # stops the loop as for every other server.
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[lsock]))
    while not server.started:
        if task.done():
            task.result()
            raise SystemExit("uvicorn exited before serving")
        await asyncio.sleep(0.01)

    async def close():
        server.should_exit = True
        await asyncio.wait_for(task, 5)
    return close


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loop", required=True, choices=micro.LOOP_KINDS)
    p.add_argument("--server", required=True,
                   choices=["proto", "buffered", "streams", "sock", "http",
                            "http_split", "afn_proto", "afn_http", "aiohttp",
                            "uvicorn"])
    p.add_argument("--listen", default="tcp:127.0.0.1:0",
                   help="tcp:HOST:PORT or unix:PATH (default tcp:127.0.0.1:0)")
    p.add_argument("--no-gc", action="store_true",
                   help="disable the cyclic GC once serving (default: on; "
                        "each server is its own process, so no loop pays for "
                        "another's garbage)")
    p.add_argument("--buffer-offset", type=int, metavar="N",
                   help="buffered: start the receive buffer N bytes into a page "
                        "(diagnostic)")
    args = p.parse_args(argv)
    global BUFFER_OFFSET
    BUFFER_OFFSET = args.buffer_offset

    factory, _ = micro.loop_factory(args.loop)
    loop = factory()
    loop.set_debug(False)
    asyncio.set_event_loop(loop)
    errors = [0]

    def on_error(loop, context):
        errors[0] += 1
        if errors[0] <= 5:
            msg = context.get("message", "")
            exc = context.get("exception")
            sys.stderr.write("server: loop error: %s %r\n" % (msg, exc))
            sys.stderr.flush()

    loop.set_exception_handler(on_error)
    lsock = make_listen_socket(args.listen)
    close = loop.run_until_complete(start(loop, args.server, lsock))
    stop = loop.stop
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    gc.collect()
    if args.no_gc:
        gc.disable()
    sys.stdout.write("READY %s\n" % addr_text(lsock))
    sys.stdout.flush()
    try:
        loop.run_forever()
    finally:
        gc.enable()
        try:
            loop.run_until_complete(close())
        except Exception as exc:  # shutdown problems are not the benchmark's
            sys.stderr.write("server: shutdown: %r\n" % (exc,))
        sys.stdout.write("STATS errors=%d\n" % errors[0])
        sys.stdout.flush()
        # Skip closing the loop and the interpreter's teardown: connections
        # may still be open, and their cleanup is not what is measured.
        os._exit(0)


if __name__ == "__main__":
    main()
