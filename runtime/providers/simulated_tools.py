"""How the simulated provider uses tools: a few deterministic calls with schema-valid arguments, then the answer.

The keyless default must show the agent loop at work (DESIGN.md §10), so when
tools are offered the simulated model asks for some before it answers. How many
results it wants (1 or 2) is a hash of what stays the same over one loop (the
seed, the model, the tools' names, the metadata and the first user message), so
every turn of the loop agrees. On the first turn with two or more tools it calls
two at once (the loop's parallel path); otherwise one per turn.

It reacts to failures like a model would: a call whose result is an error is
retried once, with regenerated arguments, under the same id plus ``_retry`` (a
refused call is not: a person or a permission said no). Arguments come from each
tool's JSON Schema; a search-like string parameter (``query``, ``q``, ``topic``…)
gets keywords of the last user message, so a search tool finds something.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agentparty.models.messages import Message
from agentparty.models.tools import ToolCall, ToolSpec

from .conversation import ToolOutcome, Turn, synthetic_call_id
from .simulated_values import digest, fit_string, sample_for_schema

RETRY_SUFFIX = "_retry"
_WORD = re.compile(r"[A-Za-z0-9]+")
_SEARCH_NAMES = ("query", "search", "topic", "keyword", "terms", "question")
_STOPWORD_TEXT = """
about above after again also among and any are because been before being below between both but can could
describe did does doing done each explain find for from give has have how into its just list make more most
not now off once only other our out over own please same should show some such summarise summarize tell than
that the their them then there these they this those through too under until use using very was were what
when where which while who whom why will with would write you your
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
"""Words that say what to do rather than what about: left out of a search."""


def plan_tool_calls(
    tools: Sequence[ToolSpec], turns: Sequence[Turn], messages: Sequence[Message], loop_seed: int
) -> tuple[ToolCall, ...]:
    """The calls of this turn, or none when it is time to answer."""
    results = [result for turn in turns for result in turn.tool_results]
    by_name = {tool.name: tool for tool in tools}
    words = keywords(_last_user_text(turns))
    retries = [
        ToolCall(
            id=result.call_id + RETRY_SUFFIX,
            name=result.name,
            arguments=tool_arguments(by_name[result.name], digest(loop_seed, result.call_id), words, retry=True),
        )
        for result in turns[-1].tool_results
        if _retryable(result) and result.name in by_name
    ]
    if retries:
        return tuple(retries)
    if len(results) >= wanted_results(loop_seed):
        return ()
    first = loop_seed % len(tools)
    count = 2 if not results and len(tools) >= 2 else 1
    chosen = [tools[(first + len(results) + i) % len(tools)] for i in range(count)]
    return tuple(
        ToolCall(
            id=synthetic_call_id(messages, i),
            name=tool.name,
            arguments=tool_arguments(tool, digest(loop_seed, len(results), i), words),
        )
        for i, tool in enumerate(chosen)
    )


def wanted_results(loop_seed: int) -> int:
    """How many tool results the simulated model reads before it answers (1 or 2)."""
    return 1 + loop_seed % 2


def _retryable(result: ToolOutcome) -> bool:
    return result.is_error and not result.refused and not result.call_id.endswith(RETRY_SUFFIX)


def _last_user_text(turns: Sequence[Turn]) -> str:
    return next((turn.text for turn in reversed(turns) if turn.role == "user" and turn.text), "")


def keywords(text: str, limit: int = 4) -> list[str]:
    """The first few distinct content words of ``text`` (lower case, no stopwords or short words)."""
    found: list[str] = []
    for word in _WORD.findall(text.lower()):
        if len(word) > 2 and word not in _STOPWORDS and word not in found:
            found.append(word)
        if len(found) == limit:
            break
    return found


def tool_arguments(tool: ToolSpec, seed: int, words: Sequence[str], *, retry: bool = False) -> dict[str, Any]:
    """Arguments valid for the tool's parameter schema: required ones always, optional ones at their default."""
    schema = tool.parameters
    required = set(schema.get("required", ()))
    arguments: dict[str, Any] = {}
    for name, sub in (schema.get("properties") or {}).items():
        if name not in required and isinstance(sub, dict) and "default" in sub:
            arguments[name] = sub["default"]
            continue
        value = sample_for_schema(sub, digest(seed, name), name, schema)
        if isinstance(value, str) and words and _search_like(name, sub):
            # A retry searches differently: the same words, rotated, so another match comes first.
            chosen = list(words[1:]) + list(words[:1]) if retry and len(words) > 1 else list(words)
            value = fit_string(" ".join(chosen), sub)
        arguments[name] = value
    return arguments


def _search_like(name: str, schema: dict[str, Any]) -> bool:
    """A free-text string parameter a search would read (no enum, const, pattern or format to honour)."""
    if any(key in schema for key in ("enum", "const", "pattern", "format")):
        return False
    lowered = name.lower()
    return lowered == "q" or any(part in lowered for part in _SEARCH_NAMES)
