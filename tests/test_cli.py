"""``python -m fastloop``: info and the benchmark runner (fastloop/_cli.py).

The benchmark runs here are tiny (a fraction of a second of work per case):
they check that the suites run end to end through the CLI and that the JSON
they leave has what the tables and the plot are drawn from, not speed.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

import fastloop
from fastloop import _cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")


def run_cli(*args, timeout=240):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHONASYNCIODEBUG", None)
    return subprocess.run([sys.executable, "-m", "fastloop"] + list(args), cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _fastloop_cli(*args, timeout=60):
    r = run_cli(*args, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def _importable(name):
    return importlib.util.find_spec(name) is not None


def test_parse_suites():
    assert _cli.parse_suites("micro", BENCH) == ["micro"]
    assert _cli.parse_suites("net, micro", BENCH) == ["net", "micro"]
    assert "micro" in _cli.parse_suites("all", BENCH)
    with pytest.raises(SystemExit):
        _cli.parse_suites("nosuch", BENCH)
    with pytest.raises(SystemExit):
        _cli.parse_suites(",", BENCH)


def test_suite_argv_net_defaults_to_a_quick_subset():
    argv = _cli._suite_argv("net", ["--loops", "fastloop"], several=True)
    assert argv[:2] == ["--cases", _cli.NET_DEFAULT_CASES] and "--quick" in argv
    # Explicit cases are left alone; the per-suite JSON replaces --json.
    argv = _cli._suite_argv("net", ["--cases", "tcp_proto_1K_c10", "--json", "x"], several=True)
    assert argv == ["--cases", "tcp_proto_1K_c10"]
    assert _cli._suite_argv("micro", ["--quick"], several=False) == ["--quick"]


def test_net_default_cases_exist():
    net = _cli.load_bench_module(BENCH, "net.py")
    for name in _cli.NET_DEFAULT_CASES.split(","):
        assert name in net.CASES_BY_NAME


def test_net_echo_matrix_group():
    # issue #3: Protocol, BufferedProtocol, streams and sock_* servers at
    # 1, 10 and 100 KiB, 10 and 100 connections.
    net = _cli.load_bench_module(BENCH, "net.py")
    cases = net.select_cases("matrix")
    got = {(c.server, c.size, c.conns) for c in cases}
    assert got == {(s, k * 1024, n) for s in ("proto", "buffered", "streams", "sock")
                   for k in (1, 10, 100) for n in (10, 100)}
    assert len(cases) == 24 and all(c.mode == "echo" for c in cases)
    # A case named as well as its group is run once.
    assert len(net.select_cases("tcp_proto_1K_c10,matrix")) == 24
    assert len(net.CASES_BY_NAME) == len(net.CASES)
    with pytest.raises(SystemExit):
        net.select_cases("nosuch")


def test_combine_and_summary():
    a = {"meta": {"python": "3.x"}, "results": {"c1": {"ratios": {"f/a": 2.0}},
                                                "c2": {"ratios": {"f/a": 8.0}}}}
    b = {"meta": {}, "results": {"c1": {"ratios": {"f/a": 0.5}}}}
    one = _cli.combine_results({"micro": a})
    assert one is a
    both = _cli.combine_results({"micro": a, "net": b})
    assert set(both["results"]) == {"micro:c1", "micro:c2", "net:c1"}
    lines = _cli.overall_summary({"micro": a, "net": b})
    assert "f/a 4.00x" in lines[0] and "f/a 0.50x" in lines[1]


def test_bench_cases_error_with_several_suites():
    r = run_cli("bench", "--suite", "micro,net", "--cases", "x")
    assert r.returncode != 0
    assert "--cases needs a single --suite" in r.stderr


def test_split_cases_and_drop_unknown():
    mods = {n: _cli.load_bench_module(BENCH, _cli.SUITES[n][0]) for n in ("micro", "net")}
    got = _cli.split_cases("call_soon_batch, tcp_proto_1K_c10,timer_cancel", mods)
    assert got == {"micro": "call_soon_batch,timer_cancel", "net": "tcp_proto_1K_c10"}
    with pytest.raises(SystemExit):
        _cli.split_cases("call_soon_batch,nosuch", mods)
    argv, dropped = _cli._drop_unknown(mods["micro"], ["--repeat", "1", "--duration", "0.2",
                                                       "--scale", "0.1"])
    assert argv == ["--repeat", "1", "--scale", "0.1"] and dropped == ["--duration", "0.2"]
    argv, dropped = _cli._drop_unknown(mods["net"], ["--scale", "0.1", "--repeat", "1"])
    assert argv == ["--repeat", "1"] and dropped == ["--scale", "0.1"]


def test_bench_cases_pick_the_suites(tmp_path):
    # No --suite: each case runs in its own suite, each suite gets the
    # options it takes.
    out = tmp_path / "mixed.json"
    r = run_cli("bench", "--cases", "call_soon_batch,tcp_proto_1K_c10", "--loops",
                "fastloop,asyncio", "--repeat", "1", "--warmup", "0", "--scale", "0.01",
                "--duration", "0.2", "--json", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"micro:call_soon_batch", "net:tcp_proto_1K_c10"}
    assert "suite micro does not take --duration 0.2" in r.stderr
    assert "suite net does not take --scale 0.01" in r.stderr


def test_bench_two_suites_end_to_end(tmp_path):
    # micro and net together, each tiny; the JSON combines both suites.
    out = tmp_path / "all.json"
    r = run_cli("bench", "--suite", "micro,net", "--loops", "fastloop",
                "--repeat", "1", "--warmup", "0", "--quick", "--json", str(out),
                timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data["suites"]) == {"micro", "net"}
    assert any(k.startswith("net:tcp_proto_1K") for k in data["results"])
    assert any(k.startswith("micro:") for k in data["results"])
    assert "overall" in r.stdout


def test_bench_net_end_to_end(tmp_path):
    out = tmp_path / "n.json"
    r = run_cli("bench", "--suite", "net", "--cases", "tcp_proto_1K_c10,http_raw_c100",
                "--loops", "fastloop,asyncio", "--repeat", "1", "--warmup", "0",
                "--duration", "0.2", "--json", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"tcp_proto_1K_c10", "http_raw_c100"}
    for res in data["results"].values():
        assert res["loops"]["fastloop"]["ops_per_s"] > 0
        assert res["ratios"]["fastloop/asyncio"] > 0


def test_bench_net_uvicorn_case(tmp_path):
    # The uvicorn server kind of bench/netlib/server.py serves real HTTP on
    # fastloop: loadgen checks every response's status and Content-Length.
    pytest.importorskip("uvicorn")
    pytest.importorskip("httptools")
    out = tmp_path / "u.json"
    r = run_cli("bench", "--suite", "net", "--cases", "http_uvicorn_c100",
                "--loops", "fastloop", "--repeat", "1", "--warmup", "0",
                "--duration", "0.2", "--json", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())["results"]["http_uvicorn_c100"]
    assert res["loops"]["fastloop"]["ops_per_s"] > 0


def test_cli_info():
    from fastloop import _core

    rc, out, err = _fastloop_cli("info")
    assert rc == 0, err
    assert "fastloop" in out and fastloop.__version__ in out
    assert _core.POLLER in out
    assert "DEBUG_BUILD=%d" % int(bool(_core.DEBUG_BUILD)) in out
    assert "%d.%d.%d" % sys.version_info[:3] in out
    assert "uvloop" in out

    rc, out, err = _fastloop_cli("info", "--json")
    assert rc == 0, err
    info = json.loads(out)
    assert info["fastloop"] == fastloop.__version__
    assert info["poller"] == _core.POLLER
    assert info["debug_build"] == bool(_core.DEBUG_BUILD)
    assert info["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert os.path.samefile(info["bench_dir"], os.path.join(ROOT, "bench"))
    try:
        import uvloop
    except ImportError:
        assert info["uvloop"] is None
    else:
        assert info["uvloop"] == uvloop.__version__


def test_cli_help():
    rc, out, err = _fastloop_cli()
    assert rc == 0 and "info" in out and "bench" in out, (out, err)
    rc, out, err = _fastloop_cli("--version")
    assert rc == 0 and out.strip() == "fastloop %s" % fastloop.__version__
    rc, out, err = _fastloop_cli("nonsense")
    assert rc == 2


_TINY_BENCH = ["--cases", "call_soon_batch,timer_cancel", "--loops", "fastloop,asyncio",
               "--repeat", "1", "--warmup", "0", "--scale", "0.005"]


def test_cli_bench_tiny(tmp_path):
    out_json = tmp_path / "bench.json"
    rc, out, err = _fastloop_cli("bench", *(_TINY_BENCH + ["--json", str(out_json)]))
    assert rc == 0, out + err
    assert "call_soon_batch" in out and "fl/aio" in out
    # Progress on stderr: one line per case.
    assert "[1/2] call_soon_batch" in err and "[2/2] timer_cancel" in err, err
    data = json.loads(out_json.read_text())
    assert set(data["results"]) == {"call_soon_batch", "timer_cancel"}
    for res in data["results"].values():
        assert res["ratios"]["fastloop/asyncio"] > 0


def test_cli_bench_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "ratios.png"
    rc, out, err = _fastloop_cli("bench", *(_TINY_BENCH + ["--plot", str(png), "-q"]))
    assert rc == 0, out + err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "ratios.json").exists()


def test_cli_bench_without_matplotlib_or_bench_dir(tmp_path):
    if _importable("matplotlib"):
        rc = None
    else:
        rc, out, err = _fastloop_cli("bench", "--plot", str(tmp_path / "x.png"))
        assert rc == 2 and "matplotlib" in err
    rc, out, err = _fastloop_cli("bench", "--bench-dir", str(tmp_path))
    assert rc == 2
    assert "not installed with the package" in err or "ships with the source checkout" in err, err


def test_cli_bench_in_process_progress(capfd):
    """The progress hook around micro.run_case, without a subprocess."""
    from fastloop import _cli

    bench_dir, how = _cli.find_bench_dir()
    assert bench_dir is not None and how
    assert _cli.main(["bench"] + _TINY_BENCH[:-2] + ["--scale", "0.002"]) == 0
    cap = capfd.readouterr()
    assert "[2/2] timer_cancel" in cap.err
    assert "geometric mean" in cap.out


def test_tls_bench_tiny_run():
    # bench/tls.py end to end: certificate, server and client processes,
    # the tables (speed is not checked here).
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHONASYNCIODEBUG", None)
    r = subprocess.run([sys.executable, os.path.join(BENCH, "tls.py"),
                        "--repeat", "1", "--requests", "200", "--conns", "4",
                        "--cases", "proto_1K,streams_1K",
                        "--loops", "fastloop,asyncio", "--pin", "none"],
                       cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "server CPU us/request" in out and "requests/s" in out
    assert out.count("proto_1K") == 2 and out.count("streams_1K") == 2
