"""Run services for tests: the session's settings, with what a test hands in instead (``flows.services.run_services``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentparty.flows.services import RunServices, run_services
from agentparty.runtime.settings import get_settings


def services(*, home: Path | None = None, **overrides: Any) -> RunServices:
    """``run_services`` on the current settings (``home``: another state directory); ``recorder=None`` records
    nothing, ``events=None`` emits nothing."""
    settings = get_settings()
    if home is not None:
        settings = settings.model_copy(update={"home": home})
    return run_services(settings, **overrides)
