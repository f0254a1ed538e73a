"""What one agent step asks and answers, and the protocols the runner is extended by.

:class:`AgentStepRequest` is what the compiler (or a delegating agent) asks the
runner; :class:`AgentStepResponse` what it gets back; :class:`StepAgent` the
agent a step puts to work and what its engagement records. Extensions
(:class:`AgentExtension`) give agents built-in tools and prompt text; those whose
tools change persistent state or hand work to others also report it
(:class:`MemorySource`, :class:`HandoffSource`) so the engagement's record
carries it to the results graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agentparty.models.agent import AgentInstance
from agentparty.models.engagements import AgentWork, Colleague, Handoff, LifecycleTransition
from agentparty.models.governance import GovernanceRules
from agentparty.models.graph import Agent, ModelParameters
from agentparty.models.memory import MemoryChange
from agentparty.models.tools import McpServer, PythonTool, TurnRecord
from agentparty.runtime.budgets import Budget
from agentparty.tasks.lifecycle import AgentLifecycle
from agentparty.tasks.templates import ResolvedTemplate
from agentparty.tasks.toolbox import BoundTool, McpConnector


@dataclass(frozen=True)
class AgentStepRequest:
    step_id: str
    agent: str
    """Template name."""
    prompt: str
    version: str | None = None
    capability: str | None = None
    model: str | None = None
    output_schema: dict[str, Any] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    run_key: str = "local"
    """The run (its flow run id, or the resume key): agents and task budgets are per run."""
    user_id: str | None = None
    budgets: tuple[Budget, ...] = ()
    """Task, team and user budgets the compiler found; the runner adds the agent's own."""
    agent_token_budget: int | None = None
    slot: str = ""
    """Where in the run the agent works: the step id, or ``step[item]`` for a fan-out item (one agent each)."""
    tools: tuple[str | PythonTool, ...] = ()
    """The step's own Python tools (``configuration.tools``), beside the template version's."""
    mcp_servers: tuple[McpServer, ...] = ()
    """The step's own MCP servers, beside the template version's."""
    max_turns: int | None = None
    max_tool_calls: int | None = None
    search_dirs: tuple[Path, ...] = ()
    """Where tool modules (and relative MCP commands) are found: the definition's folder."""
    mcp: McpConnector | None = None
    """The run's MCP connections (reused within the run, closed at its end); None outside a run."""
    workflow_id: str = ""
    """The workflow the run runs (the engagement's ``currentWorkflow``); empty outside a workflow."""
    colleagues: tuple[Colleague, ...] = ()
    """Agents this one may hand a sub-question to (``ask_agent``, ``tasks/delegation.py``); none: it asks nobody."""
    depth: int = 0
    """How deep in hand-offs this engagement is: 0 for a step's agent, 1 for an agent it asked, and so on."""

    @property
    def agent_slot(self) -> str:
        return self.slot or self.step_id


@dataclass(frozen=True)
class AgentStepResponse:
    output: Any
    model: str
    input_tokens: int
    output_tokens: int
    simulated: bool
    agent_id: str = ""
    requested_model: str | None = None
    cost: float = 0.0
    fallback_reasons: tuple[str, ...] = ()
    work: AgentWork | None = None
    turns: tuple[TurnRecord, ...] = ()
    """The loop's model turns and the tool calls each asked for."""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class StepAgent:
    """The agent one step puts to work, and what its engagement records in the results graph."""

    instance: AgentInstance
    node: Agent
    """The persistent agent's graph node (its status is the engagement's at the time of recording)."""
    system: str
    """The system prompt."""
    governance: GovernanceRules
    parameters: ModelParameters
    template_id: str
    """The template's id, or ``ad-hoc``."""
    template_version: str
    capabilities: dict[str, float]
    """Proficiency per capability, including the one the step asks for."""
    resolved: ResolvedTemplate | None
    """The template behind the agent; None for an ad-hoc agent."""

    def work(
        self,
        request: AgentStepRequest,
        lifecycle: AgentLifecycle,
        transitions: tuple[LifecycleTransition, ...],
        input_tokens: int = 0,
        output_tokens: int = 0,
        turns: tuple[TurnRecord, ...] = (),
        handoffs: tuple[Handoff, ...] = (),
    ) -> AgentWork:
        """What the engagement contributes to the results graph, as of now."""
        resolved = self.resolved
        return AgentWork(
            agent=self.node.model_copy(update={"status": lifecycle.state}),
            slot=request.agent_slot,
            role=request.capability or request.step_id,
            template=resolved.template if resolved else None,
            version=resolved.version if resolved else None,
            capabilities=self.capabilities,
            used=(request.capability,) if request.capability else tuple(sorted(self.capabilities)),
            transitions=transitions,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            provisioned=lifecycle.provisioned,
            turns=turns,
            handoffs=handoffs,
            capability_definitions=tuple(resolved.record.capability_definitions) if resolved else (),
        )


class AgentRunner(Protocol):
    async def run(self, request: AgentStepRequest) -> AgentStepResponse: ...


class AgentExtension(Protocol):
    """Something the engine gives an agent beyond its template: built-in tools, and text for its system prompt.

    Memory (``remember``/``recall`` and what the agent sees of its memory) and delegation (``ask_agent``) are
    extensions; the runner asks each, per engagement attempt, what it adds for this agent and step.
    """

    def tools(self, request: AgentStepRequest, agent: StepAgent) -> Sequence[BoundTool]:
        """Built-in tools for this agent on this step (none when it is not enabled for it)."""
        ...

    def instructions(self, request: AgentStepRequest, agent: StepAgent) -> str:
        """Text appended to the agent's system prompt (empty for none)."""
        ...


@runtime_checkable
class MemorySource(Protocol):
    """An extension whose tools change the agent's persistent memory: the engagement's record carries the changes.

    Asked after every attempt, failed ones included, for all the engagement's changes so far (each has an id made
    when it was applied, so the graph MERGEs a change recorded by two attempts or a resumed run once).
    """

    def memory_changes(self, request: AgentStepRequest, agent: StepAgent) -> tuple[MemoryChange, ...]: ...


@runtime_checkable
class HandoffSource(Protocol):
    """An extension whose tools hand work to other agents (delegation): the engagement's record carries it.

    Like lifecycle transitions, hand-offs stay pending across a step's attempts until a successful one carries
    them (``drain``): a retry that replays a completed ``ask_agent`` call from its checkpoint still records it.
    """

    def handoffs(self, request: AgentStepRequest, *, drain: bool) -> tuple[Handoff, ...]: ...
