"""``/approvals``: the human decisions runs are waiting for, listed and answered over HTTP.

Two kinds of pause ask a human (both are Prefect flow runs paused for typed
input, which the Prefect UI also shows as a form):

- ``governance``: an agent's lifecycle transition that its template's
  governance rules give to a human (``tasks/lifecycle.py``, input
  :class:`ApprovalDecision`, pause key ``approve-…-SOURCE-to-TARGET``);
- ``human_intervention``: a step that failed under ``fallbackAction:
  human_intervention`` (``flows/fallbacks.py``, input :class:`HumanDecision`,
  pause key ``STEP-ROUND``);
- ``tool``: an agent asks to call a tool that needs approval
  (``tasks/agent_loop.py``, input :class:`ToolCallDecision`, pause key
  ``tool-…-TOOL``); the listing shows the tool and its arguments, redacted.
  A rejection goes back to the agent's model as a refused call.

The kind comes from the input model Prefect stored for the pause, not from a
naming convention, so a renamed key cannot turn one kind into the other.
Approving a governance pause sends ``approve: true`` with the caller's key
name as the approver (recorded on the transition); approving an intervention
retries the step (or skips it with the given output), rejecting aborts the
run. A run that is not waiting (or whose pause was answered) is 404; an answer
that loses a race with another is 409.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentparty.api.audit import record
from agentparty.api.errors import GUARDED, declared, refuse_unknown_query
from agentparty.api.paused_runs import (
    PauseAnswered,
    PausedRun,
    PauseExpired,
    ResumeRefused,
    paused_run,
    paused_runs,
    resume,
)
from agentparty.api.runs import run_in_scope
from agentparty.api.security import Principal, outside_scope, refuse, require
from agentparty.runtime.human_input import ApprovalDecision, HumanDecision, ToolCallDecision

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

router = APIRouter(tags=["approvals"], dependencies=[Depends(refuse_unknown_query)])

ApprovalKind = Literal["governance", "human_intervention", "tool"]
KINDS: dict[str, ApprovalKind] = {
    "ApprovalDecision": "governance",
    "HumanDecision": "human_intervention",
    "ToolCallDecision": "tool",
}
"""Input model name (the stored schema's title) → approval kind; other pauses are not approvals of ours."""

_TRANSITION_KEY = re.compile(r"^approve-[0-9a-f]+-(?P<source>[a-z_]+)-to-(?P<target>[a-z_]+)$")
_INTERVENTION_KEY = re.compile(r"^(?P<step>.+)-(?P<round>\d+)$")


class Transition(BaseModel):
    source: str
    target: str


class ToolAsk(BaseModel):
    name: str = Field(description="The tool the agent asks to call.")
    arguments: str = Field(description="The call's arguments as JSON, redacted of every key and shortened.")


class PendingApproval(BaseModel):
    """A decision a run is waiting for."""

    id: str = Field(description="FLOW_RUN_ID:PAUSE_KEY: one pause of one run (a run may pause again later).")
    kind: ApprovalKind
    workflow: str = Field(description="The Prefect flow's name (the workflow definition's name).")
    flow_run_id: str
    flow_run_name: str
    pause_key: str
    transition: Transition | None = Field(None, description="governance: the lifecycle transition asked for.")
    step_id: str | None = Field(None, description="human_intervention: the step that failed.")
    tool: ToolAsk | None = Field(None, description="tool: the call asked for.")
    description: str | None
    requested_at: datetime
    expires_at: datetime | None = Field(
        description="When the pause times out (the run then carries on without an answer)."
    )
    input_schema: dict[str, Any] = Field(description="JSON schema of the run input the pause waits for.")


class DecisionRequest(BaseModel):
    """The body of an approve or reject (all optional)."""

    # The output rule below, in the JSON Schema too, so a generated client cannot send what the server refuses.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"required": ["output"], "properties": {"output": {"type": "object"}}},
            "then": {"required": ["action"], "properties": {"action": {"const": "skip"}}},
        },
    )

    reason: Annotated[str, Field(max_length=2000)] = ""
    note: Annotated[str, Field(max_length=2000)] = ""
    """Same as ``reason`` (the word the intervention form uses)."""
    action: Literal["retry", "skip"] | None = None
    """human_intervention approvals only: retry the step (default) or skip it, supplying ``output``."""
    output: dict[str, Any] | None = None
    pause_key: str | None = None
    """Answer only this pause (as listed): a run that has since moved on to another pause answers 404."""

    @model_validator(mode="after")
    def _output_needs_skip(self) -> DecisionRequest:
        if self.output is not None and self.action != "skip":
            raise ValueError("output: only a 'skip' action supplies the step's output")
        return self

    @property
    def text(self) -> str:
        return self.reason or self.note


class DecisionResponse(BaseModel):
    id: str
    kind: ApprovalKind
    flow_run_id: str
    decided_by: str
    run_input: dict[str, Any] = Field(description="What the run was resumed with.")


@asynccontextmanager
async def _prefect(request: Request) -> AsyncIterator[PrefectClient]:
    """The app's shared Prefect client when its lifespan opened one, else one for this request; 503 when no
    Prefect API is configured (Prefect would otherwise start a throw-away in-process server)."""
    shared = getattr(request.app.state, "prefect", None)
    if shared is not None:
        yield shared
        return

    if not PREFECT_API_URL.value():
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="no Prefect API configured: set PREFECT_API_URL"
        )
    async with get_client() as client:
        yield client


def _approval(paused: PausedRun) -> PendingApproval | None:
    kind = KINDS.get(paused.input_type)
    if kind is None:
        return None
    transition = _TRANSITION_KEY.match(paused.pause_key) if kind == "governance" else None
    intervention = _INTERVENTION_KEY.match(paused.pause_key) if kind == "human_intervention" else None
    run = paused.flow_run
    return PendingApproval(
        id=f"{run.id}:{paused.pause_key}",
        kind=kind,
        workflow=paused.flow_name,
        flow_run_id=str(run.id),
        flow_run_name=run.name,
        pause_key=paused.pause_key,
        transition=Transition(source=transition["source"], target=transition["target"]) if transition else None,
        step_id=intervention["step"] if intervention else (paused.pause_key if kind == "human_intervention" else None),
        tool=_tool_ask(paused.input_schema) if kind == "tool" else None,
        description=paused.description,
        requested_at=paused.requested_at,
        expires_at=paused.expires_at,
        input_schema=paused.input_schema,
    )


def _tool_ask(schema: dict[str, Any]) -> ToolAsk:
    """The call asked for, from the defaults the pause stored with its form (``ToolCallDecision.with_initial_data``)."""
    properties = schema.get("properties", {})
    return ToolAsk(
        name=str(properties.get("tool", {}).get("default", "")),
        arguments=str(properties.get("arguments", {}).get("default", "")),
    )


@router.get("/approvals", response_model=list[PendingApproval], responses=declared(*GUARDED, 503))
async def list_approvals(
    request: Request,
    principal: Annotated[Principal, Depends(require("approvals", "read"))],
    limit: Annotated[int, Query(ge=1, le=200, description="Most paused runs to look at (Prefect's page limit).")] = 100,
) -> list[PendingApproval]:
    """Pending human approvals, oldest first (of the runs within the key's conditions)."""
    async with _prefect(request) as client:
        found = await paused_runs(client, limit)
    found = [p for p in found if await run_in_scope(request, principal, p.flow_name, p.flow_run.tags)]
    return [a for a in map(_approval, found) if a is not None]


def _run_input(approval: PendingApproval, approve: bool, body: DecisionRequest, principal: Principal) -> dict[str, Any]:
    if approval.kind in ("governance", "tool"):
        if body.action is not None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"action: a {approval.kind} approval takes no action"
            )
        if approval.kind == "tool" and approval.tool is not None:
            asked = approval.tool
            decision = ToolCallDecision(
                approve=approve, reason=body.text, approver=principal.name, tool=asked.name, arguments=asked.arguments
            )
            return decision.model_dump(mode="json")
        return ApprovalDecision(approve=approve, reason=body.text, approver=principal.name).model_dump(mode="json")

    if not approve and body.action is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="action: a rejection always aborts the run")
    # HumanDecision has no approver field; the note carries who decided into the step's reason.
    note = f"{body.text} (by {principal.name})" if body.text else f"by {principal.name}"
    if not approve:
        return HumanDecision(action="abort", note=note).model_dump(mode="json")
    return HumanDecision(action=body.action or "retry", output=body.output, note=note).model_dump(mode="json")


async def _decide(
    request: Request, flow_run_id: UUID, approve: bool, body: DecisionRequest, principal: Principal
) -> DecisionResponse:
    async with _prefect(request) as client:
        paused = await paused_run(client, flow_run_id)
        approval = _approval(paused) if paused is not None else None
        if paused is None or approval is None or (body.pause_key is not None and body.pause_key != paused.pause_key):
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"flow run {flow_run_id} is not waiting for an approval"
            )
        if not await run_in_scope(request, principal, paused.flow_name, paused.flow_run.tags):
            raise refuse(request, status.HTTP_403_FORBIDDEN, outside_scope(principal, f"flow run {flow_run_id}"))
        run_input = _run_input(approval, approve, body, principal)
        try:
            await resume(client, paused, run_input)
        except PauseAnswered as exc:
            raise HTTPException(
                status.HTTP_409_CONFLICT, detail=f"{approval.id} was answered by someone else ({exc})"
            ) from None
        except PauseExpired:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"{approval.id} timed out before the answer"
            ) from None
        except ResumeRefused as exc:
            raise HTTPException(
                status.HTTP_409_CONFLICT, detail=f"Prefect refused the answer to {approval.id}: {exc}"
            ) from None
    verb = "approve" if approve else "reject"
    record(request, f"approval.{verb}", approval.id, kind=approval.kind, flow_run_id=str(flow_run_id))
    return DecisionResponse(
        id=approval.id,
        kind=approval.kind,
        flow_run_id=str(flow_run_id),
        decided_by=principal.name,
        run_input=run_input,
    )


DECISION_RESPONSES = declared(
    *GUARDED,
    400,
    503,
    _404="The run is not waiting for an approval (or not for this pause_key), or the pause timed out.",
    _409="Someone else answered the pause first, or Prefect refused the answer.",
)


@router.post("/approvals/{flow_run_id}/approve", response_model=DecisionResponse, responses=DECISION_RESPONSES)
async def approve(
    request: Request,
    flow_run_id: UUID,
    principal: Annotated[Principal, Depends(require("approvals", "update"))],
    body: DecisionRequest | None = None,
) -> DecisionResponse:
    """Approve: the transition goes ahead, the tool is called, or the failed step is retried (or skipped with ``output``)."""
    return await _decide(request, flow_run_id, True, body or DecisionRequest(), principal)


@router.post("/approvals/{flow_run_id}/reject", response_model=DecisionResponse, responses=DECISION_RESPONSES)
async def reject(
    request: Request,
    flow_run_id: UUID,
    principal: Annotated[Principal, Depends(require("approvals", "update"))],
    body: DecisionRequest | None = None,
) -> DecisionResponse:
    """Reject: the transition is refused (the step fails as its fallback says), the tool call is refused (the agent's
    model reads why), or the run is aborted."""
    return await _decide(request, flow_run_id, False, body or DecisionRequest(), principal)
