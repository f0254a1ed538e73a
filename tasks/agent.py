"""Agent steps: provision an agent from its template, move it through its lifecycle, call its model.

One call of :meth:`ModelAgentRunner.run` is one attempt of a ``task`` step with
``agent:``. The agent is provisioned from the template's published version
(or, for a name no template defines, an ad-hoc agent on the step's model with a
generic prompt), goes ``initialized → running`` under the template's
governance, answers through the model registry (fallback chain, per-model
concurrency, budgets), and ends ``completed`` or ``failed``. A retried attempt
finds the same agent (its id derives from run and step) and ``recover``s it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentparty.models import AgentLifecycleState
from agentparty.models.agent import AgentInstance, ExecutionContext, ModelConfiguration
from agentparty.models.config import AgentRuntimeConfig
from agentparty.models.events import AgentProvisionedPayload, ResourceAllocation
from agentparty.models.governance import GovernanceRules
from agentparty.models.messages import SystemMessage, UserMessage
from agentparty.runtime.budgets import Budget
from agentparty.runtime.llm import ModelRouter
from agentparty.runtime.metrics import AgentMetricsBook
from agentparty.runtime.providers.base import CompletionRequest
from agentparty.tasks.lifecycle import JOURNAL_LIMIT, AgentLifecycle, Approver, LifecycleSink, MemorySink, PrefectApprover
from agentparty.tasks.templates import (
    ResolvedTemplate,
    TemplateError,
    TemplateRegistry,
    agent_instance_id,
    default_system_prompt,
)

logger = logging.getLogger("agentparty.agents")
MAX_TRACKED_AGENTS = 10_000


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

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class AgentRunner(Protocol):
    async def run(self, request: AgentStepRequest) -> AgentStepResponse: ...


class ProvisionSink(LifecycleSink, Protocol):
    def provisioned(self, payload: AgentProvisionedPayload) -> None: ...


@dataclass
class AgentJournal(MemorySink):
    """The default sink: recent provisioning and transitions kept in memory until the graph and event writers plug in."""

    provisions: deque[AgentProvisionedPayload] = field(default_factory=lambda: deque(maxlen=JOURNAL_LIMIT))

    def provisioned(self, payload: AgentProvisionedPayload) -> None:
        self.provisions.append(payload)


@dataclass
class ModelAgentRunner:
    router: ModelRouter
    templates: TemplateRegistry | None = None
    sink: ProvisionSink = field(default_factory=AgentJournal)
    approver: Approver = field(default_factory=PrefectApprover)
    metrics: AgentMetricsBook = field(default_factory=AgentMetricsBook)
    runtime: AgentRuntimeConfig = field(default_factory=AgentRuntimeConfig)
    stream: bool = True
    """Stream answers from models that support it (deltas go to ``on_text`` listeners; live updates use them)."""
    _lifecycles: OrderedDict[str, AgentLifecycle] = field(default_factory=OrderedDict)
    """Recently active agents (bounded: a long-lived worker runs many runs); a forgotten agent starts afresh."""

    def _template(self, request: AgentStepRequest) -> ResolvedTemplate | None:
        template = self.templates.find(request.agent) if self.templates is not None else None
        if template is None:
            if request.version is not None:
                raise TemplateError(f"step {request.step_id!r} asks for version {request.version} of {request.agent!r}, which no template defines")
            return None
        assert self.templates is not None
        return self.templates.resolve(request.agent, request.version, template)

    def _lifecycle(self, agent_id: str, name: str, governance: GovernanceRules) -> tuple[AgentLifecycle, bool]:
        """The agent's lifecycle, and whether it is new (the agent is being provisioned)."""
        lifecycle = self._lifecycles.get(agent_id)
        if lifecycle is not None:
            self._lifecycles.move_to_end(agent_id)
            return lifecycle, False
        lifecycle = self._lifecycles[agent_id] = AgentLifecycle(agent_id, name, governance, self.approver, self.sink)
        if len(self._lifecycles) > MAX_TRACKED_AGENTS:
            self._lifecycles.popitem(last=False)
        return lifecycle, True

    async def run(self, request: AgentStepRequest) -> AgentStepResponse:
        resolved = self._template(request)
        registry = self.router.registry
        if resolved is not None and self.templates is not None:
            instance = self.templates.provision(
                resolved, registry, run_key=request.run_key, slot=request.agent_slot, user_id=request.user_id, model=request.model
            )
            system = resolved.record.system_prompt
            governance = resolved.template.governance_rules
            parameters = resolved.version.parameters
            template_id, template_version = resolved.template.id, resolved.version.version
        else:
            model_name = request.model or registry.default_model
            info = self.router.info(model_name)
            instance = AgentInstance(
                id=agent_instance_id(request.run_key, request.agent_slot, "ad-hoc", request.agent),
                model=ModelConfiguration(provider=info.provider, model=model_name, capabilities=info.capabilities),
                context=ExecutionContext(session_id=request.run_key, user_id=request.user_id),
            )
            system = default_system_prompt(request.agent, "", "", {request.capability: 1.0} if request.capability else {})
            governance = GovernanceRules()
            parameters = instance.model.parameters
            template_id, template_version = "ad-hoc", "0.0.0"

        agent_budget = request.agent_token_budget or self.runtime.default_token_budget
        lifecycle, new = self._lifecycle(instance.id, request.agent, governance)
        if new:
            self.sink.provisioned(
                AgentProvisionedPayload(
                    agent_id=instance.id, template_id=template_id, template_version=template_version, provisioner="workflow-engine",
                    parameters=parameters.model_dump(exclude_none=True),
                    resource_allocation=ResourceAllocation(
                        token_budget=agent_budget,
                        max_tokens_per_minute=instance.context.resource_limits.max_tokens_per_minute,
                        max_concurrency=instance.model.capabilities.max_concurrency,
                        timeout_seconds=self.runtime.default_timeout,
                    ),
                )
            )
        start_reason = f"step {request.step_id}"
        if lifecycle.state in (AgentLifecycleState.INITIALIZED, AgentLifecycleState.COMPLETED, AgentLifecycleState.FAILED):
            await lifecycle.transition(AgentLifecycleState.RUNNING, start_reason)

        user_text = request.prompt
        if request.inputs:
            user_text += "\n\nInputs (JSON):\n" + json.dumps(request.inputs, indent=2, sort_keys=True, default=str)
        messages = (
            SystemMessage(content=system),
            UserMessage(content=user_text, user_id=request.user_id or "workflow", session_id=request.run_key),
        )
        completion_request = CompletionRequest(
            model=instance.model.model,
            messages=messages,
            output_schema=request.output_schema,
            max_tokens=parameters.max_tokens or 1024,
            temperature=parameters.temperature,
            top_p=parameters.top_p,
            stream=self.stream,
            timeout=float(self.runtime.default_timeout),
            seed=parameters.seed,
            metadata={"agent": request.agent, "step": request.step_id},
        )
        budgets = (*request.budgets, Budget("agent", instance.id, agent_budget))
        started = time.perf_counter()
        try:
            routed = await self.router.complete(completion_request, model=instance.model.model, budgets=budgets)
        except BaseException as exc:
            self.metrics.record(instance.id, response_ms=(time.perf_counter() - started) * 1000, ok=False)
            if lifecycle.state is AgentLifecycleState.RUNNING:
                await lifecycle.transition(AgentLifecycleState.FAILED, f"{type(exc).__name__}: {exc}"[:500])
            raise
        completion = routed.completion
        self.metrics.record(
            instance.id, response_ms=(time.perf_counter() - started) * 1000, tokens=completion.tokens, cost=routed.cost
        )
        lifecycle.charge(completion.tokens)
        await lifecycle.transition(AgentLifecycleState.COMPLETED, f"step {request.step_id} answered by {routed.model}")
        return AgentStepResponse(
            output=completion.output,
            model=routed.model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            simulated=completion.simulated,
            agent_id=instance.id,
            requested_model=routed.requested_model,
            cost=routed.cost,
            fallback_reasons=tuple(f"{a.model}: {a.error}" for a in routed.skipped),
        )
