import asyncio

from . import _core
from ._base import BaseLoopMixin

__all__ = ("Loop",)

# At runtime the bases also include the networking mixins (fastloop/_net.py:
# NetworkMixin, which brings SockOpsMixin; fastloop/_udp.py: DatagramMixin)
# and fastloop/_subprocess.py: SubprocessMixin. They implement methods of
# asyncio.AbstractEventLoop with the same signatures, so the stub leaves
# them out: type checkers then use typeshed's per-version signatures for
# create_connection(), create_server(), create_datagram_endpoint(),
# sock_*(), connect_read_pipe(), subprocess_exec() and the rest.
class Loop(_core.Loop, BaseLoopMixin, asyncio.AbstractEventLoop):  # type: ignore[misc]
    def __init__(self) -> None: ...
    def set_debug(self, enabled: bool) -> None: ...
