"""What a workflow run tells the outside world as it goes: the results graph and the event bus.

The scheduler (``flows/scheduler.py``) and the step kinds call these hooks; each does nothing when its sink is
off (no graph configured, no broker). Step results reach both in the same
shape (:class:`~agentparty.runtime.run_recorder.SlotRecord`: one per executed slot,
with the agent engagement behind it), graph first: a step counts as done only
once its graph write went through, and its events follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentparty.flows.run_events import RunEvents
from agentparty.flows.services import RunServices
from agentparty.flows.step_task import StepOutcome
from agentparty.flows.task_analysis import run_analysis
from agentparty.models import ParallelStep, TaskStep, WorkflowDefinition, WorkflowStep
from agentparty.models.engagements import SlotRecord
from agentparty.models.graph import FormationMethod
from agentparty.models.run_history import RunTally
from agentparty.models.run_results import StepResult, StepStatus, WorkflowResult
from agentparty.models.task_analysis import TaskAnalysis
from agentparty.runtime.graph_store import GraphWriteError
from agentparty.runtime.run_index import RunIndex
from agentparty.runtime.run_recorder import RunGraph
from agentparty.runtime.settings import get_settings
from agentparty.runtime.telemetry_metrics import record_run_finished, record_run_started, record_step
from agentparty.tasks.agent import agent_work_of, current_owner_ref

if TYPE_CHECKING:
    from agentparty.flows.staffing import Staffing

logger = logging.getLogger("agentparty.flows")


class RunObservers:
    """The hooks of one run, writing to the graph and the bus its services have (either may be off)."""

    def __init__(self, definition: WorkflowDefinition, services: RunServices, run_key: str, run_id: str | None) -> None:
        self.definition = definition
        self.services = services
        self.run_key = run_key
        self.run_id = run_id
        self.tally = RunTally()
        self.recorder = services.recorder()
        self.graph = (
            RunGraph(
                definition,
                run_key,
                services.user_id,
                self.tally,
                capabilities=services.settings.capability_registry(),
                models=services.settings.model_registry(),
                user=services.user_node(),
            )
            if self.recorder is not None
            else None
        )
        self.bus = services.event_bus()
        self.events = (
            RunEvents(definition, run_key, run_id, services.user_id, self.tally, current_owner_ref())
            if self.bus is not None
            else None
        )
        self._records: dict[str, list[SlotRecord]] = defaultdict(list)
        self.staffing: Staffing | None = None
        """Set before :meth:`started` when the team recommender staffed some steps."""

    def _emit(self, *events: Any) -> None:
        if self.bus is not None:
            self.bus.emit(*events)

    # -- run --------------------------------------------------------------------------------

    async def started(self) -> str | None:
        """Announce the run; the reason to abort it when the graph refuses its first write."""
        formation = self.staffing.formation_method if self.staffing else FormationMethod.MANUAL
        self._index("start")
        record_run_started(self.definition.id)
        analysis = await self._analysis()
        if self.events is not None:
            self._emit(*self.events.run_started(self._planned_team(), formation, analysis))
        if self.graph is None or self.recorder is None:
            return None
        self.graph.formation_method = formation
        self.graph.analysis = analysis
        try:
            await self.recorder.write(self.graph.started(), f"start of run {self.run_key}")
        except GraphWriteError as exc:
            reason = f"recording the run in the graph failed: {exc}"
            logger.error("%s", reason)
            return reason
        return None

    async def _analysis(self) -> TaskAnalysis | None:
        """``task_analyzed``'s analysis (``flows/task_analysis.py``), when the graph or the bus is there to carry it."""
        if self.graph is None and self.events is None:
            return None
        services = self.services
        templates = getattr(services.agent_runner(), "templates", None)
        return await asyncio.to_thread(run_analysis, self.definition, services.settings, services.home, templates)

    async def finished(self, result: WorkflowResult, started: float) -> None:
        """The closing graph transaction (a failure fails the run), then the closing events, delivered or counted."""
        if self.graph is not None and self.recorder is not None:
            batch, outcome = self.graph.finished(result)
            try:
                await self.recorder.finish(batch, outcome, f"end of run {self.run_key}")
            except GraphWriteError as exc:
                reason = f"recording the run's end in the graph failed: {exc}"
                logger.error("%s", reason)
                result.status = StepStatus.FAILED
                result.reason = f"{result.reason}; {reason}" if result.reason else reason
        result.duration_s = time.perf_counter() - started
        self._index("end", result.status.value)
        record_run_finished(self.definition.id, "completed" if result.status is StepStatus.COMPLETED else "failed")
        if self.bus is None or self.events is None:
            return

        self._emit(*self.events.run_finished(result))
        pending = await asyncio.to_thread(
            self.bus.settle, self.events.correlation_id, get_settings().events_settle_timeout
        )
        result.events_pending = pending
        if pending:
            logger.warning(
                "%d events of this run are not delivered yet; they stay in the outbox (agentparty events relay sends them)",
                pending,
            )

    def _index(self, moment: str, status: str = "") -> None:
        """The run in the home's run index (``runtime/run_index.py``: whose it is, for retention and erasure):
        one small write at its start and one at its end. A home that refuses it does not stop the run."""
        if self.run_id is None:  # not a Prefect flow run: nothing to erase or purge in Prefect either
            return
        try:
            index = RunIndex.at(self.services.home, self.services.settings.state_backend())
            if moment == "start":
                index.started(self.run_id, self.run_key, self.definition.id, self.services.user_id)
            else:
                index.finished(self.run_id, status)
        except Exception as exc:  # sqlite3's or psycopg's (a PostgreSQL that is down), a file it cannot write
            logger.warning("run %s not recorded in the run index (retention, erasure): %s", self.run_key, exc)

    # -- steps ------------------------------------------------------------------------------

    def slot_done(
        self, step: WorkflowStep, slot: str, outcome: StepOutcome | None, error: BaseException | None
    ) -> None:
        """One executed slot of a ``task`` step, successful (its outcome) or not (the error, with its agent work)."""
        if not isinstance(step, TaskStep) or (self.graph is None and self.events is None):
            return
        if outcome is not None:
            record = SlotRecord(slot, True, outcome.output, outcome.model, outcome.simulated, outcome.agents)
        else:
            work = agent_work_of(error) if error is not None else None
            record = SlotRecord(slot, False, agents=(work,) if work else ())
        self._records[step.id].append(record)

    def _take_records(self, step: WorkflowStep) -> list[SlotRecord]:
        records = self._records.pop(step.id, [])
        if isinstance(step, ParallelStep) and step.configuration.step is not None:
            records += self._records.pop(step.configuration.step.id, [])
        return records

    async def step_finished(self, step: WorkflowStep, result: StepResult) -> tuple[StepResult, str | None]:
        """One graph transaction per step result, then its events. A write that fails after every retry fails the
        step, clearly; the second value is then the reason to abort the run."""
        records = self._take_records(step)
        self.tally.add(result, records)
        record_step(step.type, result.status.value, result.duration_s)
        refused = None
        if self.graph is not None and self.recorder is not None and result.status is not StepStatus.SKIPPED:
            try:
                await self.recorder.write(self.graph.step(records), f"step {result.step_id!r} of run {self.run_key}")
            except GraphWriteError as exc:
                reason = f"recording the step in the graph failed: {exc}"
                logger.error("step %s: %s", result.step_id, reason)
                refused = f"step {result.step_id!r} failed: {reason}"
                if result.status is StepStatus.FAILED:
                    result.reason = f"{result.reason}; {reason}"
                else:
                    result = result.model_copy(update={"status": StepStatus.FAILED, "reason": reason})
        if self.events is not None:
            self._emit(*self.events.step_finished(result, records))
        return result, refused

    def cancelled(self) -> None:
        """The run was stopped before it finished (cancelled, or its process interrupted)."""
        record_run_finished(self.definition.id, "cancelled")

    def step_skipped(self, result: StepResult, kind: str) -> None:
        record_step(kind, "skipped", 0.0)
        if self.events is not None:
            self._emit(*self.events.step_finished(result, []))

    def attempt_listener(self) -> Callable[[str, int], None] | None:
        """Told (slot, attempt) as each attempt of a step starts: step started / retried events."""
        if self.events is None:
            return None
        events = self.events
        return lambda slot, attempt: self._emit(events.step_attempt(slot, attempt))

    def breaker_changed(self, target: str, before: Any, after: Any) -> None:
        if self.events is not None:
            self._emit(self.events.breaker(target, before.value, after.value))

    def _planned_team(self) -> dict[str, str] | None:
        """agent id → role for the agent steps, when the runner can name its agents before they work."""
        agent_steps = [s for s in self.definition.all_steps() if isinstance(s, TaskStep) and s.configuration.agent]
        staffed = self.staffing.roles() if self.staffing else {}
        plan = getattr(self.services.agent_runner(), "agent_id_for", None)
        if not agent_steps or plan is None:
            return staffed or None
        roles: dict[str, list[str]] = defaultdict(list)
        for agent_id, role in staffed.items():
            roles[agent_id].append(role)
        for step in agent_steps:
            config = step.configuration
            try:
                agent_id = plan(config.agent, config.version, config.model)
            except Exception:  # an unknown template fails its step later, with its own error
                continue
            role = config.capability or step.id
            if role not in roles[agent_id]:
                roles[agent_id].append(role)
        return {agent_id: ", ".join(r) for agent_id, r in roles.items()}
