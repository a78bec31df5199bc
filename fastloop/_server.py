"""fastloop's Server: what ``loop.create_server()`` and
``loop.create_unix_server()`` return.

It behaves like ``asyncio.base_events.Server`` of Python 3.13 on every
supported version: ``wait_closed()`` waits until the server is closed *and*
every connection it accepted is gone (the 3.12.1+ semantics), and
``close_clients()``/``abort_clients()`` exist everywhere. As in asyncio the
loop's ``_start_serving``/``_stop_serving`` do the accepting (in C: one
``_core.Listener`` per listening socket); the C transports call
``_attach``/``_detach`` so that the server knows its live connections.
"""

import weakref

from asyncio import events
from asyncio import exceptions
from asyncio import tasks
from asyncio import trsock

__all__ = ("Server",)


class Server(events.AbstractServer):
    """A listening server (see ``loop.create_server()``)."""

    def __init__(
        self,
        loop,
        sockets,
        protocol_factory,
        ssl_context,
        backlog,
        ssl_handshake_timeout,
        ssl_shutdown_timeout=None,
    ):
        self._loop = loop
        self._sockets = sockets
        # Weak references: an abandoned transport must stay collectable (so
        # that its ResourceWarning fires).
        self._clients = weakref.WeakSet()
        # Futures of wait_closed(); None once closed and without clients.
        self._waiters = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut = None

    def __repr__(self):
        return f"<{self.__class__.__name__} sockets={self.sockets!r}>"

    # -- called by the C transports ------------------------------------------

    def _attach(self, transport):
        self._clients.add(transport)

    def _detach(self, transport):
        self._clients.discard(transport)
        if len(self._clients) == 0 and self._sockets is None:
            self._wakeup()

    def _wakeup(self):
        waiters = self._waiters
        self._waiters = None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- serving --------------------------------------------------------------

    def _start_serving(self):
        if self._serving or self._sockets is None:
            return
        self._serving = True
        for sock in self._sockets:
            sock.listen(self._backlog)
            # The loop makes a _core.Listener for the socket
            # (NetworkMixin._start_serving, asyncio's internal contract).
            self._loop._start_serving(
                self._protocol_factory,
                sock,
                self._ssl_context,
                self,
                self._backlog,
                self._ssl_handshake_timeout,
                self._ssl_shutdown_timeout,
            )

    def get_loop(self):
        return self._loop

    def is_serving(self):
        return self._serving

    @property
    def sockets(self):
        if self._sockets is None:
            return ()
        return tuple(trsock.TransportSocket(s) for s in self._sockets)

    def close(self):
        """Stop listening and close the listening sockets.

        Connections already accepted stay open (see close_clients()).
        """
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        try:
            for sock in sockets:
                self._loop._stop_serving(sock)
        finally:
            self._serving = False
            fut = self._serving_forever_fut
            if fut is not None and not fut.done():
                fut.cancel()
                self._serving_forever_fut = None
            if len(self._clients) == 0:
                self._wakeup()

    def close_clients(self):
        """Close every connection accepted by this server."""
        for transport in self._clients.copy():
            transport.close()

    def abort_clients(self):
        """Abort every connection accepted by this server."""
        for transport in self._clients.copy():
            transport.abort()

    async def start_serving(self):
        """Start accepting connections (a no-op if already serving)."""
        self._start_serving()
        # One loop iteration, as asyncio does (its add_reader calls are
        # effective after it).
        await tasks.sleep(0)

    async def serve_forever(self):
        """Accept connections until cancelled; then close the server and
        wait for its connections to finish."""
        if self._serving_forever_fut is not None:
            raise RuntimeError(
                f"server {self!r} is already being awaited on serve_forever()"
            )
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")

        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except exceptions.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self):
        """Wait until the server is closed and all its connections are gone.

        Python 3.12.1+ semantics on every version: waits while the server is
        open, and after close() while accepted connections remain.
        """
        if self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter
