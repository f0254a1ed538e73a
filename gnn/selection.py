"""Which recommender to serve: every method ranked by one validation figure, pooled over time folds.

The figure (``selection score``) asks what staffing needs: for each validation
task a team succeeded at, score *every* agent for it and see where the team's
members land: the members' AUC against every other agent, averaged over tasks
(nDCG@k, gains = the team's performance score, and recall@k are reported beside
it). Compared with
the observed AUC over sampled pairs it uses all agents, not three sampled
non-members per member; compared with one validation window it pools several:
fold k moves the validation window k windows back in time and refits every
method on what came before it (rolling origin), so a seed-size graph's five
validation teams become fifteen. ``validation_folds`` sets how many.

Only successful teams' tasks are scored: their members are what a good
recommendation should rank first. Every team's members were chosen by whoever
staffed it (on synthetic graphs, a noisy assembler that re-picks familiar faces),
so "was on the team" also rewards imitating that assembler; counting the members
of failed teams as relevant rewarded it more (with GraphSAGE, which learns who
gets picked, both pick a method the truth ranks below Adamic-Adar: README,
"Recommendations").

Ensembles (``GNNTrainingConfig.ensembles``) average their methods' rank-normalised
scores; weights left out are chosen on these same pooled validation tasks (a
grid over the simplex in quarters), so the ensemble competes on the figure that
chose its weights (a mild optimism). Within one standard error of the top
method, an ensemble is preferred (:attr:`Selection.winner`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from agentparty.gnn.baselines import fitted_baselines
from agentparty.gnn.data import AGENT, TASK, embed_nodes
from agentparty.gnn.embeddings import TextEmbedder
from agentparty.gnn.scoring import Method, PairScorer, auc, rank_normalise
from agentparty.gnn.train import GNNMethod, PreparedData, prepare, train_model
from agentparty.models.config import EnsembleConfig

WEIGHT_STEP = 0.25
MAX_TASKS = 300
"""Validation tasks scored per fold at most (the latest ones): each scores every agent, and a large graph's
validation window holds thousands of teams."""


@dataclass
class TaskScores:
    """One validation task's scores for every agent, and where its team's members are."""

    scores: np.ndarray
    members: np.ndarray
    gains: np.ndarray


def task_scores(scorer: PairScorer, data: PreparedData) -> list[TaskScores]:
    """Every agent scored for every validation task a team succeeded at (in the period's own graph)."""
    graph = data.graphs["val"]
    agents, tasks = graph.index[AGENT], graph.index[TASK]
    n = len(agents)
    wanted = set(data.split.val_tasks)
    teams = [team for team in data.snapshot.teams if team.task_id in wanted and team.succeeded][-MAX_TASKS:]
    out = []
    for team in teams:
        members = np.array(sorted({agents[m] for m in team.members if m in agents}), dtype=np.int64)
        if len(members) == 0 or len(members) == n:
            continue
        gains = np.zeros(n)
        gains[members] = team.performance_score
        row = tasks[team.task_id]
        out.append(TaskScores(scorer.suitability(np.arange(n), np.full(n, row)), members, gains))
    return out


@dataclass
class Figures:
    ndcg: float = math.nan
    auc: float = math.nan
    recall: float = math.nan
    tasks: int = 0
    auc_error: float = math.nan
    """Standard error of the per-task AUCs' mean: how far apart two methods must be to be told apart."""

    @property
    def score(self) -> float:
        """The selection score: the members' AUC against every other agent, averaged over validation tasks
        (NaN without a validation team). AUC reads the whole ranking, nDCG@k and recall@k only its top k: with
        a few dozen validation teams the top k alone is too noisy to choose by (they are reported beside it)."""
        return self.auc if self.tasks else math.nan

    def as_dict(self) -> dict[str, float | int | None]:
        def number(value: float) -> float | None:
            return None if math.isnan(value) else round(float(value), 6)

        return {
            "selection_score": number(self.score),
            "selection_ndcg": number(self.ndcg),
            "selection_auc": number(self.auc),
            "selection_recall": number(self.recall),
            "selection_tasks": self.tasks,
            "selection_error": number(self.auc_error),
        }


def figures(tasks: list[TaskScores]) -> Figures:
    ndcgs, aucs, recalls = [], [], []
    for task in tasks:
        k = len(task.members)
        order = np.argsort(-task.scores, kind="stable")[:k]
        discounts = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = float(np.sort(task.gains)[::-1][:k] @ discounts)
        ndcgs.append(float(task.gains[order] @ discounts) / ideal)
        labels = np.zeros(len(task.scores))
        labels[task.members] = 1.0
        aucs.append(auc(labels, task.scores))
        recalls.append(len(np.intersect1d(order, task.members)) / k)
    if not ndcgs:
        return Figures()
    defined = np.array([a for a in aucs if not math.isnan(a)])
    error = float(defined.std(ddof=1) / math.sqrt(len(defined))) if len(defined) > 1 else math.nan
    return Figures(float(np.mean(ndcgs)), float(np.nanmean(aucs)), float(np.mean(recalls)), len(ndcgs), error)


def blend(parts: list[list[TaskScores]], weights: tuple[float, ...]) -> list[TaskScores]:
    """An ensemble's task scores: the weighted mean of its methods' rank-normalised scores."""
    out = []
    for rows in zip(*parts, strict=True):
        combined = sum(w * rank_normalise(r.scores) for w, r in zip(weights, rows, strict=True))
        out.append(TaskScores(np.asarray(combined), rows[0].members, rows[0].gains))
    return out


def weight_grid(count: int) -> list[tuple[float, ...]]:
    """Weights on the simplex in steps of :data:`WEIGHT_STEP`, every method weighted (no corner: not an ensemble)."""
    steps = round(1 / WEIGHT_STEP)
    return [
        tuple(p * WEIGHT_STEP for p in parts)
        for parts in itertools.product(range(1, steps), repeat=count)
        if sum(parts) == steps
    ] or [tuple([1.0 / count] * count)]


@dataclass
class Selection:
    """Every method's pooled validation figures, the ensembles' weights, and the winner."""

    figures: dict[str, Figures]
    weights: dict[str, list[float]] = field(default_factory=dict)
    folds: int = 1
    ensembles: set[str] = field(default_factory=set)

    @property
    def ranked(self) -> list[str]:
        def key(name: str) -> tuple[float, str]:
            score = self.figures[name].score
            return (-(score if not math.isnan(score) else -1.0), name)

        return sorted(self.figures, key=key)

    @property
    def winner(self) -> str:
        """The top method, except that an ensemble within one standard error of it wins instead.

        Within one standard error the validation tasks cannot tell the two apart, and an ensemble's rank
        average varies less than its members: the safer one to serve (the one-standard-error rule of
        Breiman et al., leaning towards the hedge instead of the simplest model)."""
        ranked = self.ranked
        top = self.figures[ranked[0]]
        if ranked[0] in self.ensembles or math.isnan(top.auc_error):
            return ranked[0]
        close = [n for n in ranked if n in self.ensembles and self.figures[n].score >= top.score - top.auc_error]
        return close[0] if close else ranked[0]


def select(fold_scores: list[dict[str, list[TaskScores]]], ensembles: list[EnsembleConfig]) -> Selection:
    """Pool each method's validation tasks over the folds; fit and score the ensembles the same way."""
    names = list(fold_scores[0])
    pooled = {name: [t for fold in fold_scores for t in fold[name]] for name in names}
    result = Selection(
        {name: figures(tasks) for name, tasks in pooled.items()},
        folds=len(fold_scores),
        ensembles={e.name for e in ensembles},
    )
    for ensemble in ensembles:
        parts = [pooled[m] for m in ensemble.methods]
        if ensemble.weights is not None:
            total = sum(ensemble.weights)
            chosen = tuple(w / total for w in ensemble.weights)
        else:
            chosen = max(weight_grid(len(parts)), key=lambda w: _safe(figures(blend(parts, w)).score))
        result.figures[ensemble.name] = figures(blend(parts, chosen))
        result.weights[ensemble.name] = [round(w, 6) for w in chosen]
    return result


def _safe(value: float) -> float:
    return -1.0 if math.isnan(value) else value


@dataclass
class EnsembleScorer:
    scorers: list[PairScorer]
    weights: list[float]

    def suitability(self, agents: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        return np.asarray(
            sum(
                w * rank_normalise(s.suitability(agents, tasks))
                for s, w in zip(self.scorers, self.weights, strict=True)
            )
        )

    def collaboration(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(
            sum(w * rank_normalise(s.collaboration(a, b)) for s, w in zip(self.scorers, self.weights, strict=True))
        )


@dataclass
class EnsembleMethod:
    """A declared ensemble as a method: its members' rank-normalised scores, weighted."""

    name: str
    methods: list[Method]
    weights: list[float]

    def scorer(self, graph: object, history: object) -> EnsembleScorer:
        return EnsembleScorer([m.scorer(graph, history) for m in self.methods], self.weights)  # type: ignore[arg-type]


def fold_scores(
    data: PreparedData, methods: list[Method], embedder: TextEmbedder, folds: int
) -> list[dict[str, list[TaskScores]]]:
    """Each method's validation task scores on ``data``'s window, then on ``folds - 1`` earlier windows
    where the baselines are refitted and the model retrained on what came before (rolling origin)."""
    out = [{m.name: task_scores(m.scorer(data.graphs["val"], data.history("val")), data) for m in methods}]
    vectors = embed_nodes(data.tables, embedder)
    for fold in range(1, folds):
        earlier = prepare(data.snapshot, data.config, embedder, fold=fold, tables=data.tables, vectors=vectors)
        if not earlier.split.train_tasks or not earlier.labelled["train"].suit_label.size:
            break  # the history is too short for this many folds: pool the ones it has
        run = train_model(earlier)
        refitted: list[Method] = [
            GNNMethod(run.model, earlier.scaler, data.config.method_name),
            *fitted_baselines(earlier),
        ]
        wanted = {m.name for m in methods}
        out.append(
            {
                m.name: task_scores(m.scorer(earlier.graphs["val"], earlier.history("val")), earlier)
                for m in refitted
                if m.name in wanted
            }
        )
    return out
