"""Extract → train → evaluate → promote, as plain functions (the Prefect flow and the CLI call these).

Each step takes and returns ordinary objects, so the flow's tasks are thin and
a test or a notebook can run the same pipeline without a server.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from agentparty.gnn.baselines import CommonNeighbours, LogisticRegressionBaseline, Popularity
from agentparty.gnn.data import AGENT, FeatureScaler, GraphSnapshot, build_tensors
from agentparty.gnn.embeddings import TextEmbedder, default_embedder
from agentparty.gnn.evaluate import MethodMetrics, evaluate
from agentparty.gnn.model import TeamGNN
from agentparty.gnn.recommend import Recommender, TeamRecommendation
from agentparty.gnn.registry import ModelCard, ModelRegistry, Promotion, beats, new_model_id
from agentparty.gnn.scoring import Method
from agentparty.gnn.synthetic import GroundTruth, SyntheticHistory, generate
from agentparty.gnn.train import GNNMethod, PreparedData, TrainingRun, architecture, new_model, prepare, train_model
from agentparty.models.config import GNNTrainingConfig, SyntheticDataConfig
from agentparty.models.graph import Task
from agentparty.runtime.graph_reads import GraphReader
from agentparty.runtime.graph_store import GraphBatch, GraphStore
from agentparty.runtime.run_recorder import configured_store
from agentparty.runtime.settings import get_settings

if TYPE_CHECKING:
    from agentparty.runtime.settings import Settings

WRITE_CHUNK = 5_000


def extract(store: GraphStore) -> GraphSnapshot:
    return GraphSnapshot.from_records(GraphReader(store).export())


def write_history(store: GraphStore, history: SyntheticHistory) -> tuple[int, int]:
    """Write the synthetic history through GraphStore: nodes first, then edges, in chunks (idempotent MERGEs)."""
    batch = history.batch
    for start in range(0, len(batch.nodes), WRITE_CHUNK):
        store.write(GraphBatch(nodes=batch.nodes[start : start + WRITE_CHUNK]), what="synthetic history nodes")
    for start in range(0, len(batch.edges), WRITE_CHUNK):
        store.write(GraphBatch(edges=batch.edges[start : start + WRITE_CHUNK]), what="synthetic history edges")
    return len(batch.nodes), len(batch.edges)


def synthesise(store: GraphStore, config: SyntheticDataConfig, model: str = "simulated") -> SyntheticHistory:
    history = generate(config, model=model)
    write_history(store, history)
    return history


def fitted_baselines(data: PreparedData) -> list[Method]:
    train = data.labelled["train"]
    logistic = LogisticRegressionBaseline(seed=data.config.random_seed).fit(
        data.graphs["train"],
        data.history("train"),
        train.suit_agent,
        train.suit_task,
        train.suit_label,
        train.pair_a,
        train.pair_b,
        train.pair_label,
    )
    return [Popularity(), logistic, CommonNeighbours()]


@dataclass
class Candidate:
    """A trained model with its evaluation and the baselines' on the same split."""

    data: PreparedData
    run: TrainingRun
    metrics: MethodMetrics
    baselines: list[MethodMetrics]
    embedder: str
    card: ModelCard | None = None
    promotion: Promotion | None = None

    @property
    def rows(self) -> list[MethodMetrics]:
        return [self.metrics, *self.baselines]

    def best_baseline(self) -> MethodMetrics | None:
        scored = [b for b in self.baselines if not math.isnan(b.validation_score)]
        return max(scored, key=lambda b: b.validation_score) if scored else None


def train_candidate(
    snapshot: GraphSnapshot,
    config: GNNTrainingConfig,
    embedder: TextEmbedder,
    truth: GroundTruth | None = None,
    on_epoch: Any = None,
) -> Candidate:
    data = prepare(snapshot, config, embedder)
    run = train_model(data, on_epoch=on_epoch)
    metrics = evaluate(GNNMethod(run.model, data.scaler), data, truth)
    baselines = [evaluate(method, data, truth) for method in fitted_baselines(data)]
    return Candidate(data, run, metrics, baselines, embedder.name)


def curves_png(run: TrainingRun) -> bytes:
    import matplotlib  # deferred: matplotlib loads only to draw training curves

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # deferred: matplotlib loads only to draw training curves

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = [e.epoch for e in run.curves]
    axis.plot(epochs, [e.train_loss for e in run.curves], label="train loss")
    axis.plot(epochs, [e.val_loss for e in run.curves], label="validation loss")
    axis.axvline(run.best_epoch, color="grey", linestyle=":", label=f"best epoch {run.best_epoch}")
    axis.set_xlabel("epoch")
    axis.set_ylabel("BCE (both heads)")
    axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def model_card(candidate: Candidate, now: datetime | None = None) -> ModelCard:
    best = candidate.best_baseline()
    data, run = candidate.data, candidate.run
    return ModelCard(
        id=new_model_id(data.digest, now),
        created_at=now or datetime.now(UTC),
        config=data.config.model_dump(),
        snapshot_digest=data.digest,
        embedder=candidate.embedder,
        scaler_mean=data.scaler.mean,
        scaler_std=data.scaler.std,
        metrics={row.method: row.as_dict() for row in candidate.rows},
        validation_score=_number(candidate.metrics.validation_score),
        best_baseline=best.method if best else None,
        best_baseline_score=_number(best.validation_score) if best else None,
        epochs=len(run.curves),
        best_epoch=run.best_epoch,
        seconds_per_epoch=run.seconds_per_epoch,
        device=run.device,
        curves=[{"epoch": e.epoch, "train_loss": e.train_loss, "val_loss": e.val_loss} for e in run.curves],
    )


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def load_model(registry: ModelRegistry, card: ModelCard, data: PreparedData) -> TeamGNN:
    model = new_model(architecture(card.training_config()))
    model.materialise(data.graphs["train"].data)
    model.load_state_dict(registry.load_state(card.id))
    model.eval()
    return model


def rescore(
    registry: ModelRegistry,
    card: ModelCard,
    snapshot: GraphSnapshot,
    config: GNNTrainingConfig,
    embedder: TextEmbedder,
    truth: GroundTruth | None = None,
) -> MethodMetrics:
    """A saved model's metrics on a snapshot, scaled with its own scaler (what "loading reproduces its metrics" checks)."""
    data = prepare(snapshot, config, embedder, scaler=card.scaler())
    return evaluate(GNNMethod(load_model(registry, card, data), data.scaler), data, truth)


def promote(
    registry: ModelRegistry, candidate: Candidate, embedder: TextEmbedder, truth: GroundTruth | None = None
) -> Promotion:
    """Save the candidate; crown it if it beats the champion re-scored on the candidate's data."""
    card = candidate.card or model_card(candidate)
    registry.save(card, candidate.run.model, curves_png(candidate.run))
    candidate.card = card
    champion = registry.champion()
    champion_score: float | None = None
    if champion is not None:
        if champion.embedder == card.embedder:
            champion_score = _number(
                rescore(
                    registry, champion, candidate.data.snapshot, candidate.data.config, embedder, truth
                ).validation_score
            )
        else:
            champion_score = champion.validation_score
    promoted = (
        beats(card.validation_score, champion_score) if champion is not None else card.validation_score is not None
    )
    if champion is None and card.validation_score is None:
        reason = "no validation figure (too few validation teams): not promoted"
    elif champion is None:
        reason = "first model with a validation figure"
    elif promoted:
        reason = (
            f"validation score {card.validation_score:.4f} beats the champion's {_fmt(champion_score)} on the same data"
        )
    else:
        reason = (
            f"validation score {_fmt(card.validation_score)} does not beat the champion's {_fmt(champion_score)} "
            "on the same data"
        )
    promotion = Promotion(
        promoted=promoted,
        candidate=card.id,
        candidate_score=card.validation_score,
        champion=champion.id if champion else None,
        champion_score=champion_score,
        best_baseline=card.best_baseline,
        best_baseline_score=card.best_baseline_score,
        reason=reason,
    )
    if promoted:
        registry.crown(card, promotion)
    candidate.promotion = promotion
    return promotion


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def publish_embeddings(
    store: GraphStore, model: TeamGNN, snapshot: GraphSnapshot, scaler: FeatureScaler, embedder: TextEmbedder
) -> int:
    """Write the champion's agent embeddings to ``Agent.embeddings`` (seed 000: "GNN-generated embeddings").

    A targeted SET, not an upsert: ``embeddings`` is one of the Agent's kept fields, which runs never overwrite.
    """
    graph = build_tensors(snapshot, embedder, scaler, cutoff=None)
    with torch.no_grad():
        model.eval()
        vectors = model(graph.data.to(next(model.parameters()).device))[AGENT].cpu()
    embeddings = {
        agent_id: [round(float(v), 6) for v in vectors[i]] for i, agent_id in enumerate(graph.tables.agent_ids)
    }
    store.set_agent_embeddings(embeddings)
    return len(embeddings)


def load_recommender(
    store: GraphStore, home: Path, embedder: TextEmbedder | None = None, config: GNNTrainingConfig | None = None
) -> Recommender:
    """The champion on the live graph; without one, the baseline with the best validation score (it says so).

    ``config`` (``AGENTPARTY_GNN_TRAINING`` by default) says where the registry is: the training flow's ``save_path``.
    """

    config = config or get_settings().gnn_training
    embedder = embedder or default_embedder(home)
    registry = ModelRegistry(home, config)
    snapshot = extract(store)
    champion = registry.champion()
    if champion is not None:
        data = prepare(snapshot, champion.training_config(), embedder, scaler=champion.scaler())
        model = load_model(registry, champion, data)
        return Recommender(
            snapshot,
            GNNMethod(model, data.scaler),
            data.scaler,
            embedder,
            fallback=False,
            note=f"champion model {champion.id} (validation score {_fmt(champion.validation_score)}; "
            f"best baseline {champion.best_baseline} {_fmt(champion.best_baseline_score)})",
        )
    data = prepare(snapshot, config, embedder)
    scored = [(evaluate(method, data).validation_score, method) for method in fitted_baselines(data)]
    ranked = sorted(scored, key=lambda s: (-(s[0] if not math.isnan(s[0]) else -1.0), s[1].name))
    score, best = ranked[0]
    return Recommender(
        snapshot,
        best,
        data.scaler,
        embedder,
        fallback=True,
        note=f"no champion model yet: the best baseline chose the team ({best.name}, validation score {_fmt(_number(score))})",
    )


def synthetic_truth(
    config: SyntheticDataConfig, snapshot: GraphSnapshot, model: str = "simulated"
) -> GroundTruth | None:
    """The hidden truth of a synthetic history, when the snapshot holds it (same seed → same ids)."""
    history = generate(config, model=model)
    return history.truth if all(t in snapshot.tasks for t in history.truth.task_ids[:5]) else None


def recommend_team(
    task: Task, size: int | None = None, token_budget: int | None = None, *, settings: Settings | None = None
) -> TeamRecommendation:
    """A team for ``task`` from the configured graph and this home's champion (or best baseline).

    One-off use: a long-lived caller keeps a :func:`load_recommender` and calls ``recommend`` on it.
    """

    settings = settings or get_settings()
    return load_recommender(configured_store(settings), settings.home, config=settings.gnn_training).recommend(
        task, size, token_budget
    )
