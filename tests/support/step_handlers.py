"""Handlers the compiler tests call (``handler: support.step_handlers:NAME``). They record what happened."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from agentparty.models.step_errors import StepValidationError

CALLS: dict[str, int] = {}
EVENTS: list[tuple[str, str, float]] = []
_LOCK = threading.Lock()
_ACTIVE = {"now": 0, "max": 0}


def _count(name: str) -> int:
    with _LOCK:
        CALLS[name] = CALLS.get(name, 0) + 1
        return CALLS[name]


def reset() -> None:
    CALLS.clear()
    EVENTS.clear()
    _ACTIVE.update(now=0, max=0)


def max_active() -> int:
    return _ACTIVE["max"]


def number(n: int = 1) -> dict[str, int]:
    _count("number")
    return {"n": n}


def add(a: int | None = None, b: int | None = None) -> dict[str, int]:
    _count("add")
    return {"n": (a or 0) + (b or 0)}


def echo(**kwargs: Any) -> Any:
    _count("echo")
    return kwargs


def tracked_sleep(name: str, seconds: float = 0.3) -> dict[str, str]:
    with _LOCK:
        _ACTIVE["now"] += 1
        _ACTIVE["max"] = max(_ACTIVE["max"], _ACTIVE["now"])
        EVENTS.append((name, "start", time.perf_counter()))
    time.sleep(seconds)
    with _LOCK:
        _ACTIVE["now"] -= 1
        EVENTS.append((name, "end", time.perf_counter()))
    _count(name)
    return {"name": name}


async def async_sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


def flaky(name: str, failures: int) -> dict[str, int]:
    """Fails `failures` times, then succeeds, counting per name."""
    call = _count(name)
    if call <= failures:
        raise ConnectionError(f"{name}: transient failure {call}")
    return {"calls": call}


def invalid(name: str) -> None:
    _count(name)
    raise StepValidationError(f"{name}: bad input, retrying cannot help")


def always_fails(name: str) -> None:
    _count(name)
    raise RuntimeError(f"{name} is broken")


def wrong_output() -> dict[str, str]:
    return {"n": "not a number"}


def upper(text: str) -> dict[str, str]:
    _count("upper")
    return {"text": text.upper()}


def append_to_file(path: str, line: str) -> dict[str, str]:
    """Counts executions across processes (resumption test)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return {"line": line}


def block_until(path: str, flag: str) -> dict[str, str]:
    """Signals it started, then waits for a flag file that never comes (the test kills the process)."""
    Path(path).write_text("started", encoding="utf-8")
    while not os.path.exists(flag):
        time.sleep(0.05)
    return {"released": json.dumps(True)}


def fingerprint(secret: str, region: str) -> dict[str, str]:
    """Uses a secret input without returning it: its SHA-256 prefix shows the step saw the real value."""
    return {"sha256": hashlib.sha256(secret.encode()).hexdigest()[:12], "region": region}
