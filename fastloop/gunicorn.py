"""Gunicorn worker classes that run their event loop on fastloop.

``GunicornWorker``
    aiohttp's ``GunicornWebWorker`` on a ``fastloop.new_event_loop()`` loop
    (the analogue of aiohttp's ``GunicornUVLoopWebWorker``, but built
    directly, without an event loop policy)::

        gunicorn mypkg.app:make_app --worker-class fastloop.gunicorn.GunicornWorker

``UvicornWorker`` / ``UvicornH11Worker``
    uvicorn's gunicorn workers (from the ``uvicorn-worker`` package, or
    uvicorn's own deprecated ``uvicorn.workers`` module) with ``CONFIG_KWARGS``
    ``loop="fastloop:new_event_loop"`` (needs uvicorn 0.36 or later)::

        gunicorn mypkg.asgi:app --worker-class fastloop.gunicorn.UvicornWorker

The classes are created on first access, so importing this module needs
neither aiohttp nor uvicorn; asking for a worker whose framework is missing
raises ImportError saying what to install.
"""

import asyncio as _asyncio
import signal as _signal
import sys as _sys
import warnings as _warnings

__all__ = ("GunicornWorker", "UvicornWorker", "UvicornH11Worker")

#: The import string uvicorn's ``--loop`` option (``Config(loop=...)``) takes.
UVICORN_LOOP = "fastloop:new_event_loop"


def _close_inherited_loop():
    # What aiohttp's worker does first after the fork: close a loop the
    # arbiter may have left set for this thread.  asyncio.get_event_loop()
    # creates (3.10-3.13, with a DeprecationWarning on some versions) or
    # refuses (3.14) when none is set; either way nothing is lost.
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore", DeprecationWarning)
        try:
            old = _asyncio.get_event_loop()
        except RuntimeError:
            return
    if not old.is_running() and not old.is_closed():
        old.close()


def _make_gunicorn_worker():
    try:
        from aiohttp.worker import GunicornWebWorker
    except ImportError as exc:
        raise ImportError(
            "fastloop.gunicorn.GunicornWorker needs aiohttp and gunicorn "
            "(pip install aiohttp gunicorn): %s" % (exc,)
        ) from exc

    import fastloop

    class GunicornWorker(GunicornWebWorker):
        """aiohttp's gunicorn worker, on a fastloop event loop."""

        def init_process(self):
            _close_inherited_loop()
            self.loop = fastloop.new_event_loop()
            _asyncio.set_event_loop(self.loop)
            # Skip GunicornWebWorker.init_process (it would make an asyncio
            # loop of its own); gunicorn's base does the rest and calls run().
            super(GunicornWebWorker, self).init_process()

        def init_signals(self):
            super().init_signals()
            # The worker inherits the arbiter's SIGCHLD handler, which reaps
            # any child (waitpid(-1)): the app's subprocesses would report
            # returncode 255 ("Unknown child process pid").  aiohttp 3.14
            # resets it; older aiohttp (the newest on Python 3.9 is 3.13)
            # does not.
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)

    GunicornWorker.__module__ = __name__
    GunicornWorker.__qualname__ = "GunicornWorker"
    return GunicornWorker


def _uvicorn_base(name):
    try:
        import uvicorn_worker

        return getattr(uvicorn_worker, name)
    except ImportError:
        pass
    try:
        with _warnings.catch_warnings():
            # "The `uvicorn.workers` module is deprecated. Please use
            # `uvicorn-worker` package instead."
            _warnings.simplefilter("ignore", DeprecationWarning)
            import uvicorn.workers
    except ImportError as exc:
        raise ImportError(
            "fastloop.gunicorn.%s needs uvicorn (0.36 or later) and gunicorn, "
            "best with the uvicorn-worker package "
            "(pip install uvicorn-worker): %s" % (name, exc)
        ) from exc
    return getattr(uvicorn.workers, name)


def _make_uvicorn_worker(name, http):
    def factory():
        base = _uvicorn_base(name)
        cls = type(
            name,
            (base,),
            {
                "__doc__": "uvicorn's %s on a fastloop event loop." % name,
                "__module__": __name__,
                "CONFIG_KWARGS": dict(base.CONFIG_KWARGS, loop=UVICORN_LOOP, http=http),
            },
        )
        return cls

    return factory


_factories = {
    "GunicornWorker": _make_gunicorn_worker,
    "UvicornWorker": _make_uvicorn_worker("UvicornWorker", "auto"),
    "UvicornH11Worker": _make_uvicorn_worker("UvicornH11Worker", "h11"),
}


def __getattr__(name):
    factory = _factories.get(name)
    if factory is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    cls = factory()
    setattr(_sys.modules[__name__], name, cls)
    return cls


def __dir__():
    return sorted(set(globals()) | set(_factories))
