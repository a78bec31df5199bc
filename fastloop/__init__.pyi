import asyncio
import sys
from typing import Any, Callable, Coroutine, Optional, Type, TypeVar

from typing_extensions import deprecated

from ._loop import Loop as Loop
from ._stats import StatsLogger as StatsLogger
from ._stats import reset_stats as reset_stats
from ._stats import start_stats_logger as start_stats_logger
from ._stats import stats as stats

__version__: str
__all__ = (
    "Loop", "new_event_loop", "run", "install", "EventLoopPolicy", "stats",
    "reset_stats", "start_stats_logger", "StatsLogger", "native_streams",
)

_T = TypeVar("_T")

def new_event_loop() -> Loop: ...
def native_streams(enabled: Optional[bool] = None) -> bool: ...
def run(
    main: Coroutine[Any, Any, _T],
    *,
    debug: Optional[bool] = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = ...,
    **run_kwargs: Any,
) -> _T: ...

if sys.version_info >= (3, 12):
    @deprecated(
        "fastloop.install() is deprecated in favor of fastloop.run() "
        "starting with Python 3.12."
    )
    def install() -> None: ...

else:
    def install() -> None: ...

class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    _loop_factory: Type[Loop]
