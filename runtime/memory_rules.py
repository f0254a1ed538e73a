"""What a change to an agent's memory must satisfy, and how a refusal reads: compare-and-set and bounds.

The store (``runtime/agent_memory.py``) applies these inside the transaction that
holds the agent's turn, on whichever state backend; a refusal's message is what
the model reads, so it says what to do next.
"""

from __future__ import annotations

import json
from typing import Any

from agentparty.models.memory import MemoryConfig


class MemoryRefused(Exception):
    """A change the memory refused; the message is what the model reads."""


class MemoryConflict(MemoryRefused):
    """A compare-and-set write whose ``expected_version`` is not the key's current version."""

    def __init__(self, key: str, expected: int, current: int | None) -> None:
        self.key, self.expected, self.current = key, expected, current
        if expected == 0:
            what = f"conflict: {key!r} exists at version {current} (expected_version 0 asserts a new key)"
        elif current is None:
            what = (
                f"conflict: {key!r} does not exist (expected_version {expected}); use expected_version 0 to create it"
            )
        else:
            what = f"conflict: {key!r} is at version {current}, not {expected} (someone changed it since you read it)"
        super().__init__(f"{what}; recall it, merge your change and write again with its current version")


class MemoryFull(MemoryRefused):
    """A write past the agent's bound: the message says which bound, what is used and what the write needed."""


def encoded(value: Any) -> str:
    """The value as stored: compact JSON (``ValueError`` for what JSON cannot hold: NaN, infinities, objects)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:
        raise ValueError(f"the value is not JSON-serialisable: {exc}") from None


def entry_bytes(key: str, value_json: str) -> int:
    return len(key.encode()) + len(value_json.encode())


def check_expected(key: str, expected: int | None, live: bool, version: int) -> None:
    if expected is None:
        return
    if expected == 0:
        if live:
            raise MemoryConflict(key, 0, version)
    elif not live or version != expected:
        raise MemoryConflict(key, expected, version if live else None)


def check_limits(key: str, size: int, limits: MemoryConfig, other_bytes: int, other_keys: int) -> None:
    """Refuse a write that would take the memory past its bounds (``other_*``: the memory without this key)."""
    if other_keys + 1 > limits.max_keys:
        raise MemoryFull(
            f"memory full: it holds {other_keys} keys and the limit is {limits.max_keys} (max_keys), so the new key "
            f"{key!r} does not fit. Forget a key (forget_key) or overwrite an existing one"
        )
    if other_bytes + size > limits.max_bytes:
        raise MemoryFull(
            f"memory full: {key!r} with this value takes {size} bytes and the rest of the memory "
            f"{other_bytes}, {other_bytes + size} in all, over the limit of {limits.max_bytes} bytes (max_bytes) "
            f"by {other_bytes + size - limits.max_bytes}. Store less, or forget a key (forget_key)"
        )
