"""fastloop.Loop: the C core plus the Python layer.

The MRO is ``Loop -> _core.Loop -> NetworkMixin -> DatagramMixin ->
SubprocessMixin -> BaseLoopMixin -> AbstractEventLoop``: C methods win, the
Python layer (fastloop/_net.py for networking, fastloop/_udp.py for datagram
endpoints, fastloop/_subprocess.py for pipes and child processes,
fastloop/_base.py for the rest) fills in the cold paths, and anything none
implements raises NotImplementedError from
``asyncio.AbstractEventLoop``.
"""

import asyncio
import os
from asyncio import coroutines

from . import _core
from ._base import BaseLoopMixin
from ._net import NetworkMixin
from ._subprocess import SubprocessMixin
from ._udp import DatagramMixin

__all__ = ("Loop",)


class Loop(
    _core.Loop, NetworkMixin, DatagramMixin, SubprocessMixin, BaseLoopMixin,
    asyncio.AbstractEventLoop,
):
    """An asyncio event loop implemented in C (epoll, Linux).

    Subclassable; instances have a ``__dict__``.
    """

    def __init__(self):
        # The C initialiser (if _core.Loop defines one) does not chain to the
        # mixin, so the Python-level state is set up explicitly afterwards.
        super().__init__()
        self._fl_init_base()
        self._fl_init_net()
        # Like BaseEventLoop.__init__: PYTHONASYNCIODEBUG / -X dev.
        self.set_debug(coroutines._is_debug_mode())
        # FASTLOOP_IO_FIRST=1: uvloop's order of I/O and callbacks (see
        # set_io_first and README "Differences").
        if os.environ.get("FASTLOOP_IO_FIRST", "") not in ("", "0"):
            self.set_io_first(True)
        self._fl_initialised = True

    def set_debug(self, enabled):
        """Enable or disable debug mode (BaseEventLoop.set_debug).

        The flag lives in C; while the loop runs, coroutine origin tracking
        (a per-thread setting) is switched in the loop's own thread.
        """
        _core.Loop.set_debug(self, enabled)
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, enabled)
