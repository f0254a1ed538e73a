"""NCN: GraphSAGE's encoder with common-neighbour link heads (``model_type: NCN``).

Why: mean-aggregating message passing cannot count what the two ends of a link
share, and on these graphs what they share decides the answer (a task needs
capabilities; an agent holds them). Plain GraphSAGE therefore loses to a
one-line Adamic-Adar (README, "Recommendations"), as it does on OGB's
ogbl-collab, where the leaders (NCN, NCNC, BUDDY) add common-neighbour structure
to the link predictor. This model does the same, in two ways
(:class:`~agentparty.models.config.NCNConfig` switches each):

* **Common-neighbour embeddings** (``common_neighbours``): each head also reads
  ``paths @ H``, the weighted sum of the embeddings of the pair's common
  neighbours (:mod:`agentparty.gnn.common_neighbours`: the capabilities an agent
  holds and a task requires, weighted by proficiency; the collaborators two agents
  share, weighted as Adamic-Adar does).
* **A monotone heuristic prior** (``heuristic_prior``): each logit adds
  ``Σ softplus(w_k) · s_k`` over structural scores ``s_k`` (suitability: expected
  skill, the paths' row sum; Adamic-Adar; reliability; past success. Pairs:
  Adamic-Adar over collaborators; their mean score together; their mean past
  success). The weights cannot turn negative, so more skill never lowers a
  score, and the deep part's last layer starts at zero (``deep_weight_init``):
  at epoch 0 the model *is* the prior, and training (stopped early on the
  validation figure) only keeps corrections that help. With a few dozen labelled
  teams a network cannot learn from scratch that expected skill matters; it can
  learn how much, and what else does.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from agentparty.gnn.common_neighbours import Neighbourhood
from agentparty.gnn.model import TeamGNN
from agentparty.models.config import NCNConfig
from agentparty.models.gnn import GraphSAGEModelConfig

SUITABILITY_PRIOR_SHARES = (1.0, 0.5, 0.5)
"""Initial prior weights, as shares of ``prior_weight``: log expected skill, log reliability, log past success
(the two dependability estimates share one weight, so the prior starts as skill × dependability)."""
PAIR_PRIOR_SHARES = (0.1, 1.0, 0.5, 0.5)
"""Adamic-Adar over shared collaborators, mean score together, mean past success, mean reliability."""


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class _Head(nn.Module):
    """``deep(x) + Σ softplus(w_k) · s_k + b``: an MLP plus a monotone linear term over structural scores."""

    def __init__(self, width: int, hidden: int, dropout: float, shares: tuple[float, ...], ncn: NCNConfig) -> None:
        super().__init__()
        self.deep = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        if ncn.deep_weight_init == "zero":
            last = self.deep[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.uses_prior = ncn.heuristic_prior
        self.prior_weights = nn.Parameter(torch.tensor([_inverse_softplus(ncn.prior_weight * s) for s in shares]))
        self.bias = nn.Parameter(torch.zeros(()))

    @torch.enable_grad()
    def fit_prior(self, structural: Tensor, target: Tensor, iterations: int = 100) -> None:
        """Fit the prior's weights and the bias alone, to convergence (a monotone logistic regression: convex in
        the bias, and smooth), before the network trains: a few full-batch Adam steps at the network's learning
        rate would leave them where they started."""
        if not self.uses_prior or len(target) == 0:
            return
        parameters = [self.prior_weights, self.bias]
        optimizer = torch.optim.LBFGS(parameters, max_iter=iterations, line_search_fn="strong_wolfe")
        loss_of = nn.functional.binary_cross_entropy_with_logits

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = loss_of(structural @ nn.functional.softplus(self.prior_weights) + self.bias, target)
            loss.backward()
            return loss

        optimizer.step(closure)

    def forward(self, x: Tensor, structural: Tensor) -> Tensor:
        logit = self.deep(x).squeeze(-1) + self.bias
        if self.uses_prior:
            logit = logit + structural @ nn.functional.softplus(self.prior_weights)
        return logit


class CommonNeighbourGNN(TeamGNN):
    uses_paths = True

    def __init__(
        self,
        config: GraphSAGEModelConfig,
        ncn: NCNConfig,
        edge_types: list[tuple[str, str, str]],
        node_types: list[str],
        suitability_links: int,
        pair_links: int,
    ) -> None:
        super().__init__(config, edge_types, node_types)
        hidden = config.hidden_channels
        self.ncn = ncn
        common = hidden if ncn.common_neighbours else 0
        self.suitability_head: _Head = _Head(
            hidden + common + suitability_links, hidden, config.dropout, SUITABILITY_PRIOR_SHARES, ncn
        )
        self.collaboration_head: _Head = _Head(
            2 * hidden + common + pair_links, hidden, config.dropout, PAIR_PRIOR_SHARES, ncn
        )

    def fit_priors(
        self, suitability: Neighbourhood, suit_target: Tensor, pairs: Neighbourhood, pair_target: Tensor
    ) -> None:
        """Fit both heads' priors on the training pairs (``ncn.fit_prior``), before the network trains."""
        self.suitability_head.fit_prior(suitability.scores.to(suit_target), suit_target)
        self.collaboration_head.fit_prior(pairs.scores.to(pair_target), pair_target)

    def score_suitability(
        self, h: dict[str, Tensor], agents: Tensor, tasks: Tensor, links: Tensor, paths: Neighbourhood | None = None
    ) -> Tensor:
        if paths is None:
            raise ValueError("the NCN model scores (agent, task) pairs with their capability paths")
        a, t = h["Agent"][agents], h["Task"][tasks]
        parts = [a * t]
        if self.ncn.common_neighbours:
            parts.append(paths.aggregate(h["Capability"]))
        parts.append(links)
        return self.suitability_head(torch.cat(parts, dim=-1), paths.scores.to(links))

    def score_collaboration(
        self, h: dict[str, Tensor], a: Tensor, b: Tensor, links: Tensor, paths: Neighbourhood | None = None
    ) -> Tensor:
        if paths is None:
            raise ValueError("the NCN model scores agent pairs with their collaborator paths")
        x, y = h["Agent"][a], h["Agent"][b]
        parts = [x * y, (x - y).abs()]
        if self.ncn.common_neighbours:
            parts.append(paths.aggregate(h["Agent"]))
        parts.append(links)
        return self.collaboration_head(torch.cat(parts, dim=-1), paths.scores.to(links))
