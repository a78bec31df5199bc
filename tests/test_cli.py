"""``python -m fastloop``: info and the benchmark runner (fastloop/_cli.py).

The benchmark runs here are tiny (a fraction of a second of work per case):
they check that the suites run end to end through the CLI and that the JSON
they leave has what the tables and the plot are drawn from, not speed.
"""
import json
import os
import subprocess
import sys

import pytest

from fastloop import _cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")


def run_cli(*args, timeout=240):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHONASYNCIODEBUG", None)
    return subprocess.run([sys.executable, "-m", "fastloop"] + list(args), cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_info_json():
    r = run_cli("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    import fastloop
    assert info["fastloop"] == fastloop.__version__
    assert info["poller"] == "epoll"
    assert info["bench_dir"] == BENCH


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


def test_bench_micro_end_to_end(tmp_path):
    out = tmp_path / "m.json"
    r = run_cli("bench", "--suite", "micro", "--cases", "call_soon_batch,timer_cancel",
                "--loops", "fastloop,asyncio", "--repeat", "1", "--warmup", "0",
                "--scale", "0.01", "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"call_soon_batch", "timer_cancel"}
    for res in data["results"].values():
        assert res["ratios"]["fastloop/asyncio"] > 0
    assert "call_soon_batch" in r.stdout


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


def test_bench_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "r.png"
    r = run_cli("bench", "--suite", "micro", "--cases", "call_soon_batch",
                "--loops", "fastloop,asyncio", "--repeat", "1", "--warmup", "0",
                "--scale", "0.01", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert png.stat().st_size > 1000
