"""``WS /ws``: live agent and team updates from the lifecycle events (the unit half: no broker, no server).

The look of each state, the team view whatever order the topics interleave in, a slow
connection's full queue, and access to the socket. A real run's events on a real
Kafka-protocol broker (Tansu), read back against what clients received, are
``tests/integration/api/test_live.py``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from agentparty.api import create_app
from agentparty.api.agent_svg import STATE_LOOKS, agent_svg, animation_for, initials
from agentparty.api.live import LiveFeed
from agentparty.api.live_view import LiveView, Routed
from agentparty.api.security import key_digest
from agentparty.flows import WorkflowResult
from agentparty.flows.run_events import RunEvents
from agentparty.models import AgentLifecycleState, WorkflowDefinition
from agentparty.models.access import DEFAULT_ROLES, ApiAccessConfig
from agentparty.models.config import KafkaConfig
from agentparty.models.run_history import team_id_for
from agentparty.models.run_results import StepResult, StepStatus
from agentparty.models.sdk_config import Permission

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


# -- the look of a state, and the view, without a broker --------------------------------------------


def test_every_lifecycle_state_has_one_look_and_its_svg_parses() -> None:
    assert set(STATE_LOOKS) == set(AgentLifecycleState)
    assert {animation_for(s) for s in ("running", "paused", "failed", "completed", "initialized", "terminated")} == {
        "pulse",
        "fade",
        "shake",
        "glow",
        "idle",
        "none",
    }
    for state in [*AgentLifecycleState, "from-a-newer-producer"]:
        root = ET.fromstring(agent_svg('data_analysis <&"x">', str(state)))
        assert (
            root.tag == SVG
            and root.get("data-state") == str(state)
            and root.get("data-animation") == animation_for(str(state))
        )
        assert root.find("{http://www.w3.org/2000/svg}text").text == "DA"  # type: ignore[union-attr]
    assert animation_for("from-a-newer-producer") == "none"
    assert initials("plan") == "PL" and initials("report generation") == "RG" and initials("--") == "?"


def _run_events(step_count: int) -> RunEvents:
    definition = WorkflowDefinition.model_validate(
        {
            "id": "view",
            "name": "View",
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
            "steps": [
                {"id": f"s{i}", "type": "task", "configuration": {"handler": "support.step_handlers:number"}}
                for i in range(step_count)
            ],
        }
    )
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
    performance, run_end = run.run_finished(
        WorkflowResult(workflow_id="view", workflow_name="View", status=StepStatus.COMPLETED)
    )
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
    completed = resumed.run_finished(
        WorkflowResult(workflow_id="view", workflow_name="View", status=StepStatus.COMPLETED)
    )[-1]
    updates = _team_updates(LiveView(), [*started, step_a, *failed, resumed.run_started(None)[0], step_b, completed])
    assert [(u["status"], u["task_progress"]) for u in updates] == [
        ("forming", 0.0),
        ("forming", 0.0),
        ("active", 0.5),
        ("failed", 1.0),
        ("active", 0.5),
        ("active", 1.0),
        ("completed", 1.0),
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
    with (
        TestClient(create_app(ACCESS)) as client,
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(f"/ws{query}"),
    ):
        pass
    assert refused.value.code == 1008
