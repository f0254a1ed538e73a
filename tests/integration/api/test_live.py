"""``WS /ws``: live agent and team updates from a real run's lifecycle events on a real Kafka-protocol broker (Tansu).

The run goes through the session's Prefect server; its events are read back from the
broker and compared with what three clients received. The view and the socket's
access rules without a broker are ``tests/unit/api/test_live.py``.
"""

from __future__ import annotations

import asyncio
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession
from support.graph_runs import example_runner
from support.run_services_support import services
from support.workflow_docs import EXAMPLES

from agentparty.api import create_app
from agentparty.api.agent_svg import animation_for
from agentparty.api.live import LiveFeed
from agentparty.api.security import key_digest
from agentparty.flows import CompileOptions, WorkflowResult, compile_workflow
from agentparty.models.access import DEFAULT_ROLES, ApiAccessConfig
from agentparty.models.config import KafkaConfig
from agentparty.models.run_history import team_id_for
from agentparty.models.sdk_config import Permission
from agentparty.runtime.documents import load_workflow
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.event_consumer import EventConsumer
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay
from agentparty.tasks.agent import ModelAgentRunner

REPORT = EXAMPLES / "research-report.yaml"
SVG = "{http://www.w3.org/2000/svg}svg"
KEYS = {"viewer": "viewer-key-1", "webhooks": "webhooks-key-1"}
ACCESS = ApiAccessConfig.model_validate(
    {
        "roles": {**DEFAULT_ROLES, "workflows-only": [Permission(resource="workflows", actions=["read"])]},
        "apiKeys": [
            {"name": "watcher", "role": "viewer", "keySha256": key_digest(KEYS["viewer"])},
            {"name": "hooks", "role": "workflows-only", "keySha256": key_digest(KEYS["webhooks"])},
        ],
    }
)


# -- end to end: a run's events on Kafka, read back, against what a client received ---------------


def _kafka(broker: Any) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=[broker.bootstrap_servers], group_id="tests")


def _run_report(tmp_path: Path, runner: ModelAgentRunner, config: KafkaConfig, prefix: str, key: str) -> WorkflowResult:
    outbox = Outbox(tmp_path / "outbox.sqlite", prefix)
    bus = EventBus(outbox, OutboxRelay(outbox, config, message_timeout_ms=3000), mirror=False)
    options = CompileOptions(services=services(agent_runner=runner, events=bus, recorder=None, user_id="ana"))
    try:
        return asyncio.run(
            compile_workflow(load_workflow(REPORT), source=REPORT, options=options)(
                inputs={"min_sources": 1}, resume_key=key
            )
        )
    finally:
        bus.relay.stop()  # type: ignore[union-attr]


def _receive_until(ws: WebSocketTestSession, done: Any) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    while not done(received):
        received.append(ws.receive_json())
    return received


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_clients_get_each_agents_updates_in_event_order_and_the_teams_final_progress(
    kafka_broker: Any, tmp_path: Path
) -> None:
    config, prefix, key = _kafka(kafka_broker), f"live{uuid.uuid4().hex[:8]}.", f"live-{uuid.uuid4()}"
    team_id = team_id_for(key)
    runner = example_runner(tmp_path)
    writer_id = runner.agent_id_for("writer")
    app = create_app(ACCESS)
    app.state.live_feed = LiveFeed(config, prefix)
    viewer = f"api_key={KEYS['viewer']}"
    with (
        TestClient(app) as client,
        client.websocket_connect(f"/ws?{viewer}") as everything,
        client.websocket_connect(f"/ws?{viewer}&agent_id={writer_id}") as writer_only,
        client.websocket_connect(f"/ws?{viewer}&team_id={team_id}") as team_only,
    ):
        assert app.state.live_feed.ready.wait(120), "the feed never reached the broker"  # so it sees all the run emits
        result = _run_report(tmp_path, runner, config, prefix, key)
        assert result.status.value == "completed" and result.events_pending == 0

        with EventConsumer(config, prefix) as consumer:
            events = list(consumer.events())
        transitions: dict[str, list[tuple[str, str]]] = defaultdict(list)
        tokens: dict[str, int] = defaultdict(int)
        provisioned: dict[str, int] = defaultdict(int)
        for event in events:
            if event.event_type == "agent_state_transition":
                transitions[event.payload.agent_id].append((event.payload.previous_state, event.payload.new_state))
                tokens[event.payload.agent_id] += event.payload.token_count
            elif event.event_type == "agent_provisioned":
                provisioned[event.payload.agent_id] += 1
        roles = next(e.payload.agent_roles for e in events if e.event_type == "team_assembled")
        expected_agent_updates = sum(map(len, transitions.values())) + sum(provisioned.values())
        assert set(transitions) == set(roles) and writer_id in roles

        def agent_updates(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [m["payload"] for m in messages if m["message_type"] == "agent_update"]

        def final_seen(messages: list[dict[str, Any]]) -> bool:
            """The team's final update, with its members (a team_assembled read after the run's end adds them)."""
            return any(
                m["message_type"] == "team_update"
                and m["payload"]["status"] in ("completed", "failed")
                and len(m["payload"]["members"]) == len(roles)
                for m in messages
            )

        received = _receive_until(
            everything, lambda ms: len(agent_updates(ms)) == expected_agent_updates and final_seen(ms)
        )
        writer_expected = len(transitions[writer_id]) + provisioned[writer_id]
        from_writer_only = _receive_until(writer_only, lambda ms: len(ms) == writer_expected)
        from_team_only = _receive_until(team_only, final_seen)

    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for update in agent_updates(received):
        by_agent[update["agent_id"]].append(update)
    for agent_id, updates in by_agent.items():
        assert [
            (u["previous_state"], u["new_state"]) for u in updates if u["previous_state"] is not None
        ] == transitions[agent_id]
        assert sum(u["previous_state"] is None for u in updates) == provisioned[agent_id]
        usage = [u["token_usage"] for u in updates]
        assert usage == sorted(usage) and usage[-1] == tokens[agent_id]
        for update in updates:
            root = ET.fromstring(update["svg"])
            assert root.tag == SVG and root.get("data-state") == update["new_state"]
            assert update["animation_type"] == animation_for(update["new_state"])

    team_updates = [m["payload"] for m in received if m["message_type"] == "team_update"]
    assert team_updates and all(u["team_id"] == team_id for u in team_updates)
    progress = [u["task_progress"] for u in team_updates]
    assert progress == sorted(progress) and progress[-1] == 1.0 and team_updates[-1]["status"] == "completed"
    assert {m["agent_id"]: m["role"] for m in team_updates[-1]["members"]} == roles
    assert team_updates[-1]["connections"] == []  # the run measured no pair success to weigh them by

    assert from_writer_only == [
        m for m in received if m["message_type"] == "agent_update" and m["payload"]["agent_id"] == writer_id
    ]
    assert [m for m in from_team_only if m["message_type"] == "team_update"] == [
        m for m in received if m["message_type"] == "team_update"
    ]
    assert all(m["payload"]["agent_id"] in roles for m in from_team_only if m["message_type"] == "agent_update")
