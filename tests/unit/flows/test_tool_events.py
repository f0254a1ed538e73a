"""Tool calls as lifecycle events (``RunEvents.step_finished``): ids, order among the transitions, payloads. No server."""

from __future__ import annotations

import json
from typing import Any

from support.tool_work import DEFINITION, FAILED, slot_record, step_result, tool_work

from agentparty.flows.run_events import RunEvents
from agentparty.models.events import EVENT_TYPES, LIFECYCLE_EVENT_ADAPTER, BaseEvent, ToolCallEvent
from agentparty.models.graph import stable_id

RUN_KEY = "run-key-1"


def events_of(work: Any, flow_run_id: str = "flow-run-1") -> list[BaseEvent[Any]]:
    run = RunEvents(DEFINITION, RUN_KEY, flow_run_id, "ana")
    return run.step_finished(step_result(), [slot_record(work)])


def shape(events: list[BaseEvent[Any]]) -> list[str]:
    """Each event as type (and the state entered, or the call id) to compare orders at a glance."""
    out = []
    for event in events:
        payload = event.payload
        if isinstance(event, ToolCallEvent):
            out.append(f"{event.event_type}:{payload.call_id}")  # type: ignore[attr-defined]
        elif event.event_type == "agent_state_transition":
            out.append(f"transition:{payload.new_state}")  # type: ignore[attr-defined]
        else:
            out.append(event.event_type)
    return out


def test_tool_calls_come_between_running_and_the_end_of_the_engagement() -> None:
    assert shape(events_of(tool_work())) == [
        "agent_provisioned",
        "transition:running",
        "tool_called:c1",
        "tool_completed:c1",
        "tool_called:c2",
        "tool_completed:c2",
        "tool_called:c3",
        "tool_completed:c3",
        "tool_called:c4",
        "tool_completed:c4",
        "transition:completed",
        "step_completed",
    ]


def test_a_failed_engagement_reports_its_calls_before_it_failed_and_an_unfinished_one_after_running() -> None:
    failed = shape(events_of(tool_work(ends=FAILED)))
    assert failed.index("tool_completed:c4") + 1 == failed.index("transition:failed")
    unfinished = shape(events_of(tool_work(ends=None)))
    assert unfinished[1:3] == ["transition:running", "tool_called:c1"] and unfinished[-2:] == [
        "tool_completed:c4",
        "step_completed",
    ]


def test_ids_are_deterministic_per_run_slot_turn_and_call() -> None:
    first = [e for e in events_of(tool_work()) if isinstance(e, ToolCallEvent)]
    again = [e for e in events_of(tool_work(), flow_run_id="flow-run-2") if isinstance(e, ToolCallEvent)]
    assert [e.event_id for e in first] == [e.event_id for e in again], "a resume re-emits the same ids"
    assert len({e.event_id for e in first}) == 8
    assert first[0].event_id == stable_id("event", "tool_called", RUN_KEY, "research", "1", "c1")
    assert first[5].event_id == stable_id("event", "tool_completed", RUN_KEY, "research", "2", "c3")
    other_slot = [e for e in events_of(tool_work(slot="research[2]")) if isinstance(e, ToolCallEvent)]
    assert not {e.event_id for e in other_slot} & {e.event_id for e in first}


def test_payloads_carry_the_call_and_its_outcome() -> None:
    work = tool_work()
    tools = [e for e in events_of(work) if isinstance(e, ToolCallEvent)]
    called, completed = tools[2], tools[3]  # c2: the MCP fetch that timed out
    assert called.event_type == "tool_called" and completed.event_type == "tool_completed"
    assert called.payload.model_dump(exclude={"arguments"}) == {
        "agent_id": work.agent.id,
        "task_id": stable_id("task", RUN_KEY),
        "run_key": RUN_KEY,
        "step_id": "research",
        "turn": 1,
        "call_id": "c2",
        "tool": "fetch",
        "ok": None,
        "refused": False,
        "result": None,
        "duration_ms": None,
        "cached": False,
    }
    assert json.loads(called.payload.arguments) == {"query": "graph neural networks"}
    assert completed.payload.arguments == called.payload.arguments
    assert (completed.payload.ok, completed.payload.refused, completed.payload.result) == (
        False,
        False,
        "timed out after 30 s",
    )
    assert completed.payload.duration_ms == 30000
    refused, cached = tools[7].payload, tools[5].payload
    assert (refused.tool, refused.ok, refused.refused) == ("delete_all", False, True)
    assert (cached.call_id, cached.cached, cached.ok) == ("c3", True, True)
    for event in tools:
        assert event.correlation_id == "flow-run-1" and event.family == "agents"
        assert event.entity_id() == work.agent.id, "keyed by the agent: in order with its transitions"
        assert EVENT_TYPES[event.event_type] is ToolCallEvent
        assert LIFECYCLE_EVENT_ADAPTER.validate_json(event.model_dump_json()) == event


def test_an_engagement_without_turns_emits_no_tool_events() -> None:
    assert shape(events_of(tool_work(turns=()))) == [
        "agent_provisioned",
        "transition:running",
        "transition:completed",
        "step_completed",
    ]
