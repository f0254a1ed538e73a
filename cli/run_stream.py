"""``agentparty run -v``: what each agent's loop does, printed as it happens (the in-process run's own observer).

The model's text is written as it streams, on a line of its own that names the
step slot and turn (``    ┆ research · turn 1: …``). Another agent's text, or a tool
call, starts a new line, so agents working in parallel stay readable: a line
holds one slot's text, and a slot that resumes writing after another says its
name again. Tool activity is one line each (``→ calling``, ``← ok 3 ms``,
``… waits for approval``). The step's summary lines still follow when it ends.
A log line (Prefect's own, shown with ``-v``, on stderr) closes an open text line
first, so it never lands in the middle of one: the text goes on, named again, below it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from dataclasses import dataclass, field
from typing import TextIO

from agentparty.models.messages import AgentMessage
from agentparty.models.tools import ToolCall, ToolCallRecord, TurnRecord
from agentparty.tasks.agent_loop import LoopObserver, LoopPlace
from agentparty.tasks.live_updates import call_outcome

PREFIX = "    ┆ "


@dataclass
class ConsoleStream(LoopObserver):
    """Prints an in-process run's loop activity to ``out`` (stdout), text deltas as they come."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    _open: tuple[str, int] | None = None
    """The (slot, turn) whose text line is open, if any."""
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _closer: logging.Filter = field(init=False)

    def __post_init__(self) -> None:
        self._closer = _LineCloser(self)

    def end_line(self) -> None:
        """Close an open text line (before anything else prints: the step's own summary)."""
        with self._lock:
            self._close()

    def close(self) -> None:
        """Close an open line and stop watching log records (the run is over)."""
        self.end_line()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._closer)

    def _close(self) -> None:
        if self._open is not None:
            self.out.write("\n")
            self._open = None
        self.out.flush()

    def _line(self, place: LoopPlace, text: str) -> None:
        with self._lock:
            self._close()
            self.out.write(f"{PREFIX}{place.slot}: {text}\n")
            self.out.flush()

    def turn_started(self, place: LoopPlace, turn: int) -> None:
        self._line(place, f"turn {turn} · thinking")

    def text(self, place: LoopPlace, turn: int, delta: str) -> None:
        if not delta:
            return
        with self._lock:
            if self._open != (place.slot, turn):
                self._close()
                for handler in logging.getLogger().handlers:  # Prefect's console handler exists once a run starts
                    handler.addFilter(self._closer)  # (once: a filter already there is not added again)
                self.out.write(f"{PREFIX}{place.slot} · turn {turn}: ")
                self._open = (place.slot, turn)
            self.out.write(delta.replace("\n", "\n" + PREFIX + "  "))
            self.out.flush()

    def turn_finished(self, place: LoopPlace, record: TurnRecord, message: AgentMessage) -> None:
        reused = " (from its checkpoint)" if record.cached else ""
        tokens = f"{record.input_tokens}+{record.output_tokens} tokens"
        if record.final:
            self._line(place, f"turn {record.turn} · answered · {tokens}{reused}")
        else:
            calls = ", ".join(call.name for call in message.tool_calls or ())
            self._line(place, f"turn {record.turn} · asks for {calls} · {tokens}{reused}")

    def tool_started(self, place: LoopPlace, turn: int, call: ToolCall) -> None:
        self._line(place, f"→ calling {call.name}")

    def waiting_for_approval(self, place: LoopPlace, turn: int, call: ToolCall) -> None:
        self._line(place, f"… {call.name} waits for a human's approval")

    def tool_finished(self, place: LoopPlace, turn: int, record: ToolCallRecord) -> None:
        took = "(from its checkpoint)" if record.cached else f"{record.duration_ms:.0f} ms"
        self._line(place, f"← {record.name} {call_outcome(record)} {took}")


class _LineCloser(logging.Filter):
    """Closes the console's open text line before a log record is written (and lets the record through)."""

    def __init__(self, console: ConsoleStream) -> None:
        super().__init__()
        self.console = console

    def filter(self, record: logging.LogRecord) -> bool:
        with contextlib.suppress(OSError, ValueError):  # its output is closed: the record still goes out
            self.console.end_line()
        return True
