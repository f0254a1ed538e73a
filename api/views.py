"""Response models of the API's lists and views that the seeds leave open (the seeds' own are in ``models.api``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from agentparty.models.graph import AgentTemplate
from agentparty.models.templates import VersionRecord
from agentparty.runtime.graph_reads import TeamView

__all__ = [
    "AgentSummary",
    "CreatedTemplate",
    "InvalidWorkflowFile",
    "RunSummary",
    "TeamView",
    "TemplateView",
    "WorkflowList",
    "WorkflowSummary",
]


class TemplateView(BaseModel):
    template: AgentTemplate
    versions: list[VersionRecord]
    """Oldest first."""


class CreatedTemplate(BaseModel):
    """201 for ``POST /templates``: the template and its first version (a draft until published)."""

    template: AgentTemplate
    version: VersionRecord


class AgentSummary(BaseModel):
    """An agent in the list (its full state: ``GET /agents/{id}/state``)."""

    agent_id: str
    name: str
    status: str
    model: str
    reliability_score: float
    token_count: int
    updated_at: datetime


class WorkflowSummary(BaseModel):
    id: str
    name: str
    description: str | None = None
    version: str | None = None
    path: str
    """The definition file (for a stored copy: the file it was deployed from, on the deploying host)."""
    stored_copy: bool = False
    """True when read from the copy stored with its deployment on the Prefect server, as no file in the API's
    search path defines it (``agentparty deploy`` and ``serve`` store one)."""
    inputs: dict[str, Any] = Field(default_factory=dict)
    """Run inputs: name → JSON Schema (a webhook's body is such an object)."""
    triggers: list[dict[str, Any]]
    deployment: str
    """``FLOW/DEPLOYMENT``: the Prefect deployment its runs belong to."""
    deployment_id: str | None = None
    """None while the workflow is not deployed (``agentparty deploy``)."""
    webhook: str | None = None
    """The path its webhook is served at, when it has a webhook trigger."""


class InvalidWorkflowFile(BaseModel):
    path: str
    errors: list[str]


class WorkflowList(BaseModel):
    workflows: list[WorkflowSummary]
    invalid: list[InvalidWorkflowFile]
    """Definition files in the search path that do not validate (so a UI can show why one is missing)."""


class RunSummary(BaseModel):
    id: str
    name: str
    workflow_id: str
    deployment: str
    state_type: str | None
    state_name: str | None
    tags: list[str]
    created: datetime | None
    expected_start_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
