"""The Prefect flow of a compiled workflow, which seals its secret inputs before Prefect records them.

Calling a flow creates its flow run with the call's arguments as parameters:
Prefect keeps them in its database and shows them in the UI. Inputs a
definition declares ``writeOnly: true`` are sealed here first
(``runtime/secret_inputs.py``), so ``agentparty run``, a subgraph step and a
Python caller alike hand Prefect only ciphertext; the run opens them inside
(``flows/scheduler.py``). Prefect's ``with_options`` builds a plain ``Flow``, so
it is overridden to keep this behaviour on the copies (subgraph steps use it).
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from prefect import Flow

from agentparty.models import WorkflowDefinition
from agentparty.models.run_results import WorkflowResult
from agentparty.runtime.sealing import sealer_at
from agentparty.runtime.secret_inputs import seal_secret_inputs


class CompiledDefinition(Protocol):
    """What sealing needs of a compiled workflow (``flows.compiler.CompiledWorkflow``)."""

    definition: WorkflowDefinition
    home: Path


class SealingFlow(Flow[..., Coroutine[Any, Any, WorkflowResult]]):
    """A compiled workflow's flow: its ``compiled`` workflow is attached by ``compile_workflow``."""

    compiled: CompiledDefinition

    def _sealed(self, inputs: Any) -> Any:
        compiled = getattr(self, "compiled", None)
        if compiled is None or not isinstance(inputs, dict):
            return inputs
        return seal_secret_inputs(compiled.definition, inputs, sealer_at(compiled.home))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            args = (self._sealed(args[0]), *args[1:])
        elif "inputs" in kwargs:
            kwargs["inputs"] = self._sealed(kwargs["inputs"])
        return super().__call__(*args, **kwargs)

    def with_options(self, **options: Any) -> SealingFlow:  # the same options; this class kept
        copy = super().with_options(**options)
        copy.__class__ = SealingFlow
        copy.compiled = self.compiled  # type: ignore[attr-defined]  # set on the copy now that its class has the slot
        return copy  # type: ignore[return-value]  # its class was just set
