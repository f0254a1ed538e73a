"""Python tools the agent-loop tests offer their agents (``support.agent_tools:NAME``).

Each records its calls in :data:`CALLS` (in process), or, for the side-effect
tools a killed-and-resumed run uses, appends a line to the file named by
``AGENTPARTY_TEST_SIDE_EFFECTS`` (across processes).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Literal

from agentparty.tasks.tools import ToolContext, idempotent

CALLS: list[tuple[str, dict[str, object]]] = []
"""(tool, arguments) of every call made in this process, in order."""


def lookup(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, object]:
    """Look up today's temperature in a city.

    Args:
        city: The city's name, e.g. "Paris".
        unit: Which scale to answer in.
    """
    CALLS.append(("lookup", {"city": city, "unit": unit}))
    return {"city": city, "temperature": 21 if unit == "celsius" else 70, "unit": unit}


async def fetch_page(url: str) -> str:
    """Fetch a page (async: the loop awaits it)."""
    CALLS.append(("fetch_page", {"url": url}))
    await asyncio.sleep(0)
    return f"<html>{url}</html>"


def explode(reason: str) -> str:
    """Always fails, with ``reason``."""
    CALLS.append(("explode", {"reason": reason}))
    raise ValueError(f"exploded: {reason}")


def slow(seconds: float) -> str:
    """Sleeps (sync: a timeout abandons its thread)."""
    CALLS.append(("slow", {"seconds": seconds}))
    time.sleep(seconds)
    return "woke up"


def huge(size: int) -> str:
    """Returns ``size`` characters."""
    CALLS.append(("huge", {"size": size}))
    return "x" * size


def essay(words: int) -> str:
    """Returns ``words`` words (a long result that the wire server counts as that many tokens)."""
    CALLS.append(("essay", {"words": words}))
    return " ".join(["word"] * words)


def delete_everything(confirm: bool) -> str:
    """What a denied tool must never do."""
    CALLS.append(("delete_everything", {"confirm": confirm}))
    return "deleted"


def _side_effects() -> Path:
    return Path(os.environ["AGENTPARTY_TEST_SIDE_EFFECTS"])


def record_step(note: str, context: ToolContext) -> str:
    """Append a line for ``note`` to the side-effects file (one line per real call)."""
    with _side_effects().open("a", encoding="utf-8") as out:
        out.write(f"{context.slot}|{context.turn}|{note}|{context.idempotency_key}\n")
    return f"recorded {note}"


@idempotent(lambda arguments: str(arguments["order_id"]))
def charge(order_id: str, amount: int) -> str:
    """Charge an order once, however often a resumed run asks (its own idempotency key: the order id)."""
    with _side_effects().open("a", encoding="utf-8") as out:
        out.write(f"charge|{order_id}|{amount}\n")
    return f"charged {order_id}"
