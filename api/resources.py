"""Seed 000's REST models and the lists a UI needs: templates, agents, teams, workflows, runs.

Every route is guarded by ``require(resource, action)``. Graph and template
reads are blocking driver / SQLite calls, so their routes are plain ``def``
(FastAPI runs them in its thread pool); the Prefect ones use the app's shared
async client.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from prefect.client.orchestration import PrefectClient  # a real import: FastAPI resolves the annotations
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterId,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterTags,
)
from prefect.client.schemas.sorting import FlowRunSort

from agentparty.api.errors import GUARDED, declared, field_errors, refuse_unknown_query
from agentparty.api.security import Principal, outside_scope, refuse, require
from agentparty.api.services import graph_reader, prefect_client, settings_of, template_registry, workflow_index
from agentparty.api.views import (
    AgentSummary,
    CreatedTemplate,
    InvalidWorkflowFile,
    RunSummary,
    TemplateView,
    WorkflowList,
    WorkflowSummary,
)
from agentparty.api.workflow_index import IndexedWorkflow, WorkflowIndex
from agentparty.deployments.naming import deployment_name, flow_name, full_name
from agentparty.models.access import owner_tag, run_owner
from agentparty.models.api import AgentStateResponse, CapabilityProficiency, CreateAgentTemplateRequest
from agentparty.models.graph import Team
from agentparty.models.step_errors import TemplateError, ToolsRefused
from agentparty.runtime.graph_reads import GraphReader, TeamView
from agentparty.runtime.settings import Settings
from agentparty.tasks.templates import TemplateRegistry

if TYPE_CHECKING:
    from prefect.client.schemas.responses import DeploymentResponse

router = APIRouter(dependencies=[Depends(refuse_unknown_query)])

MAX_OFFSET = 1_000_000
"""Deeper pages than this are refused (422), not passed on: the graph's SKIP takes a 64-bit integer."""
Limit = Annotated[int, Query(ge=1, le=500, description="Most items in the answer.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip (paging).")]
GraphId = Annotated[str, Path(min_length=1, max_length=200, description="The id as the graph stores it.")]


# --- templates ------------------------------------------------------------------------


_TEMPLATE_CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The template, with its first version.",
        "links": {
            "GetTemplate": {
                "operationId": "get_template",
                "parameters": {"name": "$response.body#/template/name"},
                "description": "The template just created, read back.",
            },
        },
    }
}


@router.post(
    "/templates",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedTemplate,
    tags=["templates"],
    responses={
        **_TEMPLATE_CREATED,
        **declared(
            *GUARDED,
            400,
            _403="No permission, or what this server's configuration refuses: tool code off its allowlist, a prompt "
            "template it does not define (detail lists each refused field).",
            _409="A template with this name exists (add a version instead).",
        ),
    },
)
def create_template(
    request: CreateAgentTemplateRequest,
    principal: Annotated[Principal, Depends(require("templates", "create"))],
    registry: Annotated[TemplateRegistry, Depends(template_registry)],
) -> CreatedTemplate:
    """Create an agent template (seed 000 ``CreateAgentTemplateRequest``) with draft version 1.0.0."""
    try:
        created = registry.create(request, created_by=principal.name)
    except ToolsRefused as exc:
        # A valid request this server's policy refuses (its allowlist, its models), so 403, not 422; the detail
        # still names each refused field and why, like a validation error.
        problems = [{"loc": ("body", *where), "msg": why, "type": _refusal_type(where)} for where, why in exc.problems]
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=[e.model_dump() for e in field_errors(problems)]
        ) from None
    except TemplateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return CreatedTemplate(template=created.template, version=created.record)


def _refusal_type(where: tuple[str | int, ...]) -> str:
    return "prompt_template_unknown" if where[:1] == ("prompt_template",) else "tool_not_allowed"


@router.get(
    "/templates",
    response_model=list[TemplateView],
    tags=["templates"],
    responses=declared(*GUARDED),
    dependencies=[Depends(require("templates", "read"))],
)
def list_templates(registry: Annotated[TemplateRegistry, Depends(template_registry)]) -> list[TemplateView]:
    views = []
    for name in registry.store.names():
        template = registry.find(name)
        if template is not None:
            views.append(TemplateView(template=template, versions=registry.versions(name)))
    return views


@router.get(
    "/templates/{name}",
    response_model=TemplateView,
    tags=["templates"],
    operation_id="get_template",
    responses=declared(*GUARDED, _404="No template of this name."),
    dependencies=[Depends(require("templates", "read"))],
)
def get_template(
    name: Annotated[str, Path(min_length=1, max_length=200, description="The template's name.")],
    registry: Annotated[TemplateRegistry, Depends(template_registry)],
) -> TemplateView:
    """One template with its versions, oldest first."""
    template = registry.find(name)
    if template is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no template {name!r}")
    return TemplateView(template=template, versions=registry.versions(name))


# --- agents and teams (the graph) -----------------------------------------------------


@router.get(
    "/agents",
    response_model=list[AgentSummary],
    tags=["agents"],
    responses=declared(*GUARDED, 503),
    dependencies=[Depends(require("agents", "read"))],
)
def list_agents(
    reader: Annotated[GraphReader, Depends(graph_reader)], limit: Limit = 100, offset: Offset = 0
) -> list[AgentSummary]:
    return [
        AgentSummary(
            agent_id=a.id,
            name=a.name,
            status=a.status.value,
            model=a.model,
            reliability_score=a.reliability_score,
            token_count=a.token_count,
            updated_at=a.updated_at,
        )
        for a in reader.agents(limit, offset)
    ]


@router.get(
    "/agents/{agent_id}/state",
    response_model=AgentStateResponse,
    tags=["agents"],
    dependencies=[Depends(require("agents", "read"))],
    responses=declared(*GUARDED, 503, _404="No such agent."),
)
def agent_state(
    agent_id: GraphId,
    reader: Annotated[GraphReader, Depends(graph_reader)],
    settings: Annotated[Settings, Depends(settings_of)],
) -> AgentStateResponse:
    """Seed 000 ``AgentStateResponse``: the agent's current and previous lifecycle state, capabilities and tokens."""
    profile = reader.agent(agent_id)
    if profile is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no agent {agent_id!r} in the graph")
    agent, states = profile.agent, profile.states
    current = states[-1] if states else None
    since = current.timestamp if current else agent.updated_at
    team = reader.latest_team(agent_id)
    budget = (
        team.token_budget if team is not None and team.token_budget else settings.agent_runtime.default_token_budget
    )
    return AgentStateResponse(
        agent_id=agent.id,
        name=agent.name,
        current_state=(current.name if current else agent.status).value,
        state_timestamp=since,
        previous_state=states[-2].name.value if len(states) > 1 else None,
        time_in_state=max(0, int((datetime.now(UTC) - since).total_seconds())),
        capabilities=[
            CapabilityProficiency(name=c.capability.name, proficiency=c.proficiency) for c in profile.capabilities
        ],
        team_id=team.id if team else None,
        task_id=team.task_id if team else None,
        token_usage=agent.token_count,
        token_budget=budget,
    )


@router.get(
    "/teams",
    response_model=list[Team],
    tags=["teams"],
    responses=declared(*GUARDED, 503),
    dependencies=[Depends(require("teams", "read"))],
)
def list_teams(
    reader: Annotated[GraphReader, Depends(graph_reader)], limit: Limit = 100, offset: Offset = 0
) -> list[Team]:
    return reader.teams(limit, offset)


@router.get(
    "/teams/{team_id}",
    response_model=TeamView,
    tags=["teams"],
    dependencies=[Depends(require("teams", "read"))],
    responses=declared(*GUARDED, 503, _404="No such team."),
)
def get_team(team_id: GraphId, reader: Annotated[GraphReader, Depends(graph_reader)]) -> TeamView:
    view = reader.team(team_id)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no team {team_id!r} in the graph")
    return view


# --- workflows and runs (the search path and Prefect) ---------------------------------


async def _deployments(client: PrefectClient, workflows: list[IndexedWorkflow]) -> dict[str, DeploymentResponse]:
    """The deployment of each workflow that has one, by workflow id: two queries, whatever the count."""

    if not workflows:
        return {}
    names = {w.definition.id: (flow_name(w.definition), deployment_name(w.definition)) for w in workflows}
    flows = await client.read_flows(
        flow_filter=FlowFilter(name=FlowFilterName(any_=sorted({f for f, _ in names.values()})))
    )
    flow_names = {f.id: f.name for f in flows}
    if not flow_names:
        return {}
    deployments = await client.read_deployments(
        flow_filter=FlowFilter(id=FlowFilterId(any_=list(flow_names))),
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=sorted({d for _, d in names.values()}))),
    )
    by_name = {(flow_names.get(d.flow_id), d.name): d for d in deployments}
    return {wid: by_name[pair] for wid, pair in names.items() if pair in by_name}


@router.get(
    "/workflows",
    response_model=WorkflowList,
    tags=["workflows"],
    responses=declared(*GUARDED, 503),
)
async def list_workflows(
    principal: Annotated[Principal, Depends(require("workflows", "read"))],
    index: Annotated[WorkflowIndex, Depends(workflow_index)],
    client: Annotated[PrefectClient, Depends(prefect_client)],
) -> WorkflowList:
    """Definitions in the workflow search path, with their triggers and the deployment their runs go to
    (those the key's ``workflows`` condition names, when it has one)."""
    found, invalid = await index.listing()
    if principal.scope.restricted:
        found = {wid: w for wid, w in found.items() if principal.scope.admits(principal.name, wid)}
        invalid = []  # files that name no workflow are no business of a key limited to some
    deployed = await _deployments(client, list(found.values()))
    summaries = []
    for workflow_id, entry in sorted(found.items()):
        d = entry.definition
        summaries.append(
            WorkflowSummary(
                id=d.id,
                name=d.name,
                description=d.description,
                version=d.version,
                path=str(entry.path),
                stored_copy=entry.deployment is not None,
                inputs=d.inputs,
                triggers=[t.model_dump(mode="json", by_alias=True) for t in d.triggers],
                deployment=full_name(d),
                deployment_id=str(deployed[workflow_id].id) if workflow_id in deployed else None,
                webhook=f"/webhooks/{d.id}" if entry.webhook is not None else None,
            )
        )
    return WorkflowList(
        workflows=summaries, invalid=[InvalidWorkflowFile(path=str(i.path), errors=i.errors) for i in invalid]
    )


@router.get(
    "/runs",
    response_model=list[RunSummary],
    tags=["runs"],
    responses=declared(*GUARDED, 503),
)
async def list_runs(
    request: Request,
    principal: Annotated[Principal, Depends(require("runs", "read"))],
    index: Annotated[WorkflowIndex, Depends(workflow_index)],
    client: Annotated[PrefectClient, Depends(prefect_client)],
    workflow_id: Annotated[str | None, Query(max_length=200, description="Only this workflow's runs.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[RunSummary]:
    """Recent flow runs of the deployed workflows in the search path, newest first, with their state (those
    within the key's conditions: named workflows, runs it started)."""
    scope = principal.scope
    if workflow_id is not None and not scope.reaches_workflow(workflow_id):
        raise refuse(request, status.HTTP_403_FORBIDDEN, outside_scope(principal, f"workflow {workflow_id!r}"))
    found, _ = await index.listing()
    workflows = [
        w for wid, w in found.items() if (workflow_id is None or wid == workflow_id) and scope.reaches_workflow(wid)
    ]
    deployed = await _deployments(client, workflows)
    if not deployed:
        return []
    owner = {d.id: (wid, full_name(found[wid].definition)) for wid, d in deployed.items()}
    mine = FlowRunFilter(tags=FlowRunFilterTags(all_=[owner_tag(principal.name)])) if scope.owner_only() else None
    runs = await client.read_flow_runs(
        flow_run_filter=mine,
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(owner))),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=limit,
    )
    summaries = []
    for run in runs:
        wid, deployment = owner.get(run.deployment_id, ("", "")) if run.deployment_id else ("", "")
        if not scope.admits(principal.name, wid, run_owner(run.tags)):
            continue
        summaries.append(
            RunSummary(
                id=str(run.id),
                name=run.name,
                workflow_id=wid,
                deployment=deployment,
                state_type=run.state.type.value if run.state else None,
                state_name=run.state.name if run.state else None,
                tags=list(run.tags),
                created=run.created,
                expected_start_time=run.expected_start_time,
                start_time=run.start_time,
                end_time=run.end_time,
            )
        )
    return summaries
