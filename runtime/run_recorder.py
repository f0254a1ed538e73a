"""A workflow run, written into seed 000's graph step by step.

One run is one **Task** (REQUESTED_BY its **User**, REQUIRES the capabilities
its agent steps ask for) worked on by one **Team** (ASSEMBLED_BY the workflow
engine). The agents the steps put to work join the team (MEMBER_OF, role = the
step's capability, else the step id); each is a persistent **Agent** that
INSTANTIATES its TemplateVersion and HAS_CAPABILITY what the template declares.
Every lifecycle state of an engagement is an **AgentState** (HAS_STATE, and
TRANSITIONED_BY the governance actor or the approving User), and every completed
``task`` step leaves an **Output** (CREATED by its agent, RESULTED_IN of the task).
The tools an agent's loop called in a step slot are **Tool** nodes it USED_TOOL, one
link per (agent, tool, task, slot) with that slot's call, error and refusal counts.
An agent that handed sub-questions to another (``ask_agent``) ASKED it, one link per
(asker, asked, task, asker's slot) with that slot's question and answer counts; the
asked agent's engagement is written like a step's (it joins the team as ``delegate``).
Every change an engagement made to its agent's persistent memory is a **MemoryChange**
the agent CHANGED_MEMORY (key, version, operation, size; never the value).

Writes happen as the run goes: one transaction when the run starts, one per step
result, one when it ends; every id derives from the run key and the step slot
(:func:`~agentparty.models.graph.stable_id`), so a retried write or a resumed run
MERGEs the same nodes and relationships instead of adding new ones.

**After each run** the team's outcome is added to the collaboration, proficiency and reliability
history by the rules of :mod:`agentparty.models.run_history`, in the closing transaction, once per team
(the team's ``outcome_recorded`` flag is read and set in that same transaction).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired

from agentparty.models import WorkflowDefinition
from agentparty.models._base import utc_now
from agentparty.models.config import DatabaseConfig
from agentparty.models.engagements import AUTOMATIC_APPROVER, AgentWork, Handoff, SlotRecord
from agentparty.models.graph import (
    Asked,
    AssembledBy,
    Capability,
    Created,
    DefinesCapabilities,
    FormationMethod,
    HasCapability,
    HasState,
    HasVersion,
    Instantiates,
    MemberOf,
    Output,
    RequestedBy,
    Requires,
    ResultedIn,
    SystemActor,
    Task,
    Team,
    Tool,
    TransitionedBy,
    UsedTool,
    User,
    WorksOn,
    capability_id,
    stable_id,
)
from agentparty.models.memory import ChangedMemory
from agentparty.models.run_history import (
    PROFICIENCY_PRIOR,
    RELIABILITY_RATE,
    Outcome,
    RunTally,
    outcome_of,
    required_capabilities,
    task_id_for,
    team_id_for,
)
from agentparty.models.run_results import StepStatus, WorkflowResult
from agentparty.models.states import TaskStatus, TeamStatus
from agentparty.models.tools import ToolCallRecord
from agentparty.runtime.graph_migrations import migrate
from agentparty.runtime.graph_server import DATABASE_NAME
from agentparty.runtime.graph_store import GraphBatch, GraphStore, GraphWriteError, graph_value
from agentparty.runtime.local_services import local_services
from agentparty.runtime.masking import Masker
from agentparty.runtime.schema_versions import MigrationPolicy

if TYPE_CHECKING:
    from agentparty.runtime.settings import Settings

logger = logging.getLogger("agentparty.graph")

ENGINE_ACTOR = "workflow-engine"
RECOMMENDER_ACTOR = "team-recommender"


def _actor(name: str, kind: Literal["governance", "assembler", "recommender"]) -> SystemActor:
    return SystemActor(id=stable_id("actor", name), name=name, kind=kind)


def _user(name: str) -> User:
    return User(id=stable_id("user", name), username=name)


def _output_content(value: Any) -> tuple[str, Literal["text", "json"]]:
    if isinstance(value, str):
        return value, "text"
    return json.dumps(value, sort_keys=True, default=str), "json"


@dataclass
class RunGraph:
    """Builds the batches of one run (pure: the caller writes them)."""

    definition: WorkflowDefinition
    run_key: str
    username: str
    tally: RunTally = field(default_factory=RunTally)
    """Shared with the run's events; whoever drives the run adds each step result to it before ``step``."""
    started_at: datetime = field(default_factory=utc_now)
    formation_method: FormationMethod = FormationMethod.MANUAL
    """``recommended`` / ``auto`` when the team recommender staffed the run (ASSEMBLED_BY the recommender)."""

    @property
    def task_id(self) -> str:
        return task_id_for(self.run_key)

    @property
    def team_id(self) -> str:
        return team_id_for(self.run_key)

    def required_capabilities(self) -> list[str]:
        return required_capabilities(self.definition)

    def task(self, status: TaskStatus, completed_at: datetime | None = None) -> Task:
        d = self.definition
        return Task(
            id=self.task_id,
            title=d.name,
            description=d.description,
            created_at=self.started_at,
            status=status,
            priority=d.priority,
            complexity=d.complexity,
            required_capabilities=self.required_capabilities(),
            created_by=_user(self.username).id,
            completed_at=completed_at,
            token_budget=d.token_budget or 0,
            token_usage=self.tally.token_usage,
        )

    def team(self, status: TeamStatus, **extra: Any) -> Team:
        return Team(
            id=self.team_id,
            name=f"{self.definition.name} team",
            created_at=self.started_at,
            status=status,
            formation_method=self.formation_method,
            size=len(self.tally.members),
            task_id=self.task_id,
            token_budget=self.definition.team_token_budget or 0,
            token_usage=self.tally.token_usage,
            **extra,
        )

    # -- the three kinds of write ---------------------------------------------------------

    def started(self) -> GraphBatch:
        user = _user(self.username)
        manual = self.formation_method is FormationMethod.MANUAL
        engine = _actor(ENGINE_ACTOR, "assembler") if manual else _actor(RECOMMENDER_ACTOR, "recommender")
        batch = GraphBatch().ensure(user, engine).add(self.task(TaskStatus.IN_PROGRESS), self.team(TeamStatus.FORMING))
        batch.link(RequestedBy(), self.task_id, user.id)
        batch.link(WorksOn(), self.team_id, self.task_id)
        batch.link(AssembledBy(), self.team_id, engine.id, target_label="SystemActor")
        complexity = self.definition.complexity
        for name in self.required_capabilities():
            batch.ensure(Capability(id=capability_id(name), name=name))
            batch.link(Requires(importance=1.0, complexity=complexity), self.task_id, capability_id(name))
        return batch

    def step(self, records: Iterable[SlotRecord]) -> GraphBatch:
        """The step's slots (already in the tally), with the task and team as they stand now."""
        batch = GraphBatch()
        for record in records:
            for slot, work in record.engagements():  # the slot's agent, then the agents it asked (ask_agent)
                self._agent(batch, work)
                self._tools(batch, work, slot)
                self._asked(batch, work, slot)
                self._memory(batch, work)
            if record.completed:
                self._output(batch, record)
        batch.add(
            self.task(TaskStatus.IN_PROGRESS),
            self.team(TeamStatus.ACTIVE if self.tally.members else TeamStatus.FORMING),
        )
        return batch

    def finished(self, result: WorkflowResult) -> tuple[GraphBatch, Outcome]:
        ok = result.status is StepStatus.COMPLETED
        ended = utc_now()
        score = self.tally.performance_score(ok)
        batch = GraphBatch().add(
            self.task(TaskStatus.COMPLETED if ok else TaskStatus.FAILED, completed_at=ended),
            self.team(
                TeamStatus.COMPLETED if ok else TeamStatus.FAILED,
                completion_time=max(0, int((ended - self.started_at).total_seconds())),
                performance_score=score,
            ),
        )
        return batch, outcome_of(self.tally, self.team_id, score, ended)

    # -- pieces ---------------------------------------------------------------------------

    def _agent(self, batch: GraphBatch, work: AgentWork) -> None:
        agent = work.agent
        batch.add(agent)
        if work.template is not None and work.version is not None:
            batch.add(work.template, work.version)
            batch.link(HasVersion(), work.template.id, work.version.id)
            batch.link(Instantiates(), agent.id, work.version.id)
            for name, proficiency in work.capabilities.items():
                batch.link(DefinesCapabilities(proficiency=proficiency), work.template.id, capability_id(name))
        for name, proficiency in work.capabilities.items():
            batch.ensure(Capability(id=capability_id(name), name=name))
            batch.link(HasCapability(proficiency=proficiency), agent.id, capability_id(name), create_only=True)
        batch.link(
            MemberOf(role=work.role, joined_at=self.started_at), agent.id, self.team_id, key=("role",), create_only=True
        )
        for transition in work.transitions:
            for state in (transition.left, transition.record):
                batch.add(state)
                batch.link(HasState(timestamp=state.timestamp), agent.id, state.id)
            approver = transition.event.transition_approver
            actor: SystemActor | User
            if approver == AUTOMATIC_APPROVER:
                actor, label = _actor("governance", "governance"), "SystemActor"
            else:
                actor, label = _user(approver.removeprefix("user:")), "User"
            batch.ensure(actor)
            batch.link(
                TransitionedBy(timestamp=transition.record.timestamp, state_id=transition.record.id),
                agent.id,
                actor.id,
                target_label=label,
                key=("state_id",),
            )

    def _tools(self, batch: GraphBatch, work: AgentWork, slot: str) -> None:
        """One Tool node per distinct tool the slot's loop called, one USED_TOOL per tool with the slot's counts.

        The link is MERGEd on the task and the slot and its counts SET (never added to), so writing the same slot
        again (a retried write, a resumed run reusing the step) leaves them as they are. ``last_used`` is the
        engagement's latest transition, persisted with the step result, so a replay writes the same value.
        """
        calls: dict[str, tuple[Tool, list[ToolCallRecord]]] = {}
        for turn in work.turns:
            for call in turn.tool_calls:
                tool = Tool.named(call.name, call.source, call.server)
                calls.setdefault(tool.id, (tool, []))[1].append(call)
        if not calls:
            return
        last_used = max((t.record.timestamp for t in work.transitions), default=None) or utc_now()
        for tool, made in calls.values():
            batch.ensure(tool)
            used = UsedTool(
                task_id=self.task_id,
                step_id=slot,
                calls=len(made),
                errors=sum(1 for c in made if not c.ok and not c.refused),
                refused=sum(1 for c in made if c.refused),
                last_used=last_used,
            )
            batch.link(used, work.agent.id, tool.id, key=("task_id", "step_id"))

    def _asked(self, batch: GraphBatch, work: AgentWork, slot: str) -> None:
        """One ASKED per agent this engagement handed sub-questions to, with the slot's counts (SET, like USED_TOOL:
        a replayed slot leaves them as they are). ``last_asked`` is the latest question's time, persisted with the
        step result, so a replay writes the same value."""
        by_asked: dict[str, list[Handoff]] = {}
        for handoff in work.handoffs:
            by_asked.setdefault(handoff.work.agent.id, []).append(handoff)
        for asked, handoffs in by_asked.items():
            link = Asked(
                task_id=self.task_id,
                step_id=slot,
                questions=len(handoffs),
                answers=sum(1 for h in handoffs if h.answer is not None),
                last_asked=max(h.question.timestamp for h in handoffs),
            )
            batch.link(link, work.agent.id, asked, key=("task_id", "step_id"))

    @staticmethod
    def _memory(batch: GraphBatch, work: AgentWork) -> None:
        """One MemoryChange node per change the engagement made to the agent's memory, which the agent
        CHANGED_MEMORY; created once (each change's id was made when it was applied), never updated."""
        for change in work.memory:
            batch.ensure(change)
            batch.link(ChangedMemory(changed_at=change.changed_at), work.agent.id, change.id, create_only=True)

    def _output(self, batch: GraphBatch, record: SlotRecord) -> None:
        content, fmt = _output_content(record.output)
        work = record.agents[-1] if record.agents else None
        output = Output(
            id=stable_id("output", self.run_key, record.slot),
            step_id=record.slot,
            content=content,
            format=fmt,
            model=record.model,
            simulated=record.simulated,
            input_tokens=work.input_tokens if work else 0,
            output_tokens=work.output_tokens if work else 0,
        )
        batch.add(output)
        batch.link(ResultedIn(), self.task_id, output.id)
        if work is not None:
            batch.link(Created(timestamp=output.created_at), work.agent.id, output.id)


def apply_outcome(tx: Any, outcome: Outcome) -> bool:
    """Add the outcome unless the team's was already added; runs inside the closing transaction."""
    row = tx.run("MATCH (t:Team {id: $id}) RETURN t.outcome_recorded AS done", id=outcome.team_id).single()
    if row is None or row["done"]:
        return False
    at = graph_value(outcome.at)
    # MERGE of a relationship takes no lock that stops two transactions from both creating it, so concurrent endings
    # of teams sharing two agents could leave two WORKED_WITH edges (seen in CI). Write-locking both ends first, in
    # one order, serialises them: the second MERGE then finds the first's edge.
    ends = sorted({p["a"] for p in outcome.pairs} | {p["b"] for p in outcome.pairs})
    tx.run(
        "UNWIND $ids AS id MATCH (x:Agent {id: id}) SET x._merge_lock = true REMOVE x._merge_lock", ids=ends
    ).consume()
    tx.run(
        "UNWIND $pairs AS p MATCH (a:Agent {id: p.a}) MATCH (b:Agent {id: p.b}) "
        "MERGE (a)-[r:WORKED_WITH]->(b) "
        "ON CREATE SET r.success_score = p.score, r.task_count = 1, r.last_collaboration = $at "
        "ON MATCH SET r.success_score = (r.success_score * r.task_count + p.score) / (r.task_count + 1), "
        "r.task_count = r.task_count + 1, r.last_collaboration = $at",
        pairs=outcome.pairs,
        at=at,
    ).consume()
    # models.run_history.updated_proficiency, in Cypher (read and written in one transaction)
    tx.run(
        "UNWIND $rows AS row MATCH (a:Agent {id: row.agent})-[h:HAS_CAPABILITY]->(c:Capability {id: row.capability}) "
        "WITH h, row, toFloat(coalesce(h.usage_count, 0)) AS u, h.proficiency AS p, "
        "toFloat(coalesce(h.token_efficiency, 0.0)) AS te "
        "SET h.proficiency = (p * (u + $prior) + row.completed) / (u + $prior + row.used), "
        "h.token_efficiency = (te * u + row.tokens) / (u + row.used), "
        "h.usage_count = toInteger(u) + row.used",
        rows=outcome.capabilities,
        prior=PROFICIENCY_PRIOR,
    ).consume()
    # models.run_history.updated_reliability, in Cypher
    tx.run(
        "UNWIND $rows AS row MATCH (a:Agent {id: row.agent}) "
        "WITH a, row, a.reliability_score AS r, coalesce(a.token_count, 0) AS t "
        "SET a.reliability_score = (1.0 - $rate) * r + $rate * row.share, a.token_count = t + row.tokens",
        rows=outcome.agents,
        rate=RELIABILITY_RATE,
    ).consume()
    tx.run("MATCH (t:Team {id: $id}) SET t.outcome_recorded = true", id=outcome.team_id).consume()
    return True


def write_finished(store: GraphStore, batch: GraphBatch, outcome: Outcome, what: str) -> bool:
    """The closing transaction: final task and team state, then the outcome (once per team)."""
    statements = batch.statements()

    def work(tx: Any) -> bool:
        for query, params in statements:
            tx.run(query, params).consume()
        return apply_outcome(tx, outcome)

    return store.transact(work, what)


class GraphRecorder:
    """Writes runs into one graph from async code (the driver is synchronous: writes go to a worker thread)."""

    def __init__(self, store: GraphStore, masker: Masker | None = None) -> None:
        self.store = store
        self.masker = masker
        """``security.dataMasking``: every node's and relationship's properties are masked before they are written
        (set by the run's services)."""
        self._schema_checked = False
        self.policy: MigrationPolicy | None = None
        """``versioning.migrationStrategy`` for the schema check at first use (automatic when unset)."""

    def _ensure_schema(self) -> None:
        """Migrations at first use ("at startup" for a process that never ran ``agentparty up``)."""
        if self._schema_checked:
            return

        try:
            migrate(self.store.driver, self.store.database, policy=self.policy)
        except (Neo4jError, ServiceUnavailable, SessionExpired, OSError) as exc:
            raise GraphWriteError(f"graph schema at {self.store.config.uri}: {exc}") from exc
        self._schema_checked = True

    def _masked(self, batch: GraphBatch) -> GraphBatch:
        masker = self.masker
        if masker is None:
            return batch
        edges = [replace(edge, props=masker.model(edge.props)) for edge in batch.edges]
        return GraphBatch([masker.model(node) for node in batch.nodes], edges, set(batch.ensured))

    def _write(self, batch: GraphBatch, what: str) -> None:
        self._ensure_schema()
        self.store.write(self._masked(batch), what)

    def _finish(self, batch: GraphBatch, outcome: Outcome, what: str) -> bool:
        self._ensure_schema()
        return write_finished(self.store, self._masked(batch), outcome, what)

    async def write(self, batch: GraphBatch, what: str) -> None:
        await asyncio.to_thread(self._write, batch, what)

    async def finish(self, batch: GraphBatch, outcome: Outcome, what: str) -> bool:
        return await asyncio.to_thread(self._finish, batch, outcome, what)


_RECORDERS: dict[tuple[str, str, str], GraphRecorder] = {}
_RECORDERS_LOCK = threading.Lock()


def recorder_for(config: DatabaseConfig, database: str = "neo4j") -> GraphRecorder:
    """One recorder (one driver and connection pool) per graph per process."""
    key = (config.uri, config.username, database)
    with _RECORDERS_LOCK:
        recorder = _RECORDERS.get(key)
        if recorder is None:
            recorder = _RECORDERS[key] = GraphRecorder(GraphStore(config, database))
        return recorder


def configured_recorder(settings: Settings) -> GraphRecorder | None:
    """The graph runs are written to, as ``AGENTPARTY_GRAPH`` says.

    ``off``: none. ``on``: the configured database (``AGENTPARTY_DATABASE__URI``)
    or the local server, reachable or not (an unreachable graph fails the steps
    whose writes it refuses). ``auto`` (default): the configured database, or
    the local server when ``agentparty up`` (or ``agentparty run``) started it.
    """
    if settings.graph == "off":
        return None
    if settings.database is not None:
        recorder = recorder_for(settings.database)
    else:
        server = local_services(settings).graph
        if settings.graph == "auto" and (server.pid() is None or not server.accepting()):
            logger.info(
                "not recording runs in a graph: no graph server under %s (agentparty up starts one)", settings.home
            )
            return None
        recorder = recorder_for(server.database_config(), DATABASE_NAME)
    recorder.policy = settings.migration_policy()
    return recorder


def configured_store(settings: Settings) -> GraphStore:
    """The configured graph for readers that need one whatever ``AGENTPARTY_GRAPH`` says (GNN training, team
    recommendations): ``AGENTPARTY_DATABASE``, else the local Bolt server of this home."""
    recorder = configured_recorder(settings.model_copy(update={"graph": "on"}))
    assert recorder is not None  # "on" always names a graph
    return recorder.store


def configured_graph(settings: Settings) -> tuple[DatabaseConfig, str]:
    """The graph ``configured_store`` would open: ``AGENTPARTY_DATABASE``, else the local Bolt server's."""
    if settings.database is not None:
        return settings.database, "neo4j"

    return local_services(settings).graph.database_config(), DATABASE_NAME
