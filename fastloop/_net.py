"""Stream networking methods of fastloop.Loop, in Python.

``NetworkMixin`` reproduces the asyncio methods of the running Python
(``asyncio.base_events.BaseEventLoop``, ``selector_events`` and
``unix_events``): ``create_connection`` (happy eyeballs, ``interleave``,
``all_errors``), ``create_server``, ``create_unix_connection``,
``create_unix_server``, ``connect_accepted_socket``, ``start_tls``,
``sendfile``, plus the ``sock_*`` coroutines (fastloop/_sockops.py).

Connected sockets become ``_core.StreamTransport`` objects (C); listening
sockets are served by ``_core.Listener`` (C) through fastloop._server.Server.
TLS reuses asyncio's own ``sslproto.SSLProtocol`` on top of the C transport,
as asyncio's ``_make_ssl_transport`` does.

Signatures are those of ``asyncio.SelectorEventLoop`` on the running Python
(keyword parameters added in later versions are hidden, see ``_since``);
behaviour follows the newest CPython where older versions had bugs
(``Server.wait_closed``, EADDRNOTAVAIL in ``create_server``), and
``Server.close_clients``/``abort_clients`` and the ``sock_recvfrom``/
``sock_sendto`` family exist on every version.
"""

import asyncio
import collections.abc
import errno
import functools
import inspect
import itertools
import os
import socket
import stat
import sys

from asyncio import base_events
from asyncio import constants
from asyncio import exceptions
from asyncio import protocols
from asyncio import staggered
from asyncio import streams
from asyncio import tasks
from asyncio.log import logger

try:
    import ssl
except ImportError:  # pragma: no cover
    ssl = None
    sslproto = None
else:
    from asyncio import sslproto

from . import _core
from . import _dns
from ._server import Server
from ._sockops import SockOpsMixin, check_ssl_socket

__all__ = ("NetworkMixin",)

_PY310 = sys.version_info >= (3, 10)
_PY311 = sys.version_info >= (3, 11)
_PY312 = sys.version_info >= (3, 12)
_PY313 = sys.version_info >= (3, 13)

_SendfileMode = constants._SendfileMode

# The C transport, once src/stream.c provides it.
_StreamTransport = getattr(_core, "StreamTransport", None)


def _since(**versions):
    """Hide keyword-only parameters that the running Python does not have.

    ``@_since(all_errors=(3, 12))`` on a coroutine method: on older Pythons
    the method is replaced by one with asyncio's signature of that version
    (``inspect.signature`` does not show ``all_errors``, and passing it
    raises TypeError at the call, naming asyncio's method, as calling
    asyncio's does); the implementation sees the default.
    """

    def decorate(func):
        hidden = frozenset(
            name for name, version in versions.items() if sys.version_info < version
        )
        if not hidden:
            return func
        sig = inspect.signature(func)
        params = [p for p in sig.parameters.values() if p.name not in hidden]
        # A function with exactly these parameters, so that Python itself
        # checks the call.
        defaults = {}
        text = []
        passed = []
        star = False
        for p in params:
            if p.kind is p.KEYWORD_ONLY:
                if not star:
                    text.append("*")
                    star = True
                passed.append(f"{p.name}={p.name}")
            elif p.kind is p.POSITIONAL_OR_KEYWORD:
                passed.append(p.name)
            else:  # pragma: no cover
                raise TypeError(f"_since: unsupported parameter {p}")
            if p.default is p.empty:
                text.append(p.name)
            else:
                defaults[f"_d_{p.name}"] = p.default
                text.append(f"{p.name}=_d_{p.name}")
        namespace = dict(defaults, _impl=func)
        exec(
            f"async def {func.__name__}({', '.join(text)}):\n"
            f"    return await _impl({', '.join(passed)})\n",
            namespace,
        )
        wrapper = namespace[func.__name__]
        functools.update_wrapper(wrapper, func)
        del wrapper.__wrapped__
        # Python's TypeError for a bad call names the function by its
        # __qualname__ (3.10+): asyncio's method's.
        theirs = getattr(asyncio.SelectorEventLoop, func.__name__, None)
        if theirs is not None:
            wrapper.__qualname__ = theirs.__qualname__
        return wrapper

    return decorate


if _PY311:

    def _new_ssl_protocol(
        loop,
        app_protocol,
        sslcontext,
        waiter,
        server_side,
        server_hostname,
        ssl_handshake_timeout,
        ssl_shutdown_timeout,
        call_connection_made=True,
    ):
        return sslproto.SSLProtocol(
            loop,
            app_protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            call_connection_made=call_connection_made,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )

else:

    def _new_ssl_protocol(
        loop,
        app_protocol,
        sslcontext,
        waiter,
        server_side,
        server_hostname,
        ssl_handshake_timeout,
        ssl_shutdown_timeout,
        call_connection_made=True,
    ):
        # The 3.9/3.10 SSLProtocol has no shutdown timeout.
        return sslproto.SSLProtocol(
            loop,
            app_protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            call_connection_made=call_connection_made,
            ssl_handshake_timeout=ssl_handshake_timeout,
        )


def _bind_error_text(exc):
    # The message of a failed bind(): 3.13 uses str(exc), older versions
    # the strerror.
    if _PY313 or not exc.strerror:
        return str(exc).lower()
    return exc.strerror.lower()


def _set_reuseport(sock):
    # base_events._set_reuseport
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError(
            "reuse_port not supported by socket module, "
            "SO_REUSEPORT defined but not implemented."
        )


def _is_stream_transport(transport):
    return _StreamTransport is not None and isinstance(transport, _StreamTransport)


def _protocol_paused(transport):
    """Whether ``transport`` has paused its protocol's writing."""
    paused = getattr(transport, "_protocol_paused", None)
    if paused is not None:
        return bool(paused)
    try:
        return transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]
    except (AttributeError, NotImplementedError):
        return False


class _PlainTaskLoop:
    """A view of a loop whose create_task() ignores the task factory.

    Given to asyncio.staggered.staggered_race(): its bookkeeping assumes
    that a new task does not start running before create_task() returns,
    which an eager task factory breaks (AssertionError on 3.12/3.13.0).
    """

    __slots__ = ("_loop",)

    def __init__(self, loop):
        self._loop = loop

    def create_task(self, coro, *, name=None, context=None):
        if context is not None:
            return tasks.Task(coro, loop=self._loop, name=name, context=context)
        return tasks.Task(coro, loop=self._loop, name=name)

    def __getattr__(self, name):
        return getattr(self._loop, name)


class _SendfileFallbackProtocol(protocols.Protocol):
    """Stands in for the protocol of a transport while sendfile() writes
    chunks to it (base_events._SendfileFallbackProtocol, without its
    _FlowControlMixin requirement so that C transports qualify)."""

    def __init__(self, loop, transp):
        self._loop = loop
        self._transport = transp
        self._proto = transp.get_protocol()
        self._should_resume_reading = transp.is_reading()
        self._should_resume_writing = _protocol_paused(transp)
        transp.pause_reading()
        transp.set_protocol(self)
        if self._should_resume_writing:
            self._write_ready_fut = loop.create_future()
        else:
            self._write_ready_fut = None

    async def drain(self):
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        fut = self._write_ready_fut
        if fut is None:
            return
        await fut

    def connection_made(self, transport):
        raise RuntimeError(
            "Invalid state: connection should have been established already."
        )

    def connection_lost(self, exc):
        fut = self._write_ready_fut
        if fut is not None and not fut.done():
            # Disconnecting in the middle of a transfer is an error even
            # without an exception.
            if exc is None:
                fut.set_exception(ConnectionError("Connection is closed by peer"))
            else:
                fut.set_exception(exc)
        self._proto.connection_lost(exc)

    def pause_writing(self):
        if self._write_ready_fut is not None:
            return
        self._write_ready_fut = self._loop.create_future()

    def resume_writing(self):
        fut = self._write_ready_fut
        if fut is None:
            return
        if not fut.done():
            fut.set_result(False)
        self._write_ready_fut = None

    def data_received(self, data):
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self):
        raise RuntimeError("Invalid state: reading should be paused")

    async def restore(self):
        self._transport.set_protocol(self._proto)
        if self._should_resume_reading:
            self._transport.resume_reading()
        fut = self._write_ready_fut
        if fut is not None:
            # Nobody waits for it any more.
            fut.cancel()
        if self._should_resume_writing:
            self._proto.resume_writing()


def _adopt_tls_reader(protocol):
    """Over TLS asyncio's SSLProtocol feeds the application protocol, so the
    C transport cannot adopt a StreamReaderProtocol's streams itself (README
    "Native asyncio streams"): its reader still gets the C read paths."""
    if type(protocol) is streams.StreamReaderProtocol:
        reader = protocol._stream_reader
        if reader is not None:
            _core._streams_adopt_reader(reader)


class NetworkMixin(SockOpsMixin):
    """Networking methods of fastloop.Loop (see the module docstring)."""

    def _fl_init_net(self):
        """Create the per-instance state (called by Loop.__init__)."""
        self._fl_init_sockops()
        # Listening socket -> its _core.Listener while serving.
        self._fl_listeners = {}
        # Unix listening socket -> inode of its file, removed by
        # _stop_serving (create_unix_server(cleanup_socket=True), 3.13).
        self._unix_server_sockets = {}

    # ------------------------------------------------------------------
    # Resolution

    async def _ensure_resolved(
        self, address, *, family=0, type=socket.SOCK_STREAM, proto=0, flags=0, loop=None
    ):
        # BaseEventLoop._ensure_resolved (``loop`` is accepted for
        # compatibility; it must be this loop).
        return await _dns.ensure_resolved(
            self, address, family=family, type=type, proto=proto, flags=flags
        )

    async def _create_server_getaddrinfo(self, host, port, family, flags):
        infos = await _dns.ensure_resolved(
            self, (host, port), family=family, type=socket.SOCK_STREAM, flags=flags
        )
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        return infos

    # ------------------------------------------------------------------
    # Transports

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        """A C StreamTransport over the connected ``sock``."""
        if _StreamTransport is None:  # pragma: no cover
            raise NotImplementedError("fastloop._core.StreamTransport is missing")
        return _StreamTransport(self, sock, protocol, waiter, extra, server)

    def _make_ssl_transport(
        self,
        rawsock,
        protocol,
        sslcontext,
        waiter=None,
        *,
        server_side=False,
        server_hostname=None,
        extra=None,
        server=None,
        ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
        ssl_shutdown_timeout=getattr(constants, "SSL_SHUTDOWN_TIMEOUT", None),
    ):
        """asyncio's SSLProtocol over a C StreamTransport; returns the
        application-side transport (selector_events._make_ssl_transport)."""
        _adopt_tls_reader(protocol)
        ssl_protocol = _new_ssl_protocol(
            self,
            protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport

    def _fl_wrap_accepted_ssl(
        self, sslcontext, ssl_handshake_timeout, ssl_shutdown_timeout, protocol
    ):
        """The ``ssl_wrap`` of a TLS server's Listener: put an SSLProtocol
        between the accepted transport and ``protocol``."""
        _adopt_tls_reader(protocol)
        waiter = self.create_future()
        ssl_protocol = _new_ssl_protocol(
            self,
            protocol,
            sslcontext,
            waiter,
            True,
            None,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )
        # The application-side transport as created, which asyncio's
        # _accept_connection2 holds (the protocol forgets it once the
        # connection is lost).
        waiter.add_done_callback(
            functools.partial(
                self._fl_accepted_ssl_done, ssl_protocol._app_transport, protocol
            )
        )
        return ssl_protocol

    def _fl_accepted_ssl_done(self, transport, protocol, waiter):
        # The failure half of selector_events._accept_connection2 for TLS.
        if waiter.cancelled():
            exc = exceptions.CancelledError()
        else:
            exc = waiter.exception()
            if exc is None:
                return
        if transport is not None:
            transport.close()
        if self.get_debug():
            context = {
                "message": "Error on transport creation for incoming connection",
                "exception": exc,
            }
            if protocol is not None:
                context["protocol"] = protocol
            if transport is not None:
                context["transport"] = transport
            self.call_exception_handler(context)

    async def _create_connection_transport(
        self,
        sock,
        protocol_factory,
        ssl,
        server_hostname,
        server_side=False,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
        *,
        _own_sock=False,
    ):
        """Wrap the connected ``sock`` in a transport and wait until the
        protocol is connected (and the TLS handshake done).

        With ``_own_sock`` the socket was made by the caller's own
        create_*() call and is closed if no transport could take it.
        """
        transport = None
        try:
            sock.setblocking(False)
            protocol = protocol_factory()
            waiter = self.create_future()
            if ssl:
                sslcontext = None if isinstance(ssl, bool) else ssl
                transport = self._make_ssl_transport(
                    sock,
                    protocol,
                    sslcontext,
                    waiter,
                    server_side=server_side,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=ssl_handshake_timeout,
                    ssl_shutdown_timeout=ssl_shutdown_timeout,
                )
            else:
                transport = self._make_socket_transport(sock, protocol, waiter)
        except BaseException:
            if _own_sock and transport is None:
                sock.close()
            raise

        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    # ------------------------------------------------------------------
    # Serving (asyncio's loop/Server contract)

    def _start_serving(
        self,
        protocol_factory,
        sock,
        sslcontext=None,
        server=None,
        backlog=100,
        ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
        ssl_shutdown_timeout=getattr(constants, "SSL_SHUTDOWN_TIMEOUT", None),
    ):
        """Accept connections on the listening ``sock`` for ``server``
        (selector_events._start_serving): a C Listener per socket."""
        listeners = self._fl_listeners
        listener = listeners.get(sock)
        if listener is None:
            ssl_wrap = None
            if sslcontext:
                ssl_wrap = functools.partial(
                    self._fl_wrap_accepted_ssl,
                    sslcontext,
                    ssl_handshake_timeout,
                    ssl_shutdown_timeout,
                )
            listener = _core.Listener(
                self, sock, protocol_factory, server, backlog, ssl_wrap
            )
            listeners[sock] = listener
        listener.start()

    def _stop_serving(self, sock):
        """Stop accepting on ``sock`` and close it; remove its Unix socket
        file if create_unix_server() asked for it (selector_events and
        unix_events._stop_serving)."""
        inode = self._unix_server_sockets.pop(sock, None)
        path = None
        if inode is not None:
            try:
                path = sock.getsockname()
            except OSError:
                path = None
        listener = self._fl_listeners.pop(sock, None)
        if listener is not None:
            listener.close()
        elif sock.fileno() != -1 and not self.is_closed():
            self.remove_reader(sock.fileno())
        sock.close()  # a no-op if the listener closed it
        if path is not None:
            try:
                if _core._stat(path)[1] == inode:
                    _core._unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                logger.error(
                    "Unable to clean up listening UNIX socket %r: %r", path, err
                )

    # ------------------------------------------------------------------
    # Connecting

    async def _connect_sock(self, exceptions, addr_info, local_addr_infos=None):
        """Create, bind and connect one socket (BaseEventLoop._connect_sock).

        The errors of this attempt are appended (as one list) to
        ``exceptions``; the socket is closed on any failure or cancellation.
        """
        my_exceptions = []
        exceptions.append(my_exceptions)
        family, type_, proto, _, address = addr_info
        sock = None
        try:
            sock = socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_addr_infos is not None:
                for lfamily, _, _, _, laddr in local_addr_infos:
                    # Local addresses of another family cannot be bound
                    # (3.10+; 3.9 tries to bind them too).
                    if lfamily != family and _PY310:
                        continue
                    try:
                        sock.bind(laddr)
                        break
                    except OSError as exc:
                        msg = (
                            f"error while attempting to bind on "
                            f"address {laddr!r}: {_bind_error_text(exc)}"
                        )
                        my_exceptions.append(OSError(exc.errno, msg))
                else:
                    if my_exceptions:
                        raise my_exceptions.pop()
                    raise OSError(f"no matching local address with family={family!r} found")
            await self.sock_connect(sock, address)
            return sock
        except OSError as exc:
            my_exceptions.append(exc)
            if sock is not None:
                sock.close()
            raise
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        finally:
            exceptions = my_exceptions = None

    @_since(ssl_shutdown_timeout=(3, 11), all_errors=(3, 12))
    async def create_connection(
        self,
        protocol_factory,
        host=None,
        port=None,
        *,
        ssl=None,
        family=0,
        proto=0,
        flags=0,
        sock=None,
        local_addr=None,
        server_hostname=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
        happy_eyeballs_delay=None,
        interleave=None,
        all_errors=False,
    ):
        """Connect to a TCP server and return ``(transport, protocol)``.

        ``host``/``port`` are resolved and every address is tried in turn
        (or raced, RFC 8305 happy eyeballs, with ``happy_eyeballs_delay``);
        or ``sock`` is an already connected stream socket.
        """
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if server_hostname is None and ssl:
            # The host is the default server_hostname; with no host (sock=
            # or port only) it must be given; '' disables the check.
            if not host:
                raise ValueError(
                    "You must set server_hostname when using ssl without a host"
                )
            server_hostname = host
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if sock is not None:
            check_ssl_socket(sock)
        if happy_eyeballs_delay is not None and interleave is None:
            # Happy eyeballs interleaves address families by default.
            interleave = 1

        own_sock = False
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError(
                    "host/port and sock can not be specified at the same time"
                )
            sock = await self._fl_connect_any(
                host,
                port,
                family,
                proto,
                flags,
                local_addr,
                happy_eyeballs_delay,
                interleave,
                all_errors,
            )
            own_sock = True
        else:
            if sock is None:
                raise ValueError(
                    "host and port was not specified and no sock specified"
                )
            if sock.type != socket.SOCK_STREAM:
                # AF_UNIX stream sockets are accepted too (backwards
                # compatibility, as asyncio).
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")

        transport, protocol = await self._create_connection_transport(
            sock,
            protocol_factory,
            ssl,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            _own_sock=own_sock,
        )
        if self.get_debug():
            # The SSL transport's socket is the raw one.
            sock = transport.get_extra_info("socket")
            logger.debug(
                "%r connected to %s:%r: (%r, %r)", sock, host, port, transport, protocol
            )
        return transport, protocol

    async def _fl_connect_any(
        self,
        host,
        port,
        family,
        proto,
        flags,
        local_addr,
        happy_eyeballs_delay,
        interleave,
        all_errors,
    ):
        """Resolve host/port and return a connected socket (the host/port
        half of BaseEventLoop.create_connection)."""
        infos = await _dns.ensure_resolved(
            self,
            (host, port),
            family=family,
            type=socket.SOCK_STREAM,
            proto=proto,
            flags=flags,
        )
        if not infos:
            raise OSError("getaddrinfo() returned empty list")

        if local_addr is not None:
            laddr_infos = await _dns.ensure_resolved(
                self,
                local_addr,
                family=family,
                type=socket.SOCK_STREAM,
                proto=proto,
                flags=flags,
            )
            if not laddr_infos:
                raise OSError("getaddrinfo() returned empty list")
        else:
            laddr_infos = None

        if interleave:
            infos = _dns.interleave_addrinfos(infos, interleave)

        exceptions = []
        sock = None
        if happy_eyeballs_delay is None:
            for addrinfo in infos:
                try:
                    sock = await self._connect_sock(exceptions, addrinfo, laddr_infos)
                    break
                except OSError:
                    continue
        else:
            # With a task factory (eager_task_factory) the staggered_race of
            # 3.12.1/3.13.0 fails an assertion: its helper tasks are made
            # without the factory.
            race_loop = self if self.get_task_factory() is None else _PlainTaskLoop(self)
            sock = (
                await staggered.staggered_race(
                    [
                        functools.partial(
                            self._connect_sock, exceptions, addrinfo, laddr_infos
                        )
                        for addrinfo in infos
                    ],
                    happy_eyeballs_delay,
                    loop=race_loop,
                )
            )[0]

        if sock is not None:
            return sock
        try:
            flat = [exc for sub in exceptions for exc in sub]
            if all_errors:
                raise ExceptionGroup("create_connection failed", flat)  # noqa: F821
            if len(flat) == 1:
                raise flat[0]
            # One exception if they all say the same, else a combined one.
            model = str(flat[0])
            if all(str(exc) == model for exc in flat):
                raise flat[0]
            raise OSError(
                "Multiple exceptions: {}".format(", ".join(str(exc) for exc in flat))
            )
        finally:
            exceptions = flat = None

    @_since(ssl_shutdown_timeout=(3, 11))
    async def connect_accepted_socket(
        self,
        protocol_factory,
        sock,
        *,
        ssl=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
    ):
        """Wrap a connection accepted outside asyncio; return
        ``(transport, protocol)``."""
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        check_ssl_socket(sock)

        transport, protocol = await self._create_connection_transport(
            sock,
            protocol_factory,
            ssl,
            "",
            server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        if self.get_debug():
            sock = transport.get_extra_info("socket")
            logger.debug("%r handled: (%r, %r)", sock, transport, protocol)
        return transport, protocol

    @_since(ssl_shutdown_timeout=(3, 11))
    async def create_unix_connection(
        self,
        protocol_factory,
        path=None,
        *,
        ssl=None,
        sock=None,
        server_hostname=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
    ):
        """Connect to a Unix stream socket; return ``(transport, protocol)``."""
        assert server_hostname is None or isinstance(server_hostname, str)
        if ssl:
            if server_hostname is None:
                raise ValueError("you have to pass server_hostname when using ssl")
        else:
            if server_hostname is not None:
                raise ValueError("server_hostname is only meaningful with ssl")
            if ssl_handshake_timeout is not None:
                raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
            if ssl_shutdown_timeout is not None:
                raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")

        own_sock = False
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
            own_sock = True
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(
                    f"A UNIX Domain Stream Socket was expected, got {sock!r}"
                )
            sock.setblocking(False)

        return await self._create_connection_transport(
            sock,
            protocol_factory,
            ssl,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            _own_sock=own_sock,
        )

    # ------------------------------------------------------------------
    # Serving

    @_since(keep_alive=(3, 13), ssl_shutdown_timeout=(3, 11))
    async def create_server(
        self,
        protocol_factory,
        host=None,
        port=None,
        *,
        family=socket.AF_UNSPEC,
        flags=socket.AI_PASSIVE,
        sock=None,
        backlog=100,
        ssl=None,
        reuse_address=None,
        reuse_port=None,
        keep_alive=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
        start_serving=True,
    ):
        """Create a TCP server listening on ``host`` (a name, a sequence of
        names, or None/'' for all interfaces) and ``port``, or on ``sock``.

        Return a fastloop._server.Server.
        """
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and ssl is None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if sock is not None:
            check_ssl_socket(sock)

        if host is not None or port is not None:
            if sock is not None:
                raise ValueError(
                    "host/port and sock can not be specified at the same time"
                )
            if reuse_address is None:
                reuse_address = os.name == "posix" and sys.platform != "cygwin"
            if host == "":
                hosts = [None]
            elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
                hosts = [host]
            else:
                hosts = host

            fs = [
                self._create_server_getaddrinfo(h, port, family=family, flags=flags)
                for h in hosts
            ]
            infos = await tasks.gather(*fs)
            infos = set(itertools.chain.from_iterable(infos))
            sockets = self._fl_bind_server_sockets(
                infos, reuse_address, reuse_port, keep_alive
            )
        else:
            if sock is None:
                raise ValueError("Neither host/port nor sock were specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
            sockets = [sock]

        for s in sockets:
            s.setblocking(False)

        server = Server(
            self,
            sockets,
            protocol_factory,
            ssl,
            backlog,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )
        if start_serving:
            server._start_serving()
            # One loop iteration, as asyncio does.
            await tasks.sleep(0)

        if self.get_debug():
            logger.info("%r is serving", server)
        return server

    def _fl_bind_server_sockets(self, infos, reuse_address, reuse_port, keep_alive):
        """Create and bind one listening socket per addrinfo (the loop of
        BaseEventLoop.create_server); all are closed if one fails."""
        sockets = []
        completed = False
        try:
            # The socket module is looked up through asyncio.base_events so
            # that tests patching asyncio's (CPython's test_events) patch
            # this loop too.
            socket_module = base_events.socket
            for af, socktype, proto, _canonname, sa in infos:
                try:
                    sock = socket_module.socket(af, socktype, proto)
                except OSError:
                    # Probably an unsupported family/type/protocol mix.
                    if self.get_debug():
                        logger.warning(
                            "create_server() failed to create socket.socket(%r, %r, %r)",
                            af,
                            socktype,
                            proto,
                            exc_info=True,
                        )
                    continue
                sockets.append(sock)
                if reuse_address:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
                if reuse_port:
                    _set_reuseport(sock)
                if keep_alive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
                # No dual-stack sockets: an IPv6 socket listens on IPv6 only
                # (Linux enables dual stack by default).
                if (
                    _dns.HAS_IPV6
                    and af == socket.AF_INET6
                    and hasattr(socket, "IPPROTO_IPV6")
                ):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                try:
                    sock.bind(sa)
                except OSError as err:
                    msg = "error while attempting to bind on address %r: %s" % (
                        sa,
                        _bind_error_text(err),
                    )
                    if err.errno == errno.EADDRNOTAVAIL:
                        # The family is probably disabled (bpo-30945, 3.13).
                        sockets.pop()
                        sock.close()
                        if self.get_debug():
                            logger.warning(msg)
                        continue
                    raise OSError(err.errno, msg) from None
            if not sockets:
                raise OSError(
                    "could not bind on any address out of %r" % ([info[4] for info in infos],)
                )
            completed = True
        finally:
            if not completed:
                for sock in sockets:
                    sock.close()
        return sockets

    @_since(ssl_shutdown_timeout=(3, 11), cleanup_socket=(3, 13))
    async def create_unix_server(
        self,
        protocol_factory,
        path=None,
        *,
        sock=None,
        backlog=100,
        ssl=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
        start_serving=True,
        cleanup_socket=True,
    ):
        """Create a Unix stream socket server on ``path`` (a stale socket
        file there is removed; a leading NUL byte means the abstract
        namespace) or on ``sock``.

        With ``cleanup_socket`` (Python 3.13) the socket file is removed
        when the server is closed.
        """
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if not _PY313:
            # Older asyncio never removes the socket file.
            cleanup_socket = False

        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            # Remove a stale socket file, unless in the abstract namespace.
            if path[0] not in (0, "\x00"):
                try:
                    if stat.S_ISSOCK(_core._stat(path)[0]):
                        _core._unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    # The directory may only allow creating the socket.
                    logger.error(
                        "Unable to check or remove stale UNIX socket %r: %r", path, err
                    )
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(
                        errno.EADDRINUSE, f"Address {path!r} is already in use"
                    ) from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("path was not specified, and no sock specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(
                    f"A UNIX Domain Stream Socket was expected, got {sock!r}"
                )

        if cleanup_socket:
            bound = sock.getsockname()
            if bound and bound[0] not in (0, "\x00"):
                try:
                    self._unix_server_sockets[sock] = _core._stat(bound)[1]
                except FileNotFoundError:
                    pass

        sock.setblocking(False)
        server = Server(
            self,
            [sock],
            protocol_factory,
            ssl,
            backlog,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )
        if start_serving:
            server._start_serving()
            await tasks.sleep(0)
        return server

    # ------------------------------------------------------------------
    # TLS upgrade

    @_since(ssl_shutdown_timeout=(3, 11))
    async def start_tls(
        self,
        transport,
        protocol,
        sslcontext,
        *,
        server_side=False,
        server_hostname=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
    ):
        """Upgrade ``transport`` to TLS; return the new transport that
        ``protocol`` must use from now on (BaseEventLoop.start_tls)."""
        if ssl is None:
            raise RuntimeError("Python ssl module is not available")
        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(
                f"sslcontext is expected to be an instance of ssl.SSLContext, "
                f"got {sslcontext!r}"
            )
        if not (
            _is_stream_transport(transport)
            or getattr(transport, "_start_tls_compatible", False)
        ):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")

        waiter = self.create_future()
        ssl_protocol = _new_ssl_protocol(
            self,
            protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
            call_connection_made=False,
        )

        # Pause first so that the SSL protocol cannot get data before
        # connection_made().
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        conmade_cb = self.call_soon(ssl_protocol.connection_made, transport)
        resume_cb = self.call_soon(transport.resume_reading)

        try:
            await waiter
        except BaseException:
            transport.close()
            conmade_cb.cancel()
            resume_cb.cancel()
            raise
        return ssl_protocol._app_transport

    # ------------------------------------------------------------------
    # sendfile

    async def sendfile(self, transport, file, offset=0, count=None, *, fallback=True):
        """Send ``file`` over ``transport``; return the number of bytes sent.

        os.sendfile() is used for fastloop's stream transports; other
        transports (TLS) get the file in chunks when ``fallback`` is true.
        The file position is updated on return and on error.
        """
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        if _is_stream_transport(transport):
            mode = _SendfileMode.TRY_NATIVE
        else:
            mode = getattr(transport, "_sendfile_compatible", _SendfileMode.UNSUPPORTED)
        if mode is _SendfileMode.UNSUPPORTED:
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        if mode is _SendfileMode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except exceptions.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(
                f"fallback is disabled and native sendfile is not "
                f"supported for transport {transport!r}"
            )
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, transp, file, offset, count):
        # selector_events._sendfile_native: drain the write buffer, stop
        # reading, and sendfile() straight to the socket.
        if not _is_stream_transport(transp):
            raise exceptions.SendfileNotAvailableError("sendfile syscall is not supported")
        sock = transp._sock
        # sock_sendfile(fallback=False) minus its debug-mode blocking check:
        # the transport's socket is non-blocking whatever its timeout says.
        self._check_sendfile_params(sock, file, offset, count)
        # The waiter first: it raises if a sendfile already runs, before
        # anything changed.
        drained = transp._make_empty_waiter()
        resume_reading = transp.is_reading()
        transp.pause_reading()
        try:
            await drained
            # The transport owns its fd; lend it to the sock_* machinery
            # for the duration (asyncio removes it from loop._transports).
            transp._fl_release_fd()
            try:
                return await self._sock_sendfile_native(sock, file, offset, count)
            finally:
                transp._fl_claim_fd()
        finally:
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()

    async def _sendfile_fallback(self, transp, file, offset, count):
        # BaseEventLoop._sendfile_fallback
        if offset:
            file.seek(offset)
        blocksize = min(count, 16384) if count else 16384
        buf = bytearray(blocksize)
        total_sent = 0
        proto = _SendfileFallbackProtocol(self, transp)
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        return total_sent
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total_sent  # EOF
                await proto.drain()
                # A copy: the transport may keep the object while ``buf``
                # is refilled.
                transp.write(bytes(view[:read]))
                total_sent += read
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset + total_sent)
            await proto.restore()
