"""Base classes and shared field types for every model in `agentparty.models`.

Seed 000 (graph, events, API, configuration) names its fields in snake_case;
seed 002 (agent SDK) in camelCase. Both kinds of model accept either spelling
on input, and each writes its own seed's spelling on output, so JSON produced
here can be fed back to the seed's consumers unchanged.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel


def _as_utc(value: datetime) -> datetime:
    # Naive datetimes are taken as UTC: the graph server hands stored datetimes
    # back naive (DESIGN.md §5), and everything we store is UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timezone-aware datetime normalised to UTC."""

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
PositiveStrictInt = Annotated[int, Field(gt=0, strict=True)]
"""A positive integer; floats, numeric strings and booleans are refused (rate limits, counts)."""
NonNegativeInt = Annotated[int, Field(ge=0)]


def _json_integer(value: Any) -> Any:
    """JSON Schema's ``integer``: a number with no fraction (``2000`` or ``2000.0``), never a string or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be an integer (a JSON number, not a string or boolean)")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("Input should be an integer, without a fractional part")
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
"""An integer exactly as JSON Schema's ``integer`` has it, for documents a client sends (templates over HTTP):
what the published schema allows is accepted, what it refuses is refused."""
PositiveJsonInt = Annotated[int, Field(gt=0), BeforeValidator(_json_integer)]
"""A positive :data:`JsonInt` (the bound before the validator, so the JSON Schema says ``exclusiveMinimum``)."""
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
"""A float in [0, 1]: scores, probabilities, proficiencies."""
Priority = Annotated[int, Field(ge=1, le=5)]
"""Seed 000 priority level, 1 (lowest) to 5 (highest)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class SeedModel(BaseModel):
    """A model from seed 000: snake_case on the wire, unknown fields refused."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
    )


class CamelModel(BaseModel):
    """A model from seed 002: camelCase on the wire, snake_case accepted too."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        validate_assignment=True,
    )


def first_non_json_value(value: Any, path: str = "") -> str | None:
    """Return the path of the first value that JSON cannot represent, or None.

    Used for the seed's "state must be serializable for persistence" rule: the
    error must point at the offending key, not just say "not serializable".
    """
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path or '(root)'} (non-finite float {value!r})"
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = first_non_json_value(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}.{key!r} (key of type {type(key).__name__}; keys must be strings)"
            found = first_non_json_value(item, f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(value, BaseModel):
        return first_non_json_value(value.model_dump(mode="json"), path)
    return f"{path or '(root)'} (value of type {type(value).__name__})"
