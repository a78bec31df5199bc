"""The ``loop.sock_*`` coroutines of fastloop.

They reproduce ``asyncio.selector_events.BaseSelectorEventLoop``'s methods
(and ``unix_events._UnixSelectorEventLoop`` for ``sock_sendfile``): the
system call is tried first, and only when it would block is a reader or
writer registered with the loop; cancelling the awaiting task unregisters
it. ``sock_recvfrom``, ``sock_recvfrom_into`` and ``sock_sendto`` (asyncio
3.11+) are offered on every Python version.

The C loop's ``add_reader``/``add_writer`` refuse file descriptors owned by
a transport with ``RuntimeError`` (asyncio's ``_ensure_fd_no_transport``).
"""

import errno
import io
import os
import socket
import sys

from asyncio import constants
from asyncio import exceptions

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover
    _ssl = None

from . import _core
from . import _dns

__all__ = ("SockOpsMixin", "check_ssl_socket")

# Largest count passed to os.sendfile(): 1 GiB on 32-bit platforms, where
# larger values overflow (unix_events).
_SENDFILE_MAX = sys.maxsize // 2 + 1


def check_ssl_socket(sock):
    # base_events._check_ssl_socket
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _byte_view(data):
    """A flat unsigned-byte memoryview of ``data``."""
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view


class SockOpsMixin:
    """``sock_*`` methods for fastloop.Loop (see the module docstring)."""

    # fd -> the future whose reader/writer callback is registered for it;
    # the done callback of a future only unregisters its own callback
    # (asyncio 3.12's handle.cancelled() check). Created per instance by
    # _fl_init_sockops().
    _fl_sock_readers = None
    _fl_sock_writers = None

    def _fl_init_sockops(self):
        self._fl_sock_readers = {}
        self._fl_sock_writers = {}

    def _fl_check_sock(self, sock):
        check_ssl_socket(sock)
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    # -- registration helpers -------------------------------------------

    def _fl_wait_readable(self, fut, sock, callback, *args):
        """Call callback(fut, sock, *args) whenever ``sock`` is readable
        until ``fut`` is done; unregister when it is (done or cancelled)."""
        fd = sock.fileno()
        self.add_reader(fd, callback, fut, sock, *args)
        readers = self._fl_sock_readers
        if readers is None:
            readers = self._fl_sock_readers = {}
        readers[fd] = fut
        fut.add_done_callback(lambda f: self._fl_read_done(fd, f))

    def _fl_read_done(self, fd, fut):
        # selector_events._sock_read_done
        readers = self._fl_sock_readers
        if readers is not None and readers.get(fd) is fut:
            del readers[fd]
            self.remove_reader(fd)

    def _fl_wait_writable(self, fut, sock, callback, *args):
        fd = sock.fileno()
        self.add_writer(fd, callback, fut, sock, *args)
        writers = self._fl_sock_writers
        if writers is None:
            writers = self._fl_sock_writers = {}
        writers[fd] = fut
        fut.add_done_callback(lambda f: self._fl_write_done(fd, f))

    def _fl_write_done(self, fd, fut):
        # selector_events._sock_write_done
        writers = self._fl_sock_writers
        if writers is not None and writers.get(fd) is fut:
            del writers[fd]
            self.remove_writer(fd)

    # -- receiving --------------------------------------------------------

    async def sock_recv(self, sock, n):
        """Receive up to ``n`` bytes from ``sock``; return them (bytes)."""
        self._fl_check_sock(sock)
        try:
            return sock.recv(n)
        except (BlockingIOError, InterruptedError):
            pass
        fut = self.create_future()
        self._fl_wait_readable(fut, sock, _recv_ready, n)
        return await fut

    async def sock_recv_into(self, sock, buf):
        """Receive data from ``sock`` into ``buf``; return the byte count."""
        self._fl_check_sock(sock)
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            pass
        fut = self.create_future()
        self._fl_wait_readable(fut, sock, _recv_into_ready, buf)
        return await fut

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of at most ``bufsize`` bytes.

        Return ``(data, address)``.
        """
        self._fl_check_sock(sock)
        try:
            return sock.recvfrom(bufsize)
        except (BlockingIOError, InterruptedError):
            pass
        fut = self.create_future()
        self._fl_wait_readable(fut, sock, _recvfrom_ready, bufsize)
        return await fut

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into ``buf``; return ``(nbytes, address)``."""
        self._fl_check_sock(sock)
        if not nbytes:
            nbytes = len(buf)
        try:
            return sock.recvfrom_into(buf, nbytes)
        except (BlockingIOError, InterruptedError):
            pass
        fut = self.create_future()
        self._fl_wait_readable(fut, sock, _recvfrom_into_ready, buf, nbytes)
        return await fut

    # -- sending ------------------------------------------------------------

    async def sock_sendall(self, sock, data):
        """Send all of ``data`` on the connected socket ``sock``.

        On error nothing tells how much was sent.
        """
        self._fl_check_sock(sock)
        self._fl_touch()  # the peer may be on this loop: poll next time
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if isinstance(data, (bytes, bytearray)):
            if n == len(data):
                return
            view = memoryview(data)
        else:
            view = _byte_view(data)
            if n == len(view):
                return
        fut = self.create_future()
        # The position is kept in a one-element list updated by the callback.
        self._fl_wait_writable(fut, sock, _sendall_ready, view, [n])
        return await fut

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to ``address``; return the number of bytes sent."""
        self._fl_check_sock(sock)
        self._fl_touch()
        try:
            return sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass
        fut = self.create_future()
        self._fl_wait_writable(fut, sock, _sendto_ready, data, address)
        return await fut

    # -- connecting and accepting ------------------------------------------

    async def sock_connect(self, sock, address):
        """Connect ``sock`` to ``address`` (resolved first for INET sockets)."""
        self._fl_check_sock(sock)
        if sock.family == socket.AF_INET or (
            _dns.HAS_IPV6 and sock.family == socket.AF_INET6
        ):
            resolved = await _dns.ensure_resolved(
                self,
                address,
                family=sock.family,
                type=sock.type,
                proto=sock.proto,
            )
            address = resolved[0][4]

        self._fl_touch()
        try:
            sock.connect(address)
            return None
        except (BlockingIOError, InterruptedError):
            # In progress (EINPROGRESS, or EINTR: bpo-23618): wait until the
            # socket is writable, then read SO_ERROR.
            pass
        fut = self.create_future()
        self._fl_wait_writable(fut, sock, _connect_ready, address)
        try:
            return await fut
        finally:
            fut = None  # break reference cycles through the exception

    async def sock_accept(self, sock):
        """Accept a connection on the listening ``sock``.

        Return ``(conn, address)``; ``conn`` is non-blocking.
        """
        self._fl_check_sock(sock)
        try:
            conn, address = sock.accept()
        except (BlockingIOError, InterruptedError):
            pass
        else:
            conn.setblocking(False)
            return conn, address
        fut = self.create_future()
        self._fl_wait_readable(fut, sock, _accept_ready)
        return await fut

    # -- sendfile ---------------------------------------------------------

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        """Send ``file`` over the connected stream socket ``sock``.

        Uses os.sendfile() when ``file`` is a regular file, else (if
        ``fallback``) reads it in chunks. Return the number of bytes sent.
        """
        self._fl_check_sock(sock)
        self._check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except exceptions.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    def _check_sendfile_params(self, sock, file, offset, count):
        # BaseEventLoop._check_sendfile_params
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if not sock.type == socket.SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if count is not None:
            if not isinstance(count, int):
                raise TypeError(
                    "count must be a positive integer (got {!r})".format(count)
                )
            if count <= 0:
                raise ValueError(
                    "count must be a positive integer (got {!r})".format(count)
                )
        if not isinstance(offset, int):
            raise TypeError(
                "offset must be a non-negative integer (got {!r})".format(offset)
            )
        if offset < 0:
            raise ValueError(
                "offset must be a non-negative integer (got {!r})".format(offset)
            )

    async def _sock_sendfile_native(self, sock, file, offset, count):
        # unix_events._UnixSelectorEventLoop._sock_sendfile_native
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            raise exceptions.SendfileNotAvailableError("not a regular file")
        try:
            fsize = os.fstat(fileno).st_size
        except OSError:
            raise exceptions.SendfileNotAvailableError("not a regular file")
        blocksize = count if count else fsize
        if not blocksize:
            return 0  # empty file

        state = _SendfileState(self, sock, fileno, offset, count, blocksize)
        state.step()  # the first chunk goes out without waiting
        return await state.fut

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        # BaseEventLoop._sock_sendfile_fallback
        if offset:
            file.seek(offset)
        blocksize = constants.SENDFILE_FALLBACK_READBUFFER_SIZE
        if count:
            blocksize = min(count, blocksize)
        buf = bytearray(blocksize)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break  # EOF
                await self.sock_sendall(sock, view[:read])
                total_sent += read
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset + total_sent)


class _SendfileState:
    """One os.sendfile() transfer driven by a writer callback.

    unix_events._sock_sendfile_native_impl, as an object: the file position
    is restored to ``offset + sent`` however the transfer ends.
    """

    __slots__ = (
        "loop", "sock", "fd", "fileno", "offset", "count", "blocksize",
        "sent", "fut", "registered",
    )

    def __init__(self, loop, sock, fileno, offset, count, blocksize):
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.fileno = fileno
        self.offset = offset
        self.count = count
        self.blocksize = blocksize
        self.sent = 0
        self.fut = loop.create_future()
        self.registered = False
        self.fut.add_done_callback(self._done)

    def _done(self, fut):
        if self.registered:
            self.registered = False
            self.loop.remove_writer(self.fd)
        if fut.cancelled():
            self._update_filepos()

    def _update_filepos(self):
        if self.sent > 0:
            os.lseek(self.fileno, self.offset, os.SEEK_SET)

    def _wait(self):
        if not self.registered:
            self.loop.add_writer(self.fd, self.step)
            self.registered = True

    def _finish(self, exc=None):
        self._update_filepos()
        if exc is None:
            self.fut.set_result(self.sent)
        else:
            self.fut.set_exception(exc)

    def step(self):
        fut = self.fut
        if fut.done():
            return
        if self.count:
            blocksize = self.count - self.sent
            if blocksize <= 0:
                self._finish()
                return
        else:
            blocksize = self.blocksize
        blocksize = min(blocksize, _SENDFILE_MAX)
        try:
            n = _core._sendfile(self.fd, self.fileno, self.offset, blocksize)
        except (BlockingIOError, InterruptedError):
            n = None
        except OSError as exc:
            if (
                self.registered
                and exc.errno == errno.ENOTCONN
                and type(exc) is not ConnectionError
            ):
                # The peer went away in the middle of the transfer: the
                # same ConnectionError on every platform.
                new_exc = ConnectionError("socket is not connected", errno.ENOTCONN)
                new_exc.__cause__ = exc
                exc = new_exc
            if self.sent == 0:
                # Typically not a regular mmap()-able file: the caller falls
                # back to plain send().
                exc = exceptions.SendfileNotAvailableError("os.sendfile call failed")
            self._finish(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._finish(exc)
            return
        if n == 0:
            self._finish()  # EOF
            return
        if n is not None:
            self.offset += n
            self.sent += n
        try:
            self._wait()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            # e.g. RuntimeError: the fd is owned by a transport.
            self._finish(exc)


# -- callbacks registered with add_reader/add_writer ---------------------------
# Each runs until its future is done; a spurious wake-up (EAGAIN) leaves it
# registered. After fut.set_exception(exc) each drops its `fut`: exc's
# traceback holds the callback's frame, whose `fut` would hold exc (a cycle
# kept until the GC runs; CPython gh-124859).


def _recv_ready(fut, sock, n):
    if fut.done():
        return
    try:
        data = sock.recv(n)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
        fut = None
    else:
        fut.set_result(data)


def _recv_into_ready(fut, sock, buf):
    if fut.done():
        return
    try:
        nbytes = sock.recv_into(buf)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
        fut = None
    else:
        fut.set_result(nbytes)


def _recvfrom_ready(fut, sock, bufsize):
    if fut.done():
        return
    try:
        result = sock.recvfrom(bufsize)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
        fut = None
    else:
        fut.set_result(result)


def _recvfrom_into_ready(fut, sock, buf, nbytes):
    if fut.done():
        return
    try:
        result = sock.recvfrom_into(buf, nbytes)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
        fut = None
    else:
        fut.set_result(result)


def _sendall_ready(fut, sock, view, pos):
    if fut.done():
        # Cancelled in a previous iteration.
        return
    start = pos[0]
    fut.get_loop()._fl_touch()
    try:
        n = sock.send(view[start:])
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
        fut = None
        return
    start += n
    if start == len(view):
        fut.set_result(None)
    else:
        pos[0] = start


def _sendto_ready(fut, sock, data, address):
    if fut.done():
        return
    fut.get_loop()._fl_touch()
    try:
        n = sock.sendto(data, 0, address)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
        fut = None
    else:
        fut.set_result(n)


def _connect_ready(fut, sock, address):
    # selector_events._sock_connect_cb
    if fut.done():
        return
    try:
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            raise OSError(err, f"Connect call failed {address}")
    except (BlockingIOError, InterruptedError):
        pass  # still in progress: stay registered
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
        fut = None
    else:
        fut.set_result(None)


def _accept_ready(fut, sock):
    if fut.done():
        return
    try:
        conn, address = sock.accept()
        conn.setblocking(False)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
        fut = None
    else:
        fut.set_result((conn, address))
