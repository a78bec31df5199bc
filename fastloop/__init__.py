"""fastloop: an asyncio event loop for CPython written in C.

Use it with ``fastloop.run(main())``, ``asyncio.run(main(),
loop_factory=fastloop.new_event_loop)`` (3.12+) or
``asyncio.Runner(loop_factory=fastloop.new_event_loop)`` (3.11+).
``fastloop.EventLoopPolicy`` and ``fastloop.install()`` exist for code that
still relies on event loop policies.
"""

import asyncio as _asyncio
import os as _os
import sys as _sys
import warnings as _warnings

from . import _core
from ._loop import Loop
from ._stats import StatsLogger, reset_stats, start_stats_logger, stats

__version__ = "0.1.0"

__all__ = (
    "Loop", "new_event_loop", "run", "install", "EventLoopPolicy", "stats",
    "reset_stats", "start_stats_logger", "StatsLogger", "native_streams",
)


def native_streams(enabled=None):
    """Whether fastloop's stream transports adopt asyncio's streams.

    When on (the default), a transport whose protocol is asyncio's own
    ``StreamReaderProtocol`` (what ``asyncio.open_connection()`` and
    ``asyncio.start_server()`` make) moves its ``StreamReader`` and
    ``StreamWriter`` to subclasses whose ``read(n)``, ``feed_data()``,
    ``write()`` and ``drain()`` are written in C, and feeds received bytes
    straight into the reader's buffer. ``isinstance`` still holds; only
    ``type(reader)`` differs. Returns the previous setting and sets it when
    ``enabled`` is given; ``FASTLOOP_NATIVE_STREAMS=0`` in the environment
    turns it off at import. It applies to transports made afterwards.
    """
    return _core._native_streams(enabled)


if _os.environ.get("FASTLOOP_NATIVE_STREAMS", "") == "0":
    native_streams(False)


def new_event_loop():
    """Return a new fastloop event loop."""
    return Loop()


def run(main, *, debug=None, loop_factory=new_event_loop, **run_kwargs):
    """Run coroutine ``main`` on a new fastloop loop and return its result.

    The asyncio.run() of the running Python, with ``loop_factory`` defaulting
    to fastloop: leftover tasks are cancelled, async generators and the
    default executor are shut down and the loop is closed. ``loop_factory``
    must return a fastloop.Loop (or a subclass): TypeError otherwise.
    """
    if _asyncio.events._get_running_loop() is not None:
        raise RuntimeError(
            "fastloop.run() cannot be called from a running event loop"
        )
    if not _asyncio.iscoroutine(main):
        raise ValueError("a coroutine was expected, got {!r}".format(main))

    async def wrapper():
        loop = _asyncio.events._get_running_loop()
        if not isinstance(loop, Loop):
            main.close()  # no "coroutine was never awaited" warning
            raise TypeError("fastloop.run() uses a non-fastloop event loop")
        return await main

    vi = _sys.version_info[:2]
    if vi >= (3, 12):
        return _asyncio.run(
            wrapper(), loop_factory=loop_factory, debug=debug, **run_kwargs
        )
    if vi == (3, 11):
        with _asyncio.Runner(
            loop_factory=loop_factory, debug=debug, **run_kwargs
        ) as runner:
            return runner.run(wrapper())
    return _run_legacy(wrapper, loop_factory, debug, run_kwargs)


def _run_legacy(wrapper, loop_factory, debug, run_kwargs):
    # asyncio.run() of 3.9/3.10, with a loop factory.
    if run_kwargs:
        raise TypeError(
            "run() got an unexpected keyword argument {!r}".format(
                next(iter(run_kwargs))
            )
        )
    loop = loop_factory()
    try:
        _asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(wrapper())
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            _asyncio.set_event_loop(None)
            loop.close()


def _cancel_all_tasks(loop):
    # asyncio.runners._cancel_all_tasks
    to_cancel = _asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for task in to_cancel:
        task.cancel()
    loop.run_until_complete(_asyncio.gather(*to_cancel, return_exceptions=True))
    for task in to_cancel:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during asyncio.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


# EventLoopPolicy and install() are created on first access so that importing
# fastloop never touches asyncio's event loop policy classes (deprecated in
# Python 3.14).
_lazy = {}


def _make_policy_class():
    class EventLoopPolicy(_asyncio.DefaultEventLoopPolicy):
        """Event loop policy whose new_event_loop() returns a fastloop.Loop.

        Prefer fastloop.run() or asyncio.Runner/asyncio.run with
        ``loop_factory=fastloop.new_event_loop``.
        """

        _loop_factory = Loop

        def __repr__(self):
            return "<fastloop.EventLoopPolicy>"

    EventLoopPolicy.__module__ = __name__
    return EventLoopPolicy


def _make_install():
    def install():
        """Set fastloop.EventLoopPolicy as asyncio's event loop policy.

        Deprecated on Python 3.12+: use fastloop.run() instead.
        """
        if _sys.version_info >= (3, 12):
            _warnings.warn(
                "fastloop.install() is deprecated in favor of fastloop.run() "
                "starting with Python 3.12.",
                DeprecationWarning,
                stacklevel=2,
            )
        _asyncio.set_event_loop_policy(__getattr__("EventLoopPolicy")())

    install.__module__ = __name__
    return install


_factories = {"EventLoopPolicy": _make_policy_class, "install": _make_install}


def __getattr__(name):
    try:
        return _lazy[name]
    except KeyError:
        pass
    factory = _factories.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    obj = _lazy[name] = factory()
    return obj


def __dir__():
    return sorted(set(globals()) | set(_factories))
