"""Agents and teams from the real graph server, workflows and runs from the real Prefect server.

The 503s of an unreachable or missing Prefect or graph server are the unit half: ``tests/unit/api/test_resources.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api_support import HookWorkflows, auth, signed

from agentparty.models.api import AgentStateResponse
from agentparty.models.graph import (
    Agent,
    AgentStateRecord,
    Capability,
    HasCapability,
    HasState,
    MemberOf,
    Task,
    Team,
    WorksOn,
)
from agentparty.models.states import AgentLifecycleState
from agentparty.runtime.graph_store import GraphBatch, GraphStore


@pytest.fixture
def graph_client(make_app: Any, graph_store: GraphStore) -> Iterator[TestClient]:
    with TestClient(make_app(graph_store=graph_store)) as client:
        yield client


@pytest.fixture
def staffed_agent(graph_store: GraphStore) -> tuple[Agent, Team, Task]:
    """An agent that went initialized → running, with two capabilities, in a team working on a task."""
    agent = Agent(name="api state agent", model="simulated", token_count=1230)
    caps = [Capability(name="api_data_analysis"), Capability(name="api_report_generation")]
    task = Task(title="api task")
    team = Team(name="api team", task_id=task.id, token_budget=8000)
    started = datetime.now(UTC) - timedelta(minutes=20)
    states = [
        AgentStateRecord(name=AgentLifecycleState.INITIALIZED, timestamp=started - timedelta(minutes=1)),
        AgentStateRecord(name=AgentLifecycleState.RUNNING, timestamp=started),
    ]
    batch = GraphBatch().add(agent, *caps, *states, task, team)
    batch.link(HasCapability(proficiency=0.85), agent.id, caps[0].id).link(
        HasCapability(proficiency=0.72), agent.id, caps[1].id
    )
    for state in states:
        batch.link(HasState(), agent.id, state.id)
    batch.link(MemberOf(role="analyst"), agent.id, team.id).link(WorksOn(), team.id, task.id)
    graph_store.write(batch)
    return agent, team, task


def test_agent_state_is_the_seed_response(graph_client: TestClient, staffed_agent: tuple[Agent, Team, Task]) -> None:
    agent, team, task = staffed_agent
    response = graph_client.get(f"/agents/{agent.id}/state", headers=auth("viewer"))
    assert response.status_code == 200, response.text
    state = AgentStateResponse.model_validate(response.json())
    assert (state.agent_id, state.name, state.current_state, state.previous_state) == (
        agent.id,
        agent.name,
        "running",
        "initialized",
    )
    assert [(c.name, c.proficiency) for c in state.capabilities] == [
        ("api_data_analysis", 0.85),
        ("api_report_generation", 0.72),
    ]
    assert (state.team_id, state.task_id, state.token_usage, state.token_budget) == (team.id, task.id, 1230, 8000)
    assert 20 * 60 - 5 <= state.time_in_state <= 20 * 60 + 120


def test_an_unknown_agent_is_404(graph_client: TestClient) -> None:
    response = graph_client.get("/agents/00000000-0000-4000-8000-000000000000/state", headers=auth("viewer"))
    assert response.status_code == 404


def test_agents_and_teams_are_listed(graph_client: TestClient, staffed_agent: tuple[Agent, Team, Task]) -> None:
    agent, team, _ = staffed_agent
    agents = graph_client.get("/agents", params={"limit": 500}, headers=auth("viewer")).json()
    assert any(a["agent_id"] == agent.id and a["status"] == "initialized" for a in agents)
    teams = graph_client.get("/teams", params={"limit": 500}, headers=auth("viewer")).json()
    assert any(t["id"] == team.id for t in teams)
    view = graph_client.get(f"/teams/{team.id}", headers=auth("viewer")).json()
    assert [(m["agent"]["id"], m["role"]) for m in view["members"]] == [(agent.id, "analyst")]
    assert graph_client.get("/teams/no-such-team", headers=auth("viewer")).status_code == 404


def test_graph_routes_need_a_key(graph_client: TestClient) -> None:
    assert graph_client.get("/agents").status_code == 401
    assert graph_client.get("/teams").status_code == 401


def test_workflows_list_the_search_path_with_triggers_and_deployments(
    make_app: Any, hook_workflows: HookWorkflows
) -> None:
    with TestClient(make_app()) as client:
        listed = client.get("/workflows", headers=auth("viewer")).json()
    by_id = {w["id"]: w for w in listed["workflows"]}
    deployed, undeployed, manual = (
        by_id[hook_workflows.deployed],
        by_id[hook_workflows.undeployed],
        by_id[hook_workflows.manual],
    )
    assert (
        deployed["deployment"] == hook_workflows.deployment
        and deployed["deployment_id"] == hook_workflows.deployment_id
    )
    assert deployed["webhook"] == f"/webhooks/{hook_workflows.deployed}"
    assert (
        deployed["triggers"][0]["type"] == "webhook"
        and deployed["triggers"][0]["configuration"]["maxBodyBytes"] == 2048
    )
    assert undeployed["deployment_id"] is None
    assert manual["webhook"] is None and manual["deployment_id"] is not None
    assert set(deployed["inputs"]) == {"ticket_id", "priority"}
    assert listed["invalid"] == []


def test_an_invalid_definition_in_the_search_path_is_reported(make_app: Any, hook_workflows: HookWorkflows) -> None:
    broken = hook_workflows.folder / "zz-broken.yaml"
    broken.write_text("id: broken-one\nsteps: []\ntriggers: []\n")
    try:
        with TestClient(make_app()) as client:
            listed = client.get("/workflows", headers=auth("viewer")).json()
    finally:
        broken.unlink()
    assert [i["path"] for i in listed["invalid"]] == [str(broken)]
    assert listed["invalid"][0]["errors"]


def test_runs_list_the_deployed_workflows_runs_with_their_state(make_app: Any, hook_workflows: HookWorkflows) -> None:
    with TestClient(make_app()) as client:
        accepted = client.post(f"/webhooks/{hook_workflows.deployed}", **signed({"ticket_id": "R-1"}))
        assert accepted.status_code == 202
        runs = client.get(
            "/runs", params={"workflow_id": hook_workflows.deployed, "limit": 200}, headers=auth("viewer")
        ).json()
        assert client.get("/runs").status_code == 401
    mine = [r for r in runs if r["id"] == accepted.json()["flow_run_id"]]
    assert len(mine) == 1
    assert mine[0]["workflow_id"] == hook_workflows.deployed and mine[0]["deployment"] == hook_workflows.deployment
    assert mine[0]["state_type"] == "SCHEDULED" and "webhook" in mine[0]["tags"]
    assert {r["workflow_id"] for r in runs} == {hook_workflows.deployed}
