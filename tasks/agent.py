"""Agent steps: provision an agent from its template, move it through its lifecycle, call its model.

One call of :meth:`ModelAgentRunner.run` is one attempt of a ``task`` step with
``agent:``. The step puts a persistent agent to work: the template's published
version (or, for a name no template defines, an ad-hoc agent on the step's
model with a generic prompt). Each (run, slot) is one *engagement* with its own
lifecycle: ``initialized → running`` under the template's governance, an answer
through the model registry (fallback chain, per-model concurrency, budgets),
then ``completed`` or ``failed``. A retried attempt finds the same engagement
and moves it ``failed → running`` again.

What the engagement contributes to the results graph travels as an
:class:`~agentparty.models.engagements.AgentWork` on the response (and on the exception of a failed attempt),
so the compiler writes it with the step's result, and a resumed run that reuses
the persisted result writes it again, idempotently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from prefect.context import FlowRunContext, TaskRunContext

from agentparty.models import AgentLifecycleState
from agentparty.models.access import owner_ref, run_owner
from agentparty.models.agent import AgentInstance, ExecutionContext, ModelConfiguration, WorkflowState
from agentparty.models.config import AgentRuntimeConfig
from agentparty.models.engagements import AgentWork, Handoff
from agentparty.models.events import AgentProvisionedPayload, ResourceAllocation
from agentparty.models.governance import GovernanceRules
from agentparty.models.graph import Agent
from agentparty.models.messages import SystemMessage, UserMessage
from agentparty.models.step_errors import TemplateError, ToolsRefused
from agentparty.models.tools import AgentTooling, ToolPolicy
from agentparty.runtime.budgets import Budget
from agentparty.runtime.conversations import ConversationStore
from agentparty.runtime.log_context import log_ids
from agentparty.runtime.metrics import AgentMetricsBook
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.providers.base import CompletionRequest
from agentparty.tasks.agent_loop import AgentLoop, LoopObserver, LoopPlace, loop_limits, turns_of
from agentparty.tasks.agent_step import (
    AgentExtension,
    AgentRunner,
    AgentStepRequest,
    AgentStepResponse,
    HandoffSource,
    MemorySource,
    StepAgent,
)
from agentparty.tasks.context_window import ContextWindow
from agentparty.tasks.conversation_log import NO_LOG, ConversationLog
from agentparty.tasks.lifecycle import AgentLifecycle, Approver, PrefectApprover
from agentparty.tasks.templates import (
    ResolvedTemplate,
    TemplateRegistry,
    default_system_prompt,
    engagement_key,
    persistent_agent_id,
    render_prompt_template,
)
from agentparty.tasks.toolbox import Toolbox, build_toolbox

__all__ = [
    "AgentExtension",
    "AgentRunner",
    "AgentStepRequest",
    "AgentStepResponse",
    "HandoffSource",
    "MemorySource",
    "ModelAgentRunner",
    "StepAgent",
    "agent_work_of",
]

logger = logging.getLogger("agentparty.agents")
MAX_TRACKED_AGENTS = 10_000
AD_HOC_PROFICIENCY = 0.5
"""Proficiency an agent starts with in a capability a step asks of it that its template does not declare."""


@dataclass
class ModelAgentRunner:
    router: ModelRouter
    templates: TemplateRegistry | None = None
    approver: Approver = field(default_factory=PrefectApprover)
    metrics: AgentMetricsBook = field(default_factory=AgentMetricsBook)
    runtime: AgentRuntimeConfig = field(default_factory=AgentRuntimeConfig)
    stream: bool = True
    """Stream answers from models that support it (deltas go to ``on_text`` listeners; live updates use them)."""
    extensions: tuple[AgentExtension, ...] = ()
    """Built-in tools and prompt text beyond the template's (memory, delegation)."""
    observer: LoopObserver = field(default_factory=LoopObserver)
    """Told each turn, text delta and tool call as they happen (live streaming); durable records do not depend on it."""
    conversations: ConversationStore | None = None
    """Where each engagement's conversation is kept (None: not kept, e.g. a runner without a home)."""
    policy: ToolPolicy = field(default_factory=ToolPolicy)
    """The allowlist of tool code, checked again when a template's agent starts (it may have shrunk since the
    template was created), and the MCP servers configured by name."""
    _lifecycles: OrderedDict[tuple[str, str], AgentLifecycle] = field(default_factory=OrderedDict)
    """Recently active engagements (bounded: a long-lived worker runs many runs); a forgotten one starts afresh."""

    def _template(self, request: AgentStepRequest) -> ResolvedTemplate | None:
        template = self.templates.find(request.agent) if self.templates is not None else None
        if template is None:
            if request.version is not None:
                raise TemplateError(
                    f"step {request.step_id!r} asks for version {request.version} of {request.agent!r}, which no template defines"
                )
            return None
        assert self.templates is not None
        return self.templates.resolve(request.agent, request.version, template)

    def _lifecycle(
        self, agent_id: str, engagement: str, name: str, governance: GovernanceRules
    ) -> tuple[AgentLifecycle, bool]:
        """The engagement's lifecycle, and whether it is new (the agent is being provisioned into the run)."""
        key = (agent_id, engagement)
        lifecycle = self._lifecycles.get(key)
        if lifecycle is not None:
            self._lifecycles.move_to_end(key)
            return lifecycle, False
        lifecycle = self._lifecycles[key] = AgentLifecycle(
            agent_id, name, governance, self.approver, engagement=engagement
        )
        if len(self._lifecycles) > MAX_TRACKED_AGENTS:
            self._lifecycles.popitem(last=False)
        return lifecycle, True

    def agent_id_for(self, agent: str, version: str | None = None, model: str | None = None) -> str:
        """The persistent agent a step naming ``agent`` will put to work (team plans name members before they work)."""
        resolved = self._template(
            AgentStepRequest(step_id="plan", agent=agent, prompt="", version=version, model=model)
        )
        if resolved is not None:
            return persistent_agent_id(resolved.template.id, resolved.version.version)
        return persistent_agent_id("ad-hoc", agent, model or self.router.registry.default_model)

    async def run(self, request: AgentStepRequest) -> AgentStepResponse:
        agent = self._step_agent(request)
        with log_ids(step_id=request.step_id, agent_id=agent.instance.id):  # what is logged for it names both
            return await self._run(request, agent)

    async def _run(self, request: AgentStepRequest, agent: StepAgent) -> AgentStepResponse:
        agent_budget = request.agent_token_budget or self.runtime.default_token_budget
        engagement = engagement_key(request.run_key, request.agent_slot)
        lifecycle = self._engage(agent, request, agent_budget, engagement)
        try:
            start_reason = f"step {request.step_id}"
            if lifecycle.state in (
                AgentLifecycleState.INITIALIZED,
                AgentLifecycleState.COMPLETED,
                AgentLifecycleState.FAILED,
            ):
                await lifecycle.transition(AgentLifecycleState.RUNNING, start_reason)
            response = await self._answer(request, agent, lifecycle, agent_budget, engagement)
        except BaseException as exc:
            # Not drained: a later successful attempt carries these transitions too.
            pending = self._handoffs(request, drain=False)
            _attach_work(
                exc,
                self._with_memory(
                    request,
                    agent,
                    agent.work(request, lifecycle, lifecycle.pending(), turns=turns_of(exc), handoffs=pending),
                ),
            )
            raise
        done = agent.work(
            request,
            lifecycle,
            lifecycle.drain(),
            response.input_tokens,
            response.output_tokens,
            response.turns,
            self._handoffs(request, drain=True),
        )
        done = self._with_memory(request, agent, done)
        lifecycle.provisioned = None  # carried by this result
        return dataclasses.replace(response, work=done)

    def _with_memory(self, request: AgentStepRequest, agent: StepAgent, work: AgentWork) -> AgentWork:
        """The work with the memory changes of the engagement (``MemorySource`` extensions), every attempt's."""
        changes = tuple(
            change
            for extension in self.extensions
            if isinstance(extension, MemorySource)
            for change in extension.memory_changes(request, agent)
        )
        return dataclasses.replace(work, memory=changes) if changes else work

    def _handoffs(self, request: AgentStepRequest, *, drain: bool) -> tuple[Handoff, ...]:
        """The engagement's hand-offs to other agents not yet carried by a result (``HandoffSource`` extensions)."""
        return tuple(
            handoff
            for extension in self.extensions
            if isinstance(extension, HandoffSource)
            for handoff in extension.handoffs(request, drain=drain)
        )

    def _step_agent(self, request: AgentStepRequest) -> StepAgent:
        """The agent the step puts to work: its template's published version, or an ad-hoc agent on a model."""
        resolved = self._template(request)
        if resolved is not None and self.templates is not None:
            agent = self._template_agent(request, resolved, self.templates)
        else:
            agent = self._ad_hoc_agent(request)
        if request.capability and request.capability not in agent.capabilities:
            agent.capabilities[request.capability] = AD_HOC_PROFICIENCY
        return agent

    def _template_agent(
        self, request: AgentStepRequest, resolved: ResolvedTemplate, templates: TemplateRegistry
    ) -> StepAgent:
        instance = templates.provision(
            resolved, self.router.registry, run_key=request.run_key, user_id=request.user_id, model=request.model
        )
        version = resolved.version
        handle = f"{resolved.template.name}@{version.version}"
        return StepAgent(
            instance=instance,
            node=Agent(
                id=instance.id,
                name=handle,
                model=version.model,
                parameters=version.parameters,
                personality=version.personality,
                handle=handle,
            ),
            system=resolved.record.system_prompt,
            governance=resolved.template.governance_rules,
            parameters=version.parameters,
            template_id=resolved.template.id,
            template_version=version.version,
            capabilities=dict(resolved.record.capabilities),
            resolved=resolved,
        )

    def _ad_hoc_agent(self, request: AgentStepRequest) -> StepAgent:
        model_name = request.model or self.router.registry.default_model
        info = self.router.info(model_name)
        instance = AgentInstance(
            id=persistent_agent_id("ad-hoc", request.agent, model_name),
            model=ModelConfiguration(provider=info.provider, model=model_name, capabilities=info.capabilities),
            context=ExecutionContext(session_id=request.run_key, user_id=request.user_id),
        )
        return StepAgent(
            instance=instance,
            node=Agent(
                id=instance.id,
                name=f"{request.agent} (ad-hoc, {model_name})",
                model=model_name,
                parameters=instance.model.parameters,
                handle=request.agent,
            ),
            system=default_system_prompt(
                request.agent, "", "", {request.capability: 1.0} if request.capability else {}
            ),
            governance=GovernanceRules(),
            parameters=instance.model.parameters,
            template_id="ad-hoc",
            template_version="0.0.0",
            capabilities={},
            resolved=None,
        )

    def _engage(
        self, agent: StepAgent, request: AgentStepRequest, agent_budget: int, engagement: str
    ) -> AgentLifecycle:
        """The engagement's lifecycle; a new one carries the provisioning the results graph records once."""
        instance = agent.instance
        lifecycle, new = self._lifecycle(instance.id, engagement, request.agent, agent.governance)
        if new:
            lifecycle.provisioned = AgentProvisionedPayload(
                agent_id=instance.id,
                template_id=agent.template_id,
                template_version=agent.template_version,
                provisioner="workflow-engine",
                parameters=agent.parameters.model_dump(exclude_none=True),
                resource_allocation=ResourceAllocation(
                    token_budget=agent_budget,
                    max_tokens_per_minute=instance.context.resource_limits.max_tokens_per_minute,
                    max_concurrency=instance.model.capabilities.max_concurrency,
                    timeout_seconds=self.runtime.default_timeout,
                ),
            )
        return lifecycle

    async def _toolbox(self, request: AgentStepRequest, agent: StepAgent) -> Toolbox:
        """The template version's tools and the step's, filtered by the agent's permissions (MCP servers connected)."""
        tooling = agent.resolved.record.tooling if agent.resolved is not None else AgentTooling()
        if tooling:
            problems = self.policy.refusals(tooling)
            if problems:
                raise ToolsRefused(agent.node.name, problems)
        references = [*tooling.tools, *request.tools]
        servers = [*tooling.mcp_servers, *request.mcp_servers]
        builtins = [tool for extension in self.extensions for tool in extension.tools(request, agent)]
        if not references and not servers and not builtins:
            return Toolbox()
        return await build_toolbox(
            references,
            servers,
            agent.instance.context.permissions,
            search_dirs=request.search_dirs,
            connector=request.mcp,
            configured_servers=self.policy.configured,
            builtins=builtins,
        )

    def _conversation(self, request: AgentStepRequest, agent_id: str, engagement: str) -> ConversationLog:
        """The engagement's conversation log, its ``currentWorkflow`` set to this run and step."""
        if self.conversations is None:
            return NO_LOG
        workflow = WorkflowState(
            workflow_id=request.workflow_id or "ad-hoc",
            run_id=request.run_key,
            current_step=request.step_id,
            status="running",
        )
        key = self.conversations.begin(agent_id, engagement, request.run_key, request.agent_slot, workflow)
        return ConversationLog(self.conversations, key)

    def _system_prompt(self, request: AgentStepRequest, agent: StepAgent) -> str:
        """The version's system prompt, or the runtime prompt template it names, filled in for this step."""
        resolved = agent.resolved
        name = resolved.record.prompt_template if resolved is not None else None
        if resolved is None or name is None:
            return agent.system
        text = self.runtime.prompt_templates.get(name)
        if text is None:
            raise TemplateError(
                f"{agent.node.name} uses prompt template {name!r}, which agentRuntime.promptTemplates does not define"
            )
        return render_prompt_template(name, text, resolved, request.inputs, request.step_id)

    def _first_request(self, request: AgentStepRequest, agent: StepAgent) -> CompletionRequest:
        """The first turn's request: the system prompt (with what extensions add), the task and its inputs."""
        parameters = agent.parameters
        user_text = request.prompt
        if request.inputs:
            user_text += "\n\nInputs (JSON):\n" + json.dumps(request.inputs, indent=2, sort_keys=True, default=str)
        system = "\n\n".join(
            [
                self._system_prompt(request, agent),
                *(text for extension in self.extensions if (text := extension.instructions(request, agent))),
            ]
        )
        messages = (
            SystemMessage(content=system),
            UserMessage(content=user_text, user_id=request.user_id or "workflow", session_id=request.run_key),
        )
        return CompletionRequest(
            model=agent.instance.model.model,
            messages=messages,
            output_schema=request.output_schema,
            max_tokens=parameters.max_tokens or 1024,
            temperature=parameters.temperature,
            top_p=parameters.top_p,
            stream=self.stream,
            timeout=float(self.runtime.default_timeout),
            seed=parameters.seed,
            logprobs=bool(parameters.logprobs),
            metadata={"agent": request.agent, "step": request.step_id},
        )

    def _loop(
        self,
        request: AgentStepRequest,
        agent: StepAgent,
        lifecycle: AgentLifecycle,
        log: ConversationLog,
        answer_tokens: int,
        durable: bool,
    ) -> tuple[AgentLoop, LoopPlace]:
        """The engagement attempt's loop (its observers, conversation log and context window) and its place."""
        instance = agent.instance
        attempt, attempts = _attempt()
        place = LoopPlace(
            run_key=request.run_key,
            step_id=request.step_id,
            slot=request.agent_slot,
            agent_id=instance.id,
            agent_name=agent.node.name,
            attempt=attempt,
            attempts=attempts,
            durable=durable,
            workflow_id=request.workflow_id or None,
            owner_ref=current_owner_ref(),
        )
        loop = AgentLoop(
            self.router,
            self.approver,
            on_usage=lifecycle.use,
            observer=self.observer,
            log=log,
            context=ContextWindow(
                model=instance.model.model,
                window=self.router.info(instance.model.model).capabilities.max_tokens,
                reserve=answer_tokens,
                strategy=self.runtime.context_strategy,
                step_id=request.step_id,
            ),
        )
        return loop, place

    async def _answer(
        self,
        request: AgentStepRequest,
        agent: StepAgent,
        lifecycle: AgentLifecycle,
        agent_budget: int,
        engagement: str,
    ) -> AgentStepResponse:
        """The agent's loop (``tasks/agent_loop.py``): model turns and the tool calls they ask for, to an answer."""
        instance = agent.instance
        completion_request = self._first_request(request, agent)
        budgets = (*request.budgets, Budget("agent", f"{instance.id}|{engagement}", agent_budget))
        tooling = agent.resolved.record.tooling if agent.resolved is not None else None
        log = self._conversation(request, instance.id, engagement)
        started = time.perf_counter()
        try:
            toolbox = await self._toolbox(request, agent)
            loop, place = self._loop(request, agent, lifecycle, log, completion_request.max_tokens, bool(toolbox))
            outcome = await loop.run(
                completion_request, toolbox, loop_limits(request, tooling, self.runtime), place, budgets
            )
        except BaseException as exc:
            self.metrics.record(instance.id, response_ms=(time.perf_counter() - started) * 1000, ok=False)
            if lifecycle.state is AgentLifecycleState.RUNNING:
                await lifecycle.transition(
                    AgentLifecycleState.FAILED, f"{type(exc).__name__}: {exc}"[:500], notes=_summary(log)
                )
            raise
        final = outcome.final
        self.metrics.record(
            instance.id,
            response_ms=(time.perf_counter() - started) * 1000,
            tokens=outcome.input_tokens + outcome.output_tokens,
            cost=outcome.cost,
        )
        await lifecycle.transition(
            AgentLifecycleState.COMPLETED, f"step {request.step_id} answered by {final.model}", notes=_summary(log)
        )
        return AgentStepResponse(
            output=final.completion.output,
            model=final.model,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            simulated=final.completion.simulated,
            agent_id=instance.id,
            requested_model=final.requested_model,
            cost=outcome.cost,
            fallback_reasons=tuple(outcome.fallback_reasons),
            turns=tuple(outcome.turns),
        )


def _summary(log: ConversationLog) -> str:
    """The engagement's conversation in a line, for the graph's AgentState (the messages stay in the store)."""
    if log.store is None:
        return ""
    counts = log.store.counts(log.engagement)
    said = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
    return f"conversation {log.engagement}: {sum(counts.values())} messages ({said})"


def current_owner_ref() -> str | None:
    """Who started the flow run this code runs in over the API (its ``agentparty.owner:`` tag, as
    :func:`~agentparty.models.access.owner_ref`); None outside a flow run or for one started otherwise."""
    context = FlowRunContext.get()
    owner = run_owner(tuple(context.flow_run.tags)) if context is not None and context.flow_run else None
    return owner_ref(owner) if owner is not None else None


def _attempt() -> tuple[int, int]:
    """(this attempt, attempts allowed) of the Prefect task running the step; (1, 1) outside one."""
    context = TaskRunContext.get()
    if context is None:
        return 1, 1
    return max(1, context.task_run.run_count), max(1, int(context.task.retries or 0) + 1)


def _attach_work(exc: BaseException, work: AgentWork) -> None:
    """A failed attempt's transitions ride on its exception: a step that finally fails still records them."""
    with contextlib.suppress(AttributeError):  # exceptions with __slots__
        exc.agent_work = work  # type: ignore[attr-defined]  # a marker attribute on any exception


def agent_work_of(exc: BaseException) -> AgentWork | None:
    return getattr(exc, "agent_work", None)
