"""Processes that share one outbox through a state backend (SQLite files, or PostgreSQL as several hosts would)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from agentparty.models.config import KafkaConfig
from agentparty.models.events import TaskSubmittedEvent, TaskSubmittedPayload
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.state_backend import PostgresBackend, SqliteBackend, StateBackend


def same_backend(backend: StateBackend) -> tuple[str, str]:
    """How another process reaches the same store (a backend holds a pool, which does not cross processes)."""
    if isinstance(backend, PostgresBackend):
        return "postgres", backend.url
    assert isinstance(backend, SqliteBackend)
    return "sqlite", str(backend.folder)


def rebuild(kind: str, where: str) -> StateBackend:
    return PostgresBackend(where) if kind == "postgres" else SqliteBackend(Path(where))


def outbox_on(home: str, kind: str, where: str, prefix: str) -> Outbox:
    return Outbox.at(Path(home), prefix, backend=rebuild(kind, where))


def shared_events(tag: str, n: int) -> list[TaskSubmittedEvent]:
    """``n`` events with ids derived from ``tag`` and their index: the same ids in every process that asks."""
    return [
        TaskSubmittedEvent(
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"shared-outbox/{tag}/{i}")),
            correlation_id=f"run-{tag}",
            payload=TaskSubmittedPayload(
                task_id=f"task-{tag}-{i % 5}", title=f"event {i}", submitted_by="test", token_budget=0
            ),
        )
        for i in range(n)
    ]


def append_overlapping(home: str, kind: str, where: str, prefix: str, worker: int, n: int, out: Any) -> None:
    """Append the shared ``n`` events in batches that start at a different offset in each process (so batches
    overlap partly, as a resumed run's re-emission does); report the ids this process's appends stored."""
    outbox = outbox_on(home, kind, where, prefix)
    events = shared_events("overlap", n)
    shift = worker * n // 4
    ordered = events[shift:] + events[:shift]
    stored: list[str] = []
    for start in range(0, n, 15):
        stored += [e.event_id for e in outbox.append(ordered[start : start + 25])]
    out.put((worker, stored))


def relay_forever(home: str, kind: str, where: str, prefix: str, bootstrap: str) -> None:
    """A process whose relay sends the shared outbox when it holds the sender slot, and stands by otherwise."""
    from agentparty.runtime.relay import OutboxRelay

    relay = OutboxRelay(
        outbox_on(home, kind, where, prefix), KafkaConfig(bootstrap_servers=[bootstrap], group_id="tests")
    )
    relay.start(interval=0.5)
    while True:
        time.sleep(1)
