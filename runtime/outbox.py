"""The durable event outbox (DESIGN.md §7): every event lands in SQLite before anything is sent.

``append`` writes a batch of events in one transaction; the event id is unique,
so a re-emitted event (a retried step, a resumed run) is a no-op, and ids that
derive from (run, step, transition) are stored once, ever, whichever process
emits them: ``append`` returns the events that were new, and only their emitter
passes them on (to Prefect's event feed). The relay (``runtime/relay.py``)
reads pending rows in order and marks them delivered only after the broker
acknowledged them; delivered rows are kept for ``RETENTION_S`` so a late replay
of the same id is still recognised, then pruned.

Many processes append to one outbox (every flow run a worker starts); exactly
one of them sends it at a time: the relay that holds the outbox's sender slot
(``runtime/outbox_sender.py``, which says why one sender and not per-row claims).

Where the engine's state is on PostgreSQL (``runtime/state_backend.py``), the
outbox is there too (:class:`~agentparty.runtime.outbox_postgres.PostgresOutbox`,
which :meth:`Outbox.at` returns then): because event ids derive from (run, step,
transition) and are stored once, ever, a run resumed on host B after host A died
would send again what A had sent if each host kept an outbox of its own, and what
A had not sent yet would wait on A's dead disk. With one outbox every host shares,
the unique event id de-duplicates across hosts, and whichever host's relay holds
the sender slot sends what a dead host left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentparty.models.events import BaseEvent
from agentparty.runtime.outbox_sender import SenderSlot, SenderWaker, SendingSlot, current_sender
from agentparty.runtime.sealing import SealedColumn, Sealer, sealer_at, store_home
from agentparty.runtime.settings import state_backend_at
from agentparty.runtime.state_backend import StateBackend
from agentparty.runtime.state_db import state_db

RETENTION_S = 7 * 24 * 3600
"""How long delivered ids are remembered (as long as a run's persisted step results are reused)."""
PRUNE_EVERY_S = 600.0
EVENT_VALUES = SealedColumn("outbox", "outbox.sqlite", "outbox", "value", ("event_id",), binary=True)
"""Event payloads are sealed at rest (``runtime/sealing.py``) until they are sent, each bound to its event id."""
SEALED_COLUMNS = (EVENT_VALUES,)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_version TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    value BLOB NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_run ON outbox (correlation_id) WHERE delivered_at IS NULL;
"""


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    event_id: str
    topic: str
    key: str
    event_type: str
    event_version: str
    correlation_id: str
    value: bytes

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [
            ("event_type", self.event_type),
            ("event_version", self.event_version),
            ("correlation_id", self.correlation_id),
        ]


class Outbox:
    def __init__(self, path: Path, topic_prefix: str = "agentparty.", sealer: Sealer | None = None) -> None:
        self.path = path
        self.sealer = sealer or sealer_at(store_home(path))
        self.topic_prefix = topic_prefix
        self._pruned_at = 0.0
        self._waker = SenderWaker(path)
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        with state_db(self.path) as db:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                db.execute(statement)

    @classmethod
    def at(
        cls,
        home: Path,
        topic_prefix: str = "agentparty.",
        sealer: Sealer | None = None,
        backend: StateBackend | None = None,
    ) -> Outbox:
        """The home's outbox, where its state backend is (``backend``, else as this process's settings say):
        ``state/outbox.sqlite`` on one machine, the shared table on PostgreSQL."""
        backend = backend or state_backend_at(home)
        if backend.dialect == "postgresql":
            from agentparty.runtime.outbox_postgres import PostgresOutbox  # deferred: it imports this module

            return PostgresOutbox(backend, topic_prefix, sealer or sealer_at(home))
        return cls(home / "state" / "outbox.sqlite", topic_prefix, sealer)

    @property
    def where(self) -> str:
        """Where the outbox is, for people (a file here; the database on PostgreSQL)."""
        return str(self.path)

    def topic_for(self, event: BaseEvent[Any]) -> str:
        return f"{self.topic_prefix}{event.family}"

    def append(self, events: list[BaseEvent[Any]]) -> list[BaseEvent[Any]]:
        """Store events durably, in one transaction; returns the ones that were new (the rest were already known).

        Of several processes appending the same event at once, exactly one gets it back: the write lock is
        taken before the ids are looked up.
        """
        if not events:
            return []
        unique = list({e.event_id: e for e in events}.values())
        now = time.time()
        with state_db(self.path, write=True) as db:
            known = {
                row[0]
                for start in range(0, len(unique), 500)  # SQLite's bound-parameter limit
                for row in db.execute(
                    f"SELECT event_id FROM outbox WHERE event_id IN ({','.join('?' * len(unique[start : start + 500]))})",
                    [e.event_id for e in unique[start : start + 500]],
                )
            }
            new = [e for e in unique if e.event_id not in known]
            db.executemany(
                "INSERT INTO outbox (event_id, topic, key, event_type, event_version, correlation_id, value, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.event_id,
                        self.topic_for(e),
                        e.entity_id(),
                        e.event_type,
                        e.event_version,
                        e.correlation_id,
                        EVENT_VALUES.seal_bytes(self.sealer, e.model_dump_json().encode(), e.event_id),
                        now,
                    )
                    for e in new
                ],
            )
        return new

    # -- the one sender ----------------------------------------------------------------------

    def try_acquire_sender(self) -> SendingSlot | None:
        """The right to send this outbox, if no relay in any process holds it (released with the slot or at exit)."""
        return SenderSlot.try_acquire(self.path)

    def wake_sender(self) -> None:
        """Tell the sending relay, whichever process it lives in, that rows are waiting."""
        self._waker.wake()

    def sender_pid(self) -> int | None:
        """The process whose relay sends this outbox now, or None."""
        return current_sender(self.path)

    def sender(self) -> str | None:
        """Who sends this outbox now, for people (``process 123``; on PostgreSQL with its host), or None."""
        pid = self.sender_pid()
        return None if pid is None else f"process {pid}"

    def pending(self, limit: int = 10_000, after: int = 0) -> list[OutboxRow]:
        """Undelivered events in emission order (``after``: past this sequence number, for a relay with sends in flight).

        Only the holder of the sender slot sends what this returns; anyone may read it."""
        with state_db(self.path) as db:
            found = db.execute(
                "SELECT seq, event_id, topic, key, event_type, event_version, correlation_id, value FROM outbox "
                "WHERE delivered_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            OutboxRow(
                seq, event_id, topic, key, kind, version, run, EVENT_VALUES.open_bytes(self.sealer, value, event_id)
            )
            for seq, event_id, topic, key, kind, version, run, value in found
        ]

    def mark_delivered(self, seqs: list[int]) -> None:
        if not seqs:
            return
        now = time.time()
        with state_db(self.path, write=True) as db:
            db.executemany(
                "UPDATE outbox SET delivered_at = ? WHERE seq BETWEEN ? AND ?",
                [(now, a, b) for a, b in _ranges(sorted(seqs))],
            )
            if now - self._pruned_at > PRUNE_EVERY_S:  # a scan of the table: not on every delivery
                db.execute(
                    "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", (now - RETENTION_S,)
                )
                self._pruned_at = now

    def forget_delivered(self, correlation_ids: list[str]) -> int:
        """Drop the delivered events of these runs (a user's erasure); pending ones are still to be sent, and stay."""
        removed = 0
        with state_db(self.path, write=True) as db:
            for start in range(0, len(correlation_ids), 500):  # SQLite's bound-parameter limit
                chunk = correlation_ids[start : start + 500]
                removed += db.execute(
                    "DELETE FROM outbox WHERE delivered_at IS NOT NULL "
                    f"AND correlation_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).rowcount
        return removed

    def forget_delivered_before(self, cutoff: float) -> int:
        """Drop events delivered before ``cutoff`` (epoch seconds; retention)."""
        with state_db(self.path, write=True) as db:
            return int(
                db.execute("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", (cutoff,)).rowcount
            )

    def pending_count(self, correlation_id: str | None = None) -> int:
        with state_db(self.path) as db:
            if correlation_id is None:
                row = db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()
            else:
                row = db.execute(
                    "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND correlation_id = ?", (correlation_id,)
                ).fetchone()
        return int(row[0])


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted sequence numbers as inclusive runs (delivered events are mostly contiguous: one UPDATE per run)."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs
