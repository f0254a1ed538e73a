"""``POST /workflows/{workflow_id}/runs``: start a run of a deployed workflow as the calling key.

The run is created from the workflow's deployment with the tag
``agentparty.owner:<key name>`` (:func:`~agentparty.models.access.owner_tag`),
which is what ``conditions: {owner: self}`` checks on ``/runs``, ``/approvals``
and their decisions. A key whose permission is limited to named workflows can
start only those (403 naming the workflow, and the refusal is audited).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from prefect.client.orchestration import PrefectClient  # a real import: FastAPI resolves the annotations
from pydantic import BaseModel, ConfigDict, Field

from agentparty.api.audit import record
from agentparty.api.errors import GUARDED, FieldError, declared, refuse_unknown_query
from agentparty.api.security import Principal, require
from agentparty.api.services import prefect_client, workflow_index
from agentparty.api.views import RunSummary
from agentparty.api.webhooks import WorkflowId
from agentparty.api.workflow_index import WorkflowIndex
from agentparty.deployments.naming import deployment_parameters, flow_name, full_name
from agentparty.models.access import owner_tag, run_owner

logger = logging.getLogger(__name__)

router = APIRouter(tags=["runs"], dependencies=[Depends(refuse_unknown_query)])

START_TAG = "api"


class StartRunRequest(BaseModel):
    """The run's inputs, checked against the definition's ``inputs`` before anything is created."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict, description="Run inputs by name.")


@router.post(
    "/workflows/{workflow_id}/runs",
    status_code=status.HTTP_201_CREATED,
    response_model=RunSummary,
    responses=declared(*GUARDED, 400, 503, _404="No such workflow in the search path, or it has no deployment."),
)
async def start_run(
    request: Request,
    workflow_id: WorkflowId,
    principal: Annotated[Principal, Depends(require("runs", "create", creates_own=True))],
    index: Annotated[WorkflowIndex, Depends(workflow_index)],
    client: Annotated[PrefectClient, Depends(prefect_client)],
    body: StartRunRequest | None = None,
) -> RunSummary:
    """Start a run of the workflow's deployment (``agentparty deploy``); a worker picks it up."""
    inputs = (body or StartRunRequest()).inputs
    found = await index.lookup(workflow_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no workflow {workflow_id!r} in the search path")
    _, problems = found.definition.resolve_run_inputs(inputs)
    if problems:
        errors = []
        for problem in problems:
            where, _, message = problem.partition(": ")
            errors.append(
                FieldError(loc=["body", *where.split(".")], field=f"body.{where}", msg=message, type="run_input")
            )
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[e.model_dump() for e in errors])
    deployment = full_name(found.definition)
    deployment_id = await request.app.state.deployments.id_of(client, deployment)
    if deployment_id is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"workflow {workflow_id!r} has no deployment {deployment!r}: deploy it"
        )
    run = await client.create_flow_run_from_deployment(
        deployment_id, parameters=deployment_parameters(inputs), tags=[START_TAG, owner_tag(principal.name)]
    )
    logger.info("run %s of %s started by %s", run.id, workflow_id, principal.name)
    record(request, "run.start", str(run.id), workflow=workflow_id, deployment=deployment)
    return RunSummary(
        id=str(run.id),
        name=run.name,
        workflow_id=workflow_id,
        deployment=deployment,
        state_type=run.state.type.value if run.state else None,
        state_name=run.state.name if run.state else None,
        tags=list(run.tags),
        created=run.created,
        expected_start_time=run.expected_start_time,
        start_time=run.start_time,
        end_time=run.end_time,
    )


async def run_in_scope(request: Request, principal: Principal, flow: str, tags: list[str] | tuple[str, ...]) -> bool:
    """Whether a run of the flow named ``flow`` with these tags is within the key's conditions (approvals); its
    workflow is found in the search path or among the copies stored with the deployments."""
    if not principal.scope.restricted:
        return True
    index: WorkflowIndex = request.app.state.workflows
    by_flow = {flow_name(entry.definition): wid for wid, entry in (await index.listing())[0].items()}
    return principal.scope.admits(principal.name, by_flow.get(flow), run_owner(list(tags)))
