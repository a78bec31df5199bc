"""The cold half of fastloop's event loop, in Python.

``BaseLoopMixin`` supplies the loop methods that are branchy, rarely called or
differ between CPython versions: running and closing the loop, async
generator bookkeeping, the default executor, DNS through the executor, the
exception-handler API, signal handling and the self-pipe that wakes the loop
on signals. The hot paths (scheduling, timers, fd watchers, futures and
tasks) are implemented in C by ``fastloop._core.Loop``; see docs/internals.md
for the contract between the two halves.

Every method reproduces the behaviour of the asyncio method of the same name
(``asyncio.base_events.BaseEventLoop`` or
``asyncio.unix_events._UnixSelectorEventLoop``); the docstrings name it. The
mixin sits *after* ``_core.Loop`` in the MRO, so it must not define anything
the C type provides.
"""

import concurrent.futures
import errno
import inspect
import signal
import socket
import sys
import threading
import traceback
import warnings
import weakref

from asyncio import constants
from asyncio import coroutines
from asyncio import events
from asyncio import exceptions
from asyncio import format_helpers
from asyncio import futures
from asyncio import tasks
from asyncio.log import logger

from . import _stats

__all__ = ("BaseLoopMixin",)

_PY311 = sys.version_info >= (3, 11)
_PY313 = sys.version_info >= (3, 13)

# 3.13 added a keyword-only ``debug`` flag to _format_callback_source (the
# arguments of a callback are only shown in debug mode); older versions
# always show them. Detect the parameter rather than the version.
try:
    _FORMAT_CB_HAS_DEBUG = "debug" in inspect.signature(
        format_helpers._format_callback_source
    ).parameters
except (TypeError, ValueError):  # pragma: no cover
    _FORMAT_CB_HAS_DEBUG = False

# asyncio.iscoroutinefunction is deprecated in 3.14; the private helper that
# replaced it does not exist before then.
_iscoroutinefunction = getattr(
    coroutines, "_iscoroutinefunction", coroutines.iscoroutinefunction
)


def _sighandler_noop(signum, frame):
    """Python-level handler installed by add_signal_handler().

    The real work happens in the loop: the C signal handler writes the signal
    number to the wake-up fd (the loop's self-pipe), whose reader dispatches
    to the registered callback."""


def _noop():
    pass


def _run_until_complete_cb(fut):
    # asyncio.base_events._run_until_complete_cb
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # run_forever() is already unwinding with this exception.
            return
    futures._get_loop(fut).stop()


def _format_handle(handle):
    # asyncio.base_events._format_handle
    cb = getattr(handle, "_callback", None)
    if isinstance(getattr(cb, "__self__", None), tasks.Task):
        return repr(cb.__self__)
    return str(handle)


def _run_signal_handle(handle):
    # The handle stored by add_signal_handler() may have been cancelled
    # between the signal's arrival and this callback.
    if not handle._cancelled:
        handle._run()


class BaseLoopMixin:
    """Python-level methods of ``fastloop.Loop`` (see module docstring)."""

    # Class-level defaults: they make close() and __del__ safe on an instance
    # whose __init__ did not run or finish, and document the Python-level
    # state. Mutable state (_asyncgens, _signal_handlers) is created per
    # instance in _fl_init_base().
    _exception_handler = None
    _default_executor = None
    _executor_shutdown_called = False
    _asyncgens_shutdown_called = False
    _old_agen_hooks = None
    _coroutine_origin_tracking_enabled = False
    _coroutine_origin_tracking_saved_depth = None
    _ssock = None
    _csock = None
    _wakeup_fd_installed = False

    def _fl_init_base(self):
        """Create the per-instance Python state (called by Loop.__init__)."""
        self._exception_handler = None
        self._default_executor = None
        self._executor_shutdown_called = False
        # A weak set of the asynchronous generators iterated on this loop.
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._old_agen_hooks = None
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        # signal number -> asyncio.Handle
        self._signal_handlers = {}
        # The self-pipe (created lazily): its write end is the signal wake-up
        # fd; its read end is watched with add_reader().
        self._ssock = None
        self._csock = None
        # True while run_forever() owns the process' signal wake-up fd.
        self._wakeup_fd_installed = False

    # ------------------------------------------------------------------
    # Representation and state checks

    def __repr__(self):
        # BaseEventLoop.__repr__
        return (
            f"<{self.__class__.__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    def _check_closed(self):
        if self.is_closed():
            raise RuntimeError("Event loop is closed")

    def _check_default_executor(self):
        if self._executor_shutdown_called:
            raise RuntimeError("Executor shutdown has been called")

    def _check_running(self):
        # BaseEventLoop._check_running
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError(
                "Cannot run the event loop while another loop is running"
            )

    def _check_callback(self, callback, method):
        # BaseEventLoop._check_callback (debug-mode argument check)
        if coroutines.iscoroutine(callback) or _iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(
                f"a callable object was expected by {method}(), "
                f"got {callback!r}"
            )

    # ------------------------------------------------------------------
    # Running

    def _set_coroutine_origin_tracking(self, enabled):
        # BaseEventLoop._set_coroutine_origin_tracking
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = (
                sys.get_coroutine_origin_tracking_depth()
            )
            sys.set_coroutine_origin_tracking_depth(constants.DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(
                self._coroutine_origin_tracking_saved_depth
            )
        self._coroutine_origin_tracking_enabled = enabled

    def _run_forever_setup(self):
        """Prepare to run (BaseEventLoop._run_forever_setup, 3.13).

        Raises before changing any state if the loop is closed or another
        loop runs in this thread; on any later failure undoes what it did.
        """
        self._check_closed()
        self._check_running()
        # is_running(), _thread_id. Outside the try: if another thread won
        # the race to run the loop this raises, and there is nothing of
        # ours to undo (the cleanup would clear the winner's state).
        self._fl_set_running(True)
        try:
            self._set_coroutine_origin_tracking(self.get_debug())
            self._old_agen_hooks = sys.get_asyncgen_hooks()
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook,
                finalizer=self._asyncgen_finalizer_hook,
            )
            events._set_running_loop(self)
            self._install_wakeup_fd()
        except BaseException:
            self._run_forever_cleanup()
            raise

    def _run_forever_cleanup(self):
        """Undo _run_forever_setup (BaseEventLoop._run_forever_cleanup)."""
        self._stopping = False
        try:
            self._restore_wakeup_fd()
        finally:
            self._fl_set_running(False)
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            if self._old_agen_hooks is not None:
                sys.set_asyncgen_hooks(*self._old_agen_hooks)
                self._old_agen_hooks = None

    def run_forever(self):
        """Run until stop() is called (BaseEventLoop.run_forever)."""
        self._run_forever_setup()
        try:
            self._run()
        finally:
            self._run_forever_cleanup()

    def run_until_complete(self, future):
        """Run until the future is done and return its result.

        A coroutine is wrapped in a Task (BaseEventLoop.run_until_complete).
        """
        self._check_closed()
        self._check_running()

        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # The caller gets the exception from us if the task did not
            # complete: don't also log "Task was destroyed but it is pending".
            future._log_destroy_pending = False

        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                # The coroutine raised a BaseException: mark the exception as
                # retrieved, the caller cannot reach the task to do it.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    # ------------------------------------------------------------------
    # Closing

    def close(self):
        """Close the loop (BaseEventLoop.close + _UnixSelectorEventLoop.close).

        Pending callbacks are dropped and the default executor is shut down
        without waiting. The loop must not be running. Idempotent.
        """
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if self.get_debug():
            logger.debug("Close %r", self)
        try:
            self._remove_all_signal_handlers()
        finally:
            try:
                self._executor_shutdown_called = True
                executor = self._default_executor
                if executor is not None:
                    self._default_executor = None
                    executor.shutdown(wait=False)
            finally:
                try:
                    self._close_self_pipe()
                finally:
                    self._close_core()

    def __del__(self, _warn=warnings.warn):
        # BaseEventLoop.__del__
        if not self.__dict__.get("_fl_initialised"):
            # __init__ failed (bad arguments): nothing was ever usable, so
            # release the C resources without an "unclosed loop" warning.
            self._close_core()
            return
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    # ------------------------------------------------------------------
    # Asynchronous generators

    def _asyncgen_finalizer_hook(self, agen):
        # May run in any thread, e.g. from the garbage collector.
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning,
                source=self,
            )
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self):
        """Shutdown all active asynchronous generators."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return

        closing_agens = list(self._asyncgens)
        self._asyncgens.clear()

        results = await tasks.gather(
            *[ag.aclose() for ag in closing_agens], return_exceptions=True
        )
        for result, agen in zip(results, closing_agens):
            if isinstance(result, Exception):
                self.call_exception_handler(
                    {
                        "message": f"an error occurred during closing of "
                        f"asynchronous generator {agen!r}",
                        "exception": result,
                        "asyncgen": agen,
                    }
                )

    # ------------------------------------------------------------------
    # Executor

    def run_in_executor(self, executor, func, *args):
        """Run func(*args) in an executor (BaseEventLoop.run_in_executor)."""
        self._check_closed()
        if self.get_debug():
            self._check_callback(func, "run_in_executor")
        if executor is None:
            executor = self._default_executor
            # Only the default executor is refused after shutdown.
            self._check_default_executor()
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix="asyncio"
                )
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        # BaseEventLoop.set_default_executor: a TypeError since 3.11, a
        # DeprecationWarning before.
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            if _PY311:
                raise TypeError("executor must be ThreadPoolExecutor instance")
            warnings.warn(
                "Using the default executor that is not an instance of "
                "ThreadPoolExecutor is deprecated and will be prohibited "
                "in Python 3.9",
                DeprecationWarning,
                2,
            )
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout=None):
        """Schedule the shutdown of the default executor.

        ``timeout`` bounds the time given to the executor to join its
        threads (None: unlimited); when it expires a RuntimeWarning is
        emitted (BaseEventLoop.shutdown_default_executor, 3.12+; the timeout
        is accepted on every version).
        """
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        try:
            if timeout is None:
                await future
            else:
                await tasks.wait_for(future, timeout)
        except exceptions.TimeoutError:
            warnings.warn(
                "The executor did not finishing joining "
                f"its threads within {timeout} seconds.",
                RuntimeWarning,
                stacklevel=2,
            )
            executor = self._default_executor
            if executor is not None:
                executor.shutdown(wait=False)
        except BaseException:
            if not _PY313:
                # Cancelled (or the shutdown failed): before 3.13 asyncio
                # still waits for the executor's threads (its
                # ``finally: thread.join()``; 3.12: ``join(timeout)``).
                thread.join(timeout)
            raise
        else:
            thread.join()

    def _do_shutdown(self, future):
        # Runs in a helper thread.
        try:
            executor = self._default_executor
            if executor is not None:
                executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(
                    futures._set_result_unless_cancelled, future, None
                )
        except Exception as ex:
            if not self.is_closed() and not future.cancelled():
                self.call_soon_threadsafe(_set_exception_unless_done, future, ex)

    # ------------------------------------------------------------------
    # DNS

    def _getaddrinfo_debug(self, host, port, family, type, proto, flags):
        # BaseEventLoop._getaddrinfo_debug
        msg = [f"{host}:{port!r}"]
        if family:
            msg.append(f"family={family!r}")
        if type:
            msg.append(f"type={type!r}")
        if proto:
            msg.append(f"proto={proto!r}")
        if flags:
            msg.append(f"flags={flags!r}")
        msg = ", ".join(msg)
        logger.debug("Get address info %s", msg)

        t0 = self.time()
        addrinfo = socket.getaddrinfo(host, port, family, type, proto, flags)
        dt = self.time() - t0

        msg = f"Getting address info {msg} took {dt * 1e3:.3f}ms: {addrinfo!r}"
        if dt >= self.slow_callback_duration:
            logger.info(msg)
        else:
            logger.debug(msg)
        return addrinfo

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        if self.get_debug():
            getaddr_func = self._getaddrinfo_debug
        else:
            getaddr_func = socket.getaddrinfo
        return await self.run_in_executor(
            None, getaddr_func, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr, flags=0):
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)

    # ------------------------------------------------------------------
    # Error handling

    def get_exception_handler(self):
        """Return the exception handler, or None if the default one is used."""
        return self._exception_handler

    def set_exception_handler(self, handler):
        """Set handler(loop, context) as the exception handler; None resets."""
        if handler is not None and not callable(handler):
            raise TypeError(
                f"A callable object or None is expected, got {handler!r}"
            )
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context with asyncio's logger.

        Reproduces BaseEventLoop.default_exception_handler: the message, then
        every other key sorted; in debug mode the creation traceback of the
        handle being run is added as ``handle_traceback``.
        """
        message = context.get("message")
        if not message:
            message = "Unhandled exception in event loop"

        exception = context.get("exception")
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False

        if "source_traceback" not in context:
            current = self._current_handle
            if current is not None:
                tb = getattr(current, "_source_traceback", None)
                if tb:
                    context["handle_traceback"] = tb

        log_lines = [message]
        for key in sorted(context):
            if key in {"message", "exception"}:
                continue
            value = context[key]
            if key == "source_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Object created at (most recent call last):\n"
                value += tb.rstrip()
            elif key == "handle_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Handle created at (most recent call last):\n"
                value += tb.rstrip()
            else:
                value = repr(value)
            log_lines.append(f"{key}: {value}")

        logger.error("\n".join(log_lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Call the loop's exception handler with ``context`` (a dict).

        Reproduces BaseEventLoop.call_exception_handler of 3.12+ on every
        version: a custom handler runs inside the contextvars context of the
        task, future or handle named in ``context``. Never raises, except
        SystemExit and KeyboardInterrupt; also works on a closed loop.
        """
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                # The default handler may be overridden by a subclass.
                logger.error("Exception in default exception handler", exc_info=True)
        else:
            try:
                ctx = _context_of(context)
                if ctx is not None:
                    ctx.run(self._exception_handler, self, context)
                else:
                    self._exception_handler(self, context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                # The custom handler failed: report through the default one.
                try:
                    self.default_exception_handler(
                        {
                            "message": "Unhandled error in exception handler",
                            "exception": exc,
                            "context": context,
                        }
                    )
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException:
                    logger.error(
                        "Exception in default exception handler "
                        "while handling an unexpected error "
                        "in custom exception handler",
                        exc_info=True,
                    )

    # Called by the C core -------------------------------------------------

    def _fl_callback_error(self, handle, exc):
        """An exception escaped a callback run by the C core.

        Builds the context asyncio.Handle._run builds and reports it.
        """
        callback = getattr(handle, "_callback", None)
        args = getattr(handle, "_args", None)
        try:
            if _FORMAT_CB_HAS_DEBUG:
                cb = format_helpers._format_callback_source(
                    callback, args, debug=self.get_debug()
                )
            else:
                cb = format_helpers._format_callback_source(callback, args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            cb = _safe_repr(callback)
        context = {
            "message": f"Exception in callback {cb}",
            "exception": exc,
            "handle": handle,
        }
        source_traceback = getattr(handle, "_source_traceback", None)
        if source_traceback:
            context["source_traceback"] = source_traceback
        self.call_exception_handler(context)

    def _fl_slow_callback(self, handle, seconds):
        """Debug mode: the callback ``handle`` ran for ``seconds``."""
        try:
            what = _format_handle(handle)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            what = _safe_repr(handle)
        logger.warning("Executing %s took %.3f seconds", what, seconds)

    def _fl_callback_name(self, handle):
        """Statistics: the name of a slow callback (fastloop/_stats.py)."""
        return _stats.callback_name(handle)

    def _fl_transport_error(self, transport, exc, message):
        """A transport hit a fatal error (asyncio's _fatal_error): OSErrors
        are logged in debug mode only, anything else goes to the exception
        handler. The C transport then force-closes itself."""
        if isinstance(exc, OSError):
            if self.get_debug():
                logger.debug("%r: %s", transport, message, exc_info=exc)
            return
        self.call_exception_handler({
            "message": message,
            "exception": exc,
            "transport": transport,
            "protocol": transport.get_protocol(),
        })

    def _fl_protocol_error(self, transport, exc, message):
        """protocol.pause_writing()/resume_writing() raised."""
        self.call_exception_handler({
            "message": message,
            "exception": exc,
            "transport": transport,
            "protocol": transport.get_protocol(),
        })

    def _fl_accept_error(self, sock, exc, message):
        """The C accept loop failed to accept or set up a connection."""
        from asyncio import trsock

        context = {"message": message, "exception": exc}
        try:
            context["socket"] = trsock.TransportSocket(sock)
        except Exception:  # pragma: no cover - defensive
            pass
        self.call_exception_handler(context)

    def _fl_log_warning(self, message):
        logger.warning(message)

    # ------------------------------------------------------------------
    # Self-pipe and signal wake-up fd

    def _ensure_self_pipe(self):
        """Create the self-pipe on first use and watch its read end."""
        csock = self._csock
        if csock is not None:
            return csock
        self._check_closed()
        ssock, csock = socket.socketpair()
        try:
            ssock.setblocking(False)
            csock.setblocking(False)
            self.add_reader(ssock.fileno(), self._read_from_self)
        except BaseException:
            ssock.close()
            csock.close()
            raise
        self._ssock = ssock
        self._csock = csock
        return csock

    def _close_self_pipe(self):
        ssock = self._ssock
        csock = self._csock
        self._ssock = None
        self._csock = None
        try:
            if ssock is not None and not self.is_closed():
                self.remove_reader(ssock.fileno())
        finally:
            if ssock is not None:
                ssock.close()
            if csock is not None:
                csock.close()

    def _read_from_self(self):
        # selector_events.BaseSelectorEventLoop._read_from_self
        while True:
            ssock = self._ssock
            if ssock is None:
                break
            try:
                data = ssock.recv(4096)
                if not data:
                    break
                self._process_self_data(data)
            except InterruptedError:
                continue
            except BlockingIOError:
                break

    def _process_self_data(self, data):
        # unix_events._UnixSelectorEventLoop._process_self_data
        for signum in data:
            if not signum:
                continue  # null bytes written by _write_to_self()
            self._handle_signal(signum)

    def _write_to_self(self):
        """Wake the loop up from any thread."""
        csock = self._csock
        if csock is not None:
            try:
                csock.send(b"\0")
                return
            except OSError:
                pass
        try:
            self.call_soon_threadsafe(_noop)
        except RuntimeError:
            pass  # closed

    def _install_wakeup_fd(self):
        """In the main thread, point the signal wake-up fd at the self-pipe.

        Only when no wake-up fd is set: a signal (handled by any Python
        handler, not only add_signal_handler's) then wakes the loop blocked in
        epoll even when the signal is delivered to another thread.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            fd = self._ensure_self_pipe().fileno()
            prev = signal.set_wakeup_fd(fd)
        except (ValueError, OSError):
            return
        if prev == -1:
            self._wakeup_fd_installed = True
        elif prev != fd:
            # Somebody else's wake-up fd: leave it in place.
            try:
                signal.set_wakeup_fd(prev)
            except (ValueError, OSError):  # pragma: no cover
                pass

    def _restore_wakeup_fd(self):
        if not self._wakeup_fd_installed:
            return
        self._wakeup_fd_installed = False
        if self._signal_handlers:
            # add_signal_handler() set the same fd meanwhile and needs it.
            return
        csock = self._csock
        try:
            cur = signal.set_wakeup_fd(-1)
            if csock is None or cur != csock.fileno():
                # Replaced by somebody else while we ran: put it back.
                signal.set_wakeup_fd(cur)
        except (ValueError, OSError):
            pass

    # ------------------------------------------------------------------
    # Signals (unix_events._UnixSelectorEventLoop)

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) in the loop when signal ``sig`` arrives.

        Main thread only. Raise ValueError if the signal number is invalid or
        uncatchable, RuntimeError if there is a problem setting up the
        handler (e.g. not in the main thread).
        """
        if coroutines.iscoroutine(callback) or _iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        if threading.current_thread() is not threading.main_thread():
            # What set_wakeup_fd() would say; checked first so that no
            # self-pipe is created in a non-main thread.
            raise RuntimeError(
                "set_wakeup_fd only works in main thread of the main interpreter"
            )
        try:
            # set_wakeup_fd() raises ValueError if this is not the main
            # thread: call it before anything else.
            signal.set_wakeup_fd(self._ensure_self_pipe().fileno())
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))

        handle = events.Handle(callback, args, self, None)
        self._signal_handlers[sig] = handle

        try:
            # The C signal handler writes the signal number to the wake-up
            # fd; _process_self_data() dispatches it.
            signal.signal(sig, _sighandler_noop)
            # SA_RESTART: fewer EINTRs elsewhere in the program.
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers and not self._wakeup_fd_installed:
                try:
                    signal.set_wakeup_fd(-1)
                except (ValueError, OSError) as nexc:
                    logger.info("set_wakeup_fd(-1) failed: %s", nexc)
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig} cannot be caught")
            raise

    def _handle_signal(self, sig):
        handle = self._signal_handlers.get(sig)
        if handle is None:
            return  # removed meanwhile
        if handle._cancelled:
            self.remove_signal_handler(sig)
        else:
            self.call_soon(_run_signal_handle, handle)

    def remove_signal_handler(self, sig):
        """Remove the handler for ``sig``; return True if there was one."""
        self._check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False

        if sig == signal.SIGINT:
            handler = signal.default_int_handler
        else:
            handler = signal.SIG_DFL

        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig} cannot be caught")
            raise

        if not self._signal_handlers:
            if self.is_running() and self._thread_id == threading.get_ident():
                # run_forever() keeps waking up on signals until it returns;
                # it resets the wake-up fd then.
                self._wakeup_fd_installed = True
            else:
                try:
                    signal.set_wakeup_fd(-1)
                except (ValueError, OSError) as exc:
                    logger.info("set_wakeup_fd(-1) failed: %s", exc)
        return True

    def _remove_all_signal_handlers(self):
        # The signal half of _UnixSelectorEventLoop.close
        if not getattr(self, "_signal_handlers", None):
            return  # none, or __init__ did not run
        if not sys.is_finalizing():
            for sig in list(self._signal_handlers):
                self.remove_signal_handler(sig)
        else:
            warnings.warn(
                f"Closing the loop {self!r} on interpreter shutdown "
                f"stage, skipping signal handlers removal",
                ResourceWarning,
                source=self,
            )
            self._signal_handlers.clear()


def _set_exception_unless_done(fut, exc):
    if not fut.done():
        fut.set_exception(exc)


def _context_of(context):
    """The contextvars.Context of the task, future or handle in ``context``.

    Uses ``get_context()`` (3.12+) and falls back to the ``_context``
    attribute (asyncio.Handle, pure-Python Task) on older versions.
    """
    thing = context.get("task")
    if thing is None:
        # A Task is a Future; sometimes 'future' holds a Task.
        thing = context.get("future")
    if thing is None:
        thing = context.get("handle")
    if thing is None:
        return None
    get_context = getattr(thing, "get_context", None)
    if get_context is not None:
        ctx = get_context()
    else:
        ctx = getattr(thing, "_context", None)
    if ctx is not None and hasattr(ctx, "run"):
        return ctx
    return None


def _safe_repr(obj):
    try:
        return repr(obj)
    except Exception:
        return object.__repr__(obj)
