"""``WS /ws`` for keys whose permission has conditions (the unit half: no broker, no server).

A key limited to some workflows, or to the runs it started (``owner: self``), hears
only the messages, snapshot included, about runs within them; a message the view
cannot attribute to a run reaches only keys without conditions. The view learns
each run from its workflow events and stream items, which carry the workflow and the
owner's ``owner_ref``. Two real runs on a real broker are
``tests/integration/api/test_live_scope.py``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from starlette.testclient import TestClient

from agentparty.api import create_app
from agentparty.api.live import LiveFeed, RunFilter, Subscription
from agentparty.api.live_view import LiveView, Routed, RunRef
from agentparty.api.security import Principal, key_digest
from agentparty.flows.run_events import RunEvents
from agentparty.models import WorkflowDefinition
from agentparty.models.access import ApiAccessConfig, Scope, owner_ref
from agentparty.models.config import KafkaConfig
from agentparty.models.events import AgentStateTransitionEvent, AgentStateTransitionPayload, BaseEvent
from agentparty.models.live_stream import LiveStreamItem
from agentparty.models.run_results import StepResult, StepStatus
from agentparty.tasks.agent import current_owner_ref

ALPHA, BETA = "alpha", "beta"
ONLY_ALPHA = Scope(({"workflows": [ALPHA]},))
OWN_RUNS = Scope(({"owner": "self"},))


def _run(workflow_id: str, owner: str | None) -> RunEvents:
    definition = WorkflowDefinition.model_validate(
        {
            "id": workflow_id,
            "name": workflow_id,
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
            "steps": [{"id": "s0", "type": "task", "configuration": {"handler": "support.step_handlers:number"}}],
        }
    )
    return RunEvents(
        definition,
        run_key=f"{workflow_id}-{uuid.uuid4()}",
        flow_run_id=str(uuid.uuid4()),
        username="ana",
        owner_ref=owner_ref(owner) if owner else None,
    )


def _transition(correlation_id: str, agent_id: str) -> AgentStateTransitionEvent:
    payload = AgentStateTransitionPayload(
        agent_id=agent_id, previous_state="initialized", new_state="running", transition_approver="system:auto"
    )
    return AgentStateTransitionEvent(correlation_id=correlation_id, payload=payload)


def _item(run: RunEvents | None, agent_id: str, *, carried: bool = True, run_key: str = "") -> LiveStreamItem:
    return LiveStreamItem(
        event="text",
        activity="thinking",
        agent_id=agent_id,
        agent_name=agent_id,
        run_key=run.run_key if run else run_key,
        step_id="s0",
        turn=1,
        delta=f"said in {run.definition.id if run else 'nowhere'}",
        workflow_id=run.definition.id if run and carried else None,
        owner_ref=run.owner_ref if run and carried else None,
    )


def _teams_and_agents(texts: list[str]) -> tuple[set[str], set[str]]:
    payloads = [json.loads(t)["payload"] for t in texts]
    return {p["team_id"] for p in payloads if "team_id" in p}, {p["agent_id"] for p in payloads if "agent_id" in p}


def _drain(subscription: Subscription) -> list[str]:
    return [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())]


def test_the_view_attributes_each_message_to_its_run_and_leaves_the_unknown_unattributed() -> None:
    view = LiveView()
    alpha, beta = _run(ALPHA, "bot-a"), _run(BETA, None)
    early = view.messages_for(_transition(alpha.correlation_id, "agent-a"))  # before any workflow event of it
    assert [m.run for m in early] == [None]
    for event in [*alpha.run_started({"agent-a": "plan"}), *beta.run_started({"agent-b": "plan"})]:
        for message in view.messages_for(event):
            assert message.run is not None
    a_ref, b_ref = RunRef(ALPHA, owner_ref("bot-a")), RunRef(BETA, None)
    assert view.run_of(alpha.correlation_id) == view.run_of(alpha.team_id) == a_ref
    assert view.run_of(beta.team_id) == b_ref
    assert [m.run for m in view.messages_for(_transition(alpha.correlation_id, "agent-a"))] == [a_ref]
    step_end = beta.step_finished(StepResult(step_id="s0", status=StepStatus.COMPLETED), [])
    assert {m.run for e in step_end for m in view.messages_for(e)} <= {b_ref}

    # A stream item carries its run; one that does not is attributed by its run key's workflow events.
    assert [m.run for m in view.stream_messages(_item(beta, "agent-b"))] == [b_ref]
    assert [m.run for m in view.stream_messages(_item(alpha, "agent-a", carried=False))] == [a_ref]
    assert [m.run for m in view.stream_messages(_item(None, "agent-x", run_key="never-seen"))] == [None]
    gamma = _run("gamma", "bot-c")
    gamma.flow_run_id = None  # a run not resumed: its run key is its flow run's id, its events' correlation id
    assert [m.run for m in view.stream_messages(_item(gamma, "agent-c"))] == [RunRef("gamma", owner_ref("bot-c"))]
    early_event = _transition(gamma.correlation_id, "agent-c")  # read before any workflow event of gamma
    assert [m.run for m in view.messages_for(early_event)] == [RunRef("gamma", owner_ref("bot-c"))]


def test_a_run_filter_admits_runs_within_the_conditions_and_nothing_unattributed() -> None:
    workflow_key = RunFilter.of(Principal("scoped", "r", ONLY_ALPHA))
    own_key = RunFilter.of(Principal("bot-a", "r", OWN_RUNS))
    assert RunFilter.of(Principal("root", "admin")) is None, "keys without conditions are not filtered"
    assert workflow_key is not None and own_key is not None
    mine, theirs = owner_ref("bot-a"), owner_ref("bot-b")
    assert workflow_key.admits(Routed("m", run=RunRef(ALPHA, theirs)))
    assert not workflow_key.admits(Routed("m", run=RunRef(BETA, mine)))
    assert own_key.admits(Routed("m", run=RunRef(BETA, mine)))
    assert not own_key.admits(Routed("m", run=RunRef(ALPHA, theirs)))
    assert not own_key.admits(Routed("m", run=RunRef(ALPHA, None))), "a run started otherwise is nobody's own"
    assert not own_key.admits(Routed("m", run=RunRef(ALPHA, "bot-a"))), "the owner is compared as its ref"
    for key in (workflow_key, own_key):
        assert not key.admits(Routed("m")), "fail closed"
    assert current_owner_ref() is None, "outside a flow run nobody owns it"


def test_conditioned_subscriptions_hear_only_their_runs_live_and_in_the_snapshot() -> None:
    alpha, beta = _run(ALPHA, "bot-a"), _run(BETA, "bot-b")

    async def scenario() -> dict[str, list[str]]:
        feed = LiveFeed(KafkaConfig(bootstrap_servers=["127.0.0.1:9"], group_id="unused"), "unused.")  # never started
        subscriptions = {
            "root": feed.subscribe(),
            "scoped": feed.subscribe(runs=RunFilter.of(Principal("scoped", "r", ONLY_ALPHA))),
            "bot-b": feed.subscribe(runs=RunFilter.of(Principal("bot-b", "r", OWN_RUNS))),
        }
        feed.show_event(_transition(beta.correlation_id, "agent-early"))  # unattributable yet
        for run, agent in ((alpha, "agent-a"), (beta, "agent-b")):
            events: list[BaseEvent[Any]] = [*run.run_started({agent: "plan"}), _transition(run.correlation_id, agent)]
            for event in events:
                feed.show_event(event)
            feed.show_item(_item(run, agent))
        await asyncio.sleep(0)
        late = {
            "late-scoped": feed.subscribe(runs=RunFilter.of(Principal("scoped", "r", ONLY_ALPHA))),
            "late-bot-b": feed.subscribe(runs=RunFilter.of(Principal("bot-b", "r", OWN_RUNS))),
            "late-root": feed.subscribe(),
        }
        return {name: _drain(s) for name, s in {**subscriptions, **late}.items()}

    got = {name: _teams_and_agents(texts) for name, texts in asyncio.run(scenario()).items()}
    both_teams = {alpha.team_id, beta.team_id}
    assert got["root"] == got["late-root"] == (both_teams, {"agent-early", "agent-a", "agent-b"})
    assert got["scoped"] == got["late-scoped"] == ({alpha.team_id}, {"agent-a"})
    assert got["bot-b"] == ({beta.team_id}, {"agent-b"}), "the early event was of no known run when it came"
    assert got["late-bot-b"] == ({beta.team_id}, {"agent-b", "agent-early"}), "its run is known by the snapshot"


def test_a_conditioned_key_connects_to_the_socket_and_hears_only_its_runs() -> None:
    keys = {"scoped": "scoped-key-1", "root": "root-key-1"}
    access = ApiAccessConfig.model_validate(
        {
            "roles": {
                "admin": [{"resource": "*", "actions": ["create", "read", "update", "delete"]}],
                "alpha-only": [{"resource": "events", "actions": ["read"], "conditions": {"workflows": [ALPHA]}}],
            },
            "apiKeys": [
                {"name": "scoped", "role": "alpha-only", "keySha256": key_digest(keys["scoped"])},
                {"name": "root", "role": "admin", "keySha256": key_digest(keys["root"])},
            ],
        }
    )
    app = create_app(access)
    feed = app.state.live_feed = LiveFeed(KafkaConfig(bootstrap_servers=["127.0.0.1:9"], group_id="unused"), "u.")
    feed.stop()  # a stopped feed never starts: the test shows it what the readers would
    feed.ready.set()
    alpha, beta = _run(ALPHA, None), _run(BETA, None)
    with (
        TestClient(app) as client,
        client.websocket_connect(f"/ws?api_key={keys['scoped']}") as scoped,
        client.websocket_connect(f"/ws?api_key={keys['root']}") as root,
    ):
        for run in (beta, alpha):
            feed.show_event(run.run_started(None)[0])  # workflow_run_started: one team_update each
        assert [scoped.receive_json()["payload"]["team_id"]] == [alpha.team_id]
        assert [root.receive_json()["payload"]["team_id"] for _ in range(2)] == [beta.team_id, alpha.team_id]
