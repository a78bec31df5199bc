"""A small aiohttp application for tests/test_integrations.py.

    python -m tests.apps.aiohttp_app PORT     # web.run_app on fastloop
    gunicorn tests.apps.aiohttp_app:app_factory \\
        --worker-class fastloop.gunicorn.GunicornWorker

Routes:
  GET  /loop         {"loop": module of the running loop's class, "class",
                      "pid", "peer": the client's (host, port)}
  GET  /sleep?t=S    like /loop, after asyncio.sleep(S) (default 0.5)
  GET  /child        {"out", "rc", "pid"}: runs a Python child process
  POST /echo         the request body
  GET  /big?n=N      N bytes streamed in 64 KiB writes (StreamResponse)
  GET  /file?n=N     FileResponse of an N-byte file (goes through
                     loop.sendfile)
  GET  /ws           websocket: "loop:<module>" first, then echoes text
"""
import asyncio
import os
import sys
import tempfile

from aiohttp import web

CHUNK = 65536
# aiohttp 3.9+ wants typed keys for application state.
FILES = web.AppKey("files", dict) if hasattr(web, "AppKey") else "files"


def pattern(n):
    """The bytes /big and /file serve: 0..255 repeated."""
    block = bytes(range(256)) * (CHUNK // 256)
    reps, rest = divmod(n, CHUNK)
    return block * reps + block[:rest]


def _loop_info(request=None):
    cls = type(asyncio.get_running_loop())
    info = {"loop": cls.__module__, "class": cls.__qualname__, "pid": os.getpid()}
    if request is not None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        info["peer"] = list(peer) if peer else None
    return info


async def loop_info(request):
    return web.json_response(_loop_info(request))


async def sleep(request):
    await asyncio.sleep(float(request.query.get("t", 0.5)))
    return web.json_response(_loop_info(request))


async def child(request):
    """Run a child process (asyncio.create_subprocess_exec) and return its
    output: subprocesses from inside a server worker."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import os; print('child of', os.getppid())",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return web.json_response({"out": out.decode().strip(), "rc": proc.returncode,
                              "pid": os.getpid()})


async def echo(request):
    return web.Response(body=await request.read())


async def big(request):
    n = int(request.query.get("n", 1 << 20))
    resp = web.StreamResponse()
    resp.content_length = n
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    data = pattern(min(n, CHUNK))
    left = n
    while left > 0:
        piece = data[:left]
        await resp.write(piece)
        left -= len(piece)
    await resp.write_eof()
    return resp


async def file(request):
    n = int(request.query.get("n", 1 << 20))
    files = request.app[FILES]
    path = files.get(n)
    if path is None:
        fd, path = tempfile.mkstemp(prefix="fastloop-aiohttp-")
        with os.fdopen(fd, "wb") as f:
            f.write(pattern(n))
        files[n] = path
    return web.FileResponse(path)


async def ws(request):
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    await sock.send_str("loop:" + _loop_info()["loop"])
    async for msg in sock:
        if msg.type == web.WSMsgType.TEXT:
            await sock.send_str(msg.data)
        elif msg.type == web.WSMsgType.BINARY:
            await sock.send_bytes(msg.data)
    return sock


async def _cleanup_files(app):
    for path in app[FILES].values():
        try:
            os.unlink(path)
        except OSError:
            pass


def make_app():
    app = web.Application(client_max_size=64 << 20)
    app[FILES] = {}
    app.router.add_get("/loop", loop_info)
    app.router.add_get("/sleep", sleep)
    app.router.add_get("/child", child)
    app.router.add_post("/echo", echo)
    app.router.add_get("/big", big)
    app.router.add_get("/file", file)
    app.router.add_get("/ws", ws)
    app.on_cleanup.append(_cleanup_files)
    return app


async def app_factory():
    """For gunicorn: aiohttp's worker accepts a coroutine returning the app."""
    return make_app()


def main(argv):
    import fastloop

    port = int(argv[1]) if len(argv) > 1 else 8080
    web.run_app(make_app(), host="127.0.0.1", port=port,
                loop=fastloop.new_event_loop(),
                print=lambda *a: print(*a, flush=True))


if __name__ == "__main__":
    main(sys.argv)
