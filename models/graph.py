"""Seed 000's Neo4j graph schema: node and relationship property models.

Properties the seed stores as ``json_string`` are typed models here and become
JSON strings only at the graph boundary (:meth:`GraphNode.graph_properties`),
so the rest of the code never handles stringly-typed JSON. Datetimes are UTC.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID, uuid4, uuid5

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ._base import Fraction, JsonInt, NonEmptyStr, PositiveJsonInt, NonNegativeInt, Priority, SeedModel, UtcDatetime, utc_now
from .governance import GovernanceRules
from .states import AgentLifecycleState, TaskStatus, TeamStatus

SEMVER_PATTERN = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def _semver(value: str) -> str:
    if not SEMVER_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. '1.2.0')")
    return value


SemVer = Annotated[str, AfterValidator(_semver)]


def _uuid_string(value: str) -> str:
    try:
        return str(UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{value!r} is not a UUID") from None


UuidStr = Annotated[str, AfterValidator(_uuid_string)]
"""Seed 000's ``uuid4_string``: any RFC 4122 UUID, stored in canonical lowercase form."""


def new_id() -> str:
    return str(uuid4())


_STABLE_NAMESPACE = UUID("0c7d5a8e-5b5e-4b8f-9a3c-6f1e2d4b7a90")


def stable_id(kind: str, *parts: str) -> str:
    """A UUID derived from what a node *is* (its kind and natural key), so every writer and every replay
    of a write names the same node: a retried step, a resumed run, the synthetic history generator."""
    return str(uuid5(_STABLE_NAMESPACE, json.dumps([kind, *parts])))


def capability_id(name: str) -> str:
    """Capabilities are identified by name across templates, tasks and the GNN."""
    return stable_id("capability", name)


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
    """Seed 000 AgentState ``metrics`` ("state-specific metrics")."""

    requests: NonNegativeInt = 0
    errors: NonNegativeInt = 0
    input_tokens: NonNegativeInt = 0
    output_tokens: NonNegativeInt = 0


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
    kept_fields: ClassVar[frozenset[str]] = frozenset({"created_at", "outcome_recorded"})

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


class Task(GraphNode):
    label: ClassVar[str] = "Task"

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
    """Target of ``TemplateVersion-[:REQUIRES_MODEL]->``; the seed names it but gives no properties."""

    label: ClassVar[str] = "Model"

    name: NonEmptyStr
    provider: str


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


NODE_TYPES: tuple[type[GraphNode], ...] = (
    Agent, AgentTemplate, TemplateVersion, Team, Task, Capability, AgentStateRecord, User, Model, Output, SystemActor,
)
SEED_NODE_LABELS: tuple[str, ...] = (
    "Agent", "AgentTemplate", "TemplateVersion", "Team", "Task", "Capability", "AgentState", "User",
)


# --- Relationships -----------------------------------------------------------------


class RelationshipProperties(SeedModel):
    """Properties of one relationship type; ``type``, ``source`` and ``target`` say where it goes."""

    type: ClassVar[str]
    source: ClassVar[tuple[str, ...]]
    target: ClassVar[tuple[str, ...]]


class Instantiates(RelationshipProperties):
    type: ClassVar[str] = "INSTANTIATES"
    source: ClassVar[tuple[str, ...]] = ("Agent",)
    target: ClassVar[tuple[str, ...]] = ("TemplateVersion",)


class HasState(RelationshipProperties):
    type: ClassVar[str] = "HAS_STATE"
    source: ClassVar[tuple[str, ...]] = ("Agent",)
    target: ClassVar[tuple[str, ...]] = ("AgentState",)

    timestamp: UtcDatetime = Field(default_factory=utc_now)


class TransitionedBy(RelationshipProperties):
    type: ClassVar[str] = "TRANSITIONED_BY"
    source: ClassVar[tuple[str, ...]] = ("Agent",)
    target: ClassVar[tuple[str, ...]] = ("User", "SystemActor")

    timestamp: UtcDatetime = Field(default_factory=utc_now)
    state_id: UuidStr | None = None
    """The AgentState this approval let the agent enter."""


class HasCapability(RelationshipProperties):
    """Proficiency plus the GNN's capability-edge features (usage and token efficiency)."""

    type: ClassVar[str] = "HAS_CAPABILITY"
    source: ClassVar[tuple[str, ...]] = ("Agent",)
    target: ClassVar[tuple[str, ...]] = ("Capability",)

    proficiency: Fraction
    usage_count: NonNegativeInt = 0
    token_efficiency: Annotated[float, Field(ge=0.0)] = 0.0


class Created(RelationshipProperties):
    type: ClassVar[str] = "CREATED"
    source: ClassVar[tuple[str, ...]] = ("Agent",)
    target: ClassVar[tuple[str, ...]] = ("Output",)

    timestamp: UtcDatetime = Field(default_factory=utc_now)


class HasVersion(RelationshipProperties):
    type: ClassVar[str] = "HAS_VERSION"
    source: ClassVar[tuple[str, ...]] = ("AgentTemplate",)
    target: ClassVar[tuple[str, ...]] = ("TemplateVersion",)


class DefinesCapabilities(RelationshipProperties):
    type: ClassVar[str] = "DEFINES_CAPABILITIES"
    source: ClassVar[tuple[str, ...]] = ("AgentTemplate",)
    target: ClassVar[tuple[str, ...]] = ("Capability",)

    proficiency: Fraction | None = None
    """Proficiency an agent of this template starts with."""


class RequiresModel(RelationshipProperties):
    type: ClassVar[str] = "REQUIRES_MODEL"
    source: ClassVar[tuple[str, ...]] = ("TemplateVersion",)
    target: ClassVar[tuple[str, ...]] = ("Model",)


class MemberOf(RelationshipProperties):
    type: ClassVar[str] = "MEMBER_OF"
    source: ClassVar[tuple[str, ...]] = ("Agent",)
    target: ClassVar[tuple[str, ...]] = ("Team",)

    role: NonEmptyStr
    joined_at: UtcDatetime = Field(default_factory=utc_now)


class WorksOn(RelationshipProperties):
    type: ClassVar[str] = "WORKS_ON"
    source: ClassVar[tuple[str, ...]] = ("Team",)
    target: ClassVar[tuple[str, ...]] = ("Task",)


class AssembledBy(RelationshipProperties):
    type: ClassVar[str] = "ASSEMBLED_BY"
    source: ClassVar[tuple[str, ...]] = ("Team",)
    target: ClassVar[tuple[str, ...]] = ("User", "SystemActor")


class Requires(RelationshipProperties):
    """Task needs a capability; properties are the GNN's requirement-edge features."""

    type: ClassVar[str] = "REQUIRES"
    source: ClassVar[tuple[str, ...]] = ("Task",)
    target: ClassVar[tuple[str, ...]] = ("Capability",)

    importance: Fraction = 1.0
    complexity: Fraction = 0.5


class RequestedBy(RelationshipProperties):
    type: ClassVar[str] = "REQUESTED_BY"
    source: ClassVar[tuple[str, ...]] = ("Task",)
    target: ClassVar[tuple[str, ...]] = ("User",)


class ResultedIn(RelationshipProperties):
    type: ClassVar[str] = "RESULTED_IN"
    source: ClassVar[tuple[str, ...]] = ("Task",)
    target: ClassVar[tuple[str, ...]] = ("Output",)


class WorkedWith(RelationshipProperties):
    type: ClassVar[str] = "WORKED_WITH"
    source: ClassVar[tuple[str, ...]] = ("Agent",)
    target: ClassVar[tuple[str, ...]] = ("Agent",)

    success_score: Fraction
    """Running mean of the outcomes of the tasks both agents worked on."""
    task_count: Annotated[int, Field(ge=1)] = 1
    last_collaboration: UtcDatetime = Field(default_factory=utc_now)


RELATIONSHIP_TYPES: tuple[type[RelationshipProperties], ...] = (
    Instantiates, HasState, TransitionedBy, HasCapability, Created, HasVersion, DefinesCapabilities,
    RequiresModel, MemberOf, WorksOn, AssembledBy, Requires, RequestedBy, ResultedIn, WorkedWith,
)
