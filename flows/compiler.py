"""Compile a WorkflowDefinition into a Prefect flow (DESIGN.md §3, §6).

Every step is a Prefect task named by its step id (a subgraph is a subflow), so
the Prefect UI shows the run the way the definition reads. Scheduling is plain
asyncio inside one async flow run: each step waits for exactly the steps
:func:`~agentparty.models.analyze_definition` says it depends on, then runs
under the run's concurrency bound. Async tasks give real timeouts (a sync
handler runs in a worker thread the timeout abandons), and async flows have no
heartbeat wait at exit.

Retries are Prefect's (``flows/retries.py``); results are persisted (to
Prefect's local storage path, which ``agentparty`` points into ``AGENTPARTY_HOME``)
with keys built from (run key, definition id and version, step id, item, resolved
inputs), so a resumed run reuses every step that had completed.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from prefect import Flow, Task
from prefect.context import FlowRunContext, TaskRunContext
from pydantic import Field, WithJsonSchema

from agentparty.flows.services import RunServices, run_services
from agentparty.runtime.breakers import CircuitBreaker
from agentparty.models.run_results import StepResult, StepStatus, WorkflowFailed, WorkflowResult
from agentparty.flows.retries import EffectivePolicy, effective_policy
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.flows.run_observers import RunObservers
from agentparty.models import (
    DecisionStep,
    FallbackAction,
    ParallelStep,
    SubgraphStep,
    TaskStep,
    WorkflowDefinition,
    WorkflowStep,
)
from agentparty.models.references import ReferenceResolutionError, ReferenceScope, resolve
from agentparty.runtime.budgets import Budget
from agentparty.runtime.documents import WorkflowCatalog, WorkflowLoader
from agentparty.runtime.human_input import HumanDecision
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.graph_store import GraphWriteError
from agentparty.runtime.settings import get_settings
from agentparty.models.engagements import AgentWork
from agentparty.tasks.agent import AgentRunner, AgentStepRequest
from agentparty.models.step_errors import (
    NonRetryableError,
    RunInputError,
    StepError,
    StepValidationError,
    SubgraphDepthExceeded,
)
from agentparty.tasks.handlers import call_handler, load_handler

if TYPE_CHECKING:
    from agentparty.flows.staffing import Staffing

logger = logging.getLogger("agentparty.flows")

_FORBIDDEN_IN_NAMES = re.compile(r"[/%&<>]")
_SUBGRAPH_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("agentparty_subgraph_depth", default=0)
RESULT_CACHE_EXPIRATION = timedelta(days=7)


def flow_name_for(definition: WorkflowDefinition) -> str:
    """The definition's name, without the characters Prefect refuses in names."""
    return _FORBIDDEN_IN_NAMES.sub("-", definition.name).strip() or definition.id


@dataclass
class CompileOptions:
    max_concurrency: int = 32
    """Bound on steps running at once in one run (a definition's ``maxConcurrency`` can lower it)."""
    max_subgraph_depth: int = 5
    services: RunServices | None = None
    """What runs talk to (``flows/services.py``); ``run_services(get_settings())`` when None."""
    clock: Callable[[], float] = time.time
    on_step_finished: Callable[[StepResult], None] | None = None
    """Called as each step ends (the CLI prints progress with it)."""


@dataclass(frozen=True)
class StepOutcome:
    """What a step's Prefect task returns; persisted, so a resumed run can reuse it."""

    output: Any
    tokens: int = 0
    model: str | None = None
    simulated: bool = False
    attempts: int = 1
    flow_run_id: str | None = None
    cost: float = 0.0
    note: str | None = None
    agents: tuple[AgentWork, ...] = ()
    """The agent engagement behind an agent step, for the results graph (persisted, so a resumed run writes it too)."""


@dataclass
class StepCall:
    """One call of a step's task: its cache key, the breaker guarding it and the work itself."""

    cache_key: str
    run_name: str
    """The task run's name in the Prefect UI: the step id, and the item for a fan-out."""
    body: Callable[[], Awaitable[StepOutcome]]
    breaker: CircuitBreaker | None = None
    on_attempt: Callable[[str, int], None] | None = None
    """Told (slot, attempt number) as each attempt starts (step started / retried events)."""

    def __repr__(self) -> str:  # shown as the task's parameter in the Prefect UI
        return f"StepCall({self.cache_key[:12]})"


def _current_flow_run_id() -> str | None:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


async def _step_attempt(call: StepCall) -> StepOutcome:
    """Body of every step task: one attempt, guarded by the target's circuit breaker."""
    ctx = TaskRunContext.get()
    attempt = ctx.task_run.run_count if ctx else 1
    if call.on_attempt is not None:
        call.on_attempt(call.run_name, attempt)
    try:
        if call.breaker is not None:
            call.breaker.acquire()
        outcome = await call.body()
    except BaseException as exc:
        from agentparty.models.step_errors import CircuitOpenError, RateLimited

        if call.breaker is not None and not isinstance(exc, (CircuitOpenError, asyncio.CancelledError)):
            call.breaker.record_failure()
        if isinstance(exc, RateLimited) and exc.retry_after and ctx is not None:
            await _honour_retry_after(ctx, attempt, exc.retry_after)
        try:
            exc.agentparty_attempts = attempt  # type: ignore[attr-defined]
        except AttributeError:
            pass
        raise
    if call.breaker is not None:
        call.breaker.record_success()
    return dataclasses.replace(outcome, attempts=attempt, flow_run_id=_current_flow_run_id())


async def _honour_retry_after(ctx: TaskRunContext, attempt: int, retry_after: float) -> None:
    """Wait out the part of a 429's Retry-After that Prefect's own retry delay will not cover.

    Only when another attempt follows: the delay Prefect is about to apply comes
    from the step's backoff, and the sum is at least what the provider asked for.
    """
    task = ctx.task
    if attempt > task.retries:
        return
    delays = task.retry_delay_seconds
    planned = delays[min(attempt - 1, len(delays) - 1)] if isinstance(delays, list) and delays else float(delays or 0)
    if retry_after > planned:
        await asyncio.sleep(retry_after - planned)


STEP_TASK: Task[[StepCall], StepOutcome] = Task(
    fn=_step_attempt,
    name="step",
    persist_result=True,
    cache_key_fn=lambda _ctx, params: params["call"].cache_key,
    cache_expiration=RESULT_CACHE_EXPIRATION,
)


def _stable_key(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _item_label(item: Any, index: int) -> str:
    if isinstance(item, (str, int, float)) and len(str(item)) <= 40:
        return _FORBIDDEN_IN_NAMES.sub("-", str(item))
    return str(index)


class CompiledWorkflow:
    """A validated definition with its dependency graph, per-step tasks and policies."""

    def __init__(self, definition: WorkflowDefinition, source: Path | None, options: CompileOptions) -> None:
        if options.services is None:
            options.services = run_services(get_settings())
        self.definition = definition
        self.source = source.resolve() if source else None
        self.options = options
        self.services: RunServices = options.services
        self.flow_name = flow_name_for(definition)
        self.graph = definition.analysis()
        self.home = self.services.home
        self.search_dirs = [self.source.parent] if self.source else []
        self.catalog = WorkflowCatalog()
        self._subflows: dict[Path, Flow[..., Any]] = {}
        self.dependencies = {sid: self._effective_dependencies(sid) for sid in self.graph.order}
        self.gates = {sid: self._gates(sid) for sid in self.graph.order}
        self.steps = {step.id: step for step in definition.all_steps()}
        self.policies = {
            sid: effective_policy(step.retry_policy, definition.error_handling) for sid, step in self.steps.items()
        }
        self._tasks: dict[tuple[str, EffectivePolicy], Task[[StepCall], StepOutcome]] = {}

    # -- structure -------------------------------------------------------------------

    def _effective_dependencies(self, step_id: str) -> frozenset[str]:
        """A parallel child also waits for what its parallel step waits for."""
        deps = set(self.graph.dependencies.get(step_id, ()))
        parent = self.graph.parallel_parent.get(step_id)
        while parent is not None:
            siblings = {c for c, p in self.graph.parallel_parent.items() if p == parent}
            deps |= set(self.graph.dependencies.get(parent, ())) - siblings - {step_id}
            parent = self.graph.parallel_parent.get(parent)
        return frozenset(deps)

    def _gates(self, step_id: str) -> list[tuple[str, str]]:
        gates = []
        current: str | None = step_id
        while current is not None:
            if current in self.graph.branch_of:
                gates.append(self.graph.branch_of[current])
            current = self.graph.parallel_parent.get(current)
        return gates

    def task_for(self, step: WorkflowStep, policy: EffectivePolicy | None = None) -> Task[[StepCall], StepOutcome]:
        """The step's Prefect task, made on first use.

        Made lazily because ``Task()`` reads its function's source (milliseconds
        each), which would dominate compiling a large definition. The run name
        comes from the call, so fan-out items share their step's task.
        """
        policy = policy or self.policies[step.id]
        key = (step.id, policy)
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = STEP_TASK.with_options(
                name=step.id,
                task_run_name="{call.run_name}",
                timeout_seconds=step.timeout,
                **policy.prefect_options(),
            )
        return task

    @property
    def user_id(self) -> str:
        return self.services.user_id

    def budgets(self, run_key: str) -> tuple[Budget, ...]:
        """Task, team and user budgets of one run (the agent's own is added by the agent runner)."""
        found = []
        if self.definition.token_budget:
            found.append(Budget("task", run_key, self.definition.token_budget))
        if self.definition.team_token_budget:
            found.append(Budget("team", run_key, self.definition.team_token_budget))
        user = self.services.user_budget()
        if user is not None:
            found.append(user)
        return tuple(found)

    def agent_runner(self) -> AgentRunner:
        return self.services.agent_runner()

    def recorder(self) -> GraphRecorder | None:
        return self.services.recorder()

    def event_bus(self) -> EventBus | None:
        return self.services.event_bus()

    def breaker_for(self, target: str, on_transition: Any = None) -> CircuitBreaker | None:
        handling = self.definition.error_handling
        if handling is None or handling.circuit_breaker is None:
            return None
        return CircuitBreaker(target, handling.circuit_breaker, self.services.breaker_store(), self.options.clock, on_transition)

    def subflow(self, target: str) -> Flow[..., Any]:
        base = self.source.parent if self.source else Path.cwd()
        path = self.catalog.find(target, base)
        if path is None:
            raise StepValidationError(f"subgraph target {target!r} not found from {base}")
        if path not in self._subflows:
            definition = WorkflowLoader(catalog=self.catalog).load(path)
            self._subflows[path] = compile_workflow(definition, source=path, options=self.options)
        return self._subflows[path]

    # -- running -----------------------------------------------------------------------

    async def execute(self, inputs: dict[str, Any], resume_key: str | None) -> WorkflowResult:
        run = _Run(self, inputs, resume_key)
        return await run.execute()


class _Run:
    """The state of one flow run: outcomes so far, the concurrency bound, abort reason."""

    def __init__(self, compiled: CompiledWorkflow, inputs: dict[str, Any], resume_key: str | None) -> None:
        self.c = compiled
        self.d = compiled.definition
        resolved, problems = self.d.resolve_run_inputs(inputs)
        if problems:
            raise RunInputError(problems)
        self.inputs = resolved
        self.run_id = _current_flow_run_id()
        self.run_key = resume_key or self.run_id or "local"
        bound = compiled.options.max_concurrency if self.d.parallel else 1
        if self.d.max_concurrency:
            bound = min(bound, self.d.max_concurrency)
        self.slots = asyncio.Semaphore(bound)
        self.results: dict[str, StepResult] = {}
        self.done = {sid: asyncio.Event() for sid in compiled.graph.order}
        self.aborted: str | None = None
        self.observers = RunObservers(compiled, self.run_key, self.run_id)
        self.staffing: Staffing | None = None

    # -- orchestration ---------------------------------------------------------------------

    async def execute(self) -> WorkflowResult:
        started = time.perf_counter()
        await self._staff()
        refused = await self.observers.started()
        if refused:
            self.aborted = refused
        await asyncio.gather(*(self._drive(sid) for sid in self.c.graph.order))
        failed = [sid for sid, r in self.results.items() if r.status is StepStatus.FAILED]
        result = WorkflowResult(
            workflow_id=self.d.id,
            workflow_name=self.d.name,
            run_id=self.run_id,
            status=StepStatus.FAILED if failed or self.aborted else StepStatus.COMPLETED,
            steps={sid: self.results[sid] for sid in self.c.graph.order},
            reason=self.aborted,
            duration_s=time.perf_counter() - started,
        )
        await self.observers.finished(result, started)
        await self._publish(result)
        if result.status is StepStatus.FAILED:
            raise WorkflowFailed(result)
        return result

    async def _staff(self) -> None:
        """Agents for the steps that name only a capability, from the team recommender (flows/staffing.py)."""
        if not self.d.unstaffed_steps():
            return  # before the imports below: the recommender loads torch, seconds a plain run must not pay
        from neo4j.exceptions import DriverError, Neo4jError

        from agentparty.flows.staffing import StaffingError, staff_run, staffing_markdown
        recorder = self.c.recorder()
        if recorder is None:
            self.aborted = (
                f"formationMethod {self.d.formation_method.value!r} needs the results graph to recommend a team "
                "(start it with `agentparty up`, or set AGENTPARTY_DATABASE__URI)"
            )
            return
        from agentparty.models.run_history import task_id_for

        try:
            self.staffing = await asyncio.to_thread(staff_run, self.d, self.run_key, task_id_for(self.run_key), recorder.store, self.c.home)
        except (StaffingError, GraphWriteError, Neo4jError, DriverError, OSError) as exc:  # driver: graph unreachable or refusing
            self.aborted = f"assembling the team failed: {type(exc).__name__}: {exc}"
            return
        self.observers.staffing = self.staffing
        if self.run_id is not None:
            from prefect.artifacts import acreate_markdown_artifact

            await acreate_markdown_artifact(
                markdown=staffing_markdown(self.staffing), key=re.sub(r"[^a-z0-9-]+", "-", f"{self.d.id}-team".lower()).strip("-"),
                description=f"{self.d.name}: team {self.d.formation_method.value} by {self.staffing.recommendation.method}",
            )

    async def _publish(self, result: WorkflowResult) -> None:
        if self.run_id is None:
            return
        from prefect.artifacts import TableArtifact

        key = re.sub(r"[^a-z0-9-]+", "-", f"{self.d.id}-steps".lower()).strip("-")
        artifact = TableArtifact(
            table=result.table(),
            key=key,
            description=f"{self.d.name}: {result.status.value} in {result.duration_s:.2f}s, {result.tokens} tokens",
        )
        ctx = FlowRunContext.get()
        # Sent while the engine reports the final state (both wait on a server busy
        # ingesting the run's task events); the flow's end hooks await it, so the
        # artifact exists before the flow call returns. The flow run's own client:
        # a new one would build a TLS context first (~50 ms).
        _PENDING_ARTIFACTS[self.run_id] = asyncio.ensure_future(artifact.acreate(client=ctx.client if ctx else None))

    def _finish(self, result: StepResult) -> None:
        self.results[result.step_id] = result
        self.done[result.step_id].set()
        if self.c.options.on_step_finished is not None:
            self.c.options.on_step_finished(result)

    def _skip_reason(self, sid: str) -> str | None:
        if self.aborted:
            return f"run aborted: {self.aborted}"
        for decision, branch in self.c.gates[sid]:
            gate = self.results[decision]
            if gate.status is not StepStatus.COMPLETED:
                return f"decision {decision!r} did not complete"
            if gate.outputs.get("branch") != branch:
                return f"branch {branch!r} of decision {decision!r} not taken"
        gate_ids = {d for d, _ in self.c.gates[sid]}
        deps = [d for d in self.c.dependencies[sid] if d not in gate_ids]
        failed = [d for d in deps if self.results[d].status is StepStatus.FAILED]
        if failed:
            return f"dependency {failed[0]!r} failed"
        if deps and all(self.results[d].status is StepStatus.SKIPPED for d in deps):
            return "every step it depends on was skipped"
        return None

    async def _drive(self, sid: str) -> None:
        for dep in self.c.dependencies[sid]:
            await self.done[dep].wait()
        reason = self._skip_reason(sid)
        if reason:
            skipped = StepResult(step_id=sid, status=StepStatus.SKIPPED, reason=reason)
            self.observers.step_skipped(skipped)
            self._finish(skipped)
            return
        step = self.c.steps[sid]
        started = time.perf_counter()
        try:
            result = await self._run_step(step)
        except Exception as exc:  # a step failure never escapes: it becomes a result and a fallback
            result = await self._fallback(step, exc, started)
        result.duration_s = time.perf_counter() - started
        result, refused = await self.observers.step_finished(step, result)
        if refused:
            self.aborted = self.aborted or refused
        self._finish(result)

    def _scope(self, item: Any = None, has_item: bool = False) -> ReferenceScope:
        return ReferenceScope(
            inputs=self.inputs,
            step_outputs={sid: r.output for sid, r in self.results.items() if r.status is StepStatus.COMPLETED},
            item=item,
            has_item=has_item,
            skipped=frozenset(sid for sid, r in self.results.items() if r.status is StepStatus.SKIPPED),
        )

    # -- step kinds ------------------------------------------------------------------------

    async def _run_step(self, step: WorkflowStep, policy: EffectivePolicy | None = None) -> StepResult:
        if isinstance(step, ParallelStep):
            if step.configuration.step is not None:
                return await self._fan_out(step)
            children = {child: self.results[child].output for child in step.configuration.steps}
            outcome = await self._call(step, {"children": sorted(children)}, lambda: self._const(children), policy)
            return self._completed(step.id, outcome)
        if isinstance(step, SubgraphStep):
            return await self._subgraph(step, self._scope())
        async with self.slots:
            return await self._single(step, self._scope(), policy=policy)

    async def _single(
        self, step: WorkflowStep, scope: ReferenceScope, *, policy: EffectivePolicy | None = None,
        run_name: str | None = None, item_index: int | None = None,
    ) -> StepResult:
        inputs = self._resolve(step.inputs, scope, step.id)
        if isinstance(step, DecisionStep):
            outcome = await self._call(step, inputs, lambda: self._decide(step, scope), policy)
        elif isinstance(step, TaskStep) and step.configuration.handler:
            body = self._handler_body(step, inputs)
            outcome = await self._call(step, inputs, body, policy, run_name, item_index, target=f"handler:{step.configuration.handler}")
        elif isinstance(step, TaskStep):
            prompt = self._resolve(step.configuration.prompt or "", scope, step.id)
            body = self._agent_body(step, prompt, inputs, run_name or step.id)
            staffed = self.staffing.steps.get(step.id) if self.staffing else None
            agent = staffed.agent if staffed else step.configuration.agent
            target = f"agent:{agent}@{step.configuration.model or (staffed.model if staffed else None) or 'default'}"
            outcome = await self._call(step, {"prompt": prompt, **inputs}, body, policy, run_name, item_index, target=target)
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
            cached=outcome.flow_run_id is not None and outcome.flow_run_id != self.run_id,
            reason=outcome.note,
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
        key = _stable_key(self.run_key, self.d.id, self.d.version, step.id, item_index, inputs)
        call = StepCall(
            key, run_name or step.id, body, self.c.breaker_for(target, self.observers.breaker_changed) if target else None,
            self.observers.attempt_listener(),
        )
        try:
            outcome = await self.c.task_for(step, policy)(call)
        except BaseException as exc:
            self.observers.slot_done(step, call.run_name, None, exc)
            raise
        self.observers.slot_done(step, call.run_name, outcome, None)
        return outcome

    @staticmethod
    async def _const(value: Any) -> StepOutcome:
        return StepOutcome(value)

    def _resolve(self, value: Any, scope: ReferenceScope, sid: str) -> Any:
        try:
            return resolve(value, scope)
        except ReferenceResolutionError as exc:
            raise StepValidationError(f"step {sid!r}: {exc}") from None

    async def _decide(self, step: DecisionStep, scope: ReferenceScope) -> StepOutcome:
        from jinja2 import StrictUndefined
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
        steps_view = {
            sid: {"output": r.output, "outputs": r.outputs, "status": r.status.value} for sid, r in self.results.items()
        }
        try:
            value = env.compile_expression(step.configuration.condition)(inputs=self.inputs, steps=steps_view)
        except TemplateError as exc:
            raise StepValidationError(f"decision {step.id!r}: condition {step.configuration.condition!r} failed: {exc}") from None
        taken = bool(value)
        return StepOutcome({"result": taken, "branch": "then" if taken else "else"})

    def _handler_body(self, step: TaskStep, inputs: dict[str, Any]) -> Callable[[], Awaitable[StepOutcome]]:
        async def body() -> StepOutcome:
            fn = load_handler(step.configuration.handler or "", self.c.search_dirs)
            value = await call_handler(fn, inputs)
            _check_declared_outputs(step, value)
            return StepOutcome(value)

        return body

    def _agent_body(self, step: TaskStep, prompt: str, inputs: dict[str, Any], slot: str) -> Callable[[], Awaitable[StepOutcome]]:
        config = step.configuration
        user_id = self.c.user_id
        staffed = self.staffing.steps.get(step.id) if self.staffing else None
        request = AgentStepRequest(
            step_id=step.id, agent=staffed.agent if staffed else config.agent or "", prompt=prompt,
            version=staffed.version if staffed else config.version,
            capability=config.capability, model=config.model or (staffed.model if staffed else None),
            output_schema=config.output_schema, inputs=inputs,
            run_key=self.run_key, user_id=user_id, budgets=self.c.budgets(self.run_key), agent_token_budget=config.token_budget,
            slot=slot,
        )

        async def body() -> StepOutcome:
            response = await self.c.agent_runner().run(request)
            _check_declared_outputs(step, response.output)
            note = None
            if response.fallback_reasons:
                note = f"answered by fallback model {response.model} ({'; '.join(response.fallback_reasons)})"[:500]
            return StepOutcome(
                response.output, response.tokens, response.model, response.simulated, cost=response.cost, note=note,
                agents=(response.work,) if response.work is not None else (),
            )

        return body

    async def _fan_out(self, step: ParallelStep) -> StepResult:
        config = step.configuration
        inline = config.step
        assert inline is not None
        items = self._resolve(config.for_each, self._scope(), step.id)
        if not isinstance(items, list):
            raise StepValidationError(f"step {step.id!r}: forEach must give a list, got {type(items).__name__}")
        limit = asyncio.Semaphore(config.max_concurrency or max(len(items), 1))
        stop = asyncio.Event()
        results: list[StepResult | None] = [None] * len(items)

        async def one(index: int, item: Any) -> None:
            async with limit:
                if stop.is_set():
                    results[index] = StepResult(step_id=f"{step.id}[{index}]", status=StepStatus.SKIPPED, reason="an earlier item failed")
                    return
                started = time.perf_counter()
                name = f"{step.id}[{_item_label(item, index)}]"
                try:
                    if isinstance(inline, SubgraphStep):
                        result = await self._subgraph(inline, self._scope(item, True), run_name=name, item_index=index)
                    else:
                        async with self.slots:
                            result = await self._single(inline, self._scope(item, True), run_name=name, item_index=index)
                except Exception as exc:
                    result = _failed(name, exc)
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
            outcome.reason = f"{len(failed)} of {len(items)} items failed; first: {failed[0].step_id}: {failed[0].reason}"
            raise _FanOutFailed(outcome)
        return outcome

    async def _subgraph(
        self, step: SubgraphStep, scope: ReferenceScope, run_name: str | None = None, item_index: int | None = None
    ) -> StepResult:
        depth = _SUBGRAPH_DEPTH.get()
        if depth >= self.c.options.max_subgraph_depth:
            raise SubgraphDepthExceeded(
                f"step {step.id!r}: subgraphs nested {depth + 1} deep exceed the limit of {self.c.options.max_subgraph_depth}"
            )
        inputs = self._resolve(step.configuration.inputs, scope, step.id)
        subflow = self.c.subflow(step.configuration.workflow).with_options(flow_run_name=run_name or step.id)
        token = _SUBGRAPH_DEPTH.set(depth + 1)
        try:
            child: WorkflowResult = await subflow(inputs=inputs, resume_key=f"{self.run_key}/{step.id}/{item_index}")
        except WorkflowFailed as exc:
            raise StepError(f"subgraph {step.configuration.workflow!r} failed: {exc.result.reason or exc.result.failed_steps}") from exc
        finally:
            _SUBGRAPH_DEPTH.reset(token)
        output = {sid: r.output for sid, r in child.steps.items() if r.status is StepStatus.COMPLETED}
        return StepResult(step_id=step.id, status=StepStatus.COMPLETED, output=output, attempts=1, tokens=child.tokens)

    # -- failures ------------------------------------------------------------------------

    async def _fallback(self, step: WorkflowStep, exc: Exception, started: float) -> StepResult:
        handling = self.d.error_handling
        action = handling.fallback_action if handling and handling.fallback_action else FallbackAction.ABORT
        failure = exc.result if isinstance(exc, _FanOutFailed) else _failed(step.id, exc)
        if action is FallbackAction.RETRY and not isinstance(exc, NonRetryableError):
            logger.warning("step %s failed (%s); fallback: retry under the workflow policy", step.id, failure.reason)
            workflow_policy = effective_policy(None, handling)
            try:
                retried = await self._run_step(step, workflow_policy)
                retried.attempts += failure.attempts
                return retried
            except Exception as again:
                failure = again.result if isinstance(again, _FanOutFailed) else _failed(step.id, again)
        elif action is FallbackAction.HUMAN_INTERVENTION and self.run_id is not None:
            return await self._ask_operator(step, failure)
        self.aborted = self.aborted or f"step {step.id!r} failed: {failure.reason}"
        return failure

    async def _ask_operator(self, step: WorkflowStep, failure: StepResult) -> StepResult:
        from prefect.flow_runs import apause_flow_run

        handling = self.d.error_handling
        timeout = int(handling.human_intervention_timeout) if handling else 3600
        rounds = 0
        while True:
            rounds += 1
            logger.warning("step %s failed (%s); waiting up to %ss for an operator", step.id, failure.reason, timeout)
            try:
                asked = HumanDecision.with_initial_data(
                    description=f"Step {step.id} failed: {failure.reason}. Retry it, skip it (giving its output) or abort the run."
                )
                decision = await apause_flow_run(wait_for_input=asked, timeout=timeout, key=f"{step.id}-{rounds}", poll_interval=1)
            except Exception as exc:  # prefect raises on timeout
                self.aborted = self.aborted or f"step {step.id!r} failed and no operator answered within {timeout}s ({type(exc).__name__})"
                return failure
            if decision.action == "abort":
                self.aborted = self.aborted or f"step {step.id!r} failed; operator aborted the run{': ' + decision.note if decision.note else ''}"
                return failure
            if decision.action == "skip":
                return StepResult(
                    step_id=step.id, status=StepStatus.COMPLETED, output=decision.output, attempts=failure.attempts,
                    reason=f"operator skipped the step and supplied its output{': ' + decision.note if decision.note else ''}",
                )
            try:
                retried = await self._run_step(step)
                retried.attempts += failure.attempts
                return retried
            except Exception as exc:
                failure = exc.result if isinstance(exc, _FanOutFailed) else _failed(step.id, exc)


_PENDING_ARTIFACTS: dict[str, asyncio.Future[Any]] = {}


async def _await_run_artifact(_flow: Any, flow_run: Any, _state: Any) -> None:
    """Flow end hook: wait for the run's table artifact (see ``_Run._publish``)."""
    pending = _PENDING_ARTIFACTS.pop(str(flow_run.id), None)
    if pending is not None:
        await pending


class _FanOutFailed(Exception):
    def __init__(self, result: StepResult) -> None:
        self.result = result
        super().__init__(result.reason)


def _failed(sid: str, exc: BaseException) -> StepResult:
    attempts = getattr(exc, "agentparty_attempts", 1)
    return StepResult(step_id=sid, status=StepStatus.FAILED, attempts=attempts, reason=f"{type(exc).__name__}: {exc}")


def _check_declared_outputs(step: WorkflowStep, value: Any) -> None:
    """A step that declares outputs must produce each of them, matching its schema."""
    if not step.outputs:
        return
    if not isinstance(value, dict):
        raise StepValidationError(f"step {step.id!r} declares outputs {sorted(step.outputs)} but produced a {type(value).__name__}")
    from jsonschema import Draft202012Validator

    for name, schema in step.outputs.items():
        if name not in value:
            raise StepValidationError(f"step {step.id!r} produced no output {name!r} (it produced: {', '.join(sorted(value)) or 'nothing'})")
        error = next(iter(Draft202012Validator(schema).iter_errors(value[name])), None)
        if error is not None:
            raise StepValidationError(f"step {step.id!r} output {name!r}: {error.message}")


def compile_workflow(
    definition: WorkflowDefinition, *, source: Path | str | None = None, options: CompileOptions | None = None
) -> Flow[..., WorkflowResult]:
    """Build the Prefect flow for a definition. Calling it runs the workflow and returns a WorkflowResult.

    ``source`` is the definition's file: handler modules and subgraph files are found next to it.
    A failed run raises :class:`WorkflowFailed` (the flow run ends Failed), carrying the result.
    """
    compiled = CompiledWorkflow(definition, Path(source) if source else None, options or CompileOptions())

    async def run_workflow(inputs: dict[str, Any] | None = None, resume_key: str | None = None) -> WorkflowResult:
        return await compiled.execute(inputs or {}, resume_key)

    # Named after the module-level entrypoint that rebuilds this flow, so that
    # ``flow.to_deployment()`` records an entrypoint the runner can re-import.
    from agentparty.flows import deployed

    # The parameter schema Prefect derives from the signature (``to_deployment``, ``prefect deploy``)
    # shows ``inputs`` as the definition's own input fields, which the UI renders as a form;
    # validation stays with the definition (``resolve_run_inputs``), which names every bad field.
    run_workflow.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "inputs", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                annotation=Annotated[dict[str, Any] | None, WithJsonSchema(definition.inputs_json_schema())],
            ),
            inspect.Parameter(
                "resume_key", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                annotation=Annotated[str | None, Field(description="Resume a failed or crashed run: its flow run id")],
            ),
        ],
        return_annotation=WorkflowResult,
    )
    run_workflow.__module__ = deployed.__name__
    run_workflow.__qualname__ = run_workflow.__name__ = deployed.entrypoint_name(definition.id)
    flow: Flow[..., WorkflowResult] = Flow(
        fn=run_workflow,
        name=compiled.flow_name,
        description=definition.description or None,
        version=definition.version,
        validate_parameters=True,
        persist_result=True,  # a deployment's caller reads the WorkflowResult from another process
        on_completion=[_await_run_artifact],
        on_failure=[_await_run_artifact],
        on_crashed=[_await_run_artifact],
        on_cancellation=[_await_run_artifact],
    )
    flow.compiled = compiled  # type: ignore[attr-defined]
    return flow
