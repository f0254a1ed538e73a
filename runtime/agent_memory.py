"""Persistent agents' memories: versioned key-value entries in the engine's state backend.

One memory per persistent agent (one per published template version), shared by
every process of the home (``state/memory.sqlite`` on one machine) or, with
PostgreSQL configured (``runtime/state_backend.py``), by every host, so parallel
runs and fan-out items of one agent write the same entries wherever they run.
The rule for concurrent writes, in one place:

* Every change is one transaction that first takes the agent's turn, so changes
  to one agent's memory are applied one after another, never interleaved: on
  SQLite an immediate transaction (``runtime/state_db.py``: the write lock is
  taken before reading, across threads and processes); on PostgreSQL a lock on
  the agent's ``memory_agents`` row (``SELECT … FOR UPDATE``, the row made first
  when it is new), taken before anything of the memory is read, so changes to
  different agents still run side by side.
* Each key has a version that goes up by one with every change, a deletion
  included (a deleted key keeps its version, so a key deleted and written again
  never reuses an old version number).
* A write that names ``expected_version`` is a compare-and-set: it applies only
  when the key is at that version (``0``: the key must not exist), otherwise it
  raises :class:`MemoryConflict` naming the current version. A write without it
  applies whatever the version is: the last writer wins, and learns which
  version it replaced.
* A write past the agent's bound (bytes or keys) raises :class:`MemoryFull`
  saying how much is used, what the write needed and what the limit is.
* A write carries the idempotency key of the tool call that asked for it; the
  change is recorded under that key in the same transaction, so the same call
  replayed (a resumed run that lost the call's checkpoint) returns the first
  outcome instead of applying again.

Changes are kept ``RETENTION_DAYS`` (they travel to the results graph with the
step and make replays idempotent), and so are the per-engagement snapshots of
what a step's agent was shown of its memory (:meth:`AgentMemoryStore.snapshot`).
Pruning old ones skips rows another transaction is pruning (``SKIP LOCKED`` on
PostgreSQL), so two agents' writes never wait on each other for it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentparty.models.memory import MemoryChange, MemoryConfig, MemoryOperation
from agentparty.models.run_history import task_id_for
from agentparty.runtime.memory_rules import (
    MemoryConflict,
    MemoryFull,
    MemoryRefused,
    check_expected,
    check_limits,
    encoded,
    entry_bytes,
)
from agentparty.runtime.sealing import SealedColumn, Sealer, sealer_at, store_home
from agentparty.runtime.secrets import redact
from agentparty.runtime.settings import get_settings, state_backend_at
from agentparty.runtime.state_backend import Migration, SqliteBackend, StateBackend, StateConnection, as_backend

__all__ = [  # the refusals and the size rule live in runtime/memory_rules.py; callers find them here too
    "MEMORY_VALUES",
    "MIGRATIONS",
    "RETENTION_DAYS",
    "SEALED_COLUMNS",
    "SNAPSHOT_TEXTS",
    "STORE",
    "AgentMemoryStore",
    "Engagement",
    "Forgotten",
    "MemoryConflict",
    "MemoryEntry",
    "MemoryFull",
    "MemoryRefused",
    "MemoryWrite",
    "encoded",
    "entry_bytes",
]

RETENTION_DAYS = 30
"""How long changes (and their replay records) and step snapshots are kept."""

STORE = "memory"
"""The store's name: ``state/memory.sqlite`` on SQLite, its schema version's key on PostgreSQL."""
MEMORY_VALUES = SealedColumn(STORE, "memory.sqlite", "memory_entries", "value", ("agent_id", "key"))
SNAPSHOT_TEXTS = SealedColumn(STORE, "memory.sqlite", "memory_snapshots", "text", ("agent_id", "run_key", "slot"))
"""Values and the snapshots rendered from them are sealed at rest (``runtime/sealing.py``), each bound to its row
(an inherited value is opened and sealed again for its new agent); keys, versions and sizes stay plain."""
SEALED_COLUMNS = (MEMORY_VALUES, SNAPSHOT_TEXTS)

_SQLITE = (  # the layout of every home's memory.sqlite since memory began: version 1 must be exactly this
    "CREATE TABLE IF NOT EXISTS memory_agents (agent_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, "
    "inherited_from TEXT, forgotten_at TEXT);"
    "CREATE TABLE IF NOT EXISTS memory_entries (agent_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT, "
    "version INTEGER NOT NULL, bytes INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (agent_id, key));"
    "CREATE TABLE IF NOT EXISTS memory_changes (id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, key TEXT NOT NULL, "
    "version INTEGER NOT NULL, operation TEXT NOT NULL, bytes INTEGER NOT NULL, run_key TEXT NOT NULL, "
    "slot TEXT NOT NULL, changed_at TEXT NOT NULL, request TEXT, outcome TEXT NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS memory_changes_request ON memory_changes (agent_id, request);"
    "CREATE INDEX IF NOT EXISTS memory_changes_engagement ON memory_changes (agent_id, run_key, slot);"
    "CREATE INDEX IF NOT EXISTS memory_changes_age ON memory_changes (changed_at);"
    "CREATE TABLE IF NOT EXISTS memory_snapshots (agent_id TEXT NOT NULL, run_key TEXT NOT NULL, "
    "slot TEXT NOT NULL, text TEXT NOT NULL, taken_at TEXT NOT NULL, PRIMARY KEY (agent_id, run_key, slot))"
)
_POSTGRES = (  # the same tables; ids, keys and ISO stamps compare byte by byte (COLLATE "C") as in SQLite, and
    # changes are numbered (seq) where SQLite orders them by rowid
    'CREATE TABLE IF NOT EXISTS memory_agents (agent_id TEXT COLLATE "C" PRIMARY KEY, created_at TEXT NOT NULL, '
    "inherited_from TEXT, forgotten_at TEXT);"
    'CREATE TABLE IF NOT EXISTS memory_entries (agent_id TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, '
    'value TEXT, version BIGINT NOT NULL, bytes BIGINT NOT NULL, updated_at TEXT COLLATE "C" NOT NULL, '
    "PRIMARY KEY (agent_id, key));"
    'CREATE TABLE IF NOT EXISTS memory_changes (id TEXT PRIMARY KEY, agent_id TEXT COLLATE "C" NOT NULL, '
    'key TEXT COLLATE "C" NOT NULL, version BIGINT NOT NULL, operation TEXT NOT NULL, bytes BIGINT NOT NULL, '
    'run_key TEXT NOT NULL, slot TEXT NOT NULL, changed_at TEXT COLLATE "C" NOT NULL, request TEXT, '
    "outcome TEXT NOT NULL, seq BIGINT GENERATED ALWAYS AS IDENTITY);"
    "CREATE UNIQUE INDEX IF NOT EXISTS memory_changes_request ON memory_changes (agent_id, request);"
    "CREATE INDEX IF NOT EXISTS memory_changes_engagement ON memory_changes (agent_id, run_key, slot);"
    "CREATE INDEX IF NOT EXISTS memory_changes_age ON memory_changes (changed_at);"
    "CREATE INDEX IF NOT EXISTS memory_changes_run ON memory_changes (run_key);"
    'CREATE TABLE IF NOT EXISTS memory_snapshots (agent_id TEXT COLLATE "C" NOT NULL, run_key TEXT NOT NULL, '
    'slot TEXT NOT NULL, text TEXT NOT NULL, taken_at TEXT COLLATE "C" NOT NULL, '
    "PRIMARY KEY (agent_id, run_key, slot));"
    "CREATE INDEX IF NOT EXISTS memory_snapshots_age ON memory_snapshots (taken_at)"
)
MIGRATIONS = (Migration(1, sqlite=_SQLITE, postgresql=_POSTGRES),)


@dataclass(frozen=True)
class Engagement:
    """Where a change happens: the run and the step slot (``step`` or ``step[item]``)."""

    run_key: str
    slot: str


@dataclass(frozen=True)
class MemoryEntry:
    key: str
    value: Any
    version: int
    size_bytes: int
    updated_at: str


@dataclass(frozen=True)
class MemoryWrite:
    """How a change ended; what the tool tells the model (``replayed``: the same call had already applied it)."""

    key: str
    version: int | None
    """The key's version now (None: a deletion of a key that did not exist changed nothing)."""
    previous_version: int | None
    used_bytes: int
    used_keys: int
    changed: bool = True
    replayed: bool = False


@dataclass(frozen=True)
class Forgotten:
    """What :meth:`AgentMemoryStore.forget` erased."""

    known: bool
    """The store had the agent's memory (it had been used, or inherited, or forgotten before)."""
    keys: int
    changes: int
    snapshots: int


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


class AgentMemoryStore:
    """The memories of every persistent agent of one home (``memory.sqlite``), or of every host (PostgreSQL)."""

    STORE = STORE

    def __init__(self, where: StateBackend | Path, sealer: Sealer | None = None) -> None:
        self.backend = as_backend(where)
        sqlite_file = self.backend.path(STORE) if isinstance(self.backend, SqliteBackend) else None
        self.path = sqlite_file
        """The SQLite file, when the store is one; None on PostgreSQL."""
        self.sealer = sealer or sealer_at(store_home(sqlite_file) if sqlite_file else get_settings().home)
        self._order = "rowid" if self.backend.dialect == "sqlite" else "seq"
        """What orders changes made in one instant (an inheritance records several)."""
        self.backend.migrate(STORE, MIGRATIONS)

    @classmethod
    def at(cls, home: Path, sealer: Sealer | None = None, backend: StateBackend | None = None) -> AgentMemoryStore:
        """The memories of ``home``: in ``backend``, by default where the settings keep engine state."""
        return cls(backend or state_backend_at(home), sealer or sealer_at(home))

    def _value(self, agent_id: str, key: str, stored: str) -> Any:
        return json.loads(MEMORY_VALUES.open(self.sealer, stored, agent_id, key))

    def _turn(self, db: StateConnection, agent_id: str, now: str) -> None:
        """Take the agent's turn for a change (see the module docstring): its row made when new, then locked."""
        db.execute(
            "INSERT INTO memory_agents (agent_id, created_at) VALUES (?, ?) ON CONFLICT (agent_id) DO NOTHING",
            (agent_id, now),
        )
        if self.backend.for_update:  # SQLite's immediate transaction holds the whole file already
            db.execute("SELECT agent_id FROM memory_agents WHERE agent_id = ?" + self.backend.for_update, (agent_id,))

    # -- reading ---------------------------------------------------------------------------

    def initialised(self, agent_id: str) -> bool:
        """Whether the agent's memory exists (used, inherited, or forgotten): it will not inherit again."""
        with self.backend.transaction(STORE) as db:
            return db.execute("SELECT 1 FROM memory_agents WHERE agent_id = ?", (agent_id,)).fetchone() is not None

    def entries(self, agent_id: str) -> list[MemoryEntry]:
        """The agent's keys and values, by key (deleted keys left out)."""
        with self.backend.transaction(STORE) as db:
            rows = db.execute(
                "SELECT key, value, version, bytes, updated_at FROM memory_entries "
                "WHERE agent_id = ? AND value IS NOT NULL ORDER BY key",
                (agent_id,),
            ).fetchall()
        return [MemoryEntry(k, self._value(agent_id, k, v), int(n), int(b), at) for k, v, n, b, at in rows]

    def get(self, agent_id: str, key: str) -> MemoryEntry | None:
        with self.backend.transaction(STORE) as db:
            row = db.execute(
                "SELECT value, version, bytes, updated_at FROM memory_entries "
                "WHERE agent_id = ? AND key = ? AND value IS NOT NULL",
                (agent_id, key),
            ).fetchone()
        return MemoryEntry(key, self._value(agent_id, key, row[0]), int(row[1]), int(row[2]), row[3]) if row else None

    def usage(self, agent_id: str) -> tuple[int, int]:
        """Bytes and keys the agent's memory holds."""
        with self.backend.transaction(STORE) as db:
            return _usage(db, agent_id)

    def changes(self, agent_id: str, where: Engagement) -> tuple[MemoryChange, ...]:
        """The changes the agent made in one engagement (every attempt's), oldest first: what the graph records."""
        with self.backend.transaction(STORE) as db:
            rows = db.execute(
                "SELECT id, key, version, operation, bytes, changed_at FROM memory_changes "
                f"WHERE agent_id = ? AND run_key = ? AND slot = ? ORDER BY changed_at, {self._order}",
                (agent_id, where.run_key, where.slot),
            ).fetchall()
        task_id = task_id_for(where.run_key)
        return tuple(
            MemoryChange(
                id=change_id,
                agent_id=agent_id,
                key=redact(key),
                version=int(version),
                operation=operation,
                size_bytes=int(size),
                task_id=task_id,
                step_id=where.slot,
                changed_at=datetime.fromisoformat(at),
            )
            for change_id, key, version, operation, size, at in rows
        )

    def snapshot(self, agent_id: str, where: Engagement, render: Callable[[list[MemoryEntry]], str]) -> str:
        """What the agent is shown of its memory in this engagement: rendered from the entries at its first
        attempt and kept, so a retried or resumed step sends the same system prompt (its checkpointed turns
        stay valid) even when the memory changed since, by this step or another."""
        key = (agent_id, where.run_key, where.slot)
        read = "SELECT text FROM memory_snapshots WHERE agent_id = ? AND run_key = ? AND slot = ?"
        with self.backend.transaction(STORE) as db:
            row = db.execute(read, key).fetchone()
        if row is not None:
            return SNAPSHOT_TEXTS.open(self.sealer, row[0], *key)
        text = render(self.entries(agent_id))
        now = _now()
        sealed = SNAPSHOT_TEXTS.seal(self.sealer, text, *key)
        with self.backend.transaction(STORE, write=True) as db:  # two first attempts racing keep the first one
            db.execute(
                "INSERT INTO memory_snapshots (agent_id, run_key, slot, text, taken_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (agent_id, run_key, slot) DO NOTHING",
                (*key, sealed, _stamp(now)),
            )
            db.execute(
                "DELETE FROM memory_snapshots WHERE (agent_id, run_key, slot) IN (SELECT agent_id, run_key, slot "
                f"FROM memory_snapshots WHERE taken_at < ?{self.backend.skip_locked})",
                (_stamp(now - timedelta(days=RETENTION_DAYS)),),
            )
            row = db.execute(read, key).fetchone()
        return SNAPSHOT_TEXTS.open(self.sealer, row[0], *key)

    def agents(self) -> list[str]:
        """Every agent whose memory the store has (used, inherited or forgotten)."""
        with self.backend.transaction(STORE) as db:
            return [r[0] for r in db.execute("SELECT agent_id FROM memory_agents ORDER BY agent_id").fetchall()]

    # -- changing --------------------------------------------------------------------------

    def initialise(
        self, agent_id: str, where: Engagement, limits: MemoryConfig, source: str | None = None
    ) -> tuple[int, int] | None:
        """Create the agent's memory at its first use, as a copy of ``source``'s (another agent's) when given.

        Returns (copied, left out) keys, or None when the memory existed already (it is never copied twice).
        The copy takes the source's most recently changed entries first, as many as the limits allow; each
        copied key starts at version 1 and is recorded as an ``inherit`` change of this engagement. The new
        agent row stays locked until the copy commits, so a write to the agent waits for it.
        """
        now = _stamp(_now())
        with self.backend.transaction(STORE, write=True) as db:
            created = db.execute(
                "INSERT INTO memory_agents (agent_id, created_at, inherited_from) VALUES (?, ?, ?) "
                "ON CONFLICT (agent_id) DO NOTHING",
                (agent_id, now, source),
            ).rowcount
            if not created:
                return None
            if source is None:
                return 0, 0
            rows = db.execute(
                "SELECT key, value, bytes FROM memory_entries WHERE agent_id = ? AND value IS NOT NULL "
                "ORDER BY updated_at DESC, key",
                (source,),
            ).fetchall()
            used = copied = 0
            for key, value, size in rows:
                if copied + 1 > limits.max_keys or used + size > limits.max_bytes:
                    continue
                used, copied = used + int(size), copied + 1
                sealed = MEMORY_VALUES.seal(
                    self.sealer, MEMORY_VALUES.open(self.sealer, value, source, key), agent_id, key
                )
                db.execute(
                    "INSERT INTO memory_entries (agent_id, key, value, version, bytes, updated_at) "
                    "VALUES (?, ?, ?, 1, ?, ?)",
                    (agent_id, key, sealed, size, now),
                )
                outcome = MemoryWrite(key, 1, None, used, copied)
                self._record(db, agent_id, key, 1, "inherit", int(size), where, None, outcome, now)
            return copied, len(rows) - copied

    def write(
        self,
        agent_id: str,
        key: str,
        value: Any,
        *,
        limits: MemoryConfig,
        where: Engagement,
        request: str | None = None,
        expected_version: int | None = None,
    ) -> MemoryWrite:
        """Set ``key`` to ``value`` by the rule in the module docstring; ``request`` is the call's idempotency key."""
        value_json = encoded(value)
        size = entry_bytes(key, value_json)
        now = _stamp(_now())
        with self.backend.transaction(STORE, write=True) as db:
            self._turn(db, agent_id, now)
            replayed = _replayed(db, agent_id, request)
            if replayed is not None:
                return replayed
            live, version, old_size = _current(db, agent_id, key)
            check_expected(key, expected_version, live, version)
            used_bytes, used_keys = _usage(db, agent_id)
            check_limits(key, size, limits, used_bytes - (old_size if live else 0), used_keys - (1 if live else 0))
            db.execute(
                "INSERT INTO memory_entries (agent_id, key, value, version, bytes, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, key) DO UPDATE SET "
                "value = excluded.value, version = excluded.version, bytes = excluded.bytes, "
                "updated_at = excluded.updated_at",
                (agent_id, key, MEMORY_VALUES.seal(self.sealer, value_json, agent_id, key), version + 1, size, now),
            )
            outcome = MemoryWrite(
                key,
                version + 1,
                version if live else None,
                used_bytes - (old_size if live else 0) + size,
                used_keys + (0 if live else 1),
            )
            self._record(db, agent_id, key, version + 1, "set", size, where, request, outcome, now)
            return outcome

    def delete(
        self,
        agent_id: str,
        key: str,
        *,
        where: Engagement,
        request: str | None = None,
        expected_version: int | None = None,
    ) -> MemoryWrite:
        """Delete ``key`` (compare-and-set with ``expected_version`` as for writes); a missing key changes nothing."""
        now = _stamp(_now())
        with self.backend.transaction(STORE, write=True) as db:
            self._turn(db, agent_id, now)
            replayed = _replayed(db, agent_id, request)
            if replayed is not None:
                return replayed
            live, version, old_size = _current(db, agent_id, key)
            if expected_version is not None and expected_version != 0:
                check_expected(key, expected_version, live, version)
            used_bytes, used_keys = _usage(db, agent_id)
            if not live:
                return MemoryWrite(key, None, None, used_bytes, used_keys, changed=False)
            db.execute(
                "UPDATE memory_entries SET value = NULL, version = ?, bytes = 0, updated_at = ? "
                "WHERE agent_id = ? AND key = ?",
                (version + 1, now, agent_id, key),
            )
            outcome = MemoryWrite(key, version + 1, version, used_bytes - old_size, used_keys - 1)
            self._record(db, agent_id, key, version + 1, "delete", 0, where, request, outcome, now)
            return outcome

    def forget(self, agent_id: str) -> Forgotten:
        """Erase the agent's memory: entries, changes, snapshots. The agent stays marked, so it never inherits
        again (a forgotten agent starts empty even when its template inherits)."""
        now = _stamp(_now())
        with self.backend.transaction(STORE, write=True) as db:
            known = db.execute(  # the row's lock (PostgreSQL): the agent's writes wait for the erasure
                "UPDATE memory_agents SET forgotten_at = ?, inherited_from = NULL WHERE agent_id = ?", (now, agent_id)
            ).rowcount
            keys = db.execute(
                "SELECT count(*) FROM memory_entries WHERE agent_id = ? AND value IS NOT NULL", (agent_id,)
            ).fetchone()[0]
            db.execute("DELETE FROM memory_entries WHERE agent_id = ?", (agent_id,))
            changes = db.execute("DELETE FROM memory_changes WHERE agent_id = ?", (agent_id,)).rowcount
            snapshots = db.execute("DELETE FROM memory_snapshots WHERE agent_id = ?", (agent_id,)).rowcount
        return Forgotten(bool(known), int(keys), changes, snapshots)

    def _record(
        self,
        db: StateConnection,
        agent_id: str,
        key: str,
        version: int,
        operation: MemoryOperation,
        size: int,
        where: Engagement,
        request: str | None,
        outcome: MemoryWrite,
        now: str,
    ) -> None:
        """The change, with the outcome a replay of ``request`` returns; old changes of any agent pruned (those
        another transaction is pruning skipped, on PostgreSQL)."""
        db.execute(
            "INSERT INTO memory_changes (id, agent_id, key, version, operation, bytes, run_key, slot, changed_at, "
            "request, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                agent_id,
                key,
                version,
                operation,
                size,
                where.run_key,
                where.slot,
                now,
                request,
                json.dumps(asdict(outcome)),
            ),
        )
        db.execute(
            "DELETE FROM memory_changes WHERE id IN "
            f"(SELECT id FROM memory_changes WHERE changed_at < ?{self.backend.skip_locked})",
            (_stamp(_now() - timedelta(days=RETENTION_DAYS)),),
        )


def _current(db: StateConnection, agent_id: str, key: str) -> tuple[bool, int, int]:
    """Whether the key holds a value, its version (0: never written) and its size."""
    row = db.execute(
        "SELECT value IS NOT NULL, version, bytes FROM memory_entries WHERE agent_id = ? AND key = ?",
        (agent_id, key),
    ).fetchone()
    return (bool(row[0]), int(row[1]), int(row[2])) if row else (False, 0, 0)


def _usage(db: StateConnection, agent_id: str) -> tuple[int, int]:
    row = db.execute(
        "SELECT coalesce(sum(bytes), 0), count(*) FROM memory_entries WHERE agent_id = ? AND value IS NOT NULL",
        (agent_id,),
    ).fetchone()
    return int(row[0]), int(row[1])


def _replayed(db: StateConnection, agent_id: str, request: str | None) -> MemoryWrite | None:
    if request is None:
        return None
    row = db.execute(
        "SELECT outcome FROM memory_changes WHERE agent_id = ? AND request = ?", (agent_id, request)
    ).fetchone()
    return MemoryWrite(**{**json.loads(row[0]), "replayed": True}) if row else None
