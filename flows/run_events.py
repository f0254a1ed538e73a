"""The events of one workflow run, in seed 000's envelope (pure: the compiler emits what this builds).

Ids are deterministic, so a retried step or a resumed run re-emits the same ids
and the outbox ignores them: per run key (the task and its team: submitted,
analyzed, assembled, performance; a step's attempts and its end; an agent
engagement's provisioning; a tool call, per slot, turn and call id) or per
lifecycle state (each transition). Run started/completed/failed belong to one
flow run each, so a resume reports its own start and end. ``correlation_id`` is
the flow run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentparty.flows.task_analysis import analyse_task
from agentparty.models import WorkflowDefinition
from agentparty.models.capabilities import CapabilityRegistry
from agentparty.models.engagements import AgentWork, LifecycleTransition
from agentparty.models.events import (
    AgentProvisionedEvent,
    AgentStateTransitionEvent,
    BaseEvent,
    CapabilityMetrics,
    CircuitBreakerEvent,
    CircuitBreakerPayload,
    CollaborationMetrics,
    TaskAnalyzedEvent,
    TaskAnalyzedPayload,
    TaskSubmittedEvent,
    TaskSubmittedPayload,
    TeamAssembledEvent,
    TeamAssembledPayload,
    TeamPerformanceEvent,
    TeamPerformancePayload,
    ToolCallEvent,
    ToolCallPayload,
    WorkflowEvent,
    WorkflowEventPayload,
)
from agentparty.models.graph import FormationMethod, new_id, stable_id
from agentparty.models.run_history import RunTally, required_capabilities, task_id_for, team_id_for
from agentparty.models.run_results import StepResult, StepStatus, WorkflowResult
from agentparty.models.states import AgentLifecycleState
from agentparty.models.task_analysis import TaskAnalysis

_ENDS = frozenset({AgentLifecycleState.COMPLETED, AgentLifecycleState.FAILED, AgentLifecycleState.TERMINATED})

PRODUCER = "agentparty.workflow-engine"
RECOMMENDER = "agentparty.team-recommender"


@dataclass
class RunEvents:
    definition: WorkflowDefinition
    run_key: str
    flow_run_id: str | None
    username: str
    tally: RunTally = field(default_factory=RunTally)
    """Shared with the run's graph mapping; whoever drives the run adds each step result to it first."""
    owner_ref: str | None = None
    """Who started the run over the API (``models/access.owner_ref``), carried on its workflow events for ``/ws``."""

    @property
    def correlation_id(self) -> str:
        return self.flow_run_id or self.run_key

    @property
    def task_id(self) -> str:
        return task_id_for(self.run_key)

    @property
    def team_id(self) -> str:
        return team_id_for(self.run_key)

    def _envelope(self, *id_parts: str) -> dict[str, Any]:
        return {"event_id": stable_id("event", *id_parts), "correlation_id": self.correlation_id, "producer": PRODUCER}

    def _workflow(self, event_type: str, id_parts: tuple[str, ...], **payload: Any) -> WorkflowEvent:
        return WorkflowEvent(
            **self._envelope(event_type, *id_parts),
            event_type=event_type,
            payload=WorkflowEventPayload(
                workflow_id=self.definition.id,
                workflow_version=self.definition.version,
                run_key=self.run_key,
                task_id=self.task_id,
                owner_ref=self.owner_ref,
                **payload,
            ),
        )

    def required_capabilities(self) -> list[str]:
        return required_capabilities(self.definition)

    # -- run ------------------------------------------------------------------------------

    def run_started(
        self,
        team_roles: dict[str, str] | None,
        formation: FormationMethod = FormationMethod.MANUAL,
        analysis: TaskAnalysis | None = None,
    ) -> list[BaseEvent[Any]]:
        """Run started, task submitted, task analyzed (``analysis``: ``flows/task_analysis.py``; without one, the
        capabilities the steps name), team assembled: the order the Task record moves in (``runtime/run_recorder``)."""
        d = self.definition
        analysis = analysis or analyse_task(d, CapabilityRegistry(), None)
        events: list[BaseEvent[Any]] = [
            self._workflow("workflow_run_started", (self.correlation_id,), step_count=len(d.steps)),
            TaskSubmittedEvent(
                **self._envelope("task_submitted", self.run_key),
                payload=TaskSubmittedPayload(
                    task_id=self.task_id,
                    title=d.name,
                    description=d.description,
                    submitted_by=self.username,
                    priority=d.priority,
                    token_budget=d.token_budget or 0,
                ),
            ),
            TaskAnalyzedEvent(
                **self._envelope("task_analyzed", self.run_key),
                payload=TaskAnalyzedPayload(
                    task_id=self.task_id,
                    analyzer_id=PRODUCER,
                    extracted_capabilities=analysis.names,
                    complexity=d.complexity,
                    token_estimate=analysis.token_estimate,
                    time_estimate=analysis.time_estimate,
                    recommended_team_size=max(1, len(team_roles)) if team_roles else analysis.recommended_team_size,
                    capability_confidence=analysis.confidence(),
                    embedder=analysis.embedder,
                ),
            ),
        ]
        if team_roles:
            events.append(
                TeamAssembledEvent(
                    **self._envelope("team_assembled", self.run_key),
                    payload=TeamAssembledPayload(
                        team_id=self.team_id,
                        task_id=self.task_id,
                        assembler_id=PRODUCER if formation is FormationMethod.MANUAL else RECOMMENDER,
                        member_count=len(team_roles),
                        formation_method=formation,
                        agent_roles=team_roles,
                        token_budget=d.team_token_budget or 0,
                    ),
                )
            )
        return events

    def run_finished(self, result: WorkflowResult) -> list[BaseEvent[Any]]:
        ok = result.status is StepStatus.COMPLETED
        success = self.tally.performance_score(ok)
        budget = self.definition.team_token_budget or self.definition.token_budget or 0
        required = self.required_capabilities()
        covered = [c for c in required if c in self.tally.capabilities]
        members = len(self.tally.members)
        events: list[BaseEvent[Any]] = [
            TeamPerformanceEvent(
                **self._envelope("team_performance", self.run_key),
                payload=TeamPerformancePayload(
                    team_id=self.team_id,
                    task_id=self.task_id,
                    success_rating=success,
                    completion_time=int(result.duration_s),
                    token_usage=result.tokens,
                    budget_variance=(result.tokens - budget) / budget * 100 if budget else 0.0,
                    collaboration_metrics=CollaborationMetrics(
                        pair_count=members * (members - 1) // 2, messages_exchanged=self.tally.messages_exchanged
                    ),
                    capability_metrics=CapabilityMetrics(
                        required=required, covered=covered, coverage=len(covered) / len(required) if required else 1.0
                    ),
                ),
            ),
            self._workflow(
                "workflow_run_completed" if ok else "workflow_run_failed",
                (self.correlation_id,),
                reason=result.reason,
                tokens=result.tokens,
                duration_s=result.duration_s,
            ),
        ]
        return events

    # -- steps ----------------------------------------------------------------------------

    def step_attempt(self, slot: str, attempt: int) -> WorkflowEvent:
        kind = "step_started" if attempt <= 1 else "step_retried"
        return self._workflow(kind, (self.run_key, slot, str(attempt)), step_id=slot, attempt=attempt)

    def step_finished(self, result: StepResult, records: list[Any]) -> list[BaseEvent[Any]]:
        """Agent provisioning, transitions and tool calls the step's slots carried, then the step's own end.

        An engagement's tool calls come after its transition into ``running`` and before the one that ends its
        work (completed, failed), so a consumer of the agent's key reads them in the order they happened.
        """
        events: list[BaseEvent[Any]] = []
        for record in records:
            for slot, work in record.engagements():  # the slot's agent, then the agents it asked (ask_agent)
                if work.provisioned is not None:
                    events.append(
                        AgentProvisionedEvent(
                            **self._envelope("agent_provisioned", self.run_key, slot, work.agent.id),
                            payload=work.provisioned,
                        )
                    )
                transitions = [
                    AgentStateTransitionEvent(
                        **self._envelope("agent_state_transition", transition.record.id),
                        payload=transition.event,
                    )
                    for transition in work.transitions
                ]
                cut = _work_end(work.transitions)
                events += [*transitions[:cut], *self.tool_calls(slot, work), *transitions[cut:]]
        kind = {
            StepStatus.COMPLETED: "step_completed",
            StepStatus.FAILED: "step_failed",
            StepStatus.SKIPPED: "step_skipped",
        }[result.status]
        events.append(
            self._workflow(
                kind,
                (self.run_key, result.step_id),
                step_id=result.step_id,
                attempt=result.attempts or None,
                reason=result.reason,
                tokens=result.tokens,
                duration_s=result.duration_s,
            )
        )
        return events

    def tool_calls(self, slot: str, work: AgentWork) -> list[ToolCallEvent]:
        """``tool_called`` then ``tool_completed`` for each call of the engagement's turns, in the order made."""
        events: list[ToolCallEvent] = []
        for turn in work.turns:
            for call in turn.tool_calls:
                common: dict[str, Any] = {
                    "agent_id": work.agent.id,
                    "task_id": self.task_id,
                    "run_key": self.run_key,
                    "step_id": slot,
                    "turn": turn.turn,
                    "call_id": call.call_id,
                    "tool": call.name,
                    "arguments": call.arguments,
                }
                ids = (self.run_key, slot, str(turn.turn), call.call_id)
                events.append(
                    ToolCallEvent(
                        **self._envelope("tool_called", *ids),
                        event_type="tool_called",
                        payload=ToolCallPayload(**common),
                    )
                )
                completed = ToolCallPayload(
                    **common,
                    ok=call.ok,
                    refused=call.refused,
                    result=call.result,
                    duration_ms=call.duration_ms,
                    cached=call.cached,
                )
                events.append(
                    ToolCallEvent(
                        **self._envelope("tool_completed", *ids), event_type="tool_completed", payload=completed
                    )
                )
        return events

    def breaker(self, target: str, before: str, after: str, failures: int = 0) -> CircuitBreakerEvent:
        kind = {
            "open": "circuit_breaker_opened",
            "half_open": "circuit_breaker_half_open",
            "closed": "circuit_breaker_closed",
        }[after]
        return CircuitBreakerEvent(
            event_id=new_id(),
            correlation_id=self.correlation_id,
            producer=PRODUCER,
            event_type=kind,
            payload=CircuitBreakerPayload(target=target, previous_state=before, new_state=after, failures=failures),
        )


def _work_end(transitions: tuple[LifecycleTransition, ...]) -> int:
    """Where an engagement's tool calls go among its transitions: before the first that ends its work (into
    completed, failed or terminated), else after them all (the running state they happened in came earlier)."""
    for index, transition in enumerate(transitions):
        if transition.event.new_state in _ENDS:
            return index
    return len(transitions)
