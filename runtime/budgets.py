"""Token budgets at task, team, agent and user level (seed 000 ``token_budget``).

A call first *reserves* its estimated tokens against every budget that applies;
if any budget would go over, the call is refused before it is made with one
:class:`~agentparty.models.step_errors.BudgetExceeded` naming that budget, its limit
and its usage. After the response, the reservation is *settled* with the real
usage from the provider. A failed call releases its reservation.

The ledger lives in the engine's state backend (``runtime/state_backend.py``):
SQLite under ``AGENTPARTY_HOME`` (``state/budgets.sqlite``, ``BEGIN IMMEDIATE``
transactions) on one machine, or PostgreSQL, where a reservation locks each
budget's usage row (``SELECT … FOR UPDATE``) before it reads it. Either way every
step, run and worker process, on any host sharing the backend, draws on the same
budgets and two concurrent calls can never both squeeze under a limit.

Estimate: prompt characters / 4 (the usual English rule of thumb) plus the
output the call may produce, which is the smaller of its ``max_tokens`` and
``expected_output_tokens`` (default 512): refusing every call whose worst case
exceeds the rest of a budget would refuse most calls long before it is spent.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentparty.models.step_errors import BudgetExceeded
from agentparty.runtime.state_backend import Migration, StateBackend, StateConnection, as_backend
from agentparty.runtime.telemetry_metrics import record_budget

BudgetLevel = Literal["task", "team", "agent", "user"]
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Budget:
    level: BudgetLevel
    owner: str
    """The id of the task (workflow run), team, agent or user."""
    limit: int

    @property
    def key(self) -> str:
        return f"{self.level}:{self.owner}"

    def describe(self) -> str:
        return f"{self.level} budget {self.owner!r}"


@dataclass(frozen=True)
class BudgetUsage:
    budget: Budget
    used: int
    reserved: int

    @property
    def remaining(self) -> int:
        return self.budget.limit - self.used - self.reserved


def estimate_tokens(prompt_chars: int, max_tokens: int, expected_output_tokens: int = 512) -> int:
    return math.ceil(prompt_chars / CHARS_PER_TOKEN) + min(max_tokens, expected_output_tokens)


MIGRATIONS = (
    Migration(
        1,
        sqlite="CREATE TABLE IF NOT EXISTS usage (budget TEXT PRIMARY KEY, used INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS reservations (id TEXT NOT NULL, budget TEXT NOT NULL, "
        "tokens INTEGER NOT NULL, PRIMARY KEY (id, budget))",
        postgresql="CREATE TABLE IF NOT EXISTS usage (budget TEXT PRIMARY KEY, used BIGINT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS reservations (id TEXT NOT NULL, budget TEXT NOT NULL, "
        "tokens BIGINT NOT NULL, PRIMARY KEY (id, budget));"
        "CREATE INDEX IF NOT EXISTS reservations_budget ON reservations (budget)",
    ),
)


class BudgetLedger:
    STORE = "budgets"

    def __init__(self, where: StateBackend | Path) -> None:
        self.backend = as_backend(where)
        self.backend.migrate(self.STORE, MIGRATIONS)

    def _usage(self, db: StateConnection, budget: Budget, *, lock: bool = False) -> BudgetUsage:
        if lock and self.backend.for_update:
            # a row to lock even before the first charge: concurrent reservations queue on it
            db.execute("INSERT INTO usage VALUES (?, 0) ON CONFLICT(budget) DO NOTHING", (budget.key,))
        used = db.execute(
            "SELECT used FROM usage WHERE budget = ?" + (self.backend.for_update if lock else ""), (budget.key,)
        ).fetchone()
        reserved = db.execute(
            "SELECT COALESCE(SUM(tokens), 0) FROM reservations WHERE budget = ?", (budget.key,)
        ).fetchone()
        return BudgetUsage(budget, int(used[0]) if used else 0, int(reserved[0]))

    def usage(self, budget: Budget) -> BudgetUsage:
        with self.backend.transaction(self.STORE) as db:
            return self._usage(db, budget)

    def reserve(self, budgets: Iterable[Budget], tokens: int) -> str:
        """Hold ``tokens`` on every budget, or refuse the call if one would go over; returns the reservation id."""
        budgets = list(budgets)
        reservation = uuid.uuid4().hex
        with self.backend.transaction(self.STORE, write=True) as db:
            for budget in sorted(budgets, key=lambda b: b.key):  # one lock order: no deadlock between callers
                usage = self._usage(db, budget, lock=True)
                if usage.used + usage.reserved + tokens > budget.limit:
                    raise BudgetExceeded(
                        f"{budget.describe()} exceeded: limit {budget.limit} tokens, used {usage.used}"
                        + (f" (+{usage.reserved} reserved by calls in flight)" if usage.reserved else "")
                        + f", this call needs about {tokens}"
                    )
                db.execute("INSERT INTO reservations VALUES (?, ?, ?)", (reservation, budget.key, tokens))
        return reservation

    def settle(self, reservation: str, budgets: Iterable[Budget], tokens: int) -> None:
        """Replace the reservation with the real usage; raise BudgetExceeded if that went over a limit.

        The call has happened and its tokens are charged either way: the error
        stops the step from building on an answer its budget could not pay for.
        """
        budgets = list(budgets)
        over: list[BudgetUsage] = []
        with self.backend.transaction(self.STORE, write=True) as db:
            db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
            for budget in sorted(budgets, key=lambda b: b.key):
                (used,) = db.execute(
                    "INSERT INTO usage VALUES (?, ?) ON CONFLICT(budget) "
                    "DO UPDATE SET used = usage.used + excluded.used RETURNING used",
                    (budget.key, tokens),
                ).fetchone()
                record_budget(budget.level, used, budget.limit)
                if used > budget.limit:
                    over.append(BudgetUsage(budget, used, 0))
        if over:
            first = over[0]
            raise BudgetExceeded(
                f"{first.budget.describe()} exceeded: limit {first.budget.limit} tokens, used {first.used} "
                f"after a call that used {tokens}"
            )

    def release(self, reservation: str) -> None:
        with self.backend.transaction(self.STORE, write=True) as db:
            db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
