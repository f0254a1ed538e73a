"""Turn pydantic validation errors into ``field.path: reason`` lines a person can act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

# Discriminated unions put the chosen tag into error locations
# (``steps.2.task.configuration``); it is not part of the document, so drop it.
_UNION_TAGS = frozenset(
    {
        "task",
        "decision",
        "parallel",
        "subgraph",
        "manual",
        "schedule",
        "event",
        "webhook",
        "user",
        "agent",
        "system",
        "error",
        "api_key",
        "oauth2",
        "bearer_token",
        "email",
        "slack",
        "sms",
        "agent_provisioned",
        "agent_state_transition",
        "team_assembled",
        "team_performance",
        "task_submitted",
        "task_analyzed",
        "agent_update",
        "team_update",
    }
)
_TAG_PARENTS = frozenset({"step", "authentication"})

_PREFIXES = ("Value error, ", "Assertion failed, ")


@dataclass(frozen=True)
class FieldError:
    """One validation failure: the dotted path in the document, the reason, and the line if known."""

    path: str
    message: str
    code: str
    line: int | None = None

    def render(self, source: str | None = None) -> str:
        where = f"{source}:{self.line}" if source and self.line else source
        parts = [p for p in (where, self.path or "(document)", self.message) if p]
        return ": ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message, "code": self.code, "line": self.line}


def clean_loc(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        if isinstance(part, str) and part in _UNION_TAGS and (isinstance(prev, int) or prev in _TAG_PARENTS):
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def format_path(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = str(part)
    return text


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check its spelling; unknown fields are refused)"
    message = error["msg"]
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def field_errors(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[FieldError]:
    """Flatten a ValidationError, expanding whole-definition problems into one line each."""
    found: list[FieldError] = []
    for error in exc.errors(include_url=False):
        loc = (*prefix, *clean_loc(error["loc"]))
        ctx = error.get("ctx") or {}
        if "problems" in ctx:  # whole-definition and SOC 2 checks report several paths at once
            base = format_path(loc)
            for problem in ctx["problems"]:
                path = ".".join(p for p in (base, problem["path"]) if p)
                found.append(FieldError(path.replace(".[", "["), problem["message"], problem["code"]))
            continue
        if error["type"] in ("union_tag_invalid", "union_tag_not_found") and "discriminator" in ctx:
            loc = (*loc, str(ctx["discriminator"]).strip("'"))
        found.append(FieldError(format_path(loc), _message(error), error["type"]))
    return found
