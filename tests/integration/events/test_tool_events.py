"""Tool calls as ``tool_called`` / ``tool_completed`` events, through the real outbox and relay into the broker (Tansu).

Read back with kafka-python from offset 0 without de-duplication (``kafka_raw``), so a repeat would show, and with
our own consumer, which must parse them as typed events. No Prefect server: the bus does not mirror here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.kafka_raw import read_raw, repeats
from support.tool_work import DEFINITION, slot_record, step_result, tool_work

from agentparty.flows.run_events import RunEvents
from agentparty.models.config import KafkaConfig
from agentparty.models.events import ToolCallEvent
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.event_consumer import EventConsumer
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay, topic_names


@pytest.fixture
def bus(kafka_broker: Any, tmp_path: Path) -> Iterator[tuple[EventBus, KafkaConfig, str]]:
    prefix = f"tool{uuid.uuid4().hex[:8]}."
    config = KafkaConfig(bootstrap_servers=[kafka_broker.bootstrap_servers], group_id="tests")
    outbox = Outbox(tmp_path / "outbox.sqlite", prefix)
    relay = OutboxRelay(outbox, config, message_timeout_ms=3000)
    yield EventBus(outbox, relay, mirror=False), config, prefix
    relay.stop()


def test_tool_calls_reach_kafka_once_in_order_with_the_agents_transitions(
    bus: tuple[EventBus, KafkaConfig, str], kafka_broker: Any
) -> None:
    event_bus, config, prefix = bus
    run_key = f"tooled-{uuid.uuid4()}"
    work = tool_work()
    emitted = RunEvents(DEFINITION, run_key, "flow-run-1", "ana").step_finished(step_result(), [slot_record(work)])
    assert event_bus.emit(*emitted) == len(emitted)
    assert event_bus.settle("flow-run-1", 30) == 0
    # The same step again, as a resumed run (another flow run) reports it: the same ids, nothing new.
    again = RunEvents(DEFINITION, run_key, "flow-run-2", "ana").step_finished(step_result(), [slot_record(work)])
    assert event_bus.emit(*again) == 0

    records = read_raw(kafka_broker.bootstrap_servers, topic_names(prefix))
    assert repeats(records) == {}
    agent = sorted(
        (r for r in records if r.topic == f"{prefix}agents" and r.key == work.agent.id.encode()),
        key=lambda r: r.offset,
    )
    assert len({r.partition for r in agent}) == 1, "one key, one partition: the order below is the order read"
    seen = [
        (r.event["event_type"], r.event["payload"].get("call_id") or r.event["payload"].get("new_state")) for r in agent
    ]
    assert seen == [
        ("agent_provisioned", None),
        ("agent_state_transition", "running"),
        ("tool_called", "c1"),
        ("tool_completed", "c1"),
        ("tool_called", "c2"),
        ("tool_completed", "c2"),
        ("tool_called", "c3"),
        ("tool_completed", "c3"),
        ("tool_called", "c4"),
        ("tool_completed", "c4"),
        ("agent_state_transition", "completed"),
    ]
    by_id = {r.event_id: r.event for r in agent}
    tool_ids = [e.event_id for e in emitted if isinstance(e, ToolCallEvent)]
    assert set(tool_ids) <= set(by_id)
    called, completed = by_id[tool_ids[2]], by_id[tool_ids[3]]  # c2: the MCP fetch that timed out
    assert called["payload"]["tool"] == "fetch" and called["payload"]["ok"] is None
    assert called["payload"]["arguments"] == '{"query": "graph neural networks"}'
    assert {k: completed["payload"][k] for k in ("ok", "refused", "result", "duration_ms", "cached", "turn")} == {
        "ok": False,
        "refused": False,
        "result": "timed out after 30 s",
        "duration_ms": 30000.0,
        "cached": False,
        "turn": 1,
    }
    assert completed["correlation_id"] == "flow-run-1" and completed["event_version"] == "1.0"

    with EventConsumer(config, prefix) as consumer:
        typed = [e for e in consumer.events() if isinstance(e, ToolCallEvent)]
    assert [e.event_id for e in typed] == tool_ids, "our consumer parses them as typed events, in order"
    assert typed[7].payload.refused and typed[5].payload.cached
