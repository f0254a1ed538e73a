"""The Prefect task every workflow step runs as, and the keys its persisted results are found by.

One task (:data:`STEP_TASK`) serves every step: the compiler gives each step its
own copy named after the step id with the step's timeout and retry policy
(``flows/retries.py``), and each call carries its work as a :class:`StepCall`.
One call is one attempt, guarded by the target's circuit breaker; Prefect
retries it, and a 429's Retry-After is waited out where the retry delay falls
short of it.

Results are persisted under :func:`step_cache_key`, computed from (run key,
definition id and version, step id, item index, resolved inputs), so a resumed
run reuses every step that had completed, including results persisted by
earlier releases: change that computation and resumed runs redo their steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prefect import Flow, Task
from prefect.context import FlowRunContext, TaskRunContext

from agentparty.models import WorkflowDefinition
from agentparty.models.engagements import AgentWork
from agentparty.models.run_results import WorkflowResult
from agentparty.models.step_errors import CircuitOpenError, RateLimited
from agentparty.runtime.breakers import CircuitBreaker
from agentparty.runtime.log_context import log_ids
from agentparty.runtime.sealed_results import SealedPickleSerializer
from agentparty.runtime.tracing import annotate_step

FORBIDDEN_IN_NAMES = re.compile(r"[/%&<>]")
"""Characters Prefect refuses in flow and task run names."""
RESULT_CACHE_EXPIRATION = timedelta(days=7)


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
    kind: str = "task"
    """The step's type (task, decision, parallel), on its trace span."""

    def __repr__(self) -> str:  # shown as the task's parameter in the Prefect UI
        return f"StepCall({self.cache_key[:12]})"


def current_flow_run_id() -> str | None:
    """The id of the flow run this code runs in; None outside one."""
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


async def _step_attempt(call: StepCall) -> StepOutcome:
    """Body of every step task: one attempt, guarded by the target's circuit breaker."""
    ctx = TaskRunContext.get()
    with log_ids(step_id=ctx.task.name if ctx else call.run_name):  # each task is named after its step
        return await _attempt(call, ctx)


async def _attempt(call: StepCall, ctx: TaskRunContext | None) -> StepOutcome:
    attempt = ctx.task_run.run_count if ctx else 1
    annotate_step(call.run_name, call.kind, attempt)  # Prefect's span for this task run is the step's span
    if call.on_attempt is not None:
        call.on_attempt(call.run_name, attempt)
    try:
        if call.breaker is not None:
            call.breaker.acquire()
        outcome = await call.body()
    except BaseException as exc:
        if call.breaker is not None and not isinstance(exc, (CircuitOpenError, asyncio.CancelledError)):
            call.breaker.record_failure()
        if isinstance(exc, RateLimited) and exc.retry_after and ctx is not None:
            await _honour_retry_after(ctx, attempt, exc.retry_after)
        with contextlib.suppress(AttributeError):  # exceptions with __slots__ carry no attempt count
            exc.agentparty_attempts = attempt  # type: ignore[attr-defined]  # a marker attribute on any exception
        raise
    if call.breaker is not None:
        call.breaker.record_success()
    return dataclasses.replace(outcome, attempts=attempt, flow_run_id=current_flow_run_id())


async def _honour_retry_after(ctx: TaskRunContext, attempt: int, retry_after: float) -> None:
    """Wait out the part of a 429's Retry-After that Prefect's own retry delay will not cover.

    Only when another attempt follows: the delay Prefect is about to apply comes
    from the step's backoff, and the sum is at least what the provider asked for.
    """
    task = ctx.task
    if attempt > task.retries:
        return
    delays = task.retry_delay_seconds
    if isinstance(delays, list):
        planned = float(delays[min(attempt - 1, len(delays) - 1)]) if delays else 0.0
    else:
        planned = float(delays or 0)
    if retry_after > planned:
        await asyncio.sleep(retry_after - planned)


WorkflowFlow = Flow[..., Coroutine[Any, Any, WorkflowResult]]
"""A compiled workflow: an async Prefect flow; ``asyncio.run(flow(inputs=...))`` gives its WorkflowResult."""

StepTask = Task[[StepCall], Coroutine[Any, Any, StepOutcome]]
"""A step's Prefect task: async, so calling it gives a coroutine of the outcome."""

STEP_TASK: StepTask = Task(
    fn=_step_attempt,
    name="step",
    persist_result=True,
    result_serializer=SealedPickleSerializer(),  # sealed at rest with the home's data key (runtime/sealed_results.py)
    cache_key_fn=lambda _ctx, params: params["call"].cache_key,
    cache_expiration=RESULT_CACHE_EXPIRATION,
)


def step_cache_key(
    run_key: str,
    definition: WorkflowDefinition,
    step_id: str,
    item_index: int | None,
    inputs: dict[str, Any],
    version: str | None = None,
) -> str:
    """Where a step's result is persisted: the same for the same run, definition version, step, item and inputs.

    ``version``: the version a resumed run began with, when it differs from the definition's but is compatible
    with it (``flows/resume_versions.py``), so the run reuses what its first attempt completed.
    """
    return _stable_key(run_key, definition.id, version or definition.version, step_id, item_index, inputs)


def _stable_key(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()
