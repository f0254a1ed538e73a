"""Keeping an agent's conversation inside its model's context window.

Before each turn the loop estimates the conversation's size: the tokens the
provider reported for the previous turn's input, plus a quarter of the
characters of every message added since (no offline tokenizer exists here, and
the reported count is exact for what it covers). When that and the answer's
``max_tokens`` would not fit the model's window (``maxTokens`` in the
registry), the oldest turns go, by the runtime's ``context_strategy``:

- ``trim`` leaves them out;
- ``summarize`` first has the model condense them into a note (a checkpointed
  turn charged to the budgets; a resumed run takes it from its checkpoint).

A turn is dropped whole (the model's message with the results of the tool calls
it asked for), so no tool call is ever separated from its result. The system
prompt, the task and the newest turn always stay; the loss is a system note in
the conversation. When even those do not fit, the step fails with
:class:`ContextWindowExceeded` naming what it needed and what the model allows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from agentparty.models.messages import AgentMessage, Message, SystemMessage, UserMessage
from agentparty.models.step_errors import ContextWindowExceeded

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
"""Roles and separators each message costs beyond its text (the providers' chat formats)."""
NOTE_CODES = frozenset({"context_trimmed", "context_summary"})
SUMMARY_MAX_TOKENS = 512
SUMMARY_PROMPT = (
    "You condense the earlier part of an agent's working conversation so the agent can go on without it. "
    "Keep every fact, figure, name, decision and tool result the agent may still need; drop pleasantries. "
    "Answer with the summary only."
)

Summarizer = Callable[[Sequence[Message], int], Awaitable[str]]
"""Condenses messages into at most ``max_tokens`` of text (a checkpointed model turn, charged to the budgets)."""


def message_tokens(message: Message) -> int:
    """A message's size in tokens, estimated from its characters (tool calls' arguments and results included)."""
    chars = len(message.content)
    calls = getattr(message, "tool_calls", None)
    if calls:
        chars += sum(len(call.name) + len(json.dumps(call.arguments, default=str)) for call in calls)
    result = getattr(message, "tool_result", None)
    if result is not None and result.content != message.content:
        chars += len(result.content)
    return math.ceil(chars / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS


def estimate(messages: Sequence[Message], reported: int | None = None, covered: int = 0) -> int:
    """Tokens of ``messages``: ``reported`` (the provider's count for the first ``covered`` of them) plus the rest
    by characters."""
    if reported is None:
        covered = 0
    return (reported or 0) + sum(message_tokens(m) for m in messages[covered:])


@dataclass(frozen=True)
class Fitted:
    messages: list[Message]
    note: SystemMessage | None
    """The system note that says what was left out (None when all of it fitted)."""
    dropped: int
    """Messages left out."""


@dataclass(frozen=True)
class ContextWindow:
    model: str
    window: int
    """The model's context window in tokens."""
    reserve: int
    """Tokens kept for the answer (the request's ``max_tokens``)."""
    strategy: str = "trim"
    step_id: str = ""

    def fits(self, tokens: int) -> bool:
        return tokens + self.reserve <= self.window

    async def fit(self, messages: Sequence[Message], summarize: Summarizer | None = None) -> Fitted:
        """``messages`` within the window: the head (system prompt, task), a note, and as many of the newest
        turns as fit. Raises :class:`ContextWindowExceeded` when the head and the newest turn alone do not."""
        head, notes, turns = _split(messages)
        dropped: list[Message] = list(notes)
        kept = list(turns)
        note_allowance = SUMMARY_MAX_TOKENS + MESSAGE_OVERHEAD_TOKENS if self.strategy == "summarize" else 64
        base = estimate(head) + note_allowance
        if len(kept) > 1:  # called because the provider's own count says it is over: at least one turn goes
            dropped.extend(kept.pop(0))
        while len(kept) > 1 and not self.fits(base + sum(estimate(turn) for turn in kept)):
            dropped.extend(kept.pop(0))
        needed = base + sum(estimate(turn) for turn in kept)
        if not dropped and self.fits(needed - note_allowance):  # over only by the reported count: nothing to drop
            return Fitted(list(messages), None, 0)
        if not self.fits(needed):
            raise ContextWindowExceeded(
                f"step {self.step_id!r}: the conversation needs about {needed + self.reserve} tokens "
                f"({self.reserve} of them for the answer) even with its older turns left out, but model "
                f"{self.model!r} allows {self.window}"
            )
        note = await self._note(dropped, summarize)
        return Fitted([*head, note, *(m for turn in kept for m in turn)], note, len(dropped))

    async def _note(self, dropped: Sequence[Message], summarize: Summarizer | None) -> SystemMessage:
        left_out = sum(1 for m in dropped if not _is_note(m))
        earlier = sum(int((m.metadata or {}).get("left_out", 0)) for m in dropped if _is_note(m))
        total = left_out + earlier
        tokens = estimate(dropped)
        if self.strategy == "summarize" and summarize is not None:
            summary = await summarize(self._within_window(dropped), SUMMARY_MAX_TOKENS)
            return SystemMessage(
                content=f"Summary of the {total} earlier messages of this conversation, condensed to fit "
                f"{self.model}'s {self.window}-token window:\n{summary}",
                level="warn",
                code="context_summary",
                metadata={"left_out": total, "tokens": tokens},
            )
        return SystemMessage(
            content=f"{total} earlier messages of this conversation (about {tokens} tokens) were left out to fit "
            f"{self.model}'s {self.window}-token window.",
            level="warn",
            code="context_trimmed",
            metadata={"left_out": total, "tokens": tokens},
        )

    def _within_window(self, dropped: Sequence[Message]) -> list[Message]:
        """What the summary turn reads: the newest of the dropped messages its own request can hold."""
        room = self.window - SUMMARY_MAX_TOKENS - estimate([SystemMessage(content=SUMMARY_PROMPT)]) - 64
        chosen: list[Message] = []
        for message in reversed(dropped):
            room -= message_tokens(message)
            if room < 0:
                break
            chosen.append(message)
        return list(reversed(chosen))


def transcript(messages: Sequence[Message]) -> str:
    """Messages as plain text for the summary turn (tool calls and results spelled out)."""
    lines = []
    for message in messages:
        calls = getattr(message, "tool_calls", None) or []
        said = message.content or ""
        if calls:
            said += " ".join(f"[calls {c.name}({json.dumps(c.arguments, default=str)})]" for c in calls)
        lines.append(f"{message.type}: {said}".strip())
    return "\n".join(lines)


def summary_request_messages(messages: Sequence[Message]) -> tuple[SystemMessage, UserMessage]:
    return (
        SystemMessage(content=SUMMARY_PROMPT),
        UserMessage(content=transcript(messages), user_id="workflow", session_id="context"),
    )


def _is_note(message: Message) -> bool:
    return isinstance(message, SystemMessage) and message.code in NOTE_CODES


def _split(messages: Sequence[Message]) -> tuple[list[Message], list[Message], list[list[Message]]]:
    """(head: system prompt and task, earlier notes, turns: each model message with the results that follow it)."""
    head = list(messages[:2])
    notes: list[Message] = []
    turns: list[list[Message]] = []
    for message in messages[2:]:
        if not turns and _is_note(message):
            notes.append(message)
        elif isinstance(message, AgentMessage) or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return head, notes, turns
