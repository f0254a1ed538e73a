"""Seed 000's Kafka events: ``BaseEvent`` and the six lifecycle event types with typed payloads.

The seed declares ``payload: Dict[str, Any]`` and documents each payload's keys
in a comment; here each payload is its own model, so a producer cannot emit an
event with a missing or misspelt field and a consumer gets typed values.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, Field, TypeAdapter

from ._base import Fraction, NonEmptyStr, NonNegativeInt, Priority, SeedModel, UtcDatetime, utc_now
from .graph import AgentStateMetrics, FormationMethod, new_id

EVENT_SCHEMA_VERSION = "1.0"

P = TypeVar("P", bound=BaseModel)


class BaseEvent(SeedModel, Generic[P]):
    """Common envelope of every event. ``correlation_id`` groups the events of one flow run."""

    family: ClassVar[str] = "misc"
    """Topic family the event belongs to (agents, teams, tasks, workflows)."""

    event_id: NonEmptyStr = Field(default_factory=new_id)
    event_type: str
    event_version: str = EVENT_SCHEMA_VERSION
    timestamp: UtcDatetime = Field(default_factory=utc_now)
    producer: NonEmptyStr = "agentparty"
    correlation_id: NonEmptyStr
    payload: P

    def entity_id(self) -> str:
        """The id events about the same entity share (the Kafka message key)."""
        fields = type(self.payload).model_fields
        for name in ("agent_id", "team_id", "task_id"):
            if name in fields:
                value = getattr(self.payload, name)
                if value:
                    return str(value)
        return self.correlation_id


class ResourceAllocation(SeedModel):
    token_budget: NonNegativeInt = 0
    max_tokens_per_minute: NonNegativeInt | None = None
    max_concurrency: NonNegativeInt | None = None
    timeout_seconds: NonNegativeInt | None = None


class AgentProvisionedPayload(SeedModel):
    agent_id: NonEmptyStr
    template_id: NonEmptyStr
    template_version: NonEmptyStr
    provisioner: NonEmptyStr
    parameters: dict[str, Any] = Field(default_factory=dict)
    """The model parameters the agent starts with (temperature, max_tokens, …)."""
    resource_allocation: ResourceAllocation = Field(default_factory=ResourceAllocation)


class AgentStateTransitionPayload(SeedModel):
    agent_id: NonEmptyStr
    previous_state: NonEmptyStr
    new_state: NonEmptyStr
    transition_reason: str = ""
    transition_approver: NonEmptyStr
    token_count: NonNegativeInt = 0
    """Tokens used in the previous state."""
    duration: NonNegativeInt = 0
    """Seconds spent in the previous state."""
    metrics: AgentStateMetrics = Field(default_factory=AgentStateMetrics)
    """The same metrics the AgentState node records for the state being left."""


class TeamAssembledPayload(SeedModel):
    team_id: NonEmptyStr
    task_id: NonEmptyStr
    assembler_id: NonEmptyStr
    member_count: NonNegativeInt
    formation_method: FormationMethod
    agent_roles: dict[str, str]
    """agent id → role."""
    token_budget: NonNegativeInt
    estimated_completion_time: UtcDatetime | None = None


class CollaborationMetrics(SeedModel):
    pair_count: NonNegativeInt = 0
    mean_pair_success: Fraction | None = None
    messages_exchanged: NonNegativeInt = 0


class CapabilityMetrics(SeedModel):
    required: list[str] = Field(default_factory=list)
    covered: list[str] = Field(default_factory=list)
    coverage: Fraction = 0.0
    """Share of required capabilities some member had."""


class TeamPerformancePayload(SeedModel):
    team_id: NonEmptyStr
    task_id: NonEmptyStr
    success_rating: Fraction
    completion_time: NonNegativeInt
    token_usage: NonNegativeInt
    budget_variance: float
    """Percent over (+) or under (−) the token budget."""
    collaboration_metrics: CollaborationMetrics = Field(default_factory=CollaborationMetrics)
    capability_metrics: CapabilityMetrics = Field(default_factory=CapabilityMetrics)


class TaskSubmittedPayload(SeedModel):
    task_id: NonEmptyStr
    title: NonEmptyStr
    description: str = ""
    submitted_by: NonEmptyStr
    priority: Priority = 3
    token_budget: NonNegativeInt
    deadline: UtcDatetime | None = None


class TaskAnalyzedPayload(SeedModel):
    task_id: NonEmptyStr
    analyzer_id: NonEmptyStr
    extracted_capabilities: list[str]
    complexity: Fraction
    token_estimate: NonNegativeInt
    time_estimate: NonNegativeInt
    """Seconds."""
    recommended_team_size: Annotated[int, Field(ge=1)]
    capability_confidence: dict[str, Fraction] = Field(default_factory=dict)
    """Extension: how sure the analysis is of each extracted capability (1.0: a step names it; else the cosine
    similarity of the task's text and the capability's description, ``flows/task_analysis.py``)."""
    embedder: str | None = None
    """Extension: the text embedder the analysis matched with (``all-MiniLM-L6-v2``)."""


class AgentProvisionedEvent(BaseEvent[AgentProvisionedPayload]):
    family: ClassVar[str] = "agents"
    event_type: Literal["agent_provisioned"] = "agent_provisioned"


class AgentStateTransitionEvent(BaseEvent[AgentStateTransitionPayload]):
    family: ClassVar[str] = "agents"
    event_type: Literal["agent_state_transition"] = "agent_state_transition"


class TeamAssembledEvent(BaseEvent[TeamAssembledPayload]):
    family: ClassVar[str] = "teams"
    event_type: Literal["team_assembled"] = "team_assembled"


class TeamPerformanceEvent(BaseEvent[TeamPerformancePayload]):
    family: ClassVar[str] = "teams"
    event_type: Literal["team_performance"] = "team_performance"


class TaskSubmittedEvent(BaseEvent[TaskSubmittedPayload]):
    family: ClassVar[str] = "tasks"
    event_type: Literal["task_submitted"] = "task_submitted"


class TaskAnalyzedEvent(BaseEvent[TaskAnalyzedPayload]):
    family: ClassVar[str] = "tasks"
    event_type: Literal["task_analyzed"] = "task_analyzed"


class ToolCallPayload(SeedModel):
    """Extension: one tool call of an agent's loop (``tool_called`` before it runs, ``tool_completed`` after).

    Arguments and results are shortened and redacted (``ToolCallRecord``); the Kafka key is the agent's id, so an
    agent's calls stay in order with its state transitions.
    """

    agent_id: NonEmptyStr
    task_id: NonEmptyStr
    run_key: NonEmptyStr
    step_id: NonEmptyStr
    """The step slot: the step, or ``step[item]`` for a fan-out item."""
    turn: Annotated[int, Field(ge=1)]
    call_id: NonEmptyStr
    tool: NonEmptyStr
    arguments: str = ""
    ok: bool | None = None
    """``tool_completed``: the tool answered (False: it raised, timed out, got bad arguments, or was refused)."""
    refused: bool = False
    """``tool_completed``: never called (denied by the template's permissions, or an approver said no)."""
    result: str | None = None
    """``tool_completed``: the start of what the model read."""
    duration_ms: float | None = None
    cached: bool = False
    """``tool_completed``: taken from the call's checkpoint by a resumed run (the tool was not called again)."""


class ToolCallEvent(BaseEvent[ToolCallPayload]):
    family: ClassVar[str] = "agents"
    event_type: Literal["tool_called", "tool_completed"]


WorkflowEventType = Literal[
    "workflow_run_started",
    "workflow_run_completed",
    "workflow_run_failed",
    "step_started",
    "step_retried",
    "step_completed",
    "step_failed",
    "step_skipped",
]


class WorkflowEventPayload(SeedModel):
    """Extension: a workflow run's or step's progress, in the seed's event envelope."""

    workflow_id: NonEmptyStr
    workflow_version: NonEmptyStr
    run_key: NonEmptyStr
    """The run (its first flow run id, or the resume key): what a resumed run shares with the run it resumes."""
    task_id: NonEmptyStr
    step_id: str | None = None
    """The step, or ``step[item]`` for a fan-out item; None for run events."""
    attempt: NonNegativeInt | None = None
    reason: str | None = None
    tokens: NonNegativeInt = 0
    duration_s: float | None = None
    step_count: NonNegativeInt | None = None
    """On ``workflow_run_started``: how many steps the run has (each ends completed, skipped or failed), so a
    reader such as the API's live feed can tell the run's progress from its step events."""
    owner_ref: str | None = None
    """The API key that started the run, as :func:`~agentparty.models.access.owner_ref` of its name (never the
    key): what ``/ws`` checks ``conditions: {owner: self}`` against. None for runs not started over the API."""


class WorkflowEvent(BaseEvent[WorkflowEventPayload]):
    family: ClassVar[str] = "workflows"
    event_type: WorkflowEventType

    def entity_id(self) -> str:
        return self.payload.task_id


class CircuitBreakerPayload(SeedModel):
    target: NonEmptyStr
    """What the breaker guards: ``handler:module:fn`` or ``agent:NAME@MODEL``."""
    previous_state: Literal["closed", "open", "half_open"]
    new_state: Literal["closed", "open", "half_open"]
    failures: NonNegativeInt = 0


class CircuitBreakerEvent(BaseEvent[CircuitBreakerPayload]):
    family: ClassVar[str] = "workflows"
    event_type: Literal["circuit_breaker_opened", "circuit_breaker_half_open", "circuit_breaker_closed"]

    def entity_id(self) -> str:
        return self.payload.target


LifecycleEvent = Annotated[
    AgentProvisionedEvent
    | AgentStateTransitionEvent
    | TeamAssembledEvent
    | TeamPerformanceEvent
    | TaskSubmittedEvent
    | TaskAnalyzedEvent
    | WorkflowEvent
    | CircuitBreakerEvent
    | ToolCallEvent,
    Field(discriminator="event_type"),
]
LIFECYCLE_EVENT_ADAPTER: TypeAdapter[LifecycleEvent] = TypeAdapter(LifecycleEvent)
EVENT_TYPES: dict[str, type[BaseEvent[Any]]] = {
    cls.model_fields["event_type"].default: cls
    for cls in (
        AgentProvisionedEvent,
        AgentStateTransitionEvent,
        TeamAssembledEvent,
        TeamPerformanceEvent,
        TaskSubmittedEvent,
        TaskAnalyzedEvent,
    )
}
EVENT_TYPES.update(dict.fromkeys(get_args(WorkflowEventType), WorkflowEvent))
EVENT_TYPES.update({"tool_called": ToolCallEvent, "tool_completed": ToolCallEvent})
EVENT_TYPES.update(
    {
        name: CircuitBreakerEvent
        for name in ("circuit_breaker_opened", "circuit_breaker_half_open", "circuit_breaker_closed")
    }
)
