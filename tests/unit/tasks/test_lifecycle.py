"""Lifecycle transitions under template governance, with the data the graph and event writers receive."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from agentparty.models import AgentLifecycleState as S
from agentparty.models import IllegalTransition
from agentparty.models.engagements import AUTOMATIC_APPROVER
from agentparty.models.governance import GovernanceRules
from agentparty.runtime.human_input import ApprovalDecision
from agentparty.tasks.lifecycle import AgentLifecycle, ApprovalRequest, TransitionRefused


@dataclass
class FixedApprover:
    """Answers every approval request the same way (the Prefect path is tested end to end elsewhere)."""

    decision: ApprovalDecision | None
    asked: list[ApprovalRequest]

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision | None:
        self.asked.append(request)
        return self.decision


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


GOVERNANCE = GovernanceRules.model_validate(
    {
        "transitions": {
            "initialized_to_running": {"approval": "automatic"},
            "running_to_paused": {"approval": "human", "timeout": 60},
        }
    }
)


def lifecycle(decision: ApprovalDecision | None = None) -> tuple[AgentLifecycle, FixedApprover, Clock]:
    clock = Clock()
    approver = FixedApprover(decision, [])
    return AgentLifecycle("agent-1", "writer", GOVERNANCE, approver, clock=clock), approver, clock


def test_automatic_transitions_record_duration_tokens_and_approver() -> None:
    agent, approver, clock = lifecycle()
    asyncio.run(agent.transition(S.RUNNING, "step draft"))
    clock.now += 42
    agent.charge(120)
    done = asyncio.run(agent.transition(S.COMPLETED, "answered"))
    assert not approver.asked
    assert [t.event.new_state for t in agent.pending()] == ["running", "completed"]
    assert done.event.previous_state == "running" and done.event.duration == 42 and done.event.token_count == 120
    assert done.event.transition_approver == AUTOMATIC_APPROVER
    assert done.left.name is S.RUNNING and done.left.duration == 42 and done.left.token_count == 120
    assert done.record.name is S.COMPLETED and done.record.transition_reason == "answered"


def test_illegal_transition_is_refused_before_governance() -> None:
    agent, approver, _ = lifecycle()
    with pytest.raises(IllegalTransition):
        asyncio.run(agent.transition(S.PAUSED))
    assert not agent.pending() and not approver.asked


def test_human_approval_records_the_approver() -> None:
    agent, approver, _ = lifecycle(ApprovalDecision(approve=True, reason="maintenance", approver="ana"))
    asyncio.run(agent.transition(S.RUNNING))
    paused = asyncio.run(agent.transition(S.PAUSED, "asked by scheduler"))
    assert approver.asked[0].timeout == 60 and approver.asked[0].target is S.PAUSED
    assert paused.event.transition_approver == "user:ana" and paused.event.transition_reason == "maintenance"
    assert agent.state is S.PAUSED


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        (ApprovalDecision(approve=False, reason="not now", approver="bo"), "rejected by bo: not now"),
        (None, "none within 60s"),
    ],
)
def test_rejected_or_unanswered_transition_is_refused(decision: ApprovalDecision | None, message: str) -> None:
    agent, _, _ = lifecycle(decision)
    asyncio.run(agent.transition(S.RUNNING))
    with pytest.raises(TransitionRefused, match=message):
        asyncio.run(agent.transition(S.PAUSED))
    assert agent.state is S.RUNNING and len(agent.pending()) == 1
