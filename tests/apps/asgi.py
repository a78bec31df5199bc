"""A tiny ASGI app (no framework) for the uvicorn/gunicorn tests.

GET /loop     -> JSON {"loop": <module of the running loop's class>,
                       "class": <its qualified name>, "pid": <os.getpid()>}
GET /big?n=N  -> N bytes (b"x" * N), streamed in 64 KiB chunks
GET /sleep?t=S -> like /loop, after asyncio.sleep(S) (default 0.5)
GET /child    -> {"out", "rc", "pid"}: runs a Python child process
POST /echo    -> the request body
websocket /ws -> first message "loop:<module>", then echoes every text
                 message back until the client closes
"""
import asyncio
import json
import os
import sys


def _loop_info():
    loop = asyncio.get_running_loop()
    cls = type(loop)
    return {"loop": cls.__module__, "class": cls.__qualname__, "pid": os.getpid()}


async def _read_body(receive):
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            return body


async def _send(send, status, body, ctype=b"text/plain"):
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", ctype),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


async def _http(scope, receive, send):
    path = scope["path"]
    if path == "/loop":
        await _send(send, 200, json.dumps(_loop_info()).encode(),
                    b"application/json")
    elif path == "/sleep":
        secs = 0.5
        for part in scope.get("query_string", b"").split(b"&"):
            if part.startswith(b"t="):
                secs = float(part[2:])
        await asyncio.sleep(secs)
        await _send(send, 200, json.dumps(_loop_info()).encode(), b"application/json")
    elif path == "/child":
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import os; print('child of', os.getppid())",
            stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        body = {"out": out.decode().strip(), "rc": proc.returncode, "pid": os.getpid()}
        await _send(send, 200, json.dumps(body).encode(), b"application/json")
    elif path == "/echo":
        await _send(send, 200, await _read_body(receive))
    elif path == "/big":
        n = 1 << 20
        for part in scope.get("query_string", b"").split(b"&"):
            if part.startswith(b"n="):
                n = int(part[2:])
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream"),
                        (b"content-length", str(n).encode())],
        })
        chunk = b"x" * 65536
        left = n
        while left > 0:
            piece = chunk[:left]
            left -= len(piece)
            await send({"type": "http.response.body", "body": piece,
                        "more_body": left > 0})
        if n == 0:
            await send({"type": "http.response.body", "body": b""})
    else:
        await _send(send, 404, b"not found")


async def _websocket(scope, receive, send):
    msg = await receive()
    assert msg["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "loop:" + _loop_info()["loop"]})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg.get("bytes") or b""})


async def _lifespan(scope, receive, send):
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        await _http(scope, receive, send)
    elif kind == "websocket":
        await _websocket(scope, receive, send)
    elif kind == "lifespan":
        await _lifespan(scope, receive, send)
