"""Persistent agents' memories: versioned key-value entries in SQLite under ``AGENTPARTY_HOME/state``.

One memory per persistent agent (one per published template version), shared by
every process of the home, so parallel runs and fan-out items of one agent write
the same entries. The rule for concurrent writes, in one place:

* Every change is one immediate transaction (``runtime/state_db.py``: the write
  lock is taken before reading, across threads and processes), so changes to one
  agent's memory are applied one after another, never interleaved.
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
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentparty.models.memory import MemoryChange, MemoryConfig, MemoryOperation
from agentparty.models.run_history import task_id_for
from agentparty.runtime.sealing import SealedColumn, Sealer, sealer_at, store_home
from agentparty.runtime.secrets import redact
from agentparty.runtime.state_db import state_db

RETENTION_DAYS = 30
"""How long changes (and their replay records) and step snapshots are kept."""

MEMORY_VALUES = SealedColumn("memory", "memory.sqlite", "memory_entries", "value", ("agent_id", "key"))
SNAPSHOT_TEXTS = SealedColumn("memory", "memory.sqlite", "memory_snapshots", "text", ("agent_id", "run_key", "slot"))
"""Values and the snapshots rendered from them are sealed at rest (``runtime/sealing.py``), each bound to its row
(an inherited value is opened and sealed again for its new agent); keys, versions and sizes stay plain."""
SEALED_COLUMNS = (MEMORY_VALUES, SNAPSHOT_TEXTS)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS memory_agents (agent_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, "
    "inherited_from TEXT, forgotten_at TEXT)",
    "CREATE TABLE IF NOT EXISTS memory_entries (agent_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT, "
    "version INTEGER NOT NULL, bytes INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (agent_id, key))",
    "CREATE TABLE IF NOT EXISTS memory_changes (id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, key TEXT NOT NULL, "
    "version INTEGER NOT NULL, operation TEXT NOT NULL, bytes INTEGER NOT NULL, run_key TEXT NOT NULL, "
    "slot TEXT NOT NULL, changed_at TEXT NOT NULL, request TEXT, outcome TEXT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS memory_changes_request ON memory_changes (agent_id, request)",
    "CREATE INDEX IF NOT EXISTS memory_changes_engagement ON memory_changes (agent_id, run_key, slot)",
    "CREATE INDEX IF NOT EXISTS memory_changes_age ON memory_changes (changed_at)",
    "CREATE TABLE IF NOT EXISTS memory_snapshots (agent_id TEXT NOT NULL, run_key TEXT NOT NULL, "
    "slot TEXT NOT NULL, text TEXT NOT NULL, taken_at TEXT NOT NULL, PRIMARY KEY (agent_id, run_key, slot))",
)


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


def encoded(value: Any) -> str:
    """The value as stored: compact JSON (``ValueError`` for what JSON cannot hold: NaN, infinities, objects)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:
        raise ValueError(f"the value is not JSON-serialisable: {exc}") from None


def entry_bytes(key: str, value_json: str) -> int:
    return len(key.encode()) + len(value_json.encode())


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


class AgentMemoryStore:
    """The memories of every persistent agent of one home (``memory.sqlite``)."""

    def __init__(self, path: Path, sealer: Sealer | None = None) -> None:
        self.path = path
        self.sealer = sealer or sealer_at(store_home(path))
        with state_db(path, write=True) as db:
            for statement in _SCHEMA:
                db.execute(statement)

    @classmethod
    def at(cls, home: Path, sealer: Sealer | None = None) -> AgentMemoryStore:
        return cls(home / "state" / "memory.sqlite", sealer)

    def _value(self, agent_id: str, key: str, stored: str) -> Any:
        return json.loads(MEMORY_VALUES.open(self.sealer, stored, agent_id, key))

    # -- reading ---------------------------------------------------------------------------

    def initialised(self, agent_id: str) -> bool:
        """Whether the agent's memory exists (used, inherited, or forgotten): it will not inherit again."""
        with state_db(self.path) as db:
            return db.execute("SELECT 1 FROM memory_agents WHERE agent_id = ?", (agent_id,)).fetchone() is not None

    def entries(self, agent_id: str) -> list[MemoryEntry]:
        """The agent's keys and values, by key (deleted keys left out)."""
        with state_db(self.path) as db:
            rows = db.execute(
                "SELECT key, value, version, bytes, updated_at FROM memory_entries "
                "WHERE agent_id = ? AND value IS NOT NULL ORDER BY key",
                (agent_id,),
            ).fetchall()
        return [MemoryEntry(k, self._value(agent_id, k, v), n, b, at) for k, v, n, b, at in rows]

    def get(self, agent_id: str, key: str) -> MemoryEntry | None:
        with state_db(self.path) as db:
            row = db.execute(
                "SELECT value, version, bytes, updated_at FROM memory_entries "
                "WHERE agent_id = ? AND key = ? AND value IS NOT NULL",
                (agent_id, key),
            ).fetchone()
        return MemoryEntry(key, self._value(agent_id, key, row[0]), row[1], row[2], row[3]) if row else None

    def usage(self, agent_id: str) -> tuple[int, int]:
        """Bytes and keys the agent's memory holds."""
        with state_db(self.path) as db:
            return _usage(db, agent_id)

    def changes(self, agent_id: str, where: Engagement) -> tuple[MemoryChange, ...]:
        """The changes the agent made in one engagement (every attempt's), oldest first: what the graph records."""
        with state_db(self.path) as db:
            rows = db.execute(
                "SELECT id, key, version, operation, bytes, changed_at FROM memory_changes "
                "WHERE agent_id = ? AND run_key = ? AND slot = ? ORDER BY changed_at, rowid",
                (agent_id, where.run_key, where.slot),
            ).fetchall()
        task_id = task_id_for(where.run_key)
        return tuple(
            MemoryChange(
                id=change_id,
                agent_id=agent_id,
                key=redact(key),
                version=version,
                operation=operation,
                size_bytes=size,
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
        with state_db(self.path) as db:
            row = db.execute(
                "SELECT text FROM memory_snapshots WHERE agent_id = ? AND run_key = ? AND slot = ?", key
            ).fetchone()
        if row is not None:
            return SNAPSHOT_TEXTS.open(self.sealer, row[0], *key)
        text = render(self.entries(agent_id))
        now = _now()
        sealed = SNAPSHOT_TEXTS.seal(self.sealer, text, *key)
        with state_db(self.path, write=True) as db:
            db.execute("INSERT OR IGNORE INTO memory_snapshots VALUES (?, ?, ?, ?, ?)", (*key, sealed, _stamp(now)))
            db.execute(
                "DELETE FROM memory_snapshots WHERE taken_at < ?", (_stamp(now - timedelta(days=RETENTION_DAYS)),)
            )
            row = db.execute(
                "SELECT text FROM memory_snapshots WHERE agent_id = ? AND run_key = ? AND slot = ?", key
            ).fetchone()
        return SNAPSHOT_TEXTS.open(self.sealer, row[0], *key)

    def agents(self) -> list[str]:
        """Every agent whose memory the store has (used, inherited or forgotten)."""
        with state_db(self.path) as db:
            return [r[0] for r in db.execute("SELECT agent_id FROM memory_agents ORDER BY agent_id")]

    # -- changing --------------------------------------------------------------------------

    def initialise(
        self, agent_id: str, where: Engagement, limits: MemoryConfig, source: str | None = None
    ) -> tuple[int, int] | None:
        """Create the agent's memory at its first use, as a copy of ``source``'s (another agent's) when given.

        Returns (copied, left out) keys, or None when the memory existed already (it is never copied twice).
        The copy takes the source's most recently changed entries first, as many as the limits allow; each
        copied key starts at version 1 and is recorded as an ``inherit`` change of this engagement.
        """
        now = _stamp(_now())
        with state_db(self.path, write=True) as db:
            created = db.execute(
                "INSERT OR IGNORE INTO memory_agents (agent_id, created_at, inherited_from) VALUES (?, ?, ?)",
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
                used, copied = used + size, copied + 1
                sealed = MEMORY_VALUES.seal(
                    self.sealer, MEMORY_VALUES.open(self.sealer, value, source, key), agent_id, key
                )
                db.execute("INSERT INTO memory_entries VALUES (?, ?, ?, 1, ?, ?)", (agent_id, key, sealed, size, now))
                outcome = MemoryWrite(key, 1, None, used, copied)
                _record(db, agent_id, key, 1, "inherit", size, where, None, outcome, now)
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
        with state_db(self.path, write=True) as db:
            replayed = _replayed(db, agent_id, request)
            if replayed is not None:
                return replayed
            _ensure_agent(db, agent_id, now)
            current = db.execute(
                "SELECT value IS NOT NULL, version, bytes FROM memory_entries WHERE agent_id = ? AND key = ?",
                (agent_id, key),
            ).fetchone()
            live, version, old_size = (bool(current[0]), int(current[1]), int(current[2])) if current else (False, 0, 0)
            _check_expected(key, expected_version, live, version)
            used_bytes, used_keys = _usage(db, agent_id)
            _check_limits(key, size, limits, used_bytes - (old_size if live else 0), used_keys - (1 if live else 0))
            db.execute(
                "INSERT INTO memory_entries VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, key) DO UPDATE SET "
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
            _record(db, agent_id, key, version + 1, "set", size, where, request, outcome, now)
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
        with state_db(self.path, write=True) as db:
            replayed = _replayed(db, agent_id, request)
            if replayed is not None:
                return replayed
            _ensure_agent(db, agent_id, now)
            current = db.execute(
                "SELECT value IS NOT NULL, version, bytes FROM memory_entries WHERE agent_id = ? AND key = ?",
                (agent_id, key),
            ).fetchone()
            live, version, old_size = (bool(current[0]), int(current[1]), int(current[2])) if current else (False, 0, 0)
            if expected_version is not None and expected_version != 0:
                _check_expected(key, expected_version, live, version)
            used_bytes, used_keys = _usage(db, agent_id)
            if not live:
                return MemoryWrite(key, None, None, used_bytes, used_keys, changed=False)
            db.execute(
                "UPDATE memory_entries SET value = NULL, version = ?, bytes = 0, updated_at = ? "
                "WHERE agent_id = ? AND key = ?",
                (version + 1, now, agent_id, key),
            )
            outcome = MemoryWrite(key, version + 1, version, used_bytes - old_size, used_keys - 1)
            _record(db, agent_id, key, version + 1, "delete", 0, where, request, outcome, now)
            return outcome

    def forget(self, agent_id: str) -> Forgotten:
        """Erase the agent's memory: entries, changes, snapshots. The agent stays marked, so it never inherits
        again (a forgotten agent starts empty even when its template inherits)."""
        now = _stamp(_now())
        with state_db(self.path, write=True) as db:
            known = db.execute(
                "UPDATE memory_agents SET forgotten_at = ?, inherited_from = NULL WHERE agent_id = ?", (now, agent_id)
            ).rowcount
            keys = db.execute(
                "SELECT count(*) FROM memory_entries WHERE agent_id = ? AND value IS NOT NULL", (agent_id,)
            ).fetchone()[0]
            db.execute("DELETE FROM memory_entries WHERE agent_id = ?", (agent_id,))
            changes = db.execute("DELETE FROM memory_changes WHERE agent_id = ?", (agent_id,)).rowcount
            snapshots = db.execute("DELETE FROM memory_snapshots WHERE agent_id = ?", (agent_id,)).rowcount
        return Forgotten(bool(known), int(keys), changes, snapshots)


def _usage(db: sqlite3.Connection, agent_id: str) -> tuple[int, int]:
    row = db.execute(
        "SELECT coalesce(sum(bytes), 0), count(*) FROM memory_entries WHERE agent_id = ? AND value IS NOT NULL",
        (agent_id,),
    ).fetchone()
    return int(row[0]), int(row[1])


def _ensure_agent(db: sqlite3.Connection, agent_id: str, now: str) -> None:
    db.execute("INSERT OR IGNORE INTO memory_agents (agent_id, created_at) VALUES (?, ?)", (agent_id, now))


def _replayed(db: sqlite3.Connection, agent_id: str, request: str | None) -> MemoryWrite | None:
    if request is None:
        return None
    row = db.execute(
        "SELECT outcome FROM memory_changes WHERE agent_id = ? AND request = ?", (agent_id, request)
    ).fetchone()
    return MemoryWrite(**{**json.loads(row[0]), "replayed": True}) if row else None


def _check_expected(key: str, expected: int | None, live: bool, version: int) -> None:
    if expected is None:
        return
    if expected == 0:
        if live:
            raise MemoryConflict(key, 0, version)
    elif not live or version != expected:
        raise MemoryConflict(key, expected, version if live else None)


def _check_limits(key: str, size: int, limits: MemoryConfig, other_bytes: int, other_keys: int) -> None:
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


def _record(
    db: sqlite3.Connection,
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
    """The change, with the outcome a replay of ``request`` returns; old changes of any agent pruned."""
    db.execute(
        "INSERT INTO memory_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    cutoff = _stamp(_now() - timedelta(days=RETENTION_DAYS))
    db.execute("DELETE FROM memory_changes WHERE changed_at < ?", (cutoff,))
