"""Agent lifecycle under template governance.

Every state change goes through :data:`AGENT_LIFECYCLE_MACHINE` (an illegal one
raises ``IllegalTransition``). The template's ``governance_rules`` decide per
transition whether it is ``automatic`` or needs a ``human``: then the Prefect
flow run pauses for a typed :class:`ApprovalDecision` in the Prefect UI
(approve or reject with a reason; the approver is recorded). No answer within
the rule's timeout refuses the transition, and the step fails with
:class:`TransitionRefused`, so the run goes on as its fallback action says.

Each applied transition yields the data of an ``AgentStateTransitionEvent`` and
an ``AgentState`` record (duration and tokens of the state being left, reason,
approver): a :class:`~agentparty.models.engagements.LifecycleTransition`. A lifecycle is one
*engagement* of a persistent agent (one run, one step slot); its AgentState ids
derive from (agent, engagement, sequence number), so a resumed run that replays
the engagement writes the same states rather than new ones. Transitions also
stay *pending* until :meth:`AgentLifecycle.drain`: the agent step's result
carries them to the graph writer (and, being persisted with it, carries them
again when a resumed run reuses the result).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from prefect.context import FlowRunContext
from prefect.flow_runs import apause_flow_run

from agentparty.models import AGENT_LIFECYCLE_MACHINE, AgentLifecycleState
from agentparty.models.engagements import AUTOMATIC_APPROVER, LifecycleTransition
from agentparty.models.events import AgentProvisionedPayload, AgentStateTransitionPayload
from agentparty.models.governance import ApprovalMode, GovernanceRules
from agentparty.models.graph import AgentStateMetrics, AgentStateRecord, stable_id
from agentparty.models.step_errors import NonRetryableError
from agentparty.models.tools import ToolCallRecord
from agentparty.runtime.human_input import ApprovalDecision, ToolCallDecision
from agentparty.runtime.providers.base import Completion

logger = logging.getLogger("agentparty.lifecycle")


class TransitionRefused(NonRetryableError):
    """A human rejected the transition, or nobody answered within the rule's timeout."""


@dataclass(frozen=True)
class ApprovalRequest:
    agent_id: str
    agent_name: str
    source: AgentLifecycleState
    target: AgentLifecycleState
    reason: str
    timeout: int
    engagement: str = ""

    @property
    def key(self) -> str:
        """Pause key: one per engagement and transition, so a resumed run asks again only if it was never answered."""
        where = hashlib.sha256(f"{self.agent_id}|{self.engagement}".encode()).hexdigest()[:10]
        return f"approve-{where}-{self.source.value}-to-{self.target.value}"

    def summary(self) -> str:
        return f"agent {self.agent_name}: {self.source.value} → {self.target.value}"

    def description(self) -> str:
        """What the approver reads (Prefect UI form, ``GET /approvals``): who, which transition, and why."""
        why = f": {self.reason}" if self.reason else ""
        return (
            f"Agent {self.agent_name} ({self.agent_id}) asks to go from {self.source.value} to {self.target.value}{why}"
        )


@dataclass(frozen=True)
class ToolApprovalRequest:
    """A call to a tool that needs a human: which agent, which tool, with which arguments (redacted)."""

    agent_id: str
    agent_name: str
    tool: str
    arguments: str
    """The call's arguments as JSON, redacted and shortened (``tasks.toolbox.shown_arguments``)."""
    timeout: int
    position: str
    """Where the call is (run, slot, turn, index): one pause per call, so a resumed run asks again only if unanswered."""

    @property
    def key(self) -> str:
        where = hashlib.sha256(f"{self.agent_id}|{self.position}".encode()).hexdigest()[:10]
        return f"tool-{where}-{self.tool}"

    def description(self) -> str:
        return f"Agent {self.agent_name} ({self.agent_id}) asks to call the tool {self.tool} with {self.arguments}"

    def summary(self) -> str:
        return f"{self.agent_name}: tool {self.tool}"


class Approver(Protocol):
    async def decide(self, request: ApprovalRequest | ToolApprovalRequest) -> ApprovalDecision | None:
        """The decision, or None when nobody answered within ``request.timeout``."""
        ...


class PrefectApprover:
    """Pauses the current flow run and waits for an :class:`ApprovalDecision` from the Prefect UI or API."""

    def __init__(self, poll_interval: int = 1) -> None:
        self.poll_interval = poll_interval
        self._pauses: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        """One pause at a time per flow run: a run is paused or not, so two approvals asked at once (parallel
        tool calls, fan-out items) take turns instead of overwriting each other's pause."""

    async def decide(self, request: ApprovalRequest | ToolApprovalRequest) -> ApprovalDecision | None:
        if FlowRunContext.get() is None:
            raise TransitionRefused(
                f"{request.summary()} needs a human approval, which needs a Prefect flow run to pause"
            )
        run = FlowRunContext.get()
        run_id = str(run.flow_run.id) if run is not None and run.flow_run is not None else ""
        lock = self._pauses.get(run_id)
        if lock is None:
            lock = self._pauses[run_id] = asyncio.Lock()
        async with lock:
            return await self._pause(request)

    async def _pause(self, request: ApprovalRequest | ToolApprovalRequest) -> ApprovalDecision | None:
        logger.warning("%s needs approval; waiting up to %ss (key %s)", request.summary(), request.timeout, request.key)
        try:
            asked = (
                ToolCallDecision.with_initial_data(
                    description=request.description(), tool=request.tool, arguments=request.arguments
                )
                if isinstance(request, ToolApprovalRequest)
                else ApprovalDecision.with_initial_data(description=request.description())
            )
            return await apause_flow_run(
                wait_for_input=asked,
                timeout=request.timeout,
                key=request.key,
                poll_interval=self.poll_interval,
            )
        except Exception as exc:  # Prefect raises when the pause times out
            logger.warning("approval %s not given within %ss (%s)", request.key, request.timeout, type(exc).__name__)
            return None


@dataclass
class AgentLifecycle:
    agent_id: str
    agent_name: str
    governance: GovernanceRules
    approver: Approver
    clock: Callable[[], float] = time.time
    engagement: str = ""
    """Where the agent works this time (run key and step slot); part of every state id."""
    state: AgentLifecycleState = AgentLifecycleState.INITIALIZED
    entered_at: float = field(default=0.0)
    tokens_in_state: int = 0
    metrics_in_state: AgentStateMetrics = field(default_factory=AgentStateMetrics)
    """What the agent did in the current state so far (its AgentState's ``metrics`` when it leaves it)."""
    _current: AgentStateRecord | None = None
    _sequence: int = 0
    _pending: list[LifecycleTransition] = field(default_factory=list)
    provisioned: AgentProvisionedPayload | None = None
    """The provisioning of this engagement until a step result carries it (for the AgentProvisioned event)."""

    def __post_init__(self) -> None:
        self.entered_at = self.entered_at or self.clock()
        self._current = self._state_record(self.state, "provisioned")

    def _state_record(self, name: AgentLifecycleState, reason: str) -> AgentStateRecord:
        record = AgentStateRecord(
            id=stable_id("agent-state", self.agent_id, self.engagement, str(self._sequence)),
            name=name,
            timestamp=datetime.fromtimestamp(self.clock(), UTC),
            transition_reason=reason,
        )
        self._sequence += 1
        return record

    @property
    def current(self) -> AgentStateRecord:
        """The state the agent is in now (its duration and tokens so far are filled in when it leaves)."""
        assert self._current is not None
        return self._current

    def drain(self) -> tuple[LifecycleTransition, ...]:
        """Transitions applied since the last drain, oldest first (the step result carries them to the graph)."""
        pending, self._pending = tuple(self._pending), []
        return pending

    def pending(self) -> tuple[LifecycleTransition, ...]:
        return tuple(self._pending)

    def charge(self, tokens: int) -> None:
        """Tokens used in the current state (reported when the agent leaves it)."""
        self.tokens_in_state += tokens

    def use(self, usage: AgentStateMetrics) -> None:
        """Model calls, tokens and tool calls of the current state (the loop reports each turn's); the tokens are
        charged too."""
        self.metrics_in_state = self.metrics_in_state.plus(usage)
        self.charge(usage.input_tokens + usage.output_tokens)

    async def transition(
        self, target: AgentLifecycleState, reason: str = "", *, notes: str = ""
    ) -> LifecycleTransition:
        """Move to ``target`` under the governance rules; ``notes`` summarise the state being left (its AgentState
        node's ``notes``: e.g. the conversation the agent had while running)."""
        AGENT_LIFECYCLE_MACHINE.check(self.state, target)
        rule = self.governance.rule_for(self.state.value, target.value)
        approver = AUTOMATIC_APPROVER
        if rule.approval is ApprovalMode.HUMAN:
            timeout = rule.effective_timeout or 0
            decision = await self.approver.decide(
                ApprovalRequest(self.agent_id, self.agent_name, self.state, target, reason, timeout, self.engagement)
            )
            if decision is None:
                raise TransitionRefused(
                    f"agent {self.agent_name}: {self.state.value} → {target.value} needs human approval; none within {timeout}s"
                )
            if not decision.approve:
                raise TransitionRefused(
                    f"agent {self.agent_name}: {self.state.value} → {target.value} rejected by {decision.approver}"
                    + (f": {decision.reason}" if decision.reason else "")
                )
            approver = f"user:{decision.approver}"
            reason = decision.reason or reason
        now = self.clock()
        duration = max(0, int(now - self.entered_at))
        metrics = self.metrics_in_state
        assert self._current is not None
        update: dict[str, object] = {"duration": duration, "token_count": self.tokens_in_state, "metrics": metrics}
        if notes:
            update["notes"] = notes
        left = self._current.model_copy(update=update)
        event = AgentStateTransitionPayload(
            agent_id=self.agent_id,
            previous_state=self.state.value,
            new_state=target.value,
            transition_reason=reason,
            transition_approver=approver,
            token_count=self.tokens_in_state,
            duration=duration,
            metrics=metrics,
        )
        entered = self._state_record(target, reason)
        applied = LifecycleTransition(event=event, record=entered, left=left)
        self._pending.append(applied)
        self.state, self.entered_at, self.tokens_in_state, self._current = target, now, 0, entered
        self.metrics_in_state = AgentStateMetrics()
        return applied


def call_usage(completion: Completion) -> AgentStateMetrics:
    """One model call, as the agent's state counts it."""
    return AgentStateMetrics(requests=1, input_tokens=completion.input_tokens, output_tokens=completion.output_tokens)


def tool_usage(records: Sequence[ToolCallRecord]) -> AgentStateMetrics:
    """One turn's tool calls, as the agent's state counts them (errors apart from refusals, like ``USED_TOOL``)."""
    return AgentStateMetrics(
        tool_calls=len(records),
        errors=sum(1 for r in records if not r.ok and not r.refused),
        refused=sum(1 for r in records if r.refused),
    )
