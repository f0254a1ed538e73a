"""Lifecycle and workflow events through the outbox and relay into a real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.graph_runs import example_runner
from support.run_services_support import services
from support.workflow_docs import EXAMPLES

from agentparty.flows import CompileOptions, WorkflowResult, compile_workflow
from agentparty.models import WorkflowDefinition
from agentparty.models.config import KafkaConfig
from agentparty.models.events import TaskSubmittedEvent, TaskSubmittedPayload
from agentparty.runtime.broker import LocalKafkaBroker
from agentparty.runtime.documents import load_workflow
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.event_consumer import EventConsumer, RawEvent
from agentparty.runtime.local_service import free_port
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay, producer_config
from agentparty.tasks.agent import ModelAgentRunner

pytestmark = pytest.mark.usefixtures("prefect_server")
REPORT = EXAMPLES / "research-report.yaml"

# research-report with min_sources 1: plan, research x3 items, coverage, enough_sources, draft, review run; flag_gaps skipped.
REPORT_EVENTS = {
    "workflow_run_started": 1,
    "task_submitted": 1,
    "task_analyzed": 1,
    "team_assembled": 1,
    "agent_provisioned": 6,
    "agent_state_transition": 12,  # 6 engagements: initialized→running→completed
    "step_started": 8,  # plan, 3 research items, coverage, enough_sources, draft, review
    "step_completed": 6,
    "step_skipped": 1,
    "tool_called": 7,  # the simulated model's search_docs calls: 5 by the researchers, 2 by the reviewer (MCP)
    "tool_completed": 7,
    "team_performance": 1,
    "workflow_run_completed": 1,
}


def kafka(broker: LocalKafkaBroker) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=[broker.bootstrap_servers], group_id="tests")


@pytest.fixture
def bus_on(tmp_path: Path) -> Iterator[Callable[[KafkaConfig, str], EventBus]]:
    """Buses on their own outboxes; their relay threads stop with the test."""
    buses: list[EventBus] = []

    def make(config: KafkaConfig, prefix: str) -> EventBus:
        outbox = Outbox(tmp_path / f"outbox-{uuid.uuid4()}.sqlite", prefix)
        buses.append(EventBus(outbox, OutboxRelay(outbox, config, message_timeout_ms=3000), mirror=True))
        return buses[-1]

    yield make
    for bus in buses:
        bus.relay.stop()  # type: ignore[union-attr]


def read_all(config: KafkaConfig, prefix: str) -> list[Any]:
    """Every event on the topics now (the consumer reads each partition to its end)."""
    with EventConsumer(config, prefix) as consumer:
        return list(consumer.events())


def run_report(runner: ModelAgentRunner, bus: EventBus, key: str) -> WorkflowResult:
    options = CompileOptions(services=services(agent_runner=runner, events=bus, recorder=None, user_id="ana"))
    flow = compile_workflow(load_workflow(REPORT), source=REPORT, options=options)
    return asyncio.run(flow(inputs={"min_sources": 1}, resume_key=key))


def test_every_emission_point_emits_exactly_once(
    bus_on: Callable[[KafkaConfig, str], EventBus], kafka_broker: LocalKafkaBroker, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    bus = bus_on(kafka(kafka_broker), prefix)
    key = f"report-{uuid.uuid4()}"
    runner = example_runner(tmp_path)
    result = run_report(runner, bus, key)
    assert result.events_pending == 0
    events = read_all(kafka(kafka_broker), prefix)
    assert dict(Counter(e.event_type for e in events)) == REPORT_EVENTS
    assert all(e.correlation_id == result.run_id for e in events)
    by_type = {e.event_type: e for e in events}
    assert (
        by_type["task_submitted"].payload.title == "Research report"
        and by_type["task_submitted"].payload.submitted_by == "ana"
    )
    analyzed = by_type["task_analyzed"].payload  # the steps' capabilities for certain, then what the text says
    assert analyzed.extracted_capabilities == ["data_analysis", "report_generation", "research", "web_research"]
    assert (
        analyzed.capability_confidence["data_analysis"] == 1.0 and 0.4 <= analyzed.capability_confidence["research"] < 1
    )
    assert analyzed.embedder == "all-MiniLM-L6-v2" and analyzed.token_estimate > 0
    # the Task's machine in the events: submitted, analyzed, assigned (team assembled), then the steps
    moments = [by_type[t].timestamp for t in ("task_submitted", "task_analyzed", "team_assembled")]
    first_step = min(e.timestamp for e in events if e.event_type == "step_started")
    assert moments == sorted(moments) and moments[-1] <= first_step <= by_type["workflow_run_completed"].timestamp
    assert sorted(by_type["team_assembled"].payload.agent_roles.values()) == [
        "data_analysis",
        "plan",
        "report_generation",
        "review",
    ]
    performance = by_type["team_performance"].payload
    assert performance.success_rating == 1.0 and performance.token_usage == result.tokens > 0
    assert performance.capability_metrics.coverage == 1.0 and performance.collaboration_metrics.pair_count == 6
    provisioned = {e.payload.agent_id for e in events if e.event_type == "agent_provisioned"}
    assert provisioned == set(by_type["team_assembled"].payload.agent_roles)
    # Each engagement's tool calls (T) come after its transition into running (R), before the next one (E).
    for agent_id in provisioned:
        agent_events = [e for e in events if getattr(e.payload, "agent_id", None) == agent_id]
        shape = "".join(
            "T" if e.event_type.startswith("tool_") else "R" if e.payload.new_state == "running" else "E"
            for e in agent_events
            if e.event_type.startswith("tool_") or e.event_type == "agent_state_transition"
        )
        assert re.fullmatch(r"(RT*E)+", shape), (agent_id, shape)

    # The same run replayed (a resume that reuses every step) emits nothing new: the ids are the same.
    again = run_report(runner, bus, key)
    replayed = read_all(kafka(kafka_broker), prefix)
    new_types = Counter(e.event_type for e in replayed) - Counter(e.event_type for e in events)
    assert again.events_pending == 0
    assert set(new_types) <= {"workflow_run_started", "workflow_run_completed"}, new_types  # the resume's own flow run


def test_broker_down_for_the_whole_run_loses_nothing(
    bus_on: Callable[[KafkaConfig, str], EventBus], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentparty.runtime.settings import get_settings

    monkeypatch.setenv("AGENTPARTY_EVENTS_SETTLE_TIMEOUT", "1")
    get_settings.cache_clear()
    port = free_port()
    broker = LocalKafkaBroker(tmp_path / "late-broker", port=port)
    config = kafka(broker)
    prefix = "late."
    bus = bus_on(config, prefix)
    try:
        result = run_report(example_runner(tmp_path), bus, f"late-{uuid.uuid4()}")
    finally:
        get_settings.cache_clear()
    assert result.status.value == "completed" and result.events_pending == sum(REPORT_EVENTS.values())
    broker.start()
    try:
        deadline = time.monotonic() + 60
        while bus.outbox.pending_count() and time.monotonic() < deadline:
            time.sleep(0.2)  # the relay thread keeps trying; nothing to do but wait for it
        assert bus.outbox.pending_count() == 0
        events = read_all(config, prefix)
        assert dict(Counter(e.event_type for e in events)) == REPORT_EVENTS
    finally:
        bus.relay.stop()  # type: ignore[union-attr]
        broker.stop()


def test_a_retried_step_reports_its_attempts_and_its_end_once(
    bus_on: Callable[[KafkaConfig, str], EventBus], kafka_broker: LocalKafkaBroker, handlers: Any
) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}."
    bus = bus_on(kafka(kafka_broker), prefix)
    definition = WorkflowDefinition.model_validate(
        {
            "id": "flaky",
            "name": "Flaky",
            "steps": [
                {
                    "id": "shaky",
                    "type": "task",
                    "configuration": {"handler": "support.step_handlers:flaky"},
                    "inputs": {"name": "events", "failures": 3},
                }
            ],
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 3, "backoffStrategy": "fixed", "baseDelay": 0},
        }
    )
    flow = compile_workflow(definition, options=CompileOptions(services=services(events=bus, recorder=None)))
    result = asyncio.run(flow())
    assert result.steps["shaky"].attempts == 4
    events = read_all(kafka(kafka_broker), prefix)
    counts = Counter(e.event_type for e in events)
    assert counts == Counter(
        {
            "workflow_run_started": 1,
            "task_submitted": 1,
            "task_analyzed": 1,
            "step_started": 1,
            "step_retried": 3,
            "step_completed": 1,
            "team_performance": 1,
            "workflow_run_completed": 1,
        }
    )
    assert sorted(e.payload.attempt for e in events if e.event_type in ("step_started", "step_retried")) == [1, 2, 3, 4]


def test_consumers_drop_duplicates_and_keep_unknown_versions_raw(
    bus_on: Callable[[KafkaConfig, str], EventBus], kafka_broker: LocalKafkaBroker
) -> None:
    from confluent_kafka import Producer

    prefix = f"d{uuid.uuid4().hex[:8]}."
    config = kafka(kafka_broker)
    bus = bus_on(config, prefix)
    event = TaskSubmittedEvent(
        correlation_id="run", payload=TaskSubmittedPayload(task_id="t1", title="x", submitted_by="u", token_budget=0)
    )
    bus.emit(event)
    assert bus.settle(None, 10) == 0
    producer = Producer(producer_config(config))
    for value in (event.model_dump_json(), event.model_dump_json()):  # injected duplicates, as a re-sending relay would
        producer.produce(f"{prefix}tasks", value=value.encode(), key=b"t1")
    newer = json.loads(event.model_dump_json()) | {
        "event_id": "future-1",
        "event_version": "2.0",
        "payload": {"shape": "new"},
    }
    producer.produce(f"{prefix}tasks", value=json.dumps(newer).encode(), key=b"t1")
    producer.flush(10)
    with EventConsumer(config, prefix) as consumer:
        events = list(consumer.events())
        assert consumer.duplicates == 2
    assert [e.event_id for e in events if not isinstance(e, RawEvent)] == [event.event_id]
    raw = [e for e in events if isinstance(e, RawEvent)]
    assert len(raw) == 1 and raw[0].event_version == "2.0" and raw[0].data["payload"] == {"shape": "new"}


def test_circuit_breaker_transitions_are_events(
    bus_on: Callable[[KafkaConfig, str], EventBus], kafka_broker: LocalKafkaBroker, tmp_path: Path, handlers: Any
) -> None:
    from agentparty.flows import WorkflowFailed
    from agentparty.runtime.breakers import SqliteBreakerStore

    prefix = f"b{uuid.uuid4().hex[:8]}."
    bus = bus_on(kafka(kafka_broker), prefix)
    definition = WorkflowDefinition.model_validate(
        {
            "id": "breaks",
            "name": "Breaks",
            "steps": [
                {
                    "id": "boom",
                    "type": "task",
                    "configuration": {"handler": "support.step_handlers:always_fails"},
                    "inputs": {"name": "breaker"},
                }
            ],
            "triggers": [{"type": "manual"}],
            "errorHandling": {
                "retryAttempts": 0,
                "backoffStrategy": "fixed",
                "circuitBreaker": {"failureThreshold": 1, "recoveryTimeout": 60, "halfOpenMaxCalls": 1},
            },
        }
    )
    options = CompileOptions(
        services=services(events=bus, recorder=None, breakers=SqliteBreakerStore(tmp_path / "breakers.sqlite"))
    )
    with pytest.raises(WorkflowFailed):
        asyncio.run(compile_workflow(definition, options=options)())
    opened = [e for e in read_all(kafka(kafka_broker), prefix) if e.event_type.startswith("circuit_breaker")]
    assert [(e.event_type, e.payload.previous_state, e.payload.new_state) for e in opened] == [
        ("circuit_breaker_opened", "closed", "open")
    ]
    assert opened[0].payload.target == "handler:support.step_handlers:always_fails"


def test_kafka_config_maps_onto_librdkafka_settings() -> None:
    from pydantic import SecretStr

    from agentparty.runtime.relay import consumer_config

    secured = KafkaConfig(
        bootstrap_servers="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",  # type: ignore[arg-type]
        sasl_username="svc",
        sasl_password=SecretStr("s3cret"),
        group_id="readers",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    produced = producer_config(secured)
    assert produced["bootstrap.servers"] == "b1:9093,b2:9093" and produced["security.protocol"] == "SASL_SSL"
    assert (
        produced["sasl.mechanism"] == "SCRAM-SHA-512"
        and produced["sasl.username"] == "svc"
        and produced["sasl.password"] == "s3cret"
    )
    assert produced["acks"] == "all" and produced["enable.idempotence"] is True
    consumed = consumer_config(secured)
    assert (
        consumed["group.id"] == "readers"
        and consumed["auto.offset.reset"] == "latest"
        and consumed["enable.auto.commit"] is False
    )
