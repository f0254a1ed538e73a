"""What validation may look up beyond the data itself, passed as pydantic validation context.

Rules such as "model must be registered" or "subgraph targets exist" depend on
the surroundings, not on one document. Callers pass a :class:`ValidationContext`
(``Model.model_validate(data, context=ValidationContext(...))``); without one,
those rules are not checked, and say so nowhere: the loaders and the CLI always
pass one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model_registry import ModelRegistry


@dataclass(frozen=True)
class ValidationContext:
    model_registry: ModelRegistry | None = None
    """Models an agent or step may name."""
    workflow_exists: Callable[[str], bool] | None = None
    """Whether a subgraph target (file path or registered workflow id) resolves."""


def context_of(info: Any) -> ValidationContext:
    """The ValidationContext carried by a pydantic ``ValidationInfo`` (an empty one if absent)."""
    ctx = getattr(info, "context", None)
    if isinstance(ctx, ValidationContext):
        return ctx
    if isinstance(ctx, dict):
        found = ctx.get("agentparty")
        if isinstance(found, ValidationContext):
            return found
    return ValidationContext()
