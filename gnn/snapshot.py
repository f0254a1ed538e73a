"""What GNN training reads from the graph: a snapshot of the history (DESIGN.md §8).

:class:`GraphSnapshot` holds agents, capabilities, tasks, their HAS_CAPABILITY /
REQUIRES / WORKED_WITH / ASKED edges, and the finished teams (members, task, score). It
is built from the graph export (:meth:`GraphSnapshot.from_records`) or straight
from a batch about to be written (:meth:`GraphSnapshot.from_batch`, which the
large benchmark uses); both give the same snapshot. :meth:`GraphSnapshot.digest`
hashes exactly the data features and labels are built from: the "data snapshot
hash" of a trained model. Everything after this step works on the snapshot
alone, never on the graph, so a training run sees one consistent history.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentparty.gnn.synthetic import TeamRecord
from agentparty.runtime.graph_reads import ExportRecord
from agentparty.runtime.graph_store import GraphBatch, graph_value, node_row


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if hasattr(value, "to_native"):
        value = value.to_native()
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class GraphSnapshot:
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    has_capability: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    requires: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    worked_with: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    asked: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    """ASKED links (asker, asked, properties): who handed sub-questions to whom, per task and slot."""
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
                tables = {
                    "Agent": snapshot.agents,
                    "Capability": snapshot.capabilities,
                    "Task": snapshot.tasks,
                    "Team": team_nodes,
                }
                target = tables.get(record.label)
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
            elif record.label == "ASKED":
                snapshot.asked.append((record.source, record.target, props))
            elif record.label == "MEMBER_OF":
                members[record.target].append(record.source)
            elif record.label == "WORKS_ON":
                works_on[record.source] = record.target
        for team_id, props in team_nodes.items():
            task_id = works_on.get(team_id)
            if task_id is None or props.get("performance_score") is None or task_id not in snapshot.tasks:
                continue  # unfinished, or not attached to a task: no outcome to learn from
            snapshot.teams.append(
                TeamRecord(
                    team_id,
                    task_id,
                    tuple(sorted(members.get(team_id, ()))),
                    float(props["performance_score"]),
                    _utc(props["created_at"]) or datetime.min.replace(tzinfo=UTC),
                )
            )
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
                yield ExportRecord(
                    kind="edge", label=edge.props.type, source=edge.source_id, target=edge.target_id, properties=props
                )

        return cls.from_records(records())

    def _normalise(self) -> None:
        self.teams.sort(key=lambda t: (t.created_at, t.team_id))
        self.has_capability.sort(key=lambda e: (e[0], e[1]))
        self.requires.sort(key=lambda e: (e[0], e[1]))
        self.worked_with.sort(key=lambda e: (e[0], e[1]))
        self.asked.sort(key=lambda e: (e[0], e[1], str(e[2].get("task_id")), str(e[2].get("step_id"))))
        for task in self.tasks.values():
            task["created_at"] = _utc(task.get("created_at"))
        for _, _, props in self.worked_with:
            props["last_collaboration"] = _utc(props.get("last_collaboration"))

    def reference_time(self) -> datetime:
        """The snapshot's "now": its latest task, team or collaboration (never the wall clock: determinism)."""
        times = [t["created_at"] for t in self.tasks.values() if t.get("created_at")]
        times += [t.created_at for t in self.teams]
        times += [p["last_collaboration"] for _, _, p in self.worked_with if p.get("last_collaboration")]
        return max(times) if times else datetime(1970, 1, 1, tzinfo=UTC)

    def digest(self) -> str:
        """SHA-256 of the data features and labels come from (canonical JSON)."""

        def agent(p: dict[str, Any]) -> list[Any]:
            return [p["id"], p.get("name"), p.get("personality", ""), p.get("reliability_score")]

        payload = {
            "agents": sorted(agent(p) for p in self.agents.values()),
            "capabilities": sorted(
                [
                    p["id"],
                    p.get("name"),
                    p.get("description", ""),
                    p.get("token_cost"),
                    sorted(p.get("compatibility") or []),
                ]
                for p in self.capabilities.values()
            ),
            "tasks": sorted(
                [
                    p["id"],
                    p.get("title"),
                    p.get("description", ""),
                    p.get("complexity"),
                    p.get("priority"),
                    p.get("token_budget"),
                    p["created_at"].isoformat() if p.get("created_at") else None,
                ]
                for p in self.tasks.values()
            ),
            "has_capability": [
                [s, t, p.get("proficiency"), p.get("usage_count"), p.get("token_efficiency")]
                for s, t, p in self.has_capability
            ],
            "requires": [[s, t, p.get("importance"), p.get("complexity")] for s, t, p in self.requires],
            "worked_with": [
                [
                    s,
                    t,
                    p.get("success_score"),
                    p.get("task_count"),
                    p["last_collaboration"].isoformat() if p.get("last_collaboration") else None,
                ]
                for s, t, p in self.worked_with
            ],
            "teams": [
                [t.team_id, t.task_id, list(t.members), t.performance_score, t.created_at.isoformat()]
                for t in self.teams
            ],
        }
        if self.asked:  # only then: a history without hand-offs keeps the digest it had before ASKED existed
            payload["asked"] = [
                [s, t, p.get("task_id"), p.get("step_id"), p.get("questions"), p.get("answers")]
                for s, t, p in self.asked
            ]
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
