"""What a run streams live while an agent works: turns, text deltas, tool calls (extension; not durable).

A run tells the live stream what its agents' loops do as it happens (one
:class:`LiveStreamItem` per turn start, text delta, turn end, tool call start,
approval wait and tool call end). Items travel on their own broker topic,
beside the event topics but outside the event outbox: losing one loses a
fragment of a live view, never a record. The API turns each into an
``agent_update`` for ``/ws`` (``api/live_view.py``).

The *activity* is what an agent does within its lifecycle state (seed 000's
states say only that it runs): thinking (a model turn), using a tool, waiting for
approval of a tool call; None when it does none of these (idle).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ._base import NonEmptyStr, SeedModel, UtcDatetime, utc_now

AgentActivity = Literal["thinking", "using a tool", "waiting for approval"]
"""What an agent is doing within its lifecycle state (None: idle)."""

StreamEvent = Literal["turn_started", "text", "turn_finished", "tool_started", "waiting_for_approval", "tool_finished"]
"""What happened in the loop, one per :class:`~agentparty.tasks.agent_loop.LoopObserver` callback."""


class LiveStreamItem(SeedModel):
    """One thing an agent's loop did, as the run streams it (keyed by ``agent_id``: one agent's items keep order)."""

    event: StreamEvent
    activity: AgentActivity | None
    """What the agent is doing once this happened (None: idle, e.g. after its answer)."""
    agent_id: NonEmptyStr
    agent_name: str
    run_key: NonEmptyStr
    step_id: NonEmptyStr
    """The step slot: the step, or ``step[item]`` for a fan-out item."""
    turn: Annotated[int, Field(ge=1)]
    delta: str | None = None
    """``text``: the fragment of the answer the provider just streamed."""
    tool: str | None = None
    """``tool_started``, ``waiting_for_approval``, ``tool_finished``: the tool."""
    call_id: str | None = None
    ok: bool | None = None
    """``tool_finished``: the tool answered (False: an error or a refusal the model reads)."""
    final: bool = False
    """``turn_finished``: the turn is the agent's answer (no tool calls)."""
    tokens: Annotated[int, Field(ge=0)] = 0
    """``turn_finished``: the turn's input plus output tokens (0 for a turn taken from its checkpoint)."""
    detail: str | None = None
    """A short line for people: ``turn 2``, ``search_docs ok 3 ms``, ``answered in turn 3``."""
    workflow_id: str | None = None
    """The workflow the run runs (None outside one): with ``owner_ref``, what ``/ws`` filters a key limited by
    its permission's conditions on, without waiting for the run's events (they come through the outbox)."""
    owner_ref: str | None = None
    """The API key that started the run (:func:`~agentparty.models.access.owner_ref` of its name, never the key)."""
    timestamp: UtcDatetime = Field(default_factory=utc_now)
