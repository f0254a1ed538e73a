"""The webhook deliveries the API accepted, kept durably until their flow runs exist.

The store lives in the engine's state backend (``runtime/state_backend.py``):
``state/webhooks.sqlite`` under ``AGENTPARTY_HOME`` on one machine, or the
shared PostgreSQL schema, where every API replica (on any host) sees the same
deliveries.

A delivery is identified by its workflow and ``Idempotency-Key`` (by default
its signature). Accepting one stores its run inputs in one transaction
*before* the 202 goes out; the dispatcher (:mod:`agentparty.api.webhook_dispatch`)
then creates its flow run with a Prefect idempotency key derived from the same
pair and records the run's id. So a crash, a Prefect outage or a retry loses
nothing and duplicates nothing:

- a crash after the store and before the run: the delivery stays queued and a
  dispatcher (this one's next start, or another replica's) creates the run;
- a crash after the run and before recording it: creating it again with the
  same Prefect idempotency key returns the run already made;
- a sender's retry of an accepted delivery is a replay (409, naming the run
  once it exists), never a second run.

Claims: several dispatchers share one store, so a queued delivery is *claimed*
before its run is created (``claimed_by``, ``claimed_until``). The replica that
accepts a delivery claims it in the same transaction (it creates the run at
once, and its 202 can wait for it); the others find queued deliveries by
:meth:`WebhookDeliveries.claim`, which takes only unclaimed ones or ones whose
lease ran out, on PostgreSQL with ``SELECT … FOR UPDATE SKIP LOCKED`` so that
concurrent replicas each take different rows without waiting for each other
(SQLite's ``BEGIN IMMEDIATE`` serialises the claims instead). A dispatcher
renews the leases of the deliveries it is working on (:meth:`renew`) and
releases those it drops unfinished (:meth:`release`).

When a replica dies mid-dispatch its claims are simply not renewed: after at
most ``LEASE_S`` another replica's scan claims them and creates their runs. If
the dead replica had already reached Prefect, the same idempotency key returns
its run, so each delivery still has exactly one run; a replica that was only
stalled (not dead) and records the run late records the same id, which changes
nothing.

A delivery whose run Prefect refused for good (its deployment deleted, its
inputs rejected) is marked failed with the reason; the sender's retry of it, or
an operator's requeue (:meth:`WebhookDeliveries.requeue`), puts it back in the
queue, so re-deploying and retrying recovers it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from agentparty.runtime.sealing import SealedColumn, SealedRecordError, Sealer, sealer_at, store_home
from agentparty.runtime.settings import get_settings, state_backend_at
from agentparty.runtime.state_backend import Migration, SqliteBackend, StateBackend, StateConnection, as_backend

RETENTION_S = 7 * 24 * 3600
"""How long settled deliveries are remembered (a sender's retries end long before); pending ones are kept."""
PRUNE_EVERY_S = 600.0
LEASE_S = 60.0
"""How long a claim holds without renewal: the longest a dead replica's deliveries wait for another to take them."""
DELIVERY_INPUTS = SealedColumn("webhooks", "webhooks.sqlite", "webhook_deliveries", "inputs", ("delivery_id",))
"""A delivery's run inputs are sealed at rest (``runtime/sealing.py``) while it waits, bound to its id."""
SEALED_COLUMNS = (DELIVERY_INPUTS,)

DeliveryStatus = Literal["queued", "created", "failed"]

_NAMESPACE = uuid.UUID("0b8f3c52-7a43-4f0e-9d0c-5d1f8f1e2a6b")
_COLUMNS = (
    "delivery_id, workflow_id, key_sha256, deployment, inputs, received_at, attempts, last_error, "
    "flow_run_id, failed_reason, claimed_by, claimed_until"
)
_TABLE = (
    "CREATE TABLE IF NOT EXISTS webhook_deliveries ("
    " delivery_id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL, key_sha256 TEXT NOT NULL, deployment TEXT NOT NULL,"
    " inputs TEXT, received_at {real} NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
    " flow_run_id TEXT, failed_reason TEXT, settled_at {real});"
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_pending ON webhook_deliveries (received_at)"
    " WHERE flow_run_id IS NULL AND failed_reason IS NULL;"
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_recent ON webhook_deliveries (workflow_id, received_at)"
)
MIGRATIONS = (
    Migration(1, sqlite=_TABLE.format(real="REAL"), postgresql=_TABLE.format(real="DOUBLE PRECISION")),
    # v2: claims, so that several dispatchers (API replicas) share the queue; files made before keep working
    Migration(
        2,
        sqlite="ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;"
        "ALTER TABLE webhook_deliveries ADD COLUMN claimed_until REAL",
        postgresql="ALTER TABLE webhook_deliveries ADD COLUMN IF NOT EXISTS claimed_by TEXT;"
        "ALTER TABLE webhook_deliveries ADD COLUMN IF NOT EXISTS claimed_until DOUBLE PRECISION",
    ),
)
_QUEUED = "flow_run_id IS NULL AND failed_reason IS NULL"
_SHARED_KEYS = (
    "every host sharing the state database needs the same data keys: AGENTPARTY_DATA_KEYS or AGENTPARTY_DATA_KEY_FILE"
)
logger = logging.getLogger("agentparty.webhooks")
_CHUNK = 500
"""Ids per ``IN (…)`` list (SQLite's bound-parameter limit is higher; this keeps statements small)."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def delivery_id_for(workflow_id: str, key: str) -> str:
    """The delivery's id: the same for every arrival of the same key, so a replay names the same delivery."""
    return str(uuid.uuid5(_NAMESPACE, f"{workflow_id}:{_digest(key)}"))


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    workflow_id: str
    key_sha256: str
    deployment: str
    """The deployment its run belongs to, ``FLOW/DEPLOYMENT``."""
    inputs: dict[str, Any] | None
    """The run inputs; dropped once the run exists (Prefect keeps them as the run's parameters)."""
    received_at: float
    attempts: int
    """Tries to create the run so far."""
    last_error: str | None
    """Why the last try did not create it (Prefect unreachable, say); the dispatcher tries again."""
    flow_run_id: str | None
    failed_reason: str | None
    claimed_by: str | None = None
    """The dispatcher that holds (or last held) the delivery: the one that created its run, once created."""
    claimed_until: float | None = None
    """When its claim lapses unless renewed (epoch seconds); None when nobody holds it."""

    @property
    def prefect_idempotency_key(self) -> str:
        """What its run is created with, so that creating it again returns the same run: scoped to the
        workflow, and hashed so that any header value fits."""
        return f"agentparty-webhook:{self.workflow_id}:{self.key_sha256}"

    @property
    def status(self) -> DeliveryStatus:
        if self.flow_run_id is not None:
            return "created"
        return "failed" if self.failed_reason is not None else "queued"


@dataclass(frozen=True)
class Acceptance:
    fresh: bool
    """This arrival (or requeue) is the one that queued the delivery: a first arrival, or a retry of a failed one."""
    delivery: Delivery


def _delivery(row: tuple[Any, ...], sealer: Sealer) -> Delivery:
    (delivery_id, workflow_id, key_sha256, deployment, inputs, received_at, attempts, last_error) = row[:8]
    (flow_run_id, failed_reason, claimed_by, claimed_until) = row[8:]
    return Delivery(
        delivery_id,
        workflow_id,
        key_sha256,
        deployment,
        json.loads(DELIVERY_INPUTS.open(sealer, inputs, delivery_id)) if inputs is not None else None,
        received_at,
        attempts,
        last_error,
        flow_run_id,
        failed_reason,
        claimed_by,
        claimed_until,
    )


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]


def _marks(ids: Sequence[str]) -> str:
    return ",".join("?" * len(ids))


class WebhookDeliveries:
    STORE = "webhooks"
    """The store's name: ``state/webhooks.sqlite`` on SQLite, its schema version's key on PostgreSQL."""

    def __init__(self, where: StateBackend | Path, sealer: Sealer | None = None) -> None:
        """``where``: the state backend, or the path of a SQLite file of the store's own (one machine)."""
        self.backend = as_backend(where)
        sqlite_file = self.backend.path(self.STORE) if isinstance(self.backend, SqliteBackend) else None
        self.path = sqlite_file
        """The SQLite file, when the store is one; None on PostgreSQL."""
        self.sealer = sealer or sealer_at(store_home(sqlite_file) if sqlite_file else get_settings().home)
        self._pruned_at = 0.0
        self.backend.migrate(self.STORE, MIGRATIONS)

    @classmethod
    def at(cls, home: Path, sealer: Sealer | None = None, backend: StateBackend | None = None) -> WebhookDeliveries:
        """The deliveries of ``home``: in ``backend``, by default where the settings keep engine state."""
        return cls(backend or state_backend_at(home), sealer or sealer_at(home))

    def accept(
        self, workflow_id: str, key: str, deployment: str, inputs: dict[str, Any], holder: str | None = None
    ) -> Acceptance:
        """Queue the delivery, unless this key was accepted before (then: what became of it)."""
        return self.accept_many([(workflow_id, key, deployment, inputs)], holder)[0]

    def accept_many(
        self, arrivals: list[tuple[str, str, str, dict[str, Any]]], holder: str | None = None, lease_s: float = LEASE_S
    ) -> list[Acceptance]:
        """``accept`` for several arrivals (workflow id, key, deployment, inputs) in one transaction, in order.

        With ``holder`` (a dispatcher), the deliveries this queues are claimed by it for ``LEASE_S``:
        the replica that answers the sender creates the run, and the others leave it alone."""
        now = time.time()
        claim_until = now + lease_s if holder is not None else None
        accepted = []
        with self.backend.transaction(self.STORE, write=True) as db:
            for workflow_id, key, deployment, inputs in arrivals:
                delivery_id = delivery_id_for(workflow_id, key)
                sealed = self._sealed(inputs, delivery_id)
                inserted = db.execute(
                    "INSERT INTO webhook_deliveries (delivery_id, workflow_id, key_sha256, deployment, inputs,"
                    " received_at, claimed_by, claimed_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(delivery_id) DO NOTHING",
                    (delivery_id, workflow_id, _digest(key), deployment, sealed, now, holder, claim_until),
                ).rowcount
                if not inserted:  # a retry of a delivery that failed for good is queued again, with the new inputs
                    inserted = db.execute(
                        "UPDATE webhook_deliveries SET failed_reason = NULL, settled_at = NULL, inputs = ?,"
                        " deployment = ?, claimed_by = ?, claimed_until = ?"
                        " WHERE delivery_id = ? AND failed_reason IS NOT NULL",
                        (sealed, deployment, holder, claim_until, delivery_id),
                    ).rowcount
                accepted.append(Acceptance(fresh=bool(inserted), delivery=self._get(db, delivery_id)))
            if now - self._pruned_at > PRUNE_EVERY_S:
                db.execute("DELETE FROM webhook_deliveries WHERE settled_at < ?", (now - RETENTION_S,))
                self._pruned_at = now
        return accepted

    def _sealed(self, inputs: dict[str, Any], delivery_id: str) -> str:
        return DELIVERY_INPUTS.seal(self.sealer, json.dumps(inputs), delivery_id)

    def _get(self, db: StateConnection, delivery_id: str) -> Delivery:
        row = db.execute(f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE delivery_id = ?", (delivery_id,)).fetchone()
        return _delivery(tuple(row), self.sealer)

    def pending(self, limit: int = 100) -> list[Delivery]:
        """Deliveries still waiting for their runs, oldest first, claimed or not (a view; dispatchers ``claim``)."""
        with self.backend.transaction(self.STORE) as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE {_QUEUED} ORDER BY received_at LIMIT ?", (limit,)
            ).fetchall()
        return [_delivery(tuple(row), self.sealer) for row in rows]

    def claim(self, holder: str, limit: int = 100, lease_s: float = LEASE_S) -> list[Delivery]:
        """Claim up to ``limit`` queued deliveries nobody holds (or whose holder's lease ran out), oldest first.

        On PostgreSQL the rows are locked with ``SKIP LOCKED``: dispatchers claiming at the same moment
        each get different deliveries and none waits for another; a claim committed a moment ago is
        seen (its lease is in the future) and skipped too."""
        now = time.time()
        with self.backend.transaction(self.STORE, write=True) as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE {_QUEUED}"
                " AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY received_at LIMIT ?"
                + self.backend.skip_locked,
                (now, limit),
            ).fetchall()
            ids = [row[0] for row in rows]
            for chunk in _chunks(ids):
                db.execute(
                    f"UPDATE webhook_deliveries SET claimed_by = ?, claimed_until = ? WHERE delivery_id IN ({_marks(chunk)})",
                    (holder, now + lease_s, *chunk),
                )
        claimed = []
        for row in rows:
            try:
                delivery = _delivery(tuple(row), self.sealer)
            except SealedRecordError as exc:  # sealed with a key this host lacks: let a host that has it try
                logger.error("webhook delivery %s left queued: %s (%s)", row[0], exc, _SHARED_KEYS)
                self.record_error(row[0], f"{exc} ({_SHARED_KEYS})"[:500])
                continue
            claimed.append(replace(delivery, claimed_by=holder, claimed_until=now + lease_s))
        return claimed

    def renew(self, holder: str, delivery_ids: Sequence[str], lease_s: float = LEASE_S) -> int:
        """Extend ``holder``'s claims of these deliveries (those still queued); how many it still holds."""
        renewed = 0
        with self.backend.transaction(self.STORE, write=True) as db:
            for chunk in _chunks(list(delivery_ids)):
                renewed += db.execute(
                    f"UPDATE webhook_deliveries SET claimed_until = ? WHERE claimed_by = ? AND {_QUEUED}"
                    f" AND delivery_id IN ({_marks(chunk)})",
                    (time.time() + lease_s, holder, *chunk),
                ).rowcount
        return renewed

    def release(self, holder: str, delivery_ids: Sequence[str]) -> None:
        """Give up ``holder``'s claims of these deliveries (still queued): any dispatcher may take them now."""
        with self.backend.transaction(self.STORE, write=True) as db:
            for chunk in _chunks(list(delivery_ids)):
                db.execute(
                    f"UPDATE webhook_deliveries SET claimed_until = NULL WHERE claimed_by = ? AND {_QUEUED}"
                    f" AND delivery_id IN ({_marks(chunk)})",
                    (holder, *chunk),
                )

    def record_error(self, delivery_id: str, error: str) -> None:
        """A try that may succeed later (Prefect down or overloaded): the delivery stays queued, its claim
        released, so whichever dispatcher looks next tries again."""
        with self.backend.transaction(self.STORE, write=True) as db:
            db.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ?, claimed_until = NULL"
                " WHERE delivery_id = ?",
                (error, delivery_id),
            )

    def record_run(self, delivery_id: str, flow_run_id: str) -> None:
        """The run exists: the delivery is settled (a twin dispatcher's record of the same run changes nothing)."""
        with self.backend.transaction(self.STORE, write=True) as db:
            db.execute(
                "UPDATE webhook_deliveries SET flow_run_id = ?, inputs = NULL, failed_reason = NULL, settled_at = ?,"
                " attempts = attempts + 1, claimed_until = NULL"
                " WHERE delivery_id = ? AND flow_run_id IS NULL",
                (flow_run_id, time.time(), delivery_id),
            )

    def record_failure(self, delivery_id: str, reason: str) -> None:
        """Prefect refused the run for good; the inputs are kept so that a retry of the delivery can still run."""
        with self.backend.transaction(self.STORE, write=True) as db:
            db.execute(
                "UPDATE webhook_deliveries SET failed_reason = ?, settled_at = ?, attempts = attempts + 1,"
                " claimed_until = NULL WHERE delivery_id = ? AND flow_run_id IS NULL",
                (reason, time.time(), delivery_id),
            )

    def requeue(self, delivery_id: str, holder: str | None = None) -> Acceptance | None:
        """Queue a failed delivery again with the inputs it was accepted with; None when there is no such delivery.

        An operator's retry, once the cause is fixed (the workflow deployed again, the
        deployment's schema relaxed), for senders that do not retry. ``fresh`` is False when
        the delivery was not failed: its run exists or is being created. ``holder`` claims it, as in ``accept``.
        """
        with self.backend.transaction(self.STORE, write=True) as db:
            requeued = db.execute(
                "UPDATE webhook_deliveries SET failed_reason = NULL, settled_at = NULL, last_error = NULL,"
                " claimed_by = ?, claimed_until = ? WHERE delivery_id = ? AND failed_reason IS NOT NULL",
                (holder, time.time() + LEASE_S if holder is not None else None, delivery_id),
            ).rowcount
            row = db.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE delivery_id = ?", (delivery_id,)
            ).fetchone()
        return Acceptance(fresh=bool(requeued), delivery=_delivery(tuple(row), self.sealer)) if row else None

    def forget_runs(self, flow_run_ids: list[str]) -> int:
        """Drop the deliveries that made these runs (a user's erasure); how many went."""
        removed = 0
        with self.backend.transaction(self.STORE, write=True) as db:
            for chunk in _chunks(flow_run_ids):
                removed += db.execute(
                    f"DELETE FROM webhook_deliveries WHERE flow_run_id IN ({_marks(chunk)})", tuple(chunk)
                ).rowcount
        return removed

    def forget_before(self, cutoff: float) -> int:
        """Drop settled deliveries received before ``cutoff`` (epoch seconds; retention). Queued ones stay: their
        runs do not exist yet."""
        with self.backend.transaction(self.STORE, write=True) as db:
            return int(
                db.execute(
                    "DELETE FROM webhook_deliveries WHERE received_at < ? AND settled_at IS NOT NULL", (cutoff,)
                ).rowcount
            )

    def get(self, delivery_id: str) -> Delivery | None:
        with self.backend.transaction(self.STORE) as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE delivery_id = ?", (delivery_id,)
            ).fetchone()
        return _delivery(tuple(row), self.sealer) if row else None

    def counts(self) -> dict[DeliveryStatus, int]:
        """How many deliveries the store keeps, by status (the metrics' gauge)."""
        with self.backend.transaction(self.STORE) as db:
            rows = db.execute(
                "SELECT CASE WHEN flow_run_id IS NOT NULL THEN 'created' WHEN failed_reason IS NOT NULL THEN 'failed'"
                " ELSE 'queued' END AS status, count(*) FROM webhook_deliveries GROUP BY 1"
            ).fetchall()
        found = {str(status): int(count) for status, count in rows}
        return {status: found.get(status, 0) for status in ("queued", "created", "failed")}

    def recent(self, workflow_id: str, status: DeliveryStatus | None = None, limit: int = 100) -> list[Delivery]:
        """The workflow's deliveries, newest first (``status`` narrows them)."""
        where = {
            None: "",
            "queued": f" AND {_QUEUED}",
            "created": " AND flow_run_id IS NOT NULL",
            "failed": " AND failed_reason IS NOT NULL",
        }[status]
        with self.backend.transaction(self.STORE) as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE workflow_id = ?{where} ORDER BY received_at DESC LIMIT ?",
                (workflow_id, limit),
            ).fetchall()
        return [_delivery(tuple(row), self.sealer) for row in rows]
