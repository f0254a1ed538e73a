"""Hand-made link features of (agent, task) and (agent, agent) pairs, vectorised.

Message passing with mean aggregation cannot count what two nodes share (a
known limit of GNN link prediction), and capability overlap is what decides
suitability here. So the same features feed both the logistic-regression
baseline and, standardised, the GNN's two heads beside the learnt embeddings
(as link-prediction models such as NCN and BUDDY do with common-neighbour
counts):

* (agent, task): capabilities shared, share of the task's requirements covered,
  mean and best proficiency over the shared ones, Adamic-Adar weight of the
  shared ones (1/log(1 + degree)), log1p(teams before the cutoff), smoothed past
  success, reliability.
* (agent, agent): teams together, their mean score (0.5 without any), common
  past collaborators, Adamic-Adar over them, log1p of both team counts,
  capability Jaccard, mean past success.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from agentparty.gnn.data import GraphTensors
from agentparty.gnn.scoring import History

SUITABILITY_FEATURES = 8
TASK_CACHE = 16
PAIR_FEATURES = 7


class CapabilityView:
    """Agent × capability and task × capability matrices of one graph (plus what the features read)."""

    def __init__(self, graph: GraphTensors) -> None:
        tables = graph.tables
        n_agents, n_tasks, n_caps = len(tables.agent_ids), len(tables.task_ids), len(tables.capability_ids)
        (agents, caps), raw = tables.holds[0].numpy(), tables.holds[1]
        self.holds = sparse.csr_matrix((np.ones(len(agents)), (agents, caps)), shape=(n_agents, n_caps))
        self.proficiency = sparse.csr_matrix((raw[:, 0], (agents, caps)), shape=(n_agents, n_caps))
        tasks, caps = tables.needs[0].numpy()
        self.needs = sparse.csr_matrix((np.ones(len(tasks)), (tasks, caps)), shape=(n_tasks, n_caps))
        self.holds_by_capability = self.holds.tocsc()  # column slices: one task's few capabilities, every agent
        self.proficiency_by_capability = self.proficiency.tocsc()
        degree = np.asarray(self.holds.sum(axis=0)).ravel() + np.asarray(self.needs.sum(axis=0)).ravel()
        self.weight = np.where(degree > 0, 1.0 / np.log1p(np.maximum(degree, 1)), 0.0)
        self.need_count = np.asarray(self.needs.sum(axis=1)).ravel()
        self.reliability = np.array([f.reliability_score for f in tables.agents])
        self._columns: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def task_columns(self, task: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A task's required capability rows, and every agent's holding (0/1) and proficiency in them (dense,
        agents × required). The last :data:`TASK_CACHE` tasks are kept: a recommendation scores one task's
        candidates many times, and both the link features and the NCN's paths read these columns."""
        cached = self._columns.get(task)
        if cached is None:
            required = self.needs.indices[self.needs.indptr[task] : self.needs.indptr[task + 1]]
            cached = (
                required,
                self.holds_by_capability[:, required].toarray(),
                self.proficiency_by_capability[:, required].toarray(),
            )
            if len(self._columns) >= TASK_CACHE:
                self._columns.pop(next(iter(self._columns)))
            self._columns[task] = cached
        return cached

    def shared(self, agents: np.ndarray, tasks: np.ndarray) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """Per pair, the shared capabilities (0/1) and the agent's proficiency in them."""
        mask = self.needs[tasks]
        return self.holds[agents].multiply(mask).tocsr(), self.proficiency[agents].multiply(mask).tocsr()

    def jaccard(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        both = np.asarray(self.holds[a].multiply(self.holds[b]).sum(axis=1)).ravel()
        either = np.asarray(self.holds[a].sum(axis=1)).ravel() + np.asarray(self.holds[b].sum(axis=1)).ravel() - both
        return np.divide(both, either, out=np.zeros_like(both), where=either > 0)


def suitability_features(view: CapabilityView, history: History, agents: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """One row per (agent, task) pair; computed per distinct task on the few columns it requires (dense and fast)."""
    agents, tasks = np.asarray(agents, dtype=np.int64), np.asarray(tasks, dtype=np.int64)
    out = np.zeros((len(agents), SUITABILITY_FEATURES))
    if len(agents) == 0:
        return out
    rate = history.success_rate()
    for task in np.unique(tasks):
        rows = np.flatnonzero(tasks == task)
        who = agents[rows]
        required, holding, proficiency = view.task_columns(int(task))
        shared, levels = holding[who], proficiency[who]
        count = shared.sum(axis=1)
        out[rows, 0] = count
        out[rows, 1] = count / max(len(required), 1)
        out[rows, 2] = np.divide(levels.sum(axis=1), count, out=np.zeros(len(rows)), where=count > 0)
        out[rows, 3] = levels.max(axis=1) if len(required) else 0.0
        out[rows, 4] = shared @ view.weight[required]
    out[:, 5] = np.log1p(history.memberships[agents])
    out[:, 6] = rate[agents]
    out[:, 7] = view.reliability[agents]
    return out


def pair_features(view: CapabilityView, history: History, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if len(a) == 0:
        return np.zeros((0, PAIR_FEATURES))
    rate = history.success_rate()
    together = [history.together(int(x), int(y)) for x, y in zip(a, b, strict=True)]
    return np.column_stack(
        [
            [len(t) for t in together],
            [float(np.mean(t)) if t else 0.5 for t in together],
            [len(history.common(int(x), int(y))) for x, y in zip(a, b, strict=True)],
            [history.adamic_adar(int(x), int(y)) for x, y in zip(a, b, strict=True)],
            np.log1p(history.memberships[a] + history.memberships[b]),
            view.jaccard(a, b),
            (rate[a] + rate[b]) / 2,
        ]
    )
