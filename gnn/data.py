"""From the graph to tensors: a snapshot of the history, seed 000's features, a time split, a ``HeteroData``.

**Snapshot.** :class:`GraphSnapshot` holds what training reads: agents,
capabilities, tasks, their HAS_CAPABILITY / REQUIRES / WORKED_WITH edges, and the
finished teams (members, task, score). It is built from the graph export
(:meth:`GraphSnapshot.from_records`) or straight from a batch about to be
written (:meth:`GraphSnapshot.from_batch`, which the large benchmark uses); both
give the same snapshot. :meth:`GraphSnapshot.digest` hashes exactly the data
features and labels are built from: the "data snapshot hash" of a trained model.

**Features** are seed 000's, computed as follows (the raw records are the
models of :mod:`agentparty.models.gnn`):

* Agent: ``reliability_score`` (node), ``capability_count`` (HAS_CAPABILITY
  edges), ``avg_proficiency`` (their mean proficiency), ``token_efficiency``
  (tokens per use: the capability edges' token efficiency, weighted by usage),
  embeddings of ``"{name}. {personality}. Capabilities: …"``.
* Capability: ``token_cost``, ``usage_frequency`` (share of tasks requiring it),
  ``compatibility_count`` (its ``compatibility`` list), embeddings of
  ``"{name}: {description}"``.
* Task: ``complexity``, ``priority``, ``capability_count`` (REQUIRES edges),
  ``token_budget``, embeddings of ``"{title}. {description}"``.
* Collaboration edge: ``success_score``, ``task_count``, ``recency``
  (exp(−age/:data:`RECENCY_DAYS`) against the snapshot's latest time, never the
  wall clock), ``compatibility`` (mean over both directions of the share of the
  other agent's capabilities that are equal or listed compatible to one's own).
* Capability edge: ``proficiency``, ``usage_count``, ``token_efficiency``.
* Requirement edge: ``importance``, ``complexity``.

Counts and token figures enter the network as log1p, and every column is
standardised with statistics fitted on the training snapshot and saved with the
model (:class:`FeatureScaler`), so a later graph is scaled the same way.

**Time split.** Tasks are ordered by ``created_at``: the last ``test_split`` are
the test tasks, the ``validation_split`` before them validation, the rest train.
Collaboration edges are rebuilt from the teams that finished before a period
starts, so no model sees a later team's co-membership (the stored WORKED_WITH
aggregates every team). Node aggregates (reliability, proficiency) are the
graph's current values and do include later outcomes: a mild leak, shared by
every method compared.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch
from torch_geometric.data import HeteroData

from agentparty.gnn.embeddings import TextEmbedder
from agentparty.gnn.synthetic import TeamRecord, outsider
from agentparty.models.config import GNNTrainingConfig
from agentparty.models.gnn import (
    AgentFeatures,
    CapabilityEdgeFeatures,
    CapabilityFeatures,
    CollaborationEdgeFeatures,
    RequirementEdgeFeatures,
    TaskFeatures,
)
from agentparty.runtime.graph_reads import ExportRecord
from agentparty.runtime.graph_store import GraphBatch, graph_value, node_row

AGENT, CAPABILITY, TASK = "Agent", "Capability", "Task"
COLLABORATION = (AGENT, "WORKED_WITH", AGENT)
HOLDS = (AGENT, "HAS_CAPABILITY", CAPABILITY)
HELD_BY = (CAPABILITY, "rev_HAS_CAPABILITY", AGENT)
NEEDS = (TASK, "REQUIRES", CAPABILITY)
NEEDED_BY = (CAPABILITY, "rev_REQUIRES", TASK)
EDGE_TYPES = (COLLABORATION, HOLDS, HELD_BY, NEEDS, NEEDED_BY)
RECENCY_DAYS = 90.0
NEGATIVES_PER_POSITIVE = 3


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if hasattr(value, "to_native"):
        value = value.to_native()
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@dataclass
class GraphSnapshot:
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    has_capability: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    requires: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    worked_with: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    teams: list[TeamRecord] = field(default_factory=list)
    """Finished teams (with a performance score), oldest first."""

    @classmethod
    def from_records(cls, records: Iterable[ExportRecord]) -> GraphSnapshot:
        snapshot = cls()
        team_nodes: dict[str, dict[str, Any]] = {}
        members: dict[str, list[str]] = defaultdict(list)
        works_on: dict[str, str] = {}
        for record in records:
            props = record.properties
            if record.kind == "node":
                target = {"Agent": snapshot.agents, "Capability": snapshot.capabilities, "Task": snapshot.tasks, "Team": team_nodes}.get(record.label)
                if target is not None:
                    target[props["id"]] = props
                continue
            assert record.source is not None and record.target is not None
            if record.label == "HAS_CAPABILITY":
                snapshot.has_capability.append((record.source, record.target, props))
            elif record.label == "REQUIRES":
                snapshot.requires.append((record.source, record.target, props))
            elif record.label == "WORKED_WITH":
                snapshot.worked_with.append((record.source, record.target, props))
            elif record.label == "MEMBER_OF":
                members[record.target].append(record.source)
            elif record.label == "WORKS_ON":
                works_on[record.source] = record.target
        for team_id, props in team_nodes.items():
            task_id = works_on.get(team_id)
            if task_id is None or props.get("performance_score") is None or task_id not in snapshot.tasks:
                continue  # unfinished, or not attached to a task: no outcome to learn from
            snapshot.teams.append(TeamRecord(
                team_id, task_id, tuple(sorted(members.get(team_id, ()))), float(props["performance_score"]),
                _utc(props["created_at"]) or datetime.min.replace(tzinfo=timezone.utc),
            ))
        snapshot._normalise()
        return snapshot

    @classmethod
    def from_batch(cls, batch: GraphBatch) -> GraphSnapshot:
        """The snapshot the graph will export once ``batch`` is written to an empty graph."""

        def records() -> Iterable[ExportRecord]:
            for node in batch.nodes:
                yield ExportRecord(kind="node", label=node.label, properties=node_row(node))
            for edge in batch.edges:
                props = {k: graph_value(v) for k, v in edge.props.model_dump().items() if v is not None}
                yield ExportRecord(kind="edge", label=edge.props.type, source=edge.source_id, target=edge.target_id, properties=props)

        return cls.from_records(records())

    def _normalise(self) -> None:
        self.teams.sort(key=lambda t: (t.created_at, t.team_id))
        self.has_capability.sort(key=lambda e: (e[0], e[1]))
        self.requires.sort(key=lambda e: (e[0], e[1]))
        self.worked_with.sort(key=lambda e: (e[0], e[1]))
        for task in self.tasks.values():
            task["created_at"] = _utc(task.get("created_at"))
        for _, _, props in self.worked_with:
            props["last_collaboration"] = _utc(props.get("last_collaboration"))

    def reference_time(self) -> datetime:
        """The snapshot's "now": its latest task, team or collaboration (never the wall clock: determinism)."""
        times = [t["created_at"] for t in self.tasks.values() if t.get("created_at")]
        times += [t.created_at for t in self.teams]
        times += [p["last_collaboration"] for _, _, p in self.worked_with if p.get("last_collaboration")]
        return max(times) if times else datetime(1970, 1, 1, tzinfo=timezone.utc)

    def digest(self) -> str:
        """SHA-256 of the data features and labels come from (canonical JSON)."""
        def agent(p: dict[str, Any]) -> list[Any]:
            return [p["id"], p.get("name"), p.get("personality", ""), p.get("reliability_score")]

        payload = {
            "agents": sorted(agent(p) for p in self.agents.values()),
            "capabilities": sorted(
                [p["id"], p.get("name"), p.get("description", ""), p.get("token_cost"), sorted(p.get("compatibility") or [])]
                for p in self.capabilities.values()
            ),
            "tasks": sorted(
                [p["id"], p.get("title"), p.get("description", ""), p.get("complexity"), p.get("priority"), p.get("token_budget"),
                 p["created_at"].isoformat() if p.get("created_at") else None]
                for p in self.tasks.values()
            ),
            "has_capability": [[s, t, p.get("proficiency"), p.get("usage_count"), p.get("token_efficiency")] for s, t, p in self.has_capability],
            "requires": [[s, t, p.get("importance"), p.get("complexity")] for s, t, p in self.requires],
            "worked_with": [
                [s, t, p.get("success_score"), p.get("task_count"), p["last_collaboration"].isoformat() if p.get("last_collaboration") else None]
                for s, t, p in self.worked_with
            ],
            "teams": [[t.team_id, t.task_id, list(t.members), t.performance_score, t.created_at.isoformat()] for t in self.teams],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# --- Seed features --------------------------------------------------------------------


@dataclass
class NodeTables:
    """Seed feature records per node, in a fixed order (ids sorted), with the texts to embed."""

    agent_ids: list[str]
    capability_ids: list[str]
    task_ids: list[str]
    agents: list[AgentFeatures]
    capabilities: list[CapabilityFeatures]
    tasks: list[TaskFeatures]
    agent_texts: list[str]
    capability_texts: list[str]
    task_texts: list[str]
    agent_capabilities: dict[str, set[str]]
    """Agent id → capability ids it holds."""
    task_capabilities: dict[str, list[str]]
    """Task id → required capability ids."""
    proficiency: dict[tuple[str, str], float]
    holds: tuple[torch.Tensor, np.ndarray]
    """HAS_CAPABILITY edges: (2 × E agent/capability rows, raw E × 3 features); the same for every cutoff."""
    needs: tuple[torch.Tensor, np.ndarray]
    """REQUIRES edges: (2 × E task/capability rows, raw E × 2 features)."""

    @cached_property
    def index(self) -> dict[str, dict[str, int]]:
        return {
            AGENT: {a: i for i, a in enumerate(self.agent_ids)},
            CAPABILITY: {c: i for i, c in enumerate(self.capability_ids)},
            TASK: {t: i for i, t in enumerate(self.task_ids)},
        }

    @cached_property
    def holders(self) -> dict[str, list[int]]:
        """Capability id → rows of the agents holding it (team assembly's inverted index)."""
        holders: dict[str, list[int]] = defaultdict(list)
        for row, agent_id in enumerate(self.agent_ids):
            for cap in self.agent_capabilities.get(agent_id, ()):
                holders[cap].append(row)
        return dict(holders)

    @cached_property
    def raw(self) -> dict[str, np.ndarray]:
        """Unscaled scalar node features, one matrix per node type."""
        return {AGENT: _matrix(self.agents, 4), CAPABILITY: _matrix(self.capabilities, 3), TASK: _matrix(self.tasks, 4)}


def node_tables(snapshot: GraphSnapshot) -> NodeTables:
    agent_ids = sorted(snapshot.agents)
    capability_ids = sorted(snapshot.capabilities)
    task_ids = sorted(snapshot.tasks)
    agent_row = {a: i for i, a in enumerate(agent_ids)}
    capability_row = {c: i for i, c in enumerate(capability_ids)}
    task_row = {t: i for i, t in enumerate(task_ids)}

    agent_caps: dict[str, set[str]] = defaultdict(set)
    proficiency: dict[tuple[str, str], float] = {}
    usage: dict[str, list[tuple[int, float]]] = defaultdict(list)
    holds_rows: list[tuple[int, int]] = []
    holds_features: list[CapabilityEdgeFeatures] = []
    for agent_id, cap_id, props in snapshot.has_capability:
        if agent_id in agent_row and cap_id in capability_row:
            edge = CapabilityEdgeFeatures(
                proficiency=min(1.0, max(0.0, float(props.get("proficiency") or 0.0))), usage_count=int(props.get("usage_count") or 0),
                token_efficiency=max(0.0, float(props.get("token_efficiency") or 0.0)),
            )
            agent_caps[agent_id].add(cap_id)
            proficiency[(agent_id, cap_id)] = edge.proficiency
            usage[agent_id].append((edge.usage_count, edge.token_efficiency))
            holds_rows.append((agent_row[agent_id], capability_row[cap_id]))
            holds_features.append(edge)
    task_caps: dict[str, list[str]] = defaultdict(list)
    requirement_count: dict[str, int] = defaultdict(int)
    needs_rows: list[tuple[int, int]] = []
    needs_features: list[RequirementEdgeFeatures] = []
    for task_id, cap_id, props in snapshot.requires:
        if task_id in task_row and cap_id in capability_row:
            task_caps[task_id].append(cap_id)
            requirement_count[cap_id] += 1
            needs_rows.append((task_row[task_id], capability_row[cap_id]))
            needs_features.append(RequirementEdgeFeatures(
                importance=min(1.0, max(0.0, float(props.get("importance", 1.0)))),
                complexity=min(1.0, max(0.0, float(props.get("complexity", 0.5)))),
            ))
    names = {c: snapshot.capabilities[c].get("name", "") for c in capability_ids}

    agents, agent_texts = [], []
    for a in agent_ids:
        props = snapshot.agents[a]
        held = sorted(agent_caps.get(a, ()))
        levels = [proficiency[(a, c)] for c in held]
        uses = usage.get(a, [])
        total_uses = sum(u for u, _ in uses)
        agents.append(AgentFeatures(
            reliability_score=float(props.get("reliability_score", 0.5)),
            capability_count=len(held),
            avg_proficiency=float(np.mean(levels)) if levels else 0.0,
            token_efficiency=sum(u * e for u, e in uses) / total_uses if total_uses else 0.0,
        ))
        agent_texts.append(f"{props.get('name', '')}. {props.get('personality', '')}. Capabilities: {', '.join(names[c] for c in held)}")

    n_tasks = max(1, len(task_ids))
    capabilities, capability_texts = [], []
    for c in capability_ids:
        props = snapshot.capabilities[c]
        capabilities.append(CapabilityFeatures(
            token_cost=int(props.get("token_cost") or 0),
            usage_frequency=requirement_count.get(c, 0) / n_tasks,
            compatibility_count=len(props.get("compatibility") or []),
        ))
        capability_texts.append(f"{props.get('name', '')}: {props.get('description', '')}")

    tasks, task_texts = [], []
    for t in task_ids:
        props = snapshot.tasks[t]
        tasks.append(TaskFeatures(
            complexity=float(props.get("complexity", 0.5)), priority=int(props.get("priority", 3)),
            capability_count=len(task_caps.get(t, [])), token_budget=int(props.get("token_budget") or 0),
        ))
        task_texts.append(f"{props.get('title', '')}. {props.get('description', '')}")
    return NodeTables(
        agent_ids, capability_ids, task_ids, agents, capabilities, tasks, agent_texts, capability_texts, task_texts,
        dict(agent_caps), dict(task_caps), proficiency,
        holds=(_edge_index(holds_rows), _matrix(holds_features, 3)), needs=(_edge_index(needs_rows), _matrix(needs_features, 2)),
    )


def _edge_index(rows: list[tuple[int, int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 2).t().contiguous()


def pair_compatibility(tables: NodeTables, compat_names: dict[str, set[str]], names: dict[str, str], a: str, b: str) -> float:
    """Mean over both directions of the share of the other's capabilities equal or compatible to one's own."""
    def share(mine: set[str], theirs: set[str]) -> float:
        if not theirs:
            return 0.0
        reach = {names[c] for c in mine} | set().union(*(compat_names.get(c, set()) for c in mine)) if mine else set()
        return sum(1 for c in theirs if names[c] in reach) / len(theirs)

    caps_a, caps_b = tables.agent_capabilities.get(a, set()), tables.agent_capabilities.get(b, set())
    return (share(caps_a, caps_b) + share(caps_b, caps_a)) / 2


def collaboration_edges(
    snapshot: GraphSnapshot, tables: NodeTables, cutoff: datetime | None
) -> list[tuple[str, str, CollaborationEdgeFeatures]]:
    """WORKED_WITH features: from the stored edges (``cutoff`` None), or rebuilt from the teams before ``cutoff``.

    Rebuilt edges follow the engine's rules (running mean of team scores, task
    count, time of the latest shared team), so both paths agree on a graph
    whose every team is in the snapshot.
    """
    names = {c: p.get("name", "") for c, p in snapshot.capabilities.items()}
    compat = {c: set(p.get("compatibility") or []) for c, p in snapshot.capabilities.items()}
    if cutoff is None:
        now = snapshot.reference_time()
        rows = [
            (a, b, float(p.get("success_score") or 0.0), int(p.get("task_count") or 1), p.get("last_collaboration") or now)
            for a, b, p in snapshot.worked_with if a in snapshot.agents and b in snapshot.agents
        ]
    else:
        now = cutoff
        scores: dict[tuple[str, str], list[float]] = defaultdict(list)
        last: dict[tuple[str, str], datetime] = {}
        for team in snapshot.teams:
            if team.created_at >= cutoff:
                break
            members = sorted(set(team.members) & snapshot.agents.keys())
            for i, a in enumerate(members):
                for b in members[i + 1:]:
                    scores[(a, b)].append(team.performance_score)
                    last[(a, b)] = team.created_at
        rows = [(a, b, float(np.mean(s)), len(s), last[(a, b)]) for (a, b), s in sorted(scores.items())]
    edges = []
    for a, b, score, count, when in rows:
        age_days = max(0.0, (now - when).total_seconds() / 86400)
        edges.append((a, b, CollaborationEdgeFeatures(
            success_score=min(1.0, max(0.0, score)), task_count=count, recency=math.exp(-age_days / RECENCY_DAYS),
            compatibility=pair_compatibility(tables, compat, names, a, b),
        )))
    return edges


# --- Tensors --------------------------------------------------------------------------

_LOG_COLUMNS = {
    AGENT: (1, 3),  # capability_count, token_efficiency
    CAPABILITY: (0, 2),  # token_cost, compatibility_count
    TASK: (2, 3),  # capability_count, token_budget
    COLLABORATION: (1,),  # task_count
    HOLDS: (1, 2),  # usage_count, token_efficiency
    NEEDS: (),
}


@dataclass
class FeatureScaler:
    """log1p on counts and token figures, then per-column standardisation fitted once (saved with a model)."""

    mean: dict[str, list[float]] = field(default_factory=dict)
    std: dict[str, list[float]] = field(default_factory=dict)

    @staticmethod
    def key(kind: str | tuple[str, str, str]) -> str:
        return kind if isinstance(kind, str) else "|".join(kind)

    def transform(self, kind: str | tuple[str, str, str], raw: np.ndarray, fit: bool) -> np.ndarray:
        values = raw.astype(np.float64).copy()
        for column in _LOG_COLUMNS.get(kind, ()):  # type: ignore[call-overload]
            values[:, column] = np.log1p(np.maximum(values[:, column], 0.0))
        name = self.key(kind)
        if fit or name not in self.mean:
            mean = values.mean(axis=0) if len(values) else np.zeros(values.shape[1])
            std = values.std(axis=0) if len(values) else np.ones(values.shape[1])
            self.mean[name], self.std[name] = mean.tolist(), np.where(std < 1e-8, 1.0, std).tolist()
        return ((values - np.array(self.mean[name])) / np.array(self.std[name])).astype(np.float32)


@dataclass
class GraphTensors:
    """One ``HeteroData`` and the id ↔ row maps of its nodes."""

    data: HeteroData
    tables: NodeTables

    @property
    def index(self) -> dict[str, dict[str, int]]:
        return self.tables.index


def _matrix(records: list[Any], width: int) -> np.ndarray:
    return np.array([r.scalar_features() for r in records], dtype=np.float64).reshape(len(records), width)


def build_tensors(
    snapshot: GraphSnapshot, embedder: TextEmbedder, scaler: FeatureScaler, *, cutoff: datetime | None, fit: bool = False,
    tables: NodeTables | None = None, embeddings: dict[str, np.ndarray] | None = None,
) -> GraphTensors:
    """The message-passing graph: seed features on nodes and edges, the three edge types plus reverses."""
    tables = tables or node_tables(snapshot)
    index = tables.index
    embeddings = embeddings or embed_nodes(tables, embedder)
    data = HeteroData()
    for kind, count in ((AGENT, len(tables.agents)), (CAPABILITY, len(tables.capabilities)), (TASK, len(tables.tasks))):
        scalars = scaler.transform(kind, tables.raw[kind], fit)
        data[kind].x = torch.from_numpy(np.concatenate([scalars, embeddings[kind]], axis=1))
        data[kind].num_nodes = count

    collab = collaboration_edges(snapshot, tables, cutoff)
    src = [index[AGENT][a] for a, _, _ in collab]
    dst = [index[AGENT][b] for _, b, _ in collab]
    attr = scaler.transform(COLLABORATION, _matrix([f for _, _, f in collab], 4), fit)
    data[COLLABORATION].edge_index = torch.tensor([src + dst, dst + src], dtype=torch.long).reshape(2, -1)
    data[COLLABORATION].edge_attr = torch.from_numpy(np.concatenate([attr, attr])).reshape(-1, 4)

    for forward, backward, width, (edge_index, raw) in ((HOLDS, HELD_BY, 3, tables.holds), (NEEDS, NEEDED_BY, 2, tables.needs)):
        attr_t = torch.from_numpy(scaler.transform(forward, raw, fit)).reshape(-1, width)
        data[forward].edge_index, data[forward].edge_attr = edge_index, attr_t
        data[backward].edge_index, data[backward].edge_attr = edge_index.flip(0), attr_t
    return GraphTensors(data, tables)


def embed_nodes(tables: NodeTables, embedder: TextEmbedder) -> dict[str, np.ndarray]:
    texts = tables.agent_texts + tables.capability_texts + tables.task_texts
    vectors = embedder.embed(texts) if texts else np.zeros((0, embedder.dim), dtype=np.float32)
    a, c = len(tables.agent_texts), len(tables.capability_texts)
    return {AGENT: vectors[:a], CAPABILITY: vectors[a:a + c], TASK: vectors[a + c:]}


# --- Split and labels -------------------------------------------------------------------


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


def time_split(snapshot: GraphSnapshot, config: GNNTrainingConfig) -> TimeSplit:
    ordered = sorted(snapshot.tasks, key=lambda t: (snapshot.tasks[t]["created_at"], t))
    n = len(ordered)
    n_test = max(1, round(n * config.test_split)) if n >= 3 else 0
    n_val = max(1, round(n * config.validation_split)) if n >= 3 else 0
    train, val, test = ordered[: n - n_val - n_test], ordered[n - n_val - n_test: n - n_test], ordered[n - n_test:]
    far = datetime.max.replace(tzinfo=timezone.utc)
    val_start = snapshot.tasks[val[0]]["created_at"] if val else far
    test_start = snapshot.tasks[test[0]]["created_at"] if test else far
    train_set = set(train)
    train_teams = [t for t in snapshot.teams if t.task_id in train_set]
    window = int(np.ceil(len(train_teams) * PAIR_SUPERVISION_SHARE))
    pair_start = train_teams[-window].created_at if window else val_start
    return TimeSplit(train, val, test, pair_start, val_start, test_start)


def examples(snapshot: GraphSnapshot, tensors: GraphTensors, tasks: Iterable[str], seed: int, pairs_from: datetime | None = None) -> Examples:
    """Members of the period's teams (label: the team succeeded), and sampled non-members (label 0);
    member pairs of its teams created at or after ``pairs_from`` (label: the team succeeded)."""
    rng = np.random.default_rng(seed)
    wanted = set(tasks)
    agents, task_rows = tensors.index[AGENT], tensors.index[TASK]
    n_agents = len(agents)
    sa, st, sl, pa, pb, pl, s_target, p_target = [], [], [], [], [], [], [], []
    for team in snapshot.teams:
        if team.task_id not in wanted:
            continue
        members = [agents[m] for m in team.members if m in agents]
        label = 1.0 if team.succeeded else 0.0
        t = task_rows[team.task_id]
        for m in members:
            sa.append(m), st.append(t), sl.append(label), s_target.append(team.performance_score)
        taken = set(members)
        for _ in range(min(n_agents - len(taken), NEGATIVES_PER_POSITIVE * len(members))):
            m = outsider(rng, n_agents, taken)
            taken.add(m)
            sa.append(m), st.append(t), sl.append(0.0), s_target.append(0.0)
        if pairs_from is not None and team.created_at < pairs_from:
            continue
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                pa.append(a), pb.append(b), pl.append(label), p_target.append(team.performance_score)
    ints = [np.array(v, dtype=np.int64) for v in (sa, st, pa, pb)]
    floats = [np.array(v, dtype=np.float32) for v in (sl, pl, s_target, p_target)]
    return Examples(ints[0], ints[1], floats[0], ints[2], ints[3], floats[1], floats[2], floats[3])
