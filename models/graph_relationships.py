"""Seed 000's Neo4j graph schema, relationships: one properties model per relationship type.

Each says where it goes (``source`` and ``target`` labels) beside its properties,
so a write can be checked against the schema. The node models are in
:mod:`agentparty.models.graph`, which re-exports these for the code (and the
persisted results) that name them there.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from ._base import Fraction, NonEmptyStr, NonNegativeInt, SeedModel, UtcDatetime, utc_now
from .graph_keys import UuidStr


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


class UsedTool(RelationshipProperties):
    """Extension: an agent called a tool in one step slot of a task; the counts are that slot's.

    One per (agent, tool, task, slot), MERGEd on ``task_id`` and ``step_id`` with its properties SET, so a
    resumed run that writes the same slot again leaves the counts as they were.
    """

    type: ClassVar[str] = "USED_TOOL"
    source: ClassVar[tuple[str, ...]] = ("Agent",)
    target: ClassVar[tuple[str, ...]] = ("Tool",)

    task_id: UuidStr
    step_id: NonEmptyStr
    """The step slot: the step, or ``step[item]`` for a fan-out item."""
    calls: Annotated[int, Field(ge=1)] = 1
    errors: NonNegativeInt = 0
    """Calls that did not answer (raised, timed out, bad arguments), refusals not included."""
    refused: NonNegativeInt = 0
    """Calls never made: denied by the template's permissions, or rejected by an approver."""
    last_used: UtcDatetime = Field(default_factory=utc_now)


class Asked(RelationshipProperties):
    """Extension: an agent handed sub-questions to another (``ask_agent``) from one step slot of a task.

    Directed, asker → asked: who talked to whom. One per (asker, asked, task, slot), MERGEd on ``task_id`` and
    ``step_id`` with its counts SET, so writing the same slot again (a resumed run) leaves them as they were; how
    often a pair talked is the sum over their ASKED links. Each question and each answer is one seed 002 agent
    message, so ``questions + answers`` is the pair's share of the team's ``messages_exchanged``.
    """

    type: ClassVar[str] = "ASKED"
    source: ClassVar[tuple[str, ...]] = ("Agent",)
    target: ClassVar[tuple[str, ...]] = ("Agent",)

    task_id: UuidStr
    step_id: NonEmptyStr
    """The asker's slot: a step, ``step[item]``, or the slot of an agent that was itself asked."""
    questions: Annotated[int, Field(ge=1)] = 1
    answers: NonNegativeInt = 0
    """Questions that got an answer (an asked agent that failed sent none)."""
    last_asked: UtcDatetime = Field(default_factory=utc_now)


RELATIONSHIP_TYPES: tuple[type[RelationshipProperties], ...] = (
    Instantiates,
    HasState,
    TransitionedBy,
    HasCapability,
    Created,
    HasVersion,
    DefinesCapabilities,
    RequiresModel,
    MemberOf,
    WorksOn,
    AssembledBy,
    Requires,
    RequestedBy,
    ResultedIn,
    WorkedWith,
    UsedTool,
    Asked,
)
