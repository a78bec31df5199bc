"""CPython's own asyncio test suites (test.test_asyncio) on fastloop.

Every selected stdlib test method is one pytest item,
``test_stdlib[<module>.<Class>.<method>]``; see tests/conformance/ for the
selection (suites.py), the binding to the loop under test, and the
version-keyed expectations (expectations.py).

Environment:

  FASTLOOP_CONFORMANCE_LOOP=asyncio   run the same selection on
                                      asyncio.SelectorEventLoop (harness check)
  FASTLOOP_CONFORMANCE_TESTLOOP=run   run tests that need the stdlib's
                                      virtual-clock TestLoop as-is (default:
                                      skipped, they do not test the loop)
  FASTLOOP_CONFORMANCE_TRANSPORTS=0   leave out the transport-only modules (on by default)
  FASTLOOP_CONFORMANCE_TIMEOUT=N      per-test watchdog (default 30 s)
  FASTLOOP_CONFORMANCE_REPORT=path    write the numbers as JSON
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conformance import expectations as ex  # noqa: E402
from conformance import loops, runner  # noqa: E402

try:
    runner.import_stdlib_tests()
except runner.StdlibUnavailable as exc:
    pytest.skip(str(exc), allow_module_level=True)

try:
    loops.check_available()
except loops.Unavailable as exc:
    pytest.skip(str(exc), allow_module_level=True)

try:
    import pytest_timeout  # noqa: F401
except ImportError:  # pragma: no cover
    _TIMEOUT_MARKS = []
else:
    # The runner's own SIGALRM watchdog (runner.TIMEOUT) interrupts a slow
    # test and keeps the run going; pytest-timeout is only the last resort
    # (thread method: dumps the stacks and ends the process).
    _TIMEOUT_MARKS = [pytest.mark.timeout(runner.TIMEOUT * 2 + 30, method="thread")]


def _param(case):
    marks = list(_TIMEOUT_MARKS)
    if case.kind == ex.BUG:
        marks.append(pytest.mark.xfail(reason="fastloop bug: " + case.reason, strict=True))
    elif case.kind == ex.TRANSPORT:
        marks.append(pytest.mark.xfail(reason=case.reason, strict=False))
    return pytest.param(case, id=case.id, marks=marks)


CASES = runner.collect()


@pytest.fixture(scope="session", autouse=True)
def _conformance_reporter(request):
    plugin = runner.Reporter("test_conformance.py::test_stdlib")
    request.config.pluginmanager.register(plugin, "fastloop-conformance-reporter")
    yield plugin


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_stdlib(case):
    if case.kind in ex.SKIP_KINDS:
        # Skipped at run time (not with a mark) so the report sees it.
        pytest.skip(case.reason)
    outcome = runner.run_case(case)
    if outcome.problems:
        pytest.fail(runner.failure_message(outcome), pytrace=False)
    if outcome.skip_reason is not None:
        pytest.skip(outcome.skip_reason)
    if outcome.expected_failure:
        pytest.xfail("stdlib @unittest.expectedFailure")
