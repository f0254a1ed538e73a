"""A workflow run, written into the real local Bolt server step by step: the exact subgraph, replays, history."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from support.graph_runs import census, empty, example_runner
from support.run_services_support import services
from support.workflow_docs import EXAMPLES

from agentparty.flows import CompileOptions, WorkflowResult, compile_workflow
from agentparty.models.graph import capability_id, stable_id
from agentparty.models.run_history import PROFICIENCY_PRIOR, RELIABILITY_RATE
from agentparty.runtime.documents import load_workflow
from agentparty.runtime.graph_reads import GraphReader
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.tasks.agent import ModelAgentRunner

pytestmark = pytest.mark.usefixtures("prefect_server")

REPORT = EXAMPLES / "research-report.yaml"


def run_report(store: GraphStore, runner: ModelAgentRunner, resume_key: str, user: str = "ana") -> WorkflowResult:
    options = CompileOptions(services=services(agent_runner=runner, recorder=GraphRecorder(store), user_id=user))
    flow = compile_workflow(load_workflow(REPORT), source=REPORT, options=options)
    return asyncio.run(flow(inputs={"min_sources": 1}, resume_key=resume_key))


def tool_use(store: GraphStore, key: str) -> dict[tuple[str, str, str], int]:
    """Calls per (tool, its source, step slot) of the run, from its USED_TOOL links."""
    records, _, _ = store.driver.execute_query(
        "MATCH (:Agent)-[r:USED_TOOL]->(t:Tool) WHERE r.task_id = $task "
        "RETURN t.name AS name, t.source AS source, r.step_id AS slot, r.calls AS calls",
        task=stable_id("task", key),
        database_=store.database,
    )
    return {(r["name"], r["source"], r["slot"]): r["calls"] for r in records}


def one(store: GraphStore, query: str, **params: Any) -> Any:
    records, _, _ = store.driver.execute_query(query, params, database_=store.database)
    assert len(records) == 1, records
    return records[0]


@pytest.fixture
def clean_graph(graph_store: GraphStore) -> GraphStore:
    empty(graph_store.driver, graph_store.database)
    return graph_store


# Research report, coverage enough (min_sources 1): plan, 3 research items, coverage, draft, review run;
# flag_gaps is skipped. Agents: planner and reviewer ad hoc, researcher and writer from the example templates.
EXPECTED = {
    "Task": 1,
    "Team": 1,
    "User": 1,
    "SystemActor": 2,  # the workflow engine (assembler) and governance (approver)
    "Agent": 4,
    "AgentTemplate": 2,
    "TemplateVersion": 2,
    "Capability": 5,  # web_research, data_analysis (researcher); report_generation, summarisation (writer); research
    "AgentState": 18,  # 6 engagements (plan, research x3, draft, review) x initialized, running, completed
    "Output": 7,  # every completed task slot; the handler's too
    "REQUESTED_BY": 1,
    "WORKS_ON": 1,
    "ASSEMBLED_BY": 1,
    "REQUIRES": 4,  # data_analysis, report_generation (steps); research, web_research (task_analyzed infers them)
    "MEMBER_OF": 4,
    "INSTANTIATES": 2,
    "HAS_VERSION": 2,
    "DEFINES_CAPABILITIES": 4,
    "HAS_CAPABILITY": 4,
    "HAS_STATE": 18,
    "TRANSITIONED_BY": 12,
    "CREATED": 6,
    "RESULTED_IN": 7,
    "WORKED_WITH": 6,  # every pair of the 4 members, once
    "Tool": 2,  # search_docs: the researchers' Python tool, and the reviewer's from the MCP server "docs"
    "USED_TOOL": 4,  # one per agent, tool and slot: 3 research items, review
}


# The simulated model's tool calls (deterministic per prompt): 7 in all, as many as the run's tool_called events.
TOOL_CALLS = {
    ("search_docs", "python", "research[history]"): 2,
    ("search_docs", "python", "research[current methods]"): 1,
    ("search_docs", "python", "research[open problems]"): 2,
    ("search_docs", "mcp", "review"): 2,
}


def test_a_run_writes_exactly_its_subgraph_and_a_replay_changes_nothing(
    clean_graph: GraphStore, tmp_path: Path
) -> None:
    runner = example_runner(tmp_path)
    key = f"report-{uuid.uuid4()}"
    result = run_report(clean_graph, runner, key)
    assert result.steps["draft"].status.value == "completed" and result.steps["flag_gaps"].status.value == "skipped"
    assert census(clean_graph.driver, clean_graph.database) == EXPECTED
    assert tool_use(clean_graph, key) == TOOL_CALLS

    task = GraphReader(clean_graph).task(stable_id("task", key))
    assert task is not None and task.task.status.value == "completed" and task.task.token_usage == result.tokens > 0
    assert task.task.title == "Research report" and task.task.required_capabilities == [
        "data_analysis",
        "report_generation",
        "research",
        "web_research",
    ]
    assert sorted(o.step_id for o in task.outputs) == [
        "coverage",
        "draft",
        "plan",
        "research[current methods]",
        "research[history]",
        "research[open problems]",
        "review",
    ]
    draft = next(o for o in task.outputs if o.step_id == "draft")
    assert draft.format == "json" and draft.model == "simulated" and draft.simulated and draft.output_tokens > 0
    team = GraphReader(clean_graph).team(stable_id("team", key))
    assert team is not None and team.team.status.value == "completed" and team.team.performance_score == 1.0
    assert sorted((m.agent.name.split(" ")[0], m.role) for m in team.members) == [
        ("planner", "plan"),
        ("researcher@1.0.0", "data_analysis"),
        ("reviewer", "review"),
        ("writer@1.0.0", "report_generation"),
    ]

    # A replay of the run (its resume: every step reused from persisted results) writes the same ids: no change,
    # and the team's outcome is not counted again.
    again = run_report(clean_graph, runner, key)
    assert all(s.cached for s in again.steps.values() if s.status.value == "completed")
    assert census(clean_graph.driver, clean_graph.database) == EXPECTED
    assert tool_use(clean_graph, key) == TOOL_CALLS, "a replay sets the same counts, never adds to them"
    assert one(clean_graph, "MATCH ()-[r:WORKED_WITH]->() RETURN max(r.task_count) AS n")["n"] == 1


def test_state_chain_records_each_transition_with_its_approver(clean_graph: GraphStore, tmp_path: Path) -> None:
    runner = example_runner(tmp_path)
    key = f"report-{uuid.uuid4()}"
    run_report(clean_graph, runner, key)
    writer_id = one(clean_graph, "MATCH (a:Agent) WHERE a.name STARTS WITH 'writer' RETURN a.id AS id")["id"]
    profile = GraphReader(clean_graph).agent(writer_id)
    assert profile is not None
    assert [s.name.value for s in profile.states] == ["initialized", "running", "completed"]
    assert profile.agent.status.value == "completed"
    running = profile.states[1]
    assert running.token_count > 0, "the tokens spent while running are recorded when the agent leaves the state"
    approvals = one(
        clean_graph,
        "MATCH (a:Agent {id: $id})-[t:TRANSITIONED_BY]->(g:SystemActor) "
        "RETURN collect(t.state_id) AS states, collect(DISTINCT g.name) AS by",
        id=writer_id,
    )
    assert approvals["by"] == ["governance"] and set(approvals["states"]) == {s.id for s in profile.states[1:]}


def test_history_accumulates_across_runs_by_the_documented_rules(clean_graph: GraphStore, tmp_path: Path) -> None:
    runner = example_runner(tmp_path)
    first, second = (
        run_report(clean_graph, runner, f"a-{uuid.uuid4()}"),
        run_report(clean_graph, runner, f"b-{uuid.uuid4()}"),
    )
    counts = census(clean_graph.driver, clean_graph.database)
    assert counts["Agent"] == 4 and counts["Task"] == 2 and counts["Team"] == 2 and counts["WORKED_WITH"] == 6
    pairs = one(
        clean_graph, "MATCH ()-[r:WORKED_WITH]->() RETURN collect(r.task_count) AS n, collect(r.success_score) AS s"
    )
    assert pairs["n"] == [2] * 6 and pairs["s"] == [1.0] * 6

    researcher = one(
        clean_graph,
        "MATCH (a:Agent)-[h:HAS_CAPABILITY]->(c:Capability {id: $cap}) WHERE a.name STARTS WITH 'researcher' "
        "RETURN a.reliability_score AS r, a.token_count AS t, h.proficiency AS p, h.usage_count AS u, h.token_efficiency AS te",
        cap=capability_id("data_analysis"),
    )
    # Each run: 3 research slots, all completed. proficiency p <- (p (u + PRIOR) + k) / (u + PRIOR + n), from 0.5.
    p1 = (0.5 * PROFICIENCY_PRIOR + 3) / (PROFICIENCY_PRIOR + 3)
    p2 = (p1 * (3 + PROFICIENCY_PRIOR) + 3) / (3 + PROFICIENCY_PRIOR + 3)
    assert researcher["u"] == 6 and researcher["p"] == pytest.approx(p2)
    r1 = (1 - RELIABILITY_RATE) * 0.5 + RELIABILITY_RATE
    assert researcher["r"] == pytest.approx((1 - RELIABILITY_RATE) * r1 + RELIABILITY_RATE)
    research_tokens = sum(item.tokens for run in (first, second) for item in run.steps["research"].items or [])
    assert researcher["t"] == research_tokens and researcher["te"] == pytest.approx(research_tokens / 6)
    untouched = one(
        clean_graph,
        "MATCH (a:Agent)-[h:HAS_CAPABILITY]->(c:Capability {name: 'web_research'}) RETURN h.proficiency AS p, h.usage_count AS u",
    )
    assert untouched["p"] == 0.5 and untouched["u"] == 0, "a capability no step exercised keeps its proficiency"


def test_a_failed_agent_step_records_its_failed_states_and_team_score(clean_graph: GraphStore, tmp_path: Path) -> None:
    from agentparty.flows import WorkflowFailed
    from agentparty.models import WorkflowDefinition
    from agentparty.runtime.providers.simulated import SimulatedProvider, SimulatedSettings

    runner = example_runner(tmp_path)
    runner.router.providers["simulated"] = SimulatedProvider(SimulatedSettings(failure_rate=1.0))
    definition = WorkflowDefinition.model_validate(
        {
            "id": "doomed",
            "name": "Doomed",
            "steps": [
                {"id": "ok", "type": "task", "configuration": {"handler": "support.step_handlers:number"}},
                {
                    "id": "ask",
                    "type": "task",
                    "configuration": {"agent": "writer", "prompt": "hi", "dependsOn": ["ok"]},
                },
            ],
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 1, "backoffStrategy": "fixed", "baseDelay": 0},
        }
    )
    key = f"doomed-{uuid.uuid4()}"
    options = CompileOptions(services=services(agent_runner=runner, recorder=GraphRecorder(clean_graph), user_id="ana"))
    with pytest.raises(WorkflowFailed):
        asyncio.run(compile_workflow(definition, options=options)(resume_key=key))
    states = one(
        clean_graph,
        "MATCH (a:Agent)-[:HAS_STATE]->(s:AgentState) RETURN a.status AS status, count(s) AS n, collect(s.name) AS names",
    )
    # initialized, running, failed (attempt 1), running, failed (attempt 2): both attempts, once each
    assert (
        states["status"] == "failed"
        and states["n"] == 5
        and sorted(states["names"]) == sorted(["initialized", "running", "failed", "running", "failed"])
    )
    team = one(
        clean_graph,
        "MATCH (t:Team {id: $id}) RETURN t.status AS s, t.performance_score AS p",
        id=stable_id("team", key),
    )
    assert team["s"] == "failed" and team["p"] == 0.5  # 1 of 2 task slots completed
    assert census(clean_graph.driver, clean_graph.database)["Output"] == 1


def test_concurrent_run_endings_on_the_same_agents_lose_no_update(clean_graph: GraphStore) -> None:
    """Eight teams of the same two agents finish at once: every outcome lands exactly once (no lost update)."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime

    from agentparty.models.graph import Agent, Capability, HasCapability, Team
    from agentparty.runtime.graph_store import GraphBatch
    from agentparty.runtime.run_recorder import Outcome, write_finished

    a, b = Agent(name="a", model="simulated"), Agent(name="b", model="simulated")
    cap = Capability(id=capability_id("x"), name="x")
    teams = [Team(name=f"t{i}") for i in range(8)]
    setup = GraphBatch().add(a, b, cap, *teams)
    setup.link(HasCapability(proficiency=0.5), a.id, cap.id)
    clean_graph.write(setup)
    scores = [i / 7 for i in range(8)]

    def finish(i: int) -> bool:
        outcome = Outcome(
            team_id=teams[i].id,
            at=datetime.now(UTC),
            pairs=[{"a": a.id, "b": b.id, "score": scores[i]}],
            capabilities=[{"agent": a.id, "capability": cap.id, "used": 1, "completed": 1, "tokens": 10}],
            agents=[{"agent": a.id, "share": 1.0, "tokens": 10}],
        )
        return write_finished(clean_graph, GraphBatch(), outcome, f"team {i}")

    with ThreadPoolExecutor(8) as pool:
        applied = list(pool.map(finish, range(8)))
    assert applied == [True] * 8
    assert [finish(i) for i in range(8)] == [False] * 8, "a second ending of the same team is not counted"
    pair = one(
        clean_graph,
        "MATCH (:Agent {id: $a})-[r:WORKED_WITH]->(:Agent {id: $b}) RETURN r.task_count AS n, r.success_score AS s",
        a=a.id,
        b=b.id,
    )
    assert pair["n"] == 8 and pair["s"] == pytest.approx(sum(scores) / 8)
    skill = one(
        clean_graph,
        "MATCH (x:Agent {id: $a})-[h:HAS_CAPABILITY]->() RETURN h.usage_count AS u, x.token_count AS t",
        a=a.id,
    )
    assert skill["u"] == 8 and skill["t"] == 80
