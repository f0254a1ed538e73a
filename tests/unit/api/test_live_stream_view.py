"""Live stream items on ``/ws`` (the unit half: no broker, no server): the view, the looks, the snapshot, the feed.

Stream items (a run's turns, deltas and tool calls) and the lifecycle events that
arrive after them are fed to the view in the order a reader could see them. The
real path (a run streaming through a Kafka-protocol broker to the API under
uvicorn and to WebSocket clients) is ``tests/integration/api/test_live_stream.py``.
"""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

from agentparty.api.agent_svg import ACTIVITY_LOOKS, STATE_LOOKS, agent_svg, animation_for
from agentparty.api.live import LiveFeed
from agentparty.api.live_view import LiveView, Routed
from agentparty.models.config import KafkaConfig
from agentparty.models.events import (
    AgentProvisionedEvent,
    AgentProvisionedPayload,
    AgentStateTransitionEvent,
    AgentStateTransitionPayload,
)
from agentparty.models.live_stream import LiveStreamItem
from agentparty.models.run_history import team_id_for

T0 = datetime(2025, 3, 12, 18, 0, tzinfo=UTC)
AGENT = "agent-1"


def item(event: str, activity: str | None, seconds: int, **fields: Any) -> LiveStreamItem:
    return LiveStreamItem.model_validate(
        {
            "event": event,
            "activity": activity,
            "agent_id": AGENT,
            "agent_name": "researcher@1.0.0",
            "run_key": "run-1",
            "step_id": "research",
            "turn": 1,
            "timestamp": T0 + timedelta(seconds=seconds),
            **fields,
        }
    )


def stream_of_one_turn_with_a_tool() -> list[LiveStreamItem]:
    return [
        item("turn_started", "thinking", 1, detail="turn 1"),
        item("text", "thinking", 2, delta="Looking "),
        item("text", "thinking", 3, delta="it up."),
        item("turn_finished", "using a tool", 4, tokens=30, detail="turn 1 asks for lookup"),
        item("tool_started", "using a tool", 5, tool="lookup", call_id="c1", detail="calling lookup"),
        item("waiting_for_approval", "waiting for approval", 6, tool="lookup", call_id="c1"),
        item("tool_finished", "using a tool", 7, tool="lookup", call_id="c1", ok=True, detail="lookup ok 3 ms"),
        item("turn_started", "thinking", 8, turn=2, detail="turn 2"),
        item("text", "thinking", 9, turn=2, delta="Sunny."),
        item("turn_finished", None, 10, turn=2, tokens=45, final=True, detail="answered in turn 2 by simulated"),
    ]


def transition(previous: str, new: str, seconds: int, tokens: int = 0) -> AgentStateTransitionEvent:
    return AgentStateTransitionEvent(
        correlation_id="run-1",
        timestamp=T0 + timedelta(seconds=seconds),
        payload=AgentStateTransitionPayload(
            agent_id=AGENT,
            previous_state=previous,
            new_state=new,
            transition_approver="system:auto",
            token_count=tokens,
            transition_reason=f"to {new}",
        ),
    )


def provisioned(seconds: int) -> AgentProvisionedEvent:
    payload = AgentProvisionedPayload(agent_id=AGENT, template_id="t", template_version="1.0.0", provisioner="engine")
    return AgentProvisionedEvent(correlation_id="run-1", timestamp=T0 + timedelta(seconds=seconds), payload=payload)


def payloads(messages: list[Routed]) -> list[dict[str, Any]]:
    return [json.loads(m.text)["payload"] for m in messages]


# -- the looks --------------------------------------------------------------------------------------


def test_each_activity_has_its_own_look_over_the_states_colour() -> None:
    assert set(ACTIVITY_LOOKS) == {"thinking", "using a tool", "waiting for approval"}
    assert [animation_for("running", a) for a in (None, "thinking", "using a tool", "waiting for approval")] == [  # type: ignore[arg-type]
        "pulse",
        "pulse",
        "spin",
        "fade",
    ]
    running = STATE_LOOKS["running"]
    glyphs = set()
    for activity in ACTIVITY_LOOKS:
        root = ET.fromstring(agent_svg("researcher", "running", activity))  # type: ignore[arg-type]
        assert root.get("data-activity") == activity and root.get("data-state") == "running"
        assert root.get("data-animation") == animation_for("running", activity)  # type: ignore[arg-type]
        assert f'fill="{running.fill}"' in agent_svg("researcher", "running", activity)  # type: ignore[arg-type]
        glyphs.add(root.find("{http://www.w3.org/2000/svg}g/{http://www.w3.org/2000/svg}path").get("d"))  # type: ignore[union-attr]
    assert len(glyphs) == 3 and running.glyph not in glyphs
    assert ET.fromstring(agent_svg("researcher", "running")).get("data-activity") is None


# -- the view ---------------------------------------------------------------------------------------


def test_stream_items_become_streaming_agent_updates_in_order_with_their_activity() -> None:
    view = LiveView()
    messages = [m for i in stream_of_one_turn_with_a_tool() for m in view.stream_messages(i)]
    updates = payloads(messages)
    assert [u["stream_event"] for u in updates] == [i.event for i in stream_of_one_turn_with_a_tool()]
    assert all(u["streaming"] and u["new_state"] == "running" and u["step_id"] == "research" for u in updates)
    assert [u["previous_state"] for u in updates[:2]] == [None, "running"]
    assert [u["activity"] for u in updates] == [i.activity for i in stream_of_one_turn_with_a_tool()]
    assert "".join(u["delta"] or "" for u in updates) == "Looking it up.Sunny."
    assert [u["message"] for u in updates[1:3]] == [None, None]  # a delta is its text, not a line of its own
    assert [u["tool"] for u in updates[4:7]] == ["lookup"] * 3
    assert [u["animation_type"] for u in updates[3:7]] == ["spin", "spin", "fade", "spin"]
    assert updates[-1]["animation_type"] == "pulse" and updates[-1]["activity"] is None  # running, idle
    assert [u["token_usage"] for u in updates] == [0, 0, 0, 30, 30, 30, 30, 30, 30, 75]
    for update in updates:
        root = ET.fromstring(update["svg"])
        assert (
            root.get("data-activity") == update["activity"] and root.get("data-animation") == update["animation_type"]
        )
    assert all(m.agent_id == AGENT and m.team_ids == {team_id_for("run-1")} for m in messages)


def test_lifecycle_events_after_the_stream_keep_the_final_state_and_count_tokens_once() -> None:
    """A step's lifecycle events are emitted when it ends, after its stream: they do not charge the tokens again,
    a late stream item older than them changes nothing, and the next engagement's items do."""
    view = LiveView()
    for i in stream_of_one_turn_with_a_tool():
        view.stream_messages(i)
    durable = [provisioned(11), transition("initialized", "running", 11), transition("running", "completed", 11, 75)]
    updates = payloads([m for e in durable for m in view.messages_for(e)])
    assert [(u["previous_state"], u["new_state"], u["streaming"]) for u in updates] == [
        (None, "initialized", False),
        ("initialized", "running", False),
        ("running", "completed", False),
    ]
    assert updates[-1]["token_usage"] == 75 and updates[-1]["activity"] is None
    assert updates[-1]["animation_type"] == "glow"

    late = payloads(view.stream_messages(item("text", "thinking", 9, turn=2, delta="Sunny.")))[0]
    assert late["new_state"] == "completed" and late["activity"] is None and late["delta"] == "Sunny."
    late_end = payloads(view.stream_messages(item("turn_finished", None, 10, turn=2, tokens=45, final=True)))[0]
    assert late_end["token_usage"] == 75, "the transition charged that turn already"
    next_step = payloads(view.stream_messages(item("turn_started", "thinking", 20, detail="turn 1")))[0]
    assert (next_step["previous_state"], next_step["new_state"], next_step["activity"]) == (
        "completed",
        "running",
        "thinking",
    )
    failed = payloads(view.messages_for(transition("running", "failed", 21)))[0]
    assert failed["activity"] is None and failed["animation_type"] == "shake"


def test_the_snapshot_is_each_agents_current_state_and_activity_filtered_like_the_connection() -> None:
    view = LiveView()
    stream = stream_of_one_turn_with_a_tool()
    for i in stream[:5]:  # calling the tool
        view.stream_messages(i)
    other = item("turn_started", "thinking", 6, detail="turn 1").model_copy(update={"agent_id": "agent-2"})
    view.stream_messages(other)

    everything = payloads(view.snapshot(lambda _m: True))
    assert [u["agent_id"] for u in everything] == ["agent-2", AGENT]  # the most recently active first
    mine = payloads(view.snapshot(lambda m: m.agent_id == AGENT))
    assert len(mine) == 1
    assert {
        k: mine[0][k] for k in ("new_state", "activity", "tool", "turn", "streaming", "message", "token_usage")
    } == {
        "new_state": "running",
        "activity": "using a tool",
        "tool": "lookup",
        "turn": 1,
        "streaming": False,
        "message": "calling lookup",
        "token_usage": 30,
    }
    assert mine[0]["stream_event"] is None and mine[0]["delta"] is None
    assert json.loads(view.snapshot(lambda m: m.agent_id == AGENT)[0].text)["timestamp"].startswith(
        "2025-03-12T18:00:05"
    )


# -- the feed: a late subscriber hears the current state first, then what follows --------------------


def test_a_late_subscriber_gets_the_current_state_first_then_the_live_messages() -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        feed = LiveFeed(KafkaConfig(bootstrap_servers=["127.0.0.1:9"], group_id="unused"), "unused.")  # never started
        stream = stream_of_one_turn_with_a_tool()
        early = feed.subscribe()
        for i in stream[:5]:
            feed.show_item(i)
        await asyncio.sleep(0)
        late = feed.subscribe()
        for i in stream[5:]:
            feed.show_item(i)
        await asyncio.sleep(0)
        drained = lambda q: [json.loads(q.get_nowait())["payload"] for _ in range(q.qsize())]  # noqa: E731
        return drained(early.queue), drained(late.queue)

    early, late = asyncio.run(scenario())
    assert [u["stream_event"] for u in early] == [i.event for i in stream_of_one_turn_with_a_tool()]
    assert late[0]["streaming"] is False and late[0]["activity"] == "using a tool" and late[0]["tool"] == "lookup"
    assert late[1:] == early[5:]
