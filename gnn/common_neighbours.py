"""Common neighbours of a pair, as sparse matrices the NCN heads multiply node embeddings with.

Neural Common Neighbours (Wang et al., 2023) scores a link (i, j) from the
embeddings of the nodes both ends share. Here the two links we score have their
own natural common neighbours:

* **(agent, task)**: the capabilities the agent holds *and* the task requires,
  the two-hop paths agent → capability ← task. Row p of :func:`capability_paths`
  holds, for pair p, ``proficiency(a, c) / |required(t)|`` at each shared
  capability c: its row sum is the agent's *expected skill* on the task (mean
  proficiency over what the task requires, 0 for what it lacks), and
  ``paths @ H_capability`` is the proficiency-weighted mean of those capabilities'
  embeddings.
* **(agent, agent)**: the past collaborators both share. Row p of
  :func:`collaborator_paths` holds ``1 / log(1 + degree(z))`` at each shared
  collaborator z (Adamic-Adar's weights): its row sum is the pair's Adamic-Adar
  score.

Both are ``torch.sparse`` COO tensors (torch-sparse and pyg-lib are not
installed here): built with scipy from the graph's capability matrices and the
period's history, multiplied with ``torch.sparse.mm``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

from agentparty.gnn.link_features import CapabilityView
from agentparty.gnn.scoring import History


def to_torch(matrix: sparse.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a coalesced float32 ``torch.sparse_coo_tensor``."""
    coo = matrix.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(indices, values, size=coo.shape, check_invariants=False).coalesce()


SCORE_FLOOR = 0.05
"""Added before taking logs: an agent with none of the skills, or no reliability yet, is unlikely, not impossible."""


@dataclass
class Neighbourhood:
    """What the NCN heads read about a batch of pairs besides the node embeddings."""

    paths: torch.Tensor
    """[pairs × neighbours] sparse path weights (capabilities for (agent, task), agents for pairs); with
    ``columns``, dense weights over those neighbours only."""
    scores: torch.Tensor
    """[pairs × k] dense structural scores the monotone prior weighs."""
    columns: torch.Tensor | None = None
    """The neighbour rows a dense ``paths`` covers: every pair is for one task, whose few required capabilities
    are all the neighbours there are (a recommendation's candidates), and a dense product is the fast one."""

    def to(self, device: torch.device) -> Neighbourhood:
        columns = self.columns.to(device) if self.columns is not None else None
        return Neighbourhood(self.paths.to(device), self.scores.to(device), columns)

    def aggregate(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``paths @ embeddings``: each pair's common neighbours' embeddings, weighted."""
        if self.columns is not None:
            return self.paths @ embeddings[self.columns]
        return torch.sparse.mm(self.paths, embeddings)


def capability_paths(
    view: CapabilityView, history: History, agents: np.ndarray, tasks: np.ndarray, dense: bool = False
) -> Neighbourhood:
    """Paths ``proficiency(a, c) / |required(t)|`` over the capabilities both share; scores: the logs of the
    agent's expected skill on the task (the paths' row sum), its reliability and its smoothed past success.

    Logs, because an agent's contribution is skill *times* dependability: summed logs with equal weights rank
    exactly as the product does, and the learnt weights can move away from it. ``dense``: pairs that are all
    for one task get dense weights over its required capabilities (scoring; training slices sparse rows)."""
    agents, tasks = np.asarray(agents, dtype=np.int64), np.asarray(tasks, dtype=np.int64)
    if len(agents) == 0:
        return Neighbourhood(to_torch(sparse.csr_matrix((0, view.holds.shape[1]))), torch.zeros((0, 3)))
    scores_of = _suitability_scores(view, history, agents)
    if dense and len(np.unique(tasks)) == 1:  # one task's candidates: dense weights over what it requires
        required, _, proficiency = view.task_columns(int(tasks[0]))
        levels = proficiency[agents] / max(len(required), 1)
        return Neighbourhood(
            torch.from_numpy(levels.astype(np.float32)),
            scores_of(levels.sum(axis=1)),
            torch.from_numpy(required.astype(np.int64)),
        )
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    values: list[np.ndarray] = []
    skill = np.zeros(len(agents))
    for task in np.unique(tasks):  # per task, on the few columns it requires (as suitability_features does)
        at = np.flatnonzero(tasks == task)
        required, _, proficiency = view.task_columns(int(task))
        levels = proficiency[agents[at]] / max(len(required), 1)
        skill[at] = levels.sum(axis=1)
        hit_rows, hit_cols = np.nonzero(levels)
        rows.append(at[hit_rows])
        cols.append(required[hit_cols])
        values.append(levels[hit_rows, hit_cols])
    shape = (len(agents), view.holds.shape[1])
    paths = sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
    return Neighbourhood(to_torch(paths), scores_of(skill))


def _suitability_scores(
    view: CapabilityView, history: History, agents: np.ndarray
) -> Callable[[np.ndarray], torch.Tensor]:
    """The prior's scores for these agents, given their expected skill: log skill, log reliability, log success."""
    dependability = np.column_stack(
        [np.log(view.reliability[agents] + SCORE_FLOOR), np.log(history.success_rate()[agents])]
    )

    def scores(skill: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.column_stack([np.log(skill + SCORE_FLOOR), dependability]).astype(np.float32))

    return scores


def collaborator_adjacency(history: History, n_agents: int) -> sparse.csr_matrix:
    """Agents × agents, 1 where two agents were on a team together before the history's cutoff."""
    rows: list[int] = []
    cols: list[int] = []
    for a, peers in history.neighbours.items():
        rows.extend([a] * len(peers))
        cols.extend(peers)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_agents, n_agents))


def collaborator_paths(
    adjacency: sparse.csr_matrix, history: History, reliability: np.ndarray, a: np.ndarray, b: np.ndarray
) -> Neighbourhood:
    """Paths ``1 / log(1 + degree(z))`` over the past collaborators z both agents share; scores: their
    Adamic-Adar (the paths' row sum), the mean score of their teams together (0.5 without one), their mean
    smoothed past success and their mean reliability (each agent's own completed slots, the sharper estimate of
    its quality). Pair success is the two agents' mean quality plus what they add together: a sum, so these
    enter the prior as they are."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    n = adjacency.shape[0]
    if len(a) == 0:
        return Neighbourhood(to_torch(sparse.csr_matrix((0, n))), torch.zeros((0, 4)))
    degree = np.asarray(adjacency.sum(axis=0)).ravel()
    weight = np.where(degree > 1, 1.0 / np.log1p(np.maximum(degree, 1)), 0.0)
    paths = (adjacency[a].multiply(adjacency[b]).tocsr() @ sparse.diags(weight)).tocsr()
    rate = history.success_rate()
    together = [history.together(int(x), int(y)) for x, y in zip(a, b, strict=True)]
    scores = np.column_stack(
        [
            np.asarray(paths.sum(axis=1)).ravel(),
            [float(np.mean(t)) if t else 0.5 for t in together],
            (rate[a] + rate[b]) / 2,
            (reliability[a] + reliability[b]) / 2,
        ]
    ).astype(np.float32)
    return Neighbourhood(to_torch(paths), torch.from_numpy(scores))
