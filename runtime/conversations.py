"""Every engagement's conversation: the seed 002 messages an agent sent and received, in order, kept for good.

An *engagement* is one persistent agent working one step slot of one run
(``tasks.templates.engagement_key``). Its conversation is every message of its
loop: the system prompt, the task, each model turn (``AgentMessage`` with the
tool calls it asked for), each tool result or error, notes on trimmed context,
and a failed attempt's error. It lives in the engine's state backend
(``runtime/state_backend.py``): ``<home>/state/conversations.sqlite`` on one
machine, which every process of the home (a worker, the API) reads; with
PostgreSQL configured, the shared schema, so an engagement a worker on one host
holds is read by the API on another, and a run resumed elsewhere continues the
same conversation.

Messages are written with ids the loop derives from their place and content
(:func:`message_id`), and a message whose id is stored already is skipped: a
resumed run that replays its checkpointed turns, or a retried attempt that
replays the turns before its failure, continues the same conversation without
writing any message twice, while a turn asked again (with a different answer)
is a new message. Messages are numbered per engagement (``seq``); on PostgreSQL
an append first takes the engagement's advisory lock, so two writers (hosts) can
never both number a message after the same last one (SQLite's ``BEGIN
IMMEDIATE`` serialises them already).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agentparty.models.agent import WorkflowState
from agentparty.models.messages import MESSAGE_ADAPTER, AnyMessage, Message

from .sealing import SealedColumn, Sealer, sealer_at, store_home
from .settings import get_settings, state_backend_at
from .state_backend import Migration, SqliteBackend, StateBackend, StateConnection, as_backend

_NAMESPACE = uuid.UUID("4f3c2a52-2f4e-4e0e-9a39-2d7c1f0d5a11")
MAX_PAGE = 200
STORE = "conversations"
"""The store's name: ``state/conversations.sqlite`` on SQLite, its schema version's key on PostgreSQL."""
MESSAGE_BODIES = SealedColumn(STORE, "conversations.sqlite", "messages", "body", ("engagement_id", "id"))
"""Message bodies are sealed at rest (``runtime/sealing.py``), each bound to its engagement and message id."""
SEALED_COLUMNS = (MESSAGE_BODIES,)

_SQLITE = (  # version 1 on SQLite is the schema homes already have: exactly the statements made before versions
    "CREATE TABLE IF NOT EXISTS engagements (id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, "
    "run_key TEXT NOT NULL, slot TEXT NOT NULL, workflow TEXT NOT NULL, started_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS engagements_agent ON engagements (agent_id, started_at);"
    "CREATE TABLE IF NOT EXISTS messages (engagement_id TEXT NOT NULL, seq INTEGER NOT NULL, "
    "id TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (engagement_id, seq), "
    "UNIQUE (engagement_id, id))"
)
_POSTGRESQL = (  # ISO times compare as text: byte order ("C"), whatever the server's default collation
    "CREATE TABLE IF NOT EXISTS engagements (id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, "
    'run_key TEXT NOT NULL, slot TEXT NOT NULL, workflow TEXT NOT NULL, started_at TEXT COLLATE "C" NOT NULL, '
    'updated_at TEXT COLLATE "C" NOT NULL);'
    "CREATE INDEX IF NOT EXISTS engagements_agent ON engagements (agent_id, started_at);"
    "CREATE INDEX IF NOT EXISTS engagements_run ON engagements (run_key);"
    "CREATE INDEX IF NOT EXISTS engagements_age ON engagements (updated_at);"
    "CREATE TABLE IF NOT EXISTS messages (engagement_id TEXT NOT NULL, seq INTEGER NOT NULL, "
    "id TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (engagement_id, seq), "
    "UNIQUE (engagement_id, id))"
)
MIGRATIONS = (Migration(1, sqlite=_SQLITE, postgresql=_POSTGRESQL),)


def engagement_id(agent_id: str, engagement: str) -> str:
    """The engagement's id in URLs: stable, short, and the same in every process."""
    return str(uuid.uuid5(_NAMESPACE, f"{agent_id}|{engagement}"))


def message_id(engagement: str, position: str, message: Message) -> str:
    """A message's id from where it is in the loop and what it says (not when): a replay yields the same id."""
    body = message.model_dump(mode="json", exclude={"id", "timestamp"})
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return str(uuid.uuid5(_NAMESPACE, f"{engagement}|{position}|{digest}"))


@dataclass(frozen=True)
class EngagementRecord:
    """One engagement of an agent: where it works, and how much it has said."""

    id: str
    agent_id: str
    run_key: str
    slot: str
    workflow: WorkflowState
    messages: int
    started_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MessagePage:
    messages: list[AnyMessage]
    total: int
    offset: int


class ConversationStore:
    """Conversations of every engagement in the state backend (one home's processes, or every host on PostgreSQL)."""

    STORE = STORE

    def __init__(self, where: StateBackend | Path, sealer: Sealer | None = None) -> None:
        """``where``: the state backend, or the path of a SQLite file of the store's own (one machine)."""
        self.backend = as_backend(where)
        sqlite_file = self.backend.path(STORE) if isinstance(self.backend, SqliteBackend) else None
        self.path = sqlite_file
        """The SQLite file, when the store is one; None on PostgreSQL."""
        self.sealer = sealer or sealer_at(store_home(sqlite_file) if sqlite_file else get_settings().home)
        self.backend.migrate(STORE, MIGRATIONS)

    @classmethod
    def at(cls, home: Path, sealer: Sealer | None = None, backend: StateBackend | None = None) -> ConversationStore:
        """The conversations of ``home``: in ``backend``, by default where the settings keep engine state."""
        return cls(backend or state_backend_at(home), sealer or sealer_at(home))

    def begin(self, agent_id: str, engagement: str, run_key: str, slot: str, workflow: WorkflowState) -> str:
        """Open (or reopen, on a retry or resume) an engagement; returns its id. ``workflow`` is where it works now."""
        key = engagement_id(agent_id, engagement)
        now = datetime.now(UTC).isoformat()
        with self.backend.transaction(STORE, write=True) as db:
            db.execute(
                "INSERT INTO engagements (id, agent_id, run_key, slot, workflow, started_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET workflow = excluded.workflow, "
                "updated_at = excluded.updated_at",
                (key, agent_id, run_key, slot, workflow.model_dump_json(by_alias=True), now, now),
            )
        return key

    def set_status(self, key: str, status: str) -> None:
        """Where the engagement stands (``running``, ``completed``, ``failed``) in its ``currentWorkflow``."""
        with self.backend.transaction(STORE, write=True) as db:
            row = db.execute(  # locked on PostgreSQL: a status change never undoes another made meanwhile
                "SELECT workflow FROM engagements WHERE id = ?" + self.backend.for_update, (key,)
            ).fetchone()
            if row is None:
                return
            workflow = WorkflowState.model_validate_json(row[0]).model_copy(update={"status": status})
            db.execute(
                "UPDATE engagements SET workflow = ?, updated_at = ? WHERE id = ?",
                (workflow.model_dump_json(by_alias=True), datetime.now(UTC).isoformat(), key),
            )

    def append(self, key: str, messages: Sequence[Message]) -> int:
        """Add ``messages`` in order, skipping any whose id is stored already; returns how many were new."""
        if not messages:
            return 0
        added = 0
        with self.backend.transaction(STORE, write=True) as db:
            self._lock_engagement(db, key)
            (last,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE engagement_id = ?", (key,)
            ).fetchone()
            for message in messages:
                body = MESSAGE_BODIES.seal(self.sealer, message.model_dump_json(by_alias=True), key, message.id)
                cursor = db.execute(  # the seq is free (the lock): only a stored message id conflicts
                    "INSERT INTO messages (engagement_id, seq, id, type, body) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (key, last + added + 1, message.id, message.type, body),
                )
                added += cursor.rowcount
        return added

    def _lock_engagement(self, db: StateConnection, key: str) -> None:
        """One appender per engagement at a time, on every host: PostgreSQL's transaction-scoped advisory lock
        (an append may come before its engagement's row exists, so there may be no row to lock); SQLite's write
        transaction holds the whole file already."""
        if self.backend.dialect == "postgresql":
            db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"agentparty.conversations.{key}",))

    def page(self, key: str, offset: int = 0, limit: int = 50) -> MessagePage:
        """Messages ``offset`` to ``offset + limit`` (at most :data:`MAX_PAGE`) in the order they were said."""
        limit = max(1, min(limit, MAX_PAGE))
        with self.backend.transaction(STORE) as db:
            (total,) = db.execute("SELECT COUNT(*) FROM messages WHERE engagement_id = ?", (key,)).fetchone()
            rows = db.execute(
                "SELECT id, body FROM messages WHERE engagement_id = ? ORDER BY seq LIMIT ? OFFSET ?",
                (key, limit, offset),
            ).fetchall()
        messages = [
            MESSAGE_ADAPTER.validate_json(MESSAGE_BODIES.open(self.sealer, body, key, mid)) for mid, body in rows
        ]
        return MessagePage(messages, int(total), offset)

    def engagement(self, key: str) -> EngagementRecord | None:
        with self.backend.transaction(STORE) as db:
            row = db.execute(f"{_ENGAGEMENTS} WHERE e.id = ?", (key,)).fetchone()
        return _record(row) if row is not None else None

    def engagements(self, agent_id: str, offset: int = 0, limit: int = 50) -> list[EngagementRecord]:
        """The agent's engagements, newest first."""
        limit = max(1, min(limit, MAX_PAGE))
        with self.backend.transaction(STORE) as db:
            rows = db.execute(
                f"{_ENGAGEMENTS} WHERE e.agent_id = ? ORDER BY e.started_at DESC, e.id LIMIT ? OFFSET ?",
                (agent_id, limit, offset),
            ).fetchall()
        return [_record(row) for row in rows]

    def counts(self, key: str) -> dict[str, int]:
        """Messages of the engagement by type (the graph's summary of it)."""
        with self.backend.transaction(STORE) as db:
            rows = db.execute(
                "SELECT type, COUNT(*) FROM messages WHERE engagement_id = ? GROUP BY type", (key,)
            ).fetchall()
        return {kind: int(count) for kind, count in rows}

    def forget_agent(self, agent_id: str) -> int:
        """Erase every conversation of the agent; returns how many messages went."""
        return self._forget("agent_id = ?", [agent_id], chunked=False)

    def forget_runs(self, run_keys: Sequence[str]) -> int:
        """Erase every conversation of these runs (a user's erasure); returns how many messages went."""
        return self._forget("run_key IN ({marks})", list(run_keys))

    def forget_before(self, cutoff: datetime) -> int:
        """Erase the conversations last touched before ``cutoff`` (retention); returns how many messages went."""
        return self._forget("updated_at < ?", [cutoff.isoformat()], chunked=False)

    def _forget(self, where: str, values: list[str], *, chunked: bool = True) -> int:
        """Delete the engagements ``where`` selects and their messages, in one transaction; ``chunked``: ``values``
        fill ``{marks}``, 500 at a time (SQLite's bound-parameter limit)."""
        removed = 0
        chunks = [values[start : start + 500] for start in range(0, len(values), 500)] if chunked else [values]
        with self.backend.transaction(STORE, write=True) as db:
            for chunk in chunks:
                condition = where.format(marks=",".join("?" * len(chunk)))
                keys = [k for (k,) in db.execute(f"SELECT id FROM engagements WHERE {condition}", chunk).fetchall()]
                for key in keys:
                    removed += db.execute("DELETE FROM messages WHERE engagement_id = ?", (key,)).rowcount
                db.execute(f"DELETE FROM engagements WHERE {condition}", chunk)
        return removed

    def of_runs(self, run_keys: Sequence[str]) -> list[EngagementRecord]:
        """The engagements of these runs, oldest first (a user's export)."""
        found: list[EngagementRecord] = []
        keys = list(run_keys)
        with self.backend.transaction(STORE) as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                rows = db.execute(
                    f"{_ENGAGEMENTS} WHERE e.run_key IN ({','.join('?' * len(chunk))}) ORDER BY e.started_at, e.id",
                    chunk,
                ).fetchall()
                found += [_record(row) for row in rows]
        return found


_ENGAGEMENTS = (
    "SELECT e.id, e.agent_id, e.run_key, e.slot, e.workflow, e.started_at, e.updated_at, "
    "(SELECT COUNT(*) FROM messages m WHERE m.engagement_id = e.id) FROM engagements e"
)


def _record(row: tuple[str, str, str, str, str, str, str, int]) -> EngagementRecord:
    key, agent_id, run_key, slot, workflow, started, updated, count = row
    return EngagementRecord(
        id=key,
        agent_id=agent_id,
        run_key=run_key,
        slot=slot,
        workflow=WorkflowState.model_validate_json(workflow),
        messages=int(count),
        started_at=datetime.fromisoformat(started),
        updated_at=datetime.fromisoformat(updated),
    )
