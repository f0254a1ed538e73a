"""``/approvals`` without a paused run (the unit half: no server): keys, roles and bodies are checked before
Prefect is asked.

Real runs that pause on the session's Prefect server and are answered over HTTP are
``tests/integration/api/test_approvals.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from agentparty.api import create_app
from agentparty.api.security import key_digest
from agentparty.models.access import ApiAccessConfig

KEYS = {"ops": "ops-key-1", "viewer": "viewer-key-1"}
ACCESS = ApiAccessConfig.model_validate(
    {
        "apiKeys": [
            {"name": "ops", "role": "operator", "keySha256": key_digest(KEYS["ops"])},
            {"name": "watcher", "role": "viewer", "keySha256": key_digest(KEYS["viewer"])},
        ],
    }
)
AS_OPS = {"X-API-Key": KEYS["ops"]}
AS_VIEWER = {"X-API-Key": KEYS["viewer"]}


@asynccontextmanager
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running (its one Prefect client open), called in process."""
    app = create_app(ACCESS)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        yield client


# -- without a paused run -------------------------------------------------------------------------


def test_keys_roles_and_bodies_are_checked_before_prefect_is_asked() -> None:
    async def scenario() -> list[int]:
        async with api() as client:
            some_run = f"/approvals/{uuid.uuid4()}"
            return [
                (await client.get("/approvals")).status_code,
                (await client.post(f"{some_run}/approve", headers=AS_VIEWER)).status_code,
                (await client.post(f"{some_run}/reject", headers=AS_VIEWER)).status_code,
                (await client.post(f"{some_run}/approve", headers=AS_OPS, json={"output": {"x": 1}})).status_code,
                (await client.post("/approvals/not-a-run/approve", headers=AS_OPS)).status_code,
            ]

    assert asyncio.run(scenario()) == [401, 403, 403, 422, 422]
