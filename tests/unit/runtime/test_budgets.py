"""Token budgets: reserved before a call, settled from usage, refused with a message that names the budget."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agentparty.models.step_errors import BudgetExceeded, is_retryable
from agentparty.runtime.budgets import Budget, BudgetLedger, estimate_tokens


def test_reserve_settle_and_refuse(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "budgets.sqlite")
    task = Budget("task", "run-1", 1000)
    agent = Budget("agent", "agent-1", 300)
    reservation = ledger.reserve([task, agent], 200)
    assert ledger.usage(agent).reserved == 200
    ledger.settle(reservation, [task, agent], 180)
    assert ledger.usage(agent).used == 180 and ledger.usage(agent).reserved == 0
    assert ledger.usage(task).used == 180
    with pytest.raises(BudgetExceeded) as caught:
        ledger.reserve([task, agent], 150)
    message = str(caught.value)
    assert "agent budget 'agent-1'" in message and "limit 300" in message and "used 180" in message
    assert not is_retryable(caught.value)
    assert ledger.usage(task).reserved == 0, "a refused reservation holds nothing"


def test_release_returns_the_reservation(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "budgets.sqlite")
    user = Budget("user", "ana", 100)
    reservation = ledger.reserve([user], 90)
    ledger.release(reservation)
    ledger.reserve([user], 90)


def test_settling_over_the_limit_charges_and_raises(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "budgets.sqlite")
    team = Budget("team", "t", 100)
    reservation = ledger.reserve([team], 50)
    with pytest.raises(BudgetExceeded, match=r"team budget 't'.*limit 100.*used 130"):
        ledger.settle(reservation, [team], 130)
    assert ledger.usage(team).used == 130


def test_concurrent_reservations_never_overshoot(tmp_path: Path) -> None:
    path = tmp_path / "budgets.sqlite"
    budget = Budget("task", "shared", 1000)
    granted: list[str] = []
    refused: list[str] = []

    def worker() -> None:
        ledger = BudgetLedger(path)  # own connection, as another process would have
        for _ in range(10):
            try:
                granted.append(ledger.reserve([budget], 30))
            except BudgetExceeded:
                refused.append("x")

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 1000 // 30 and len(refused) == 60 - len(granted)


def test_estimate_counts_prompt_and_expected_output() -> None:
    assert estimate_tokens(400, max_tokens=2000) == 100 + 512
    assert estimate_tokens(400, max_tokens=50) == 150
