"""Team assembly: which agents should work on a task, within its size and token budget, and why.

**Algorithm** (:func:`assemble`; the same for the GNN and every baseline, which
only supply scores):

1. Score every agent's suitability for the task and turn the scores into ranks
   in (0, 1] (methods then differ only in how they order agents).
2. *Cover*: while a required capability is uncovered and the team has room,
   add the agent with the highest ``rank(suitability) × Σ proficiency`` over
   the uncovered capabilities it holds, plus ``COLLABORATION_WEIGHT ×
   rank(collaboration with the members so far)``, among those whose estimated
   tokens still fit the budget. An agent's estimate is the token cost of the
   capabilities it is picked to cover, × (1 + task complexity).
3. *Fill*: while there is room, add the agent with the highest
   ``rank(suitability) + COLLABORATION_WEIGHT × rank(collaboration)`` that fits
   (estimate: its cheapest required capability, else the mean required cost),
   among the :data:`FILL_POOL` most suitable agents that fit.
4. Report what stays uncovered (no holder, no room, or no budget) instead of
   failing: the caller decides whether a partial team may run.

``size`` is a maximum: a team stops growing when nobody else fits the budget.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from agentparty.gnn.data import TASK, FeatureScaler, GraphSnapshot, GraphTensors, build_tensors
from agentparty.gnn.embeddings import TextEmbedder
from agentparty.gnn.scoring import History, Method, PairScorer, rank_normalise
from agentparty.models.graph import Task, capability_id
from agentparty.runtime.graph_store import node_row

COLLABORATION_WEIGHT = 0.25
MAX_TEAM_SIZE = 5
FILL_POOL = 256
"""Fill picks consider this many of the most suitable remaining agents (collaboration is scored for those only)."""


def team_size_for(required: int, agents: int) -> int:
    """The default team size for a task needing ``required`` capabilities: one more than that, 2 to 5."""
    return max(1, min(agents, max(2, min(MAX_TEAM_SIZE, required + 1))))


@dataclass(frozen=True)
class Pick:
    agent_row: int
    covers: tuple[str, ...]
    """Capability ids this agent was picked to cover (empty for a fill pick)."""
    suitability: float
    suitability_rank: float
    collaboration_rank: float | None
    estimated_tokens: int


@dataclass
class Assembly:
    picks: list[Pick] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    """Required capability ids no pick covers."""

    @property
    def estimated_tokens(self) -> int:
        return sum(p.estimated_tokens for p in self.picks)


def assemble(
    graph: GraphTensors,
    task_row: int,
    scorer: PairScorer,
    *,
    size: int,
    token_budget: int,
    suitability: dict[int, float] | None = None,
    eligible: set[int] | None = None,
) -> Assembly:
    tables = graph.tables
    task_id = tables.task_ids[task_row]
    required = list(dict.fromkeys(tables.task_capabilities.get(task_id, [])))
    cap_rows = graph.index["Capability"]
    cost = {c: tables.capabilities[cap_rows[c]].token_cost for c in required}
    factor = 1 + tables.tasks[task_row].complexity
    n_agents = len(tables.agent_ids)
    raw = _raw_suitability(scorer, task_row, n_agents, suitability)
    ranks = rank_normalise(raw)
    holders = tables.holders
    allowed = np.ones(n_agents, dtype=bool)
    if eligible is not None:
        allowed[:] = False
        allowed[list(eligible)] = True
    fill_tokens = _fill_estimates(holders, cost, factor, n_agents)

    budget_left = token_budget if token_budget > 0 else math.inf
    result = Assembly()
    chosen: list[int] = []
    uncovered = set(required)

    def collaboration_ranks(candidates: np.ndarray) -> np.ndarray:
        if not chosen or len(candidates) == 0:
            return np.zeros(len(candidates))
        a = np.repeat(candidates, len(chosen))
        b = np.tile(np.array(chosen), len(candidates))
        return rank_normalise(scorer.collaboration(a, b).reshape(len(candidates), len(chosen)).mean(axis=1))

    while len(chosen) < size:
        if uncovered:
            entries = _cover_entries(graph, uncovered, allowed, chosen, cost, factor, budget_left)
            if not entries:  # nobody fits to cover what is left: fill the remaining room instead
                result.uncovered = sorted(uncovered)
                uncovered = set()
                continue
            candidates = np.array([e[0] for e in entries], dtype=np.int64)
            weight = np.array(
                [sum(tables.proficiency.get((tables.agent_ids[r], c), 0.0) for c in covers) for r, covers, _ in entries]
            )
            together = collaboration_ranks(candidates)
            values = ranks[candidates] * weight + COLLABORATION_WEIGHT * together
            best = int(np.argmax(values))
            r, covers, tokens = entries[best]
        else:
            open_rows = allowed.copy()
            open_rows[chosen] = False
            candidates = np.flatnonzero(open_rows & (fill_tokens <= budget_left))
            if len(candidates) == 0:
                break
            if len(candidates) > FILL_POOL:  # only the most suitable are worth a collaboration score
                candidates = np.sort(candidates[np.argsort(-ranks[candidates], kind="stable")[:FILL_POOL]])
            together = collaboration_ranks(candidates)
            values = ranks[candidates] + COLLABORATION_WEIGHT * together
            best = int(np.argmax(values))
            r, covers, tokens = int(candidates[best]), (), int(fill_tokens[candidates[best]])
        chosen.append(r)
        uncovered -= set(covers)
        budget_left -= tokens
        result.picks.append(
            Pick(r, covers, float(raw[r]), float(ranks[r]), float(together[best]) if len(chosen) > 1 else None, tokens)
        )
    result.uncovered = sorted(set(result.uncovered) | uncovered)
    return result


def _raw_suitability(
    scorer: PairScorer, task_row: int, n_agents: int, suitability: dict[int, float] | None
) -> np.ndarray:
    """Every agent's suitability for the task: the scorer's, or the given scores (an agent not given: -inf)."""
    if suitability is None:
        return scorer.suitability(np.arange(n_agents), np.full(n_agents, task_row)) if n_agents else np.zeros(0)
    return np.array([suitability.get(r, -math.inf) for r in range(n_agents)])


def _fill_estimates(holders: dict[str, list[int]], cost: dict[str, int], factor: float, n_agents: int) -> np.ndarray:
    """A fill pick's estimate per agent: its cheapest required capability, else the mean required cost."""
    mean_cost = float(np.mean(list(cost.values()))) if cost else 0.0
    cheapest = np.full(n_agents, np.inf)
    for c, c_cost in cost.items():  # the required capabilities, in order
        rows = np.array(holders.get(c, []), dtype=np.int64)
        cheapest[rows] = np.minimum(cheapest[rows], c_cost)
    return np.rint(np.where(np.isinf(cheapest), mean_cost, cheapest) * factor).astype(np.int64)


def _cover_entries(
    graph: GraphTensors,
    uncovered: set[str],
    allowed: np.ndarray,
    chosen: list[int],
    cost: dict[str, int],
    factor: float,
    budget_left: float,
) -> list[tuple[int, tuple[str, ...], int]]:
    """(agent row, uncovered capabilities it would cover, their estimated tokens) for each holder that fits."""
    tables = graph.tables
    holders = tables.holders
    covering = sorted({r for c in uncovered for r in holders.get(c, []) if allowed[r] and r not in chosen})
    entries = []
    for r in covering:
        covers = tuple(sorted(uncovered & tables.agent_capabilities.get(tables.agent_ids[r], set())))
        tokens = round(sum(cost[c] for c in covers) * factor)
        if tokens <= budget_left:
            entries.append((r, covers, tokens))
    return entries


# --- The public recommender -----------------------------------------------------------


class RecommendedAgent(BaseModel):
    agent_id: str
    name: str
    handle: str | None
    """What a workflow step names to put this agent to work (template@version, or the ad-hoc agent's name)."""
    model: str
    suitability: float
    """The method's raw score for (agent, task)."""
    suitability_rank: float
    """Its rank among all agents, in (0, 1]."""
    covers: dict[str, float] = Field(default_factory=dict)
    """Capability name → the agent's proficiency, for the required capabilities it was picked to cover."""
    past_collaboration: dict[str, float] = Field(default_factory=dict)
    """Earlier-picked teammate id → WORKED_WITH success score, where they have worked together."""
    estimated_tokens: int
    explanation: str


class TeamRecommendation(BaseModel):
    task_id: str
    method: str
    fallback: bool
    """True when no trained champion exists and a baseline chose the team."""
    note: str
    members: list[RecommendedAgent]
    required: list[str]
    uncovered: list[str]
    coverage: float
    estimated_tokens: int
    token_budget: int


@dataclass
class Recommender:
    """Scores from one method on one snapshot of the graph, cached per task (scoring is then a head call)."""

    snapshot: GraphSnapshot
    method: Method
    scaler: FeatureScaler
    embedder: TextEmbedder
    fallback: bool
    note: str
    _graph: GraphTensors | None = None
    _scorer: PairScorer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _ready(self, task: Task) -> tuple[GraphTensors, PairScorer]:
        with self._lock:
            if self._graph is None or task.id not in self._graph.index[TASK]:
                if task.id not in self.snapshot.tasks:
                    self.snapshot = _with_task(self.snapshot, task)
                self._graph = build_tensors(self.snapshot, self.embedder, self.scaler, cutoff=None)
                self._scorer = self.method.scorer(self._graph, History.before(self.snapshot, self._graph, None))
            assert self._scorer is not None
            return self._graph, self._scorer

    def recommend(
        self, task: Task, size: int | None = None, token_budget: int | None = None, runnable_only: bool = False
    ) -> TeamRecommendation:
        """``runnable_only``: only agents a workflow step can put to work (those with a ``handle``)."""
        graph, scorer = self._ready(task)
        tables = graph.tables
        size = size or team_size_for(len(task.required_capabilities), len(tables.agent_ids))
        budget = task.token_budget if token_budget is None else token_budget
        eligible = (
            {i for i, a in enumerate(tables.agent_ids) if self.snapshot.agents[a].get("handle")}
            if runnable_only
            else None
        )
        team = assemble(graph, graph.index[TASK][task.id], scorer, size=size, token_budget=budget, eligible=eligible)
        names = {c: p.get("name", c) for c, p in self.snapshot.capabilities.items()}
        worked = {(a, b): p for a, b, p in self.snapshot.worked_with}
        members: list[RecommendedAgent] = []
        for pick in team.picks:
            agent_id = tables.agent_ids[pick.agent_row]
            props = self.snapshot.agents[agent_id]
            covers = {names[c]: round(tables.proficiency.get((agent_id, c), 0.0), 4) for c in pick.covers}
            past = {}
            for earlier in members:
                edge = worked.get((agent_id, earlier.agent_id)) or worked.get((earlier.agent_id, agent_id))
                if edge:
                    past[earlier.agent_id] = round(float(edge.get("success_score") or 0.0), 4)
            members.append(
                RecommendedAgent(
                    agent_id=agent_id,
                    name=str(props.get("name", agent_id)),
                    handle=props.get("handle"),
                    model=str(props.get("model", "")),
                    suitability=round(pick.suitability, 6),
                    suitability_rank=round(pick.suitability_rank, 4),
                    covers=covers,
                    past_collaboration=past,
                    estimated_tokens=pick.estimated_tokens,
                    explanation=f"{_explain(covers, pick, past, len(tables.agent_ids))}; ranked by {self.note}",
                )
            )
        required = sorted(set(task.required_capabilities))
        known_required = {n for n in required if capability_id(n) in names}
        uncovered = sorted({names.get(c, c) for c in team.uncovered} | (set(required) - known_required))
        return TeamRecommendation(
            task_id=task.id,
            method=self.method.name,
            fallback=self.fallback,
            note=self.note,
            members=members,
            required=required,
            uncovered=uncovered,
            coverage=(len(required) - len(uncovered)) / len(required) if required else 1.0,
            estimated_tokens=team.estimated_tokens,
            token_budget=budget,
        )


def _explain(covers: dict[str, float], pick: Pick, past: dict[str, float], population: int) -> str:
    parts = []
    if covers:
        parts.append("covers " + ", ".join(f"{name} (proficiency {level:.2f})" for name, level in covers.items()))
    else:
        parts.append("fills a remaining place")
    parts.append(f"suitability {pick.suitability:.3f}, better than {pick.suitability_rank:.0%} of {population} agents")
    if past:
        parts.append("worked with " + ", ".join(f"{peer[:8]} (success {score:.2f})" for peer, score in past.items()))
    elif pick.collaboration_rank is not None:
        parts.append(f"no shared history with the team; predicted collaboration rank {pick.collaboration_rank:.2f}")
    parts.append(f"~{pick.estimated_tokens:,} tokens")
    return "; ".join(parts)


def _with_task(snapshot: GraphSnapshot, task: Task) -> GraphSnapshot:
    """The snapshot plus a task not yet in the graph (a run recommending its team before it is recorded)."""
    props = node_row(task)
    props["created_at"] = task.created_at
    requires = [
        (task.id, capability_id(name), {"importance": 1.0, "complexity": task.complexity})
        for name in task.required_capabilities
        if capability_id(name) in snapshot.capabilities
    ]
    return GraphSnapshot(
        agents=snapshot.agents,
        capabilities=snapshot.capabilities,
        tasks={**snapshot.tasks, task.id: props},
        has_capability=snapshot.has_capability,
        requires=sorted(snapshot.requires + requires, key=lambda e: (e[0], e[1])),
        worked_with=snapshot.worked_with,
        teams=snapshot.teams,
    )
