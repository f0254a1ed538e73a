"""Seed 000's Neo4j graph schema: the node property models.

Properties the seed stores as ``json_string`` are typed models here and become
JSON strings only at the graph boundary (:meth:`GraphNode.graph_properties`),
so the rest of the code never handles stringly-typed JSON. Datetimes are UTC.

The relationship models are in :mod:`agentparty.models.graph_relationships` and
the node keys (UUIDs, semantic versions) in :mod:`agentparty.models.graph_keys`;
both are re-exported here (see ``__all__``), because this module is where the
code imports the whole graph schema from, and because results persisted by
earlier releases are pickles that name these classes as
``agentparty.models.graph.<Name>``: the node classes stay defined here, and
every name that moved keeps resolving here, so those results still load.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._base import (
    Fraction,
    JsonInt,
    NonEmptyStr,
    NonNegativeInt,
    PositiveJsonInt,
    Priority,
    SeedModel,
    UtcDatetime,
    utc_now,
)
from .governance import GovernanceRules
from .graph_keys import SEMVER_PATTERN, SemVer, UuidStr, capability_id, new_id, stable_id
from .graph_relationships import (
    RELATIONSHIP_TYPES,
    Asked,
    AssembledBy,
    Created,
    DefinesCapabilities,
    HasCapability,
    HasState,
    HasVersion,
    Instantiates,
    MemberOf,
    RelationshipProperties,
    RequestedBy,
    Requires,
    RequiresModel,
    ResultedIn,
    TransitionedBy,
    UsedTool,
    WorkedWith,
    WorksOn,
)
from .states import AgentLifecycleState, TaskStatus, TeamStatus

__all__ = [
    "NODE_TYPES",
    "RELATIONSHIP_TYPES",
    "SEED_NODE_LABELS",
    "SEMVER_PATTERN",
    "Agent",
    "AgentStateMetrics",
    "AgentStateRecord",
    "AgentTemplate",
    "Asked",
    "AssembledBy",
    "Capability",
    "CostProfile",
    "Created",
    "DefinesCapabilities",
    "FormationMethod",
    "GraphNode",
    "HasCapability",
    "HasState",
    "HasVersion",
    "Instantiates",
    "MemberOf",
    "Model",
    "ModelParameters",
    "Output",
    "RelationshipProperties",
    "RequestedBy",
    "Requires",
    "RequiresModel",
    "ResultedIn",
    "SemVer",
    "SystemActor",
    "Task",
    "Team",
    "TemplatePerformance",
    "TemplateStatus",
    "TemplateVersion",
    "Tool",
    "TransitionedBy",
    "UsedTool",
    "User",
    "UserPreferences",
    "UuidStr",
    "WorkedWith",
    "WorksOn",
    "capability_id",
    "new_id",
    "stable_id",
]


class ModelParameters(BaseModel):
    """LLM call parameters (seed example: ``{"temperature": 0.3, "max_tokens": 2000}``).

    The common knobs are typed and range-checked; provider-specific extras are
    kept as given because every provider has its own.
    """

    model_config = ConfigDict(extra="allow")

    # Strict numbers: a JSON document (a template over HTTP, a YAML file) says 2000, not "2000" or true.
    temperature: Annotated[float, Field(ge=0.0, le=2.0, strict=True)] | None = None
    max_tokens: PositiveJsonInt | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0, strict=True)] | None = None
    stop: list[str] | None = None
    seed: JsonInt | None = None
    logprobs: Annotated[bool, Field(strict=True)] | None = None
    """Ask for the answer's token log-probabilities (OpenAI): each agent message then carries a ``confidence``,
    the geometric mean of its tokens' probabilities."""


class CostProfile(SeedModel):
    """Seed 000 ``cost_profile`` ("token usage estimates")."""

    avg_input_tokens: NonNegativeInt = 0
    avg_output_tokens: NonNegativeInt = 0
    cost_per_call_usd: Annotated[float, Field(ge=0.0)] = 0.0


class TemplatePerformance(SeedModel):
    """Seed 000 ``performance_metrics`` on a TemplateVersion ("historical performance data")."""

    tasks_completed: NonNegativeInt = 0
    success_rate: Fraction | None = None
    avg_response_time_ms: Annotated[float, Field(ge=0.0)] | None = None
    avg_tokens_per_task: Annotated[float, Field(ge=0.0)] | None = None


class AgentStateMetrics(SeedModel):
    """Seed 000 AgentState ``metrics`` ("state-specific metrics"): what the agent did while in the state, counted
    by its loop (``tasks/agent_loop.py``) and filled in when it leaves the state (the state's ``duration`` and
    ``token_count`` sit beside them on the node)."""

    requests: NonNegativeInt = 0
    """Model calls (turns, and summaries of a conversation that outgrew the window)."""
    errors: NonNegativeInt = 0
    """Tool calls answered with an error (refusals not counted: see ``refused``)."""
    input_tokens: NonNegativeInt = 0
    output_tokens: NonNegativeInt = 0
    tool_calls: NonNegativeInt = 0
    """Tool calls made, whatever their result."""
    refused: NonNegativeInt = 0
    """Tool calls refused (a tool the agent may not call, a human said no, nobody answered)."""

    def plus(self, other: AgentStateMetrics) -> AgentStateMetrics:
        """Both counts added, field by field."""
        mine, theirs = self.model_dump(), other.model_dump()
        return AgentStateMetrics(**{name: mine[name] + theirs[name] for name in mine})


class UserPreferences(SeedModel):
    model_config = ConfigDict(extra="allow")

    default_model: str | None = None
    notification_channels: list[str] = Field(default_factory=list)


class GraphNode(SeedModel):
    """A node of the seed's graph. ``label`` is its Neo4j label; ``id`` its unique key."""

    label: ClassVar[str]
    json_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields the seed stores as ``json_string``/``json_array`` of objects."""
    kept_fields: ClassVar[frozenset[str]] = frozenset({"created_at"})
    """Fields set when the node is created and never overwritten by a later upsert of it.

    Either first-write facts (``created_at``) or figures that accumulate across
    runs and belong to their own writers (an agent's reliability and token
    count, GNN embeddings): a run that upserts the node must not reset them.
    """

    id: UuidStr = Field(default_factory=new_id)

    def graph_properties(self) -> dict[str, Any]:
        """Properties as stored in the graph: nested structures as JSON strings, datetimes as UTC."""
        data = self.model_dump(mode="python")
        for name in self.json_fields:
            if data.get(name) is not None:
                data[name] = json.dumps(data[name], sort_keys=True, default=str)
        return data

    @classmethod
    def from_graph_properties(cls, props: dict[str, Any]) -> GraphNode:
        data = dict(props)
        for name in cls.json_fields:
            if isinstance(data.get(name), str):
                data[name] = json.loads(data[name])
        return cls.model_validate(data)


class Agent(GraphNode):
    """A persistent agent: one published template version put to work (or an ad-hoc agent on one model).

    It outlives runs, so its history accumulates: the teams it joined,
    WORKED_WITH peers, proficiencies, reliability and tokens.
    """

    label: ClassVar[str] = "Agent"
    json_fields: ClassVar[frozenset[str]] = frozenset({"parameters", "cost_profile"})
    kept_fields: ClassVar[frozenset[str]] = frozenset(
        {"created_at", "reliability_score", "token_count", "embeddings", "cost_profile"}
    )

    name: NonEmptyStr
    status: AgentLifecycleState = AgentLifecycleState.INITIALIZED
    created_at: UtcDatetime = Field(default_factory=utc_now)
    updated_at: UtcDatetime = Field(default_factory=utc_now)
    personality: str = ""
    model: NonEmptyStr
    parameters: ModelParameters = Field(default_factory=ModelParameters)
    cost_profile: CostProfile = Field(default_factory=CostProfile)
    reliability_score: Fraction = 0.5
    token_count: NonNegativeInt = 0
    embeddings: list[float] = Field(default_factory=list)
    handle: str | None = None
    """Extension: what a workflow step names to put this agent to work: ``template@version`` for a
    template's agent, the agent name for an ad-hoc one (team recommendations hand it to the engine)."""


class TemplateStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    DEPRECATED = "deprecated"


class AgentTemplate(GraphNode):
    label: ClassVar[str] = "AgentTemplate"
    json_fields: ClassVar[frozenset[str]] = frozenset({"governance_rules"})

    name: NonEmptyStr
    description: str = ""
    created_at: UtcDatetime = Field(default_factory=utc_now)
    created_by: NonEmptyStr = "system"
    status: TemplateStatus = TemplateStatus.DRAFT
    version_count: NonNegativeInt = 0
    is_auto_generated: bool = False
    """Created by the Talent Scout rather than a person."""
    approval_required: bool = True
    template_category: str = "general"
    governance_rules: GovernanceRules = Field(default_factory=GovernanceRules)


class TemplateVersion(GraphNode):
    """Immutable once created: a change is a new version (NODE KEY ``(template_id, version)``)."""

    label: ClassVar[str] = "TemplateVersion"
    json_fields: ClassVar[frozenset[str]] = frozenset({"parameters", "cost_profile", "performance_metrics"})

    template_id: UuidStr
    version: SemVer
    created_at: UtcDatetime = Field(default_factory=utc_now)
    model: NonEmptyStr
    parameters: ModelParameters = Field(default_factory=ModelParameters)
    personality: str = ""
    cost_profile: CostProfile = Field(default_factory=CostProfile)
    performance_metrics: TemplatePerformance = Field(default_factory=TemplatePerformance)
    is_deprecated: bool = False


class FormationMethod(StrEnum):
    MANUAL = "manual"
    RECOMMENDED = "recommended"
    AUTO = "auto"


class Team(GraphNode):
    label: ClassVar[str] = "Team"
    kept_fields: ClassVar[frozenset[str]] = frozenset({"created_at", "outcome_recorded", "status", "status_history"})
    """``status`` (and its history) changes only by a checked move of the Team machine (``runtime/graph_store.py``
    ``StatusMove``), never by an upsert: a late write cannot move a finished team back."""

    name: NonEmptyStr
    created_at: UtcDatetime = Field(default_factory=utc_now)
    status: TeamStatus = TeamStatus.FORMING
    size: NonNegativeInt = 0
    task_id: UuidStr | None = None
    formation_method: FormationMethod = FormationMethod.MANUAL
    performance_score: Fraction | None = None
    token_budget: NonNegativeInt = 0
    token_usage: NonNegativeInt = 0
    completion_time: NonNegativeInt | None = None
    """Seconds from assembly to completion."""
    outcome_recorded: bool = False
    """Extension: set in the transaction that adds this team's outcome to WORKED_WITH, proficiencies and
    reliability, so a replayed or resumed run never counts the same task twice."""
    status_history: list[str] | None = None
    """Extension: every status the team has had, in order (the moves of the Team machine a run made)."""


class Task(GraphNode):
    label: ClassVar[str] = "Task"
    kept_fields: ClassVar[frozenset[str]] = frozenset(
        {"created_at", "status", "status_history", "completed_at", "estimated_completion"}
    )
    """``status``, its history and the timestamps of its moves change only by a checked move of the Task machine
    (``runtime/graph_store.py`` ``StatusMove``), never by an upsert: a late write cannot move a completed task back."""

    title: NonEmptyStr
    description: str = ""
    created_at: UtcDatetime = Field(default_factory=utc_now)
    status: TaskStatus = TaskStatus.SUBMITTED
    priority: Priority = 3
    complexity: Fraction = 0.5
    required_capabilities: list[str] = Field(default_factory=list)
    created_by: UuidStr | None = None
    estimated_completion: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    token_budget: NonNegativeInt = 0
    token_usage: NonNegativeInt = 0
    status_history: list[str] | None = None
    """Extension: every status the task has had, in order (the moves of the Task machine its runs made)."""


class Capability(GraphNode):
    label: ClassVar[str] = "Capability"
    kept_fields: ClassVar[frozenset[str]] = frozenset({"created_at", "embeddings"})

    name: NonEmptyStr
    description: str = ""
    category: str = "general"
    created_at: UtcDatetime = Field(default_factory=utc_now)
    token_cost: NonNegativeInt = 0
    required_model: str | None = None
    embeddings: list[float] = Field(default_factory=list)
    compatibility: list[str] = Field(default_factory=list)
    """Names of capabilities this one combines well with."""


class AgentStateRecord(GraphNode):
    """Seed 000's ``AgentState`` node: one recorded lifecycle state of an agent.

    Named ``…Record`` to keep it apart from seed 002's runtime ``AgentState``
    (see :mod:`agentparty.models.states` for the mapping).
    """

    label: ClassVar[str] = "AgentState"
    json_fields: ClassVar[frozenset[str]] = frozenset({"metrics"})

    name: AgentLifecycleState
    timestamp: UtcDatetime = Field(default_factory=utc_now)
    duration: NonNegativeInt = 0
    """Seconds spent in this state (filled in when the agent leaves it)."""
    transition_reason: str = ""
    token_count: NonNegativeInt = 0
    metrics: AgentStateMetrics = Field(default_factory=AgentStateMetrics)
    notes: str = ""


class User(GraphNode):
    label: ClassVar[str] = "User"
    json_fields: ClassVar[frozenset[str]] = frozenset({"preferences"})

    username: NonEmptyStr
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    created_at: UtcDatetime = Field(default_factory=utc_now)
    roles: list[str] = Field(default_factory=list)
    preferences: UserPreferences = Field(default_factory=UserPreferences)
    token_budget: NonNegativeInt = 0
    approved_capabilities: list[str] = Field(default_factory=list)


class Model(GraphNode):
    """Target of ``TemplateVersion-[:REQUIRES_MODEL]->``; the seed names it but gives no properties.

    Beside its name and provider it carries what the model registry (seed 002 ``ModelInfo``) says of it; None
    where the registry does not list the model (its provider is then ``unknown``).
    """

    label: ClassVar[str] = "Model"

    name: NonEmptyStr
    provider: str
    context_window: PositiveJsonInt | None = None
    """Tokens (seed 002 ``ModelCapabilities.maxTokens``)."""
    supports_functions: bool | None = None
    supports_vision: bool | None = None
    supports_streaming: bool | None = None
    deprecated: bool | None = None


class Output(GraphNode):
    """A product of work: target of ``Agent-[:CREATED]->`` and ``Task-[:RESULTED_IN]->``."""

    label: ClassVar[str] = "Output"

    step_id: NonEmptyStr
    content: str
    format: Literal["text", "json", "markdown"] = "text"
    model: str | None = None
    simulated: bool = False
    """True when a simulated provider produced it: never mistake it for a real model's answer."""
    input_tokens: NonNegativeInt = 0
    output_tokens: NonNegativeInt = 0
    created_at: UtcDatetime = Field(default_factory=utc_now)


class SystemActor(GraphNode):
    """A non-human approver, assembler or provisioner (``TRANSITIONED_BY``, ``ASSEMBLED_BY``)."""

    label: ClassVar[str] = "SystemActor"

    name: NonEmptyStr
    kind: Literal["governance", "assembler", "provisioner", "recommender", "workflow"] = "workflow"


class Tool(GraphNode):
    """Extension: a tool agents call, a Python function or one tool of an MCP server (target of ``USED_TOOL``).

    Its id derives from what it is (:meth:`named`), so every run that calls the same tool links the same node.
    """

    label: ClassVar[str] = "Tool"

    name: NonEmptyStr
    """The tool as the model calls it."""
    source: Literal["python", "mcp"] = "python"
    server: str | None = None
    """The MCP server it belongs to (its name); None for a Python tool."""

    @classmethod
    def named(cls, name: str, source: Literal["python", "mcp"], server: str | None = None) -> Tool:
        return cls(id=stable_id("tool", source, server or "", name), name=name, source=source, server=server)


NODE_TYPES: tuple[type[GraphNode], ...] = (
    Agent,
    AgentTemplate,
    TemplateVersion,
    Team,
    Task,
    Capability,
    AgentStateRecord,
    User,
    Model,
    Output,
    SystemActor,
    Tool,
)
SEED_NODE_LABELS: tuple[str, ...] = (
    "Agent",
    "AgentTemplate",
    "TemplateVersion",
    "Team",
    "Task",
    "Capability",
    "AgentState",
    "User",
)
