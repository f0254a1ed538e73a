"""Tasks and teams move through their state machines in the real local Bolt server (checked with the neo4j driver):
a real run, a failed run, a resumed one, a late write after the end, endings racing each other."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.graph_runs import empty, example_runner
from support.run_services_support import services
from support.workflow_docs import EXAMPLES

from agentparty.flows import CompileOptions, WorkflowFailed, compile_workflow
from agentparty.models import WorkflowDefinition
from agentparty.models.graph import capability_id, stable_id
from agentparty.models.run_results import StepStatus, WorkflowResult
from agentparty.models.states import TASK_MACHINE, TEAM_MACHINE, TaskStatus, TeamStatus
from agentparty.runtime.documents import load_workflow
from agentparty.runtime.graph_store import GraphBatch, GraphStore
from agentparty.runtime.run_recorder import GraphRecorder, RunGraph

REPORT = EXAMPLES / "research-report.yaml"
TASK_PATH = ["submitted", "analyzed", "assigned", "in_progress"]
DOOMED = {
    "id": "doomed",
    "name": "Doomed",
    "steps": [{"id": "ask", "type": "task", "configuration": {"agent": "writer", "prompt": "hi"}}],
    "triggers": [{"type": "manual"}],
    "errorHandling": {"retryAttempts": 1, "backoffStrategy": "fixed", "baseDelay": 0},
}


@pytest.fixture
def clean_graph(graph_store: GraphStore) -> GraphStore:
    empty(graph_store.driver, graph_store.database)
    return graph_store


def record(store: GraphStore, label: str, node_id: str) -> dict[str, Any]:
    records, _, _ = store.driver.execute_query(
        f"MATCH (n:{label} {{id: $id}}) RETURN properties(n) AS p", id=node_id, database_=store.database
    )
    assert len(records) == 1, records
    return dict(records[0]["p"])


def legal(machine: Any, history: list[str]) -> bool:
    for source, target in itertools.pairwise(history):
        machine.check(source, target)
    return True


@pytest.mark.usefixtures("prefect_server")
def test_a_real_run_moves_its_task_and_team_through_every_state(clean_graph: GraphStore, tmp_path: Path) -> None:
    key = f"report-{uuid.uuid4()}"
    options = CompileOptions(
        services=services(agent_runner=example_runner(tmp_path), recorder=GraphRecorder(clean_graph), user_id="ana")
    )
    flow = compile_workflow(load_workflow(REPORT), source=REPORT, options=options)
    result = asyncio.run(flow(inputs={"min_sources": 1}, resume_key=key))
    assert result.status is StepStatus.COMPLETED, result.reason

    task = record(clean_graph, "Task", stable_id("task", key))
    assert task["status"] == "completed" and task["status_history"] == [*TASK_PATH, "completed"]
    assert task["completed_at"] is not None and task["estimated_completion"] is not None
    assert task["completed_at"].to_native() >= task["created_at"].to_native()
    team = record(clean_graph, "Team", stable_id("team", key))
    assert team["status"] == "completed" and team["status_history"] == ["forming", "active", "completed"]

    # task_analyzed's analysis on the REQUIRES edges: the steps' capabilities for certain, research inferred
    records, _, _ = clean_graph.driver.execute_query(
        "MATCH (:Task {id: $id})-[r:REQUIRES]->(c:Capability) RETURN c.id AS c, r.importance AS i",
        id=stable_id("task", key),
        database_=clean_graph.database,
    )
    importance = {r["c"]: r["i"] for r in records}
    assert importance[capability_id("data_analysis")] == importance[capability_id("report_generation")] == 1.0
    assert 0.4 <= importance[capability_id("research")] < 1.0
    assert len(task["required_capabilities"]) == len(importance)

    # the same run resumed (every step reused): nothing moves backwards, nothing is appended
    asyncio.run(flow(inputs={"min_sources": 1}, resume_key=key))
    again = record(clean_graph, "Task", stable_id("task", key))
    assert again["status_history"] == task["status_history"] and again["completed_at"] == task["completed_at"]


@pytest.mark.usefixtures("prefect_server")
def test_a_failed_run_ends_failed_and_its_resume_picks_the_task_up_again(
    clean_graph: GraphStore, tmp_path: Path
) -> None:
    from agentparty.runtime.providers.simulated import SimulatedProvider, SimulatedSettings

    runner = example_runner(tmp_path)
    simulated = runner.router.providers["simulated"]
    runner.router.providers["simulated"] = SimulatedProvider(SimulatedSettings(failure_rate=1.0))
    key = f"doomed-{uuid.uuid4()}"
    options = CompileOptions(services=services(agent_runner=runner, recorder=GraphRecorder(clean_graph), user_id="ana"))
    flow = compile_workflow(WorkflowDefinition.model_validate(DOOMED), options=options)
    with pytest.raises(WorkflowFailed):
        asyncio.run(flow(resume_key=key))
    task = record(clean_graph, "Task", stable_id("task", key))
    team = record(clean_graph, "Team", stable_id("team", key))
    assert task["status"] == "failed" and task["status_history"] == [*TASK_PATH, "failed"]
    assert team["status"] == "failed" and legal(TEAM_MACHINE, team["status_history"])

    runner.router.providers["simulated"] = simulated  # the provider is back: the resume completes
    result = asyncio.run(flow(resume_key=key))
    assert result.status is StepStatus.COMPLETED, result.reason
    task = record(clean_graph, "Task", stable_id("task", key))
    assert task["status_history"] == [*TASK_PATH, "failed", "in_progress", "completed"]
    team = record(clean_graph, "Team", stable_id("team", key))
    assert team["status"] == "completed" and legal(TEAM_MACHINE, team["status_history"])
    assert legal(TASK_MACHINE, task["status_history"])


def result_of(status: StepStatus) -> WorkflowResult:
    return WorkflowResult(workflow_id="doomed", workflow_name="Doomed", status=status)


def test_a_late_write_cannot_move_a_completed_task_back(clean_graph: GraphStore) -> None:
    run = RunGraph(WorkflowDefinition.model_validate(DOOMED), f"late-{uuid.uuid4()}", "ana")
    clean_graph.write(run.started())
    clean_graph.write(run.finished(result_of(StepStatus.COMPLETED))[0])
    done = record(clean_graph, "Task", run.task_id)
    clean_graph.write(run.started())  # a stale start (a duplicate of the run) asks for in_progress
    clean_graph.write(run.finished(result_of(StepStatus.FAILED))[0])  # and a late ending for failed
    clean_graph.write(GraphBatch().move(run.move_team(TeamStatus.ACTIVE)))
    after = record(clean_graph, "Task", run.task_id)
    assert after["status"] == "completed" and after["status_history"] == done["status_history"]
    assert after["completed_at"] == done["completed_at"]
    assert record(clean_graph, "Team", run.team_id)["status_history"] == ["forming", "active", "completed"]


def test_endings_racing_each_other_make_exactly_one_move(clean_graph: GraphStore) -> None:
    """Six writers end the same in-progress task at once, three as completed and three as failed: one wins, the
    others find it ended (failed → completed and completed → failed are not in the machine) and leave it."""
    run = RunGraph(WorkflowDefinition.model_validate(DOOMED), f"race-{uuid.uuid4()}", "ana")
    clean_graph.write(run.started())
    targets = [TaskStatus.COMPLETED, TaskStatus.FAILED] * 3
    with ThreadPoolExecutor(len(targets)) as pool:
        list(pool.map(lambda t: clean_graph.write(GraphBatch().move(run.move_task(t))), targets))
    task = record(clean_graph, "Task", run.task_id)
    assert task["status_history"][:4] == TASK_PATH and len(task["status_history"]) == 5
    assert task["status"] == task["status_history"][-1] in {"completed", "failed"}
