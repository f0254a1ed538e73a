"""Flow runs paused for typed input, read and resumed through the Prefect API (no HTTP concerns here).

A run waiting for input (``apause_flow_run(wait_for_input=Model, key=…)``) is
in state PAUSED with ``pause_key`` and ``run_input_keyset`` in its state
details; Prefect stores the model's JSON schema (and a description, if any)
as flow run inputs under that keyset, *after* the state change. So a paused
run counts as waiting only once its schema is there (before that, the server
would refuse a resume), and no longer once a response is stored or its pause
timeout has passed. Resuming goes through ``client.resume_flow_run`` directly
rather than ``resume_flow_run``, which reports nothing when the server aborts
(another caller resumed the run first): that case must be told apart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

LOOKUP_CONCURRENCY = 8
"""Input look-ups in flight at once when listing (Prefect on SQLite answers bursts with 503s)."""


@dataclass(frozen=True)
class PausedRun:
    """A flow run waiting for typed input, with what Prefect stored about the input it waits for."""

    flow_run: FlowRun
    flow_name: str
    pause_key: str
    input_type: str
    """The ``RunInput`` model's name (the stored schema's title), e.g. ``ApprovalDecision``."""
    input_schema: dict[str, Any]
    description: str | None
    requested_at: datetime
    expires_at: datetime | None


class PauseAnswered(Exception):
    """Another answer reached the run first: it is no longer paused."""


class PauseExpired(Exception):
    """The pause timed out before the answer arrived."""


class ResumeRefused(Exception):
    """Prefect refused the run input (the message says why)."""


async def paused_runs(client: PrefectClient, limit: int = 100) -> list[PausedRun]:
    """Runs waiting for input, oldest pause first."""

    # Newest first: with more paused runs than the page holds (runs left waiting for days), the page must keep
    # the pauses that just began, not the oldest ones (the suite's session server once hid a new pause this way).
    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))),
        sort=FlowRunSort.START_TIME_DESC,
        limit=limit,
    )
    if not runs:
        return []
    flows = await client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=list({run.flow_id for run in runs}))))
    names = {flow.id: flow.name for flow in flows}
    gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

    async def waiting(run: FlowRun) -> PausedRun | None:
        async with gate:
            return await _waiting(client, run, names.get(run.flow_id, ""))

    found = await asyncio.gather(*(waiting(run) for run in runs))
    return sorted((p for p in found if p is not None), key=lambda p: p.requested_at)


async def paused_run(client: PrefectClient, flow_run_id: UUID) -> PausedRun | None:
    """The run, if it is waiting for input now; None for an unknown run or one that is not waiting."""

    try:
        run = await client.read_flow_run(flow_run_id)
    except ObjectNotFound:
        return None
    if not _is_waiting_state(run):
        return None
    flow = await client.read_flow(run.flow_id)
    return await _waiting(client, run, flow.name)


async def resume(client: PrefectClient, paused: PausedRun, run_input: dict[str, Any]) -> None:
    """Resume the run with ``run_input``; raises :class:`PauseAnswered`, :class:`PauseExpired` or
    :class:`ResumeRefused` when Prefect does not accept it."""

    try:
        result = await client.resume_flow_run(paused.flow_run.id, run_input=run_input)
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code == 409:  # the response key exists: a concurrent answer was stored
            raise PauseAnswered(str(exc)) from exc
        raise
    if result.status == SetStateStatus.ACCEPT:
        return
    reason = getattr(result.details, "reason", None) or result.status.value
    if result.status == SetStateStatus.ABORT:
        raise PauseAnswered(reason)
    if result.state is not None and result.state.type == StateType.FAILED:
        raise PauseExpired(reason)
    raise ResumeRefused(reason)


def _is_waiting_state(run: FlowRun) -> bool:
    state = run.state
    return bool(
        state is not None
        and state.is_paused()
        and state.state_details.pause_key
        and state.state_details.run_input_keyset
    )


async def _waiting(client: PrefectClient, run: FlowRun, flow_name: str) -> PausedRun | None:
    if not _is_waiting_state(run):
        return None
    assert run.state is not None
    details = run.state.state_details
    keyset: dict[str, str] = details.run_input_keyset or {}
    expires = details.pause_timeout
    if expires is not None and expires <= datetime.now(UTC):
        return None  # timed out: the run carries on without an answer
    prefix = keyset["schema"].removesuffix("schema")
    stored = {item.key: item for item in await client.filter_flow_run_input(run.id, prefix, 100, set())}
    schema_item = stored.get(keyset["schema"])
    if schema_item is None or keyset.get("response") in stored:
        return None  # not ready to take an answer yet, or answered and about to resume
    schema = schema_item.decoded_value
    description_item = stored.get(keyset.get("description", ""))
    return PausedRun(
        flow_run=run,
        flow_name=flow_name,
        pause_key=str(details.pause_key),
        input_type=str(schema.get("title", "")) if isinstance(schema, dict) else "",
        input_schema=schema if isinstance(schema, dict) else {},
        description=str(description_item.decoded_value) if description_item is not None else None,
        requested_at=run.state.timestamp,
        expires_at=expires,
    )
