"""What every recommender method offers: scores for (agent, task) and for agent pairs on one graph.

A *method* (the GNN, or a baseline) is fitted once on the training period, then
asked for a :class:`PairScorer` on a particular graph: the validation graph, the
test graph (which sees more collaboration history), or the live graph a
recommendation is made on. Scores only need to rank: the assembler normalises
them to ranks (:func:`rank_normalise`), so probabilities and raw counts mix.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
from scipy.stats import rankdata

from agentparty.gnn.data import AGENT, GraphSnapshot, GraphTensors


class PairScorer(Protocol):
    def suitability(self, agents: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        """Scores for (agent row, task row) pairs; higher = more suitable."""
        ...

    def collaboration(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Scores for agent pairs (symmetric); higher = more likely to succeed together."""
        ...


class Method(Protocol):
    name: str

    def scorer(self, graph: GraphTensors, history: History) -> PairScorer: ...


@dataclass
class History:
    """Team history visible at a cutoff, indexed by graph rows (what the hand-feature baselines read)."""

    memberships: np.ndarray
    successes: np.ndarray
    pair_teams: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    neighbours: dict[int, set[int]] = field(default_factory=dict)

    @classmethod
    def before(cls, snapshot: GraphSnapshot, graph: GraphTensors, cutoff: datetime | None) -> History:
        rows = graph.index[AGENT]
        memberships = np.zeros(len(rows))
        successes = np.zeros(len(rows))
        pairs: dict[tuple[int, int], list[float]] = defaultdict(list)
        neighbours: dict[int, set[int]] = defaultdict(set)
        for team in snapshot.teams:
            if cutoff is not None and team.created_at >= cutoff:
                break
            members = sorted(rows[m] for m in team.members if m in rows)
            for m in members:
                memberships[m] += 1
                successes[m] += team.succeeded
            for i, a in enumerate(members):
                for b in members[i + 1 :]:
                    pairs[(a, b)].append(team.performance_score)
                    neighbours[a].add(b)
                    neighbours[b].add(a)
        return cls(memberships, successes, dict(pairs), dict(neighbours))

    def success_rate(self) -> np.ndarray:
        """Smoothed share of successful memberships (one prior success in two)."""
        return (self.successes + 1) / (self.memberships + 2)

    def together(self, a: int, b: int) -> list[float]:
        return self.pair_teams.get((min(a, b), max(a, b)), [])

    def common(self, a: int, b: int) -> set[int]:
        return self.neighbours.get(a, set()) & self.neighbours.get(b, set())

    def adamic_adar(self, a: int, b: int) -> float:
        return float(
            sum(1.0 / np.log(1 + len(self.neighbours[z])) for z in self.common(a, b) if len(self.neighbours[z]) > 0)
        )


def rank_normalise(scores: np.ndarray) -> np.ndarray:
    """Scores → average ranks in (0, 1]: comparable across methods, ties share a rank."""
    if len(scores) == 0:
        return np.zeros(0)
    return rankdata(np.asarray(scores, dtype=np.float64), method="average") / len(scores)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half), NaN when only one class is present.

    The same figure as scikit-learn's ``roc_auc_score`` for 0/1 labels, at a
    fraction of its per-call cost (training computes it every epoch).
    """
    positive = np.asarray(labels) >= 0.5
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def comparisons(labels: np.ndarray) -> int:
    """How many (positive, negative) pairs an AUC over these labels averages."""
    positives = int(np.sum(np.asarray(labels) >= 0.5))
    return positives * (len(labels) - positives)


def pooled_auc(parts: list[tuple[float, int]]) -> float:
    """AUCs weighted by their comparisons: one AUC over both heads' pairs, so three validation pairs
    cannot outvote three hundred (NaN parts are left out; NaN when none is defined)."""
    defined = [(value, weight) for value, weight in parts if not math.isnan(value) and weight > 0]
    total = sum(weight for _, weight in defined)
    return sum(value * weight for value, weight in defined) / total if total else math.nan
