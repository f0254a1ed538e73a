"""What one engagement of an agent leaves behind: its lifecycle transitions and its work in a run.

Pure data, persisted with the step result that carries it (so a resumed run that
reuses the result writes the same states and outputs to the graph again), and read
by the graph writer (``runtime/run_recorder.py``) and the run's events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .events import AgentProvisionedPayload, AgentStateTransitionPayload
from .graph import Agent, AgentStateRecord, AgentTemplate, TemplateVersion
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


@dataclass(frozen=True)
class SlotRecord:
    """One executed slot of a ``task`` step (the step, or one fan-out item) and what the graph keeps of it."""

    slot: str
    completed: bool
    output: Any = None
    model: str | None = None
    simulated: bool = False
    agents: tuple[AgentWork, ...] = ()
