"""Builders of workflow documents shared by the tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"


def minimal_workflow(**overrides: Any) -> dict[str, Any]:
    """The smallest valid definition (one handler step, one trigger), as a plain dict."""
    doc: dict[str, Any] = {
        "id": "minimal",
        "name": "Minimal",
        "steps": [{"id": "only", "type": "task", "configuration": {"handler": "handlers:noop"}}],
        "triggers": [{"type": "manual"}],
    }
    doc.update(copy.deepcopy(overrides))
    return doc


def two_step_workflow(**overrides: Any) -> dict[str, Any]:
    """A non-trivial definition: two steps, a declared output, a reference and error handling."""
    doc = minimal_workflow(
        inputs={"topic": {"type": "string", "default": "x"}},
        steps=[
            {
                "id": "first",
                "type": "task",
                "configuration": {"handler": "handlers:first"},
                "inputs": {"topic": "${inputs.topic}"},
                "outputs": {"value": {"type": "number"}},
            },
            {
                "id": "second",
                "type": "task",
                "configuration": {"handler": "handlers:second"},
                "inputs": {"value": "${steps.first.outputs.value}"},
            },
        ],
        errorHandling={"retryAttempts": 1, "backoffStrategy": "fixed"},
    )
    doc.update(copy.deepcopy(overrides))
    return doc
