"""What a workflow run returns: per-step status, outputs, attempts, duration and tokens."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from .tools import TurnRecord


class StepStatus(StrEnum):
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"


class _Persisted(BaseModel):
    """A model pickled into persisted flow results: fields added since fill in their defaults when an older
    pickle loads (pydantic restores ``__dict__`` as stored, and a missing field would raise on access)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        values = state.get("__dict__", {})
        for name, info in type(self).model_fields.items():
            if name not in values and not info.is_required():
                values[name] = info.get_default(call_default_factory=True)
        super().__setstate__(state)


class StepResult(_Persisted):
    step_id: str
    status: StepStatus
    output: Any = None
    """The step's output: a dict of named outputs, a list for forEach steps, or any single value."""
    attempts: int = 0
    duration_s: float = 0.0
    tokens: int = 0
    model: str | None = None
    """The model that answered an agent step (a fallback when the requested one could not)."""
    simulated: bool = False
    """True when the simulated provider answered: the output is not from a real model."""
    cost: float = 0.0
    """From the model registry's pricing, in its currency (USD by default)."""
    reason: str | None = None
    """Why the step was skipped or failed, or a note on how it completed."""
    cached: bool = False
    """True when a resumed run reused this step's result instead of executing it again."""
    items: list[StepResult] | None = None
    """Per-item results of a forEach step, in input order."""
    turns: list[TurnRecord] = Field(default_factory=list)
    """An agent step's model turns: who answered, tokens per turn, the tool calls each asked for (empty for other
    steps; a forEach step's are on its items)."""

    @property
    def outputs(self) -> dict[str, Any]:
        return self.output if isinstance(self.output, dict) else {}


class WorkflowResult(_Persisted):
    workflow_id: str
    workflow_name: str
    run_id: str | None = None
    status: StepStatus
    steps: dict[str, StepResult] = Field(default_factory=dict)
    reason: str | None = None
    duration_s: float = 0.0
    events_pending: int = 0
    """Events of this run not yet delivered to the broker when it ended (they stay in the outbox)."""

    @property
    def tokens(self) -> int:
        return sum(step.tokens for step in self.steps.values())

    @property
    def cost(self) -> float:
        return sum(step.cost for step in self.steps.values())

    @property
    def failed_steps(self) -> list[str]:
        return [sid for sid, step in self.steps.items() if step.status is StepStatus.FAILED]

    def table(self) -> list[dict[str, Any]]:
        """Rows for the run artifact and the CLI: step, status, attempts, duration, tokens, model."""
        return [
            {
                "step": sid,
                "status": step.status.value + (" (cached)" if step.cached else ""),
                "attempts": step.attempts,
                "duration_s": round(step.duration_s, 3),
                "tokens": step.tokens,
                "model": (step.model or "") + (" (simulated)" if step.simulated else ""),
                "note": step.reason or "",
            }
            for sid, step in self.steps.items()
        ]


class WorkflowFailed(Exception):
    """Raised by a compiled flow whose run failed; ``result`` holds every step's outcome."""

    def __init__(self, result: WorkflowResult) -> None:
        self.result = result
        super().__init__(f"workflow {result.workflow_id!r} failed: {result.reason}")

    def __reduce__(self) -> tuple[type[WorkflowFailed], tuple[WorkflowResult]]:
        # Prefect persists a failed run's exception; whoever reads it back (a deployment's caller
        # in another process) gets the WorkflowResult too, not just the message.
        return (type(self), (self.result,))
