"""Training the GNN: both heads at once, early stopping on the validation score.

``training_mode: full`` (the default) takes one step per epoch over the whole training graph;
``mini-batch`` takes one per ``batch_size`` labelled pairs, each on a subgraph of sampled
neighbours (:mod:`agentparty.gnn.minibatch`). Validation always embeds the whole graph.

The checkpoint kept is the epoch with the best pooled validation AUC, the figure a
champion is chosen by (the validation loss when no AUC is defined): on small
histories the loss of a few confidently wrong validation pairs can rise while
the ranking keeps improving.

Determinism: the seed fixes torch, numpy and the negative samples; CPU kernels
used here are deterministic, so the same snapshot and config give the same
weights and metrics (a test holds us to it). On the CPU we train with one
thread for small graphs (DESIGN.md §8: 3-7x faster on 2 cores) and let torch
use its default for large ones.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data import HeteroData

from agentparty.gnn.common_neighbours import Neighbourhood, capability_paths, collaborator_adjacency, collaborator_paths
from agentparty.gnn.data import (
    AGENT,
    CAPABILITY,
    EDGE_TYPES,
    TASK,
    Examples,
    FeatureScaler,
    GraphSnapshot,
    GraphTensors,
    NodeTables,
    TimeSplit,
    build_tensors,
    embed_nodes,
    examples,
    node_tables,
    time_split,
)
from agentparty.gnn.embeddings import TextEmbedder
from agentparty.gnn.link_features import (
    PAIR_FEATURES,
    SUITABILITY_FEATURES,
    CapabilityView,
    pair_features,
    suitability_features,
)
from agentparty.gnn.minibatch import MiniBatches, NeighbourSampler
from agentparty.gnn.model import TeamGNN, pick_device
from agentparty.gnn.ncn import CommonNeighbourGNN
from agentparty.gnn.scoring import History, auc, comparisons, pooled_auc
from agentparty.models.config import GNNTrainingConfig
from agentparty.models.gnn import GraphSAGEModelConfig

SMALL_GRAPH_NODES = 50_000


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


@contextmanager
def training_threads(nodes: int, device: torch.device) -> Iterator[None]:
    """One intra-op thread for small graphs on the CPU, restored afterwards (the process may embed texts next)."""
    before = torch.get_num_threads()
    if device.type == "cpu" and nodes < SMALL_GRAPH_NODES:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class PreparedData:
    """A snapshot cut into periods, with one message graph per period and the labelled pairs of each."""

    snapshot: GraphSnapshot
    config: GNNTrainingConfig
    split: TimeSplit
    tables: NodeTables
    scaler: FeatureScaler
    graphs: dict[str, GraphTensors]
    """``train`` (collaboration before the pair window), ``val`` and ``test``."""
    labelled: dict[str, Examples]
    links: dict[str, tuple[torch.Tensor, torch.Tensor]]
    """Per period, the standardised link features of its labelled suitability and collaboration pairs."""
    histories: dict[str, History]
    """Per period, the team history its graph may see (what the hand features read)."""
    digest: str
    paths: dict[str, tuple[Neighbourhood, Neighbourhood]] = field(default_factory=dict)
    """Per period, the common-neighbour paths of its labelled suitability and collaboration pairs (NCN only)."""

    def history(self, period: str) -> History:
        return self.histories[period]


def prepare(
    snapshot: GraphSnapshot,
    config: GNNTrainingConfig,
    embedder: TextEmbedder,
    scaler: FeatureScaler | None = None,
    *,
    fold: int = 0,
    tables: NodeTables | None = None,
    vectors: dict[str, np.ndarray] | None = None,
) -> PreparedData:
    """Split and tensorise; ``scaler`` given (a saved model's) means scale as that model was trained.

    ``fold`` > 0: an earlier validation window (:func:`~agentparty.gnn.split.time_split`); ``tables`` and
    ``vectors`` let the folds share one snapshot's node tables and text embeddings."""
    split = time_split(snapshot, config, fold)
    tables = tables or node_tables(snapshot)
    vectors = vectors if vectors is not None else embed_nodes(tables, embedder)
    fit = scaler is None
    scaler = scaler or FeatureScaler()
    graphs: dict[str, GraphTensors] = {}
    for period in ("train", "val", "test"):
        graphs[period] = build_tensors(
            snapshot,
            embedder,
            scaler,
            cutoff=split.cutoff(period),
            fit=fit and period == "train",
            tables=tables,
            embeddings=vectors,
        )
    seed = config.random_seed
    labelled = {
        "train": examples(snapshot, graphs["train"], split.train_tasks, seed, pairs_from=split.pair_start),
        "val": examples(snapshot, graphs["val"], split.val_tasks, seed + 1),
        "test": examples(snapshot, graphs["test"], split.test_tasks, seed + 2),
    }
    histories = {period: History.before(snapshot, graphs[period], split.cutoff(period)) for period in graphs}
    links = {}
    for period, ex in labelled.items():
        view, history = CapabilityView(graphs[period]), histories[period]
        links[period] = (
            scaled_links(
                scaler,
                SUITABILITY_LINKS,
                suitability_features(view, history, ex.suit_agent, ex.suit_task),
                fit and period == "train",
            ),
            scaled_links(
                scaler, PAIR_LINKS, pair_features(view, history, ex.pair_a, ex.pair_b), fit and period == "train"
            ),
        )
    data = PreparedData(snapshot, config, split, tables, scaler, graphs, labelled, links, histories, snapshot.digest())
    if config.model_type == "NCN":
        data.paths = {period: example_paths(data, period) for period in labelled}
    return data


def example_paths(data: PreparedData, period: str) -> tuple[Neighbourhood, Neighbourhood]:
    """The common-neighbour paths of a period's labelled pairs (what the NCN heads multiply embeddings with)."""
    ex, graph = data.labelled[period], data.graphs[period]
    adjacency = collaborator_adjacency(data.histories[period], len(graph.tables.agent_ids))
    history = data.histories[period]
    return (
        capability_paths(CapabilityView(graph), history, ex.suit_agent, ex.suit_task),
        collaborator_paths(adjacency, history, CapabilityView(graph).reliability, ex.pair_a, ex.pair_b),
    )


SUITABILITY_LINKS, PAIR_LINKS = "links|suitability", "links|collaboration"


def scaled_links(scaler: FeatureScaler, kind: str, raw: np.ndarray, fit: bool) -> torch.Tensor:
    if len(raw) == 0:
        return torch.zeros((0, raw.shape[1]), dtype=torch.float32)
    return torch.from_numpy(scaler.transform(kind, raw, fit))


@dataclass
class GNNScorer:
    """Scores from node embeddings computed once for a graph (cached: scoring is link features and two small MLPs)."""

    model: TeamGNN
    embeddings: dict[str, torch.Tensor]
    view: CapabilityView
    history: History
    scaler: FeatureScaler
    adjacency: Any = None
    """Past collaborators (agents × agents, scipy): the NCN pair head's common neighbours."""

    @classmethod
    @torch.no_grad()
    def on(cls, model: TeamGNN, graph: GraphTensors, history: History, scaler: FeatureScaler) -> GNNScorer:
        model.eval()
        device = next(model.parameters()).device
        adjacency = collaborator_adjacency(history, len(graph.tables.agent_ids)) if model.uses_paths else None
        return cls(model, dict(model(graph.data.to(device))), CapabilityView(graph), history, scaler, adjacency)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def suitability(self, agents: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        links = suitability_features(self.view, self.history, agents, tasks)
        paths = capability_paths(self.view, self.history, agents, tasks, dense=True) if self.model.uses_paths else None
        return self._probabilities(self.model.score_suitability, SUITABILITY_LINKS, links, paths, agents, tasks)

    def collaboration(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        links = pair_features(self.view, self.history, a, b)
        paths = (
            collaborator_paths(self.adjacency, self.history, self.view.reliability, a, b)
            if self.model.uses_paths
            else None
        )
        return self._probabilities(self.model.score_collaboration, PAIR_LINKS, links, paths, a, b)

    @torch.no_grad()
    def _probabilities(
        self,
        head: Callable[..., torch.Tensor],
        kind: str,
        links: np.ndarray,
        paths: Neighbourhood | None,
        left: np.ndarray,
        right: np.ndarray,
    ) -> np.ndarray:
        """One head's probabilities for row pairs, from the cached embeddings and the pairs' scaled link features."""
        device = self._device()
        logits = head(
            self.embeddings,
            torch.as_tensor(left, dtype=torch.long, device=device),
            torch.as_tensor(right, dtype=torch.long, device=device),
            scaled_links(self.scaler, kind, links, False).to(device),
            paths.to(device) if paths is not None else None,
        )
        return torch.sigmoid(logits).cpu().numpy()


@dataclass
class GNNMethod:
    """A trained model as a recommender method (``scorer`` embeds the graph once); named by its ``model_type``."""

    model: TeamGNN
    scaler: FeatureScaler
    name: str = "graphsage"

    def scorer(self, graph: GraphTensors, history: History) -> GNNScorer:
        return GNNScorer.on(self.model, graph, history, self.scaler)


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float
    seconds: float
    val_score: float = math.nan
    """Pooled validation AUC: early stopping keeps the epoch where it peaked (the val loss when it is undefined)."""


@dataclass
class TrainingRun:
    model: TeamGNN
    curves: list[EpochLog] = field(default_factory=list)
    best_epoch: int = 0
    device: str = "cpu"

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean([e.seconds for e in self.curves])) if self.curves else 0.0


def architecture(config: GNNTrainingConfig) -> GraphSAGEModelConfig:
    """Seed ``model_config`` with the training config's sizes (the seed repeats them in both places)."""
    return GraphSAGEModelConfig(
        hidden_channels=config.hidden_channels,
        num_layers=config.num_layers,
        dropout=config.dropout,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
    )


def new_model(config: GNNTrainingConfig) -> TeamGNN:
    """An untrained model of the configured ``model_type`` (GraphSAGE, or NCN: its encoder plus common-neighbour heads)."""
    sage = architecture(config)
    if config.model_type == "NCN":
        return CommonNeighbourGNN(
            sage,
            config.ncn_parameters,
            list(EDGE_TYPES),
            [AGENT, CAPABILITY, TASK],
            SUITABILITY_FEATURES,
            PAIR_FEATURES,
        )
    return TeamGNN(sage, list(EDGE_TYPES), [AGENT, CAPABILITY, TASK])


Paths = tuple[Neighbourhood, Neighbourhood] | None


SUITABILITY, COLLABORATION_HEAD = 0, 1
"""Which head :func:`_logits` scores: the index of its links and paths in a period's pairs."""


def _logits(
    model: TeamGNN,
    h: dict[str, torch.Tensor],
    ex: Examples,
    links: tuple[torch.Tensor, torch.Tensor],
    paths: Paths,
    device: torch.device,
    head: int,
) -> torch.Tensor:
    """One head's logits for the period's labelled pairs: (agent, task) suitability or (agent, agent) collaboration."""
    score = model.score_suitability if head == SUITABILITY else model.score_collaboration
    left, right = (ex.suit_agent, ex.suit_task) if head == SUITABILITY else (ex.pair_a, ex.pair_b)
    return score(
        h,
        torch.as_tensor(left, device=device),
        torch.as_tensor(right, device=device),
        links[head].to(device),
        paths[head].to(device) if paths else None,
    )


def _validation_score(
    model: TeamGNN,
    h: dict[str, torch.Tensor],
    ex: Examples,
    links: tuple[torch.Tensor, torch.Tensor],
    paths: Paths,
    device: torch.device,
) -> float:
    """The pooled validation AUC (what early stopping watches; NaN with one class only)."""
    parts = []
    if len(ex.suit_label):
        scores = _logits(model, h, ex, links, paths, device, SUITABILITY).cpu().numpy()
        parts.append((auc(ex.suit_label, scores), comparisons(ex.suit_label)))
    if len(ex.pair_label):
        scores = _logits(model, h, ex, links, paths, device, COLLABORATION_HEAD).cpu().numpy()
        parts.append((auc(ex.pair_label, scores), comparisons(ex.pair_label)))
    return pooled_auc(parts)


def _loss(
    model: TeamGNN,
    h: dict[str, torch.Tensor],
    ex: Examples,
    links: tuple[torch.Tensor, torch.Tensor],
    paths: Paths,
    device: torch.device,
) -> torch.Tensor:
    bce = nn.functional.binary_cross_entropy_with_logits
    losses = []
    if len(ex.suit_label):
        logits = _logits(model, h, ex, links, paths, device, SUITABILITY)
        losses.append(bce(logits, torch.as_tensor(ex.suit_target, device=device)))
    if len(ex.pair_label):
        logits = _logits(model, h, ex, links, paths, device, COLLABORATION_HEAD)
        losses.append(bce(logits, torch.as_tensor(ex.pair_target, device=device)))
    if not losses:
        return torch.zeros((), device=device, requires_grad=True)
    return torch.stack(losses).sum()


def train_model(
    data: PreparedData, on_epoch: Callable[[EpochLog], None] | None = None, max_epochs: int | None = None
) -> TrainingRun:
    device = pick_device(data.config.use_gpu)
    with training_threads(sum(g.num_nodes for g in data.graphs["train"].data.node_stores), device):
        return _train(data, device, on_epoch, max_epochs)


def _full_batch_step(
    model: TeamGNN, optimizer: torch.optim.Optimizer, data: PreparedData, graph: HeteroData, device: torch.device
) -> float:
    """``training_mode: full``: one forward of the whole training graph, one step over every labelled pair."""
    optimizer.zero_grad()
    loss = _loss(model, model(graph), data.labelled["train"], data.links["train"], data.paths.get("train"), device)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _mini_batches(data: PreparedData, graph: HeteroData) -> MiniBatches:
    sampler = NeighbourSampler(graph, list(EDGE_TYPES), data.config.fanout)
    train = data.labelled["train"]
    return MiniBatches(graph, sampler, train, data.links["train"], data.paths.get("train"), data.config.batch_size)


def _mini_batch_steps(
    model: TeamGNN,
    optimizer: torch.optim.Optimizer,
    batches: MiniBatches,
    device: torch.device,
    rng: np.random.Generator,
) -> float:
    """``training_mode: mini-batch``: the pairs shuffled (``rng``), one step per batch on its sampled subgraph (the
    same loss as a full step, on the batch's pairs); the epoch's loss is the pair-weighted mean."""
    total, seen = 0.0, 0
    for batch in batches.epoch(rng):
        optimizer.zero_grad()
        loss = _loss(model, model(batch.graph.to(device)), batch.examples, batch.links, batch.paths, device)
        loss.backward()
        optimizer.step()
        total, seen = total + float(loss.detach()) * batch.size, seen + batch.size
    return total / max(seen, 1)


def _train(
    data: PreparedData, device: torch.device, on_epoch: Callable[[EpochLog], None] | None, max_epochs: int | None
) -> TrainingRun:
    config = data.config
    seed_everything(config.random_seed)
    model = new_model(config).to(device)
    train_graph = data.graphs["train"].data.to(device)
    val_graph = data.graphs["val"].data.to(device)
    model.materialise(train_graph)  # lazy sizes before the optimizer (DESIGN.md §8)
    if isinstance(model, CommonNeighbourGNN) and config.ncn_parameters.fit_prior and "train" in data.paths:
        ex, (suit_paths, pair_paths) = data.labelled["train"], data.paths["train"]
        model.fit_priors(
            suit_paths.to(device),
            torch.as_tensor(ex.suit_target, device=device),
            pair_paths.to(device),
            torch.as_tensor(ex.pair_target, device=device),
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    run = TrainingRun(model=model, device=device.type)
    best, best_state, waited = -math.inf, copy.deepcopy(model.state_dict()), 0
    val, val_links, val_paths = data.labelled["val"], data.links["val"], data.paths.get("val")
    val_has_labels = len(val.suit_label) + len(val.pair_label) > 0
    batches = _mini_batches(data, train_graph) if config.training_mode == "mini-batch" else None
    for epoch in range(1, (max_epochs or config.num_epochs) + 1):
        started = time.perf_counter()
        model.train()
        if batches is None:
            train_loss = _full_batch_step(model, optimizer, data, train_graph, device)
        else:
            train_loss = _mini_batch_steps(
                model, optimizer, batches, device, np.random.default_rng([config.random_seed, epoch])
            )
        model.eval()
        val_loss, val_score = train_loss, math.nan
        if val_has_labels:
            with torch.no_grad():
                h = model(val_graph)
                val_loss = float(_loss(model, h, val, val_links, val_paths, device))
                val_score = _validation_score(model, h, val, val_links, val_paths, device)
        log = EpochLog(epoch, train_loss, val_loss, time.perf_counter() - started, val_score)
        run.curves.append(log)
        if on_epoch:
            on_epoch(log)
        monitored = val_score if not math.isnan(val_score) else -val_loss
        if monitored > best + 1e-6:
            best, best_state, waited, run.best_epoch = monitored, copy.deepcopy(model.state_dict()), 0, epoch
        else:
            waited += 1
            if waited >= config.early_stopping_patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return run
