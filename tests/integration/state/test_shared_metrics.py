"""The stored figures in ``/metrics`` come from the shared state database when engine state is on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.core import Metric
from support.postgres_support import backend_on

from agentparty.models import CircuitBreakerConfig
from agentparty.runtime.breakers import CircuitBreaker, SharedBreakerStore
from agentparty.runtime.postgres_server import LocalPostgres
from agentparty.runtime.state_backend import PostgresBackend
from agentparty.runtime.telemetry_stores import StoreCollector
from agentparty.runtime.webhook_deliveries import WebhookDeliveries


@pytest.fixture
def shared(postgres_cluster: LocalPostgres) -> PostgresBackend:
    yield from backend_on(postgres_cluster)


def _samples(families: list[Metric], name: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels.values()): s.value for f in families if f.name == name for s in f.samples}


def test_a_replica_reports_what_other_hosts_stored(shared: PostgresBackend, tmp_path: Path) -> None:
    other_host = PostgresBackend(shared.url)  # another host's connection to the same database
    breaker = CircuitBreaker("model:x", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=60),
                             SharedBreakerStore(other_host))  # fmt: skip
    breaker.record_failure()
    WebhookDeliveries(other_host).accept("wf", "key-1", "Flow/wf", {"a": 1})

    collector = StoreCollector(tmp_path / "empty-home", interval_s=0.0, approvals=lambda: None, state=shared)
    families = list(collector.collect())
    assert _samples(families, "agentparty_breaker_state") == {("model:x",): 2.0}
    assert _samples(families, "agentparty_webhook_deliveries")[("queued",)] == 1.0
    assert _samples(families, "agentparty_outbox_backlog") == {(): 0.0}  # no outbox table yet: nothing, not an error
    assert not (tmp_path / "empty-home").exists(), "the home's SQLite files were not read or created"
