"""Every public method of asyncio.AbstractEventLoop on the running Python is
implemented by fastloop's Loop (not inherited from AbstractEventLoop, whose
methods raise NotImplementedError) and takes the same parameters as
asyncio's own SelectorEventLoop."""
import asyncio
import inspect
import sys

import pytest

import fastloop

PUBLIC = sorted(
    name
    for name, value in vars(asyncio.AbstractEventLoop).items()
    if not name.startswith("_") and callable(value)
)

# Parameters whose spelling differs for a documented reason.
SIGNATURE_EXCEPTIONS = {
    # asyncio's create_task grew **kwargs in 3.13.3/3.14; fastloop forwards
    # extra keywords (eager_start, ...) on every version.
    "create_task",
}


def _find_impl(cls, name):
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return None


@pytest.mark.parametrize("name", PUBLIC)
def test_method_is_implemented(name):
    owner = _find_impl(fastloop.Loop, name)
    assert owner is not None, name
    assert owner is not asyncio.AbstractEventLoop, (
        "%s falls through to AbstractEventLoop (NotImplementedError)" % name)


def _params(func):
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # pragma: no cover - C method without
        pytest.skip("no signature for %r" % func)  # text signature
    out = []
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        default = p.default
        if default is not inspect.Parameter.empty:
            # Sentinels (e.g. reuse_address=_unset on 3.9/3.10) compare by
            # kind only.
            default = (default if isinstance(default, (int, float, str,
                                                       type(None), bool))
                       else type(default).__name__)
        kind = p.kind
        if kind is inspect.Parameter.POSITIONAL_ONLY:
            kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        out.append((p.name, kind, default))
    return out


@pytest.mark.parametrize("name", PUBLIC)
def test_signature_matches_asyncio(name):
    if name in SIGNATURE_EXCEPTIONS:
        pytest.skip("documented difference")
    ref = _params(getattr(asyncio.SelectorEventLoop, name))
    mine = _params(getattr(fastloop.Loop, name))
    # Every parameter of asyncio's, in order, with the same kind and
    # default; fastloop may accept more (newer versions' options, e.g.
    # shutdown_default_executor(timeout) before 3.12) if they are optional.
    assert mine[:len(ref)] == ref, name
    for pname, kind, default in mine[len(ref):]:
        assert default is not inspect.Parameter.empty or kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD), (name, pname)


def test_create_task_accepts_asyncio_parameters():
    params = inspect.signature(fastloop.Loop.create_task).parameters
    for name in ("coro", "name", "context"):
        assert name in params
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD
               for p in params.values())


def test_loop_methods_work_on_an_instance():
    loop = fastloop.new_event_loop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        for name in PUBLIC:
            assert callable(getattr(loop, name))
    finally:
        loop.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.11+ API")
def test_new_311_socket_methods_exist():
    for name in ("sock_recvfrom", "sock_recvfrom_into", "sock_sendto"):
        assert _find_impl(fastloop.Loop, name) is not asyncio.AbstractEventLoop
