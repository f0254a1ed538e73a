"""Against the real local Bolt server and Prefect server: synthetic history written through GraphStore, the
train_gnn flow end to end, its cron deployment, and a workflow whose agent step the recommender staffs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from support.graph_runs import empty
from support.run_services_support import services

from agentparty.flows import CompileOptions, WorkflowFailed, compile_workflow
from agentparty.gnn.data import GraphSnapshot
from agentparty.gnn.pipeline import extract, write_history
from agentparty.gnn.registry import ModelRegistry
from agentparty.gnn.synthetic import SyntheticHistory
from agentparty.models import WorkflowDefinition
from agentparty.models.config import GNNTrainingConfig, SyntheticDataConfig
from agentparty.models.run_history import task_id_for, team_id_for
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.run_documents import RunDocuments
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.tasks.agent import ModelAgentRunner

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def synthetic_graph(graph_store: GraphStore, history: SyntheticHistory) -> GraphStore:
    empty(graph_store.driver, graph_store.database)
    write_history(graph_store, history)
    return graph_store


def test_synthetic_history_round_trips_through_the_graph(
    synthetic_graph: GraphStore, history: SyntheticHistory, snapshot: GraphSnapshot
) -> None:
    exported = extract(synthetic_graph)
    assert exported.digest() == snapshot.digest(), "the graph export is the snapshot the generator meant to write"
    counts = {label: synthetic_graph.count(label) for label in ("Agent", "Capability", "Task", "Team")}
    assert counts == {"Agent": 50, "Capability": 20, "Task": 100, "Team": 30}
    write_history(synthetic_graph, history)  # the same seed again: MERGEs, nothing new
    assert {label: synthetic_graph.count(label) for label in counts} == counts
    assert synthetic_graph.count(rel_type="WORKED_WITH") == len(snapshot.worked_with)


@pytest.mark.slow
def test_the_training_flow_runs_end_to_end_and_its_deployment_is_scheduled(
    synthetic_graph: GraphStore, graph_settings: None, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from agentparty.cli.gnn import ensure_process_pool
    from agentparty.flows.train_gnn import train_gnn, training_deployment

    training = GNNTrainingConfig(num_epochs=15, save_path=str(tmp_path / "models"))
    result = train_gnn(training=training, truth_from=SyntheticDataConfig())
    assert result["promotion"]["promoted"], result["promotion"]
    assert [m["method"] for m in result["metrics"]] == [
        "ncn",
        "popularity",
        "logistic-regression",
        "adamic-adar",
        "ncn+adamic-adar",
    ]
    served = ModelRegistry(tmp_path, training).served()
    assert (
        served is not None and served.method == result["promotion"]["served"] and served.model_id == result["model_id"]
    )
    winner = max(result["metrics"], key=lambda m: m["selection_score"])
    assert served.selection["selection_score"] <= winner["selection_score"] + 1e-9
    assert result["metrics"][0]["recall_at_k"] is not None  # ground-truth columns, from truth_from
    records, _, _ = synthetic_graph.driver.execute_query(
        "MATCH (a:Agent) RETURN count(a) AS n, min(size(a.embeddings)) AS low, max(size(a.embeddings)) AS high",
        database_=synthetic_graph.database,
    )
    assert (records[0]["n"], records[0]["low"], records[0]["high"]) == (50, 128, 128), (
        "the champion's embeddings are in the graph"
    )
    champion = ModelRegistry(tmp_path, training).champion()
    assert champion is not None and champion.id == result["model_id"] and champion.snapshot_digest == result["snapshot"]

    asyncio.run(ensure_process_pool("agentparty-test"))
    deployment_id = training_deployment(cron="*/30 * * * *", timezone="Europe/Paris").apply(
        work_pool_name="agentparty-test"
    )

    async def published() -> tuple[Any, Any]:
        async with get_client() as client:
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["gnn-evaluation"]))
            )
            return artifacts, await client.read_deployment(deployment_id)

    artifacts, deployment = asyncio.run(published())
    markdown = artifacts[-1].data
    assert "| ncn |" in markdown and "logistic-regression" in markdown and "data:image/png;base64," in markdown
    assert f"Served: **{served.method}**" in markdown
    assert deployment.entrypoint == "agentparty.flows.train_gnn.train_gnn"
    assert deployment.work_pool_name == "agentparty-test"
    [schedule] = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("*/30 * * * *", "Europe/Paris")


def _recommended_workflow(formation: str = "recommended") -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "id": "staffed-by-recommender",
            "name": "Staffed by the recommender",
            "formationMethod": formation,
            "steps": [
                {
                    "id": "dig",
                    "type": "task",
                    "configuration": {"capability": "research", "prompt": "Find three sources."},
                }
            ],
            "triggers": [{"type": "manual"}],
            "errorHandling": {
                "retryAttempts": 0,
                "backoffStrategy": "fixed",
                "baseDelay": 0,
                "maxDelay": 0,
                "fallbackAction": "abort",
            },
        }
    )


def test_an_unstaffed_step_needs_a_recommending_formation_method() -> None:
    from pydantic import ValidationError

    with pytest.raises(
        ValidationError, match=r"steps 'dig' name no agent: set formationMethod to 'recommended' or 'auto'"
    ):
        _recommended_workflow("manual")


def test_the_recommender_staffs_an_agent_step_and_the_graph_records_it(
    synthetic_graph: GraphStore, tmp_path: Path, snapshot: GraphSnapshot
) -> None:
    from support.graph_runs import example_runner

    runner: ModelAgentRunner = example_runner(tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite")  # no relay: the events stay in the outbox for us to read
    options = CompileOptions(
        services=services(
            agent_runner=runner, recorder=GraphRecorder(synthetic_graph), home=tmp_path, events=EventBus(outbox)
        )
    )
    flow = compile_workflow(_recommended_workflow(), options=options)
    result = asyncio.run(flow(resume_key="staffed-run"))
    assert result.steps["dig"].status.value == "completed"
    [assembled] = [json.loads(row.value) for row in outbox.pending() if row.event_type == "team_assembled"]
    assert assembled["payload"]["formation_method"] == "recommended"
    assert assembled["payload"]["assembler_id"] == "agentparty.team-recommender"
    [(member, role)] = assembled["payload"]["agent_roles"].items()
    assert role == "research"

    staffing = RunDocuments(tmp_path, "teams").read("staffed-run")  # what a resume of this run reads
    assert staffing is not None
    assert '"fallback": true' in staffing and "no champion model yet" in staffing  # no model trained in this home
    records, _, _ = synthetic_graph.driver.execute_query(
        "MATCH (a:Agent)-[:MEMBER_OF]->(t:Team {id: $team}) MATCH (t)-[:ASSEMBLED_BY]->(s:SystemActor) "
        "OPTIONAL MATCH (a)-[h:HAS_CAPABILITY]->(:Capability {name: 'research'}) "
        "RETURN a.id AS agent, a.handle AS handle, t.formation_method AS formation, s.name AS assembler, h.usage_count AS uses",
        team=team_id_for("staffed-run"),
        database_=synthetic_graph.database,
    )
    [row] = records
    assert row["agent"] == member, "the agent the event announced is the one that worked"
    assert row["agent"] in snapshot.agents, "a synthetic agent (a real ad-hoc agent on `simulated`) did the work"
    assert row["handle"].startswith("synthetic-s42-")
    assert (row["formation"], row["assembler"]) == ("recommended", "team-recommender")
    assert row["uses"] is not None and row["uses"] >= 1, "the agent's research history grew by this run"
    assert task_id_for("staffed-run") not in snapshot.tasks


def test_without_a_graph_a_recommended_team_fails_the_run_clearly(tmp_path: Path) -> None:
    from support.graph_runs import example_runner

    options = CompileOptions(
        services=services(agent_runner=example_runner(tmp_path), recorder=None, home=tmp_path, events=None)
    )
    flow = compile_workflow(_recommended_workflow("auto"), options=options)
    with pytest.raises(WorkflowFailed, match="formationMethod 'auto' needs the results graph"):
        asyncio.run(flow(resume_key="no-graph"))


def test_the_cli_synthesises_and_recommends(graph_store: GraphStore, graph_settings: None) -> None:
    from typer.testing import CliRunner

    from agentparty.cli import app

    empty(graph_store.driver, graph_store.database)
    runner = CliRunner()
    synth = runner.invoke(
        app, ["gnn", "synth", "--agents", "20", "--capabilities", "8", "--tasks", "30", "--teams", "12", "--seed", "5"]
    )
    assert synth.exit_code == 0, synth.output
    assert "20 agents, 8 capabilities, 30 tasks, 12 teams" in synth.output
    assert graph_store.count("Agent") == 20
    recommended = runner.invoke(app, ["gnn", "recommend", "-c", "research", "-c", "writing", "--budget", "0", "--json"])
    assert recommended.exit_code == 0, recommended.output
    team = json.loads(recommended.output[recommended.output.index("{") :])
    assert team["fallback"] is True and team["note"].startswith("no champion model yet")
    assert team["members"] and all(m["handle"].startswith("synthetic-s5-") for m in team["members"])
    covered = {name for m in team["members"] for name in m["covers"]}
    assert covered | set(team["uncovered"]) == {"research", "writing"}
