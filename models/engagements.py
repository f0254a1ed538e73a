"""What one engagement of an agent leaves behind: its lifecycle transitions and its work in a run.

Pure data, persisted with the step result that carries it (so a resumed run that
reuses the result writes the same states and outputs to the graph again), and read
by the graph writer (``runtime/run_recorder.py``) and the run's events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .capabilities import CapabilityDefinition
from .events import AgentProvisionedPayload, AgentStateTransitionPayload
from .graph import Agent, AgentStateRecord, AgentTemplate, TemplateVersion
from .memory import MemoryChange
from .messages import AgentMessage
from .tools import TurnRecord

AUTOMATIC_APPROVER = "system:governance"
"""The approver of a transition that governance let through without a human."""


@dataclass(frozen=True)
class LifecycleTransition:
    """Everything one applied transition produced."""

    event: AgentStateTransitionPayload
    record: AgentStateRecord
    """The AgentState node of the state being *entered*."""
    left: AgentStateRecord
    """The state being left, with its final duration and token count."""


@dataclass(frozen=True)
class AgentWork:
    """One engagement of an agent, as the results graph records it (picklable: persisted with the step result)."""

    agent: Agent
    """The persistent agent, its ``status`` the engagement's latest state."""
    slot: str
    role: str
    """Its role in the run's team: the step's capability, or the step id."""
    template: AgentTemplate | None
    version: TemplateVersion | None
    capabilities: dict[str, float]
    """Capability name → the proficiency an agent of this kind starts with."""
    used: tuple[str, ...]
    """Capabilities this step exercised (its ``capability``, else all the agent's)."""
    transitions: tuple[LifecycleTransition, ...]
    """Every transition of the engagement not yet carried by an earlier result, oldest first."""
    input_tokens: int = 0
    output_tokens: int = 0
    provisioned: AgentProvisionedPayload | None = None
    """Set on the first result of a new engagement (the agent was provisioned into the run)."""
    turns: tuple[TurnRecord, ...] = ()
    """The model turns of this attempt's loop, with the tool calls each asked for (none in results persisted before
    tools: a dataclass default, so older pickles read it as empty)."""
    handoffs: tuple[Handoff, ...] = ()
    """Sub-questions this engagement handed to other agents (``ask_agent``), each with the engagement that answered
    it (none in results persisted before delegation: a dataclass default)."""
    memory: tuple[MemoryChange, ...] = ()
    """Changes the engagement made to the agent's persistent memory, every attempt's so far (none in results
    persisted before memory: a dataclass default)."""
    capability_definitions: tuple[CapabilityDefinition, ...] = ()
    """The template version's own definitions of its capabilities (category, token cost, ...), which win over the
    capability registry's (none for ad-hoc agents, for templates that only name their capabilities, and in results
    persisted before them: a dataclass default)."""

    def delegated(self) -> Iterator[tuple[str, AgentWork]]:
        """Every engagement this one's hand-offs led to, however deep, as (slot, work), askers before the asked."""
        for handoff in self.handoffs:
            yield handoff.slot, handoff.work
            yield from handoff.work.delegated()


@dataclass(frozen=True)
class Colleague:
    """An agent a step's agent may hand a sub-question to (``ask_agent``): a delegate the step names, or a member
    of the run's team."""

    name: str
    """What the asking model calls it: a template name, or a team member's handle (``template@version``)."""
    agent: str
    """What an agent step would name: the template, or the ad-hoc agent's name."""
    version: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Handoff:
    """One sub-question an agent handed to another, and the answer: two seed 002 agent messages, one each way."""

    slot: str
    """The asked agent's own slot in the run (``<asker's slot>>ask:<name>#<turn>.<call>``), stable per call."""
    question: AgentMessage
    """From the asker (``agent_id``) to the asked agent (``metadata["to"]``)."""
    answer: AgentMessage | None
    """From the asked agent back to the asker; None when it failed to answer."""
    work: AgentWork
    """The asked agent's engagement (its transitions, turns and its own hand-offs)."""
    cost: float = 0.0
    """What the asked agent's own turns cost (its hand-offs carry theirs)."""

    @property
    def asker(self) -> str:
        return self.question.agent_id

    @property
    def messages(self) -> int:
        """Agent-to-agent messages of this hand-off alone: the question, and the answer when one came back."""
        return 1 + (self.answer is not None)


def messages_exchanged(works: tuple[AgentWork, ...]) -> int:
    """Agent-to-agent messages of these engagements' hand-offs, however deep."""
    return sum(handoff.messages for work in works for handoff in _all_handoffs(work))


def delegated_tokens(work: AgentWork) -> int:
    """Tokens the agents this engagement asked (and those they asked) used answering."""
    return sum(w.input_tokens + w.output_tokens for _, w in work.delegated())


def delegated_cost(work: AgentWork) -> float:
    return sum(handoff.cost for handoff in _all_handoffs(work))


def _all_handoffs(work: AgentWork) -> Iterator[Handoff]:
    for handoff in work.handoffs:
        yield handoff
        yield from _all_handoffs(handoff.work)


@dataclass(frozen=True)
class SlotRecord:
    """One executed slot of a ``task`` step (the step, or one fan-out item) and what the graph keeps of it."""

    slot: str
    completed: bool
    output: Any = None
    model: str | None = None
    simulated: bool = False
    agents: tuple[AgentWork, ...] = ()

    def engagements(self) -> Iterator[tuple[str, AgentWork]]:
        """The slot's engagements and those their hand-offs led to, as (slot, work): what the graph and the events
        record of this slot."""
        for work in self.agents:
            yield self.slot, work
            yield from work.delegated()
