"""Step handlers for the benchmarks (found next to the benchmark files).

``noop`` is async so that (a) measures orchestration, not the worker thread a
sync handler runs in (the hand-written baseline awaits the same function).
"""

from __future__ import annotations

import time
from typing import Any


async def noop(previous: Any = None) -> dict[str, int]:
    return {"n": 1}


def wait(seconds: float) -> dict[str, float]:
    time.sleep(seconds)  # sync on purpose: (b) checks that blocking handlers still run in parallel
    return {"waited": seconds}


def lookup(city: str) -> dict[str, object]:
    """Look up today's temperature in a city (the tool the agent steps of ``bench/_tracing.py`` are offered)."""
    return {"city": city, "temperature": 21}
