"""Memory for persistent agents: the ``remember``, ``recall`` and ``forget_key`` tools, and what the prompt shows.

:class:`MemoryExtension` is an ``AgentExtension`` (``tasks/agent.py``): for an
agent whose template version enables memory (``memory:`` in the template) it
offers the three built-in tools and adds to the system prompt what the
version's ``visibility`` shows (nothing, every key, or the named ones). The
entries live in :class:`~agentparty.runtime.agent_memory.AgentMemoryStore`,
whose module docstring states the rule for concurrent writes (per-key
versions, compare-and-set with ``expected_version``, last writer wins without
it). A conflict, a full memory or bad arguments come back to the model as a tool
error it can act on.

Each call runs in its checkpoint like any tool call; the store also records the
call's idempotency key with the change, in the same transaction, so a call
repeated after its checkpoint was lost (a kill between the write and the
checkpoint) applies once. What the prompt shows is a snapshot taken at the
engagement's first attempt, so a retried or resumed step sends the same system
prompt and its checkpointed turns still match.

A new template version's agent starts empty, or, when its memory says
``inherit``, with a copy of the previous version's memory, made at its first
use (:meth:`MemoryExtension.inherit_source` says which version that is).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictInt, ValidationError, field_validator

from agentparty.models.errors import field_errors
from agentparty.models.memory import MAX_KEY_CHARS, MemoryChange, MemoryConfig, active_memory, key_problem
from agentparty.models.tools import ToolResult, ToolSpec
from agentparty.runtime.agent_memory import AgentMemoryStore, Engagement, MemoryEntry, MemoryRefused, MemoryWrite
from agentparty.tasks.agent import AgentStepRequest, ModelAgentRunner, StepAgent
from agentparty.tasks.templates import TemplateRegistry, persistent_agent_id
from agentparty.tasks.toolbox import BoundTool
from agentparty.tasks.tools import ToolContext, rendered

logger = logging.getLogger("agentparty.agents")

RESULT_CHARS = 32_000
"""The most of a tool result the model reads (a recalled value beyond it is cut, with a note)."""
PROMPT_CHARS = 8_000
"""The most of its memory the system prompt shows; keys past it are listed by name only."""
PROMPT_VALUE_CHARS = 1_000
"""The most of one value the system prompt shows (``recall`` reads all of it)."""

_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS}


def _spec(name: str, description: str, properties: dict[str, Any], required: Sequence[str] = ()) -> ToolSpec:
    schema = {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}
    return ToolSpec(name=name, description=description, parameters=schema, source="python")


REMEMBER = _spec(
    "remember",
    "Store a value under a key in your memory, which lasts across your runs and is shared with copies of you "
    "working in parallel. Pass expected_version (the version recall or a previous remember gave you) to write only "
    "if nobody changed the key since; 0 to create a key that must not exist yet. Without it the write replaces "
    "whatever is there. A conflict or a full memory comes back as an error that says why.",
    {
        "key": {**_KEY_SCHEMA, "description": "The key, e.g. 'preferred_sources'."},
        "value": {"description": "Any JSON value: a string, number, boolean, null, array or object."},
        "expected_version": {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}],
            "default": None,
            "description": "Write only if the key is at this version (0: only if it does not exist yet).",
        },
    },
    ("key", "value"),
)
RECALL = _spec(
    "recall",
    "Read your memory, which lasts across your runs: the value and version of one key, or, without a key, every "
    "key with its version and size.",
    {
        "key": {
            "anyOf": [_KEY_SCHEMA, {"type": "null"}],
            "default": None,
            "description": "The key to read; leave it out to list the keys.",
        }
    },
)
FORGET_KEY = _spec(
    "forget_key",
    "Delete a key from your memory, to make room or to drop what is no longer true. With expected_version it is "
    "deleted only if it is still at that version.",
    {
        "key": {**_KEY_SCHEMA, "description": "The key to delete."},
        "expected_version": {
            "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
            "default": None,
            "description": "Delete only if the key is at this version.",
        },
    },
    ("key",),
)


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("key", check_fields=False)
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        problem = key_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


class RememberArguments(_Arguments):
    key: str
    value: JsonValue
    expected_version: StrictInt | None = Field(None, ge=0)


class RecallArguments(_Arguments):
    key: str | None = None


class ForgetKeyArguments(_Arguments):
    key: str
    expected_version: StrictInt | None = Field(None, ge=1)


@dataclass(frozen=True)
class AgentMemory:
    """One agent's memory as one engagement uses it: the store, the agent, its limits, where the calls happen."""

    store: AgentMemoryStore
    agent_id: str
    config: MemoryConfig
    where: Engagement

    def usage(self, used_bytes: int, used_keys: int) -> dict[str, int]:
        return {
            "bytes": used_bytes,
            "max_bytes": self.config.max_bytes,
            "keys": used_keys,
            "max_keys": self.config.max_keys,
        }

    def remember(self, arguments: RememberArguments, request: str) -> dict[str, Any]:
        written = self.store.write(
            self.agent_id,
            arguments.key,
            arguments.value,
            limits=self.config,
            where=self.where,
            request=request,
            expected_version=arguments.expected_version,
        )
        return {
            "key": written.key,
            "version": written.version,
            "replaced_version": written.previous_version,
            "memory": self.usage(written.used_bytes, written.used_keys),
        }

    def recall(self, arguments: RecallArguments, request: str) -> dict[str, Any]:
        if arguments.key is None:
            entries = self.store.entries(self.agent_id)
            listed = [{"key": e.key, "version": e.version, "bytes": e.size_bytes} for e in entries]
            return {"keys": listed, "memory": self.usage(sum(e.size_bytes for e in entries), len(entries))}
        entry = self.store.get(self.agent_id, arguments.key)
        if entry is None:
            return {"key": arguments.key, "found": False, "hint": "remember with expected_version 0 creates it"}
        return {"key": entry.key, "found": True, "version": entry.version, "value": entry.value}

    def forget_key(self, arguments: ForgetKeyArguments, request: str) -> dict[str, Any]:
        deleted: MemoryWrite = self.store.delete(
            self.agent_id,
            arguments.key,
            where=self.where,
            request=request,
            expected_version=arguments.expected_version,
        )
        if not deleted.changed:
            return {"key": deleted.key, "forgotten": False, "reason": "no such key"}
        return {
            "key": deleted.key,
            "forgotten": True,
            "version": deleted.version,
            "memory": self.usage(deleted.used_bytes, deleted.used_keys),
        }


Action = Callable[[Any, str], dict[str, Any]]


@dataclass(frozen=True)
class MemoryTool:
    """One built-in memory tool bound to one agent's memory (a ``BoundTool``)."""

    spec: ToolSpec
    model: type[_Arguments]
    """Validates the arguments the model sends."""
    action: Action

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def needs_approval(self) -> bool:
        return False

    @property
    def server_name(self) -> str | None:
        return None

    def idempotency_key(self, arguments: dict[str, Any]) -> str | None:
        return None  # checkpointed by its place in the conversation; the store dedupes a repeat of that place

    async def call(self, call_id: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        """Validate, apply in a worker thread (a write may wait for another process's), render; a refusal is an
        error result the model reads."""
        try:
            parsed = self.model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(f"{e.path or '(arguments)'}: {e.message}" for e in field_errors(exc))
            return ToolResult(call_id=call_id, name=self.name, content=f"invalid arguments: {problems}", is_error=True)
        request = call_request(context, self.name, arguments)
        try:
            value = await _in_thread(lambda: self.action(parsed, request))
        except (MemoryRefused, ValueError) as exc:
            return ToolResult(call_id=call_id, name=self.name, content=str(exc), is_error=True)
        return rendered(call_id, self.name, value, RESULT_CHARS)


def _in_thread(work: Callable[[], dict[str, Any]]) -> Awaitable[dict[str, Any]]:
    return anyio.to_thread.run_sync(work)


def call_request(context: ToolContext, tool: str, arguments: dict[str, Any]) -> str:
    """The change's idempotency key: the call's place (stable across a resume) and what it asked for, so the same
    call repeated applies once while a different request at that place (a model that answered otherwise) applies."""
    asked = json.dumps([tool, arguments], sort_keys=True, separators=(",", ":"), default=str)
    return f"{context.idempotency_key}:{hashlib.sha256(asked.encode()).hexdigest()[:16]}"


def memory_tools(memory: AgentMemory) -> tuple[BoundTool, ...]:
    return (
        MemoryTool(REMEMBER, RememberArguments, memory.remember),
        MemoryTool(RECALL, RecallArguments, memory.recall),
        MemoryTool(FORGET_KEY, ForgetKeyArguments, memory.forget_key),
    )


def shown_memory(config: MemoryConfig, entries: list[MemoryEntry]) -> str:
    """What the system prompt says of the memory, by the version's ``visibility`` (empty for ``none``)."""
    if config.visibility == "none":
        return ""
    by_key = {entry.key: entry for entry in entries}
    keys = config.keys if config.visibility == "named" else sorted(by_key)
    header = (
        "Your memory, kept across your runs (as it was when this step started; recall reads it as it is now, and "
        "remember with expected_version changes a key only if it is still at the version shown):"
    )
    if not keys:
        return header + "\n(empty: remember stores what you want to keep for your next runs)"
    lines, used, left_out = [header], len(header), 0
    for key in keys:
        entry = by_key.get(key)
        line = f"- {json.dumps(key)}: not set" if entry is None else _line(entry)
        if used + len(line) + 1 > PROMPT_CHARS:
            left_out += 1
            continue
        lines.append(line)
        used += len(line) + 1
    if left_out:
        lines.append(f"(and {left_out} more keys not shown here: recall lists them)")
    return "\n".join(lines)


def _line(entry: MemoryEntry) -> str:
    text = json.dumps(entry.value, ensure_ascii=False)
    if len(text) > PROMPT_VALUE_CHARS:
        text = text[:PROMPT_VALUE_CHARS] + f"… ({len(text) - PROMPT_VALUE_CHARS} more characters: recall it)"
    return f"- {json.dumps(entry.key)} (version {entry.version}): {text}"


@dataclass
class MemoryExtension:
    """Memory for agents whose template version enables it (an ``AgentExtension`` and a ``MemorySource``)."""

    store: AgentMemoryStore
    templates: TemplateRegistry | None = None
    """Where the previous versions are found, for ``inherit``; without it nothing is inherited."""
    _ready: set[str] = field(default_factory=set)
    """Agents whose memory this process has seen exist (initialised or inherited): not asked again."""

    def memory(self, request: AgentStepRequest, agent: StepAgent) -> AgentMemory | None:
        """The agent's memory for this engagement, created (or inherited) at its first use; None without one."""
        config = active_memory(agent.resolved.record.memory) if agent.resolved is not None else None
        if config is None:
            return None
        memory = AgentMemory(self.store, agent.instance.id, config, Engagement(request.run_key, request.agent_slot))
        if memory.agent_id not in self._ready:
            if not self.store.initialised(memory.agent_id):
                source = self.inherit_source(agent, config)
                copied = self.store.initialise(memory.agent_id, memory.where, config, source)
                if source is not None and copied is not None:
                    logger.info(
                        "%s inherited %s memory keys from agent %s (%s left out by its limits)",
                        agent.node.name,
                        copied[0],
                        source,
                        copied[1],
                    )
            self._ready.add(memory.agent_id)
        return memory

    def inherit_source(self, agent: StepAgent, config: MemoryConfig) -> str | None:
        """The agent whose memory a new version's agent copies: the previous version's (by semantic version).

        When the previous version's agent never ran but would itself have inherited, its own predecessor's is
        used (what it would have had); a previous version without memory, or whose agent would start empty,
        gives nothing.
        """
        if not config.inherit or self.templates is None or agent.resolved is None:
            return None
        current = Version(agent.template_version)
        records = self.templates.store.versions(agent.template_id)
        for record in reversed([r for r in records if Version(r.version.version) < current]):
            candidate = persistent_agent_id(agent.template_id, record.version.version)
            if self.store.initialised(candidate):
                return candidate
            previous = active_memory(record.memory)
            if previous is None or not previous.inherit:
                return None
        return None

    def tools(self, request: AgentStepRequest, agent: StepAgent) -> Sequence[BoundTool]:
        memory = self.memory(request, agent)
        return memory_tools(memory) if memory is not None else ()

    def instructions(self, request: AgentStepRequest, agent: StepAgent) -> str:
        memory = self.memory(request, agent)
        if memory is None or memory.config.visibility == "none":
            return ""
        return self.store.snapshot(memory.agent_id, memory.where, lambda entries: shown_memory(memory.config, entries))

    def memory_changes(self, request: AgentStepRequest, agent: StepAgent) -> tuple[MemoryChange, ...]:
        """The engagement's changes for its record; a store that cannot be read leaves the record without them
        (the store keeps the changes, and a failing step must fail with its own error)."""
        config = active_memory(agent.resolved.record.memory) if agent.resolved is not None else None
        if config is None:
            return ()
        try:
            return self.store.changes(agent.instance.id, Engagement(request.run_key, request.agent_slot))
        except sqlite3.Error:
            logger.exception("could not read the memory changes of %s for its record", agent.node.name)
            return ()


def enable_memory(runner: ModelAgentRunner, store: AgentMemoryStore) -> ModelAgentRunner:
    """Give ``runner`` persistent memory for the agents whose template enables it (inheriting through its
    template registry)."""
    runner.extensions = (MemoryExtension(store, runner.templates), *runner.extensions)
    return runner
