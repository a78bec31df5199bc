"""add_signal_handler/remove_signal_handler, wake-ups by signals, ^C.

Real signals sent to this process (os.kill, signal.pthread_kill,
signal.setitimer), real threads; every test runs on fastloop and on asyncio's
SelectorEventLoop. Signal dispositions, the wakeup fd, the thread's signal mask
and the interval timer are restored after each test.
"""
import asyncio
import os
import signal
import sys
import threading
import time

import pytest

from conftest import make_loop

SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGINT)

# How long a signal-driven wake-up may take on a loaded 2-core VM. The loops
# below sleep for 5-10 s when nothing wakes them, so this still tells a prompt
# wake-up from none.
PROMPT = 2.0


@pytest.fixture(autouse=True)
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
    assert saved[signal.SIGINT] is signal.default_int_handler, (
        "tests expect the default SIGINT handler")
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(-1)


class Later:
    """Run fn(*args) in a thread after `delay` seconds."""

    def __init__(self, delay, fn, *args):
        self.thread = threading.Timer(delay, fn, args)
        self.thread.start()

    def join(self):
        self.thread.cancel()
        self.thread.join()


def watchdog(loop, timeout=10.0):
    """Stop a run_forever() that nothing else stops, without adding a timer
    to the loop (so the loop really sleeps in its poll call)."""
    return Later(timeout, loop.call_soon_threadsafe, loop.stop)


def kill_self(sig):
    os.kill(os.getpid(), sig)


# -- registration and removal -----------------------------------------------


def test_handler_called_with_args(loop):
    got = []

    def handler(*args):
        got.append(args)
        assert asyncio.get_running_loop() is loop
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler, 1, "two")
    wd = watchdog(loop)
    sender = Later(0.05, kill_self, signal.SIGUSR1)
    try:
        loop.run_forever()
    finally:
        sender.join()
        wd.join()
    assert got == [(1, "two")]


def test_signal_received_before_run_is_handled_on_run(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
    kill_self(signal.SIGUSR1)  # delivered now, handled once the loop runs
    assert got == []
    loop.run_until_complete(asyncio.sleep(0.05))
    assert got == ["usr1"]


def test_two_signals_two_handlers(loop):
    got = []

    def handler(name):
        got.append(name)
        if len(got) == 2:
            loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler, "usr1")
    loop.add_signal_handler(signal.SIGUSR2, handler, "usr2")

    def send_both():
        kill_self(signal.SIGUSR1)
        kill_self(signal.SIGUSR2)

    wd = watchdog(loop)
    sender = Later(0.05, send_both)
    try:
        loop.run_forever()
    finally:
        sender.join()
        wd.join()
    assert sorted(got) == ["usr1", "usr2"]


def test_replacing_handler(loop):
    first, second = [], []
    loop.add_signal_handler(signal.SIGUSR1, first.append, 1)
    loop.add_signal_handler(signal.SIGUSR1, second.append, 2)
    kill_self(signal.SIGUSR1)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert first == []
    assert second == [2]


def test_remove_returns_true_then_false(loop):
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL,
                                                     signal.SIG_IGN)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_remove_sigint_restores_default_int_handler(loop):
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_handler_removed_by_itself(loop):
    got = []

    def handler():
        got.append(loop.remove_signal_handler(signal.SIGUSR1))

    loop.add_signal_handler(signal.SIGUSR1, handler)
    kill_self(signal.SIGUSR1)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert got == [True]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_handler_exception_goes_to_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def handler():
        raise ZeroDivisionError("in signal handler")

    loop.add_signal_handler(signal.SIGUSR1, handler)
    kill_self(signal.SIGUSR1)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)
    assert contexts[0]["message"].startswith("Exception in callback")
    # The handler stays installed.
    kill_self(signal.SIGUSR1)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert len(contexts) == 2


@pytest.mark.parametrize("sig", [0, -1, signal.NSIG, 1000])
def test_invalid_signal_value_error(loop, sig):
    with pytest.raises(ValueError):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(ValueError):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize("sig", ["SIGUSR1", None, 10.0])
def test_non_int_signal_type_error(loop, sig):
    with pytest.raises(TypeError):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(TypeError):
        loop.remove_signal_handler(sig)


def test_coroutine_callback_type_error(loop):
    async def coro_fn():
        pass

    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR1, coro_fn)
    coro = coro_fn()
    try:
        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR1, coro)
    finally:
        coro.close()
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
def test_uncatchable_signal_runtime_error(loop, sig):
    with pytest.raises(RuntimeError, match="cannot be caught"):
        loop.add_signal_handler(sig, lambda: None)
    assert loop.remove_signal_handler(sig) is False


def test_add_signal_handler_on_closed_loop(loop):
    loop.close()
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_not_in_main_thread(loop):
    """asyncio (3.9-3.13): adding from another thread raises RuntimeError
    (set_wakeup_fd's ValueError converted); removing a signal that has no
    handler just returns False."""
    results = {}

    def worker():
        try:
            loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        except BaseException as exc:
            results["add"] = exc
        try:
            results["remove"] = loop.remove_signal_handler(signal.SIGUSR2)
        except BaseException as exc:
            results["remove"] = exc

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert isinstance(results["add"], RuntimeError), results
    assert results["remove"] is False
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_remove_registered_not_in_main_thread(loop):
    """asyncio: signal.signal() refuses to run outside the main thread, so
    removing a registered handler from another thread raises ValueError."""
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    results = {}

    def worker():
        try:
            results["remove"] = loop.remove_signal_handler(signal.SIGUSR1)
        except BaseException as exc:
            results["remove"] = exc

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert isinstance(results["remove"], ValueError), results


def test_handlers_removed_at_close(loop_kind):
    lp = make_loop(loop_kind)
    try:
        lp.add_signal_handler(signal.SIGUSR1, lambda: None)
        lp.add_signal_handler(signal.SIGUSR2, lambda: None)
        lp.add_signal_handler(signal.SIGINT, lambda: None)
        lp.run_until_complete(asyncio.sleep(0))
    finally:
        lp.close()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # No wakeup fd pointing at the closed loop's (now closed) descriptor.
    assert signal.set_wakeup_fd(-1) == -1
    assert lp.remove_signal_handler(signal.SIGUSR1) is False


# -- wake-ups -----------------------------------------------------------------


def _run_forever_timed(loop):
    wd = watchdog(loop)
    t0 = time.monotonic()
    try:
        loop.run_forever()
    finally:
        wd.join()
    return time.monotonic() - t0


def test_signal_from_thread_wakes_idle_loop(loop):
    """No timers, nothing ready: the loop sleeps in its poll call until the
    signal (os.kill from another thread, after a delay) wakes it."""
    got = []

    def handler():
        got.append(1)
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler)
    sender = Later(0.2, kill_self, signal.SIGUSR1)
    try:
        elapsed = _run_forever_timed(loop)
    finally:
        sender.join()
    assert got == [1]
    assert elapsed < PROMPT


def test_pthread_kill_main_thread_wakes_loop(loop):
    got = []

    def handler():
        got.append(1)
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler)
    sender = Later(0.2, signal.pthread_kill, threading.main_thread().ident,
                   signal.SIGUSR1)
    try:
        elapsed = _run_forever_timed(loop)
    finally:
        sender.join()
    assert got == [1]
    assert elapsed < PROMPT


def test_signal_delivered_to_other_thread_wakes_loop(loop):
    """The main thread blocks SIGUSR1, so the kernel delivers it to the
    sending thread: only the loop's wakeup fd can wake the main thread."""
    got = []
    go = threading.Event()

    def handler():
        got.append(1)
        loop.stop()

    def sender():
        go.wait(10)
        time.sleep(0.2)
        kill_self(signal.SIGUSR1)

    loop.add_signal_handler(signal.SIGUSR1, handler)
    # Start the thread before blocking: it inherits an unblocked mask.
    t = threading.Thread(target=sender)
    t.start()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    try:
        go.set()
        elapsed = _run_forever_timed(loop)
    finally:
        t.join()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
    assert got == [1]
    assert elapsed < PROMPT


def test_sigalrm_from_setitimer(loop):
    got = []

    def handler(arg):
        got.append(arg)
        loop.stop()

    loop.add_signal_handler(signal.SIGALRM, handler, "alarm")
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    elapsed = _run_forever_timed(loop)
    assert got == ["alarm"]
    assert elapsed < PROMPT


def test_repeated_signals_each_wake_loop(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: got.append(1))

    async def main():
        for i in range(5):
            kill_self(signal.SIGUSR1)
            deadline = time.monotonic() + PROMPT
            while len(got) <= i:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.001)

    loop.run_until_complete(asyncio.wait_for(main(), 10))
    assert got == [1] * 5


# -- Python-level handlers (signal.signal) while the loop is idle -------------


class Interrupted(Exception):
    pass


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@pytest.mark.parametrize("how", ["os.kill", "pthread_kill"])
def test_python_handler_that_raises_interrupts_sleep(loop, how):
    signal.signal(signal.SIGUSR1, _raise_interrupted)
    if how == "os.kill":
        sender = Later(0.2, kill_self, signal.SIGUSR1)
    else:
        sender = Later(0.2, signal.pthread_kill,
                       threading.main_thread().ident, signal.SIGUSR1)
    t0 = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            loop.run_until_complete(asyncio.sleep(10))
    finally:
        sender.join()
    assert time.monotonic() - t0 < PROMPT
    assert not loop.is_running()
    # The loop is usable afterwards.
    assert loop.run_until_complete(asyncio.sleep(0, "again")) == "again"


def test_python_handler_that_raises_interrupts_run_forever(loop):
    """No timers at all: the loop sleeps without a timeout."""
    signal.signal(signal.SIGUSR1, _raise_interrupted)
    sender = Later(0.2, kill_self, signal.SIGUSR1)
    try:
        with pytest.raises(Interrupted):
            _run_forever_timed(loop)
    finally:
        sender.join()
    assert not loop.is_running()


def test_python_handler_that_stops_loop(loop):
    """A handler that asks the loop to stop the documented way
    (call_soon_threadsafe) ends run_until_complete promptly."""
    called = []

    def handler(signum, frame):
        called.append(signum)
        loop.call_soon_threadsafe(loop.stop)

    signal.signal(signal.SIGUSR1, handler)
    sender = Later(0.2, kill_self, signal.SIGUSR1)
    t0 = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match="stopped before"):
            loop.run_until_complete(asyncio.sleep(10))
    finally:
        sender.join()
    assert time.monotonic() - t0 < PROMPT
    assert called == [signal.SIGUSR1]


def test_python_handler_runs_promptly_in_idle_loop(loop):
    """A Python handler that neither raises nor stops runs promptly while the
    loop sleeps without timers, not only when something else wakes it (the
    stopper thread, 3 s later at most)."""
    called = []
    ran = threading.Event()

    def handler(signum, frame):
        called.append(time.monotonic())
        ran.set()

    def stopper():
        # Stops the loop as soon as the handler has run, or after 3 s.
        ran.wait(3.0)
        loop.call_soon_threadsafe(loop.stop)

    signal.signal(signal.SIGUSR1, handler)
    sender = Later(0.2, kill_self, signal.SIGUSR1)
    stop_thread = threading.Thread(target=stopper)
    stop_thread.start()
    t0 = time.monotonic()
    try:
        loop.run_forever()
    finally:
        sender.join()
        ran.set()
        stop_thread.join()
    assert called
    assert called[0] - t0 < 1.5


# -- KeyboardInterrupt ----------------------------------------------------------


def test_sigint_default_handler_raises_keyboardinterrupt(loop):
    sender = Later(0.2, kill_self, signal.SIGINT)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(asyncio.sleep(10))
    finally:
        sender.join()
    assert time.monotonic() - t0 < PROMPT
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0, "again")) == "again"


def test_sigint_during_run_forever_without_timers(loop):
    sender = Later(0.2, kill_self, signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            elapsed = _run_forever_timed(loop)
            assert elapsed < 0, "run_forever returned without an exception"
    finally:
        sender.join()
    assert not loop.is_running()


def test_sigint_while_callbacks_keep_loop_busy(loop):
    """^C also interrupts a loop that never sleeps (ready queue never
    empty)."""
    def spin():
        loop.call_soon(spin)

    loop.call_soon(spin)
    sender = Later(0.2, kill_self, signal.SIGINT)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            _run_forever_timed(loop)
    finally:
        sender.join()
    assert time.monotonic() - t0 < PROMPT


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner: 3.11+")
def test_runner_first_sigint_cancels_main_task(loop_kind):
    seen = []

    async def main():
        seen.append(type(asyncio.get_running_loop()))
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    sender = Later(0.3, kill_self, signal.SIGINT)
    t0 = time.monotonic()
    try:
        with asyncio.Runner(loop_factory=lambda: make_loop(loop_kind)) as r:
            # The Runner installs its own SIGINT handler around run().
            with pytest.raises(KeyboardInterrupt):
                r.run(main())
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            # The runner (and its loop) is still usable.
            assert r.run(asyncio.sleep(0, "after")) == "after"
    finally:
        sender.join()
    assert time.monotonic() - t0 < PROMPT
    assert seen[1:] == ["cancelled"]
    if loop_kind == "fastloop":
        import fastloop._core
        assert issubclass(seen[0], fastloop._core.Loop)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner: 3.11+")
def test_runner_second_sigint_raises_keyboardinterrupt(loop_kind):
    """The main task swallows the first cancellation; the second ^C raises
    KeyboardInterrupt from the Runner's handler, out of the loop's poll."""
    seen = []

    async def main():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("first cancel swallowed")
        await asyncio.sleep(10)  # Runner.close() cancels this one

    def send_twice():
        kill_self(signal.SIGINT)
        time.sleep(0.3)
        kill_self(signal.SIGINT)

    sender = Later(0.3, send_twice)
    t0 = time.monotonic()
    try:
        with asyncio.Runner(loop_factory=lambda: make_loop(loop_kind)) as r:
            with pytest.raises(KeyboardInterrupt):
                r.run(main())
    finally:
        sender.join()
    assert time.monotonic() - t0 < PROMPT + 1
    assert seen == ["first cancel swallowed"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_handler_runs_in_context_of_add_signal_handler(loop):
    import contextvars

    var = contextvars.ContextVar("var", default="default")
    seen = []
    token = var.set("at-add")
    try:
        loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append(var.get()))
    finally:
        var.reset(token)
    kill_self(signal.SIGUSR1)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert seen == ["at-add"]
