"""The loop's callbacks as live stream items (``tasks/live_updates.py``), from a real loop on the simulated model.

The loop runs without checkpoints (outside a flow run), with a tool that needs an
approval; the items ``LiveUpdates`` hands on are compared with what the loop did.
Their way through a broker to ``/ws`` is ``tests/integration/api/test_live_stream.py``.
"""

from __future__ import annotations

import asyncio
from itertools import groupby
from pathlib import Path
from typing import Any

from agentparty.models import DEFAULT_MODEL_REGISTRY
from agentparty.models.live_stream import LiveStreamItem
from agentparty.models.messages import AgentMessage, SystemMessage, UserMessage
from agentparty.models.tools import PythonTool, ToolCallRecord, TurnRecord
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import Budget, BudgetLedger
from agentparty.runtime.human_input import ApprovalDecision
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.providers.base import CompletionRequest
from agentparty.runtime.providers.simulated import SimulatedProvider
from agentparty.tasks.agent_loop import AgentLoop, LoopLimits, LoopOutcome, LoopPlace, ObserverGroup
from agentparty.tasks.live_updates import LiveUpdates
from agentparty.tasks.toolbox import build_toolbox

PLACE = LoopPlace(run_key="run-1", step_id="research", slot="research", agent_id="agent-1", agent_name="researcher")


class Approves:
    async def decide(self, request: Any) -> ApprovalDecision:
        return ApprovalDecision(approve=True, approver="ana")


def run_loop(tmp_path: Path, send: Any, stream: bool = True) -> LoopOutcome:
    router = ModelRouter(
        registry=DEFAULT_MODEL_REGISTRY,
        providers={"simulated": SimulatedProvider()},
        breaker_store=SqliteBreakerStore(tmp_path / "breakers.sqlite"),
        ledger=BudgetLedger(tmp_path / "budgets.sqlite"),
    )
    request = CompletionRequest(
        model="simulated",
        messages=(
            SystemMessage(content="You look things up."),
            UserMessage(
                content="What is the weather in Lisbon? Give a long and careful answer.",
                user_id="ana",
                session_id="run-1",
            ),
        ),
        max_tokens=512,
        stream=stream,
    )

    async def scenario() -> LoopOutcome:
        toolbox = await build_toolbox(
            [PythonTool(function="support.agent_tools:lookup", needs_approval=True)],
            [],
            [],
            search_dirs=[],
            connector=None,
            configured_servers={},
        )
        loop = AgentLoop(router, Approves(), observer=ObserverGroup((LiveUpdates(send),)))
        place = LoopPlace(**{**PLACE.__dict__, "durable": False})
        limits = LoopLimits(max_turns=5, max_tool_calls=5, max_consecutive_errors=3, max_parallel_tool_calls=2)
        return await loop.run(request, toolbox, limits, place, (Budget("task", "run-1", 10**6),))

    return asyncio.run(scenario())


def test_a_loop_streams_turn_start_deltas_tool_call_result_then_answer(tmp_path: Path) -> None:
    items: list[LiveStreamItem] = []
    outcome = run_loop(tmp_path, items.append)

    expected: list[str] = []
    for turn in outcome.turns:  # each turn: its start, its text, its end, then each of its calls
        expected += ["turn_started", "text", "turn_finished"]
        expected += ["tool_started", "waiting_for_approval", "tool_finished"] * len(turn.tool_calls)
    assert [event for event, _ in groupby(i.event for i in items)] == expected
    assert len(outcome.turns) >= 2 and outcome.turns[-1].final and outcome.turns[0].tool_calls
    assert [i.turn for i in items if i.event == "turn_started"] == [t.turn for t in outcome.turns]
    last = outcome.turns[-1].turn
    answer = [i for i in items if i.turn == last and i.event == "text"]
    assert len(answer) > 1, "the simulated model streams its answer in several chunks"
    assert "".join(i.delta or "" for i in answer) == outcome.final.completion.text
    assert {(i.event, i.activity) for i in items} == {
        ("turn_started", "thinking"),
        ("text", "thinking"),
        ("turn_finished", "using a tool"),
        ("tool_started", "using a tool"),
        ("waiting_for_approval", "waiting for approval"),
        ("tool_finished", "using a tool"),
        ("turn_finished", None),
    }
    ends = [i for i in items if i.event == "turn_finished"]
    assert [e.final for e in ends] == [t.final for t in outcome.turns]
    assert ends[0].detail == "turn 1 asks for lookup" and ends[-1].detail == f"answered in turn {last} by simulated"
    assert [e.tokens for e in ends] == [t.input_tokens + t.output_tokens for t in outcome.turns]
    calls = [c for t in outcome.turns for c in t.tool_calls]
    finished = [i for i in items if i.event == "tool_finished"]
    assert [(i.tool, i.call_id, i.ok) for i in finished] == [(c.name, c.call_id, c.ok) for c in calls]
    assert all(i.detail is not None and i.detail.startswith("lookup ok ") for i in finished)
    assert all(
        (i.agent_id, i.agent_name, i.run_key, i.step_id) == ("agent-1", "researcher", "run-1", "research")
        for i in items
    )


def test_without_streaming_a_turn_has_no_deltas_and_a_failing_sink_never_fails_the_loop(tmp_path: Path) -> None:
    items: list[LiveStreamItem] = []
    run_loop(tmp_path, items.append, stream=False)
    assert "text" not in {i.event for i in items} and items[-1].final

    def broken(_item: LiveStreamItem) -> None:
        raise RuntimeError("the broker client fell over")

    assert run_loop(tmp_path, broken).final.completion.text


def test_a_replayed_turn_and_call_report_no_tokens_and_say_where_they_came_from() -> None:
    items: list[LiveStreamItem] = []
    updates = LiveUpdates(items.append)
    turn = TurnRecord(turn=3, model="simulated", input_tokens=40, output_tokens=9, cached=True, final=True)
    updates.turn_finished(PLACE, turn, AgentMessage(content="done", agent_id="agent-1", model="simulated"))
    record = ToolCallRecord(call_id="c1", name="lookup", arguments="{}", ok=False, refused=True, cached=True)
    updates.tool_finished(PLACE, 3, record)
    updates.text(PLACE, 3, "")  # nothing to say: no item
    assert [(i.event, i.tokens, i.detail) for i in items] == [
        ("turn_finished", 0, "answered in turn 3 by simulated (from its checkpoint)"),
        ("tool_finished", 0, "lookup refused (from its checkpoint)"),
    ]
    assert items[1].ok is False and items[1].activity == "using a tool"
