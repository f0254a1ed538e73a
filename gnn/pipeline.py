"""Extract → train → evaluate → promote, as plain functions (the Prefect flow and the CLI call these).

Each step takes and returns ordinary objects, so the flow's tasks are thin and
a test or a notebook can run the same pipeline without a server.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from agentparty.gnn.baselines import fitted_baselines
from agentparty.gnn.data import AGENT, FeatureScaler, GraphSnapshot, build_tensors
from agentparty.gnn.embeddings import TextEmbedder, default_embedder
from agentparty.gnn.evaluate import MethodMetrics, evaluate
from agentparty.gnn.model import TeamGNN
from agentparty.gnn.recommend import Recommender, TeamRecommendation
from agentparty.gnn.registry import ModelCard, ModelRegistry, Promotion, new_model_id
from agentparty.gnn.scoring import Method
from agentparty.gnn.selection import EnsembleMethod, Selection, fold_scores, select, task_scores
from agentparty.gnn.selection import figures as figures_of
from agentparty.gnn.serving import decide, served_method
from agentparty.gnn.synthetic import GroundTruth, SyntheticHistory, generate
from agentparty.gnn.train import GNNMethod, PreparedData, TrainingRun, new_model, prepare, train_model
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


@dataclass
class Candidate:
    """A trained model with its evaluation, and every baseline's and ensemble's on the same split and folds."""

    data: PreparedData
    run: TrainingRun
    metrics: MethodMetrics
    baselines: list[MethodMetrics]
    embedder: str
    selection: Selection | None = None
    ensembles: list[MethodMetrics] = field(default_factory=list)
    window_score: float | None = None
    """The model's selection score on the current validation window alone (what the champion is compared on)."""
    card: ModelCard | None = None
    promotion: Promotion | None = None

    @property
    def rows(self) -> list[MethodMetrics]:
        return [self.metrics, *self.baselines, *self.ensembles]

    def best_baseline(self) -> MethodMetrics | None:
        scored = [b for b in self.baselines if not math.isnan(b.selection_score)]
        return max(scored, key=lambda b: b.selection_score) if scored else None


def train_candidate(
    snapshot: GraphSnapshot,
    config: GNNTrainingConfig,
    embedder: TextEmbedder,
    truth: GroundTruth | None = None,
    on_epoch: Any = None,
) -> Candidate:
    """Train the configured model; rank it, the baselines and the ensembles on the pooled validation folds;
    evaluate each (and on the hidden truth when ``truth`` is given)."""
    data = prepare(snapshot, config, embedder)
    run = train_model(data, on_epoch=on_epoch)
    model = GNNMethod(run.model, data.scaler, config.method_name)
    baselines = fitted_baselines(data)
    folds = fold_scores(data, [model, *baselines], embedder, config.validation_folds)
    selection = select(folds, config.declared_ensembles)
    by_name: dict[str, Method] = {m.name: m for m in [model, *baselines]}
    ensembles = [
        EnsembleMethod(e.name, [by_name[m] for m in e.methods], selection.weights[e.name])
        for e in config.declared_ensembles
    ]
    rows = [evaluate(method, data, truth) for method in [model, *baselines, *ensembles]]
    for row in rows:
        figures = selection.figures[row.method]
        row.selection_score, row.selection_ndcg = figures.score, figures.ndcg
        row.selection_recall, row.selection_tasks = figures.recall, figures.tasks
    window = figures_of(folds[0][model.name]).score
    return Candidate(
        data,
        run,
        rows[0],
        rows[1 : 1 + len(baselines)],
        embedder.name,
        selection,
        rows[1 + len(baselines) :],
        _number(window),
    )


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
        validation_score=_number(candidate.metrics.selection_score),
        best_baseline=best.method if best else None,
        best_baseline_score=_number(best.selection_score) if best else None,
        served=candidate.selection.winner if candidate.selection else None,
        epochs=len(run.curves),
        best_epoch=run.best_epoch,
        seconds_per_epoch=run.seconds_per_epoch,
        device=run.device,
        curves=[{"epoch": e.epoch, "train_loss": e.train_loss, "val_loss": e.val_loss} for e in run.curves],
    )


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


class NeedsRetraining(ValueError):
    """A saved model whose weights no longer fit the inputs today's features give it."""


def load_model(registry: ModelRegistry, card: ModelCard, data: PreparedData) -> TeamGNN:
    """The saved model on ``data``'s graph; :class:`NeedsRetraining` when its weights do not fit today's inputs
    (a feature added since, such as a new node or link column, changes the input widths)."""
    model = new_model(card.training_config())
    model.materialise(data.graphs["train"].data)
    try:
        model.load_state_dict(registry.load_state(card.id))
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()
        raise NeedsRetraining(
            f"model {card.id} was trained on inputs of another shape than today's features give it "
            f"({detail[1].strip() if len(detail) > 1 else detail[0]}): it needs retraining (`agentparty gnn train`)"
        ) from exc
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
    """A saved model's metrics on a snapshot, scaled with its own scaler (what "loading reproduces its metrics" checks).

    Its ``selection_score`` is on the snapshot's current validation window alone (a saved model is not retrained
    per fold): what a challenger's own window figure is compared with."""
    data = prepare(snapshot, config, embedder, scaler=card.scaler())
    method = GNNMethod(load_model(registry, card, data), data.scaler, card.training_config().method_name)
    return evaluate_on_window(method, data, truth)


def evaluate_on_window(method: Method, data: PreparedData, truth: GroundTruth | None = None) -> MethodMetrics:
    """:func:`~agentparty.gnn.evaluate.evaluate`, with the selection figures of the current validation window."""
    metrics = evaluate(method, data, truth)
    window = figures_of(task_scores(method.scorer(data.graphs["val"], data.history("val")), data))
    metrics.selection_score, metrics.selection_ndcg = window.score, window.ndcg
    metrics.selection_recall, metrics.selection_tasks = window.recall, window.tasks
    return metrics


def promote(
    registry: ModelRegistry, candidate: Candidate, embedder: TextEmbedder, truth: GroundTruth | None = None
) -> Promotion:
    """Save the candidate; crown it and record what is served as :func:`agentparty.gnn.serving.decide` says."""
    card = candidate.card or model_card(candidate)
    registry.save(card, candidate.run.model, curves_png(candidate.run))
    candidate.card = card
    champion = registry.champion()
    champion_score: float | None = None
    if champion is not None:
        if champion.embedder == card.embedder:
            config = candidate.data.config
            rescored = rescore(registry, champion, candidate.data.snapshot, config, embedder, truth)
            champion_score = _number(rescored.selection_score)
        else:
            champion_score = champion.validation_score
    if candidate.selection is None:
        raise ValueError("promotion needs the candidate's selection (train it with train_candidate)")
    decision = decide(
        candidate.selection,
        candidate.data.config,
        candidate.window_score,
        champion_score,
        champion is not None,
        card.id,
    )
    promotion = Promotion(
        promoted=decision.promoted,
        candidate=card.id,
        candidate_score=card.validation_score,
        champion=champion.id if champion else None,
        champion_score=champion_score,
        best_baseline=card.best_baseline,
        best_baseline_score=card.best_baseline_score,
        reason=decision.reason,
        served=decision.served.method if decision.served else _served_name(registry),
    )
    if decision.promoted:
        registry.crown(card, promotion)
    if decision.served is not None:
        registry.serve(decision.served)
    candidate.promotion = promotion
    return promotion


def _served_name(registry: ModelRegistry) -> str | None:
    served = registry.served()
    return served.method if served else None


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
    """The served method on the live graph (``served.json``: the champion, a baseline or an ensemble); a home
    from before serving decisions serves its champion; without any, the baseline with the best selection score.

    ``config`` (``AGENTPARTY_GNN_TRAINING`` by default) says where the registry is: the training flow's ``save_path``.
    """

    config = config or get_settings().gnn_training
    embedder = embedder or default_embedder(home)
    return recommender_for(extract(store), ModelRegistry(home, config), embedder, config)


def recommender_for(
    snapshot: GraphSnapshot, registry: ModelRegistry, embedder: TextEmbedder, config: GNNTrainingConfig
) -> Recommender:
    """:func:`load_recommender` on a snapshot already read."""
    champion = registry.champion()
    served = registry.served()
    retrain = ""
    if champion is not None:
        data = prepare(snapshot, champion.training_config(), embedder, scaler=champion.scaler())
        try:
            trained = load_model(registry, champion, data)
        except NeedsRetraining as exc:
            champion, served, retrain = None, None, f"{exc}; meanwhile "
    if champion is not None:
        model = GNNMethod(trained, data.scaler, champion.training_config().method_name)
        if served is None or served.kind == "model":
            note = served.summary() if served else f"{model.name} (champion model {champion.id})"
            return Recommender(snapshot, model, data.scaler, embedder, fallback=False, note=note)
        return Recommender(
            snapshot, served_method(served, model, data), data.scaler, embedder, fallback=False, note=served.summary()
        )
    data = prepare(snapshot, config, embedder)
    if served is not None and served.model_id is None:  # a baseline, or an ensemble of baselines
        method = served_method(served, None, data)
        return Recommender(snapshot, method, data.scaler, embedder, fallback=True, note=served.summary())
    baselines = fitted_baselines(data)
    scored = [
        (figures_of(task_scores(m.scorer(data.graphs["val"], data.history("val")), data)).score, m) for m in baselines
    ]
    ranked = sorted(scored, key=lambda s: (-(s[0] if not math.isnan(s[0]) else -1.0), s[1].name))
    score, best = ranked[0]
    return Recommender(
        snapshot,
        best,
        data.scaler,
        embedder,
        fallback=True,
        note=f"{retrain or 'no champion model yet: '}the best baseline chose the team ({best.name}, selection score "
        f"{_fmt(_number(score))} on the validation window)",
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
