"""Deterministic values for the simulated provider: a stable hash, and a value for a JSON Schema.

No randomness anywhere: every choice is a hash of what was asked (and the
configured seed), so the same request gets the same answer on every run.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

SIMULATED_LABEL = "[simulated]"

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "simulated@example.com",
    "uri": "https://example.com/simulated",
    "url": "https://example.com/simulated",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
"""String formats pydantic writes into tool schemas (and validates): a fixed, valid value for each."""


def digest(*parts: Any) -> int:
    """A stable 64-bit hash of JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/…``, as pydantic writes nested models); other refs resolve to any value."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or key not in target:
            return {}
        target = target[key]
    if not isinstance(target, dict):
        return {}
    merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return _resolve(merged, root) if "$ref" in target else merged


def sample_for_schema(
    schema: dict[str, Any], seed: int, label: str = "value", root: dict[str, Any] | None = None
) -> Any:
    """A deterministic value that satisfies a JSON Schema of the common shapes."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][seed % len(schema["enum"])]
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return sample_for_schema(schema[combinator][0], seed, label, root)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(_resolve(part, root))
        return sample_for_schema(merged, seed, label, root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: sample_for_schema(sub, digest(seed, name), name, root) for name, sub in properties.items()}
    if kind == "array":
        count = max(schema.get("minItems", 2), 1)
        if "maxItems" in schema:
            count = min(count, schema["maxItems"])
        return [sample_for_schema(schema.get("items", {}), digest(seed, i), label, root) for i in range(count)]
    if kind == "integer":
        low = math.ceil(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
        high = math.floor(schema.get("maximum", schema.get("exclusiveMaximum", 101) - 1))
        return low + seed % max(high - low + 1, 1)
    if kind == "number":
        low, high = schema.get("minimum", 0.0), schema.get("maximum", 1.0)
        return round(low + (seed % 1000) / 1000 * (high - low), 3)
    if kind == "boolean":
        return seed % 2 == 0
    if kind == "null":
        return None
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    return fit_string(f"{SIMULATED_LABEL} {label} #{seed % 10_000}", schema)


def fit_string(text: str, schema: dict[str, Any]) -> str:
    """``text`` padded or cut to the schema's ``minLength`` / ``maxLength``."""
    min_length, max_length = schema.get("minLength", 0), schema.get("maxLength")
    text = text.ljust(min_length, ".")
    return text[:max_length] if max_length is not None else text
