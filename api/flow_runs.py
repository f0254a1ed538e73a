"""Creating flow runs for the API, a few at a time.

Prefect's server on SQLite serialises writes, and its own services (late-run
marking, event persistence) write too: a burst of concurrent creates makes it
answer 503 ("database is locked") and, beyond a few dozen, fail them outright
after the client's retries. So the API creates at most ``api_prefect_concurrency``
runs at once and a burst of webhooks queues here. Prefect's client retries a
503 itself with exponential backoff (2, 4, … 32 s); short jittered retries were
tried instead and kept the database locked (thousands of lock errors in the
server log, failed bursts in ``bench/webhooks.py``): the long pauses are what
let the server's own backlog drain. Every attempt carries the delivery's
idempotency key, so a retry whose predecessor did reach the database returns
that run: retrying can never make a second one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun


class FlowRunCreator:
    """Made inside the serving event loop (its semaphore belongs to that loop)."""

    def __init__(self, client: PrefectClient, concurrency: int) -> None:
        self.client = client
        self._slots = asyncio.Semaphore(concurrency)

    async def create(
        self, deployment_id: UUID, *, parameters: dict[str, Any], idempotency_key: str, tags: list[str]
    ) -> FlowRun:
        async with self._slots:
            return await self.client.create_flow_run_from_deployment(
                deployment_id, parameters=parameters, idempotency_key=idempotency_key, tags=tags
            )
