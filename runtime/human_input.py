"""What a paused run waits for a human to answer: typed Prefect run inputs.

A run pauses (``pause_flow_run(wait_for_input=…)``) for one of these; the
Prefect UI renders it as a form, and ``POST /approvals/…`` answers it over
HTTP. One home for both, below the agent lifecycle (``tasks/lifecycle.py``),
the compiler's human-intervention fallback (``flows/``) and the API that lists
and answers them (``api/approvals.py``), which tells them apart by the input
model's name.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect.input import RunInput


class ApprovalDecision(RunInput):
    """What an approver answers when an agent's lifecycle transition needs a human (template governance)."""

    approve: bool
    reason: str = ""
    approver: str = "operator"


class ToolCallDecision(ApprovalDecision):
    """What an approver answers when an agent asks to call a tool that needs approval.

    ``tool`` and ``arguments`` (redacted) are filled in when the run pauses, so the Prefect UI's form and
    ``GET /approvals`` show what is asked; the run reads only ``approve``, ``reason`` and ``approver`` back.
    """

    tool: str = ""
    arguments: str = ""


class HumanDecision(RunInput):
    """What an operator answers when a step failed under ``fallbackAction: human_intervention``."""

    action: Literal["retry", "skip", "abort"] = "retry"
    output: dict[str, Any] | None = None
    """With ``skip``: the output the step should have produced (its dependents use it)."""
    note: str = ""
