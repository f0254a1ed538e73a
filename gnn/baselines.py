"""Strong, simple baselines the GNN is always reported beside (DESIGN.md §8).

* **popularity**: how often an agent was on a successful team (suitability), and
  the product of both agents' counts (pairs). Ignores the task entirely.
* **logistic regression** on the hand features of :mod:`agentparty.gnn.link_features`
  (capability overlap, coverage, proficiency, history; for pairs their teams
  together, common neighbours, Adamic-Adar, capability Jaccard).
* **common neighbours / Adamic-Adar**: for (agent, task), capabilities the agent
  holds and the task requires, each weighted 1/log(1 + its degree); for pairs,
  shared past collaborators weighted the same way (common neighbours break ties).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentparty.gnn.data import GraphTensors
from agentparty.gnn.link_features import CapabilityView, pair_features, suitability_features
from agentparty.gnn.scoring import History, Method
from agentparty.gnn.train import PreparedData


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


@dataclass
class NeighbourScorer:
    view: CapabilityView
    history: History

    def suitability(self, agents: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        shared, _ = self.view.shared(np.asarray(agents, dtype=np.int64), np.asarray(tasks, dtype=np.int64))
        return shared @ self.view.weight + 1e-3 * np.asarray(shared.sum(axis=1)).ravel()

    def collaboration(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array(
            [
                self.history.adamic_adar(int(x), int(y)) + 1e-3 * len(self.history.common(int(x), int(y)))
                for x, y in zip(a, b, strict=True)
            ]
        )


@dataclass
class CommonNeighbours:
    name: str = "adamic-adar"

    def scorer(self, graph: GraphTensors, history: History) -> NeighbourScorer:
        return NeighbourScorer(CapabilityView(graph), history)


@dataclass
class LogisticScorer:
    view: CapabilityView
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
    # deferred: scikit-learn loads only for the logistic-regression baseline
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

    def fit(
        self,
        graph: GraphTensors,
        history: History,
        suit_agent: np.ndarray,
        suit_task: np.ndarray,
        suit_label: np.ndarray,
        pair_a: np.ndarray,
        pair_b: np.ndarray,
        pair_label: np.ndarray,
    ) -> LogisticRegressionBaseline:
        view = CapabilityView(graph)
        self.suit_model = _fit(suitability_features(view, history, suit_agent, suit_task), suit_label, self.seed)
        self.pair_model = _fit(pair_features(view, history, pair_a, pair_b), pair_label, self.seed)
        return self

    def scorer(self, graph: GraphTensors, history: History) -> LogisticScorer:
        if self.suit_model is None:
            raise RuntimeError("fit the logistic-regression baseline before scoring")
        return LogisticScorer(CapabilityView(graph), history, self.suit_model, self.pair_model)


def fitted_baselines(data: PreparedData) -> list[Method]:
    """Every baseline, fitted on ``data``'s training period where it needs fitting."""
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
