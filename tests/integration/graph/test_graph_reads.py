"""Reads against the real local Bolt server: agent profile, team, task, candidates, streamed export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentparty.models.graph import (
    Agent,
    AgentStateRecord,
    Capability,
    HasCapability,
    HasState,
    MemberOf,
    Output,
    Requires,
    ResultedIn,
    Task,
    Team,
    WorksOn,
)
from agentparty.models.states import AgentLifecycleState
from agentparty.runtime.graph_reads import GraphReader
from agentparty.runtime.graph_store import GraphBatch, GraphStore


@pytest.fixture
def reader(graph_store: GraphStore) -> GraphReader:
    return GraphReader(graph_store)


def test_agent_profile_has_capabilities_and_ordered_state_history(reader: GraphReader) -> None:
    agent = Agent(name="profiled", model="simulated")
    caps = [Capability(name="summarisation"), Capability(name="data_analysis")]
    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    states = [
        AgentStateRecord(name=s, timestamp=t0 + timedelta(minutes=i))
        for i, s in enumerate(
            [AgentLifecycleState.INITIALIZED, AgentLifecycleState.RUNNING, AgentLifecycleState.COMPLETED]
        )
    ]
    batch = GraphBatch().add(agent, *caps, *reversed(states))
    batch.link(HasCapability(proficiency=0.9), agent.id, caps[0].id).link(
        HasCapability(proficiency=0.4), agent.id, caps[1].id
    )
    for state in states:
        batch.link(HasState(), agent.id, state.id)
    reader.store.write(batch)
    profile = reader.agent(agent.id)
    assert profile is not None and profile.agent == agent
    assert [(c.capability.name, c.proficiency) for c in profile.capabilities] == [
        ("data_analysis", 0.4),
        ("summarisation", 0.9),
    ]
    assert [s.name for s in profile.states] == [
        AgentLifecycleState.INITIALIZED,
        AgentLifecycleState.RUNNING,
        AgentLifecycleState.COMPLETED,
    ]
    assert reader.agent("00000000-0000-4000-8000-000000000000") is None


def test_team_and_task_views(reader: GraphReader) -> None:
    task = Task(title="report")
    team = Team(name="report team", task_id=task.id)
    lead, helper = Agent(name="lead", model="simulated"), Agent(name="helper", model="simulated")
    output = Output(step_id="draft", content="the report")
    batch = GraphBatch().add(task, team, lead, helper, output)
    batch.link(MemberOf(role="lead"), lead.id, team.id).link(MemberOf(role="support"), helper.id, team.id)
    batch.link(WorksOn(), team.id, task.id).link(ResultedIn(), task.id, output.id)
    reader.store.write(batch)
    view = reader.team(team.id)
    assert view is not None and view.task == task and view.outputs == [output]
    assert [(m.agent.name, m.role) for m in view.members] == [("helper", "support"), ("lead", "lead")]
    task_view = reader.task(task.id)
    assert task_view is not None and task_view.outputs == [output]


def test_candidates_rank_by_coverage_then_proficiency(reader: GraphReader) -> None:
    a, b = Capability(name="cand_cap_a"), Capability(name="cand_cap_b")
    both, strong_one, weak_one = (Agent(name=n, model="simulated") for n in ("both", "strong", "weak"))
    batch = GraphBatch().add(a, b, both, strong_one, weak_one)
    batch.link(HasCapability(proficiency=0.5), both.id, a.id).link(HasCapability(proficiency=0.5), both.id, b.id)
    batch.link(HasCapability(proficiency=0.95), strong_one.id, a.id).link(
        HasCapability(proficiency=0.2), weak_one.id, b.id
    )
    reader.store.write(batch)
    ranked = reader.candidates(["cand_cap_a", "cand_cap_b"])
    assert [c.agent.name for c in ranked] == ["both", "strong", "weak"]
    assert ranked[0].proficiencies == {"cand_cap_a": 0.5, "cand_cap_b": 0.5}


def test_export_streams_nodes_and_edges(reader: GraphReader) -> None:
    task, cap = Task(title="exported"), Capability(name="export_cap")
    reader.store.write(GraphBatch().add(task, cap).link(Requires(importance=0.7), task.id, cap.id))
    stream = reader.export()
    assert iter(stream) is stream, "the export is a generator, not a list"
    records = list(stream)
    assert any(r.kind == "node" and r.properties["id"] == task.id for r in records)
    edge = next(r for r in records if r.kind == "edge" and r.source == task.id)
    assert edge.label == "REQUIRES" and edge.target == cap.id and edge.properties["importance"] == 0.7
