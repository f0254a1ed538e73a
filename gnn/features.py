"""Seed 000's features of the agents, capabilities and tasks of a snapshot, and of the edges between them.

The raw records are the models of :mod:`agentparty.models.gnn`, computed as follows:

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
  other agent's capabilities that are equal or listed compatible to one's own),
  ``messages_exchanged`` (the pair's ASKED questions and answers, both ways; an
  extension: a fifth column only models trained on a history with hand-offs
  read, see :func:`collaboration_width`).
* Capability edge: ``proficiency``, ``usage_count``, ``token_efficiency``.
* Requirement edge: ``importance``, ``complexity``.

Node and edge features are computed once per snapshot (:class:`NodeTables`);
only the collaboration edges depend on the period a graph is built for
(:func:`collaboration_edges`), because they may see only the teams before it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import torch

from agentparty.gnn.snapshot import GraphSnapshot
from agentparty.models.gnn import (
    AgentFeatures,
    CapabilityEdgeFeatures,
    CapabilityFeatures,
    CollaborationEdgeFeatures,
    RequirementEdgeFeatures,
    TaskFeatures,
)

AGENT, CAPABILITY, TASK = "Agent", "Capability", "Task"
COLLABORATION = (AGENT, "WORKED_WITH", AGENT)
HOLDS = (AGENT, "HAS_CAPABILITY", CAPABILITY)
HELD_BY = (CAPABILITY, "rev_HAS_CAPABILITY", AGENT)
NEEDS = (TASK, "REQUIRES", CAPABILITY)
NEEDED_BY = (CAPABILITY, "rev_REQUIRES", TASK)
EDGE_TYPES = (COLLABORATION, HOLDS, HELD_BY, NEEDS, NEEDED_BY)
RECENCY_DAYS = 90.0
COLLABORATION_FEATURES = 5
"""Collaboration edge columns: success, task count, recency, compatibility, messages exchanged."""
LEGACY_COLLABORATION_FEATURES = 4
"""The columns before ``messages_exchanged``: what models trained without hand-offs in their history read."""


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
        return {
            AGENT: feature_matrix(self.agents, 4),
            CAPABILITY: feature_matrix(self.capabilities, 3),
            TASK: feature_matrix(self.tasks, 4),
        }


def node_tables(snapshot: GraphSnapshot) -> NodeTables:
    """Seed features of every node and of the HAS_CAPABILITY / REQUIRES edges (the same for every period)."""
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
                proficiency=min(1.0, max(0.0, float(props.get("proficiency") or 0.0))),
                usage_count=int(props.get("usage_count") or 0),
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
            needs_features.append(
                RequirementEdgeFeatures(
                    importance=min(1.0, max(0.0, float(props.get("importance", 1.0)))),
                    complexity=min(1.0, max(0.0, float(props.get("complexity", 0.5)))),
                )
            )
    names = {c: snapshot.capabilities[c].get("name", "") for c in capability_ids}

    agents, agent_texts = _agent_features(
        snapshot, agent_ids, agent_caps=agent_caps, proficiency=proficiency, usage=usage, names=names
    )

    capabilities, capability_texts = _capability_features(
        snapshot, capability_ids, requirement_count=requirement_count, n_tasks=max(1, len(task_ids))
    )
    tasks, task_texts = _task_features(snapshot, task_ids, task_caps=task_caps)
    return NodeTables(
        agent_ids,
        capability_ids,
        task_ids,
        agents,
        capabilities,
        tasks,
        agent_texts,
        capability_texts,
        task_texts,
        dict(agent_caps),
        dict(task_caps),
        proficiency,
        holds=(_edge_index(holds_rows), feature_matrix(holds_features, 3)),
        needs=(_edge_index(needs_rows), feature_matrix(needs_features, 2)),
    )


def _agent_features(
    snapshot: GraphSnapshot,
    agent_ids: list[str],
    *,
    agent_caps: dict[str, set[str]],
    proficiency: dict[tuple[str, str], float],
    usage: dict[str, list[tuple[int, float]]],
    names: dict[str, str],
) -> tuple[list[AgentFeatures], list[str]]:
    """Each agent's seed features (from its capability edges) and the text its embedding is made of."""
    agents, agent_texts = [], []
    for a in agent_ids:
        props = snapshot.agents[a]
        held = sorted(agent_caps.get(a, ()))
        levels = [proficiency[(a, c)] for c in held]
        uses = usage.get(a, [])
        total_uses = sum(u for u, _ in uses)
        agents.append(
            AgentFeatures(
                reliability_score=float(props.get("reliability_score", 0.5)),
                capability_count=len(held),
                avg_proficiency=float(np.mean(levels)) if levels else 0.0,
                token_efficiency=sum(u * e for u, e in uses) / total_uses if total_uses else 0.0,
            )
        )
        held_names = ", ".join(names[c] for c in held)
        agent_texts.append(f"{props.get('name', '')}. {props.get('personality', '')}. Capabilities: {held_names}")
    return agents, agent_texts


def _capability_features(
    snapshot: GraphSnapshot, capability_ids: list[str], *, requirement_count: dict[str, int], n_tasks: int
) -> tuple[list[CapabilityFeatures], list[str]]:
    """Each capability's seed features (its share of the tasks requiring it) and the text its embedding is made of."""
    capabilities, capability_texts = [], []
    for c in capability_ids:
        props = snapshot.capabilities[c]
        capabilities.append(
            CapabilityFeatures(
                token_cost=int(props.get("token_cost") or 0),
                usage_frequency=requirement_count.get(c, 0) / n_tasks,
                compatibility_count=len(props.get("compatibility") or []),
            )
        )
        capability_texts.append(f"{props.get('name', '')}: {props.get('description', '')}")
    return capabilities, capability_texts


def _task_features(
    snapshot: GraphSnapshot, task_ids: list[str], *, task_caps: dict[str, list[str]]
) -> tuple[list[TaskFeatures], list[str]]:
    """Each task's seed features (from its REQUIRES edges) and the text its embedding is made of."""
    tasks, task_texts = [], []
    for t in task_ids:
        props = snapshot.tasks[t]
        tasks.append(
            TaskFeatures(
                complexity=float(props.get("complexity", 0.5)),
                priority=int(props.get("priority", 3)),
                capability_count=len(task_caps.get(t, [])),
                token_budget=int(props.get("token_budget") or 0),
            )
        )
        task_texts.append(f"{props.get('title', '')}. {props.get('description', '')}")
    return tasks, task_texts


def _edge_index(rows: list[tuple[int, int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 2).t().contiguous()


def pair_compatibility(
    tables: NodeTables, compat_names: dict[str, set[str]], names: dict[str, str], a: str, b: str
) -> float:
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
    messages = pair_messages(snapshot, cutoff)
    if cutoff is None:
        now = snapshot.reference_time()
        rows = [
            (
                a,
                b,
                float(p.get("success_score") or 0.0),
                int(p.get("task_count") or 1),
                p.get("last_collaboration") or now,
            )
            for a, b, p in snapshot.worked_with
            if a in snapshot.agents and b in snapshot.agents
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
                for b in members[i + 1 :]:
                    scores[(a, b)].append(team.performance_score)
                    last[(a, b)] = team.created_at
        rows = [(a, b, float(np.mean(s)), len(s), last[(a, b)]) for (a, b), s in sorted(scores.items())]
    edges = []
    for a, b, score, count, when in rows:
        age_days = max(0.0, (now - when).total_seconds() / 86400)
        edges.append(
            (
                a,
                b,
                CollaborationEdgeFeatures(
                    success_score=min(1.0, max(0.0, score)),
                    task_count=count,
                    recency=math.exp(-age_days / RECENCY_DAYS),
                    compatibility=pair_compatibility(tables, compat, names, a, b),
                    messages_exchanged=messages.get((min(a, b), max(a, b)), 0),
                ),
            )
        )
    return edges


def pair_messages(snapshot: GraphSnapshot, cutoff: datetime | None) -> dict[tuple[str, str], int]:
    """(smaller id, larger id) → the pair's ASKED questions and answers, both ways; with ``cutoff``, only those of
    tasks whose team was formed before it (what the rebuilt WORKED_WITH edges see)."""
    before = None if cutoff is None else {t.task_id for t in snapshot.teams if t.created_at < cutoff}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for a, b, props in snapshot.asked:
        if before is not None and props.get("task_id") not in before:
            continue
        counts[(min(a, b), max(a, b))] += int(props.get("questions") or 0) + int(props.get("answers") or 0)
    return dict(counts)


def collaboration_width(snapshot: GraphSnapshot, trained: int | None) -> int:
    """How many collaboration columns a model reads: ``trained`` (its scaler's, when it has one), else all of them
    when the history has hand-offs and the legacy four when not (an all-zero column would teach nothing, and
    leaving it out keeps a history without hand-offs training exactly the model it trained before)."""
    if trained is None:
        return COLLABORATION_FEATURES if snapshot.asked else LEGACY_COLLABORATION_FEATURES
    if trained not in (LEGACY_COLLABORATION_FEATURES, COLLABORATION_FEATURES):
        raise ValueError(
            f"the model was trained on {trained} collaboration edge features; this version computes "
            f"{LEGACY_COLLABORATION_FEATURES} or {COLLABORATION_FEATURES}: retrain it (agentparty gnn train)"
        )
    return trained


def feature_matrix(records: list[Any], width: int) -> np.ndarray:
    """The records' scalar features as rows of a ``len(records)`` × ``width`` matrix."""
    return np.array([r.scalar_features() for r in records], dtype=np.float64).reshape(len(records), width)
