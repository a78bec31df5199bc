"""fastloop.run, asyncio.run/Runner with loop_factory, the event loop policy
and fastloop.install(), warnings on import.

Behaviour shared with asyncio.run is tested on both `fastloop.run` and
`asyncio.run` (the `runner` fixture); the rest is fastloop's own API.
"""
import asyncio
import concurrent.futures
import os
import subprocess
import sys
import warnings

import pytest

from conftest import _count_fds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fastloop():
    import fastloop

    return fastloop


def _is_fastloop(loop):
    import fastloop._core

    return isinstance(loop, fastloop._core.Loop)


@pytest.fixture(params=["fastloop", "asyncio"])
def runner(request):
    """`run(coro, **kw)` of each kind; checks that no fd leaks."""
    if request.param == "fastloop":
        fn = _fastloop().run
    else:
        fn = asyncio.run
    fds = _count_fds()
    yield fn
    assert _count_fds() <= fds, "file descriptors leaked"
    assert asyncio._get_running_loop() is None


@pytest.fixture
def reset_policy():
    yield
    asyncio.set_event_loop_policy(None)


def test_run_returns_result(runner):
    seen = {}

    async def main(x):
        seen["loop"] = asyncio.get_running_loop()
        await asyncio.sleep(0)
        return x * 2

    assert runner(main(21)) == 42
    lp = seen["loop"]
    if runner is asyncio.run:
        assert isinstance(lp, asyncio.BaseEventLoop)
    else:
        assert _is_fastloop(lp)
    assert lp.is_closed()


def test_run_propagates_exception(runner):
    async def main():
        await asyncio.sleep(0)
        raise KeyError("from main")

    with pytest.raises(KeyError):
        runner(main())


def test_run_cancels_leftover_tasks(runner):
    log = []

    async def leftover():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            log.append("cancelled")
            raise

    async def main():
        t = asyncio.ensure_future(leftover())
        await asyncio.sleep(0)
        return t

    task = runner(main())
    assert log == ["cancelled"]
    assert task.cancelled()


def test_run_shuts_down_asyncgens(runner):
    log = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            log.append("closed")

    g = agen()

    async def main():
        return await g.__anext__()

    assert runner(main()) == 1
    assert log == ["closed"]


def test_run_shuts_down_default_executor(runner):
    ex = concurrent.futures.ThreadPoolExecutor(1)

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ex)
        return await loop.run_in_executor(None, lambda: "in thread")

    try:
        assert runner(main()) == "in thread"
        with pytest.raises(RuntimeError):
            ex.submit(lambda: None)
    finally:
        ex.shutdown(wait=True)


@pytest.mark.parametrize("debug", [True, False])
def test_run_debug_flag(runner, debug):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert runner(main(), debug=debug) is debug


def test_run_from_running_loop_raises(runner):
    async def inner():
        pass

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError):
                runner(coro)
        finally:
            coro.close()
        return "ok"

    assert asyncio.run(main()) == "ok"


def test_run_non_coroutine_raises_value_error(runner):
    with pytest.raises(ValueError):
        runner(lambda: None)


# -- fastloop.run's own contract ---------------------------------------------------


def test_fastloop_run_rejects_non_fastloop_factory():
    fastloop = _fastloop()
    made = []

    def factory():
        lp = asyncio.SelectorEventLoop()
        made.append(lp)
        return lp

    async def main():
        return "should not run"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "never awaited" either
        with pytest.raises(TypeError):
            fastloop.run(main(), loop_factory=factory)
    assert len(made) == 1
    assert made[0].is_closed()


def test_fastloop_run_accepts_subclass_factory():
    fastloop = _fastloop()

    class MyLoop(fastloop.Loop):
        pass

    async def main():
        return type(asyncio.get_running_loop())

    assert fastloop.run(main(), loop_factory=MyLoop) is MyLoop


# -- asyncio's own entry points with fastloop ----------------------------------------


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_with_fastloop_factory():
    fastloop = _fastloop()
    seen = []

    async def main():
        lp = asyncio.get_running_loop()
        seen.append(lp)
        return await lp.run_in_executor(None, lambda: 5)

    assert asyncio.run(main(), loop_factory=fastloop.new_event_loop) == 5
    assert isinstance(seen[0], fastloop.Loop)
    assert seen[0].is_closed()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner: 3.11+")
def test_asyncio_runner_with_fastloop_factory():
    fastloop = _fastloop()
    fds = _count_fds()

    async def main(x):
        await asyncio.sleep(0)
        return asyncio.get_running_loop(), x

    with asyncio.Runner(loop_factory=fastloop.new_event_loop) as r:
        lp = r.get_loop()
        assert isinstance(lp, fastloop.Loop)
        assert r.run(main(1)) == (lp, 1)
        assert r.run(main(2)) == (lp, 2)  # same loop for every run

        async def in_executor():
            return await lp.run_in_executor(None, lambda: 3)

        assert r.run(in_executor()) == 3
    assert lp.is_closed()
    assert _count_fds() <= fds


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner: 3.11+")
def test_asyncio_runner_debug_with_fastloop():
    fastloop = _fastloop()

    async def main():
        return asyncio.get_running_loop().get_debug()

    with asyncio.Runner(loop_factory=fastloop.new_event_loop,
                        debug=True) as r:
        assert r.run(main()) is True


# -- policy and install() ------------------------------------------------------------


def test_event_loop_policy(reset_policy):
    fastloop = _fastloop()
    asyncio.set_event_loop_policy(fastloop.EventLoopPolicy())
    assert isinstance(asyncio.get_event_loop_policy(), fastloop.EventLoopPolicy)
    lp = asyncio.new_event_loop()
    try:
        assert isinstance(lp, fastloop.Loop)
    finally:
        lp.close()

    async def main():
        return asyncio.get_running_loop()

    lp = asyncio.run(main())
    assert isinstance(lp, fastloop.Loop)
    assert lp.is_closed()


def test_event_loop_policy_set_event_loop(reset_policy):
    fastloop = _fastloop()
    policy = fastloop.EventLoopPolicy()
    asyncio.set_event_loop_policy(policy)
    lp = fastloop.new_event_loop()
    try:
        policy.set_event_loop(lp)  # requires an AbstractEventLoop instance
        assert policy.get_event_loop() is lp
    finally:
        policy.set_event_loop(None)
        lp.close()


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="install() is deprecated on 3.12+")
def test_install_deprecated(reset_policy):
    fastloop = _fastloop()
    with pytest.warns(DeprecationWarning):
        fastloop.install()
    assert isinstance(asyncio.get_event_loop_policy(), fastloop.EventLoopPolicy)


@pytest.mark.skipif(sys.version_info >= (3, 12),
                    reason="install() warns on 3.12+")
def test_install_before_312(reset_policy):
    fastloop = _fastloop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastloop.install()
    assert isinstance(asyncio.get_event_loop_policy(), fastloop.EventLoopPolicy)
    lp = asyncio.new_event_loop()
    try:
        assert isinstance(lp, fastloop.Loop)
    finally:
        lp.close()


# -- no warnings -------------------------------------------------------------------------


def _python(*args):
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("flags", [["-W", "error"], ["-X", "dev", "-W", "error"]],
                         ids=["W-error", "dev-W-error"])
def test_import_emits_no_warning(flags):
    out = _python(*flags, "-c", "import fastloop")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


def test_run_under_w_error_emits_no_warning():
    code = (
        "import asyncio, fastloop\n"
        "async def main():\n"
        "    lp = asyncio.get_running_loop()\n"
        "    await asyncio.sleep(0.001)\n"
        "    await lp.run_in_executor(None, sum, [1, 2])\n"
        "    return type(lp).__name__\n"
        "print(fastloop.run(main()))\n"
    )
    out = _python("-X", "dev", "-W", "error", "-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert out.stdout.strip() == "Loop"
