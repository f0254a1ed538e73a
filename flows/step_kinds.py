"""How each kind of step runs: a handler or agent call, a decision, a fan-out, a subgraph (DESIGN.md §3).

A ``task`` or ``decision`` step is one call of its Prefect task (``flows/step_task.py``)
with a body that does the work: a handler called with the resolved inputs, an agent
run through the run's agent runner, a condition evaluated in a sandbox. A
``parallel`` step with ``forEach`` calls its inline step once per item (bounded by
its ``maxConcurrency``, stopping early on ``failFast``), and a ``subgraph`` step runs
its target's flow as a subflow, nested at most ``max_subgraph_depth`` deep. What a
step declares under ``outputs`` is checked here, where its value is produced.

Everything a step needs from its compiled workflow comes through
:class:`CompiledSteps`, so this module needs nothing from the compiler above it.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from jinja2 import StrictUndefined
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jsonschema import Draft202012Validator

from agentparty.flows.colleagues import step_colleagues
from agentparty.flows.retries import EffectivePolicy
from agentparty.flows.run_state import RunState
from agentparty.flows.step_task import FORBIDDEN_IN_NAMES, StepCall, StepOutcome, StepTask, WorkflowFlow, step_cache_key
from agentparty.models import DecisionStep, ParallelStep, SubgraphStep, TaskStep, WorkflowDefinition, WorkflowStep
from agentparty.models.engagements import delegated_cost, delegated_tokens
from agentparty.models.references import ReferenceResolutionError, ReferenceScope, resolve
from agentparty.models.run_results import StepResult, StepStatus, WorkflowFailed, WorkflowResult
from agentparty.models.step_errors import StepError, StepValidationError, SubgraphDepthExceeded
from agentparty.runtime.breakers import CircuitBreaker
from agentparty.runtime.budgets import Budget
from agentparty.runtime.tracing import agent_answered, annotate_agent_step
from agentparty.tasks.agent import AgentRunner, AgentStepRequest, agent_work_of
from agentparty.tasks.handlers import call_handler, load_handler

_SUBGRAPH_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("agentparty_subgraph_depth", default=0)


class CompiledSteps(Protocol):
    """What running a step needs from its compiled workflow (:class:`~agentparty.flows.compiler.CompiledWorkflow`)."""

    @property
    def search_dirs(self) -> list[Path]:
        """Where handler modules are found: the definition's folder."""
        ...

    @property
    def user_id(self) -> str: ...

    @property
    def max_subgraph_depth(self) -> int: ...

    @property
    def definition(self) -> WorkflowDefinition:
        """The workflow being run (its id is each engagement's ``currentWorkflow``)."""
        ...

    def task_for(self, step: WorkflowStep, policy: EffectivePolicy | None = None) -> StepTask: ...

    def breaker_for(self, target: str, on_transition: Any = None) -> CircuitBreaker | None: ...

    def budgets(self, run_key: str) -> tuple[Budget, ...]: ...

    def agent_runner(self) -> AgentRunner: ...

    def subflow(self, target: str) -> WorkflowFlow:
        """The compiled flow of a subgraph step's target."""
        ...


class FanOutFailed(Exception):
    """Some items of a forEach failed; ``result`` is the whole step's result, items included."""

    def __init__(self, result: StepResult) -> None:
        self.result = result
        super().__init__(result.reason)


def failed_result(sid: str, exc: BaseException) -> StepResult:
    """The result of a step (or item) that raised ``exc``, counting the attempts its task made."""
    attempts = getattr(exc, "agentparty_attempts", 1)
    work = agent_work_of(exc)
    return StepResult(
        step_id=sid,
        status=StepStatus.FAILED,
        attempts=attempts,
        reason=f"{type(exc).__name__}: {exc}",
        turns=list(work.turns) if work is not None else [],
    )


def failure_of(sid: str, exc: BaseException) -> StepResult:
    """What a step's failure is: a fan-out's own result (its items), else :func:`failed_result`."""
    return exc.result if isinstance(exc, FanOutFailed) else failed_result(sid, exc)


class StepRunner:
    """Runs the steps of one run, each by its kind; a failure raises (the scheduler applies the fallback)."""

    def __init__(self, compiled: CompiledSteps, run: RunState) -> None:
        self.c = compiled
        self.run = run

    async def run_step(self, step: WorkflowStep, policy: EffectivePolicy | None = None) -> StepResult:
        """Run ``step`` (under ``policy`` instead of its own when given), in a slot of the run's concurrency bound."""
        if isinstance(step, ParallelStep):
            if step.configuration.step is not None:
                return await self._fan_out(step)
            children = {child: self.run.results[child].output for child in step.configuration.steps}
            outcome = await self._call(step, {"children": sorted(children)}, lambda: _const(children), policy)
            return self._completed(step.id, outcome)
        if isinstance(step, SubgraphStep):
            return await self._subgraph(step, self.run.scope())
        async with self.run.slots:
            return await self._single(step, self.run.scope(), policy=policy)

    async def _single(
        self,
        step: WorkflowStep,
        scope: ReferenceScope,
        *,
        policy: EffectivePolicy | None = None,
        run_name: str | None = None,
        item_index: int | None = None,
    ) -> StepResult:
        inputs = _resolve(step.inputs, scope, step.id)
        if isinstance(step, DecisionStep):
            outcome = await self._call(step, inputs, lambda: self._decide(step, scope), policy)
        elif isinstance(step, TaskStep) and step.configuration.handler:
            body = self._handler_body(step, inputs)
            target = f"handler:{step.configuration.handler}"
            outcome = await self._call(step, inputs, body, policy, run_name, item_index, target=target)
        elif isinstance(step, TaskStep):
            prompt = _resolve(step.configuration.prompt or "", scope, step.id)
            body = self._agent_body(step, prompt, inputs, run_name or step.id)
            staffed = self.run.staffing.steps.get(step.id) if self.run.staffing else None
            agent = staffed.agent if staffed else step.configuration.agent
            target = f"agent:{agent}@{step.configuration.model or (staffed.model if staffed else None) or 'default'}"
            outcome = await self._call(
                step, {"prompt": prompt, **inputs}, body, policy, run_name, item_index, target=target
            )
        else:  # pragma: no cover - the definition's union admits nothing else
            raise StepValidationError(f"step {step.id!r}: cannot run a {step.type!r} step here")
        return self._completed(step.id, outcome)

    def _completed(self, sid: str, outcome: StepOutcome) -> StepResult:
        return StepResult(
            step_id=sid,
            status=StepStatus.COMPLETED,
            output=outcome.output,
            attempts=outcome.attempts,
            tokens=outcome.tokens,
            model=outcome.model,
            simulated=outcome.simulated,
            cost=outcome.cost,
            cached=outcome.flow_run_id is not None and outcome.flow_run_id != self.run.run_id,
            reason=outcome.note,
            turns=[turn for work in outcome.agents for turn in work.turns],
        )

    async def _call(
        self,
        step: WorkflowStep,
        inputs: dict[str, Any],
        body: Callable[[], Awaitable[StepOutcome]],
        policy: EffectivePolicy | None = None,
        run_name: str | None = None,
        item_index: int | None = None,
        target: str | None = None,
    ) -> StepOutcome:
        """One call of the step's task, keyed for reuse by a resumed run, told to the observers as it ends."""
        observers = self.run.observers
        key = step_cache_key(
            self.run.run_key, self.run.definition, step.id, item_index, inputs, self.run.result_version
        )
        call = StepCall(
            key,
            run_name or step.id,
            body,
            self.c.breaker_for(target, observers.breaker_changed) if target else None,
            observers.attempt_listener(),
            kind=step.type,
        )
        try:
            outcome = await self.c.task_for(step, policy)(call)
        except BaseException as exc:
            observers.slot_done(step, call.run_name, None, exc)
            raise
        observers.slot_done(step, call.run_name, outcome, None)
        return outcome

    async def _decide(self, step: DecisionStep, scope: ReferenceScope) -> StepOutcome:

        env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
        steps_view = {
            sid: {"output": r.output, "outputs": r.outputs, "status": r.status.value}
            for sid, r in self.run.results.items()
        }
        try:
            value = env.compile_expression(step.configuration.condition)(inputs=self.run.inputs, steps=steps_view)
        except TemplateError as exc:
            raise StepValidationError(
                f"decision {step.id!r}: condition {step.configuration.condition!r} failed: {exc}"
            ) from None
        taken = bool(value)
        return StepOutcome({"result": taken, "branch": "then" if taken else "else"})

    def _handler_body(self, step: TaskStep, inputs: dict[str, Any]) -> Callable[[], Awaitable[StepOutcome]]:
        async def body() -> StepOutcome:
            fn = load_handler(step.configuration.handler or "", self.c.search_dirs)
            value = await call_handler(fn, inputs)
            check_declared_outputs(step, value)
            return StepOutcome(value)

        return body

    def _agent_body(
        self, step: TaskStep, prompt: str, inputs: dict[str, Any], slot: str
    ) -> Callable[[], Awaitable[StepOutcome]]:
        config = step.configuration
        user_id = self.c.user_id
        run_key = self.run.run_key
        staffed = self.run.staffing.steps.get(step.id) if self.run.staffing else None
        request = AgentStepRequest(
            step_id=step.id,
            agent=staffed.agent if staffed else config.agent or "",
            prompt=prompt,
            version=staffed.version if staffed else config.version,
            capability=config.capability,
            model=config.model or (staffed.model if staffed else None),
            output_schema=config.output_schema,
            inputs=inputs,
            run_key=run_key,
            user_id=user_id,
            budgets=self.c.budgets(run_key),
            agent_token_budget=config.token_budget,
            slot=slot,
            tools=tuple(config.tools),
            mcp_servers=tuple(config.mcp_servers),
            max_turns=config.max_turns,
            max_tool_calls=config.max_tool_calls,
            search_dirs=tuple(self.c.search_dirs),
            mcp=self.run.mcp,
            workflow_id=self.c.definition.id,
            colleagues=step_colleagues(step, self.run.definition, self.run.staffing),
        )

        async def body() -> StepOutcome:
            span = annotate_agent_step(request.agent)
            response = await self.c.agent_runner().run(request)
            agent_answered(span, response.agent_id, response.model, response.input_tokens, response.output_tokens)
            check_declared_outputs(step, response.output)
            note = None
            if response.fallback_reasons:
                note = f"answered by fallback model {response.model} ({'; '.join(response.fallback_reasons)})"[:500]
            work = response.work
            return StepOutcome(
                response.output,
                response.tokens + (delegated_tokens(work) if work is not None else 0),  # the agents it asked too
                response.model,
                response.simulated,
                cost=response.cost + (delegated_cost(work) if work is not None else 0.0),
                note=note,
                agents=(response.work,) if response.work is not None else (),
            )

        return body

    async def _fan_out(self, step: ParallelStep) -> StepResult:
        """The inline step once per item of ``forEach``; raises :class:`FanOutFailed` when any item failed."""
        config = step.configuration
        inline = config.step
        assert inline is not None
        items = _resolve(config.for_each, self.run.scope(), step.id)
        if not isinstance(items, list):
            raise StepValidationError(f"step {step.id!r}: forEach must give a list, got {type(items).__name__}")
        limit = asyncio.Semaphore(config.max_concurrency or max(len(items), 1))
        stop = asyncio.Event()
        results: list[StepResult | None] = [None] * len(items)

        async def one(index: int, item: Any) -> None:
            async with limit:
                if stop.is_set():
                    results[index] = StepResult(
                        step_id=f"{step.id}[{index}]", status=StepStatus.SKIPPED, reason="an earlier item failed"
                    )
                    return
                started = time.perf_counter()
                name = f"{step.id}[{_item_label(item, index)}]"
                try:
                    if isinstance(inline, SubgraphStep):
                        result = await self._subgraph(
                            inline, self.run.scope(item, True), run_name=name, item_index=index
                        )
                    else:
                        async with self.run.slots:
                            result = await self._single(
                                inline, self.run.scope(item, True), run_name=name, item_index=index
                            )
                except Exception as exc:
                    result = failed_result(name, exc)
                    if config.fail_fast:
                        stop.set()
                result.step_id = name
                result.duration_s = time.perf_counter() - started
                results[index] = result

        await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        done = [r for r in results if r is not None]
        failed = [r for r in done if r.status is StepStatus.FAILED]
        outcome = StepResult(
            step_id=step.id,
            status=StepStatus.FAILED if failed else StepStatus.COMPLETED,
            output=[r.output for r in done],
            attempts=max((r.attempts for r in done), default=0),
            tokens=sum(r.tokens for r in done),
            items=done,
            cached=bool(done) and all(r.cached for r in done),
        )
        if failed:
            outcome.reason = (
                f"{len(failed)} of {len(items)} items failed; first: {failed[0].step_id}: {failed[0].reason}"
            )
            raise FanOutFailed(outcome)
        return outcome

    async def _subgraph(
        self, step: SubgraphStep, scope: ReferenceScope, run_name: str | None = None, item_index: int | None = None
    ) -> StepResult:
        depth = _SUBGRAPH_DEPTH.get()
        if depth >= self.c.max_subgraph_depth:
            raise SubgraphDepthExceeded(
                f"step {step.id!r}: subgraphs nested {depth + 1} deep exceed the limit of {self.c.max_subgraph_depth}"
            )
        inputs = _resolve(step.configuration.inputs, scope, step.id)
        subflow = self.c.subflow(step.configuration.workflow).with_options(flow_run_name=run_name or step.id)
        token = _SUBGRAPH_DEPTH.set(depth + 1)
        try:
            child: WorkflowResult = await subflow(
                inputs=inputs, resume_key=f"{self.run.run_key}/{step.id}/{item_index}"
            )
        except WorkflowFailed as exc:
            why = exc.result.reason or exc.result.failed_steps
            raise StepError(f"subgraph {step.configuration.workflow!r} failed: {why}") from exc
        finally:
            _SUBGRAPH_DEPTH.reset(token)
        output = {sid: r.output for sid, r in child.steps.items() if r.status is StepStatus.COMPLETED}
        return StepResult(step_id=step.id, status=StepStatus.COMPLETED, output=output, attempts=1, tokens=child.tokens)


async def _const(value: Any) -> StepOutcome:
    return StepOutcome(value)


def _resolve(value: Any, scope: ReferenceScope, sid: str) -> Any:
    try:
        return resolve(value, scope)
    except ReferenceResolutionError as exc:
        raise StepValidationError(f"step {sid!r}: {exc}") from None


def _item_label(item: Any, index: int) -> str:
    if isinstance(item, (str, int, float)) and len(str(item)) <= 40:
        return FORBIDDEN_IN_NAMES.sub("-", str(item))
    return str(index)


def check_declared_outputs(step: WorkflowStep, value: Any) -> None:
    """A step that declares outputs must produce each of them, matching its schema."""
    if not step.outputs:
        return
    if not isinstance(value, dict):
        raise StepValidationError(
            f"step {step.id!r} declares outputs {sorted(step.outputs)} but produced a {type(value).__name__}"
        )
    for name, schema in step.outputs.items():
        if name not in value:
            produced = ", ".join(sorted(value)) or "nothing"
            raise StepValidationError(f"step {step.id!r} produced no output {name!r} (it produced: {produced})")
        error = next(iter(Draft202012Validator(schema).iter_errors(value[name])), None)
        if error is not None:
            raise StepValidationError(f"step {step.id!r} output {name!r}: {error.message}")
