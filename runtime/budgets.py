"""Token budgets at task, team, agent and user level (seed 000 ``token_budget``).

A call first *reserves* its estimated tokens against every budget that applies;
if any budget would go over, the call is refused before it is made with one
:class:`~agentparty.models.step_errors.BudgetExceeded` naming that budget, its limit
and its usage. After the response, the reservation is *settled* with the real
usage from the provider. A failed call releases its reservation.

The ledger is SQLite under ``AGENTPARTY_HOME`` (``state/budgets.sqlite``), with
``BEGIN IMMEDIATE`` transactions like the circuit breakers, so every step, run
and worker process on the machine draws on the same budgets and two concurrent
calls can never both squeeze under a limit.

Estimate: prompt characters / 4 (the usual English rule of thumb) plus the
output the call may produce, which is the smaller of its ``max_tokens`` and
``expected_output_tokens`` (default 512): refusing every call whose worst case
exceeds the rest of a budget would refuse most calls long before it is spent.
"""

from __future__ import annotations

import math
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentparty.models.step_errors import BudgetExceeded
from agentparty.runtime.state_db import state_db
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


class BudgetLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        with state_db(path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS usage (budget TEXT PRIMARY KEY, used INTEGER NOT NULL)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS reservations (id TEXT NOT NULL, budget TEXT NOT NULL, tokens INTEGER NOT NULL, "
                "PRIMARY KEY (id, budget))"
            )

    def _usage(self, db: sqlite3.Connection, budget: Budget) -> BudgetUsage:
        used = db.execute("SELECT used FROM usage WHERE budget = ?", (budget.key,)).fetchone()
        reserved = db.execute(
            "SELECT COALESCE(SUM(tokens), 0) FROM reservations WHERE budget = ?", (budget.key,)
        ).fetchone()
        return BudgetUsage(budget, used[0] if used else 0, reserved[0])

    def usage(self, budget: Budget) -> BudgetUsage:
        with state_db(self.path) as db:
            return self._usage(db, budget)

    def reserve(self, budgets: Iterable[Budget], tokens: int) -> str:
        """Hold ``tokens`` on every budget, or refuse the call if one would go over; returns the reservation id."""
        budgets = list(budgets)
        reservation = uuid.uuid4().hex
        with state_db(self.path, write=True) as db:
            for budget in budgets:
                usage = self._usage(db, budget)
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
        with state_db(self.path, write=True) as db:
            db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
            for budget in budgets:
                (used,) = db.execute(
                    "INSERT INTO usage VALUES (?, ?) ON CONFLICT(budget) "
                    "DO UPDATE SET used = used + excluded.used RETURNING used",
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
        with state_db(self.path, write=True) as db:
            db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
