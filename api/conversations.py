"""``GET /agents/{agent_id}/engagements`` and ``…/{engagement_id}/messages``: what an agent said, and was told.

A persistent agent works many engagements (one per run and step slot), so its
conversations are listed per engagement, newest first, each with its
``currentWorkflow`` (the run and step it works on, and how that stands); the
messages of one are paged in the order they were said (seed 002 messages:
user, agent with its tool calls, system notes and tool results, errors).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import Field

from agentparty.api.errors import GUARDED, declared, refuse_unknown_query
from agentparty.api.security import require
from agentparty.api.services import conversation_store
from agentparty.models._base import CamelModel
from agentparty.models.agent import WorkflowState
from agentparty.models.messages import AnyMessage
from agentparty.runtime.conversations import MAX_PAGE, ConversationStore, EngagementRecord

router = APIRouter(dependencies=[Depends(refuse_unknown_query)])

AgentId = Annotated[str, Path(min_length=1, max_length=200, description="The persistent agent's id.")]
EngagementId = Annotated[str, Path(min_length=1, max_length=200, description="An engagement's id (see the list).")]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Most items in the answer.")]
PageOffset = Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip (paging).")]


class EngagementView(CamelModel):
    id: str
    agent_id: str
    run_id: str
    slot: str = Field(description="The step, or step[item] for a forEach item.")
    current_workflow: WorkflowState
    messages: int
    started_at: datetime
    updated_at: datetime


class MessagesPage(CamelModel):
    engagement: EngagementView
    messages: list[AnyMessage]
    total: int
    offset: int


def _view(record: EngagementRecord) -> EngagementView:
    return EngagementView(
        id=record.id,
        agent_id=record.agent_id,
        run_id=record.run_key,
        slot=record.slot,
        current_workflow=record.workflow,
        messages=record.messages,
        started_at=record.started_at,
        updated_at=record.updated_at,
    )


@router.get(
    "/agents/{agent_id}/engagements",
    response_model=list[EngagementView],
    tags=["agents"],
    dependencies=[Depends(require("agents", "read"))],
    responses=declared(*GUARDED),
)
def engagements(
    agent_id: AgentId,
    store: Annotated[ConversationStore, Depends(conversation_store)],
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> list[EngagementView]:
    """The agent's engagements, newest first (empty for an agent that has not worked, or was forgotten)."""
    return [_view(record) for record in store.engagements(agent_id, offset, limit)]


@router.get(
    "/agents/{agent_id}/engagements/{engagement_id}/messages",
    response_model=MessagesPage,
    tags=["agents"],
    dependencies=[Depends(require("agents", "read"))],
    responses=declared(*GUARDED, _404="No such engagement of this agent."),
)
def messages(
    agent_id: AgentId,
    engagement_id: EngagementId,
    store: Annotated[ConversationStore, Depends(conversation_store)],
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> MessagesPage:
    """One engagement's conversation, ``limit`` messages from ``offset``, in the order they were said."""
    record = store.engagement(engagement_id)
    if record is None or record.agent_id != agent_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"agent {agent_id!r} has no engagement {engagement_id!r}")
    page = store.page(engagement_id, offset, limit)
    return MessagesPage(engagement=_view(record), messages=page.messages, total=page.total, offset=page.offset)
