"""Deployment ids by full name, looked up in Prefect once per process and remembered.

Shared by the webhook route (which must answer 404 for a workflow that is not
deployed) and the delivery dispatcher (which forgets an id Prefect no longer knows).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.exceptions import ObjectNotFound


@dataclass
class DeploymentDirectory:
    """Deployment ids by full name (``FLOW/DEPLOYMENT``), looked up once; ``forget`` after a 404."""

    _ids: dict[str, UUID] = field(default_factory=dict)
    _pending: dict[str, asyncio.Future[UUID | None]] = field(default_factory=dict)

    async def id_of(self, client: PrefectClient, full_name: str) -> UUID | None:
        known = self._ids.get(full_name)
        if known is not None:
            return known
        pending = self._pending.get(full_name)
        if pending is not None:  # a burst of first requests shares one lookup
            return await asyncio.shield(pending)
        future: asyncio.Future[UUID | None] = asyncio.get_running_loop().create_future()
        self._pending[full_name] = future
        try:
            found = await _read_deployment_id(client, full_name)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._pending.pop(full_name, None)
        if found is not None:
            self._ids[full_name] = found
        future.set_result(found)
        return found

    def forget(self, full_name: str) -> None:
        self._ids.pop(full_name, None)


async def _read_deployment_id(client: PrefectClient, full_name: str) -> UUID | None:
    try:
        return (await client.read_deployment_by_name(full_name)).id
    except ObjectNotFound:
        return None
