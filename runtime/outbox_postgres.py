"""The event outbox on PostgreSQL: one outbox for every host that shares the engine's state (DESIGN.md §12).

Why the outbox moves with the rest of the state: event ids derive from (run,
step, transition) and are stored once, ever (``runtime/outbox.py``). If each
host kept an outbox of its own, a run resumed on host B after host A died would
send again the events A had already sent (B's outbox has never seen their ids),
and the events A had stored but not sent would wait on A's dead disk. With one
outbox in PostgreSQL, the unique event id de-duplicates across hosts, and any
host's relay sends what a dead host left.

The contract is the SQLite outbox's, held across hosts:

- **Append.** One transaction per batch: ``INSERT … ON CONFLICT (event_id) DO
  NOTHING RETURNING event_id`` says which events were new, so of several
  processes (on any hosts) appending one event exactly one gets it back and
  mirrors it. Appends take a transaction-scoped advisory lock first, as SQLite's
  ``BEGIN IMMEDIATE`` serialises them: sequence numbers are then handed out in
  commit order (a sender reading ``seq > cursor`` never skips a row committed
  late), and two batches with overlapping ids cannot deadlock on each other.
- **One sender.** The sender slot is a *session* advisory lock
  (``pg_try_advisory_lock``) taken on a connection of its own by the relay that
  sends; the server drops it when that session ends, so when the sender's
  process dies (SIGKILL, its host lost) a standby relay on any host takes over
  at its next try (``STANDBY_POLL_S``), and a sender that is only slow keeps it.
  Why one sender at all: ``runtime/outbox_sender.py``. If the slot's connection
  breaks, the lock is gone with the session: the slot reports itself released
  and its relay competes for the slot again.
- **Wake-up.** ``NOTIFY`` on :data:`CHANNEL`; the sender ``LISTEN`` s on the
  slot's connection. A lost wake-up delays a send by at most the poll interval.

Payloads are sealed at rest (``EVENT_VALUES``) exactly as in the SQLite file,
as ``BYTEA``; ``agentparty keys reencrypt`` reseals this table too
(``runtime/reencrypt.py``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from agentparty.models.events import BaseEvent
from agentparty.runtime.outbox import EVENT_VALUES, PRUNE_EVERY_S, RETENTION_S, Outbox, OutboxRow
from agentparty.runtime.sealing import Sealer
from agentparty.runtime.state_backend import SCHEMA, Migration, StateBackend

logger = logging.getLogger("agentparty.events")

STORE = "outbox"
CHANNEL = "agentparty_outbox"
"""The ``NOTIFY`` channel appenders wake the sender on."""
LOCK_CLASS = 0x61706F62
"""The first key of the outbox's advisory locks ("apob"); the second names the lock."""
SENDER_LOCK, APPEND_LOCK = 1, 2

MIGRATIONS = (
    Migration(
        1,
        sqlite="",  # the SQLite outbox keeps its own file and schema (runtime/outbox.py)
        postgresql="CREATE TABLE IF NOT EXISTS outbox ("
        " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,"
        " key TEXT NOT NULL, event_type TEXT NOT NULL, event_version TEXT NOT NULL, correlation_id TEXT NOT NULL,"
        " value BYTEA NOT NULL, created_at DOUBLE PRECISION NOT NULL, delivered_at DOUBLE PRECISION);"
        "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE delivered_at IS NULL;"
        "CREATE INDEX IF NOT EXISTS outbox_run ON outbox (correlation_id) WHERE delivered_at IS NULL;"
        "CREATE INDEX IF NOT EXISTS outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL",
    ),
)

_INSERT = (
    "INSERT INTO outbox (event_id, topic, key, event_type, event_version, correlation_id, value, created_at) "
    "SELECT event_id, topic, key, event_type, event_version, correlation_id, value, created_at FROM unnest("
    "?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bytea[], ?::float8[]) WITH ORDINALITY "
    "AS new (event_id, topic, key, event_type, event_version, correlation_id, value, created_at, position) "
    "ORDER BY position ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


def _url(backend: StateBackend) -> str:
    url = getattr(backend, "url", None)
    if backend.dialect != "postgresql" or not isinstance(url, str):
        raise TypeError(f"the PostgreSQL outbox needs a PostgreSQL state backend, not {backend.describe()}")
    return url


class PostgresSenderSlot:
    """The sender slot on PostgreSQL: a session advisory lock held, and ``LISTEN`` ed on, by one connection."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._released = False

    @classmethod
    def try_acquire(cls, connection: Any) -> PostgresSenderSlot | None:
        """The slot, on ``connection`` (autocommit), if no relay on any host holds it; else None."""
        held = connection.execute(f"SELECT pg_try_advisory_lock({LOCK_CLASS}, {SENDER_LOCK})").fetchone()
        if not (held and held[0]):
            return None
        try:
            connection.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            connection.close()  # the lock goes with the session
            raise
        return cls(connection)

    def wait(self, timeout: float) -> bool:
        """Sleep until an appender notifies or ``timeout`` passes; True if woken. Queued notifications coalesce."""
        if self._released:
            return False
        import psycopg

        try:
            woken = any(True for _ in self._connection.notifies(timeout=timeout, stop_after=1))
            if woken:
                for _ in self._connection.notifies(timeout=0.0):
                    pass
            return woken
        except psycopg.Error as exc:  # the session is gone, and the lock with it: another relay may hold it now
            logger.warning("event relay: lost the sender slot's connection (%s)", exc)
            self.release()
            return False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            self._connection.close()  # the session ends: the server releases the lock, a standby takes over
        except Exception as exc:  # already broken: the session, and the lock, are gone either way
            logger.debug("closing the sender slot's connection: %s", exc)

    @property
    def released(self) -> bool:
        return self._released or bool(self._connection.closed)


class PostgresOutbox(Outbox):
    """The outbox as a table of the shared PostgreSQL state schema; same interface, same guarantees, every host."""

    def __init__(self, backend: StateBackend, topic_prefix: str, sealer: Sealer) -> None:
        # Not Outbox.__init__: that opens the SQLite file.
        self.backend = backend
        self.url = _url(backend)
        self.sealer = sealer
        self.topic_prefix = topic_prefix
        self._pruned_at = 0.0
        self._standby: Any = None
        self._standby_pid = 0
        self._standby_guard = threading.Lock()
        backend.migrate(STORE, MIGRATIONS)

    @property
    def where(self) -> str:
        return f"table outbox of {self.backend.describe()}"

    def append(self, events: list[BaseEvent[Any]]) -> list[BaseEvent[Any]]:
        """Store events durably, in one transaction; returns the ones that were new, to exactly one caller each."""
        if not events:
            return []
        unique = list({e.event_id: e for e in events}.values())
        now = time.time()
        rows = [
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
            for e in unique
        ]
        with self.backend.transaction(STORE, write=True) as db:
            db.execute(f"SELECT pg_advisory_xact_lock({LOCK_CLASS}, {APPEND_LOCK})")
            inserted = db.execute(_INSERT, [list(column) for column in zip(*rows, strict=True)]).fetchall()
        stored = {row[0] for row in inserted}
        return [e for e in unique if e.event_id in stored]

    def try_acquire_sender(self) -> PostgresSenderSlot | None:
        """The sender slot if no relay on any host holds it; None too while the database cannot be reached.

        A standby relay asks every ``STANDBY_POLL_S`` on one connection it keeps (not a new one each time);
        the connection that wins becomes the slot's, and its session holds the lock."""
        import psycopg  # deferred: the driver loads only where PostgreSQL is used

        with self._standby_guard:
            try:
                if self._standby is None or self._standby.closed or self._standby_pid != os.getpid():
                    self._standby, self._standby_pid = self._connect(), os.getpid()
                slot = PostgresSenderSlot.try_acquire(self._standby)
            except psycopg.Error as exc:
                logger.warning("event relay: the state database cannot be reached (%s); standing by", exc)
                self._standby = None
                return None
            if slot is not None:
                self._standby = None  # the slot's now
            return slot

    def _connect(self) -> Any:
        import psycopg

        name = f"agentparty-relay:{socket.gethostname()}:{os.getpid()}"[-63:]  # who sends, for sender_pid
        return psycopg.connect(
            self.url, autocommit=True, options=f"-c search_path={SCHEMA}", application_name=name, connect_timeout=10
        )

    def wake_sender(self) -> None:
        try:
            with self.backend.transaction(STORE, write=True) as db:
                db.execute("SELECT pg_notify(?, '')", (CHANNEL,))
        except Exception as exc:  # the sender polls anyway: a lost wake-up only delays a send
            logger.debug("outbox wake-up not sent: %s", exc)

    def sender_pid(self) -> int | None:
        """The process (on whichever host: :meth:`sender` names it) whose relay sends now, or None."""
        name = self._sender_name()
        if name is None:
            return None
        pid = name.rpartition(":")[2]
        return int(pid) if pid.isdigit() else -1

    def sender(self) -> str | None:
        name = self._sender_name()
        if name is None:
            return None
        host, _, pid = name.removeprefix("agentparty-relay:").rpartition(":")
        return f"process {pid} on {host}" if host else f"session {name!r}"

    def _sender_name(self) -> str | None:
        """The ``application_name`` of the session holding the sender lock (``agentparty-relay:HOST:PID``)."""
        with self.backend.transaction(STORE) as db:
            row = db.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                "AND l.classid::bigint = ? AND l.objid::bigint = ? "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (LOCK_CLASS, SENDER_LOCK),
            ).fetchone()
        return None if row is None else str(row[0])

    def pending(self, limit: int = 10_000, after: int = 0) -> list[OutboxRow]:
        with self.backend.transaction(STORE) as db:
            found = db.execute(
                "SELECT seq, event_id, topic, key, event_type, event_version, correlation_id, value FROM outbox "
                "WHERE delivered_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            OutboxRow(
                seq,
                event_id,
                topic,
                key,
                kind,
                version,
                run,
                EVENT_VALUES.open_bytes(self.sealer, bytes(value), event_id),
            )
            for seq, event_id, topic, key, kind, version, run, value in found
        ]

    def mark_delivered(self, seqs: list[int]) -> None:
        if not seqs:
            return
        now = time.time()
        with self.backend.transaction(STORE, write=True) as db:
            db.execute("UPDATE outbox SET delivered_at = ? WHERE seq = ANY(?::bigint[])", (now, seqs))
            if now - self._pruned_at > PRUNE_EVERY_S:
                db.execute(
                    "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", (now - RETENTION_S,)
                )
                self._pruned_at = now

    def forget_delivered(self, correlation_ids: list[str]) -> int:
        with self.backend.transaction(STORE, write=True) as db:
            return int(
                db.execute(
                    "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND correlation_id = ANY(?::text[])",
                    (list(correlation_ids),),
                ).rowcount
            )

    def forget_delivered_before(self, cutoff: float) -> int:
        with self.backend.transaction(STORE, write=True) as db:
            return int(
                db.execute("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", (cutoff,)).rowcount
            )

    def pending_count(self, correlation_id: str | None = None) -> int:
        with self.backend.transaction(STORE) as db:
            if correlation_id is None:
                row = db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()
            else:
                row = db.execute(
                    "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND correlation_id = ?", (correlation_id,)
                ).fetchone()
        return int(row[0])
