"""fastloop under real frameworks: uvicorn, aiohttp, gunicorn, pytest-asyncio,
anyio, each run for real (servers in subprocesses, real HTTP and websocket
clients).  Every test skips when its package is not installed (the ``test``
extra installs them all).

The commands run here are the ones docs/frameworks.md gives.
"""
import asyncio
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest
from nethelpers import certs  # noqa: F401 (fixture)

import fastloop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
FASTLOOP_MODULE = "fastloop._loop"  # type(loop).__module__ of a fastloop loop

pytestmark = pytest.mark.timeout(90)


def need(module):
    """Import ``module`` or skip the test (the test extra installs it)."""
    return pytest.importorskip(module, reason="%s is not installed" % module)


def run_on_fastloop(coro):
    """The way a program picks fastloop on this Python: asyncio.run with a
    loop factory (3.12+), else fastloop.run."""
    if sys.version_info >= (3, 12):
        return asyncio.run(coro, loop_factory=fastloop.new_event_loop)
    return fastloop.run(coro)


def child_env():
    env = dict(os.environ)
    # The checkout first: `fastloop` and `tests.apps` import from it.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server command in a subprocess, on a free port of 127.0.0.1.

    ``argv`` may contain "{port}".  start() waits until the port accepts
    connections; stop() sends ``stop_signal`` and returns the exit code.
    Output (stdout and stderr together) is in ``.output()``.
    """

    def __init__(self, argv, stop_signal=signal.SIGINT, ready_timeout=30.0,
                 ready_ssl=None):
        self.argv_template = argv
        # A TLS server is probed with a full handshake: a bare connect and
        # close is a failed handshake to it (see
        # test_tls_server_port_probe_is_silent).
        self.ready_ssl = ready_ssl
        self.stop_signal = stop_signal
        self.ready_timeout = ready_timeout
        self.proc = None
        self.port = None
        self._out = None

    def output(self):
        if self._out is None:
            return ""
        self._out.seek(0)
        return self._out.read().decode("utf-8", "replace")

    def start(self):
        for _attempt in range(3):
            self.port = free_port()
            argv = [a.replace("{port}", str(self.port)) for a in self.argv_template]
            self._out = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=child_env(), stdin=subprocess.DEVNULL,
                stdout=self._out, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return self
            out = self.output()
            self.kill()
            if "already in use" not in out:  # else: lost the port race, retry
                pytest.fail("server did not start: %s\n%s" % (" ".join(argv), out))
            self._out.close()
        pytest.fail("no free port after 3 attempts")

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            except OSError:
                time.sleep(0.05)
                continue
            with sock:
                if self.ready_ssl is None:
                    return True
                sock.settimeout(10)
                self.ready_ssl.wrap_socket(sock, server_hostname="localhost").close()
                return True
        return False

    def stop(self, timeout=20.0):
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail("server did not exit on %s:\n%s" % (
                    signal.Signals(self.stop_signal).name, self.output()))
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        if self._out is not None:
            self._out.close()


def http_request(port, method, path, body=None, headers=None, conn=None):
    """One request with http.client; returns (status, headers, body).  With
    ``conn``, on that (keep-alive) connection."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        if own:
            conn.close()


def slow_read(port, path, n, slow_for=0.5):
    """GET path with a small receive buffer, reading slowly at first: the
    server's transport fills up and must pause and resume writing.  Returns
    (status line, body)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
                   % path).encode())
        got = bytearray()
        t0 = time.monotonic()
        while time.monotonic() - t0 < slow_for:
            data = s.recv(1024)
            if not data:
                break
            got += data
            time.sleep(0.002)
        while True:
            data = s.recv(1 << 20)
            if not data:
                break
            got += data
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def get_json(port, path="/loop", conn=None, headers=None):
    status, _, body = http_request(port, "GET", path, conn=conn, headers=headers)
    assert status == 200, body
    return json.loads(body)


def _aiohttp_app():
    # tests/apps is a package of the checkout; tests/ itself is on sys.path
    # too (pytest's rootdir conftest), whichever way pytest was started.
    try:
        from tests.apps import aiohttp_app
    except ImportError:
        from apps import aiohttp_app
    return aiohttp_app.make_app, aiohttp_app.pattern


def assert_clean_output(out):
    assert "Traceback" not in out, out
    assert "Exception in callback" not in out, out
    assert "Task exception was never retrieved" not in out, out


# ---------------------------------------------------------------------------
# uvicorn: uvicorn app:app --loop fastloop:new_event_loop
# ---------------------------------------------------------------------------


def _ws_client_roundtrip(port):
    """websockets' own client, itself running on fastloop."""
    need("websockets")
    try:
        from websockets.asyncio.client import connect  # websockets >= 13
    except ImportError:  # pragma: no cover - older websockets
        from websockets import connect

    async def main():
        assert isinstance(asyncio.get_running_loop(), fastloop.Loop)
        async with connect("ws://127.0.0.1:%d/ws" % port) as ws:
            first = await asyncio.wait_for(ws.recv(), 10)
            replies = []
            for text in ("hello", "x" * 100000, "bye"):
                await ws.send(text)
                replies.append(await asyncio.wait_for(ws.recv(), 10))
            return first, replies

    return run_on_fastloop(main())


@pytest.mark.parametrize("http_impl", ["h11", "httptools"])
def test_uvicorn_command_line(http_impl):
    need("uvicorn")
    need("websockets")
    need(http_impl)
    import uvicorn

    if tuple(int(x) for x in uvicorn.__version__.split(".")[:2]) < (0, 36):
        pytest.skip("uvicorn %s: --loop module:attr needs 0.36+" % uvicorn.__version__)
    argv = [PY, "-m", "uvicorn", "tests.apps.asgi:app",
            "--loop", "fastloop:new_event_loop", "--http", http_impl,
            "--host", "127.0.0.1", "--port", "{port}", "--ws", "websockets"]
    with Server(argv) as srv:
        port = srv.port
        info = get_json(port)
        assert info["loop"] == FASTLOOP_MODULE, info
        assert info["pid"] == srv.proc.pid

        # Keep-alive: several requests on one connection.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            for _ in range(3):
                assert get_json(port, conn=conn)["loop"] == FASTLOOP_MODULE
            body = os.urandom(1 << 20)
            status, _, echoed = http_request(port, "POST", "/echo", body=body, conn=conn)
            assert status == 200 and echoed == body
            status, headers, data = http_request(port, "GET", "/big?n=%d" % (5 << 20), conn=conn)
            assert status == 200 and len(data) == 5 << 20 and data == b"x" * (5 << 20)
        finally:
            conn.close()

        first, replies = _ws_client_roundtrip(port)
        assert first == "loop:" + FASTLOOP_MODULE
        assert replies == ["hello", "x" * 100000, "bye"]

        # A slow reader: the server must pause and resume writing.
        n = 8 << 20
        status, body = slow_read(port, "/big?n=%d" % n, n)
        assert status == b"HTTP/1.1 200 OK" and body == b"x" * n

        rc = srv.stop()
        out = srv.output()
    assert rc == 0, out
    assert "Finished server process" in out, out
    assert_clean_output(out)


@pytest.mark.parametrize("mode", ["run", "serve"])
def test_uvicorn_from_python(mode):
    """uvicorn.run(app, loop="fastloop:new_event_loop"), and
    uvicorn.Server(config).serve() in a program that runs on fastloop."""
    need("uvicorn")
    with Server([PY, "-m", "tests.apps.uvicorn_run", mode, "{port}"]) as srv:
        assert get_json(srv.port)["loop"] == FASTLOOP_MODULE
        rc = srv.stop()
        out = srv.output()
    assert rc == 0, out
    assert "Finished server process" in out, out
    assert_clean_output(out)


def test_uvicorn_tls(certs):  # noqa: F811
    """HTTPS: uvicorn's TLS server on fastloop; clients: the stdlib and
    aiohttp's client on fastloop (by host name: getaddrinfo, happy eyeballs)."""
    need("uvicorn")
    certfile, keyfile = certs
    argv = [PY, "-m", "uvicorn", "tests.apps.asgi:app",
            "--loop", "fastloop:new_event_loop", "--host", "127.0.0.1",
            "--port", "{port}", "--ssl-certfile", certfile, "--ssl-keyfile", keyfile]
    ctx = ssl.create_default_context(cafile=certfile)
    with Server(argv, ready_ssl=ctx) as srv:
        conn = http.client.HTTPSConnection("localhost", srv.port, timeout=15, context=ctx)
        try:
            for _ in range(2):  # keep-alive over TLS
                assert get_json(srv.port, conn=conn)["loop"] == FASTLOOP_MODULE
            body = os.urandom(3 << 20)
            status, _, echoed = http_request(srv.port, "POST", "/echo", body=body, conn=conn)
            assert status == 200 and echoed == body
        finally:
            conn.close()

        if _importable("aiohttp"):
            import aiohttp

            async def client():
                async with aiohttp.ClientSession() as session:
                    url = "https://localhost:%d" % srv.port
                    async with session.get(url + "/loop", ssl=ctx) as resp:
                        info = await resp.json()
                    async with session.get(url + "/big?n=%d" % (4 << 20), ssl=ctx) as resp:
                        data = await resp.read()
                    return info, data

            info, data = run_on_fastloop(client())
            assert info["loop"] == FASTLOOP_MODULE
            assert data == b"x" * (4 << 20)
        rc = srv.stop()
        out = srv.output()
    assert rc == 0, out
    assert_clean_output(out)


def test_uvicorn_workers():
    """uvicorn --workers 2: the supervisor spawns two processes, each runs
    its server on a loop from the --loop factory."""
    need("uvicorn")
    argv = [PY, "-m", "uvicorn", "tests.apps.asgi:app",
            "--loop", "fastloop:new_event_loop", "--host", "127.0.0.1",
            "--port", "{port}", "--workers", "2"]
    with Server(argv, stop_signal=signal.SIGINT) as srv:
        pids = _hit_both_workers(srv.port, srv.proc.pid)
        assert len(pids) == 2, "only one worker answered: %s" % pids
        rc = srv.stop()
        out = srv.output()
    assert rc == 0, out
    assert out.count("Finished server process") == 2, out
    assert_clean_output(out)


# ---------------------------------------------------------------------------
# aiohttp: web.run_app(app, loop=fastloop.new_event_loop()) in a subprocess
# ---------------------------------------------------------------------------


def test_aiohttp_run_app_subprocess():
    need("aiohttp")
    argv = [PY, "-m", "tests.apps.aiohttp_app", "{port}"]
    with Server(argv) as srv:
        info = get_json(srv.port)
        assert info["loop"] == FASTLOOP_MODULE, info
        body = b"0123456789" * 100000
        status, _, echoed = http_request(srv.port, "POST", "/echo", body=body)
        assert status == 200 and echoed == body
        # Slow readers: a streamed response (pause/resume writing) and a
        # FileResponse (loop.sendfile waiting for the socket to drain).
        _, pattern = _aiohttp_app()
        n = 8 << 20
        for path in ("/big?n=%d" % n, "/file?n=%d" % n):
            status, got = slow_read(srv.port, path, n)
            assert status == b"HTTP/1.1 200 OK" and got == pattern(n), path
        rc = srv.stop()
        out = srv.output()
    assert rc == 0, out
    assert "Running on http://127.0.0.1:%d" % srv.port in out, out
    assert_clean_output(out)


# ---------------------------------------------------------------------------
# aiohttp in-process: AppRunner/TCPSite and ClientSession, both on fastloop
# ---------------------------------------------------------------------------


def test_aiohttp_apprunner_and_client():
    need("aiohttp")
    import aiohttp
    from aiohttp import web

    make_app, pattern = _aiohttp_app()

    errors = []

    async def main():
        loop = asyncio.get_running_loop()
        assert isinstance(loop, fastloop.Loop)
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
        runner = web.AppRunner(make_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        base = "http://127.0.0.1:%d" % port
        try:
            async with aiohttp.ClientSession() as session:
                # Keep-alive: the server sees the same client port each time.
                peers = set()
                for _ in range(3):
                    async with session.get(base + "/loop") as resp:
                        assert resp.status == 200
                        info = await resp.json()
                        assert info["loop"] == FASTLOOP_MODULE
                        peers.add(tuple(info["peer"]))
                assert len(peers) == 1, peers

                # A large streamed response, read in chunks.
                n = 8 << 20
                got = bytearray()
                async with session.get(base + "/big", params={"n": str(n)}) as resp:
                    assert resp.status == 200
                    async for chunk in resp.content.iter_chunked(65536):
                        got += chunk
                assert len(got) == n and got == pattern(n)

                # A large streamed (chunked) upload.
                async def body():
                    for _ in range(64):
                        yield b"u" * 65536

                async with session.post(base + "/echo", data=body()) as resp:
                    assert resp.status == 200
                    assert await resp.read() == b"u" * (64 * 65536)

                # FileResponse: loop.sendfile.
                n = 3 << 20
                async with session.get(base + "/file", params={"n": str(n)}) as resp:
                    assert resp.status == 200
                    assert await resp.read() == pattern(n)

                # Many requests at once.
                async def one():
                    async with session.get(base + "/loop") as resp:
                        return (await resp.json())["loop"]

                results = await asyncio.gather(*[one() for _ in range(50)])
                assert results == [FASTLOOP_MODULE] * 50

                # Websocket, client and server on fastloop.
                async with session.ws_connect(base + "/ws") as ws:
                    assert await ws.receive_str(timeout=10) == "loop:" + FASTLOOP_MODULE
                    await ws.send_str("ping")
                    assert await ws.receive_str(timeout=10) == "ping"
                    await ws.send_bytes(b"\x00" * 70000)
                    assert await ws.receive_bytes(timeout=10) == b"\x00" * 70000
            # The same app on a Unix socket (create_unix_server and
            # create_unix_connection).
            path = os.path.join(tmpdir, "aiohttp.sock")
            await web.UnixSite(runner, path).start()
            async with aiohttp.ClientSession(
                    connector=aiohttp.UnixConnector(path=path)) as session:
                for _ in range(2):
                    async with session.get("http://unix/loop") as resp:
                        assert (await resp.json())["loop"] == FASTLOOP_MODULE
        finally:
            await runner.cleanup()

    with tempfile.TemporaryDirectory() as tmpdir:
        run_on_fastloop(main())
    assert errors == []


# ---------------------------------------------------------------------------
# gunicorn: fastloop.gunicorn.GunicornWorker / UvicornWorker, 2 workers
# ---------------------------------------------------------------------------


def _gunicorn_argv(worker, app):
    from gunicorn.config import Config

    argv = [PY, "-m", "gunicorn", "--workers", "2", "--worker-class", worker,
            "--bind", "127.0.0.1:{port}", "--graceful-timeout", "5",
            "--log-level", "info"]
    if "control_socket_disable" in Config().settings:  # gunicorn 24+
        argv.append("--no-control-socket")
    return argv + [app]


def _hit_both_workers(port, master_pid, deadline_s=20.0):
    """Fresh connections from 8 threads until two worker pids answered."""
    pids = {}
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + deadline_s

    errors = []
    loops = set()

    def client():
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                info = get_json(port, headers={"Connection": "close"})
            except Exception as exc:  # reported below, with the others
                with lock:
                    errors.append(repr(exc))
                stop.set()
                return
            with lock:
                pids[info["pid"]] = pids.get(info["pid"], 0) + 1
                loops.add(info["loop"])
                if len(pids) >= 2 and sum(pids.values()) >= 20:
                    stop.set()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], errors
    assert loops == {FASTLOOP_MODULE}, loops
    assert master_pid not in pids
    return pids


@pytest.mark.parametrize("worker,app,needs", [
    ("fastloop.gunicorn.GunicornWorker", "tests.apps.aiohttp_app:app_factory",
     ("aiohttp",)),
    ("fastloop.gunicorn.UvicornWorker", "tests.apps.asgi:app", ("uvicorn",)),
], ids=["aiohttp-worker", "uvicorn-worker"])
def test_gunicorn_two_workers(worker, app, needs, record_property):
    need("gunicorn")
    for mod in needs:
        need(mod)
    import fastloop.gunicorn

    try:
        getattr(fastloop.gunicorn, worker.rsplit(".", 1)[1])
    except ImportError as exc:
        pytest.skip(str(exc))
    with Server(_gunicorn_argv(worker, app), stop_signal=signal.SIGTERM) as srv:
        pids = _hit_both_workers(srv.port, srv.proc.pid)
        record_property("worker_pids", sorted(pids))
        print("gunicorn %s: requests per worker pid: %s" % (worker, pids))
        assert len(pids) == 2, "only one worker answered: %s" % pids
        # Child processes from inside the (forked) workers.
        for _ in range(4):
            child = get_json(srv.port, "/child", headers={"Connection": "close"})
            assert child["rc"] == 0 and child["out"] == "child of %d" % child["pid"], child
            assert child["pid"] in pids
        # Graceful stop: a request in flight when the master gets SIGTERM
        # is answered before the worker exits.
        box = {}

        def slow_request():
            try:
                box["r"] = get_json(srv.port, "/sleep?t=1", headers={"Connection": "close"})
            except Exception as exc:  # reported by the assertion below
                box["error"] = repr(exc)

        t = threading.Thread(target=slow_request)
        t.start()
        time.sleep(0.4)
        rc = srv.stop()
        t.join(10)
        out = srv.output()
    assert box.get("r", {}).get("loop") == FASTLOOP_MODULE, (box, out)
    assert rc == 0, out
    assert out.count("Booting worker with pid") == 2, out
    assert "Using worker: %s" % worker in out, out
    assert_clean_output(out)


def test_gunicorn_worker_classes():
    need("gunicorn")
    import fastloop.gunicorn as fg

    assert set(fg.__all__) <= set(dir(fg))
    with pytest.raises(AttributeError):
        fg.NoSuchWorker  # noqa: B018
    if _importable("aiohttp"):
        from aiohttp.worker import GunicornWebWorker

        assert issubclass(fg.GunicornWorker, GunicornWebWorker)
        assert fg.GunicornWorker.__module__ == "fastloop.gunicorn"
    if _importable("uvicorn"):
        cls = fg.UvicornWorker
        assert cls.CONFIG_KWARGS["loop"] == "fastloop:new_event_loop"
        assert cls.__name__ == "UvicornWorker"
        assert fg.UvicornH11Worker.CONFIG_KWARGS == {
            "loop": "fastloop:new_event_loop", "http": "h11"}


def test_gunicorn_uvicorn_worker_fallback(monkeypatch):
    """Without the uvicorn-worker package, uvicorn's own (deprecated)
    uvicorn.workers is the base, imported without a warning escaping."""
    need("gunicorn")
    need("uvicorn")
    import warnings

    import fastloop.gunicorn as fg

    monkeypatch.setitem(sys.modules, "uvicorn_worker", None)  # not importable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            base = fg._uvicorn_base("UvicornWorker")
        except ImportError:
            pytest.skip("this uvicorn has no uvicorn.workers")
    assert base.__module__ == "uvicorn.workers"
    assert base.__name__ == "UvicornWorker"


def _importable(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


# ---------------------------------------------------------------------------
# pytest-asyncio (and anyio's pytest plugin): a tiny suite in a subprocess
# ---------------------------------------------------------------------------

_PYTEST_TESTS = '''
import asyncio

import pytest
import pytest_asyncio

import fastloop


@pytest_asyncio.fixture
async def server():
    async def handle(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()


@pytest.mark.asyncio
async def test_runs_on_fastloop():
    assert isinstance(asyncio.get_running_loop(), fastloop.Loop)
    await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_async_fixture_and_streams(server):
    assert isinstance(asyncio.get_running_loop(), fastloop.Loop)
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"ping\\n")
    assert await reader.readline() == b"ping\\n"
    writer.close()
    await writer.wait_closed()
'''

_PYTEST_CONFTESTS = {
    # pytest-asyncio 0.23 to 1.3: override the event_loop_policy fixture
    # (deprecated from 1.4 on).
    "policy": '''
import pytest

import fastloop


@pytest.fixture(scope="session")
def event_loop_policy():
    return fastloop.EventLoopPolicy()
''',
    # pytest-asyncio 1.4+: the pytest_asyncio_loop_factories hook.
    "hook": '''
import fastloop


def pytest_asyncio_loop_factories(config, item):
    return {"fastloop": fastloop.new_event_loop}
''',
    # pytest-asyncio 1.4+: fastloop and asyncio's loop side by side.
    "multi": '''
import asyncio

import fastloop


def pytest_asyncio_loop_factories(config, item):
    return {"fastloop": fastloop.new_event_loop, "asyncio": asyncio.new_event_loop}
''',
    # Either, by version: the conftest.py docs/frameworks.md gives.
    "compat": '''
from importlib.metadata import version

import pytest

import fastloop

if tuple(int(x) for x in version("pytest-asyncio").split(".")[:2]) >= (1, 4):

    def pytest_asyncio_loop_factories(config, item):
        return {"fastloop": fastloop.new_event_loop}

else:

    @pytest.fixture(scope="session")
    def event_loop_policy():
        return fastloop.EventLoopPolicy()
''',
}

_ANYIO_TESTS = '''
import asyncio

import anyio
import pytest

import fastloop


@pytest.fixture
def anyio_backend():
    return "asyncio", {"loop_factory": fastloop.new_event_loop}


@pytest.mark.anyio
async def test_anyio_on_fastloop():
    assert isinstance(asyncio.get_running_loop(), fastloop.Loop)
    await anyio.sleep(0.01)
'''


def _pytest_asyncio_version():
    from importlib import metadata

    return tuple(int(x) for x in metadata.version("pytest-asyncio").split(".")[:2]
                 if x.isdigit())


def _run_pytest(tmp_path, files, plugin):
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    ini = "[pytest]\n"
    if plugin == "pytest_asyncio.plugin":
        ini += "asyncio_default_fixture_loop_scope = function\n"
    (tmp_path / "pytest.ini").write_text(ini)
    env = child_env()
    # Only the plugin under test (loading every installed plugin, hypothesis
    # and all, costs seconds).
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    proc = subprocess.run(
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", plugin,
         "-W", "error::pytest.PytestDeprecationWarning", str(tmp_path)],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=60)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


_PYTEST_MULTI_TESTS = '''
import asyncio

import pytest

import fastloop

SEEN = []


@pytest.mark.asyncio(loop_factories=["fastloop"])
async def test_only_fastloop():
    assert isinstance(asyncio.get_running_loop(), fastloop.Loop)


@pytest.mark.asyncio
async def test_every_factory():
    SEEN.append(isinstance(asyncio.get_running_loop(), fastloop.Loop))


def test_both_ran():
    assert sorted(SEEN) == [False, True]
'''


@pytest.mark.parametrize("how", ["compat", "hook", "policy", "multi"])
def test_pytest_asyncio_suite(tmp_path, how):
    need("pytest_asyncio")
    if how in ("hook", "multi") and _pytest_asyncio_version() < (1, 4):
        pytest.skip("pytest_asyncio_loop_factories needs pytest-asyncio 1.4+")
    if how == "policy" and _pytest_asyncio_version() >= (1, 4):
        pytest.skip("overriding event_loop_policy is deprecated in pytest-asyncio 1.4+")
    rc, out = _run_pytest(tmp_path, {
        "conftest.py": _PYTEST_CONFTESTS[how],
        "test_suite.py": _PYTEST_MULTI_TESTS if how == "multi" else _PYTEST_TESTS,
    }, "pytest_asyncio.plugin")
    assert rc == 0, out
    assert ("4 passed" if how == "multi" else "2 passed") in out, out


def test_anyio_pytest_plugin_suite(tmp_path):
    need("anyio")
    rc, out = _run_pytest(tmp_path, {"test_anyio_suite.py": _ANYIO_TESTS},
                          "anyio.pytest_plugin")
    assert rc == 0, out
    assert "1 passed" in out, out


# ---------------------------------------------------------------------------
# anyio: anyio.run(..., backend_options={"loop_factory": ...})
# ---------------------------------------------------------------------------


def _anyio_run(func, *args):
    anyio = need("anyio")
    return anyio.run(func, *args, backend="asyncio",
                     backend_options={"loop_factory": fastloop.new_event_loop})


def test_anyio_tasks_threads_cancellation():
    anyio = need("anyio")
    import anyio.to_thread

    async def main():
        assert isinstance(asyncio.get_running_loop(), fastloop.Loop)
        results = []

        async def worker(i):
            await anyio.sleep(0.01 * (3 - i))
            results.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(worker, i)
        assert sorted(results) == [0, 1, 2] and results[0] == 2

        assert await anyio.to_thread.run_sync(threading.get_ident) != threading.get_ident()

        with anyio.move_on_after(0.05) as scope:
            await anyio.sleep(10)
        assert scope.cancelled_caught

        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.02):
                await anyio.sleep(10)

        send, receive = anyio.create_memory_object_stream(10)
        async with send, receive:
            await send.send("x")
            assert await receive.receive() == "x"
        return "ok"

    assert _anyio_run(main) == "ok"


def test_anyio_blocking_portal():
    """A fastloop loop in a thread of its own, called from this one."""
    anyio = need("anyio")
    from anyio.from_thread import start_blocking_portal

    async def where():
        await anyio.sleep(0.01)
        return type(asyncio.get_running_loop()).__module__, threading.get_ident()

    with start_blocking_portal(
            "asyncio", backend_options={"loop_factory": fastloop.new_event_loop}) as portal:
        module, ident = portal.call(where)
        assert module == FASTLOOP_MODULE and ident != threading.get_ident()
        futures = [portal.start_task_soon(where) for _ in range(20)]
        assert {f.result(10) for f in futures} == {(module, ident)}


def test_anyio_tcp_and_udp():
    anyio = need("anyio")

    async def main():
        async def handler(client):
            async with client:
                data = await client.receive()
                await client.send(data.upper())

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler)
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(b"hello")
                assert await stream.receive() == b"HELLO"
            tg.cancel_scope.cancel()

        async with await anyio.create_udp_socket(local_host="127.0.0.1") as udp:
            addr = udp.extra(anyio.abc.SocketAttribute.local_address)
            await udp.sendto(b"dgram", addr[0], addr[1])
            data, _ = await udp.receive()
            assert data == b"dgram"
        return "ok"

    assert _anyio_run(main) == "ok"


def test_anyio_subprocess():
    anyio = need("anyio")

    async def main():
        result = await anyio.run_process([PY, "-c", "print('hi from child')"])
        assert result.returncode == 0
        assert result.stdout.strip() == b"hi from child"
        async with await anyio.open_process([PY, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"]) as proc:
            await proc.stdin.send(b"shout")
            await proc.stdin.aclose()
            out = b""
            async for chunk in proc.stdout:
                out += chunk
            assert await proc.wait() == 0
        assert out == b"SHOUT"
        return "ok"

    assert _anyio_run(main) == "ok"


# ---------------------------------------------------------------------------
# Core contract gaps the frameworks run into (see docs/NOTES-core-bugs.md)
# ---------------------------------------------------------------------------


class _WrappedSocket:
    """What gunicorn hands its workers (gunicorn.sock.TCPSocket): not a
    socket.socket, but it delegates everything to one."""

    def __init__(self, sock):
        self.sock = sock

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_create_server_accepts_socket_like_object(loop):
    raw = socket.create_server(("127.0.0.1", 0))

    async def main():
        srv = await loop.create_server(asyncio.Protocol, sock=_WrappedSocket(raw))
        try:
            port = srv.sockets[0].getsockname()[1]
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
        finally:
            srv.close()
            await srv.wait_closed()

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        raw.close()


def test_tls_server_port_probe_is_silent(loop, loop_kind, certs, request):  # noqa: F811
    """A TLS server sees a client connect and close without a handshake (a
    load balancer's TCP health check, a port probe): asyncio says nothing
    (only in debug mode: 'Error on transport creation for incoming
    connection')."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs)
    errors = []
    loop.set_exception_handler(lambda lp, context: errors.append(context))
    loop.set_debug(False)  # (-X dev: debug mode reports it, on both loops)

    async def main():
        srv = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=ctx)
        port = srv.sockets[0].getsockname()[1]
        for _ in range(3):
            socket.create_connection(("127.0.0.1", port)).close()
        await asyncio.sleep(0.3)
        srv.close()
        await srv.wait_closed()

    loop.run_until_complete(asyncio.wait_for(main(), 10))
    assert [c["message"] for c in errors] == []


# -- blockbuster: blocking-call detection in tests ---------------------------
# blockbuster (used autouse by aiohttp's own test suite, among others) patches
# os/socket/io functions and raises BlockingError when one is called while a
# loop runs, except from call sites it knows, asyncio's among them. What
# asyncio may do without being flagged, fastloop may too. Files are written
# and opened before the loop runs: that is the test's own blocking I/O.

BB_SIZE = 300_000


async def _bb_sendfile(loop, f, data, tmp):
    got = bytearray()
    done = loop.create_future()

    class Sink(asyncio.Protocol):
        def data_received(self, chunk):
            got.extend(chunk)
            if len(got) >= len(data) and not done.done():
                done.set_result(None)

    srv = await loop.create_server(Sink, "127.0.0.1", 0)
    tr, _ = await loop.create_connection(
        asyncio.Protocol, "127.0.0.1", srv.sockets[0].getsockname()[1])
    try:
        assert await loop.sendfile(tr, f) == len(data)
        await asyncio.wait_for(done, 10)
    finally:
        tr.close()
        srv.close()
        await srv.wait_closed()
    assert bytes(got) == data


async def _bb_sock_sendfile(loop, f, data, tmp):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    got = bytearray()

    async def receive():
        while len(got) < len(data):
            got.extend(await loop.sock_recv(b, 65536))

    try:
        sent, _ = await asyncio.gather(loop.sock_sendfile(a, f), receive())
        assert sent == len(data)
    finally:
        a.close()
        b.close()
    assert bytes(got) == data


async def _bb_unix_server(loop, f, data, tmp):
    path = os.path.join(tmp, "s.sock")
    accepted = loop.create_future()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport):
            accepted.set_result(transport)

    srv = await loop.create_unix_server(Accept, path)
    tr, _ = await loop.create_unix_connection(asyncio.Protocol, path)
    (await accepted).close()  # before the server closes (asyncio 3.11
    tr.close()                # fails an assertion on a late accept)
    srv.close()
    await srv.wait_closed()


async def _bb_subprocess(loop, f, data, tmp):
    p = await asyncio.create_subprocess_exec(
        PY, "-c", "print('x')", stdout=subprocess.PIPE)
    assert (await p.communicate())[0].strip() == b"x"
    p = await asyncio.create_subprocess_shell(
        "echo y", stdout=subprocess.PIPE)
    assert (await p.communicate())[0].strip() == b"y"


@pytest.mark.parametrize("scenario", [
    _bb_sendfile, _bb_sock_sendfile, _bb_unix_server, _bb_subprocess,
], ids=lambda f: f.__name__[4:])
def test_blockbuster_sees_no_blocking_call(loop, tmp_path, scenario):
    bb_mod = need("blockbuster")
    data = os.urandom(BB_SIZE)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    bb = bb_mod.BlockBuster()
    with open(path, "rb") as f:
        bb.activate()
        try:
            loop.run_until_complete(asyncio.wait_for(
                scenario(loop, f, data, str(tmp_path)), 30))
        finally:
            bb.deactivate()


# -- aiofastnet: aiohttp 3.15+'s networking ------------------------------------
# aiohttp 3.15+ calls aiofastnet.create_server/create_connection/start_tls/
# sendfile when aiofastnet is importable; aiofastnet then runs its own
# transports over the loop's add_reader/add_writer (on every loop but the
# proactor), so fastloop's fd watchers carry the traffic, not its transports.

AFN_SIZE = 2 * 1024 * 1024


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_aiofastnet_streams_tls_and_sendfile(loop, certs, tmp_path, tls):  # noqa: F811
    afn = need("aiofastnet")
    # Over TLS, 64 KiB: aiofastnet 1.2.0 loses what its TLS server writes
    # after an echo of ~300 KB or more, before close (the client never sees
    # it nor EOF) -- on asyncio's loop and uvloop's too.
    data = os.urandom(64 * 1024 if tls else AFN_SIZE)
    path = tmp_path / "blob"
    path.write_bytes(data)
    server_ctx = client_ctx = None
    if tls:
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(*certs)
        client_ctx = ssl.create_default_context(cafile=certs[0])
    transports, how = [], []

    async def handle(reader, writer):
        transports.append(writer.transport)
        n = int((await reader.readline()).decode())
        got = await reader.readexactly(n)
        writer.write(got)  # echo, then the file after it
        await writer.drain()
        with open(path, "rb") as f:
            try:
                await afn.sendfile(loop, writer.transport, f)
                how.append("sendfile")
            except NotImplementedError:
                # aiofastnet's TLS transport has no sendfile without kernel
                # TLS; aiohttp then writes the file itself, as here.
                writer.write(f.read())
                await writer.drain()
                how.append("write")
        writer.close()

    async def main():
        srv = await afn.start_server(loop, handle, "127.0.0.1", 0, ssl=server_ctx)
        port = srv.sockets[0].getsockname()[1]
        try:
            reader, writer = await afn.open_connection(
                loop, "127.0.0.1", port, ssl=client_ctx,
                server_hostname="localhost" if tls else None)
            transports.append(writer.transport)
            writer.write(b"%d\n" % len(data))
            writer.write(data)
            await writer.drain()
            echoed = await reader.readexactly(len(data))
            sent = await reader.read()  # the file, then EOF
            writer.close()
            return echoed, sent
        finally:
            srv.close()
            await srv.wait_closed()

    echoed, sent = loop.run_until_complete(asyncio.wait_for(main(), 30))
    assert echoed == data
    assert sent == data
    # aiofastnet's own transports carried it, over the loop's fd watchers.
    # (over TLS, sendfile only with kernel TLS)
    assert how in ((["write"], ["sendfile"]) if tls else (["sendfile"],))
    assert len(transports) == 2
    for t in transports:
        assert type(t).__module__.startswith("aiofastnet"), type(t)
