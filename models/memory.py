"""A persistent agent's memory: how a template version configures it, and how the graph records its changes.

A persistent agent (one per published template version) may keep a key-value
memory across runs (``runtime/agent_memory.py`` stores it; ``tasks/memory_tools.py``
gives the agent ``remember``, ``recall`` and ``forget_key``). The template
version says whether it has one, how big it may grow, what of it the agent is
shown in its system prompt, and whether a new version starts with a copy of the
previous version's memory (:class:`MemoryConfig`).

Every applied change is a :class:`MemoryChange`: carried on the engagement's
``AgentWork`` with the step result and written to the graph as a node the agent
``CHANGED_MEMORY`` (:class:`ChangedMemory`). A change records the key, its new
version, the operation and the value's size, never the value: a value holds
whatever the model was told, and redaction only catches registered secrets.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, StrictBool, WithJsonSchema, field_validator, model_validator

from ._base import CamelModel, NonNegativeInt, UtcDatetime, utc_now
from .graph import GraphNode
from .graph_relationships import RelationshipProperties

MAX_KEY_CHARS = 128
DEFAULT_MAX_BYTES = 16_384
DEFAULT_MAX_KEYS = 100
MAX_BYTES_LIMIT = 1_048_576
MAX_KEYS_LIMIT = 10_000

MemoryVisibility = Literal["none", "all", "named"]
MemoryOperation = Literal["set", "delete", "inherit"]


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot name a memory entry, or None: 1 to 128 characters, no control characters."""
    if not key:
        return "a key must not be empty"
    if len(key) > MAX_KEY_CHARS:
        return f"a key has at most {MAX_KEY_CHARS} characters (this one has {len(key)})"
    if any(unicodedata.category(c) == "Cc" for c in key):
        return "a key must not contain control characters (newlines, tabs…)"
    return None


MemoryKey = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_KEY_CHARS,
            "not": {"pattern": "[\\u0000-\\u001f\\u007f-\\u009f]"},  # unanchored: the same in every engine
        }
    ),
]
"""A memory key as the JSON Schema states it (:func:`key_problem` gives the reason for one that is not)."""

_NAMED_KEYS: dict[str, Any] = {
    "anyOf": [
        {"required": ["visibility", "keys"], "properties": {"visibility": {"const": "named"}, "keys": {"minItems": 1}}},
        {
            "properties": {"visibility": {"enum": ["none", "all"]}, "keys": {"maxItems": 0}},
        },
    ]
}
_DISABLED_ALONE: dict[str, Any] = {
    "anyOf": [{"not": {"required": ["enabled"], "properties": {"enabled": {"const": False}}}}, {"maxProperties": 1}]
}


class MemoryConfig(CamelModel):
    """A template version's memory (``memory:`` in ``CreateAgentTemplateRequest``); absent means none.

    Part of the version, like its tools: a published version never changes how its agent remembers.
    """

    # The JSON Schema states the validators' rules, so a client (or schemathesis) sees what is refused.
    model_config = ConfigDict(json_schema_extra={"allOf": [_NAMED_KEYS, _DISABLED_ALONE]})

    enabled: StrictBool = True
    """Give the agent a memory and the ``remember``/``recall``/``forget_key`` tools. ``false`` keeps the block
    for later but turns memory off (the other fields must then be left out)."""
    visibility: MemoryVisibility = "all"
    """What of its memory the agent is shown in its system prompt when a step starts: ``none``, ``all`` keys
    with their values, or the ``named`` ones (``keys``). ``recall`` reads any key whatever this says."""
    keys: Annotated[list[MemoryKey], Field(json_schema_extra={"uniqueItems": True})] = Field(default_factory=list)
    """The keys shown with ``visibility: named`` (a key not set yet is shown as not set); only read then."""
    max_bytes: Annotated[int, Field(gt=0, le=MAX_BYTES_LIMIT)] = DEFAULT_MAX_BYTES
    """Bound on the memory: the UTF-8 bytes of every key and its JSON value, together. A write past it is refused."""
    max_keys: Annotated[int, Field(gt=0, le=MAX_KEYS_LIMIT)] = DEFAULT_MAX_KEYS
    """Bound on how many keys the memory holds. A write of a new key past it is refused."""
    inherit: StrictBool = False
    """A new version's agent starts with a copy of the previous version's memory (copied at its first use);
    otherwise it starts empty."""

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            problem = key_problem(key)
            if problem:
                raise ValueError(f"{key!r}: {problem}")
        duplicates = sorted({key for key in value if value.count(key) > 1})
        if duplicates:
            raise ValueError(f"each key once: {', '.join(map(repr, duplicates))} appear more than once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MemoryConfig:
        if not self.enabled:
            extra = sorted(self.model_fields_set - {"enabled"})
            if extra:
                raise ValueError(f"memory is disabled (enabled: false), so {', '.join(extra)} would do nothing")
        if self.visibility == "named" and not self.keys:
            raise ValueError("visibility 'named' shows the keys listed in keys: list at least one")
        if self.keys and self.visibility != "named":
            raise ValueError(f"keys are only shown with visibility 'named', not {self.visibility!r}")
        return self


def active_memory(config: MemoryConfig | None) -> MemoryConfig | None:
    """The configuration when the version has a memory, else None (no block, or ``enabled: false``)."""
    return config if config is not None and config.enabled else None


class MemoryChange(GraphNode):
    """Extension: one applied change of a persistent agent's memory (target of ``CHANGED_MEMORY``).

    Its id is made once, when the store applies the change, and kept with it, so a resumed run (or a retried
    write) that records the same change again MERGEs the same node. Never holds the value.
    """

    label: ClassVar[str] = "MemoryChange"
    kept_fields: ClassVar[frozenset[str]] = frozenset({"changed_at"})

    agent_id: str
    key: str
    """The key (redacted of registered secrets)."""
    version: Annotated[int, Field(ge=1)]
    """The key's version after the change (a deletion gets a version too)."""
    operation: MemoryOperation
    """``set`` (remember), ``delete`` (forget_key), ``inherit`` (copied from the previous version's agent)."""
    size_bytes: NonNegativeInt = 0
    """The UTF-8 bytes of the key and its JSON value after the change (0 for a deletion)."""
    task_id: str
    """The run (its Task node) in which the change happened."""
    step_id: str
    """The step slot: the step, or ``step[item]`` for a fan-out item."""
    changed_at: UtcDatetime = Field(default_factory=utc_now)


class ChangedMemory(RelationshipProperties):
    """Extension: an agent changed its memory; one per :class:`MemoryChange`."""

    type: ClassVar[str] = "CHANGED_MEMORY"
    source: ClassVar[tuple[str, ...]] = ("Agent",)
    target: ClassVar[tuple[str, ...]] = ("MemoryChange",)

    changed_at: UtcDatetime = Field(default_factory=utc_now)
