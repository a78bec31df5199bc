"""The test suite's own machinery: what CI relies on to mean what it says."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.skipif(os.environ.get("FASTLOOP_PROBE_FLAGS") is None,
                    reason="run by test_xdist_workers_get_interpreter_flags")
def test_probe_flags():
    want = os.environ["FASTLOOP_PROBE_FLAGS"]
    got = "%d %s" % (sys.flags.dev_mode, ",".join(sys.warnoptions))
    assert got == want


@pytest.mark.parametrize("flags,want", [
    ([], "0 "),
    (["-X", "dev", "-W", "error"], "1 default,error"),
])
def test_xdist_workers_get_interpreter_flags(flags, want):
    # `python -X dev -W error -m pytest -n 2` (CI's devmode job) must run
    # the tests themselves in debug mode with warnings as errors: xdist's
    # workers are new interpreters, and conftest passes them the flags.
    pytest.importorskip("xdist")
    env = dict(os.environ, FASTLOOP_PROBE_FLAGS=want)
    env.pop("PYTHONDEVMODE", None)
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run(
        [sys.executable, *flags, "-m", "pytest", "-n", "2", "-q",
         "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark",
         os.path.join(HERE, "test_testsuite.py") + "::test_probe_flags"],
        cwd=os.path.dirname(HERE), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=120)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out[-3000:]
    assert "1 passed" in out, out[-3000:]
