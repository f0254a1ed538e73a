"""The keys graph nodes are known by: UUIDs (random, or derived from what a node is) and semantic versions.

Kept below the node and relationship models (:mod:`agentparty.models.graph`,
:mod:`agentparty.models.graph_relationships`) because both use them, and so do
models that never touch the graph (messages, agent instances, SDK configuration).
"""

from __future__ import annotations

import json
import re
from typing import Annotated
from uuid import UUID, uuid4, uuid5

from pydantic import AfterValidator

SEMVER_PATTERN = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def _semver(value: str) -> str:
    if not SEMVER_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. '1.2.0')")
    return value


SemVer = Annotated[str, AfterValidator(_semver)]


def _uuid_string(value: str) -> str:
    try:
        return str(UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{value!r} is not a UUID") from None


UuidStr = Annotated[str, AfterValidator(_uuid_string)]
"""Seed 000's ``uuid4_string``: any RFC 4122 UUID, stored in canonical lowercase form."""


def new_id() -> str:
    return str(uuid4())


_STABLE_NAMESPACE = UUID("0c7d5a8e-5b5e-4b8f-9a3c-6f1e2d4b7a90")


def stable_id(kind: str, *parts: str) -> str:
    """A UUID derived from what a node *is* (its kind and natural key), so every writer and every replay
    of a write names the same node: a retried step, a resumed run, the synthetic history generator."""
    return str(uuid5(_STABLE_NAMESPACE, json.dumps([kind, *parts])))


def capability_id(name: str) -> str:
    """Capabilities are identified by name across templates, tasks and the GNN."""
    return stable_id("capability", name)
