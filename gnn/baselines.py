"""Strong, simple baselines the GNN is always reported beside (DESIGN.md §8).

* **popularity**: how often an agent was on a successful team (suitability), and
  the product of both agents' counts (pairs). Ignores the task entirely.
* **logistic regression** on hand features: for (agent, task) the capability
  overlap, coverage share, mean and best proficiency over the overlap, team
  count, smoothed past success and reliability; for pairs the teams and mean
  score together, common neighbours, Adamic-Adar, both team counts, capability
  Jaccard and mean past success.
* **common neighbours / Adamic-Adar**: for (agent, task), capabilities the agent
  holds and the task requires, each weighted 1/log(1 + its degree); for pairs,
  shared past collaborators weighted the same way (common neighbours break ties).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentparty.gnn.data import GraphTensors
from agentparty.gnn.scoring import History


@dataclass
class PopularityScorer:
    history: History

    def suitability(self, agents: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        return self.history.successes[agents] + 0.01 * self.history.memberships[agents]

    def collaboration(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        pop = self.history.successes + 0.01 * self.history.memberships
        return pop[a] * pop[b]


@dataclass
class Popularity:
    name: str = "popularity"

    def scorer(self, graph: GraphTensors, history: History) -> PopularityScorer:
        return PopularityScorer(history)


class _CapabilityView:
    """Per-graph lookups: which capabilities an agent holds and a task needs, and how common each is."""

    def __init__(self, graph: GraphTensors) -> None:
        tables = graph.tables
        self.agent_caps = [tables.agent_capabilities.get(a, set()) for a in tables.agent_ids]
        self.task_caps = [set(tables.task_capabilities.get(t, [])) for t in tables.task_ids]
        self.proficiency = tables.proficiency
        self.agent_ids = tables.agent_ids
        degree: dict[str, int] = {}
        for caps in self.agent_caps + self.task_caps:
            for c in caps:
                degree[c] = degree.get(c, 0) + 1
        self.weight = {c: 1.0 / np.log(1 + d) for c, d in degree.items() if d > 0}
        self.reliability = np.array([f.reliability_score for f in tables.agents])

    def overlap(self, agent: int, task: int) -> set[str]:
        return self.agent_caps[agent] & self.task_caps[task]


@dataclass
class NeighbourScorer:
    view: _CapabilityView
    history: History

    def suitability(self, agents: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        out = np.zeros(len(agents))
        for i, (a, t) in enumerate(zip(agents, tasks, strict=True)):
            shared = self.view.overlap(int(a), int(t))
            out[i] = sum(self.view.weight[c] for c in shared) + 1e-3 * len(shared)
        return out

    def collaboration(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array([
            self.history.adamic_adar(int(x), int(y)) + 1e-3 * len(self.history.common(int(x), int(y)))
            for x, y in zip(a, b, strict=True)
        ])


@dataclass
class CommonNeighbours:
    name: str = "adamic-adar"

    def scorer(self, graph: GraphTensors, history: History) -> NeighbourScorer:
        return NeighbourScorer(_CapabilityView(graph), history)


def suitability_features(view: _CapabilityView, history: History, agents: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    rate = history.success_rate()
    rows = []
    for a, t in zip(agents, tasks, strict=True):
        a, t = int(a), int(t)
        shared = view.overlap(a, t)
        levels = [view.proficiency[(view.agent_ids[a], c)] for c in shared]
        need = max(1, len(view.task_caps[t]))
        rows.append([
            len(shared), len(shared) / need, float(np.mean(levels)) if levels else 0.0, max(levels, default=0.0),
            np.log1p(history.memberships[a]), rate[a], view.reliability[a],
        ])
    return np.array(rows, dtype=np.float64).reshape(len(rows), 7)


def pair_features(view: _CapabilityView, history: History, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    rate = history.success_rate()
    rows = []
    for x, y in zip(a, b, strict=True):
        x, y = int(x), int(y)
        together = history.together(x, y)
        caps_x, caps_y = view.agent_caps[x], view.agent_caps[y]
        union = len(caps_x | caps_y)
        rows.append([
            len(together), float(np.mean(together)) if together else 0.5, len(history.common(x, y)), history.adamic_adar(x, y),
            np.log1p(history.memberships[x] + history.memberships[y]), len(caps_x & caps_y) / union if union else 0.0,
            (rate[x] + rate[y]) / 2,
        ])
    return np.array(rows, dtype=np.float64).reshape(len(rows), 7)


@dataclass
class LogisticScorer:
    view: _CapabilityView
    history: History
    suit_model: Any
    pair_model: Any

    def suitability(self, agents: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        features = suitability_features(self.view, self.history, agents, tasks)
        return _predict(self.suit_model, features)

    def collaboration(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _predict(self.pair_model, pair_features(self.view, self.history, a, b))


def _predict(model: Any, features: np.ndarray) -> np.ndarray:
    if len(features) == 0:
        return np.zeros(0)
    if isinstance(model, float):  # one-class training data: a constant
        return np.full(len(features), model)
    return model.predict_proba(features)[:, 1]


def _fit(features: np.ndarray, labels: np.ndarray, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(labels)) < 2:
        return float(labels.mean()) if len(labels) else 0.5
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)).fit(features, labels)


@dataclass
class LogisticRegressionBaseline:
    """Fitted on the training period's labelled pairs (see :func:`agentparty.gnn.data.examples`)."""

    name: str = "logistic-regression"
    seed: int = 42
    suit_model: Any = field(default=None, repr=False)
    pair_model: Any = field(default=None, repr=False)

    def fit(self, graph: GraphTensors, history: History, suit_agent: np.ndarray, suit_task: np.ndarray, suit_label: np.ndarray,
            pair_a: np.ndarray, pair_b: np.ndarray, pair_label: np.ndarray) -> LogisticRegressionBaseline:
        view = _CapabilityView(graph)
        self.suit_model = _fit(suitability_features(view, history, suit_agent, suit_task), suit_label, self.seed)
        self.pair_model = _fit(pair_features(view, history, pair_a, pair_b), pair_label, self.seed)
        return self

    def scorer(self, graph: GraphTensors, history: History) -> LogisticScorer:
        if self.suit_model is None:
            raise RuntimeError("fit the logistic-regression baseline before scoring")
        return LogisticScorer(_CapabilityView(graph), history, self.suit_model, self.pair_model)
