"""Budgets and circuit breakers on both state backends, from several processes at once.

The same tests run on SQLite (one machine) and PostgreSQL (what several hosts
share): a budget is never overspent and a breaker counts every failure, however
the processes interleave.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from support.host_work import spend_from
from support.postgres_support import backend_address, backend_at

from agentparty.models import CircuitBreakerConfig
from agentparty.models.step_errors import CircuitOpenError
from agentparty.runtime.breakers import BreakerState, CircuitBreaker, SharedBreakerStore
from agentparty.runtime.budgets import Budget, BudgetLedger
from agentparty.runtime.state_backend import StateBackend

PROCESSES = 4
TRIES = 40


def _spend(kind: str, where: str, limit: int, tokens: int, out: Any) -> None:
    out.put(spend_from(BudgetLedger(backend_at(kind, where)), limit, tokens, TRIES))


def _fail(kind: str, where: str, failures: int) -> None:
    store = SharedBreakerStore(backend_at(kind, where))
    breaker = CircuitBreaker("model:x", CircuitBreakerConfig(failure_threshold=10_000, recovery_timeout=60), store)
    for _ in range(failures):
        breaker.record_failure()


def _processes(target: Any, *args: Any) -> list[Any]:
    context = multiprocessing.get_context("spawn")
    return [context.Process(target=target, args=args) for _ in range(PROCESSES)]


def test_a_budget_is_never_overspent_by_concurrent_processes(state_backend: StateBackend) -> None:
    BudgetLedger(state_backend)  # migrate once before the race
    limit, tokens = 1_000, 30  # 33 calls fit; the processes try 160
    out = multiprocessing.get_context("spawn").Queue()
    workers = _processes(_spend, *backend_address(state_backend), limit, tokens, out)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    granted = sum(out.get(timeout=5) for _ in workers)
    usage = BudgetLedger(state_backend).usage(Budget("user", "shared", limit))
    assert granted == limit // tokens
    assert usage.used == granted * tokens <= limit
    assert usage.reserved == 0


def test_a_breaker_counts_every_failure_from_every_process(state_backend: StateBackend) -> None:
    SharedBreakerStore(state_backend)
    workers = _processes(_fail, *backend_address(state_backend), 25)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    record = SharedBreakerStore(state_backend).read("model:x")
    assert record.consecutive_failures == PROCESSES * 25
    assert record.state is BreakerState.CLOSED


def test_a_breaker_opened_by_one_process_rejects_calls_in_another(state_backend: StateBackend) -> None:
    config = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=60)
    first = CircuitBreaker("model:y", config, SharedBreakerStore(state_backend))
    for _ in range(3):
        first.record_failure()
    kind, where = backend_address(state_backend)
    other = CircuitBreaker("model:y", config, SharedBreakerStore(backend_at(kind, where)))
    with pytest.raises(CircuitOpenError):
        other.acquire()


def test_migrations_are_versioned_and_applied_once(state_backend: StateBackend) -> None:
    from agentparty.runtime.budgets import MIGRATIONS

    assert state_backend.migrate("budgets", MIGRATIONS) == 1
    assert state_backend.migrate("budgets", MIGRATIONS) == 1
    with state_backend.transaction("budgets") as db:
        assert db.execute("SELECT version FROM schema_versions WHERE store = ?", ("budgets",)).fetchone()[0] == 1
