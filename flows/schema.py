"""JSON Schema export of the document kinds, for editors (YAML language server) and tooling."""

from __future__ import annotations

import json

from agentparty.flows.definitions import DOCUMENT_KINDS, _model_for

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(kind: str) -> dict[str, object]:
    model = _model_for(kind)
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": f"agentparty:{kind}", **schema}


def json_schema_text(kind: str) -> str:
    if kind not in DOCUMENT_KINDS:
        raise KeyError(f"unknown kind {kind!r}; known: {', '.join(DOCUMENT_KINDS)}")
    return json.dumps(json_schema(kind), indent=2, sort_keys=False) + "\n"
