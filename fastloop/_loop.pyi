import asyncio

from . import _core
from ._base import BaseLoopMixin

__all__ = ("Loop",)

class Loop(_core.Loop, BaseLoopMixin, asyncio.AbstractEventLoop):  # type: ignore[misc]
    def __init__(self) -> None: ...
    def set_debug(self, enabled: bool) -> None: ...
