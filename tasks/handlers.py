"""Plain Python steps: ``handler: "package.module:function"`` called with the step's resolved inputs."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread

from agentparty.models.step_errors import HandlerImportError, StepValidationError


@functools.lru_cache(maxsize=256)
def _load(path: str, search_dirs: tuple[str, ...]) -> Callable[..., Any]:
    module_name, _, attribute = path.partition(":")
    for directory in search_dirs:
        # Handler modules that sit next to a definition file are importable by their plain name.
        if directory not in sys.path:
            sys.path.append(directory)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerImportError(f"handler {path!r}: cannot import module {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerImportError(
                f"handler {path!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not callable(target):
        raise HandlerImportError(f"handler {path!r} is not callable")
    handler: Callable[..., Any] = target
    return handler


def load_handler(path: str, search_dirs: Sequence[Path] = ()) -> Callable[..., Any]:
    return _load(path, tuple(str(d) for d in search_dirs))


async def call_handler(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Call sync handlers in a worker thread that a timeout can abandon (the step stops waiting)."""
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as exc:
        raise StepValidationError(
            f"inputs {sorted(kwargs)} do not fit {fn.__qualname__}{inspect.signature(fn)}: {exc}"
        ) from None
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    return await anyio.to_thread.run_sync(functools.partial(fn, **kwargs), abandon_on_cancel=True)
