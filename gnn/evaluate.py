"""One evaluation for every method, on the same split: AUC for both heads, recall@k and nDCG@k for teams.

* **Observed AUCs** (any graph): on the validation or test period's teams,
  suitability separates members of successful teams from failed teams' members
  and sampled non-members; collaboration separates member pairs of successful
  and failed teams. A period with one class only reports ``n/a``.
* **Ground-truth figures** (synthetic graphs, whose hidden truth is known): for
  every test task, suitability AUC of all agents against its ideal team (the
  top-k by true suitability, k = :func:`team_size_for`), collaboration AUC of
  sampled agent pairs against true pair success above its median, and
  recall@k / nDCG@k of the team :func:`~agentparty.gnn.recommend.assemble`
  builds from the method's scores (gains: true suitability).

The **validation score** training stops early on is the observed validation
AUCs pooled: each weighted by the (positive, negative) pairs it compares
(:func:`pooled_auc`). The **selection score** promotion ranks methods by is
:mod:`agentparty.gnn.selection`'s: every agent ranked for each validation task,
pooled over time folds. Both are what a real graph can compute (truth exists
only in synthetic ones).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from agentparty.gnn.data import AGENT, TASK, Examples, GraphTensors
from agentparty.gnn.recommend import assemble, team_size_for
from agentparty.gnn.scoring import Method, PairScorer, auc, comparisons, pooled_auc
from agentparty.gnn.synthetic import GroundTruth
from agentparty.gnn.train import PreparedData

TRUTH_PAIRS = 4000
TRUTH_TASKS = 200
"""At most this many test tasks (a fixed sample) are scored against the truth: every agent is scored and a team
assembled per task, which at 10,000 agents and 10,000 test tasks would take hours and tell no more."""


@dataclass
class MethodMetrics:
    method: str
    val_suitability_auc: float = math.nan
    val_collaboration_auc: float = math.nan
    test_suitability_auc: float = math.nan
    test_collaboration_auc: float = math.nan
    truth_suitability_auc: float = math.nan
    truth_collaboration_auc: float = math.nan
    truth_synergy_auc: float = math.nan
    """Collaboration scores against the pairs' synergy alone (above its median), quality left out: the stricter
    question of whether a method knows who works well *together*."""
    recall_at_k: float = math.nan
    ndcg_at_k: float = math.nan
    val_suitability_comparisons: int = 0
    val_collaboration_comparisons: int = 0
    selection_score: float = math.nan
    """The figure promotion ranks methods by (:mod:`agentparty.gnn.selection`): pooled over time folds."""
    selection_ndcg: float = math.nan
    selection_recall: float = math.nan
    selection_tasks: int = 0

    @property
    def validation_score(self) -> float:
        return pooled_auc(
            [
                (self.val_suitability_auc, self.val_suitability_comparisons),
                (self.val_collaboration_auc, self.val_collaboration_comparisons),
            ]
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MethodMetrics:
        """Back from :meth:`as_dict` (a flow result read as JSON): missing figures are NaN, extra keys ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        fields: dict[str, Any] = {k: (math.nan if v is None else v) for k, v in values.items() if k in known}
        return cls(**fields)

    def as_dict(self) -> dict[str, float | str | None]:
        """JSON-ready: NaN (a figure that could not be computed) becomes None."""
        data: dict[str, Any] = asdict(self)
        data["validation_score"] = self.validation_score
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}


def _observed(scorer: PairScorer, ex: Examples) -> tuple[float, float]:
    suit = auc(ex.suit_label, scorer.suitability(ex.suit_agent, ex.suit_task)) if len(ex.suit_label) else math.nan
    pair = auc(ex.pair_label, scorer.collaboration(ex.pair_a, ex.pair_b)) if len(ex.pair_label) else math.nan
    return suit, pair


def evaluate(method: Method, data: PreparedData, truth: GroundTruth | None = None) -> MethodMetrics:
    metrics = MethodMetrics(method.name)
    val = method.scorer(data.graphs["val"], data.history("val"))
    metrics.val_suitability_auc, metrics.val_collaboration_auc = _observed(val, data.labelled["val"])
    metrics.val_suitability_comparisons = comparisons(data.labelled["val"].suit_label)
    metrics.val_collaboration_comparisons = comparisons(data.labelled["val"].pair_label)
    test_graph = data.graphs["test"]
    test = method.scorer(test_graph, data.history("test"))
    metrics.test_suitability_auc, metrics.test_collaboration_auc = _observed(test, data.labelled["test"])
    if truth is not None:
        _truth_metrics(metrics, test, test_graph, data, truth)
    return metrics


def _truth_metrics(
    metrics: MethodMetrics, scorer: PairScorer, graph: GraphTensors, data: PreparedData, truth: GroundTruth
) -> None:
    agent_rows = graph.index[AGENT]
    known = [a for a in graph.tables.agent_ids if truth.agent_index(a) is not None]
    rows = np.array([agent_rows[a] for a in known], dtype=np.int64)
    truth_rows = np.array([truth.agent_index(a) for a in known], dtype=np.int64)
    labels: list[float] = []
    scores: list[float] = []
    recalls: list[float] = []
    ndcgs: list[float] = []
    test_tasks = [t for t in data.split.test_tasks if truth.knows_task(t)]
    if len(test_tasks) > TRUTH_TASKS:
        picks = np.random.default_rng(data.config.random_seed + 11).choice(len(test_tasks), TRUTH_TASKS, replace=False)
        test_tasks = [test_tasks[i] for i in sorted(picks)]
    for task_id in test_tasks:
        task_row = graph.index[TASK][task_id]
        size = team_size_for(len(graph.tables.task_capabilities.get(task_id, [])), len(known))
        ideal = set(truth.ideal_team(task_id, size))
        suit = scorer.suitability(rows, np.full(len(rows), task_row))
        labels.extend(1.0 if a in ideal else 0.0 for a in known)
        scores.extend(suit.tolist())
        gains = truth.suitability(task_id)[truth_rows]
        team = assemble(
            graph,
            task_row,
            scorer,
            size=size,
            token_budget=int(data.snapshot.tasks[task_id].get("token_budget") or 0),
            suitability=dict(zip(rows.tolist(), suit.tolist(), strict=True)),
        )
        picked = [graph.tables.agent_ids[p.agent_row] for p in team.picks]
        recalls.append(len(ideal & set(picked)) / size)
        gain_of = dict(zip(known, gains.tolist(), strict=True))
        dcg = sum(gain_of.get(a, 0.0) / math.log2(i + 2) for i, a in enumerate(picked))
        best = sorted(gains.tolist(), reverse=True)[:size]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(best))
        ndcgs.append(dcg / idcg if idcg > 0 else 0.0)
    metrics.truth_suitability_auc = auc(np.array(labels), np.array(scores))
    metrics.recall_at_k = float(np.mean(recalls)) if recalls else math.nan
    metrics.ndcg_at_k = float(np.mean(ndcgs)) if ndcgs else math.nan

    rng = np.random.default_rng(data.config.random_seed + 7)
    n = len(known)
    if n >= 2:
        count = min(TRUTH_PAIRS, n * (n - 1) // 2)
        a = rng.integers(0, n, size=count * 2)
        b = rng.integers(0, n, size=count * 2)
        keep = a != b
        a, b = a[keep][:count], b[keep][:count]
        success = np.array([truth.pair_success(known[x], known[y]) for x, y in zip(a, b, strict=True)])
        pair_labels = (success > np.median(success)).astype(np.float64)
        predicted = scorer.collaboration(rows[a], rows[b])
        metrics.truth_collaboration_auc = auc(pair_labels, predicted)
        synergy = np.array([truth.synergy(int(truth_rows[x]), int(truth_rows[y])) for x, y in zip(a, b, strict=True)])
        metrics.truth_synergy_auc = auc((synergy > np.median(synergy)).astype(np.float64), predicted)


COLUMNS: tuple[tuple[str, str], ...] = (
    ("method", "method"),
    ("selection_score", "selection"),
    ("selection_ndcg", "val nDCG@k"),
    ("validation_score", "val pair AUC"),
    ("test_suitability_auc", "suit AUC"),
    ("test_collaboration_auc", "collab AUC"),
    ("truth_suitability_auc", "suit AUC (truth)"),
    ("truth_collaboration_auc", "collab AUC (truth)"),
    ("recall_at_k", "recall@k"),
    ("ndcg_at_k", "nDCG@k"),
)


def table(rows: list[MethodMetrics]) -> str:
    """A plain-text table (the CLI prints it; the training flow publishes it as markdown too)."""
    cells = [[label for _, label in COLUMNS]]
    for row in rows:
        data = row.as_dict()
        cells.append([str(data["method"])] + [_fmt(data[key]) for key, _ in COLUMNS[1:]])
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[MethodMetrics]) -> str:
    head = "| " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join([str(r.method)] + [_fmt(r.as_dict()[k]) for k, _ in COLUMNS[1:]]) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
