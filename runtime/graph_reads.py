"""Reads that later layers need (API, team assembly, GNN training), returning pydantic models.

Each read is one query in a read transaction; the training export streams
records from an open result instead of loading the graph row by row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel

from agentparty.models.graph import Agent, AgentStateRecord, Capability, GraphNode, Output, Task, Team
from agentparty.runtime.graph_store import GraphStore, native


def _node(node_type: type[GraphNode], props: Any) -> Any:
    return node_type.from_graph_properties({k: native(v) for k, v in dict(props).items()})


class CapabilityLevel(BaseModel):
    capability: Capability
    proficiency: float


class AgentProfile(BaseModel):
    agent: Agent
    capabilities: list[CapabilityLevel]
    states: list[AgentStateRecord]
    """Oldest first."""


class TeamMember(BaseModel):
    agent: Agent
    role: str


class TeamView(BaseModel):
    team: Team
    members: list[TeamMember]
    task: Task | None
    outputs: list[Output]


class TaskView(BaseModel):
    task: Task
    outputs: list[Output]


class Candidate(BaseModel):
    agent: Agent
    proficiencies: dict[str, float]
    """Required capability name → the agent's proficiency, for those it has."""

    @property
    def coverage(self) -> int:
        return len(self.proficiencies)


class ExportRecord(BaseModel):
    kind: Literal["node", "edge"]
    label: str
    """Node label, or relationship type."""
    properties: dict[str, Any]
    source: str | None = None
    target: str | None = None


class GraphReader:
    def __init__(self, store: GraphStore) -> None:
        self.store = store

    def _query(self, query: str, **params: Any) -> list[Any]:
        records, _, _ = self.store.driver.execute_query(query, params, database_=self.store.database, routing_="r")
        return list(records)

    def agent(self, agent_id: str) -> AgentProfile | None:
        rows = self._query(
            "MATCH (a:Agent {id: $id}) "
            "OPTIONAL MATCH (a)-[h:HAS_CAPABILITY]->(c:Capability) "
            "WITH a, collect(CASE WHEN c IS NULL THEN NULL ELSE {c: properties(c), p: h.proficiency} END) AS caps "
            "OPTIONAL MATCH (a)-[:HAS_STATE]->(s:AgentState) "
            "RETURN properties(a) AS a, caps, collect(properties(s)) AS states",
            id=agent_id,
        )
        if not rows:
            return None
        row = rows[0]
        states = sorted((_node(AgentStateRecord, s) for s in row["states"] if s), key=lambda s: s.timestamp)
        capabilities = sorted(
            (CapabilityLevel(capability=_node(Capability, c["c"]), proficiency=c["p"]) for c in row["caps"] if c),
            key=lambda level: level.capability.name,
        )
        return AgentProfile(agent=_node(Agent, row["a"]), capabilities=capabilities, states=states)

    def team(self, team_id: str) -> TeamView | None:
        rows = self._query(
            "MATCH (t:Team {id: $id}) "
            "OPTIONAL MATCH (a:Agent)-[m:MEMBER_OF]->(t) "
            "WITH t, collect(CASE WHEN a IS NULL THEN NULL ELSE {a: properties(a), role: m.role} END) AS members "
            "OPTIONAL MATCH (t)-[:WORKS_ON]->(k:Task) "
            "OPTIONAL MATCH (k)-[:RESULTED_IN]->(o:Output) "
            "RETURN properties(t) AS t, members, properties(k) AS k, collect(properties(o)) AS outputs",
            id=team_id,
        )
        if not rows:
            return None
        row = rows[0]
        return TeamView(
            team=_node(Team, row["t"]),
            members=sorted(
                (TeamMember(agent=_node(Agent, m["a"]), role=m["role"]) for m in row["members"] if m),
                key=lambda m: m.agent.name,
            ),
            task=_node(Task, row["k"]) if row["k"] else None,
            outputs=[_node(Output, o) for o in row["outputs"] if o],
        )

    def task(self, task_id: str) -> TaskView | None:
        rows = self._query(
            "MATCH (k:Task {id: $id}) OPTIONAL MATCH (k)-[:RESULTED_IN]->(o:Output) "
            "RETURN properties(k) AS k, collect(properties(o)) AS outputs",
            id=task_id,
        )
        if not rows:
            return None
        return TaskView(task=_node(Task, rows[0]["k"]), outputs=[_node(Output, o) for o in rows[0]["outputs"] if o])

    def candidates(self, capabilities: list[str], limit: int = 20) -> list[Candidate]:
        """Agents having any of the capabilities: most covered first, then by mean proficiency over those."""
        rows = self._query(
            "MATCH (a:Agent)-[h:HAS_CAPABILITY]->(c:Capability) WHERE c.name IN $names "
            "WITH a, collect({name: c.name, p: h.proficiency}) AS found, avg(h.proficiency) AS mean "
            "RETURN properties(a) AS a, found, size(found) AS coverage, mean ORDER BY coverage DESC, mean DESC LIMIT $limit",
            names=capabilities,
            limit=limit,
        )
        return [
            Candidate(agent=_node(Agent, r["a"]), proficiencies={f["name"]: f["p"] for f in r["found"]}) for r in rows
        ]

    def agents(self, limit: int = 100, offset: int = 0) -> list[Agent]:
        """Agents, most recently updated first (the API's agent list)."""
        rows = self._query(
            "MATCH (a:Agent) RETURN properties(a) AS a ORDER BY a.updated_at DESC, a.id SKIP $offset LIMIT $limit",
            offset=offset,
            limit=limit,
        )
        return [_node(Agent, r["a"]) for r in rows]

    def teams(self, limit: int = 100, offset: int = 0) -> list[Team]:
        """Teams, newest first (the API's team list)."""
        rows = self._query(
            "MATCH (t:Team) RETURN properties(t) AS t ORDER BY t.created_at DESC, t.id SKIP $offset LIMIT $limit",
            offset=offset,
            limit=limit,
        )
        return [_node(Team, r["t"]) for r in rows]

    def latest_team(self, agent_id: str) -> Team | None:
        """The team the agent joined last (its current or most recent engagement)."""
        rows = self._query(
            "MATCH (:Agent {id: $id})-[m:MEMBER_OF]->(t:Team) RETURN properties(t) AS t ORDER BY m.joined_at DESC LIMIT 1",
            id=agent_id,
        )
        return _node(Team, rows[0]["t"]) if rows else None

    def export(self) -> Iterator[ExportRecord]:
        """Agents, capabilities, tasks and teams with the edges between them, streamed for GNN training."""
        with self.store.driver.session(database=self.store.database, default_access_mode="READ") as session:
            for label in ("Agent", "Capability", "Task", "Team"):
                for record in session.run(f"MATCH (n:{label}) RETURN properties(n) AS p"):
                    yield ExportRecord(
                        kind="node", label=label, properties={k: native(v) for k, v in dict(record["p"]).items()}
                    )
            for rel_type, source, target in (
                ("HAS_CAPABILITY", "Agent", "Capability"),
                ("REQUIRES", "Task", "Capability"),
                ("WORKED_WITH", "Agent", "Agent"),
                ("ASKED", "Agent", "Agent"),
                ("MEMBER_OF", "Agent", "Team"),
                ("WORKS_ON", "Team", "Task"),
            ):
                for record in session.run(
                    f"MATCH (a:{source})-[r:{rel_type}]->(b:{target}) RETURN a.id AS s, b.id AS t, properties(r) AS p"
                ):
                    yield ExportRecord(
                        kind="edge",
                        label=rel_type,
                        source=record["s"],
                        target=record["t"],
                        properties={k: native(v) for k, v in dict(record["p"]).items()},
                    )
