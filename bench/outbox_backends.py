"""The event outbox on SQLite against PostgreSQL, in the same run on the same machine.

    python bench/outbox_backends.py [--events N] [--batch B]

One process appends N events (built before the clock starts) in batches of B,
as a run's steps emit them (one transaction per ``append``; payloads sealed at
rest with the home's generated key), then reads the pending rows and marks them
delivered, as the relay does after the broker's acknowledgements. SQLite: the
home's ``state/outbox.sqlite``. PostgreSQL: a temporary local cluster
(``runtime/postgres_server.py``), the shared table of ``runtime/outbox_postgres.py``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from agentparty.models.events import TaskSubmittedEvent, TaskSubmittedPayload
from agentparty.runtime.local_service import free_port
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.state_backend import PostgresBackend, SqliteBackend, StateBackend


def events(tag: str, n: int) -> list[TaskSubmittedEvent]:
    return [
        TaskSubmittedEvent(
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-outbox/{tag}/{i}")),
            correlation_id=f"run-{tag}",
            payload=TaskSubmittedPayload(
                task_id=f"task-{i % 5}", title=f"event {i}", submitted_by="bench", token_budget=0
            ),
        )
        for i in range(n)
    ]


def measure(name: str, home: Path, backend: StateBackend, n: int, batch: int) -> None:
    outbox = Outbox.at(home, "bench.", backend=backend)
    emitted = events(name, n)
    started = time.perf_counter()
    for i in range(0, n, batch):
        outbox.append(emitted[i : i + batch])
    appended = time.perf_counter() - started
    started, delivered = time.perf_counter(), 0
    while rows := outbox.pending(10_000):
        outbox.mark_delivered([row.seq for row in rows])
        delivered += len(rows)
    drained = time.perf_counter() - started
    print(
        f"{name:>10}: append {n:,} in batches of {batch}: {n / appended:,.0f} events/s; "
        f"read and mark delivered: {delivered / drained:,.0f} rows/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentparty-outbox-bench-") as folder:
        home = Path(folder)
        measure("SQLite", home, SqliteBackend(home / "state"), args.events, args.batch)
        cluster = LocalPostgres(home / "pg-home", preferred_port=free_port())
        cluster.start()
        try:
            cluster.ensure_database("bench")
            backend = PostgresBackend(cluster.url("bench", driver="postgresql"))
            measure("PostgreSQL", home, backend, args.events, args.batch)
            backend.close()
        finally:
            cluster.remove()


if __name__ == "__main__":
    main()
