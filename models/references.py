"""The `${…}` reference language of workflow definitions (DESIGN.md §3).

    ${inputs.NAME}                 a run input
    ${steps.ID.output}             a step's whole output
    ${steps.ID.outputs.NAME}       one named output of a step
    ${item}                        the current element inside a forEach step

Any of them may continue with ``.field`` or ``[index]`` to reach inside a value.
A string that is exactly one reference keeps the value's type; references inside
longer text are interpolated. ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

_REFERENCE = re.compile(r"(?<!\$)\$\{([^{}]*)\}")
_UNCLOSED = re.compile(r"(?<!\$)\$\{(?![^{}]*\})")
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_PATH = rf"(?:\.{_NAME}|\[\d+\])*"
_GRAMMAR = re.compile(
    rf"^(?:inputs\.(?P<input>{_NAME})(?P<ipath>{_PATH})"
    rf"|steps\.(?P<step>{_NAME})\.(?:output(?P<opath>{_PATH})|outputs\.(?P<output>{_NAME})(?P<npath>{_PATH}))"
    rf"|item(?P<itempath>{_PATH}))$"
)
_SEGMENT = re.compile(rf"\.({_NAME})|\[(\d+)\]")

ReferenceKind = Literal["input", "step", "item"]


class ReferenceSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Reference:
    kind: ReferenceKind
    target: str
    """Input name or step id ("item" for ${item})."""
    output: str | None
    """Named output (``outputs.NAME``), or None for a whole output / input / item."""
    path: tuple[str | int, ...]
    text: str
    """The reference as written, including ``${ }``."""

    def __str__(self) -> str:
        return self.text


def _parse_path(text: str) -> tuple[str | int, ...]:
    return tuple(name if name else int(index) for name, index in _SEGMENT.findall(text))


def parse_reference(inner: str, text: str | None = None) -> Reference:
    """Parse the inside of one ``${…}``."""
    body = inner.strip()
    match = _GRAMMAR.match(body)
    shown = text or f"${{{inner}}}"
    if not match:
        raise ReferenceSyntaxError(
            f"unrecognised reference {shown}; expected ${{inputs.NAME}}, ${{steps.ID.output}}, "
            "${steps.ID.outputs.NAME} or ${item}"
        )
    groups = match.groupdict()
    if groups["input"]:
        return Reference("input", groups["input"], None, _parse_path(groups["ipath"]), shown)
    if groups["step"]:
        if groups["output"]:
            return Reference("step", groups["step"], groups["output"], _parse_path(groups["npath"]), shown)
        return Reference("step", groups["step"], None, _parse_path(groups["opath"]), shown)
    return Reference("item", "item", None, _parse_path(groups["itempath"] or ""), shown)


def references_in_string(value: str) -> list[Reference]:
    if _UNCLOSED.search(value):
        raise ReferenceSyntaxError(f"unclosed '${{' in {value!r}")
    return [parse_reference(m.group(1), m.group(0)) for m in _REFERENCE.finditer(value)]


def iter_references(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Reference | ReferenceSyntaxError]]:
    """Every reference in a nested value, with the path where it was found.

    Syntax errors are yielded (not raised) so a validator can report all of them.
    """
    if isinstance(value, str):
        try:
            for ref in references_in_string(value):
                yield path, ref
        except ReferenceSyntaxError as exc:
            yield path, exc
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_references(item, (*path, str(key)))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from iter_references(item, (*path, index))


class ReferenceResolutionError(LookupError):
    pass


@dataclass(frozen=True)
class ReferenceScope:
    """The values references resolve against during a run."""

    inputs: Mapping[str, Any]
    step_outputs: Mapping[str, Any]
    """step id → the step's output (a dict of named outputs, or any single value)."""
    item: Any = None
    has_item: bool = False
    skipped: frozenset[str] = frozenset()
    """Steps that were skipped: references to them resolve to None (the join after an if/else)."""

    def lookup(self, ref: Reference) -> Any:
        if ref.kind == "input":
            if ref.target not in self.inputs:
                raise ReferenceResolutionError(f"{ref}: no run input {ref.target!r}")
            value = self.inputs[ref.target]
        elif ref.kind == "item":
            if not self.has_item:
                raise ReferenceResolutionError(f"{ref}: ${{item}} is only defined inside a forEach step")
            value = self.item
        elif ref.target in self.skipped:
            return None
        else:
            if ref.target not in self.step_outputs:
                raise ReferenceResolutionError(f"{ref}: step {ref.target!r} has no output (not run, skipped or failed)")
            value = self.step_outputs[ref.target]
            if ref.output is not None:
                if not isinstance(value, Mapping) or ref.output not in value:
                    raise ReferenceResolutionError(f"{ref}: step {ref.target!r} produced no output {ref.output!r}")
                value = value[ref.output]
        for segment in ref.path:
            try:
                value = value[segment]
            except (KeyError, IndexError, TypeError):
                raise ReferenceResolutionError(
                    f"{ref}: cannot follow {segment!r} into {type(value).__name__}"
                ) from None
        return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def resolve(value: Any, scope: ReferenceScope) -> Any:
    """Replace references in a nested value; an exact ``${…}`` keeps the value's type."""
    if isinstance(value, str):
        refs = list(_REFERENCE.finditer(value))
        if len(refs) == 1 and refs[0].span() == (0, len(value)):
            return scope.lookup(parse_reference(refs[0].group(1), refs[0].group(0)))
        if refs:
            value = _REFERENCE.sub(lambda m: _as_text(scope.lookup(parse_reference(m.group(1), m.group(0)))), value)
        return value.replace("$${", "${")
    if isinstance(value, Mapping):
        return {key: resolve(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, scope) for item in value]
    return value
