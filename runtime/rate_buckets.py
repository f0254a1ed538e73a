"""Rate-limit token buckets shared by every API replica, in the engine's state backend.

One API process keeps its buckets in memory (``api/rate_limit.py``). Several
replicas behind a load balancer would then each allow the full rate, so with
engine state on PostgreSQL the buckets live in the table ``rate_buckets``: each
admission is one transaction that locks the caller's row (``SELECT … FOR
UPDATE``), refills it from the time elapsed, and applies the limiter's decision.
Time comes from the database's clock, not the replica's, so hosts whose clocks
disagree still refill one bucket consistently.

The bucket arithmetic (may go negative: a waiting request reserves its token
ahead) is the limiter's; this module only keeps the state atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from agentparty.runtime.state_backend import Migration, StateBackend

STORE = "rate_buckets"
MIGRATIONS = (
    Migration(
        1,
        sqlite="CREATE TABLE IF NOT EXISTS rate_buckets (caller TEXT PRIMARY KEY, tokens REAL NOT NULL, "
        "stamp REAL NOT NULL, waiting INTEGER NOT NULL)",
        postgresql="CREATE TABLE IF NOT EXISTS rate_buckets (caller TEXT PRIMARY KEY, tokens DOUBLE PRECISION "
        "NOT NULL, stamp DOUBLE PRECISION NOT NULL, waiting INTEGER NOT NULL)",
    ),
)

T = TypeVar("T")


@dataclass(frozen=True)
class BucketState:
    tokens: float
    """May be negative: each request waiting for its turn has reserved one token ahead."""
    waiting: int


class SharedBuckets:
    """The buckets of every replica sharing ``backend``, changed one locked transaction at a time."""

    def __init__(self, backend: StateBackend) -> None:
        self.backend = backend
        backend.migrate(STORE, MIGRATIONS)

    def update(
        self, caller: str, capacity: float, rate: float, change: Callable[[BucketState], tuple[BucketState, T]]
    ) -> T:
        """Refill ``caller``'s bucket to now, apply ``change`` to it and store what it returns; its outcome."""
        with self.backend.transaction(STORE, write=True) as db:
            if self.backend.dialect == "postgresql":
                now = float(db.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
            else:
                now = time.time()  # one machine: one clock
            db.execute(
                "INSERT INTO rate_buckets VALUES (?, ?, ?, 0) ON CONFLICT(caller) DO NOTHING", (caller, capacity, now)
            )
            tokens, stamp, waiting = db.execute(
                "SELECT tokens, stamp, waiting FROM rate_buckets WHERE caller = ?" + self.backend.for_update,
                (caller,),
            ).fetchone()
            refilled = min(capacity, float(tokens) + max(0.0, now - float(stamp)) * rate)
            # Full again means every reservation's wait has passed: a waiter counted by a replica that died
            # while it waited is forgotten here instead of shrinking the queue for good.
            waiting = 0 if refilled >= capacity else int(waiting)
            after, outcome = change(BucketState(refilled, waiting))
            db.execute(
                "UPDATE rate_buckets SET tokens = ?, stamp = ?, waiting = ? WHERE caller = ?",
                (after.tokens, now, after.waiting, caller),
            )
        return outcome
