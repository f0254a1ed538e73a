"""Circuit breakers whose state is shared by every step, run and worker process.

Store: the engine's state backend (``runtime/state_backend.py``): a SQLite file
under ``AGENTPARTY_HOME`` (``state/breakers.sqlite``, ``BEGIN IMMEDIATE``
transactions) on one machine, PostgreSQL (the target's row locked with ``SELECT
… FOR UPDATE``) across hosts, so read-modify-write is atomic across processes
and hosts. Why not the Prefect server: its variables are last-write-wins (two
workers would lose each other's failure counts) and its concurrency limits count
slots, not failures.

States: closed → open after ``failureThreshold`` consecutive failures; open
rejects at once for ``recoveryTimeout`` seconds; then half-open admits up to
``halfOpenMaxCalls`` trial calls; a success closes it, a failure opens it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from agentparty.models import CircuitBreakerConfig
from agentparty.models.step_errors import CircuitOpenError
from agentparty.runtime.state_backend import Migration, SqliteBackend, StateBackend, as_backend

logger = logging.getLogger("agentparty.breaker")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerRecord:
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    trial_calls: int = 0
    """Trial calls admitted since the circuit went half-open."""


class BreakerStore(Protocol):
    def update(
        self, target: str, change: Callable[[BreakerRecord], BreakerRecord]
    ) -> tuple[BreakerRecord, BreakerRecord]:
        """Atomically apply ``change`` to the target's record; return (before, after)."""
        ...

    def read(self, target: str) -> BreakerRecord:
        """The current record (no lock: for the fast path of a healthy, closed circuit)."""
        ...


MIGRATIONS = (
    Migration(
        1,
        sqlite="CREATE TABLE IF NOT EXISTS breakers (target TEXT PRIMARY KEY, state TEXT NOT NULL, "
        "failures INTEGER NOT NULL, opened_at REAL NOT NULL, trial_calls INTEGER NOT NULL)",
        postgresql="CREATE TABLE IF NOT EXISTS breakers (target TEXT PRIMARY KEY, state TEXT NOT NULL, "
        "failures INTEGER NOT NULL, opened_at DOUBLE PRECISION NOT NULL, trial_calls INTEGER NOT NULL)",
    ),
)
_SELECT = "SELECT state, failures, opened_at, trial_calls FROM breakers WHERE target = ?"


class SharedBreakerStore:
    """Breaker records in the state backend: every process (and, on PostgreSQL, every host) sees one record."""

    STORE = "breakers"

    def __init__(self, where: StateBackend | Path) -> None:
        self.backend = as_backend(where)
        self.backend.migrate(self.STORE, MIGRATIONS)

    def update(
        self, target: str, change: Callable[[BreakerRecord], BreakerRecord]
    ) -> tuple[BreakerRecord, BreakerRecord]:
        with self.backend.transaction(self.STORE, write=True) as db:
            if self.backend.for_update:  # a row to lock even for a target never recorded
                db.execute(
                    "INSERT INTO breakers VALUES (?, ?, 0, 0, 0) ON CONFLICT(target) DO NOTHING",
                    (target, BreakerState.CLOSED.value),
                )
            row = db.execute(_SELECT + self.backend.for_update, (target,)).fetchone()
            before = BreakerRecord(BreakerState(row[0]), row[1], row[2], row[3]) if row else BreakerRecord()
            after = change(before)
            if after != before:
                db.execute(
                    "INSERT INTO breakers VALUES (?, ?, ?, ?, ?) ON CONFLICT(target) DO UPDATE SET "
                    "state = excluded.state, failures = excluded.failures, opened_at = excluded.opened_at, "
                    "trial_calls = excluded.trial_calls",
                    (target, after.state.value, after.consecutive_failures, after.opened_at, after.trial_calls),
                )
            return before, after

    def read(self, target: str) -> BreakerRecord:
        """The record as it is now, without taking a lock."""
        with self.backend.transaction(self.STORE) as db:
            row = db.execute(_SELECT, (target,)).fetchone()
        return BreakerRecord(BreakerState(row[0]), row[1], row[2], row[3]) if row else BreakerRecord()


class SqliteBreakerStore(SharedBreakerStore):
    """The store on one SQLite file of its own (one machine)."""

    def __init__(self, path: Path) -> None:
        super().__init__(SqliteBackend.of_file(path))
        self.path = path


TransitionListener = Callable[[str, BreakerState, BreakerState], None]


class CircuitBreaker:
    """Guards one target (an agent template/model or a handler)."""

    def __init__(
        self,
        target: str,
        config: CircuitBreakerConfig,
        store: BreakerStore,
        clock: Callable[[], float] = time.time,
        on_transition: TransitionListener | None = None,
    ) -> None:
        self.target = target
        self.config = config
        self.store = store
        self.clock = clock
        self.on_transition = on_transition

    def _apply(self, change: Callable[[BreakerRecord], BreakerRecord]) -> BreakerRecord:
        before, after = self.store.update(self.target, change)
        if before.state is not after.state:
            logger.warning("circuit %s: %s → %s", self.target, before.state.value, after.state.value)
            if self.on_transition is not None:
                self.on_transition(self.target, before.state, after.state)
        return after

    def acquire(self) -> None:
        """Admit a call or raise :class:`CircuitOpenError`."""
        if self.store.read(self.target).state is BreakerState.CLOSED:
            return  # closed admits without a change: no write lock needed
        now = self.clock()
        admitted = True

        def change(record: BreakerRecord) -> BreakerRecord:
            nonlocal admitted
            if record.state is BreakerState.OPEN and now - record.opened_at >= self.config.recovery_timeout:
                record = replace(record, state=BreakerState.HALF_OPEN, trial_calls=0)
            if record.state is BreakerState.OPEN:
                admitted = False
                return record
            if record.state is BreakerState.HALF_OPEN:
                if record.trial_calls >= self.config.half_open_max_calls:
                    admitted = False
                    return record
                return replace(record, trial_calls=record.trial_calls + 1)
            return record

        record = self._apply(change)
        if not admitted:
            retry_in = (
                max(0.0, record.opened_at + self.config.recovery_timeout - now)
                if record.state is BreakerState.OPEN
                else 0.0
            )
            raise CircuitOpenError(self.target, retry_in)

    def record_success(self) -> None:
        if self.store.read(self.target) == BreakerRecord():
            return  # already closed with no failures: nothing to write
        self._apply(lambda record: BreakerRecord())

    def record_failure(self) -> None:
        now = self.clock()

        def change(record: BreakerRecord) -> BreakerRecord:
            if record.state is BreakerState.HALF_OPEN:
                return BreakerRecord(BreakerState.OPEN, self.config.failure_threshold, now, 0)
            failures = record.consecutive_failures + 1
            if failures >= self.config.failure_threshold:
                return BreakerRecord(BreakerState.OPEN, failures, now, 0)
            return replace(record, consecutive_failures=failures)

        self._apply(change)

    @property
    def state(self) -> BreakerState:
        return self.store.read(self.target).state
