"""Python tools: a function's type hints and docstring become the schema the model sees; its arguments are checked.

A tool is a plain function (sync or async), found like a step handler
(``package.module:function`` next to the definition or on ``sys.path``). Its
parameters become a pydantic model (``extra="forbid"``), its docstring's summary
the tool's description and its ``Args:`` section the parameters' descriptions
(``docstring_parser``). The arguments a model sends are validated against that
model: a validation error, an exception from the tool or a timeout goes back to
the model as a tool error it can correct, never up the stack.

A parameter annotated :class:`ToolContext` is not offered to the model: the engine
fills it in, with an ``idempotency_key`` that stays the same when a resumed run
repeats the call, for tools whose side effects must happen once (a payment, an
email). A tool can also name its own key from its arguments with
:func:`idempotent`: the call is then checkpointed under that key, so a resumed run
that asks for the same thing again gets the stored result instead of a second
side effect.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import docstring_parser
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agentparty.models.errors import field_errors
from agentparty.models.step_errors import StepValidationError
from agentparty.models.tools import PythonTool, ToolResult, ToolSpec, truncated_text
from agentparty.tasks.handlers import load_handler

IDEMPOTENCY_ATTRIBUTE = "__agentparty_idempotency_key__"


@dataclass(frozen=True)
class ToolContext:
    """Where a tool call happens; given to a tool that declares a parameter of this type."""

    run_key: str
    step_id: str
    slot: str
    """The step, or ``step[item]`` for a fan-out item."""
    turn: int
    call_id: str
    idempotency_key: str
    """Stable across a resumed run's repeat of this call: use it to make a side effect happen once."""


def idempotent(key: Callable[[dict[str, Any]], str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a tool's own idempotency key, computed from its arguments (``@idempotent(lambda a: a["order_id"])``).

    The call is checkpointed under ``(run, tool, key)`` instead of its place in the conversation: a resumed run
    that asks again for the same key gets the stored result, and the tool is not called twice.
    """

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        setattr(fn, IDEMPOTENCY_ATTRIBUTE, key)
        return fn

    return mark


@dataclass(frozen=True)
class FunctionTool:
    """One Python function ready to call: its spec, its argument model, its limits."""

    config: PythonTool
    fn: Callable[..., Any]
    arguments: type[BaseModel]
    spec: ToolSpec
    context_parameter: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def idempotency_key(self, arguments: dict[str, Any]) -> str | None:
        """The tool's own key for these arguments, when it declared one (:func:`idempotent`)."""
        key = getattr(self.fn, IDEMPOTENCY_ATTRIBUTE, None)
        return str(key(arguments)) if key is not None else None

    async def call(self, call_id: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        """Validate, call within the timeout, render; every failure becomes an error result for the model."""
        try:
            parsed = self.arguments.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(f"{e.path or '(arguments)'}: {e.message}" for e in field_errors(exc))
            return ToolResult(call_id=call_id, name=self.name, content=f"invalid arguments: {problems}", is_error=True)
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if self.context_parameter is not None:
            kwargs[self.context_parameter] = context
        try:
            value = await asyncio.wait_for(_invoke(self.fn, kwargs), self.config.timeout)
        except TimeoutError:
            message = f"timed out after {self.config.timeout:g} s"
            return ToolResult(call_id=call_id, name=self.name, content=message, is_error=True)
        except Exception as exc:  # the model sees what went wrong and may try differently
            return ToolResult(call_id=call_id, name=self.name, content=f"{type(exc).__name__}: {exc}", is_error=True)
        return rendered(call_id, self.name, value, self.config.max_result_chars)


async def _invoke(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    # A sync tool runs in a worker thread; when the timeout fires the thread is abandoned, not killed.
    return await anyio.to_thread.run_sync(functools.partial(fn, **kwargs), abandon_on_cancel=True)


def rendered(call_id: str, name: str, value: Any, max_chars: int, *, is_error: bool = False) -> ToolResult:
    """A tool's return value as text the model reads (JSON for anything but a string), truncated past ``max_chars``."""
    text = value if isinstance(value, str) else pydantic_core.to_json(value, fallback=str).decode()
    text, truncated = truncated_text(text, max_chars)
    return ToolResult(call_id=call_id, name=name, content=text, is_error=is_error, truncated=truncated)


def function_tool(config: PythonTool, search_dirs: Sequence[Path] = ()) -> FunctionTool:
    """Load the function and derive its schema; a function that cannot be a tool is a step validation error."""
    fn = load_handler(config.function, search_dirs)
    name = config.tool_name
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # an annotation that does not resolve
        raise StepValidationError(f"tool {config.function!r}: its type hints do not resolve: {exc}") from None
    doc = docstring_parser.parse(inspect.getdoc(fn) or "")
    described = {p.arg_name: p.description or "" for p in doc.params}
    fields: dict[str, Any] = {}
    context_parameter = None
    for parameter in inspect.signature(fn).parameters.values():
        if hints.get(parameter.name) is ToolContext:
            context_parameter = parameter.name
            continue
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise StepValidationError(f"tool {config.function!r}: *args and **kwargs cannot be offered to a model")
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        annotation = hints.get(parameter.name, Any)
        fields[parameter.name] = (annotation, Field(default, description=described.get(parameter.name) or None))
    arguments = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    schema = arguments.model_json_schema()
    schema.pop("title", None)
    description = "\n\n".join(part for part in (doc.short_description, doc.long_description) if part)
    spec = ToolSpec(name=name, description=description or name, parameters=schema, source="python")
    return FunctionTool(config, fn, arguments, spec, context_parameter)


def call_idempotency_key(run_key: str, slot: str, tool: str, position: str) -> str:
    """A key for one call that survives a resume: the run, the step slot, the tool and the call's place or own key."""
    return hashlib.sha256(f"{run_key}\x1f{slot}\x1f{tool}\x1f{position}".encode()).hexdigest()[:32]
