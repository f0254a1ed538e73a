"""What one "host" does in the two-host tests, as a process of its own: ``python -m support.host_work KIND …``.

* ``spend URL LIMIT TOKENS TRIES``: reserve and settle ``TOKENS`` against the user budget ``shared`` (limit
  ``LIMIT``) ``TRIES`` times; prints how many were granted.
* ``fail URL TARGET N THRESHOLD``: record ``N`` failures on the breaker of ``TARGET``; prints its state after.
"""

from __future__ import annotations

import sys

from agentparty.models import CircuitBreakerConfig
from agentparty.models.step_errors import BudgetExceeded
from agentparty.runtime.breakers import CircuitBreaker, SharedBreakerStore
from agentparty.runtime.budgets import Budget, BudgetLedger
from agentparty.runtime.state_backend import PostgresBackend


def spend(url: str, limit: int, tokens: int, tries: int) -> int:
    return spend_from(BudgetLedger(PostgresBackend(url)), limit, tokens, tries)


def spend_from(ledger: BudgetLedger, limit: int, tokens: int, tries: int) -> int:
    """Reserve and settle ``tokens`` against the user budget ``shared`` ``tries`` times; how many were granted."""
    budget = Budget("user", "shared", limit)
    granted = 0
    for _ in range(tries):
        try:
            reservation = ledger.reserve([budget], tokens)
        except BudgetExceeded:
            continue
        ledger.settle(reservation, [budget], tokens)
        granted += 1
    return granted


def fail(url: str, target: str, failures: int, threshold: int) -> str:
    config = CircuitBreakerConfig(failure_threshold=threshold, recovery_timeout=300)
    breaker = CircuitBreaker(target, config, SharedBreakerStore(PostgresBackend(url)))
    for _ in range(failures):
        breaker.record_failure()
    return breaker.store.read(target).state.value


if __name__ == "__main__":
    kind, url, *rest = sys.argv[1:]
    if kind == "spend":
        print(spend(url, int(rest[0]), int(rest[1]), int(rest[2])))
    elif kind == "fail":
        print(fail(url, rest[0], int(rest[1]), int(rest[2])))
    else:
        raise SystemExit(__doc__)
