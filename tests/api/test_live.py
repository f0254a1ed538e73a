"""``WS /ws``: live agent and team updates from the lifecycle events on a real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import asyncio
import json
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from graph_runs import example_runner
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from workflow_docs import EXAMPLES

from run_services_support import services

from agentparty.api import create_app
from agentparty.api.agent_svg import STATE_LOOKS, agent_svg, animation_for, initials
from agentparty.api.live import LiveFeed
from agentparty.api.live_view import LiveView, Routed
from agentparty.api.security import key_digest
from agentparty.flows import CompileOptions, WorkflowResult, compile_workflow
from agentparty.runtime.documents import load_workflow
from agentparty.models.run_results import StepResult, StepStatus
from agentparty.flows.run_events import RunEvents
from agentparty.models.run_history import team_id_for
from agentparty.models import AgentLifecycleState, WorkflowDefinition
from agentparty.models.access import DEFAULT_ROLES, ApiAccessConfig
from agentparty.models.config import KafkaConfig
from agentparty.models.sdk_config import Permission
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.event_consumer import EventConsumer
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay
from agentparty.tasks.agent import ModelAgentRunner

REPORT = EXAMPLES / "research-report.yaml"
SVG = "{http://www.w3.org/2000/svg}svg"
KEYS = {"viewer": "viewer-key-1", "webhooks": "webhooks-key-1"}
ACCESS = ApiAccessConfig.model_validate({
    "roles": {**DEFAULT_ROLES, "workflows-only": [Permission(resource="workflows", actions=["read"])]},
    "apiKeys": [
        {"name": "watcher", "role": "viewer", "keySha256": key_digest(KEYS["viewer"])},
        {"name": "hooks", "role": "workflows-only", "keySha256": key_digest(KEYS["webhooks"])},
    ],
})


# -- the look of a state, and the view, without a broker --------------------------------------------


def test_every_lifecycle_state_has_one_look_and_its_svg_parses() -> None:
    assert set(STATE_LOOKS) == set(AgentLifecycleState)
    assert {animation_for(s) for s in ("running", "paused", "failed", "completed", "initialized", "terminated")} == {
        "pulse", "fade", "shake", "glow", "idle", "none",
    }
    for state in [*AgentLifecycleState, "from-a-newer-producer"]:
        root = ET.fromstring(agent_svg('data_analysis <&"x">', str(state)))
        assert root.tag == SVG and root.get("data-state") == str(state) and root.get("data-animation") == animation_for(str(state))
        assert root.find("{http://www.w3.org/2000/svg}text").text == "DA"  # type: ignore[union-attr]
    assert animation_for("from-a-newer-producer") == "none"
    assert initials("plan") == "PL" and initials("report generation") == "RG" and initials("--") == "?"


def _run_events(step_count: int) -> RunEvents:
    definition = WorkflowDefinition.model_validate({
        "id": "view", "name": "View", "triggers": [{"type": "manual"}], "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
        "steps": [{"id": f"s{i}", "type": "task", "configuration": {"handler": "step_handlers:number"}} for i in range(step_count)],
    })
    return RunEvents(definition, run_key=f"view-{uuid.uuid4()}", flow_run_id=None, username="ana")


def _team_updates(view: LiveView, events: list[Any]) -> list[dict[str, Any]]:
    out = [json.loads(m.text) for e in events for m in view.messages_for(e)]
    return [m["payload"] for m in out if m["message_type"] == "team_update"]


@pytest.mark.parametrize("order", ["teams_first", "workflows_first", "interleaved"])
def test_team_updates_end_final_whatever_the_topics_interleaving(order: str) -> None:
    """The teams and workflows topics interleave freely; each keeps its own order."""
    run = _run_events(2)
    started = run.run_started({"agent-1": "plan", "agent-2": "review"})
    workflow_started, assembled = started[0], started[-1]
    step_a = run.step_finished(StepResult(step_id="s0", status=StepStatus.COMPLETED), [])[-1]
    step_b = run.step_finished(StepResult(step_id="s1", status=StepStatus.SKIPPED), [])[-1]
    performance, run_end = run.run_finished(WorkflowResult(workflow_id="view", workflow_name="View", status=StepStatus.COMPLETED))
    performance.payload.collaboration_metrics.mean_pair_success = 0.75
    teams, workflows = [assembled, performance], [workflow_started, step_a, step_b, run_end]
    ordered = {
        "teams_first": [*teams, *workflows],
        "workflows_first": [*workflows, *teams],
        "interleaved": [workflow_started, assembled, step_a, performance, step_b, run_end],
    }[order]
    updates = _team_updates(LiveView(), ordered)
    progress = [u["task_progress"] for u in updates]
    assert progress == sorted(progress) and progress[-1] == 1.0
    first_final = next(i for i, u in enumerate(updates) if u["status"] == "completed")
    assert all(u["status"] == "completed" and u["task_progress"] == 1.0 for u in updates[first_final:])
    assert {m["agent_id"] for m in updates[-1]["members"]} == {"agent-1", "agent-2"}
    assert updates[first_final]["connections"] == [{"source": "agent-1", "target": "agent-2", "strength": 0.75}]
    assert all(u["connections"] == [] for u in updates[:first_final])
    assert all(u["team_id"] == team_id_for(run.run_key) for u in updates)


def test_a_resumed_run_reopens_its_team() -> None:
    run = _run_events(2)
    started = run.run_started({"agent-1": "plan"})
    step_a = run.step_finished(StepResult(step_id="s0", status=StepStatus.COMPLETED), [])[-1]
    failed = run.run_finished(WorkflowResult(workflow_id="view", workflow_name="View", status=StepStatus.FAILED))
    resumed = RunEvents(run.definition, run.run_key, flow_run_id=str(uuid.uuid4()), username="ana")
    step_b = resumed.step_finished(StepResult(step_id="s1", status=StepStatus.COMPLETED), [])[-1]
    completed = resumed.run_finished(WorkflowResult(workflow_id="view", workflow_name="View", status=StepStatus.COMPLETED))[-1]
    updates = _team_updates(LiveView(), [*started, step_a, *failed, resumed.run_started(None)[0], step_b, completed])
    assert [(u["status"], u["task_progress"]) for u in updates] == [
        ("forming", 0.0), ("forming", 0.0), ("active", 0.5), ("failed", 1.0), ("active", 0.5), ("active", 1.0), ("completed", 1.0),
    ]


def test_a_full_queue_closes_only_the_slow_connection() -> None:
    async def scenario() -> tuple[list[Any], list[Any], bool]:
        feed = LiveFeed(KafkaConfig(bootstrap_servers=["127.0.0.1:9"], group_id="unused"), "unused.")  # never started
        slow = feed.subscribe()
        slow.queue = asyncio.Queue(2)
        quick = feed.subscribe(agent_ids=frozenset({"a"}))
        for index in range(3):
            feed.publish(Routed(f"m{index}", agent_id="a"))
        feed.publish(Routed("other", agent_id="b"))
        await asyncio.sleep(0)  # the publishes were scheduled on this loop: let them run
        drained = lambda q: [q.get_nowait() for _ in range(q.qsize())]  # noqa: E731
        return drained(slow.queue), drained(quick.queue), slow.overflowed

    slow, quick, overflowed = asyncio.run(scenario())
    assert overflowed and len(slow) == 1 and slow[0] not in ("m0", "m1", "m2")  # only the close sentinel is left
    assert quick == ["m0", "m1", "m2"]


# -- access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", f"?api_key={KEYS['webhooks']}", "?api_key=not-a-key"])
def test_websocket_without_events_read_is_refused_with_policy_violation(query: str) -> None:
    with TestClient(create_app(ACCESS)) as client:
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect(f"/ws{query}"):
                pass
    assert refused.value.code == 1008


# -- end to end: a run's events on Kafka, read back, against what a client received ---------------


def _kafka(broker: Any) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=[broker.bootstrap_servers], group_id="tests")


def _run_report(tmp_path: Path, runner: ModelAgentRunner, config: KafkaConfig, prefix: str, key: str) -> WorkflowResult:
    outbox = Outbox(tmp_path / "outbox.sqlite", prefix)
    bus = EventBus(outbox, OutboxRelay(outbox, config, message_timeout_ms=3000), mirror=False)
    options = CompileOptions(services=services(agent_runner=runner, events=bus, recorder=None, user_id="ana"))
    try:
        return asyncio.run(compile_workflow(load_workflow(REPORT), source=REPORT, options=options)(inputs={"min_sources": 1}, resume_key=key))
    finally:
        bus.relay.stop()  # type: ignore[union-attr]


def _receive_until(ws: WebSocketTestSession, done: Any) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    while not done(received):
        received.append(ws.receive_json())
    return received


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_clients_get_each_agents_updates_in_event_order_and_the_teams_final_progress(kafka_broker: Any, tmp_path: Path) -> None:
    config, prefix, key = _kafka(kafka_broker), f"live{uuid.uuid4().hex[:8]}.", f"live-{uuid.uuid4()}"
    team_id = team_id_for(key)
    runner = example_runner(tmp_path)
    writer_id = runner.agent_id_for("writer")
    app = create_app(ACCESS)
    app.state.live_feed = LiveFeed(config, prefix)
    viewer = f"api_key={KEYS['viewer']}"
    with TestClient(app) as client, client.websocket_connect(f"/ws?{viewer}") as everything, client.websocket_connect(
        f"/ws?{viewer}&agent_id={writer_id}"
    ) as writer_only, client.websocket_connect(f"/ws?{viewer}&team_id={team_id}") as team_only:
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
                m["message_type"] == "team_update" and m["payload"]["status"] in ("completed", "failed")
                and len(m["payload"]["members"]) == len(roles) for m in messages
            )

        received = _receive_until(everything, lambda ms: len(agent_updates(ms)) == expected_agent_updates and final_seen(ms))
        writer_expected = len(transitions[writer_id]) + provisioned[writer_id]
        from_writer_only = _receive_until(writer_only, lambda ms: len(ms) == writer_expected)
        from_team_only = _receive_until(team_only, final_seen)

    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for update in agent_updates(received):
        by_agent[update["agent_id"]].append(update)
    for agent_id, updates in by_agent.items():
        assert [(u["previous_state"], u["new_state"]) for u in updates if u["previous_state"] is not None] == transitions[agent_id]
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

    assert from_writer_only == [m for m in received if m["message_type"] == "agent_update" and m["payload"]["agent_id"] == writer_id]
    assert [m for m in from_team_only if m["message_type"] == "team_update"] == [m for m in received if m["message_type"] == "team_update"]
    assert all(m["payload"]["agent_id"] in roles for m in from_team_only if m["message_type"] == "agent_update")
