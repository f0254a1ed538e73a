"""The audit chain in the state database: one chain for every host and process, when state is on PostgreSQL.

The entries are those of the JSONL log (``runtime/audit.py``: the same fields,
the same :func:`~agentparty.runtime.audit.entry_hash`, so :func:`verify` applies
the same per-entry rules), kept as rows of ``audit_entries`` in the schema
``agentparty``, ordered by ``seq``. ``details`` is stored as the JSON text that
was hashed, so reading it back hashes the same.

Appends never fork the chain: each takes the transaction-level advisory lock
``hashtext('agentparty.audit')`` first, and only then reads the tip and the head
(under READ COMMITTED each statement sees what the previous holder committed:
locks are released after its commit is visible), so appenders on every host
take turns; ``seq`` as the primary key refuses a fork even to a writer that
skips the lock. The entries' ``at`` is the database's clock, so entries from
hosts whose clocks disagree still read in order.

The head anchor is the one row of ``audit_head`` (the entry count and the last
hash), written in the same transaction as the entries, so it never lags them:
:func:`check` requires it to match the chain exactly. What it protects against,
honestly: entries deleted from the end of ``audit_entries`` (by hand, a cleanup
job, a restore of that table alone), an emptied table, entries added without an
append; it does not protect against someone who can write both tables and
rewrites them consistently (they live in one database, owned by one role).
Where that matters, keep ``agentparty audit verify``'s output (the head's hash)
elsewhere. An append that finds the head disagreeing with the chain records an
``audit.head`` entry before its own, as the file log does, so the evidence
outlives the head it then rewrites.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agentparty.runtime.audit import (
    ANCHORED_GENESIS,
    HEAD_ACTION,
    AuditCheck,
    AuditEntry,
    ChainBreak,
    Event,
    Head,
    clean_details,
    entry_break,
    entry_hash,
    event_rows,
)
from agentparty.runtime.state_backend import Migration, StateBackend, StateConnection

STORE = "audit"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit_entries (seq BIGINT PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, "
    "action TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL, details TEXT NOT NULL, "
    "prev TEXT NOT NULL, hash TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_entries_actor ON audit_entries (actor, seq);"
    "CREATE INDEX IF NOT EXISTS audit_entries_at ON audit_entries (at);"
    "CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), count BIGINT NOT NULL, "
    "hash TEXT NOT NULL)"
)
MIGRATIONS = (Migration(1, sqlite="", postgresql=_SCHEMA),)
"""PostgreSQL only: on SQLite the chain is the home's JSONL file."""
HEAD_NAME = "the head row (audit_head)"
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('agentparty.audit'))"
_COLUMNS = "seq, at, actor, action, target, outcome, details, prev, hash"
_PAGE = 5_000
_migrated: weakref.WeakSet[Any] = weakref.WeakSet()


class PostgresAuditLog:
    """The one audit chain of a PostgreSQL state database (the ``AuditTrail`` interface)."""

    def __init__(self, backend: StateBackend, *, enabled: bool = True) -> None:
        self.backend = backend
        self.enabled = enabled

    def _transaction(self, *, write: bool = False) -> Any:
        """A transaction on the chain's tables, created on first use (once per process and backend: audit logs
        are built per call, and one that is off never touches the database)."""
        if self.backend not in _migrated:
            self.backend.migrate(STORE, MIGRATIONS)
            _migrated.add(self.backend)
        return self.backend.transaction(STORE, write=write)

    @property
    def location(self) -> str:
        return f"{self.backend.describe()}, table audit_entries"

    def append(
        self, actor: str, action: str, target: str = "", outcome: str = "ok", **details: Any
    ) -> AuditEntry | None:
        """Record one event at the chain's tip; None when the log is off."""
        if not self.enabled:
            return None
        written = self._write([(actor, action, str(target), str(outcome), clean_details(details))])
        return written[-1]

    def append_many(self, events: list[dict[str, Any]]) -> int:
        """Record several events in one transaction (the API's background writer's batches)."""
        if not self.enabled or not events:
            return 0
        rows = event_rows(events)
        self._write(rows)
        return len(rows)

    def _write(self, events: list[Event]) -> list[AuditEntry]:
        """Append ``events`` at the tip, after what the head had to say, and move the head, in one transaction."""
        with self._transaction(write=True) as db:
            db.execute(_LOCK)
            now = db.execute("SELECT clock_timestamp()").fetchone()[0]
            at = now.astimezone(UTC).isoformat(timespec="microseconds")
            tip = db.execute("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (int(tip[0]), str(tip[1])) if tip is not None else (0, ANCHORED_GENESIS)
            written: list[AuditEntry] = []
            for actor, action, target, outcome, details in [*_head_findings(_read_head(db), seq, prev), *events]:
                seq += 1
                body: dict[str, Any] = {
                    "seq": seq,
                    "at": at,
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "outcome": outcome,
                    "details": details,
                    "prev": prev,
                }
                body["hash"] = prev = entry_hash(body, prev)
                db.execute(
                    f"INSERT INTO audit_entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, at, actor, action, target, outcome, _json(details), body["prev"], prev),
                )
                written.append(AuditEntry(**body))
            db.execute(
                "INSERT INTO audit_head (id, count, hash) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET count = excluded.count, hash = excluded.hash",
                (seq, prev),
            )
        return written

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in ``seq`` order, read a page at a time (as stored: :meth:`check` says whether it holds)."""
        after = 0
        while True:
            with self._transaction() as db:
                rows = _page(db, after)
            yield from (_entry(row) for row in rows)
            if len(rows) < _PAGE:
                return
            after = int(rows[-1][0])

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """Entries matching every filter given (``action`` a dotted prefix), newest first, filtered in the database."""
        where, params = ["TRUE"], []
        if actor is not None:
            where.append("actor = ?")
            params.append(actor)
        if action is not None:
            where.append("(action = ? OR starts_with(action, ?))")
            params += [action, action + "."]
        for bound, operator in ((since, ">="), (until, "<=")):
            if bound is not None:  # ``at`` is UTC ISO text of one width: it orders as the time does
                where.append(f"at {operator} ?")
                params.append(_utc_text(bound))
        sql = f"SELECT {_COLUMNS} FROM audit_entries WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ? OFFSET ?"
        with self._transaction() as db:
            rows = db.execute(sql, (*params, limit, offset)).fetchall()
        return [_entry(row) for row in rows]

    def verify(self) -> ChainBreak | None:
        return self.check().broken

    def check(self) -> AuditCheck:
        """The whole chain against itself and the head row, both read in one snapshot (appends may go on)."""
        with self._transaction() as db:
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            head = _read_head(db)
            walk = _walk(_all_rows(db))
        if walk.broken is not None:
            return AuditCheck(walk.entries, head, walk.broken)
        count = walk.entries
        if head is None:
            reason = f"{HEAD_NAME} is missing: entries after {count} may have been removed"
            return AuditCheck(count, None, ChainBreak(count + 1, None, reason) if count else None)
        if head.count > count:
            reason = f"entries {count + 1}..{head.count} removed from the end (the head row records {head.count})"
            return AuditCheck(count, head, ChainBreak(count + 1, count + 1, reason))
        if head.count < count:
            reason = (
                f"entries {head.count + 1}..{count} were not written by an append (the head row records {head.count})"
            )
            return AuditCheck(count, head, ChainBreak(head.count + 1, head.count + 1, reason))
        if count and walk.last_hash != head.hash:
            reason = "its hash is not the one the head row records for it (the chain was rewritten)"
            return AuditCheck(count, head, ChainBreak(count, count, reason))
        return AuditCheck(count, head, None)


@dataclass
class _Walk:
    entries: int = 0
    last_hash: str = ""
    broken: ChainBreak | None = None


def _walk(entries: Iterator[AuditEntry]) -> _Walk:
    """Follow the chain from its first entry (which begins at :data:`ANCHORED_GENESIS`) to the first that fails."""
    walk, prev = _Walk(), ANCHORED_GENESIS
    for number, entry in enumerate(entries, start=1):
        walk.broken = entry_break(number, entry.as_json(), (prev,))
        if walk.broken is not None:
            return walk
        prev = walk.last_hash = entry.hash
        walk.entries = number
    return walk


def _page(db: StateConnection, after: int) -> list[Any]:
    sql = f"SELECT {_COLUMNS} FROM audit_entries WHERE seq > ? ORDER BY seq LIMIT ?"
    return db.execute(sql, (after, _PAGE)).fetchall()


def _all_rows(db: StateConnection) -> Iterator[AuditEntry]:
    """Every entry, a page at a time, inside the caller's transaction (one snapshot)."""
    after = 0
    while True:
        rows = _page(db, after)
        yield from (_entry(row) for row in rows)
        if len(rows) < _PAGE:
            return
        after = int(rows[-1][0])


def _read_head(db: StateConnection) -> Head | None:
    row = db.execute("SELECT count, hash FROM audit_head WHERE id = 1").fetchone()
    return Head(int(row[0]), str(row[1])) if row is not None else None


def _head_findings(head: Head | None, seq: int, prev: str) -> list[Event]:
    """An ``audit.head`` entry to record before an append when the head disagrees with the chain's tip."""
    if head is None:
        if seq == 0:
            return []
        return [_finding("missing", f"{HEAD_NAME} was missing, so entries may have been removed", seq)]
    if head.count > seq:
        return [_finding("removed", f"entries {seq + 1}..{head.count} had been removed from the end", seq, head)]
    if head.count < seq:
        reason = f"entries {head.count + 1}..{seq} had not been written by an append (the head row was behind)"
        return [_finding("rewritten", reason, seq, head)]
    if head.count and head.hash != prev:
        reason = f"entry {head.count} no longer had the hash {HEAD_NAME} recorded (the chain was rewritten)"
        return [_finding("rewritten", reason, seq, head)]
    return []


def _finding(outcome: str, reason: str, seq: int, head: Head | None = None) -> Event:
    details: dict[str, Any] = {"reason": reason, "log_entries": seq}
    if head is not None:
        details.update(head_entries=head.count, head_hash=head.hash)
    return ("system", HEAD_ACTION, "audit_head", outcome, details)


def _json(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"))


def _entry(row: Any) -> AuditEntry:
    seq, at, actor, action, target, outcome, details, prev, digest = row
    try:
        parsed = json.loads(details)
    except ValueError:  # edited into something that is not JSON: the hash check names the entry
        parsed = {"unreadable": details}
    return AuditEntry(int(seq), at, actor, action, target, outcome, parsed, prev, digest)


def _utc_text(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")
