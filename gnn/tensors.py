"""From a snapshot's features to the message-passing graph: a ``HeteroData`` with scaled features.

Counts and token figures enter the network as log1p, and every column is
standardised with statistics fitted on the training snapshot and saved with the
model (:class:`FeatureScaler`), so a later graph is scaled the same way. Node
features are the scaled seed scalars followed by the text embeddings; each edge
type also gets its reverse, so messages flow both ways.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import torch
from torch_geometric.data import HeteroData

from agentparty.gnn.embeddings import TextEmbedder
from agentparty.gnn.features import (
    AGENT,
    CAPABILITY,
    COLLABORATION,
    COLLABORATION_FEATURES,
    HELD_BY,
    HOLDS,
    NEEDED_BY,
    NEEDS,
    TASK,
    NodeTables,
    collaboration_edges,
    collaboration_width,
    feature_matrix,
    node_tables,
)
from agentparty.gnn.snapshot import GraphSnapshot

_LOG_COLUMNS = {
    AGENT: (1, 3),  # capability_count, token_efficiency
    CAPABILITY: (0, 2),  # token_cost, compatibility_count
    TASK: (2, 3),  # capability_count, token_budget
    COLLABORATION: (1, 4),  # task_count, messages_exchanged (when the model reads it)
    HOLDS: (1, 2),  # usage_count, token_efficiency
    NEEDS: (),
}


@dataclass
class FeatureScaler:
    """log1p on counts and token figures, then per-column standardisation fitted once (saved with a model)."""

    mean: dict[str, list[float]] = field(default_factory=dict)
    std: dict[str, list[float]] = field(default_factory=dict)

    @staticmethod
    def key(kind: str | tuple[str, str, str]) -> str:
        return kind if isinstance(kind, str) else "|".join(kind)

    def width(self, kind: str | tuple[str, str, str]) -> int | None:
        """How many columns of ``kind`` were fitted (what a saved model was trained on); None when none were."""
        mean = self.mean.get(self.key(kind))
        return None if mean is None else len(mean)

    def transform(self, kind: str | tuple[str, str, str], raw: np.ndarray, fit: bool) -> np.ndarray:
        values = raw.astype(np.float64).copy()
        for column in _LOG_COLUMNS.get(kind, ()):
            if column < values.shape[1]:  # a model trained on fewer columns does not read the later ones
                values[:, column] = np.log1p(np.maximum(values[:, column], 0.0))
        name = self.key(kind)
        if fit or name not in self.mean:
            mean = values.mean(axis=0) if len(values) else np.zeros(values.shape[1])
            std = values.std(axis=0) if len(values) else np.ones(values.shape[1])
            self.mean[name], self.std[name] = mean.tolist(), np.where(std < 1e-8, 1.0, std).tolist()
        return ((values - np.array(self.mean[name])) / np.array(self.std[name])).astype(np.float32)


@dataclass
class GraphTensors:
    """One ``HeteroData`` and the id ↔ row maps of its nodes."""

    data: HeteroData
    tables: NodeTables

    @property
    def index(self) -> dict[str, dict[str, int]]:
        return self.tables.index


def build_tensors(
    snapshot: GraphSnapshot,
    embedder: TextEmbedder,
    scaler: FeatureScaler,
    *,
    cutoff: datetime | None,
    fit: bool = False,
    tables: NodeTables | None = None,
    embeddings: dict[str, np.ndarray] | None = None,
) -> GraphTensors:
    """The message-passing graph: seed features on nodes and edges, the three edge types plus reverses."""
    tables = tables or node_tables(snapshot)
    index = tables.index
    embeddings = embeddings or embed_nodes(tables, embedder)
    data = HeteroData()
    for kind, count in ((AGENT, len(tables.agents)), (CAPABILITY, len(tables.capabilities)), (TASK, len(tables.tasks))):
        scalars = scaler.transform(kind, tables.raw[kind], fit)
        data[kind].x = torch.from_numpy(np.concatenate([scalars, embeddings[kind]], axis=1))
        data[kind].num_nodes = count

    collab = collaboration_edges(snapshot, tables, cutoff)
    src = [index[AGENT][a] for a, _, _ in collab]
    dst = [index[AGENT][b] for _, b, _ in collab]
    trained = None if fit else scaler.width(COLLABORATION)
    width = collaboration_width(snapshot, trained)
    raw = feature_matrix([f for _, _, f in collab], COLLABORATION_FEATURES)[:, :width]
    attr = scaler.transform(COLLABORATION, raw, fit)
    data[COLLABORATION].edge_index = torch.tensor([src + dst, dst + src], dtype=torch.long).reshape(2, -1)
    data[COLLABORATION].edge_attr = torch.from_numpy(np.concatenate([attr, attr])).reshape(-1, width)

    for forward, backward, width, (edge_index, raw) in (
        (HOLDS, HELD_BY, 3, tables.holds),
        (NEEDS, NEEDED_BY, 2, tables.needs),
    ):
        attr_t = torch.from_numpy(scaler.transform(forward, raw, fit)).reshape(-1, width)
        data[forward].edge_index, data[forward].edge_attr = edge_index, attr_t
        data[backward].edge_index, data[backward].edge_attr = edge_index.flip(0), attr_t
    return GraphTensors(data, tables)


def embed_nodes(tables: NodeTables, embedder: TextEmbedder) -> dict[str, np.ndarray]:
    texts = tables.agent_texts + tables.capability_texts + tables.task_texts
    vectors = embedder.embed(texts) if texts else np.zeros((0, embedder.dim), dtype=np.float32)
    a, c = len(tables.agent_texts), len(tables.capability_texts)
    return {AGENT: vectors[:a], CAPABILITY: vectors[a : a + c], TASK: vectors[a + c :]}
