"""The kinds of document a user writes (workflow, SDK configuration, agent template), and their JSON Schemas.

``agentparty validate`` tells the kinds apart by their top-level keys; the JSON
Schemas are what editors (the YAML language server) and tooling validate
against (``agentparty schema KIND``; ``schemas/workflow.schema.json``).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from .api import CreateAgentTemplateRequest
from .sdk_config import SDKConfiguration
from .workflow import WorkflowDefinition

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

DOCUMENT_KINDS: dict[str, type[BaseModel]] = {
    "workflow": WorkflowDefinition,
    "sdk-config": SDKConfiguration,
    "agent-template": CreateAgentTemplateRequest,
}


def detect_kind(data: dict[str, Any]) -> str:
    """Guess what a document is from its top-level keys (``steps`` → workflow, …)."""
    if "steps" in data or "triggers" in data:
        return "workflow"
    if "personality" in data or "capabilities" in data:
        return "agent-template"
    if {"authentication", "models", "security", "monitoring", "communication", "versioning"} & set(data):
        return "sdk-config"
    return "workflow"


def model_for(kind: str) -> type[BaseModel]:
    """The model that validates documents of ``kind``."""
    return DOCUMENT_KINDS[kind]


def json_schema(kind: str) -> dict[str, object]:
    model = model_for(kind)
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": f"agentparty:{kind}", **schema}


def json_schema_text(kind: str) -> str:
    if kind not in DOCUMENT_KINDS:
        raise KeyError(f"unknown kind {kind!r}; known: {', '.join(DOCUMENT_KINDS)}")
    return json.dumps(json_schema(kind), indent=2, sort_keys=False) + "\n"
