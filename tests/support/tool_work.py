"""Synthetic agent engagements whose loops called tools: what the events, graph, CLI and artifact tests feed in.

Built from the pure models only (no lifecycle, no provider), so each test says exactly which turns, calls and
transitions it hands to the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentparty.models import WorkflowDefinition
from agentparty.models.engagements import AUTOMATIC_APPROVER, AgentWork, LifecycleTransition, SlotRecord
from agentparty.models.events import AgentProvisionedPayload, AgentStateTransitionPayload
from agentparty.models.graph import Agent, AgentStateRecord, stable_id
from agentparty.models.run_results import StepResult, StepStatus
from agentparty.models.states import AgentLifecycleState
from agentparty.models.tools import ToolCallRecord, TurnRecord

START = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
RUNNING, COMPLETED, FAILED = AgentLifecycleState.RUNNING, AgentLifecycleState.COMPLETED, AgentLifecycleState.FAILED

DEFINITION = WorkflowDefinition.model_validate(
    {
        "id": "tooled",
        "name": "Tooled",
        "steps": [
            {"id": "research", "type": "task", "configuration": {"agent": "researcher", "prompt": "find it"}},
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }
)


def call(
    call_id: str,
    name: str = "search_docs",
    *,
    ok: bool = True,
    refused: bool = False,
    server: str | None = None,
    cached: bool = False,
    arguments: str = '{"query": "graph neural networks"}',
    result: str = "3 passages found",
    duration_ms: float = 3.0,
) -> ToolCallRecord:
    return ToolCallRecord(
        call_id=call_id,
        name=name,
        source="mcp" if server else "python",
        server=server,
        arguments=arguments,
        ok=ok,
        refused=refused,
        result=result,
        duration_ms=duration_ms,
        cached=cached,
    )


def sample_turns() -> tuple[TurnRecord, ...]:
    """Three turns: two calls (one Python tool that answers, one MCP tool that errors), then a Python call that
    answers and one refused, then the final answer. ``search_docs`` is called twice, from the same source."""
    return (
        TurnRecord(
            turn=1,
            model="gpt-4o",
            input_tokens=120,
            output_tokens=45,
            tool_calls=[
                call("c1"),
                call("c2", "fetch", ok=False, server="web", result="timed out after 30 s", duration_ms=30000),
            ],
        ),
        TurnRecord(
            turn=2,
            model="gpt-4o",
            input_tokens=300,
            output_tokens=60,
            cached=True,
            tool_calls=[call("c3", cached=True), call("c4", "delete_all", ok=False, refused=True, result="refused")],
        ),
        TurnRecord(turn=3, model="gpt-4o-mini", input_tokens=500, output_tokens=90, final=True),
    )


def transition(
    agent_id: str, slot: str, before: AgentLifecycleState, after: AgentLifecycleState, minute: int
) -> LifecycleTransition:
    at = START + timedelta(minutes=minute)
    entered = AgentStateRecord(id=stable_id("state", agent_id, slot, after.value), name=after, timestamp=at)
    left = AgentStateRecord(id=stable_id("state", agent_id, slot, before.value), name=before, timestamp=at)
    event = AgentStateTransitionPayload(
        agent_id=agent_id,
        previous_state=before.value,
        new_state=after.value,
        transition_approver=AUTOMATIC_APPROVER,
    )
    return LifecycleTransition(event=event, record=entered, left=left)


def tool_work(
    slot: str = "research",
    turns: tuple[TurnRecord, ...] | None = None,
    ends: AgentLifecycleState | None = COMPLETED,
    agent_name: str = "researcher",
) -> AgentWork:
    """One engagement: provisioned, initialized → running, the turns, then running → ``ends`` (none if None)."""
    agent = Agent(id=stable_id("agent", agent_name), name=agent_name, model="gpt-4o", status=ends or RUNNING)
    moves = [transition(agent.id, slot, AgentLifecycleState.INITIALIZED, RUNNING, 0)]
    if ends is not None:
        moves.append(transition(agent.id, slot, RUNNING, ends, 5))
    return AgentWork(
        agent=agent,
        slot=slot,
        role="research",
        template=None,
        version=None,
        capabilities={"web_research": 0.6},
        used=("web_research",),
        transitions=tuple(moves),
        input_tokens=920,
        output_tokens=195,
        provisioned=AgentProvisionedPayload(
            agent_id=agent.id, template_id="ad-hoc", template_version="0.0.0", provisioner="workflow"
        ),
        turns=sample_turns() if turns is None else turns,
    )


def slot_record(work: AgentWork, completed: bool = True) -> SlotRecord:
    return SlotRecord(work.slot, completed, {"answer": 42} if completed else None, "gpt-4o", False, (work,))


def step_result(step_id: str = "research", turns: tuple[TurnRecord, ...] | None = None) -> StepResult:
    return StepResult(
        step_id=step_id,
        status=StepStatus.COMPLETED,
        output={"answer": 42},
        attempts=1,
        tokens=1115,
        model="gpt-4o",
        turns=list(sample_turns() if turns is None else turns),
    )
