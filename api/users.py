"""``DELETE /users/{user_id}`` (erasure) and ``GET /users/{user_id}/export``: a user's data, for admins only.

A user is the id runs are made for (``AGENTPARTY_USER_ID``; the graph's User that a
run's Task is REQUESTED_BY). The erasure removes their runs from Prefect, this home
and the graph, and its answer says what it removed and, plainly, what it cannot
(events already on Kafka, Prefect's log lines and events); it is audited as
``gdpr.erase``. Both need Prefect: without it they answer 503 and erase nothing.
``flows/retention.py`` does the work.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from agentparty.api.errors import GUARDED, declared, refuse_unknown_query
from agentparty.api.security import Principal, require
from agentparty.api.services import prefect_client, settings_of
from agentparty.flows.retention import erase_user, export_user
from agentparty.models.retention import ErasureReport, UserExport

router = APIRouter(dependencies=[Depends(refuse_unknown_query)])

UserId = Annotated[
    str, Path(min_length=1, max_length=200, description="The user id runs were made for (AGENTPARTY_USER_ID).")
]


@router.delete(
    "/users/{user_id}",
    response_model=ErasureReport,
    tags=["users"],
    responses=declared(*GUARDED, 503),
)
async def erase(
    user_id: UserId, request: Request, principal: Annotated[Principal, Depends(require("users", "delete"))]
) -> ErasureReport:
    """Erase the user's runs and every record they left. ``complete`` is false (and ``problems`` says why) when
    the graph could not be reached: run it again. ``remains`` lists what no erasure can remove."""
    prefect_client(request)  # 503 without a Prefect API, before anything is erased
    return await erase_user(user_id, actor=f"key:{principal.name}", settings=settings_of(request))


@router.get(
    "/users/{user_id}/export",
    response_model=UserExport,
    tags=["users"],
    dependencies=[Depends(require("users", "read"))],
    responses=declared(*GUARDED, 503),
)
async def export(user_id: UserId, request: Request) -> UserExport:
    """The user's runs (inputs and step states), their agents' conversations and their runs' graph records."""
    prefect_client(request)
    return await export_user(user_id, settings=settings_of(request))
