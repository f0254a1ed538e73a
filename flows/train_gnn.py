"""``train_gnn``: the scheduled Prefect flow that keeps the team recommender current.

extract (graph → snapshot) → train (GraphSAGE, early stopping) → evaluate (the
model and every baseline on the same time split) → promote (save; crown it only
if it beats the champion on validation, then write its agent embeddings to
``Agent.embeddings`` in the graph). The evaluation table, the promotion
decision and a PNG of the training curves are published as a markdown artifact
(key ``gnn-evaluation``) on the flow run.

The flow is module-level, so deployments reference it by module path
(``agentparty.flows.train_gnn.train_gnn``, DESIGN.md §6); see
:func:`training_deployment` for the cron-scheduled one.
"""

from __future__ import annotations

import base64
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE as NO_CACHE
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from agentparty.gnn.data import GraphSnapshot
from agentparty.gnn.embeddings import TextEmbedder, default_embedder
from agentparty.gnn.evaluate import markdown_table
from agentparty.gnn.pipeline import (
    Candidate,
    extract,
    promote,
    publish_embeddings,
    synthetic_truth,
    train_candidate,
)
from agentparty.gnn.registry import ModelRegistry, Promotion
from agentparty.gnn.synthetic import GroundTruth
from agentparty.models.config import GNNTrainingConfig, SyntheticDataConfig
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.model_files import CURVES_FILE
from agentparty.runtime.run_recorder import configured_store
from agentparty.runtime.settings import get_settings

DEPLOYMENT_NAME = "scheduled"
FLOW_NAME = "train-gnn"
MIN_FINISHED_TEAMS = 3
"""Below this, ``gnn/split.py``'s time split has no validation or no test task: one to train on, one to pick the
served method by, one to report. Figures on a history this small are noise (a few runs); they firm up with tens."""


@task(name="extract-graph", cache_policy=NO_CACHE, persist_result=False)
def extract_graph(store: GraphStore) -> GraphSnapshot:
    snapshot = extract(store)
    get_run_logger().info(
        "snapshot %s: %d agents, %d capabilities, %d tasks, %d finished teams",
        snapshot.digest()[:12],
        len(snapshot.agents),
        len(snapshot.capabilities),
        len(snapshot.tasks),
        len(snapshot.teams),
    )
    return snapshot


@task(name="train-and-evaluate", cache_policy=NO_CACHE, persist_result=False)
def train_and_evaluate(
    snapshot: GraphSnapshot, training: GNNTrainingConfig, embedder: TextEmbedder, truth: GroundTruth | None
) -> Candidate:
    if len(snapshot.teams) < MIN_FINISHED_TEAMS:
        have = len(snapshot.teams)
        raise ValueError(
            f"the graph holds {have or 'no'} finished team{'' if have == 1 else 's'}: training needs at least "
            f"{MIN_FINISHED_TEAMS} (the time split sets the latest tasks aside, one to validate and one to test): "
            f"run {MIN_FINISHED_TEAMS - have} more workflow{'' if MIN_FINISHED_TEAMS - have == 1 else 's'} that "
            "finish, or `agentparty gnn synth`"
        )
    logger = get_run_logger()
    candidate = train_candidate(snapshot, training, embedder, truth)
    logger.info(
        "trained %d epochs (best %d), %.3f s/epoch on %s",
        len(candidate.run.curves),
        candidate.run.best_epoch,
        candidate.run.seconds_per_epoch,
        candidate.run.device,
    )
    return candidate


@task(name="promote", cache_policy=NO_CACHE, persist_result=False)
def promote_candidate(
    candidate: Candidate, registry: ModelRegistry, embedder: TextEmbedder, truth: GroundTruth | None, store: GraphStore
) -> Promotion:
    """Save the model; crown it if it beats the champion, and then write its agent embeddings to the graph."""
    promotion = promote(registry, candidate, embedder, truth)
    logger = get_run_logger()
    logger.info("%s: %s", "promoted" if promotion.promoted else "kept the champion", promotion.reason)
    if promotion.promoted:
        data = candidate.data
        written = publish_embeddings(store, candidate.run.model, data.snapshot, data.scaler, embedder)
        logger.info("wrote %d agent embeddings to the graph", written)
    return promotion


def evaluation_markdown(candidate: Candidate, promotion: Promotion, curves: bytes) -> str:
    png = base64.b64encode(curves).decode()
    card = candidate.card
    return "\n\n".join(
        [
            f"# GNN training {card.id if card else ''}",
            f"**{'Promoted to champion' if promotion.promoted else 'Not promoted'}**: {promotion.reason}. "
            f"Best baseline on validation: {promotion.best_baseline} ({_fmt(promotion.best_baseline_score)}). "
            f"Served: **{promotion.served or 'unchanged'}** (the selection column: every agent ranked for each "
            f"validation task, pooled over {candidate.data.config.validation_folds} time folds).",
            markdown_table(candidate.rows),
            f"Data snapshot `{candidate.data.digest[:16]}`, {len(candidate.run.curves)} epochs "
            f"(best {candidate.run.best_epoch}), "
            f"{candidate.run.seconds_per_epoch * 1000:.1f} ms per epoch on {candidate.run.device}.",
            f"![training curves](data:image/png;base64,{png})",
        ]
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@flow(name=FLOW_NAME, log_prints=False)
def train_gnn(
    training: GNNTrainingConfig | None = None,
    truth_from: SyntheticDataConfig | None = None,
    publish: bool = True,
) -> dict[str, Any]:
    """Extract the graph, train the configured model, rank it beside the baselines and ensembles, promote and serve the best.

    ``truth_from``: the SyntheticDataConfig the graph was synthesised from, to add the ground-truth columns
    (recall@k, nDCG@k) to the evaluation.
    """

    settings = get_settings()
    training = training or settings.gnn_training
    store = configured_store(settings)
    embedder = default_embedder(settings.home)
    registry = ModelRegistry(settings.home, training)
    snapshot = extract_graph(store)
    truth = synthetic_truth(truth_from, snapshot) if truth_from is not None else None
    candidate = train_and_evaluate(snapshot, training, embedder, truth)
    promotion = promote_candidate(candidate, registry, embedder, truth, store)
    if publish:
        curves = (registry.path(promotion.candidate) / CURVES_FILE).read_bytes()  # saved with the model
        create_markdown_artifact(
            key="gnn-evaluation",
            markdown=evaluation_markdown(candidate, promotion, curves),
            description="GNN evaluation",
        )
    return {
        "model_id": promotion.candidate,
        "promotion": promotion.model_dump(),
        "metrics": [row.as_dict() for row in candidate.rows],
        "snapshot": candidate.data.digest,
        "epochs": len(candidate.run.curves),
        "seconds_per_epoch": candidate.run.seconds_per_epoch,
    }


def training_deployment(cron: str | None = None, timezone: str | None = None, name: str = DEPLOYMENT_NAME) -> Any:
    """The cron-scheduled deployment of :func:`train_gnn` (module-path entrypoint; apply it to a process work pool)."""

    settings = get_settings()
    return train_gnn.to_deployment(
        name=name,
        schedule=Cron(cron or settings.gnn_schedule, timezone=timezone or settings.gnn_timezone),
        entrypoint_type=EntrypointType.MODULE_PATH,
        description="Nightly GNN training: extract → train → evaluate → promote.",
        tags=["agentparty", "gnn"],
    )
