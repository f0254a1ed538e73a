"""Workflow definitions as Prefect flows: loading, validation, compilation.

``compile_workflow`` is imported lazily so that commands that only validate do
not pay for importing Prefect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentparty.flows.compiler import CompileOptions, compile_workflow
    from agentparty.flows.result import StepResult, StepStatus, WorkflowFailed, WorkflowResult

__all__ = ["CompileOptions", "StepResult", "StepStatus", "WorkflowFailed", "WorkflowResult", "compile_workflow"]

_LAZY = {
    "compile_workflow": "agentparty.flows.compiler",
    "CompileOptions": "agentparty.flows.compiler",
    "StepResult": "agentparty.flows.result",
    "StepStatus": "agentparty.flows.result",
    "WorkflowFailed": "agentparty.flows.result",
    "WorkflowResult": "agentparty.flows.result",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentparty.flows' has no attribute {name!r}")
