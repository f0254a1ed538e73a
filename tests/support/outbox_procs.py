"""Processes that emit into one shared outbox and relay it, as the flow-run processes a worker starts do."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from agentparty.models.config import KafkaConfig
from agentparty.models.events import TaskSubmittedEvent, TaskSubmittedPayload


def events_of(worker: int, n: int) -> list[TaskSubmittedEvent]:
    """``n`` events of one process's own run (its correlation id), over a few tasks (keys) of its own; the same ids
    on every call, so the test can name what a process emitted."""
    return [
        TaskSubmittedEvent(
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"outbox-procs/{worker}/{i}")),
            correlation_id=f"proc-{worker}",
            payload=TaskSubmittedPayload(
                task_id=f"task-{worker}-{i % 7}", title=f"event {i}", submitted_by="test", token_budget=0
            ),
        )
        for i in range(n)
    ]


def emit_then_settle(home: str, bootstrap: str, prefix: str, worker: int, n: int, batch: int, results: Any) -> None:
    """Emit ``n`` events a batch at a time through the process-wide bus, then wait for this run's to be delivered."""
    from agentparty.runtime.event_bus import bus_for

    bus = bus_for(Path(home), KafkaConfig(bootstrap_servers=[bootstrap], group_id="tests"), prefix)
    events = events_of(worker, n)
    for i in range(0, n, batch):
        bus.emit(*events[i : i + batch])
        time.sleep(0.002)
    pending = bus.settle(f"proc-{worker}", 60.0)
    results.put((worker, pending, [e.event_id for e in events]))


def emit_and_keep_sending(home: str, bootstrap: str, prefix: str, worker: int, n: int, batch: int) -> None:
    """Emit ``n`` events, then keep the process (and its relay) alive until it is killed."""
    from agentparty.runtime.event_bus import bus_for

    bus = bus_for(Path(home), KafkaConfig(bootstrap_servers=[bootstrap], group_id="tests"), prefix)
    events = events_of(worker, n)
    for i in range(0, n, batch):
        bus.emit(*events[i : i + batch])
    while True:
        time.sleep(1)


def append_shared(home: str, prefix: str, worker: int, n: int, results: Any) -> None:
    """Append the same ``n`` events as every other process does; report the ids this process's appends stored."""
    from agentparty.runtime.outbox import Outbox

    outbox = Outbox.at(Path(home), prefix)
    events = events_of(99, n)
    stored: list[str] = []
    for i in range(0, n, 10):
        stored += [e.event_id for e in outbox.append(events[i : i + 10])]
    results.put((worker, stored))
