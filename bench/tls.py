#!/usr/bin/env python3
"""TLS echo: fastloop, asyncio and uvloop serving the same TLS echo.

    python3 bench/tls.py                      # every case, 5 repeats
    python3 bench/tls.py --cases streams_1K --repeat 7 --requests 50000

fastloop runs TLS through asyncio's own `sslproto.SSLProtocol` over its C
transport (README "Differences"); uvloop has its own SSL protocol in
Cython.  This measures what that choice costs: a server (one process,
pinned to one CPU) echoes over TLS 1.3 with a self-signed certificate made
at start-up; a client process on the same CPU keeps C connections in
ping-pong (write SIZE bytes, read them back) for N requests.  The client
is the same program for every server (on uvloop when it is installed).

The table gives the server's CPU time per request (all its threads,
/proc/PID/task/*/schedstat, over the timed requests; the unit to read, as the client
shares the CPU) and requests/s, medians over the repeats, and fastloop's
ratio to each loop (> 1.00x: fastloop is faster / uses less).  Loops are
alternated within each repeat, in a rotating order.
"""
import argparse
import asyncio
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CASES = {
    "streams_1K": ("streams", 1024),
    "proto_1K": ("proto", 1024),
    "streams_64K": ("streams", 65536),
    "proto_64K": ("proto", 65536),
}


# --------------------------------------------------------------- server


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echo_streams(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


def new_loop(kind):
    if kind == "fastloop":
        sys.path.insert(0, ROOT)
        import fastloop
        return fastloop.new_event_loop()
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.SelectorEventLoop()


def serve(kind, mode, certdir):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(certdir, "cert.pem"),
                        os.path.join(certdir, "key.pem"))

    async def main():
        loop = asyncio.get_running_loop()
        if mode == "proto":
            srv = await loop.create_server(EchoProtocol, "127.0.0.1", 0,
                                           ssl=ctx)
        else:
            srv = await asyncio.start_server(echo_streams, "127.0.0.1", 0,
                                             ssl=ctx)
        print(srv.sockets[0].getsockname()[1], flush=True)
        # Until the client is done: stdin closes.
        await loop.run_in_executor(None, sys.stdin.read)

    loop = new_loop(kind)
    loop.set_debug(False)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# --------------------------------------------------------------- client


def client(port, conns, size, requests):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    msg = b"x" * size

    ready = []

    async def one(count, start, all_ready):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        # One warm-up round trip (handshake done, buffers touched).
        w.write(msg)
        await r.readexactly(size)
        ready.append(1)
        if len(ready) == conns:
            all_ready.set()
        await start.wait()
        for _ in range(count):
            w.write(msg)
            await w.drain()
            if await r.readexactly(size) != msg:
                raise SystemExit("bad echo")
        w.close()

    async def main():
        start, all_ready = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.ensure_future(one(requests // conns, start,
                                           all_ready))
                 for _ in range(conns)]
        await asyncio.wait_for(all_ready.wait(), 60)
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(
            None, sys.stdin.readline)
        t0 = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        print("DONE %.6f" % (time.perf_counter() - t0), flush=True)

    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()


# ---------------------------------------------------------------- driver


def make_cert(certdir):
    key = os.path.join(certdir, "key.pem")
    cert = os.path.join(certdir, "cert.pem")
    if shutil.which("openssl"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                        "-subj", "/CN=localhost"], check=True,
                       capture_output=True)
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    import datetime
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=2))
         .sign(k, hashes.SHA256()))
    with open(key, "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    with open(cert, "wb") as f:
        f.write(c.public_bytes(serialization.Encoding.PEM))


def cpu_seconds(pid):
    """CPU time of all the process's threads (schedstat, nanoseconds)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def one_run(kind, mode, size, args, certdir, cpu):
    pre = ["taskset", "-c", str(cpu)] if cpu is not None else []
    env = dict(os.environ, PYTHONHASHSEED="0")
    srv = subprocess.Popen(pre + [sys.executable, __file__, "--serve", kind,
                                  mode, certdir],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True, env=env)
    cl = None
    try:
        port = int(srv.stdout.readline())
        cl = subprocess.Popen(pre + [sys.executable, __file__, "--client",
                                     str(port), str(args.conns), str(size),
                                     str(args.requests)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env)
        if cl.stdout.readline().strip() != "READY":
            raise SystemExit("client did not start")
        time.sleep(0.2)
        t0 = cpu_seconds(srv.pid)
        cl.stdin.write("\n")
        cl.stdin.flush()
        line = cl.stdout.readline().split()
        t1 = cpu_seconds(srv.pid)
        if not line or line[0] != "DONE":
            raise SystemExit("client failed: %r" % line)
        wall = float(line[1])
        done = args.requests // args.conns * args.conns
        return (t1 - t0) / done * 1e6, done / wall
    finally:
        for p in (cl, srv):
            if p is not None:
                try:
                    p.stdin.close()
                except OSError:
                    pass
        for p in (cl, srv):
            if p is not None:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def available(kind):
    if kind == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return False
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES),
                   help="comma-separated: " + ", ".join(CASES))
    p.add_argument("--loops", default="fastloop,asyncio,uvloop")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--conns", type=int, default=10)
    p.add_argument("--pin", default="last",
                   help="CPU for server and client (default: the last "
                        "one), or 'none'")
    args = p.parse_args()
    loops = [k for k in args.loops.split(",") if available(k)]
    cpu = None if args.pin == "none" else (
        max(os.sched_getaffinity(0)) if args.pin == "last" else int(args.pin))
    cases = args.cases.split(",")
    print("TLS echo, %d connections, %d requests per run, %d repeats, "
          "server and client on CPU %s; loops: %s" % (
              args.conns, args.requests, args.repeat, cpu, ", ".join(loops)))
    with tempfile.TemporaryDirectory() as certdir:
        make_cert(certdir)
        rows = []
        for case in cases:
            mode, size = CASES[case]
            res = {k: [] for k in loops}
            for r in range(args.repeat):
                order = loops[r % len(loops):] + loops[:r % len(loops)]
                if r % 2:
                    order.reverse()
                for k in order:
                    res[k].append(one_run(k, mode, size, args, certdir, cpu))
            rows.append((case, {k: (statistics.median(x[0] for x in v),
                                    statistics.median(x[1] for x in v))
                                for k, v in res.items()}))
            print(".", end="", flush=True)
        print()
    first = loops[0]
    head = "%-12s" % "case" + "".join("%12s" % k for k in loops) + \
        "".join("  %s/%s" % (first[:2], k[:3]) for k in loops[1:])
    for title, idx in (("server CPU us/request", 0), ("requests/s", 1)):
        print("\n" + title)
        print(head)
        for case, med in rows:
            cells = "".join("%12.1f" % med[k][idx] if idx == 0 else
                            "%12.0f" % med[k][idx] for k in loops)
            ratios = "".join(
                "  %6.2fx" % ((med[k][0] / med[first][0]) if idx == 0
                              else (med[first][1] / med[k][1]))
                for k in loops[1:])
            print("%-12s%s%s" % (case, cells, ratios))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "--client":
        client(*map(int, sys.argv[2:6]))
    else:
        main()
