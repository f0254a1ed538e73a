"""The loop's callbacks as live stream items: what an agent does, as it happens, for ``/ws`` (extension).

:class:`LiveUpdates` is the :class:`~agentparty.tasks.agent_loop.LoopObserver` a
run's agent runner is given when the run streams (``flows/services.py``). Each
callback becomes one :class:`~agentparty.models.live_stream.LiveStreamItem`,
handed to ``send`` (the process's :class:`~agentparty.runtime.live_stream.LiveStream`,
which never waits), in the order the loop calls back: a turn's start, its text
deltas, its end, then each tool call's start (and approval wait) and end, then
the next turn. The activity each item leaves the agent in:

=========================  =========================================
callback                   activity
=========================  =========================================
``turn_started``, ``text`` thinking
``turn_finished``          using a tool (it asked for some), or None (its answer: idle)
``tool_started``,          using a tool
``tool_finished``
``waiting_for_approval``   waiting for approval
=========================  =========================================

A turn or call taken from its checkpoint (a resumed run) is reported again,
without text and with no tokens (they were spent by the run that made it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentparty.models.live_stream import AgentActivity, LiveStreamItem, StreamEvent
from agentparty.models.messages import AgentMessage
from agentparty.models.tools import ToolCall, ToolCallRecord, TurnRecord
from agentparty.runtime.masking import Masker, StreamMasker
from agentparty.tasks.agent_loop import LoopObserver, LoopPlace

logger = logging.getLogger("agentparty.live")


def call_outcome(record: ToolCallRecord) -> str:
    """``ok``, ``error`` or ``refused``: how a call ended, in one word."""
    return "refused" if record.refused else "ok" if record.ok else "error"


@dataclass(frozen=True)
class LiveUpdates(LoopObserver):
    """Turns loop callbacks into live stream items for ``send``; never raises into the loop."""

    send: Callable[[LiveStreamItem], Any]
    masker: Masker | None = None
    """``security.dataMasking``: text deltas are masked before they are sent, each turn's through a
    :class:`~agentparty.runtime.masking.StreamMasker` (a value may span two deltas)."""
    _streams: dict[tuple[str, str, str, int], StreamMasker] = field(default_factory=dict, repr=False)

    def _emit(
        self, place: LoopPlace, event: StreamEvent, activity: AgentActivity | None, turn: int, **fields: Any
    ) -> None:
        try:
            self.send(
                LiveStreamItem(
                    event=event,
                    activity=activity,
                    agent_id=place.agent_id,
                    agent_name=place.agent_name,
                    run_key=place.run_key,
                    step_id=place.slot,
                    turn=turn,
                    workflow_id=place.workflow_id,
                    owner_ref=place.owner_ref,
                    **fields,
                )
            )
        except Exception:  # a live view is never worth a failed step
            logger.exception("live stream: %s of %s not sent", event, place.agent_id)

    def turn_started(self, place: LoopPlace, turn: int) -> None:
        self._emit(place, "turn_started", "thinking", turn, detail=f"turn {turn}")

    def text(self, place: LoopPlace, turn: int, delta: str) -> None:
        if delta and self.masker is not None:
            stream = self._streams.setdefault((place.run_key, place.slot, place.agent_id, turn), self.masker.stream())
            delta = stream.feed(delta)
        if delta:
            self._emit(place, "text", "thinking", turn, delta=delta)

    def turn_finished(self, place: LoopPlace, record: TurnRecord, message: AgentMessage) -> None:
        stream = self._streams.pop((place.run_key, place.slot, place.agent_id, record.turn), None)
        held = stream.flush() if stream is not None else ""
        if held:
            self._emit(place, "text", "thinking", record.turn, delta=held)
        reused = " (from its checkpoint)" if record.cached else ""
        if record.final:
            detail = f"answered in turn {record.turn} by {record.model}{reused}"
        else:
            names = ", ".join(call.name for call in message.tool_calls or ())
            detail = f"turn {record.turn} asks for {names}{reused}"
        self._emit(
            place,
            "turn_finished",
            None if record.final else "using a tool",
            record.turn,
            final=record.final,
            tokens=0 if record.cached else record.input_tokens + record.output_tokens,
            detail=detail,
        )

    def tool_started(self, place: LoopPlace, turn: int, call: ToolCall) -> None:
        self._emit(
            place, "tool_started", "using a tool", turn, tool=call.name, call_id=call.id, detail=f"calling {call.name}"
        )

    def waiting_for_approval(self, place: LoopPlace, turn: int, call: ToolCall) -> None:
        detail = f"{call.name} waits for a human's approval"
        self._emit(
            place, "waiting_for_approval", "waiting for approval", turn, tool=call.name, call_id=call.id, detail=detail
        )

    def tool_finished(self, place: LoopPlace, turn: int, record: ToolCallRecord) -> None:
        took = " (from its checkpoint)" if record.cached else f" {record.duration_ms:.0f} ms"
        self._emit(
            place,
            "tool_finished",
            "using a tool",
            turn,
            tool=record.name,
            call_id=record.call_id,
            ok=record.ok,
            detail=f"{record.name} {call_outcome(record)}{took}",
        )
