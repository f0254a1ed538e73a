"""A workflow run, written into seed 000's graph step by step.

One run is one **Task** (REQUESTED_BY its **User**, REQUIRES the capabilities
its agent steps ask for and those ``task_analyzed`` found, importance = confidence) worked on by one **Team**
(ASSEMBLED_BY the workflow engine). Their statuses move only through the Task and Team machines
(:class:`~agentparty.runtime.graph_store.StatusMove`: checked, guarded, idempotent): submitted → analyzed →
assigned → in_progress at the start, forming → active with the first member, completed/failed at the end.
The agents the steps put to work join the team (MEMBER_OF, role = the step's capability, else the step id);
each is a persistent **Agent** that
INSTANTIATES its TemplateVersion (which REQUIRES_MODEL its **Model**, as the model registry
describes it) and HAS_CAPABILITY what the template declares (each **Capability** with its definition: the
template's own over the capability registry's, :mod:`agentparty.models.capabilities`).
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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired

from agentparty.models import DEFAULT_MODEL_REGISTRY, ModelRegistry, WorkflowDefinition
from agentparty.models._base import utc_now
from agentparty.models.capabilities import BUILTIN_CAPABILITY_REGISTRY, CapabilityDefinition, CapabilityRegistry
from agentparty.models.config import DatabaseConfig
from agentparty.models.engagements import AUTOMATIC_APPROVER, AgentWork, Handoff, SlotRecord
from agentparty.models.graph import (
    Asked,
    AssembledBy,
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
    RequiresModel,
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
    Outcome,
    RunTally,
    outcome_of,
    required_capabilities,
    task_id_for,
    team_id_for,
)
from agentparty.models.run_results import StepStatus, WorkflowResult
from agentparty.models.states import TASK_MACHINE, TEAM_MACHINE, TaskStatus, TeamStatus
from agentparty.models.task_analysis import TaskAnalysis
from agentparty.models.tools import ToolCallRecord
from agentparty.runtime.graph_migrations import migrate
from agentparty.runtime.graph_server import DATABASE_NAME
from agentparty.runtime.graph_store import GraphBatch, GraphStore, GraphWriteError, StatusMove
from agentparty.runtime.local_services import local_services
from agentparty.runtime.masking import Masker
from agentparty.runtime.run_outcome import apply_outcome
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
    capabilities: CapabilityRegistry = field(default_factory=lambda: BUILTIN_CAPABILITY_REGISTRY)
    """``agentRuntime.capability_registry``: what the Capability nodes say beyond their names (the templates' own
    definitions win, field by field)."""
    models: ModelRegistry = field(default_factory=lambda: DEFAULT_MODEL_REGISTRY)
    """What the Model nodes of the template versions say (provider, context window, features)."""
    user: User | None = None
    """The requesting User as the engine knows it (``RunServices.user_node``); a bare one of ``username`` when None."""
    analysis: TaskAnalysis | None = None
    """``task_analyzed``'s analysis (``flows/task_analysis.py``): the Task's capabilities and their REQUIRES
    importance (the confidence); None: the capabilities the steps name, importance 1.0."""

    @property
    def task_id(self) -> str:
        return task_id_for(self.run_key)

    @property
    def team_id(self) -> str:
        return team_id_for(self.run_key)

    def required_capabilities(self) -> list[str]:
        return required_capabilities(self.definition)

    def requester(self) -> User:
        return self.user if self.user is not None else _user(self.username)

    def capability(self, batch: GraphBatch, name: str, template: CapabilityDefinition | None = None) -> str:
        """Write the capability's node into ``batch``; its id. A defined one (template or registry) is upserted
        with its definition; one nobody defines is only created when missing (an existing node keeps what it has)."""
        node, defined = self.capabilities.node(name, template)
        if defined:
            batch.add(node)
        else:
            batch.ensure(node)
        return node.id

    def task(self) -> Task:
        """The Task as an upsert writes it: created ``submitted``; its status moves only by :meth:`move_task`."""
        d = self.definition
        return Task(
            id=self.task_id,
            title=d.name,
            description=d.description,
            created_at=self.started_at,
            status=TASK_MACHINE.initial,
            status_history=[TASK_MACHINE.initial.value],
            priority=d.priority,
            complexity=d.complexity,
            required_capabilities=self.analysis.names if self.analysis else self.required_capabilities(),
            created_by=self.requester().id,
            token_budget=d.token_budget or 0,
            token_usage=self.tally.token_usage,
        )

    def team(self, **extra: Any) -> Team:
        """The Team as an upsert writes it: created ``forming``; its status moves only by :meth:`move_team`."""
        return Team(
            id=self.team_id,
            name=f"{self.definition.name} team",
            created_at=self.started_at,
            status=TEAM_MACHINE.initial,
            status_history=[TEAM_MACHINE.initial.value],
            formation_method=self.formation_method,
            size=len(self.tally.members),
            task_id=self.task_id,
            token_budget=self.definition.team_token_budget or 0,
            token_usage=self.tally.token_usage,
            **extra,
        )

    def move_task(self, target: TaskStatus, *, resume: bool = False, **props: Any) -> StatusMove:
        """The Task to ``target`` along the Task machine (checked, guarded, idempotent: ``StatusMove``); ``resume``:
        the chain may pick a failed task up again (a run's start, never its end)."""
        return StatusMove("Task", self.task_id, TASK_MACHINE, target.value, props, resume)

    def move_team(self, target: TeamStatus, *, resume: bool = False, **props: Any) -> StatusMove:
        return StatusMove("Team", self.team_id, TEAM_MACHINE, target.value, props, resume)

    def _requires(self, batch: GraphBatch) -> None:
        """One REQUIRES per required capability: importance = the analysis's confidence (1.0 for named ones)."""
        complexity = self.definition.complexity
        confidence = self.analysis.confidence() if self.analysis else dict.fromkeys(self.required_capabilities(), 1.0)
        for name, importance in confidence.items():
            batch.link(
                Requires(importance=importance, complexity=complexity), self.task_id, self.capability(batch, name)
            )

    # -- the three kinds of write ---------------------------------------------------------

    def started(self) -> GraphBatch:
        user = self.requester()
        manual = self.formation_method is FormationMethod.MANUAL
        engine = _actor(ENGINE_ACTOR, "assembler") if manual else _actor(RECOMMENDER_ACTOR, "recommender")
        batch = GraphBatch().ensure(engine).add(user).add(self.task(), self.team())
        batch.link(RequestedBy(), self.task_id, user.id)
        batch.link(WorksOn(), self.team_id, self.task_id)
        batch.link(AssembledBy(), self.team_id, engine.id, target_label="SystemActor")
        self._requires(batch)
        # submitted → analyzed (the analysis above) → assigned (the team above) → in_progress (the steps start); a
        # resumed run's failed task goes failed → in_progress, one already in progress stays
        estimate = self.analysis.time_estimate if self.analysis else 0
        expected = self.started_at + timedelta(seconds=estimate) if estimate else None
        return batch.move(self.move_task(TaskStatus.IN_PROGRESS, resume=True, estimated_completion=expected))

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
        batch.add(self.task(), self.team())
        if self.tally.members:  # forming → active with its first member (failed → active: a resumed run)
            batch.move(self.move_team(TeamStatus.ACTIVE, resume=True))
        return batch

    def finished(self, result: WorkflowResult) -> tuple[GraphBatch, Outcome]:
        ok = result.status is StepStatus.COMPLETED
        ended = utc_now()
        score = self.tally.performance_score(ok)
        batch = GraphBatch().add(
            self.task(),
            self.team(completion_time=max(0, int((ended - self.started_at).total_seconds())), performance_score=score),
        )
        batch.move(self.move_task(TaskStatus.COMPLETED if ok else TaskStatus.FAILED, completed_at=ended))
        batch.move(self.move_team(TeamStatus.COMPLETED if ok else TeamStatus.FAILED))
        return batch, outcome_of(self.tally, self.team_id, score, ended)

    # -- pieces ---------------------------------------------------------------------------

    def _agent(self, batch: GraphBatch, work: AgentWork) -> None:
        agent = work.agent
        batch.add(agent)
        defined = {d.name: d for d in work.capability_definitions}
        if work.template is not None and work.version is not None:
            batch.add(work.template, work.version)
            batch.link(HasVersion(), work.template.id, work.version.id)
            batch.link(Instantiates(), agent.id, work.version.id)
            model = self.models.graph_node(work.version.model)
            batch.add(model)
            batch.link(RequiresModel(), work.version.id, model.id)
            for name, proficiency in work.capabilities.items():
                batch.link(DefinesCapabilities(proficiency=proficiency), work.template.id, capability_id(name))
        for name, proficiency in work.capabilities.items():
            cap = self.capability(batch, name, defined.get(name))
            batch.link(HasCapability(proficiency=proficiency), agent.id, cap, create_only=True)
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


def write_finished(store: GraphStore, batch: GraphBatch, outcome: Outcome, what: str) -> bool:
    """The closing transaction: final task and team state, then the outcome (once per team)."""
    statements = batch.statements()

    def work(tx: Any) -> bool:
        for query, params in statements:
            tx.run(query, params).consume()
        batch.apply_moves(tx)
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
        self._schema_lock = threading.Lock()
        self.policy: MigrationPolicy | None = None
        """``versioning.migrationStrategy`` for the schema check at first use (automatic when unset)."""

    def _ensure_schema(self) -> None:
        """Migrations at first use ("at startup" for a process that never ran ``agentparty up``).

        One thread at a time: concurrent runs in one process write from several worker threads, and a second
        check while the first is creating a fresh graph's schema would find it part-applied, take it for an
        upgrade, and refuse it under ``assisted`` (seen with three runs at once on a fresh graph)."""
        if self._schema_checked:
            return
        with self._schema_lock:
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
        return GraphBatch([masker.model(node) for node in batch.nodes], edges, set(batch.ensured), list(batch.moves))

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
