"""A resumed run and the definition version it began with (seed 002 ``versioning.compatibilityMatrix``).

The first attempt under a resume key records its definition version in the
state database (``runtime/run_documents.py``, kind ``run-versions``). When the
run is resumed after the workflow was redeployed with another version, the
configuration decides (``models/definition_versions.py``): a compatible version
keys its step results under the first version, so what the first attempt
completed is reused; an incompatible one refuses the resume with the reason
instead of silently running every step again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentparty.models.definition_versions import resume_compatibility
from agentparty.models.step_errors import ResumeRefused
from agentparty.runtime.run_documents import RunDocuments

if TYPE_CHECKING:
    from agentparty.flows.services import RunServices
    from agentparty.models import WorkflowDefinition


def resumed_version(definition: WorkflowDefinition, run_key: str, services: RunServices) -> str | None:
    """The version to key step results under (None: the definition's own); raises :class:`ResumeRefused`."""
    documents = RunDocuments(services.home, "run-versions", services.settings.state_backend())
    started = documents.write_once(run_key, definition.version)
    if started == definition.version:
        return None
    verdict = resume_compatibility(started, definition.version, services.settings.load_sdk_configuration().versioning)
    if not verdict.accepted:
        raise ResumeRefused(
            f"run {run_key!r} began with {definition.id} version {started}; it cannot resume with version "
            f"{definition.version}: {verdict.reason}. Resume it with version {started}, or start a new run"
        )
    return started
