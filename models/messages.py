"""Seed 002's message family: user, agent, system and error messages, and ErrorDetail."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from ._base import CamelModel, NonEmptyStr, UtcDatetime, utc_now
from .graph import new_id
from .tools import ToolCall, ToolResult


class ErrorDetail(CamelModel):
    code: NonEmptyStr
    message: NonEmptyStr
    details: dict[str, Any] | None = None
    suggestions: list[str] | None = None
    """What the user can do about it, one action per entry."""


class Message(CamelModel):
    id: NonEmptyStr = Field(default_factory=new_id)
    type: Literal["user", "agent", "system", "error"]
    content: str
    timestamp: UtcDatetime = Field(default_factory=utc_now)
    metadata: dict[str, Any] | None = None
    streaming: bool | None = None


class UserMessage(Message):
    type: Literal["user"] = "user"
    user_id: NonEmptyStr
    session_id: NonEmptyStr


class AgentMessage(Message):
    type: Literal["agent"] = "agent"
    agent_id: NonEmptyStr
    model: NonEmptyStr
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    tool_calls: list[ToolCall] | None = None
    """The tools the model asked for in this turn (an extension of the seed's message)."""


class SystemMessage(Message):
    type: Literal["system"] = "system"
    level: Literal["info", "warn", "error"] = "info"
    code: str | None = None
    tool_result: ToolResult | None = None
    """The result of a tool call the model asked for (``code: tool_result``); the model reads it next turn."""


class ErrorMessage(Message):
    type: Literal["error"] = "error"
    error: ErrorDetail
    recoverable: bool
    tool_result: ToolResult | None = None
    """A tool call that failed or was refused; the model reads it next turn and may correct the call."""


AnyMessage = Annotated[UserMessage | AgentMessage | SystemMessage | ErrorMessage, Field(discriminator="type")]
MESSAGE_ADAPTER: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)
