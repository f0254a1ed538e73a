"""Two API replicas' dispatchers sharing one delivery store on PostgreSQL, against a real Prefect server.

Each delivery a replica accepts is claimed and created by that replica; the
deliveries a dead replica accepted and never created are taken over by the
live ones once their lease ends; and every delivery makes exactly one run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from support.api_support import HookWorkflows
from support.postgres_support import fresh_database

from agentparty.runtime.state_backend import PostgresBackend
from agentparty.runtime.webhook_deliveries import Delivery, WebhookDeliveries

ORPHANS = 10
PER_REPLICA = 15


def _runs_of(deployment_id: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as prefect:
        return prefect.count_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)]))
        )


def _ticket(n: int) -> dict[str, Any]:
    return {"ticket_id": f"T-{n}", "priority": 2}


async def _serve_two_replicas(url: str, hooks: HookWorkflows, orphans: list[str]) -> tuple[list[str], list[str]]:
    """Both replicas dispatch; each accepts its own deliveries; returns their holders and the fresh ids."""
    from prefect.client.orchestration import get_client

    from agentparty.api.deployment_directory import DeploymentDirectory
    from agentparty.api.webhook_dispatch import DeliveryDispatcher

    async with get_client() as client:
        replicas = [
            DeliveryDispatcher(client, WebhookDeliveries(PostgresBackend(url)), DeploymentDirectory(), 2)
            for _ in range(2)
        ]
        for replica in replicas:
            replica.start()
        try:
            accepted = await asyncio.gather(
                *(
                    replica.submit(hooks.deployed, f"k-{index}-{n}", hooks.deployment, _ticket(n), 0, replica.arrival())
                    for index, replica in enumerate(replicas)
                    for n in range(PER_REPLICA)
                )
            )
            fresh = [acceptance.delivery.delivery_id for acceptance, _ in accepted]
            store = replicas[0].deliveries
            deadline = time.monotonic() + 120
            while any(_status(store, d) != "created" for d in [*orphans, *fresh]):
                assert time.monotonic() < deadline, "deliveries still queued after 120 s"
                await asyncio.sleep(0.5)
        finally:
            for replica in replicas:
                await replica.stop()
    return [replica.holder for replica in replicas], fresh


def _status(store: WebhookDeliveries, delivery_id: str) -> str:
    found = store.get(delivery_id)
    return found.status if found else "missing"


def test_replicas_share_the_queue_and_take_over_a_dead_replicas_deliveries(
    hook_workflows: HookWorkflows, postgres_cluster: Any
) -> None:
    url = fresh_database(postgres_cluster, "replicas")
    store = WebhookDeliveries(PostgresBackend(url))
    arrivals = [(hook_workflows.deployed, f"orphan-{n}", hook_workflows.deployment, _ticket(n)) for n in range(ORPHANS)]
    # a replica accepted these (its claims, 2 s leases) and died before creating any run
    orphans = [a.delivery.delivery_id for a in store.accept_many(arrivals, holder="dead-replica", lease_s=2.0)]
    before = _runs_of(hook_workflows.deployment_id)

    holders, fresh = asyncio.run(_serve_two_replicas(url, hook_workflows, orphans))

    settled: list[Delivery] = []
    for delivery_id in [*orphans, *fresh]:
        found = store.get(delivery_id)
        assert found is not None and found.flow_run_id is not None
        settled.append(found)
    runs = {d.flow_run_id for d in settled}
    assert len(runs) == ORPHANS + 2 * PER_REPLICA == _runs_of(hook_workflows.deployment_id) - before
    for index, holder in enumerate(holders):  # what a replica accepted, it created
        mine = fresh[index * PER_REPLICA : (index + 1) * PER_REPLICA]
        assert {d.claimed_by for d in settled if d.delivery_id in mine} == {holder}
    assert {d.claimed_by for d in settled if d.delivery_id in orphans} <= set(holders)  # taken over
    assert all(d.attempts == 1 for d in settled)
