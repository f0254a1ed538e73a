"""One run of a compiled workflow: when each step starts, whether it runs at all, and the run's result.

Scheduling is plain asyncio inside one async flow run: every step waits for
exactly the steps :func:`~agentparty.models.analyze_definition` says it depends
on (a parallel child also for what its parallel step waits for), then runs under
the run's concurrency bound (``maxConcurrency``, one at a time when the
definition is not ``parallel``). A step is skipped instead when the run has
aborted, when a decision gating it took the other branch, when a dependency
failed, or when everything it depends on was skipped. A step failure never
escapes: its fallback (``flows/fallbacks.py``) turns it into a result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from neo4j.exceptions import DriverError, Neo4jError

from agentparty.flows.artifacts import publish_staffing, publish_steps_table
from agentparty.flows.fallbacks import fallback
from agentparty.flows.resume_versions import resumed_version
from agentparty.flows.run_observers import RunObservers
from agentparty.flows.run_state import RunState
from agentparty.flows.services import RunServices
from agentparty.flows.step_kinds import CompiledSteps, StepRunner
from agentparty.flows.step_task import current_flow_run_id
from agentparty.models import WorkflowDefinition, WorkflowGraph, WorkflowStep
from agentparty.models.run_history import task_id_for
from agentparty.models.run_results import StepResult, StepStatus, WorkflowFailed, WorkflowResult
from agentparty.models.step_errors import RunInputError
from agentparty.runtime.graph_store import GraphWriteError
from agentparty.runtime.sealing import sealer_at
from agentparty.runtime.secret_inputs import open_secret_inputs, without_secrets


class CompiledRun(CompiledSteps, Protocol):
    """What a run needs from its compiled workflow (:class:`~agentparty.flows.compiler.CompiledWorkflow`)."""

    @property
    def definition(self) -> WorkflowDefinition: ...

    @property
    def services(self) -> RunServices: ...

    @property
    def graph(self) -> WorkflowGraph: ...

    @property
    def dependencies(self) -> dict[str, frozenset[str]]:
        """Step id → the steps it waits for."""
        ...

    @property
    def gates(self) -> dict[str, list[tuple[str, str]]]:
        """Step id → the (decision, branch) pairs that must hold for it to run."""
        ...

    @property
    def steps(self) -> dict[str, WorkflowStep]: ...

    @property
    def max_concurrency(self) -> int: ...

    @property
    def on_step_finished(self) -> Callable[[StepResult], None] | None: ...


class WorkflowRun:
    """One flow run: every step driven from waiting to its result, then the run's result."""

    def __init__(self, compiled: CompiledRun, inputs: dict[str, Any], resume_key: str | None) -> None:
        self.c = compiled
        definition = compiled.definition
        opened = open_secret_inputs(definition, inputs, sealer_at(compiled.services.home))  # flows/sealed_flow.py
        resolved, problems = definition.resolve_run_inputs(opened)
        if problems:
            raise RunInputError(without_secrets(definition, opened, problems))
        run_id = current_flow_run_id()
        run_key = resume_key or run_id or "local"
        bound = compiled.max_concurrency if definition.parallel else 1
        if definition.max_concurrency:
            bound = min(bound, definition.max_concurrency)
        slots = asyncio.Semaphore(bound)
        self.done = {sid: asyncio.Event() for sid in compiled.graph.order}
        observers = RunObservers(definition, compiled.services, run_key, run_id)
        self.run = RunState(definition, resolved, run_key, run_id, slots, observers)
        if resume_key:
            self.run.result_version = resumed_version(definition, run_key, compiled.services)
        self.steps = StepRunner(compiled, self.run)

    async def execute(self) -> WorkflowResult:
        """Run every step; the result, or :class:`WorkflowFailed` carrying it when a step failed or the run aborted."""
        run, started = self.run, time.perf_counter()
        await _staff(run, self.c.services)
        refused = await run.observers.started()
        if refused:
            run.aborted = refused
        try:
            await asyncio.gather(*(self._drive(sid) for sid in self.c.graph.order))
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled or interrupted: it will not finish
                run.observers.cancelled()
            raise
        finally:
            await run.mcp.aclose()  # the run's MCP servers stop with it (stdio processes end, HTTP sessions close)
        failed = [sid for sid, r in run.results.items() if r.status is StepStatus.FAILED]
        result = WorkflowResult(
            workflow_id=run.definition.id,
            workflow_name=run.definition.name,
            run_id=run.run_id,
            status=StepStatus.FAILED if failed or run.aborted else StepStatus.COMPLETED,
            steps={sid: run.results[sid] for sid in self.c.graph.order},
            reason=run.aborted,
            duration_s=time.perf_counter() - started,
        )
        await run.observers.finished(result, started)
        await publish_steps_table(run.definition, run.run_id, result, self.c.services.masker())
        if result.status is StepStatus.FAILED:
            failure = WorkflowFailed(result)
            masker = self.c.services.masker()
            if masker is not None:  # its message is the flow run's state message in Prefect (its result stays whole)
                failure.args = (masker.text(str(failure)),)
            raise failure
        return result

    async def _drive(self, sid: str) -> None:
        """Wait for the step's dependencies, then skip it or run it (with its fallback), and tell the observers."""
        for dep in self.c.dependencies[sid]:
            await self.done[dep].wait()
        reason = self._skip_reason(sid)
        if reason:
            skipped = StepResult(step_id=sid, status=StepStatus.SKIPPED, reason=reason)
            self.run.observers.step_skipped(skipped, self.c.steps[sid].type)
            self._finish(skipped)
            return
        step = self.c.steps[sid]
        started = time.perf_counter()
        try:
            result = await self.steps.run_step(step)
        except Exception as exc:  # a step failure never escapes: it becomes a result and a fallback
            result = await fallback(self.run, self.steps, step, exc)
        result.duration_s = time.perf_counter() - started
        result, refused = await self.run.observers.step_finished(step, result)
        if refused:
            self.run.abort(refused)
        self._finish(result)

    def _skip_reason(self, sid: str) -> str | None:
        if self.run.aborted:
            return f"run aborted: {self.run.aborted}"
        results = self.run.results
        for decision, branch in self.c.gates[sid]:
            gate = results[decision]
            if gate.status is not StepStatus.COMPLETED:
                return f"decision {decision!r} did not complete"
            if gate.outputs.get("branch") != branch:
                return f"branch {branch!r} of decision {decision!r} not taken"
        gate_ids = {d for d, _ in self.c.gates[sid]}
        deps = [d for d in self.c.dependencies[sid] if d not in gate_ids]
        failed = [d for d in deps if results[d].status is StepStatus.FAILED]
        if failed:
            return f"dependency {failed[0]!r} failed"
        if deps and all(results[d].status is StepStatus.SKIPPED for d in deps):
            return "every step it depends on was skipped"
        return None

    def _finish(self, result: StepResult) -> None:
        self.run.results[result.step_id] = result
        self.done[result.step_id].set()
        if self.c.on_step_finished is not None:
            self.c.on_step_finished(result)


async def _staff(run: RunState, services: RunServices) -> None:
    """Agents for the steps that name only a capability, from the team recommender (flows/staffing.py)."""
    definition = run.definition
    if not definition.unstaffed_steps():
        return  # before the imports below: the recommender loads torch, seconds a plain run must not pay

    from agentparty.flows.staffing import (  # deferred: staffing loads the team recommender (torch), only for runs that need it
        StaffingError,
        staff_run,
    )

    recorder = services.recorder()
    if recorder is None:
        run.aborted = (
            f"formationMethod {definition.formation_method.value!r} needs the results graph to recommend a team "
            "(start it with `agentparty up`, or set AGENTPARTY_DATABASE__URI)"
        )
        return
    try:
        run.staffing = await asyncio.to_thread(
            staff_run, definition, run.run_key, task_id_for(run.run_key), recorder.store, services.home
        )
    except (
        StaffingError,
        GraphWriteError,
        Neo4jError,
        DriverError,
        OSError,
    ) as exc:  # driver: graph unreachable or refusing
        run.aborted = f"assembling the team failed: {type(exc).__name__}: {exc}"
        return
    run.observers.staffing = run.staffing
    if run.run_id is not None:
        await publish_staffing(definition, run.staffing)
