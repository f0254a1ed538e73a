"""Durable turns: each model turn and each tool call of an agent's loop is a checkpoint with a persisted result.

A checkpoint is a Prefect task run nested under the step's task run, named so
that the Prefect UI reads like the conversation (``research[history] · turn 2 ·
search_docs``), with its result persisted under a key derived from what it did:

* a model turn: the run, the step slot, the turn number, the model asked for,
  and a digest of the conversation so far (content only: message ids and
  timestamps differ on a resume) and of the tools offered;
* a tool call: the run, the slot, the tool, and either the tool's own
  idempotency key (``tasks.tools.idempotent``) or the call's place (turn, index)
  and its arguments.

A run killed in the middle of a loop and resumed under the same key therefore
rebuilds the same conversation from stored results, turn by turn, and calls no
model and no tool whose result is stored; the first turn or call without one is
where it goes on. This is pydantic-ai's design for Prefect (model requests and
tool calls as tasks with an inputs-based cache key), keyed by the run's resume
key instead of the flow run id, because a resume is a new flow run here. Unlike
there, our checkpoints are task runs nested in the step's task run, so each
commits its own result at once (``CommitMode.EAGER``) instead of with the step's
transaction.

Outside a flow run (a unit test calling an agent directly) there is nothing to
checkpoint into: the work simply runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar

from prefect import Task
from prefect.context import FlowRunContext
from prefect.transactions import CommitMode, atransaction

from agentparty.models.messages import Message
from agentparty.models.tools import ToolSpec
from agentparty.runtime.sealed_results import SealedPickleSerializer

T = TypeVar("T")
CHECKPOINT_EXPIRATION = timedelta(days=7)
"""As long as step results are kept: a run can be resumed for a week."""


class _Unit(Generic[T]):
    """One checkpointed piece of work. Not a dataclass: Prefect walks dataclass parameters looking for futures."""

    __slots__ = ("key", "name", "ran", "work")

    def __init__(self, key: str, name: str, work: Callable[[], Awaitable[T]]) -> None:
        self.key = key
        self.name = name
        self.work = work
        self.ran = False

    def __repr__(self) -> str:  # the task run's parameter, as the Prefect UI shows it
        return f"checkpoint({self.key[:12]})"


async def _checkpoint_body(unit: _Unit[Any]) -> Any:
    unit.ran = True
    return await unit.work()


CHECKPOINT_TASK: Task[[_Unit[Any]], Any] = Task(
    fn=_checkpoint_body,
    name="checkpoint",
    task_run_name="{unit.name}",
    persist_result=True,
    result_serializer=SealedPickleSerializer(),  # sealed at rest with the home's data key (runtime/sealed_results.py)
    cache_key_fn=lambda _ctx, params: params["unit"].key,
    cache_expiration=CHECKPOINT_EXPIRATION,
    retries=0,  # the step's retries decide; a failed checkpoint stores nothing, so its retry runs it again
)


async def checkpointed(key: str, name: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
    """Run ``work`` as a checkpoint (or take its stored result); the value, and whether it came from the store."""
    if FlowRunContext.get() is None:
        return await work(), False
    unit = _Unit(key, name, work)
    # Committed as soon as it completes. A task run inside another (the step) otherwise joins the step's
    # transaction, which writes its children's results only when the step itself succeeds: a step that fails
    # or is killed would lose every turn it had finished, which is what checkpoints are for.
    async with atransaction(commit_mode=CommitMode.EAGER):
        value: T = await CHECKPOINT_TASK(unit)
    return value, not unit.ran


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def conversation_digest(messages: tuple[Message, ...]) -> str:
    """What the model was shown, without what differs on a resume (message ids, timestamps)."""
    return _digest([m.model_dump(mode="json", exclude={"id", "timestamp"}) for m in messages])


def turn_key(
    run_key: str, slot: str, turn: int, model: str, messages: tuple[Message, ...], tools: tuple[ToolSpec, ...]
) -> str:
    return _digest(["turn", run_key, slot, turn, model, conversation_digest(messages), [t.model_dump() for t in tools]])


def tool_call_key(
    run_key: str, slot: str, tool: str, own_key: str | None, turn: int, index: int, arguments: dict[str, Any]
) -> str:
    if own_key is not None:  # the tool's own key: the same logical call, wherever it falls in the conversation
        return _digest(["tool", run_key, slot, tool, "own", own_key])
    return _digest(["tool", run_key, slot, tool, turn, index, arguments])
