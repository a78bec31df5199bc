"""Live loop statistics: the Python half (docs/statistics.md).

The counters and timings live in C (``Loop.stats()``, ``reset_stats()``,
``configure_stats()``, src/stats.c). This module names slow callbacks for
the C core and provides the module-level helpers ``fastloop.stats()``,
``fastloop.reset_stats()`` and the periodic logger
``fastloop.start_stats_logger()``.
"""

import asyncio
import functools
import logging
import threading
from typing import Dict, List, TypedDict

__all__ = ("stats", "reset_stats", "start_stats_logger", "StatsLogger")

_log = logging.getLogger("fastloop.stats")


class SlowCallback(TypedDict):
    """An entry of ``stats()["slowest"]``."""

    name: str
    seconds: float
    at: float


class LoopStats(TypedDict):
    """What ``Loop.stats()`` returns (docs/statistics.md)."""

    time: float
    since_reset: float
    iterations: int
    callbacks_run: int
    io_events: int
    timers_scheduled: int
    timers_fired: int
    timers_cancelled: int
    poll_seconds: float
    callback_seconds: float
    lag: float
    lag_max: float
    lag_mean: float
    block: float
    block_current: float
    block_max: float
    slow_iterations: int
    slowest: List[SlowCallback]
    ready: int
    timers: int
    free_handles: int
    stream_buffer_pool: int
    readers: int
    writers: int
    fds_watched: int
    transports: Dict[str, int]
    slow_threshold: float
    time_callbacks: bool
    probing: bool
    probe_stage: int
    poller: str


class StatsConfig(TypedDict):
    """What ``Loop.configure_stats()`` returns."""

    slow_threshold: float
    time_callbacks: bool


def _task_of(cb):
    """The Task whose step or wake-up `cb` is, else None."""
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return owner
    return None


def _qualname(obj):
    while isinstance(obj, functools.partial):
        obj = obj.func
    name = getattr(obj, "__qualname__", None)
    if not isinstance(name, str):
        name = type(obj).__qualname__
    return name


def callback_name(handle):
    """A short name for what `handle` runs.

    A Task's step or wake-up is named after the task and its coroutine
    (``Task 'Task-3' main.<locals>.worker``); any other callback by its
    ``__qualname__`` (functools.partial unwrapped).
    """
    cb = getattr(handle, "_callback", None)
    if cb is None:  # cancelled while it ran
        return type(handle).__qualname__
    task = _task_of(cb)
    if task is not None:
        coro = task.get_coro()
        return "Task %r %s" % (task.get_name(), _qualname(coro))
    return _qualname(cb)


def _resolve(loop, what):
    if loop is None:
        loop = asyncio.get_running_loop()
    if not callable(getattr(loop, "stats", None)) or not callable(
        getattr(loop, "reset_stats", None)
    ):
        raise TypeError(
            "fastloop.%s() needs a fastloop loop, got %r" % (what, loop)
        )
    return loop


def stats(loop=None):
    """``loop.stats()``; `loop` defaults to the running loop."""
    return _resolve(loop, "stats").stats()


def reset_stats(loop=None):
    """``loop.reset_stats()``; `loop` defaults to the running loop."""
    _resolve(loop, "reset_stats").reset_stats()


def _ms(seconds):
    return "%.1f ms" % (seconds * 1e3)


_COUNTERS = (
    "iterations", "callbacks_run", "io_events", "timers_scheduled",
    "timers_fired", "timers_cancelled", "poll_seconds", "callback_seconds",
    "since_reset",
)


def interval_delta(prev, cur):
    """The counters of `cur` minus those of `prev` (a reset in between
    counts from zero)."""
    if prev is None or cur["since_reset"] < prev["since_reset"]:
        return {k: cur[k] for k in _COUNTERS}
    return {k: cur[k] - prev[k] for k in _COUNTERS}


def format_stats(cur, delta):
    """One log line: the interval's counters, then gauges and maxima."""
    busy = delta["poll_seconds"] + delta["callback_seconds"]
    busy = 100.0 * delta["callback_seconds"] / busy if busy > 0 else 0.0
    parts = [
        "%d iterations, %d callbacks, %d timers fired, %d I/O events in "
        "%.1f s" % (
            delta["iterations"], delta["callbacks_run"],
            delta["timers_fired"], delta["io_events"], delta["since_reset"],
        ),
        "busy %.1f%%" % busy,
        "lag %s (max %s)" % (_ms(cur["lag"]), _ms(cur["lag_max"])),
        "block max %s, %d slow iterations" % (
            _ms(cur["block_max"]), cur["slow_iterations"]),
        "ready %d, timers %d, readers %d, writers %d" % (
            cur["ready"], cur["timers"], cur["readers"], cur["writers"]),
    ]
    if cur["transports"]:
        parts.append("transports " + ", ".join(
            "%s %d" % kv for kv in sorted(cur["transports"].items())))
    if cur["slowest"]:
        parts.append("slowest: " + ", ".join(
            "%s %s" % (e["name"], _ms(e["seconds"]))
            for e in cur["slowest"][:3]))
    return "fastloop stats: " + "; ".join(parts)


class StatsLogger:
    """Logs ``loop.stats()`` every `interval` seconds (a ``call_later``
    chain on the loop). Counters are per interval; maxima and the slowest
    callbacks are since the last reset. Each record carries the full dict
    as ``record.fastloop_stats``. Stop it with ``stop()``."""

    def __init__(self, loop, interval, logger, level):
        interval = float(interval)
        if not interval > 0:
            raise ValueError("interval must be a positive number of seconds")
        self._loop = loop
        self.interval = interval
        self.logger = logger if logger is not None else _log
        self.level = level
        self._prev = loop.stats()
        self._handle = loop.call_later(interval, self._tick)

    @property
    def running(self):
        return self._handle is not None

    def _tick(self):
        cur = self._loop.stats()
        delta = interval_delta(self._prev, cur)
        self._prev = cur
        self._handle = self._loop.call_later(self.interval, self._tick)
        try:
            self.logger.log(self.level, "%s", format_stats(cur, delta),
                            extra={"fastloop_stats": cur})
        except Exception:  # a broken handler must not stop the logger
            _log.exception("fastloop stats logger: logging failed")

    def _cancel(self):
        h, self._handle = self._handle, None
        if h is not None:
            h.cancel()

    def stop(self):
        """Stop logging (from any thread). Idempotent."""
        loop = self._loop
        if (loop.is_running() and not loop.is_closed() and
                loop._thread_id != threading.get_ident()):
            loop.call_soon_threadsafe(self._cancel)
        else:
            self._cancel()

    def __repr__(self):
        return "<StatsLogger interval=%s %s>" % (
            self.interval, "running" if self.running else "stopped")


def start_stats_logger(loop=None, *, interval=60.0, logger=None,
                       level=logging.INFO):
    """Log the loop's statistics every `interval` seconds.

    `loop` defaults to the running loop; `logger` to ``fastloop.stats``.
    Returns a StatsLogger; call its ``stop()`` to end it.
    """
    loop = _resolve(loop, "start_stats_logger")
    return StatsLogger(loop, interval, logger, level)
