"""Lifecycle events → seed 000's WebSocket messages (pure: the live feed feeds it events in consumption order).

Events reach the reader per Kafka partition in order, and a partition holds
one entity's events (the key is the agent, team or task id), but the agents,
teams and workflows topics interleave freely. So each message is built from
one event plus what the view remembers, never from an assumed cross-topic
order:

- ``agent_provisioned`` → ``agent_update`` (no previous state; a new
  engagement starts ``initialized``); ``agent_state_transition`` →
  ``agent_update`` with both states, the agent's tokens so far and the look
  of the new state (:mod:`agentparty.api.agent_svg`);
- ``team_assembled`` → ``team_update`` (members and roles; the agents' names
  are their roles, since events carry no names);
- ``workflow_run_started`` (re)opens the run's team and learns its step
  count; each step's end (completed, skipped or failed) → ``team_update``
  with ``task_progress`` = steps ended / steps;
- ``team_performance`` and ``workflow_run_completed``/``failed`` together
  → the team's final ``team_update``: progress 1.0, the run's outcome as
  status, pair connections weighted by the mean pair success. Whichever of
  the two comes second sends it. A run's step events precede its end in one
  partition, so none can follow the final update; a late ``team_assembled``
  only fills in the members (status and progress stay final).

What the view remembers is bounded (least recently seen entities go first).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Generic, TypeVar

from agentparty.api.agent_svg import agent_svg, animation_for
from agentparty.models import AgentLifecycleState, TeamStatus
from agentparty.models.api import (
    AgentUpdateMessage,
    AgentUpdatePayload,
    TeamConnection,
    TeamMemberView,
    TeamUpdateMessage,
    TeamUpdatePayload,
)
from agentparty.models.events import (
    AgentProvisionedEvent,
    AgentStateTransitionEvent,
    BaseEvent,
    TeamAssembledEvent,
    TeamPerformanceEvent,
    TeamPerformancePayload,
    WorkflowEvent,
)
from agentparty.models.run_history import team_id_for

MAX_ENTITIES = 10_000
STEP_ENDS = frozenset({"step_completed", "step_skipped", "step_failed"})
RUN_ENDS = {"workflow_run_completed": TeamStatus.COMPLETED.value, "workflow_run_failed": TeamStatus.FAILED.value}

K = TypeVar("K")
V = TypeVar("V")


class _Recent(OrderedDict[K, V], Generic[K, V]):
    """A dict that forgets its least recently used entries beyond ``MAX_ENTITIES``."""

    def touch(self, key: K, default: V) -> V:
        if key in self:
            self.move_to_end(key)
            return self[key]
        self[key] = default
        if len(self) > MAX_ENTITIES:
            self.popitem(last=False)
        return default


@dataclass(frozen=True)
class Routed:
    """One message, serialised once, with what clients filter on."""

    text: str
    agent_id: str | None = None
    team_ids: frozenset[str] = frozenset()


@dataclass
class _Agent:
    state: str | None = None
    tokens: int = 0
    name: str = ""
    teams: set[str] = field(default_factory=set)


@dataclass
class _Team:
    roles: dict[str, str] = field(default_factory=dict)
    status: str = TeamStatus.FORMING.value
    step_count: int | None = None
    ended_steps: set[str] = field(default_factory=set)
    progress: float = 0.0
    performance: TeamPerformancePayload | None = None
    outcome: str | None = None
    final: bool = False


class LiveView:
    def __init__(self) -> None:
        self._agents: _Recent[str, _Agent] = _Recent()
        self._teams: _Recent[str, _Team] = _Recent()

    def messages_for(self, event: BaseEvent[Any]) -> list[Routed]:
        if isinstance(event, AgentProvisionedEvent):
            agent = self._agent(event.payload.agent_id)
            agent.state = AgentLifecycleState.INITIALIZED.value
            where = f"template {event.payload.template_id} {event.payload.template_version}"
            return [self._agent_update(event, event.payload.agent_id, None, f"provisioned from {where}")]
        if isinstance(event, AgentStateTransitionEvent):
            p = event.payload
            agent = self._agent(p.agent_id)
            agent.tokens += p.token_count
            agent.state = p.new_state
            by = "" if p.transition_approver.startswith("system:") else f" (approved by {p.transition_approver})"
            return [
                self._agent_update(event, p.agent_id, p.previous_state, f"{p.transition_reason or 'transition'}{by}")
            ]
        if isinstance(event, TeamAssembledEvent):
            team = self._teams.touch(event.payload.team_id, _Team())
            team.roles = dict(event.payload.agent_roles)
            for agent_id, role in team.roles.items():
                agent = self._agent(agent_id)
                agent.name = role
                agent.teams.add(event.payload.team_id)
            message = f"{event.payload.member_count} members assembled ({event.payload.formation_method.value})"
            return [self._team_update(event, event.payload.team_id, team, message)]
        if isinstance(event, TeamPerformanceEvent):
            team = self._teams.touch(event.payload.team_id, _Team())
            team.performance = event.payload
            return self._maybe_final(event, event.payload.team_id, team)
        if isinstance(event, WorkflowEvent):
            return self._workflow(event)
        return []

    # -- agents -----------------------------------------------------------------------------

    def _agent(self, agent_id: str) -> _Agent:
        return self._agents.touch(agent_id, _Agent(name=f"agent {agent_id[:6]}"))

    def _agent_update(self, event: BaseEvent[Any], agent_id: str, previous: str | None, message: str) -> Routed:
        agent = self._agent(agent_id)
        state = agent.state or AgentLifecycleState.INITIALIZED.value
        payload = AgentUpdatePayload(
            agent_id=agent_id,
            previous_state=previous,
            new_state=state,
            svg=agent_svg(agent.name, state),
            animation_type=animation_for(state),
            token_usage=agent.tokens,
            message=message,
        )
        text = AgentUpdateMessage(timestamp=event.timestamp, payload=payload).model_dump_json()
        return Routed(text, agent_id=agent_id, team_ids=frozenset(agent.teams))

    # -- teams ------------------------------------------------------------------------------

    def _workflow(self, event: WorkflowEvent) -> list[Routed]:
        p = event.payload
        team_id = team_id_for(p.run_key)
        team = self._teams.touch(team_id, _Team())
        if event.event_type == "workflow_run_started":
            team.step_count = p.step_count if p.step_count is not None else team.step_count
            if team.final:
                # A resumed run (same run key, later in this partition than the run it resumes) reopens the team.
                # Its performance stays: the resume's own has the same event id and is never sent again.
                team.final, team.outcome = False, None
                team.progress = min(1.0, len(team.ended_steps) / team.step_count) if team.step_count else 0.0
            team.status = TeamStatus.ACTIVE.value if team.roles else TeamStatus.FORMING.value
            return [self._team_update(event, team_id, team, f"run of {p.workflow_id} {p.workflow_version} started")]
        if event.event_type in RUN_ENDS:
            team.outcome = RUN_ENDS[event.event_type]
            return self._maybe_final(event, team_id, team)
        if event.event_type not in STEP_ENDS or team.final or p.step_id is None:
            return []
        team.ended_steps.add(p.step_id)
        if team.step_count:
            team.progress = max(team.progress, min(1.0, len(team.ended_steps) / team.step_count))
        team.status = TeamStatus.ACTIVE.value if team.roles else team.status
        how = event.event_type.removeprefix("step_")
        return [
            self._team_update(event, team_id, team, f"step {p.step_id} {how}" + (f": {p.reason}" if p.reason else ""))
        ]

    def _maybe_final(self, event: BaseEvent[Any], team_id: str, team: _Team) -> list[Routed]:
        if team.final or team.performance is None or team.outcome is None:
            return []
        team.final, team.progress, team.status = True, 1.0, team.outcome
        perf = team.performance
        message = (
            f"run {team.outcome}: success {perf.success_rating:.0%}, {perf.token_usage} tokens, "
            f"capability coverage {perf.capability_metrics.coverage:.0%}"
        )
        return [self._team_update(event, team_id, team, message)]

    def _team_update(self, event: BaseEvent[Any], team_id: str, team: _Team, message: str) -> Routed:
        members = [
            TeamMemberView(
                agent_id=agent_id, name=self._agent(agent_id).name, role=role, state=self._agent(agent_id).state or ""
            )
            for agent_id, role in team.roles.items()
        ]
        strength = team.performance.collaboration_metrics.mean_pair_success if team.performance else None
        connections = (
            [TeamConnection(source=a, target=b, strength=strength) for a, b in combinations(sorted(team.roles), 2)]
            if team.final and strength is not None
            else []
        )
        payload = TeamUpdatePayload(
            team_id=team_id,
            status=team.status,
            members=members,
            connections=connections,
            task_progress=team.progress,
            message=message,
        )
        text = TeamUpdateMessage(timestamp=event.timestamp, payload=payload).model_dump_json()
        return Routed(text, team_ids=frozenset({team_id}))
