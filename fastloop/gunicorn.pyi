from typing import Any, ClassVar, Dict

__all__ = ("GunicornWorker", "UvicornWorker", "UvicornH11Worker")

UVICORN_LOOP: str

# aiohttp.worker.GunicornWebWorker subclass (created on first access).
class GunicornWorker:
    loop: Any
    def init_process(self) -> None: ...
    def init_signals(self) -> None: ...
    def run(self) -> None: ...

# uvicorn_worker.UvicornWorker (or uvicorn.workers.UvicornWorker) subclasses
# (created on first access).
class UvicornWorker:
    CONFIG_KWARGS: ClassVar[Dict[str, Any]]
    def run(self) -> None: ...

class UvicornH11Worker(UvicornWorker): ...
