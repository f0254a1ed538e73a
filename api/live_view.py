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

The live stream (``models/live_stream.py``: a run's turns, text deltas and tool
calls as they happen, on a topic of its own) adds ``agent_update`` messages
with ``streaming`` set, the item's ``activity``, ``stream_event``, ``delta``,
``step_id``, ``turn`` and ``tool``. A streaming agent is ``running`` (its loop
runs in no other state). Lifecycle events are emitted when a step ends, after
its stream: an item older than the agent's last lifecycle event changes neither
its state nor its activity (it is still passed on), and a transition out of
``running`` ends its activity. Tokens a streamed turn reports count at once
and are not counted again when the transition that charges them arrives.

A late subscriber first gets the :meth:`LiveView.snapshot`: each team's and each
agent's current update (state, activity, progress), the most recent first.

Each message names the run it is about (:class:`RunRef`: its workflow and who
started it over the API), for keys whose permission's conditions limit them to
some workflows or to their own runs. Workflow events and stream items carry
both; the view learns each flow run's (the events' ``correlation_id``) and each
team's from the workflow events (and a run key's from its stream items) and
attributes the other events by them. A message it cannot attribute (an agent
event read before its run's first workflow event) has no run: only keys without
conditions get it. Agents outlive runs, so an agent's snapshot is attributed to
the run of its latest update, as the view knows it when the snapshot is taken.

What the view remembers is bounded (least recently seen entities go first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
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
from agentparty.models.live_stream import AgentActivity, LiveStreamItem
from agentparty.models.run_history import team_id_for

MAX_ENTITIES = 10_000
SNAPSHOT_LIMIT = 200
"""Agents, and teams, a new connection is told the current state of (the most recently active)."""
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
class RunRef:
    """The run a message is about: its workflow and who started it over the API (``models/access.owner_ref``)."""

    workflow_id: str
    owner_ref: str | None = None


@dataclass(frozen=True)
class Routed:
    """One message, serialised once, with what clients filter on."""

    text: str
    agent_id: str | None = None
    team_ids: frozenset[str] = frozenset()
    run: RunRef | None = None
    """None: not attributed to a run (only keys without conditions get it)."""


@dataclass
class _Agent:
    state: str | None = None
    previous: str | None = None
    tokens: int = 0
    live_tokens: int = 0
    """Tokens streamed turns reported that no lifecycle event has charged yet."""
    name: str = ""
    named: bool = False
    teams: set[str] = field(default_factory=set)
    activity: AgentActivity | None = None
    doing: LiveStreamItem | None = None
    """The stream item that set the activity (its step, turn and tool)."""
    lifecycle_at: datetime | None = None
    """When the last lifecycle event about the agent was emitted: older stream items do not override it."""
    updated: datetime | None = None
    message: str | None = None
    by: str | None = None
    """The flow run or team id its latest update came from (the run its snapshot is attributed to)."""


@dataclass
class _Team:
    updated: datetime | None = None
    message: str | None = None
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
        self._runs: _Recent[str, RunRef] = _Recent()
        """Flow run ids (events' ``correlation_id``), run keys and team ids → their run, learnt from workflow
        events and stream items."""

    def run_of(self, key: str) -> RunRef | None:
        """The run of a flow run id or team id, if a workflow event or stream item named it."""
        return self._runs.get(key)

    def _learn(self, ref: RunRef, *keys: str) -> RunRef:
        for key in keys:
            self._runs.touch(key, ref)
            self._runs[key] = ref  # a resume (same run key, later flow run) may have another owner
        return ref

    def messages_for(self, event: BaseEvent[Any]) -> list[Routed]:
        if isinstance(event, WorkflowEvent):
            of = event.payload
            self._learn(RunRef(of.workflow_id, of.owner_ref), event.correlation_id, team_id_for(of.run_key))
        run = event.correlation_id
        if isinstance(event, AgentProvisionedEvent):
            agent = self._lifecycle(event.payload.agent_id, event.timestamp)
            agent.previous, agent.state = None, AgentLifecycleState.INITIALIZED.value
            where = f"template {event.payload.template_id} {event.payload.template_version}"
            return [
                self._agent_update(event.timestamp, event.payload.agent_id, None, f"provisioned from {where}", by=run)
            ]
        if isinstance(event, AgentStateTransitionEvent):
            p = event.payload
            agent = self._lifecycle(p.agent_id, event.timestamp)
            agent.tokens += p.token_count
            agent.live_tokens = max(0, agent.live_tokens - p.token_count)  # the streamed turns it charges
            agent.previous, agent.state = p.previous_state, p.new_state
            if p.new_state != AgentLifecycleState.RUNNING.value:
                agent.activity = agent.doing = None
            by = "" if p.transition_approver.startswith("system:") else f" (approved by {p.transition_approver})"
            reason = f"{p.transition_reason or 'transition'}{by}"
            return [self._agent_update(event.timestamp, p.agent_id, p.previous_state, reason, by=run)]
        if isinstance(event, TeamAssembledEvent):
            team = self._teams.touch(event.payload.team_id, _Team())
            team.roles = dict(event.payload.agent_roles)
            for agent_id, role in team.roles.items():
                agent = self._agent(agent_id)
                agent.name, agent.named = role, True
                agent.teams.add(event.payload.team_id)
            message = f"{event.payload.member_count} members assembled ({event.payload.formation_method.value})"
            return [self._team_update(event.timestamp, event.payload.team_id, team, message)]
        if isinstance(event, TeamPerformanceEvent):
            team = self._teams.touch(event.payload.team_id, _Team())
            team.performance = event.payload
            return self._maybe_final(event, event.payload.team_id, team)
        if isinstance(event, WorkflowEvent):
            return self._workflow(event)
        return []

    def stream_messages(self, item: LiveStreamItem) -> list[Routed]:
        """A live stream item as a streaming ``agent_update`` (the agent's state and activity as it leaves them)."""
        agent = self._agent(item.agent_id)
        team_id = team_id_for(item.run_key)
        agent.teams.add(team_id)
        if item.workflow_id is not None:  # a run key is its first flow run's id: its events' correlation id
            self._learn(RunRef(item.workflow_id, item.owner_ref), team_id, item.run_key)
        if not agent.named and item.agent_name:
            agent.name, agent.named = item.agent_name, True
        previous = agent.state
        if agent.lifecycle_at is None or item.timestamp >= agent.lifecycle_at:  # else a later event has said more
            if agent.state != AgentLifecycleState.RUNNING.value:
                agent.previous = agent.state
                agent.state = AgentLifecycleState.RUNNING.value
            agent.activity = item.activity
            agent.doing = item if item.activity is not None else None
            agent.live_tokens += item.tokens
        message = item.detail if item.event != "text" else None
        return [self._agent_update(item.timestamp, item.agent_id, previous, message, item, by=team_id)]

    def snapshot(self, wants: Callable[[Routed], bool]) -> list[Routed]:
        """Each team's and agent's current update that ``wants`` takes, the most recently active first (at most
        ``SNAPSHOT_LIMIT`` of each): what a new connection is told before the live messages."""
        out: list[Routed] = []
        for team_id in list(reversed(self._teams)):
            team = self._teams[team_id]
            if team.updated is None:
                continue
            message = self._team_update(team.updated, team_id, team, team.message or "current state", remember=False)
            if wants(message):
                out.append(message)
                if len(out) >= SNAPSHOT_LIMIT:
                    break
        agents: list[Routed] = []
        for agent_id in list(reversed(self._agents)):
            agent = self._agents[agent_id]
            if agent.updated is None:
                continue
            message = self._agent_update(
                agent.updated, agent_id, agent.previous, agent.message, agent.doing, snapshot=True
            )
            if wants(message):
                agents.append(message)
                if len(agents) >= SNAPSHOT_LIMIT:
                    break
        return out + agents

    # -- agents -----------------------------------------------------------------------------

    def _agent(self, agent_id: str) -> _Agent:
        """The agent, now the most recently seen."""
        return self._agents.touch(agent_id, _Agent(name=f"agent {agent_id[:6]}"))

    def _peek(self, agent_id: str) -> _Agent:
        """The agent, its recency unchanged (snapshots and team members only read it)."""
        agent = self._agents.get(agent_id)
        return agent if agent is not None else self._agent(agent_id)

    def _lifecycle(self, agent_id: str, at: datetime) -> _Agent:
        agent = self._agent(agent_id)
        agent.lifecycle_at = at if agent.lifecycle_at is None else max(agent.lifecycle_at, at)
        return agent

    def _agent_update(
        self,
        at: datetime,
        agent_id: str,
        previous: str | None,
        message: str | None,
        item: LiveStreamItem | None = None,
        snapshot: bool = False,
        by: str | None = None,
    ) -> Routed:
        """The agent's update as it now stands; ``item``: the stream item it reports (or, in a snapshot, the one
        behind the current activity); ``by``: the flow run or team id it comes from (what names its run)."""
        agent = self._peek(agent_id)
        state = agent.state or AgentLifecycleState.INITIALIZED.value
        activity = agent.activity
        if snapshot:
            by = agent.by
        else:
            agent.updated, agent.by = at, by
            agent.message = message if message is not None else agent.message
        payload = AgentUpdatePayload(
            agent_id=agent_id,
            previous_state=previous,
            new_state=state,
            svg=agent_svg(agent.name, state, activity),
            animation_type=animation_for(state, activity),
            token_usage=agent.tokens + agent.live_tokens,
            message=message,
            streaming=item is not None and not snapshot,
            activity=activity,
            stream_event=item.event if item is not None and not snapshot else None,
            delta=item.delta if item is not None and not snapshot else None,
            step_id=item.step_id if item is not None else None,
            turn=item.turn if item is not None else None,
            tool=item.tool if item is not None else None,
        )
        text = AgentUpdateMessage(timestamp=at, payload=payload).model_dump_json()
        run = self._runs.get(by) if by is not None else None
        return Routed(text, agent_id=agent_id, team_ids=frozenset(agent.teams), run=run)

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
            return [
                self._team_update(
                    event.timestamp, team_id, team, f"run of {p.workflow_id} {p.workflow_version} started"
                )
            ]
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
            self._team_update(
                event.timestamp, team_id, team, f"step {p.step_id} {how}" + (f": {p.reason}" if p.reason else "")
            )
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
        return [self._team_update(event.timestamp, team_id, team, message)]

    def _team_update(self, at: datetime, team_id: str, team: _Team, message: str, remember: bool = True) -> Routed:
        """The team's update as it now stands (``remember``: it is the team's latest, for later snapshots)."""
        if remember:
            team.updated, team.message = at, message
        members = [
            TeamMemberView(
                agent_id=agent_id, name=self._peek(agent_id).name, role=role, state=self._peek(agent_id).state or ""
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
        text = TeamUpdateMessage(timestamp=at, payload=payload).model_dump_json()
        return Routed(text, team_ids=frozenset({team_id}), run=self._runs.get(team_id))
