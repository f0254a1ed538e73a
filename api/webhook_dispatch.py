"""Storing accepted webhook deliveries and creating their flow runs, oldest first, a few at a time.

The webhook route hands a checked delivery to :meth:`DeliveryDispatcher.submit`,
which stores it (arrivals group-committed, one SQLite transaction for all that
came while the previous one was written) and acknowledges it without a Prefect
write. Prefect's server on SQLite serialises writes, and its own services
(late-run marking, event persistence) write too: measured here, a create takes
30 ms on an idle server and 100-400 ms once a few hundred runs wait, and
concurrent creates only queue for the database lock. A burst of deliveries
therefore waits in the store, not in open HTTP requests (``bench/webhooks.py``).

One :class:`DeliveryDispatcher` per app, on the serving event loop, with the
app's Prefect client. It creates at most ``api_prefect_concurrency`` runs at
once, each with the delivery's Prefect idempotency key, so a retry whose
predecessor reached the database returns that run: retrying never makes a
second one. Prefect's client already retries 503s with long backoffs (short
jittered retries were tried and kept the database locked); when it gives up,
or Prefect is unreachable, the delivery stays queued and the dispatcher backs
off, then tries again. A deployment that is gone, or inputs Prefect refuses,
fail the delivery for good (its sender's retry, or an operator's requeue, queues
it again).

Several API processes (replicas, on one host or many sharing PostgreSQL) share
the store, each with its own dispatcher, and a delivery's run is created by the
one dispatcher that claims it (:meth:`WebhookDeliveries.claim`): the replica that
accepted it, at once, or, when that one is gone, whichever replica's scan (at
start and every ``POLL_S``) takes it after its lease lapsed. A dispatcher renews
the leases of what it holds every ``RENEW_S`` and releases what it drops
unfinished (a pause after a Prefect failure, ``stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from agentparty.api.deployment_directory import DeploymentDirectory
from agentparty.deployments.naming import deployment_parameters
from agentparty.runtime.tracing import run_trace_labels
from agentparty.runtime.webhook_deliveries import LEASE_S, Acceptance, Delivery, WebhookDeliveries, delivery_id_for

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

logger = logging.getLogger("agentparty.api.webhooks")

WEBHOOK_TAG = "webhook"
POLL_S = 5.0
"""How often queued deliveries are looked for without being told (another API process's, or after an outage)."""
BATCH = 100
"""Deliveries in flight at once (creating, or waiting for a slot)."""
RENEW_S = LEASE_S / 4
"""How often the leases of the deliveries in flight are renewed: a few renewals may fail before one lapses."""
BACKOFF_S = (1.0, 30.0)
"""First and longest pause after Prefect failed to take a run."""
ACKNOWLEDGEMENTS_FIRST_S = 0.1
"""How long a run's creation gives way to deliveries on their way in (see :class:`Arrival`). A burst's
acknowledgements share the event loop with the creations of its first runs; going first, the slowest of
100 came 20-60 ms sooner here. A run is then created at most this much later, however busy the intake."""


class Arrival:
    """A delivery on its way in, from the webhook route's first check until it is stored or refused.

    While any is, run creation waits (up to ``ACKNOWLEDGEMENTS_FIRST_S``); a request waiting for its run
    after storing is no longer arriving, or it would hold up its own run. ``end`` may be called twice.
    """

    def __init__(self, dispatcher: DeliveryDispatcher) -> None:
        self._dispatcher: DeliveryDispatcher | None = dispatcher
        dispatcher._arriving += 1
        dispatcher._intake_quiet.clear()

    def end(self) -> None:
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher._arriving -= 1
            if not dispatcher._arriving:
                dispatcher._intake_quiet.set()

    def __enter__(self) -> Arrival:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


@dataclass(frozen=True)
class Outcome:
    """What became of a delivery's run: created, or refused for good (and why)."""

    flow_run_id: str | None = None
    refused: str | None = None
    missing_deployment: bool = False


class DeliveryDispatcher:
    """Made inside the serving event loop (its primitives belong to that loop); ``start`` it, then ``stop``."""

    def __init__(
        self,
        client: PrefectClient,
        deliveries: WebhookDeliveries,
        deployments: DeploymentDirectory,
        concurrency: int,
    ) -> None:
        self.client = client
        self.deliveries = deliveries
        self.deployments = deployments
        self._slots = asyncio.Semaphore(concurrency)
        self._look_again = asyncio.Event()
        """Set when the store is worth reading before the next poll: a full scan drained, or a pause began."""
        self._more_queued = False
        self._arriving = 0
        self._intake_quiet = asyncio.Event()
        self._intake_quiet.set()
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: dict[str, set[asyncio.Future[Outcome]]] = {}
        self._arrivals: list[tuple[tuple[str, str, str, dict[str, Any]], asyncio.Future[Acceptance]]] = []
        self._storing: asyncio.Task[None] | None = None
        self._backoff = 0.0
        self._resume_at = 0.0
        self._loop: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """Who this dispatcher is in the store's claims: unique per process and start."""

    # -- for the webhook route ----------------------------------------------------------------

    def arrival(self) -> Arrival:
        """Call when a delivery comes in; pass it to ``submit`` (or leave its ``with`` block when refused)."""
        return Arrival(self)

    async def submit(
        self,
        workflow_id: str,
        key: str,
        deployment: str,
        inputs: dict[str, Any],
        wait_s: float,
        arrival: Arrival,
    ) -> tuple[Acceptance, Outcome | None]:
        """Store a delivery and, if it is new, wait up to ``wait_s`` seconds for its outcome (None: still queued)."""

        async def store() -> Acceptance:
            try:
                return await self._store((workflow_id, key, deployment, inputs))
            finally:
                arrival.end()

        result = await self._queue_and_wait(delivery_id_for(workflow_id, key), store, wait_s)
        assert result is not None  # storing an arrival always names its delivery
        return result

    async def requeue(self, delivery_id: str, wait_s: float) -> tuple[Acceptance, Outcome | None] | None:
        """Queue a failed delivery again (:meth:`WebhookDeliveries.requeue`) and wait as ``submit`` does; None: unknown."""
        return await self._queue_and_wait(
            delivery_id, lambda: asyncio.to_thread(self.deliveries.requeue, delivery_id, self.holder), wait_s
        )

    async def _queue_and_wait(
        self,
        delivery_id: str,
        store: Callable[[], Awaitable[Acceptance | None]],
        wait_s: float,
    ) -> tuple[Acceptance, Outcome | None] | None:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(delivery_id, set()).add(future)  # before storing: the run may be created at once
        try:
            accepted = await store()
            if accepted is None:
                return None
            if not accepted.fresh:
                return accepted, None
            self._enqueue(accepted.delivery)
            if wait_s <= 0:
                return accepted, future.result() if future.done() else None
            try:
                return accepted, await asyncio.wait_for(asyncio.shield(future), wait_s)
            except TimeoutError:
                return accepted, None
        finally:
            waiting = self._waiters.get(delivery_id, set())
            waiting.discard(future)
            if not waiting:
                self._waiters.pop(delivery_id, None)
            future.cancel()

    async def _store(self, arrival: tuple[str, str, str, dict[str, Any]]) -> Acceptance:
        """Group commit: arrivals while a transaction is being written go together in the next one.

        One transaction per delivery serialised a burst of 100 behind 100 commits (p99 47-93 ms for the
        store alone); in groups it is a handful of commits.
        """
        stored: asyncio.Future[Acceptance] = asyncio.get_running_loop().create_future()
        self._arrivals.append((arrival, stored))
        if self._storing is None or self._storing.done():
            self._storing = asyncio.create_task(self._store_arrivals())
        return await stored

    async def _store_arrivals(self) -> None:
        while self._arrivals:
            batch, self._arrivals = self._arrivals, []
            try:
                results = await asyncio.to_thread(
                    self.deliveries.accept_many, [arrival for arrival, _ in batch], self.holder
                )
            except Exception as exc:  # every request of the group answers 500: nothing was acknowledged
                for _, stored in batch:
                    if not stored.done():
                        stored.set_exception(exc)
                continue
            for (_, stored), result in zip(batch, results, strict=True):
                if not stored.done():
                    stored.set_result(result)

    # -- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="agentparty-webhook-dispatch")
            self._heartbeat = asyncio.create_task(self._renew(), name="agentparty-webhook-leases")

    async def stop(self) -> None:
        """Stop creating runs; deliveries not yet created stay queued, released for any replica or the next start."""
        holding = list(self._in_flight)
        tasks = [t for t in (self._loop, self._heartbeat, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = self._heartbeat = None
        if holding:
            try:
                await asyncio.to_thread(self.deliveries.release, self.holder, holding)
            except Exception:  # their leases lapse instead
                logger.exception("releasing %d webhook deliveries failed", len(holding))

    async def _renew(self) -> None:
        """Keep the claims of the deliveries in flight: a run may wait for a slot, or for Prefect, longer than
        a lease. If this process dies, the renewals stop and another replica takes them over."""
        while True:
            await asyncio.sleep(RENEW_S)
            if self._in_flight:
                try:
                    await asyncio.to_thread(self.deliveries.renew, self.holder, list(self._in_flight))
                except Exception:
                    logger.exception("renewing the claims of webhook deliveries failed")

    def _enqueue(self, delivery: Delivery) -> None:
        """Dispatch the delivery unless it is in flight already (it waits for a slot, in arrival order)."""
        if delivery.delivery_id in self._in_flight:
            return
        self._in_flight.add(delivery.delivery_id)
        task = asyncio.create_task(self._dispatch(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        """The store is read only to recover: at start, after a pause, every ``POLL_S``, and while a scan
        found a full batch (new deliveries come straight from ``submit``)."""
        loop = asyncio.get_running_loop()
        while True:
            pause = self._resume_at - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            room = BATCH - len(self._in_flight)
            try:
                queued = await asyncio.to_thread(self.deliveries.claim, self.holder, room) if room > 0 else []
            except Exception:  # log and keep the loop alive: the next scan tries again
                logger.exception("claiming queued webhook deliveries failed")
                queued = []
            for delivery in queued:
                self._enqueue(delivery)
            # more may be waiting: look again once these are done
            self._more_queued = room <= 0 or (bool(queued) and len(queued) == room)
            self._look_again.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._look_again.wait(), POLL_S)

    async def _dispatch(self, delivery: Delivery) -> None:
        try:
            async with self._slots:
                if self._resume_at > asyncio.get_running_loop().time():
                    # Prefect failed a moment ago: this loop (or another replica) takes it up again after the pause
                    await asyncio.to_thread(self.deliveries.release, self.holder, [delivery.delivery_id])
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._intake_quiet.wait(), ACKNOWLEDGEMENTS_FIRST_S)
                outcome = await self._create(delivery)
        finally:
            self._in_flight.discard(delivery.delivery_id)
            if self._more_queued and not self._in_flight:
                self._look_again.set()
        if outcome is not None:
            for future in self._waiters.pop(delivery.delivery_id, set()):
                if not future.done():
                    future.set_result(outcome)

    async def _create(self, delivery: Delivery) -> Outcome | None:
        """Create (or find again) the delivery's run and record it; None when it should be tried again later."""

        for attempt in range(2):
            try:
                deployment_id = await self.deployments.id_of(self.client, delivery.deployment)
                if deployment_id is None:
                    return await self._refuse(
                        delivery, no_deployment_reason(delivery.deployment), missing_deployment=True
                    )
                run = await self.client.create_flow_run_from_deployment(
                    deployment_id,
                    parameters=deployment_parameters(delivery.inputs or {}),
                    idempotency_key=delivery.prefect_idempotency_key,
                    tags=[WEBHOOK_TAG],
                    labels=run_trace_labels(),  # the request's trace goes on into the run (runtime/tracing.py)
                )
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                status = exc.response.status_code if isinstance(exc, PrefectHTTPStatusError) else 404
                if status == 404:  # deleted, perhaps re-created under a new id: look it up again, once
                    self.deployments.forget(delivery.deployment)
                    if attempt == 0:
                        continue
                    return await self._refuse(
                        delivery, no_deployment_reason(delivery.deployment), missing_deployment=True
                    )
                if 400 <= status < 500 and status not in (408, 429):
                    return await self._refuse(delivery, f"Prefect refused the run ({status}): {_detail(exc)}")
                await self._retry_later(delivery, f"Prefect answered {status}")
                return None
            except Exception as exc:  # unreachable, timed out, or the client gave up retrying
                await self._retry_later(delivery, f"{type(exc).__name__}: {exc}"[:500])
                return None
            self._backoff = 0.0
            await asyncio.to_thread(self.deliveries.record_run, delivery.delivery_id, str(run.id))
            logger.info("webhook delivery %s of %s: flow run %s", delivery.delivery_id, delivery.workflow_id, run.id)
            return Outcome(flow_run_id=str(run.id))
        raise AssertionError("unreachable")

    async def _refuse(self, delivery: Delivery, reason: str, *, missing_deployment: bool = False) -> Outcome:
        logger.error("webhook delivery %s of %s failed: %s", delivery.delivery_id, delivery.workflow_id, reason)
        await asyncio.to_thread(self.deliveries.record_failure, delivery.delivery_id, reason)
        return Outcome(refused=reason, missing_deployment=missing_deployment)

    async def _retry_later(self, delivery: Delivery, error: str) -> None:
        first, longest = BACKOFF_S
        self._backoff = min(longest, self._backoff * 2) if self._backoff else first
        self._resume_at = asyncio.get_running_loop().time() + self._backoff
        self._look_again.set()  # the loop sleeps out the pause, then reads what is still queued
        logger.warning(
            "webhook delivery %s of %s stays queued (%s); trying again in %.0f s",
            delivery.delivery_id,
            delivery.workflow_id,
            error,
            self._backoff,
        )
        await asyncio.to_thread(self.deliveries.record_error, delivery.delivery_id, error)


def no_deployment_reason(deployment: str) -> str:
    """Why a delivery of a workflow without a deployment cannot run, and what to do."""
    return f"the workflow has no deployment {deployment!r}: run `agentparty deploy` for its definition first"


def _detail(exc: Exception) -> str:
    response: Any = getattr(exc, "response", None)  # an httpx response on Prefect's HTTP errors, else None
    try:
        return str(response.json().get("detail", response.text))[:500]
    except Exception:
        return str(getattr(response, "text", exc))[:500]
