"""Training on real history: keyless runs of the examples write the real graph, and the train_gnn flow trains on
that graph alone (no synthetic history), producing a model card with figures (``bench/real_history.py`` at scale)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.graph_runs import empty
from support.run_services_support import services

from agentparty.flows import CompileOptions, WorkflowFailed, compile_workflow
from agentparty.gnn.pipeline import extract
from agentparty.gnn.registry import ModelRegistry
from agentparty.models.config import GNNTrainingConfig
from agentparty.models.model_registry import DEFAULT_MODEL_REGISTRY
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import BudgetLedger
from agentparty.runtime.documents import load_workflow
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.providers.simulated import SimulatedProvider, SimulatedSettings
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.tasks.agent import ModelAgentRunner
from agentparty.tasks.templates import TemplateRegistry

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RUNS: list[tuple[str, dict[str, Any]]] = [
    ("nightly-digest.yaml", {"channel": "engineering", "max_items": 3}),
    ("webhook-triage.yaml", {"ticket_id": "T-1", "subject": "Cannot log in", "body": "Password refused."}),
    ("nightly-digest.yaml", {"channel": "support", "max_items": 1}),
    (
        "webhook-triage.yaml",
        {"ticket_id": "T-2", "subject": "Slow search", "body": "Ten seconds.", "customer_tier": "pro"},
    ),
    ("nightly-digest.yaml", {"channel": "ops", "max_items": 5}),
    (
        "webhook-triage.yaml",
        {"ticket_id": "T-3", "subject": "Outage", "body": "EU times out.", "customer_tier": "enterprise"},
    ),
]


def _faulty_runner(home: Path) -> ModelAgentRunner:
    """Ad-hoc agents on the simulated provider with its fault knob on: some calls fail, the engine retries, and what
    still fails is recorded as a real provider's failure would be."""
    router = ModelRouter(
        registry=DEFAULT_MODEL_REGISTRY,
        providers={"simulated": SimulatedProvider(SimulatedSettings(failure_rate=0.3, seed=3))},
        breaker_store=SqliteBreakerStore(home / "model-breakers.sqlite"),
        ledger=BudgetLedger(home / "budgets.sqlite"),
    )
    return ModelAgentRunner(router=router, templates=TemplateRegistry.at(home))


def _run_examples(store: GraphStore, home: Path) -> list[str]:
    statuses: list[str] = []
    runner = _faulty_runner(home)
    for i, (name, inputs) in enumerate(RUNS):
        run_services = services(
            agent_runner=runner,
            recorder=GraphRecorder(store),
            events=None,
            home=home,
            breakers=SqliteBreakerStore(home / f"breakers-{i}.sqlite"),
        )
        path = EXAMPLES / name
        flow = compile_workflow(load_workflow(path), source=path, options=CompileOptions(services=run_services))
        try:
            result = asyncio.run(flow(inputs=inputs))
        except WorkflowFailed as exc:
            result = exc.result
        statuses.append(result.status.value)
    return statuses


def test_the_training_flow_trains_on_what_runs_wrote_alone(
    graph_store: GraphStore, graph_settings: None, tmp_path: Path
) -> None:
    from agentparty.flows.train_gnn import train_gnn

    empty(graph_store.driver, graph_store.database)
    training = GNNTrainingConfig(num_epochs=8, save_path=str(tmp_path / "models"))
    with pytest.raises(ValueError, match=r"holds no finished teams: training needs at least 3 .* run 3 more workflows"):
        train_gnn(training=training, publish=False)

    statuses = _run_examples(graph_store, tmp_path)
    assert len(statuses) == len(RUNS)
    snapshot = extract(graph_store)
    assert len(snapshot.teams) >= len(RUNS), "every run (and each enrich-ticket subgraph run) left a finished team"
    assert {a["name"].split(" ")[0] for a in snapshot.agents.values()} >= {"summariser", "triager"}
    assert all(team.task_id in snapshot.tasks for team in snapshot.teams)
    assert any(team.members for team in snapshot.teams), "the agents that worked are the teams' members"

    result = train_gnn(training=training, publish=False)
    assert result["snapshot"] == snapshot.digest(), "the flow trained on the graph the runs wrote"
    card = ModelRegistry(tmp_path, training).card(result["model_id"])
    assert card.snapshot_digest == snapshot.digest() and card.epochs >= 1
    assert card.validation_score is not None, f"no validation figure on the runs' history: {card.metrics}"
    assert set(card.metrics) >= {"popularity", "logistic-regression", "adamic-adar"}, "the baselines beside it"
    scored = [m for m in card.metrics.values() if m.get("val_suitability_auc") is not None]
    assert len(scored) == len(card.metrics), f"every method is scored on the runs' validation teams: {card.metrics}"
    assert all(m.get("truth_suitability_auc") is None for m in card.metrics.values()), "no synthetic truth was used"
