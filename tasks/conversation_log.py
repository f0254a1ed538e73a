"""What one engagement attempt adds to its conversation, written once per turn.

The loop hands every message it says or reads to a :class:`ConversationLog`
with its place (``0/user``, ``3/agent``, ``3/tool/1``, ``4/context``, ``failed``);
the log gives it an id derived from that place and its content
(``runtime.conversations.message_id``) and writes what it gathered at each
turn's end in one transaction. A replayed turn (resume, retry) yields the same
ids, which the store skips, so a conversation never repeats itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from agentparty.models.messages import Message
from agentparty.runtime.conversations import ConversationStore, message_id

M = TypeVar("M", bound=Message)


@dataclass
class ConversationLog:
    """One engagement's log for one attempt; ``store`` None keeps nothing (a runner without a home)."""

    store: ConversationStore | None
    engagement: str
    """The store's engagement id (``ConversationStore.begin``)."""
    pending: list[Message] = field(default_factory=list)

    def add(self, position: str, message: M) -> M:
        """``message`` with its stable id, queued for the next :meth:`flush`."""
        stable = message.model_copy(update={"id": message_id(self.engagement, position, message)})
        if self.store is not None:
            self.pending.append(stable)
        return stable

    def flush(self) -> None:
        if self.store is not None and self.pending:
            self.store.append(self.engagement, self.pending)
        self.pending = []

    def status(self, status: str) -> None:
        if self.store is not None:
            self.store.set_status(self.engagement, status)


NO_LOG = ConversationLog(None, "")
