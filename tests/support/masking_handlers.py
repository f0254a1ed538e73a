"""Handlers of the data-masking test (``handler: support.masking_handlers:NAME``): user code that logs and fails
with the personal data it was given, as user code does."""

from __future__ import annotations

from prefect import get_run_logger

from agentparty.models.step_errors import StepValidationError


def log_contact(contact: str) -> dict[str, str]:
    get_run_logger().info("writing to %s", contact)
    return {"wrote": contact}


def refuse_contact(contact: str) -> None:
    raise StepValidationError(f"cannot reach {contact}")
