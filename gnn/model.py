"""Heterogeneous GraphSAGE with seed 000's ``model_config`` and two heads.

PyG's ``SAGEConv`` has no edge features, and seed 000 gives every edge type
some (collaboration success, proficiency, requirement importance), so each
relation uses :class:`EdgeSAGEConv`: GraphSAGE's update (``W_self·x_i +
W_neigh·AGG_j m_ij``, mean aggregation) whose message ``m_ij = ReLU(W·x_j +
W_e·e_ij)`` also sees the edge's features. ``HeteroConv`` runs one per edge type
(the three seed types plus reverses) and sums per destination type. With
``use_skip_connections`` each layer adds its input back (all layers are
``hidden_channels`` wide after a per-type input projection).

Heads: **suitability** scores (agent, task) from ``[h_a, h_t, h_a ⊙ h_t, f_at]``;
**collaboration** scores an unordered agent pair from ``[h_a ⊙ h_b, |h_a − h_b|, f_ab]``
(symmetric by construction), where ``f`` are the pair's standardised link features
(:mod:`agentparty.gnn.link_features`: what mean aggregation cannot count, such as
shared capabilities). Both return logits.

DESIGN.md §8: dropout is an ``nn.Dropout`` module (functional dropout inside
``to_hetero`` stays on in eval); lazy input sizes are materialised by one
forward pass before the optimizer is created (:meth:`TeamGNN.materialise`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, Linear, MessagePassing

from agentparty.gnn.link_features import PAIR_FEATURES, SUITABILITY_FEATURES
from agentparty.models.gnn import GraphSAGEModelConfig


class EdgeSAGEConv(MessagePassing):
    """GraphSAGE for bipartite relations whose messages also see the edge's features."""

    def __init__(self, out_channels: int, aggr: str = "mean") -> None:
        super().__init__(aggr=aggr)
        self.lin_neighbour = Linear(-1, out_channels)
        self.lin_edge = Linear(-1, out_channels, bias=False)
        self.lin_self = Linear(-1, out_channels)

    def forward(self, x: Tensor | tuple[Tensor, Tensor], edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        source, target = (x, x) if isinstance(x, Tensor) else x  # HeteroConv passes one tensor for A→A relations
        aggregated = self.propagate(
            edge_index,
            x=(self.lin_neighbour(source), target),
            edge_attr=edge_attr,
            size=(source.size(0), target.size(0)),
        )
        return self.lin_self(target) + aggregated

    def message(self, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return torch.relu(x_j + self.lin_edge(edge_attr))


class TeamGNN(nn.Module):
    def __init__(
        self, config: GraphSAGEModelConfig, edge_types: list[tuple[str, str, str]], node_types: list[str]
    ) -> None:
        super().__init__()
        hidden = config.hidden_channels
        self.config = config
        self.node_types = node_types
        self.edge_types = edge_types
        self.inputs = nn.ModuleDict({kind: Linear(-1, hidden) for kind in node_types})
        self.layers = nn.ModuleList(
            HeteroConv({et: EdgeSAGEConv(hidden, aggr=config.aggregation) for et in edge_types}, aggr="sum")
            for _ in range(config.num_layers)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.suitability_head: nn.Module = nn.Sequential(
            nn.Linear(3 * hidden + SUITABILITY_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )
        self.collaboration_head: nn.Module = nn.Sequential(
            nn.Linear(2 * hidden + PAIR_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, data: HeteroData) -> dict[str, Tensor]:
        """Node embeddings per type."""
        h = {kind: torch.relu(self.inputs[kind](data[kind].x)) for kind in self.node_types}
        edges = {et: data[et].edge_index for et in self.edge_types}
        attrs = {et: data[et].edge_attr for et in self.edge_types}
        for layer in self.layers:
            out = layer(h, edges, edge_attr_dict=attrs)
            updated = {}
            for kind in self.node_types:
                new = self.dropout(torch.relu(out[kind])) if kind in out else h[kind]
                updated[kind] = new + h[kind] if self.config.use_skip_connections else new
            h = updated
        return h

    uses_paths: bool = False
    """Whether the heads read common-neighbour paths (:mod:`agentparty.gnn.common_neighbours`); the NCN model does."""

    def score_suitability(
        self, h: dict[str, Tensor], agents: Tensor, tasks: Tensor, links: Tensor, paths: Any = None
    ) -> Tensor:
        """Logits for (agent row, task row) pairs from the node embeddings ``h`` (``paths``: unused here)."""
        return self.suitability(h["Agent"][agents], h["Task"][tasks], links)

    def score_collaboration(
        self, h: dict[str, Tensor], a: Tensor, b: Tensor, links: Tensor, paths: Any = None
    ) -> Tensor:
        """Logits for agent-row pairs (``paths``: unused here)."""
        return self.collaboration(h["Agent"][a], h["Agent"][b], links)

    def suitability(self, agents: Tensor, tasks: Tensor, links: Tensor) -> Tensor:
        """Logits for (agent, task) pairs: embeddings, their product, and the pairs' standardised link features."""
        return self.suitability_head(torch.cat([agents, tasks, agents * tasks, links], dim=-1)).squeeze(-1)

    def collaboration(self, a: Tensor, b: Tensor, links: Tensor) -> Tensor:
        return self.collaboration_head(torch.cat([a * b, (a - b).abs(), links], dim=-1)).squeeze(-1)

    @torch.no_grad()
    def materialise(self, data: HeteroData) -> None:
        """One forward pass so the lazy input sizes exist (before the optimizer or a state dict load)."""
        was_training = self.training
        self.eval()
        self(data)
        self.train(was_training)


def pick_device(use_gpu: bool) -> torch.device:
    """CUDA when asked for and present, else the CPU (never an error)."""
    return torch.device("cuda") if use_gpu and torch.cuda.is_available() else torch.device("cpu")
