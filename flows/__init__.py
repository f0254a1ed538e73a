"""Workflow definitions as Prefect flows: loading, validation, compilation.

``compile_workflow`` is imported lazily so that commands that only validate do
not pay for importing Prefect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentparty.flows.compiler import CompileOptions, compile_workflow
    from agentparty.models.run_results import StepResult, StepStatus, WorkflowFailed, WorkflowResult

__all__ = ["CompileOptions", "StepResult", "StepStatus", "WorkflowFailed", "WorkflowResult", "compile_workflow"]

_LAZY = {
    "compile_workflow": "agentparty.flows.compiler",
    "CompileOptions": "agentparty.flows.compiler",
    "StepResult": "agentparty.models.run_results",
    "StepStatus": "agentparty.models.run_results",
    "WorkflowFailed": "agentparty.models.run_results",
    "WorkflowResult": "agentparty.models.run_results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib  # with the imports it makes: deferred, so that commands that only validate skip Prefect

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentparty.flows' has no attribute {name!r}")
