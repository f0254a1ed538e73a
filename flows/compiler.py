"""Compile a WorkflowDefinition into a Prefect flow (DESIGN.md §3, §6).

Every step is a Prefect task named by its step id (a subgraph is a subflow), so
the Prefect UI shows the run the way the definition reads. Compiling works out
once what every run of the definition needs: which steps each step waits for
(:func:`~agentparty.models.analyze_definition`) and which decisions gate it, each
step's retry policy and task, the services runs talk to. The flow it returns is
async: async tasks give real timeouts (a sync handler runs in a worker thread
the timeout abandons), and async flows have no heartbeat wait at exit.

A run is ``flows/scheduler.py``; how each kind of step runs is ``flows/step_kinds.py``,
each call one run of the task in ``flows/step_task.py``. Retries are Prefect's
(``flows/retries.py``); results are persisted (to Prefect's local storage path,
which ``agentparty`` points into ``AGENTPARTY_HOME``) with keys built from (run key,
definition id and version, step id, item, resolved inputs), so a resumed run
reuses every step that had completed.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from agentparty.flows.artifacts import await_run_artifact
from agentparty.flows.entrypoints import ENTRYPOINT_MODULE, entrypoint_name
from agentparty.flows.retries import EffectivePolicy, effective_policy
from agentparty.flows.scheduler import WorkflowRun
from agentparty.flows.sealed_flow import SealingFlow
from agentparty.flows.services import RunServices, run_services
from agentparty.flows.step_task import FORBIDDEN_IN_NAMES, STEP_TASK, StepOutcome, StepTask, WorkflowFlow
from agentparty.models import TaskStep, WorkflowDefinition, WorkflowStep
from agentparty.models.run_results import StepResult, WorkflowResult
from agentparty.models.step_errors import StepValidationError
from agentparty.runtime.breakers import CircuitBreaker
from agentparty.runtime.budgets import Budget
from agentparty.runtime.documents import WorkflowCatalog, WorkflowLoader
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.runtime.sealed_results import SealedPickleSerializer
from agentparty.runtime.settings import get_settings
from agentparty.runtime.tracing import configure_tracing
from agentparty.tasks.agent import AgentRunner

# ``StepOutcome`` lives in flows/step_task.py; it stays importable from here only for
# compatibility: step results persisted by 0.1.0 are pickles naming
# ``agentparty.flows.compiler.StepOutcome`` (tests/unit/flows/test_persisted_results.py).
__all__ = ["CompileOptions", "CompiledWorkflow", "StepOutcome", "compile_workflow", "flow_name_for"]


def flow_name_for(definition: WorkflowDefinition) -> str:
    """The definition's name, without the characters Prefect refuses in names."""
    return FORBIDDEN_IN_NAMES.sub("-", definition.name).strip() or definition.id


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


class CompiledWorkflow:
    """A validated definition with its dependency graph, per-step tasks and policies.

    It is what every run of the definition needs (:class:`~agentparty.flows.scheduler.CompiledRun`,
    whose step kinds ask for :class:`~agentparty.flows.step_kinds.CompiledSteps`).
    """

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
        self._subflows: dict[Path, WorkflowFlow] = {}
        self.dependencies = {sid: self._effective_dependencies(sid) for sid in self.graph.order}
        self.gates = {sid: self._gates(sid) for sid in self.graph.order}
        self.steps = {step.id: step for step in definition.all_steps()}
        agent_backoff = float(self.services.settings.agent_runtime.retry_backoff_seconds)
        self.policies = {
            sid: effective_policy(
                step.retry_policy, definition.error_handling, agent_backoff if _is_agent_step(step) else None
            )
            for sid, step in self.steps.items()
        }
        self._tasks: dict[tuple[str, EffectivePolicy], StepTask] = {}

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

    def task_for(self, step: WorkflowStep, policy: EffectivePolicy | None = None) -> StepTask:
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

    # Runs reach the graph and the bus through ``services`` now; these two (and ``home``) stay
    # for compatibility, for code that inspects ``flow.compiled``.
    def recorder(self) -> GraphRecorder | None:
        return self.services.recorder()

    def event_bus(self) -> EventBus | None:
        return self.services.event_bus()

    @property
    def max_concurrency(self) -> int:
        return self.options.max_concurrency

    @property
    def max_subgraph_depth(self) -> int:
        return self.options.max_subgraph_depth

    @property
    def on_step_finished(self) -> Callable[[StepResult], None] | None:
        return self.options.on_step_finished

    def breaker_for(self, target: str, on_transition: Any = None) -> CircuitBreaker | None:
        handling = self.definition.error_handling
        if handling is None or handling.circuit_breaker is None:
            return None
        return CircuitBreaker(
            target, handling.circuit_breaker, self.services.breaker_store(), self.options.clock, on_transition
        )

    def subflow(self, target: str) -> WorkflowFlow:
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
        """One run of the workflow (``flows/scheduler.py``)."""
        return await WorkflowRun(self, inputs, resume_key).execute()


def _is_agent_step(step: WorkflowStep) -> bool:
    return isinstance(step, TaskStep) and step.configuration.is_agent


def compile_workflow(
    definition: WorkflowDefinition, *, source: Path | str | None = None, options: CompileOptions | None = None
) -> WorkflowFlow:
    """Build the Prefect flow for a definition. Calling it runs the workflow and returns a WorkflowResult.

    ``source`` is the definition's file: handler modules and subgraph files are found next to it.
    A failed run raises :class:`WorkflowFailed` (the flow run ends Failed), carrying the result.
    """
    compiled = CompiledWorkflow(definition, Path(source) if source else None, options or CompileOptions())
    # Before the flow runs: Prefect starts the run's span as the run starts (runtime/tracing.py).
    configure_tracing(compiled.services.settings, "agentparty-runs")

    async def run_workflow(inputs: dict[str, Any] | None = None, resume_key: str | None = None) -> WorkflowResult:
        return await compiled.execute(inputs or {}, resume_key)

    # The parameter schema Prefect derives from the signature (``to_deployment``, ``prefect deploy``)
    # shows ``inputs`` as the definition's own input fields, which the UI renders as a form;
    # validation stays with the definition (``resolve_run_inputs``), which names every bad field.
    run_workflow.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # functions take one at run time
        [
            inspect.Parameter(
                "inputs",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None,
                annotation=Annotated[dict[str, Any] | None, WithJsonSchema(definition.inputs_json_schema())],
            ),
            inspect.Parameter(
                "resume_key",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None,
                annotation=Annotated[str | None, Field(description="Resume a failed or crashed run: its flow run id")],
            ),
        ],
        return_annotation=WorkflowResult,
    )
    # Named after the module-level entrypoint that rebuilds this flow, so that
    # ``flow.to_deployment()`` records an entrypoint the runner can re-import.
    run_workflow.__module__ = ENTRYPOINT_MODULE
    run_workflow.__qualname__ = run_workflow.__name__ = entrypoint_name(definition.id)
    flow = SealingFlow(  # seals writeOnly inputs before Prefect records them (flows/sealed_flow.py)
        fn=run_workflow,
        name=compiled.flow_name,
        description=definition.description or None,
        version=definition.version,
        validate_parameters=True,
        persist_result=True,  # a deployment's caller reads the WorkflowResult from another process
        result_serializer=SealedPickleSerializer(),  # sealed at rest with the home's data key
        on_completion=[await_run_artifact],
        on_failure=[await_run_artifact],
        on_crashed=[await_run_artifact],
        on_cancellation=[await_run_artifact],
    )
    flow.compiled = compiled
    return flow
