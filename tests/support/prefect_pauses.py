"""Find a paused flow run and resume it with typed input, as an operator in the Prefect UI would."""

from __future__ import annotations

import asyncio
import time
from typing import Any


async def wait_for_paused_run(timeout: float = 60) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                )
            )
            if runs:
                return str(runs[0].id)
            await asyncio.sleep(0.2)
    raise AssertionError("no flow run paused for human intervention")


async def resume_with_input(flow_run_id: str, run_input: dict[str, Any]) -> None:
    from uuid import UUID

    from prefect.flow_runs import aresume_flow_run

    await aresume_flow_run(UUID(flow_run_id), run_input=run_input)
