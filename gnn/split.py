"""Which tasks train, validate and test a model, and the labelled pairs each period supervises with.

Tasks are ordered by ``created_at``: the last ``test_split`` are the test tasks,
the ``validation_split`` before them validation, the rest train. Collaboration
edges are rebuilt from the teams that finished before a period starts, so no
model sees a later team's co-membership (the stored WORKED_WITH aggregates every
team). Node aggregates (reliability, proficiency) are the graph's current values
and do include later outcomes: a mild leak, shared by every method compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from agentparty.gnn.features import AGENT, TASK
from agentparty.gnn.snapshot import GraphSnapshot
from agentparty.gnn.synthetic import outsider
from agentparty.gnn.tensors import GraphTensors
from agentparty.models.config import GNNTrainingConfig

NEGATIVES_PER_POSITIVE = 3
"""Non-members sampled as negative examples per member of a team."""


@dataclass
class Examples:
    """Labelled pairs: (agent row, task row) for suitability, (agent row, agent row) for collaboration."""

    suit_agent: np.ndarray
    suit_task: np.ndarray
    suit_label: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray
    pair_label: np.ndarray
    suit_target: np.ndarray
    """Training targets: the team's performance score for members, 0 for non-members (softer than the 0/1 label)."""
    pair_target: np.ndarray


PAIR_SUPERVISION_SHARE = 0.5
"""The latest share of training teams whose member pairs supervise the collaboration head."""


@dataclass
class TimeSplit:
    train_tasks: list[str]
    val_tasks: list[str]
    test_tasks: list[str]
    pair_start: datetime
    """Training teams from here on supervise the collaboration head; the graph it trains on sees only earlier ones
    (a pair's own WORKED_WITH edge would otherwise carry its label)."""
    val_start: datetime
    test_start: datetime

    def cutoff(self, name: str) -> datetime:
        """Collaboration history a period's graph may see: teams before its first task (before the pair window when training)."""
        return {"train": self.pair_start, "val": self.val_start, "test": self.test_start}[name]


def time_split(snapshot: GraphSnapshot, config: GNNTrainingConfig, fold: int = 0) -> TimeSplit:
    """Train, validation and test tasks by creation time. ``fold`` k > 0 moves the validation window k windows
    earlier (training is what comes before it; the test tasks stay where they are): the earlier folds of the
    pooled, rolling-origin validation that promotion ranks methods by (:mod:`agentparty.gnn.selection`)."""
    ordered = sorted(snapshot.tasks, key=lambda t: (snapshot.tasks[t]["created_at"], t))
    n = len(ordered)
    n_test = max(1, round(n * config.test_split)) if n >= 3 else 0
    n_val = max(1, round(n * config.validation_split)) if n >= 3 else 0
    val_end = n - n_test - fold * n_val
    val_start_index = max(0, val_end - n_val)
    train, val, test = ordered[:val_start_index], ordered[val_start_index:val_end], ordered[n - n_test :]
    far = datetime.max.replace(tzinfo=UTC)
    val_start = snapshot.tasks[val[0]]["created_at"] if val else far
    test_start = snapshot.tasks[test[0]]["created_at"] if test else far
    train_set = set(train)
    train_teams = [t for t in snapshot.teams if t.task_id in train_set]
    window = int(np.ceil(len(train_teams) * PAIR_SUPERVISION_SHARE))
    pair_start = train_teams[-window].created_at if window else val_start
    return TimeSplit(train, val, test, pair_start, val_start, test_start)


def examples(
    snapshot: GraphSnapshot, tensors: GraphTensors, tasks: Iterable[str], seed: int, pairs_from: datetime | None = None
) -> Examples:
    """Members of the period's teams (label: the team succeeded), and sampled non-members (label 0);
    member pairs of its teams created at or after ``pairs_from`` (label: the team succeeded)."""
    rng = np.random.default_rng(seed)
    wanted = set(tasks)
    agents, task_rows = tensors.index[AGENT], tensors.index[TASK]
    n_agents = len(agents)
    sa: list[int] = []
    st: list[int] = []
    pa: list[int] = []
    pb: list[int] = []
    sl: list[float] = []
    pl: list[float] = []
    s_target: list[float] = []
    p_target: list[float] = []
    for team in snapshot.teams:
        if team.task_id not in wanted:
            continue
        members = [agents[m] for m in team.members if m in agents]
        label = 1.0 if team.succeeded else 0.0
        t = task_rows[team.task_id]
        for m in members:
            _append((sa, m), (st, t), (sl, label), (s_target, team.performance_score))
        taken = set(members)
        for _ in range(min(n_agents - len(taken), NEGATIVES_PER_POSITIVE * len(members))):
            m = outsider(rng, n_agents, taken)
            taken.add(m)
            _append((sa, m), (st, t), (sl, 0.0), (s_target, 0.0))
        if pairs_from is not None and team.created_at < pairs_from:
            continue
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                _append((pa, a), (pb, b), (pl, label), (p_target, team.performance_score))
    ints = [np.array(v, dtype=np.int64) for v in (sa, st, pa, pb)]
    floats = [np.array(v, dtype=np.float32) for v in (sl, pl, s_target, p_target)]
    return Examples(ints[0], ints[1], floats[0], ints[2], ints[3], floats[1], floats[2], floats[3])


def _append(*pairs: tuple[list[Any], Any]) -> None:
    """One example's values, each onto its column."""
    for column, value in pairs:
        column.append(value)
