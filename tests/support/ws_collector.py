"""A WebSocket client for the live-feed tests: reads every message in a thread of its own until the connection ends."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection


@dataclass
class Collector:
    """A client reading everything in a thread of its own, until the connection ends: a fast client (its
    connection buffers what the thread has not taken yet, so the test process's own work never makes it slow)."""

    ws: ClientConnection
    texts: list[str] = field(default_factory=list)
    closed: ConnectionClosed | None = None
    _parsed: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                self.texts.append(self.ws.recv())  # type: ignore[arg-type]  # text frames only
        except ConnectionClosed as exc:
            self.closed = exc

    @property
    def messages(self) -> list[dict[str, Any]]:
        """What it received so far, parsed (each message once)."""
        self._parsed += [json.loads(text) for text in self.texts[len(self._parsed) : len(self.texts)]]
        return list(self._parsed)

    def wait_for(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not done(messages := self.messages):
            assert time.monotonic() < deadline, f"gave up waiting; got {len(messages)} messages"
            assert self.closed is None, f"closed: {self.closed}"
            time.sleep(0.05)
        return messages
