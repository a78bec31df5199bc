import asyncio
import logging
from typing import Any, Dict, List, Optional, TypedDict

__all__ = ("stats", "reset_stats", "start_stats_logger", "StatsLogger")

class SlowCallback(TypedDict):
    name: str
    seconds: float
    at: float

class LoopStats(TypedDict):
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
    slow_threshold: float
    time_callbacks: bool

def callback_name(handle: asyncio.Handle) -> str: ...
def stats(loop: Optional[asyncio.AbstractEventLoop] = None) -> LoopStats: ...
def reset_stats(loop: Optional[asyncio.AbstractEventLoop] = None) -> None: ...
def interval_delta(prev: Optional[LoopStats], cur: LoopStats) -> Dict[str, Any]: ...
def format_stats(cur: LoopStats, delta: Dict[str, Any]) -> str: ...

class StatsLogger:
    interval: float
    logger: logging.Logger
    level: int
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        logger: Optional[logging.Logger],
        level: int,
    ) -> None: ...
    @property
    def running(self) -> bool: ...
    def stop(self) -> None: ...

def start_stats_logger(
    loop: Optional[asyncio.AbstractEventLoop] = None,
    *,
    interval: float = 60.0,
    logger: Optional[logging.Logger] = None,
    level: int = logging.INFO,
) -> StatsLogger: ...
