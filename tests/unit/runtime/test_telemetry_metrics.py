"""The metrics module: record functions, on/off, the agent objective, formats, store figures, the keyless listener."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from pydantic import ValidationError

from agentparty.models import CircuitBreakerConfig
from agentparty.models.events import TaskSubmittedEvent, TaskSubmittedPayload
from agentparty.models.sdk_config import MetricsConfig, SDKConfiguration
from agentparty.models.tools import ToolCallRecord
from agentparty.runtime import telemetry_metrics as tm
from agentparty.runtime.breakers import CircuitBreaker, SqliteBreakerStore
from agentparty.runtime.budgets import Budget, BudgetLedger
from agentparty.runtime.metrics import AgentMetricsBook
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.settings import Settings
from agentparty.runtime.telemetry_export import MetricsExporter, render_csv, render_json, start_listener
from agentparty.runtime.telemetry_stores import StoreCollector
from agentparty.runtime.webhook_deliveries import WebhookDeliveries

ALL = ["prometheus", "json", "csv"]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def _metrics_on() -> Iterator[None]:
    tm.configure(MetricsConfig())
    yield
    tm.configure(MetricsConfig())


def test_each_record_function_counts_under_the_contract_s_names() -> None:
    wf, model = f"wf-{uuid.uuid4().hex[:6]}", f"m-{uuid.uuid4().hex[:6]}"
    tm.record_run_started(wf)
    tm.record_run_finished(wf, "completed")
    tm.record_run_finished(wf, "failed")
    tm.record_step("decision", "completed", 0.3)
    tm.record_model_call("simulated", model, 0.15, ok=True)
    tm.record_model_call("simulated", model, 0.5, ok=False)
    tm.record_model_usage("simulated", model, 120, 30, 0.002)
    tm.record_tool_call(f"tool-{model}", ToolCallRecord(call_id="c", name="t", arguments="{}", ok=True))
    tm.record_rate_limit_refusal(model)
    tm.record_api_request("/runs/{run_id}", "GET", 403, 0.004)

    assert value("agentparty_runs_started_total", workflow=wf) == 1
    assert value("agentparty_runs_finished_total", workflow=wf, outcome="completed") == 1
    assert value("agentparty_runs_finished_total", workflow=wf, outcome="failed") == 1
    assert value("agentparty_model_calls_total", provider="simulated", model=model, outcome="error") == 1
    assert value("agentparty_model_call_duration_seconds_bucket", provider="simulated", model=model, le="0.2") == 1
    assert value("agentparty_model_tokens_total", provider="simulated", model=model, direction="input") == 120
    assert value("agentparty_model_tokens_total", provider="simulated", model=model, direction="output") == 30
    assert value("agentparty_model_cost_usd_total", provider="simulated", model=model) == pytest.approx(0.002)
    assert value("agentparty_tool_calls_total", tool=f"tool-{model}", outcome="ok") == 1
    assert value("agentparty_rate_limit_refusals_total", provider=model) == 1
    assert value("agentparty_api_request_duration_seconds_count", route="/runs/{run_id}", method="GET", status="403")
    assert value("agentparty_api_refusals_total", code="403") >= 1


def test_metrics_off_records_nothing() -> None:
    wf = f"wf-{uuid.uuid4().hex[:6]}"
    tm.configure(MetricsConfig(enabled=False))
    tm.record_run_started(wf)
    tm.record_model_usage("simulated", wf, 5, 5, 1.0)
    assert value("agentparty_runs_started_total", workflow=wf) == 0
    assert value("agentparty_model_tokens_total", provider="simulated", model=wf, direction="input") == 0


def test_budgets_report_used_and_left_per_level(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "budgets.sqlite")
    budget = Budget("team", "t1", 1000)
    ledger.settle(ledger.reserve([budget], 100), [budget], 240)
    assert value("agentparty_budget_used_tokens", level="team") == 240
    assert value("agentparty_budget_remaining_tokens", level="team") == 760


def test_the_agent_book_checks_the_configured_objective() -> None:
    """PerformanceMetrics feed the gauges; meets_realtime_objective is judged against maxResponseTime."""
    agent = f"agent-{uuid.uuid4().hex[:6]}"
    book = AgentMetricsBook()
    book.record(agent, response_ms=150.0)
    assert value("agentparty_agent_response_time_seconds", agent=agent) == pytest.approx(0.15)
    assert value("agentparty_agent_meets_realtime_objective", agent=agent) == 1  # under the seed's 200 ms
    tm.configure(MetricsConfig(), max_response_time_ms=100.0)
    book.record(agent, response_ms=150.0)
    assert value("agentparty_agent_meets_realtime_objective", agent=agent) == 0


def test_statsd_is_refused_at_load_with_the_reason() -> None:
    with pytest.raises(ValidationError) as caught:
        SDKConfiguration.model_validate({"monitoring": {"metrics": {"exportFormats": ["json", "statsd"]}}})
    message = str(caught.value)
    assert "exportFormats[1] 'statsd' is refused" in message and "StatsD has no labels" in message
    assert MetricsConfig(export_formats=["csv", "prometheus", "otlp"]).export_formats == ["csv", "prometheus", "otlp"]


def test_a_malformed_listener_address_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="metrics_address"):
        Settings(home=tmp_path, metrics_address="9100")
    assert Settings(home=tmp_path, metrics_address="127.0.0.1:9100").metrics_address == "127.0.0.1:9100"


def _small_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    runs = Counter("demo_runs", "Runs.", ["workflow"], registry=registry)
    runs.labels('quote"d').inc(3)
    Histogram("demo_seconds", "Time.", buckets=(0.1, 1.0), registry=registry).observe(0.5)
    return registry


def test_json_and_csv_carry_every_sample_with_labels() -> None:
    families = list(_small_registry().collect())
    document = json.loads(render_json(families))
    runs = next(m for m in document["metrics"] if m["name"] == "demo_runs")
    assert runs["type"] == "counter"
    assert {"name": "demo_runs_total", "labels": {"workflow": 'quote"d'}, "value": 3.0} in runs["samples"]
    buckets = [s for m in document["metrics"] for s in m["samples"] if s["name"] == "demo_seconds_bucket"]
    assert [b["labels"]["le"] for b in buckets] == ["0.1", "1.0", "+Inf"]

    rows = render_csv(families).decode().splitlines()
    assert rows[0] == "metric,type,sample,labels,value"
    assert 'demo_runs,counter,demo_runs_total,"{""workflow"":""quote\\""d""}",3.0' in rows


def test_formats_not_listed_and_metrics_off_are_refused_naming_the_setting(tmp_path: Path) -> None:
    exporter = MetricsExporter.build(MetricsConfig(), tmp_path, approvals=lambda: None)
    assert exporter.refusal("json") is None
    assert exporter.refusal("prometheus") == "prometheus is not in monitoring.metrics.exportFormats (listed: json)"
    off = MetricsExporter.build(MetricsConfig(enabled=False, export_formats=ALL), tmp_path, approvals=lambda: None)
    assert "monitoring.metrics.enabled is false" in str(off.refusal("prometheus"))


def _stores(home: Path) -> None:
    """A breaker opened, a webhook delivery queued and one created, in the home's real stores."""
    store = SqliteBreakerStore(home / "state" / "breakers.sqlite")
    breaker = CircuitBreaker(
        "model:flaky", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=60, half_open_max_calls=1), store
    )
    breaker.record_failure()
    deliveries = WebhookDeliveries.at(home)
    deliveries.accept("wf", "key-1", "flow/dep", {})
    created = deliveries.accept("wf", "key-2", "flow/dep", {})
    deliveries.record_run(created.delivery.delivery_id, str(uuid.uuid4()))
    event = TaskSubmittedEvent(
        correlation_id="c", payload=TaskSubmittedPayload(task_id="t", title="t", submitted_by="u", token_budget=1)
    )
    Outbox.at(home).append([event])  # not delivered: no relay runs


def test_store_figures_are_read_at_most_once_per_collection_interval(tmp_path: Path) -> None:
    _stores(tmp_path)
    clock = [0.0]
    collector = StoreCollector(tmp_path, interval_s=10.0, approvals=lambda: 2, clock=lambda: clock[0])
    registry = CollectorRegistry()
    registry.register(collector)
    assert registry.get_sample_value("agentparty_breaker_state", {"target": "model:flaky"}) == 2
    assert registry.get_sample_value("agentparty_webhook_deliveries", {"status": "queued"}) == 1
    assert registry.get_sample_value("agentparty_webhook_deliveries", {"status": "created"}) == 1
    assert registry.get_sample_value("agentparty_approvals_waiting") == 2
    assert registry.get_sample_value("agentparty_outbox_backlog") == 1
    assert (registry.get_sample_value("agentparty_relay_lag_seconds") or 0) > 0
    assert (registry.get_sample_value("agentparty_memory_limit_bytes") or 0) > 0
    reads = collector.reads
    clock[0] = 9.9
    list(registry.collect())
    assert collector.reads == reads  # within the interval: the figures of the last read
    clock[0] = 10.0
    list(registry.collect())
    assert collector.reads == reads + 1


def test_the_listener_serves_without_a_key_and_refuses_unlisted_formats(tmp_path: Path) -> None:
    wf = f"wf-{uuid.uuid4().hex[:6]}"
    tm.record_run_started(wf)
    config = MetricsConfig(export_formats=["prometheus", "json"])
    listener = start_listener(MetricsExporter.build(config, tmp_path, approvals=lambda: None), "127.0.0.1:0")
    try:
        with urllib.request.urlopen(f"{listener.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        assert f'agentparty_runs_started_total{{workflow="{wf}"}} 1.0' in text
        assert "process_resident_memory_bytes" in text
        with urllib.request.urlopen(f"{listener.url}/metrics/json", timeout=10) as response:
            assert any(m["name"] == "agentparty_runs_started" for m in json.load(response)["metrics"])
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{listener.url}/metrics/csv", timeout=10)
        assert caught.value.code == 404 and b"csv is not in monitoring.metrics.exportFormats" in caught.value.read()
    finally:
        listener.close()


def test_recording_costs_microseconds() -> None:
    """What a step, a model call and its usage add to a run (the keyless first command must not notice)."""
    started = time.perf_counter()
    for _ in range(10_000):
        tm.record_step("task", "completed", 0.1)
        tm.record_model_call("simulated", "simulated-fast", 0.01, ok=True)
        tm.record_model_usage("simulated", "simulated-fast", 10, 10, 0.0)
    assert (time.perf_counter() - started) / 10_000 < 500e-6
