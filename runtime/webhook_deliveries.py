"""The webhook deliveries the API accepted, kept durably until their flow runs exist (SQLite, house style).

A delivery is identified by its workflow and ``Idempotency-Key`` (by default
its signature). Accepting one stores its run inputs in one immediate
transaction *before* the 202 goes out; the dispatcher
(:mod:`agentparty.api.webhook_dispatch`) then creates its flow run with a
Prefect idempotency key derived from the same pair and records the run's id.
So a crash, a Prefect outage or a retry loses nothing and duplicates nothing:

- a crash after the store and before the run: the dispatcher of the next
  start finds the delivery pending and creates the run;
- a crash after the run and before recording it: creating it again with the
  same Prefect idempotency key returns the run already made;
- a sender's retry of an accepted delivery is a replay (409, naming the run
  once it exists), never a second run.

A delivery whose run Prefect refused for good (its deployment deleted, its
inputs rejected) is marked failed with the reason; the sender's retry of it, or
an operator's requeue (:meth:`WebhookDeliveries.requeue`), puts it back in the
queue, so re-deploying and retrying recovers it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agentparty.runtime.sealing import SealedColumn, Sealer, sealer_at, store_home
from agentparty.runtime.state_db import state_db

RETENTION_S = 7 * 24 * 3600
"""How long settled deliveries are remembered (a sender's retries end long before); pending ones are kept."""
PRUNE_EVERY_S = 600.0
DELIVERY_INPUTS = SealedColumn("webhooks", "webhooks.sqlite", "webhook_deliveries", "inputs", ("delivery_id",))
"""A delivery's run inputs are sealed at rest (``runtime/sealing.py``) while it waits, bound to its id."""
SEALED_COLUMNS = (DELIVERY_INPUTS,)

DeliveryStatus = Literal["queued", "created", "failed"]

_NAMESPACE = uuid.UUID("0b8f3c52-7a43-4f0e-9d0c-5d1f8f1e2a6b")
_COLUMNS = (
    "delivery_id, workflow_id, key_sha256, deployment, inputs, received_at, attempts, last_error, "
    "flow_run_id, failed_reason"
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS webhook_deliveries ("
    " delivery_id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL, key_sha256 TEXT NOT NULL, deployment TEXT NOT NULL,"
    " inputs TEXT, received_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
    " flow_run_id TEXT, failed_reason TEXT, settled_at REAL)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_pending ON webhook_deliveries (received_at)"
    " WHERE flow_run_id IS NULL AND failed_reason IS NULL",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_recent ON webhook_deliveries (workflow_id, received_at)",
)


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
    (
        delivery_id,
        workflow_id,
        key_sha256,
        deployment,
        inputs,
        received_at,
        attempts,
        last_error,
        flow_run_id,
        failed_reason,
    ) = row
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
    )


class WebhookDeliveries:
    def __init__(self, path: Path, sealer: Sealer | None = None) -> None:
        self.path = path
        self.sealer = sealer or sealer_at(store_home(path))
        self._pruned_at = 0.0
        with state_db(path) as db:
            for statement in _SCHEMA:
                db.execute(statement)

    @classmethod
    def at(cls, home: Path, sealer: Sealer | None = None) -> WebhookDeliveries:
        return cls(home / "state" / "webhooks.sqlite", sealer)

    def accept(self, workflow_id: str, key: str, deployment: str, inputs: dict[str, Any]) -> Acceptance:
        """Queue the delivery, unless this key was accepted before (then: what became of it)."""
        return self.accept_many([(workflow_id, key, deployment, inputs)])[0]

    def accept_many(self, arrivals: list[tuple[str, str, str, dict[str, Any]]]) -> list[Acceptance]:
        """``accept`` for several arrivals (workflow id, key, deployment, inputs) in one transaction, in order."""
        now = time.time()
        accepted = []
        with state_db(self.path, write=True) as db:
            for workflow_id, key, deployment, inputs in arrivals:
                delivery_id = delivery_id_for(workflow_id, key)
                inserted = db.execute(
                    "INSERT OR IGNORE INTO webhook_deliveries"
                    " (delivery_id, workflow_id, key_sha256, deployment, inputs, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (delivery_id, workflow_id, _digest(key), deployment, self._sealed(inputs, delivery_id), now),
                ).rowcount
                if not inserted:  # a retry of a delivery that failed for good is queued again, with the new inputs
                    inserted = db.execute(
                        "UPDATE webhook_deliveries SET failed_reason = NULL, settled_at = NULL, inputs = ?, deployment = ?"
                        " WHERE delivery_id = ? AND failed_reason IS NOT NULL",
                        (self._sealed(inputs, delivery_id), deployment, delivery_id),
                    ).rowcount
                row = db.execute(
                    f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE delivery_id = ?", (delivery_id,)
                ).fetchone()
                accepted.append(Acceptance(fresh=bool(inserted), delivery=_delivery(row, self.sealer)))
            if now - self._pruned_at > PRUNE_EVERY_S:
                db.execute("DELETE FROM webhook_deliveries WHERE settled_at < ?", (now - RETENTION_S,))
                self._pruned_at = now
        return accepted

    def _sealed(self, inputs: dict[str, Any], delivery_id: str) -> str:
        return DELIVERY_INPUTS.seal(self.sealer, json.dumps(inputs), delivery_id)

    def pending(self, limit: int = 100) -> list[Delivery]:
        """Deliveries still waiting for their runs, oldest first."""
        with state_db(self.path) as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE flow_run_id IS NULL AND failed_reason IS NULL"
                " ORDER BY received_at LIMIT ?",
                (limit,),
            ).fetchall()
        return [_delivery(row, self.sealer) for row in rows]

    def record_error(self, delivery_id: str, error: str) -> None:
        """A try that may succeed later (Prefect down or overloaded): the delivery stays queued."""
        with state_db(self.path, write=True) as db:
            db.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ? WHERE delivery_id = ?",
                (error, delivery_id),
            )

    def record_run(self, delivery_id: str, flow_run_id: str) -> None:
        """The run exists: the delivery is settled (a twin dispatcher's record of the same run changes nothing)."""
        with state_db(self.path, write=True) as db:
            db.execute(
                "UPDATE webhook_deliveries SET flow_run_id = ?, inputs = NULL, failed_reason = NULL, settled_at = ?,"
                " attempts = attempts + 1"
                " WHERE delivery_id = ? AND flow_run_id IS NULL",
                (flow_run_id, time.time(), delivery_id),
            )

    def record_failure(self, delivery_id: str, reason: str) -> None:
        """Prefect refused the run for good; the inputs are kept so that a retry of the delivery can still run."""
        with state_db(self.path, write=True) as db:
            db.execute(
                "UPDATE webhook_deliveries SET failed_reason = ?, settled_at = ?, attempts = attempts + 1"
                " WHERE delivery_id = ? AND flow_run_id IS NULL",
                (reason, time.time(), delivery_id),
            )

    def requeue(self, delivery_id: str) -> Acceptance | None:
        """Queue a failed delivery again with the inputs it was accepted with; None when there is no such delivery.

        An operator's retry, once the cause is fixed (the workflow deployed again, the
        deployment's schema relaxed), for senders that do not retry. ``fresh`` is False when
        the delivery was not failed: its run exists or is being created.
        """
        with state_db(self.path, write=True) as db:
            requeued = db.execute(
                "UPDATE webhook_deliveries SET failed_reason = NULL, settled_at = NULL, last_error = NULL"
                " WHERE delivery_id = ? AND failed_reason IS NOT NULL",
                (delivery_id,),
            ).rowcount
            row = db.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE delivery_id = ?", (delivery_id,)
            ).fetchone()
        return Acceptance(fresh=bool(requeued), delivery=_delivery(row, self.sealer)) if row else None

    def forget_runs(self, flow_run_ids: list[str]) -> int:
        """Drop the deliveries that made these runs (a user's erasure); how many went."""
        removed = 0
        with state_db(self.path, write=True) as db:
            for start in range(0, len(flow_run_ids), 500):  # SQLite's bound-parameter limit
                chunk = flow_run_ids[start : start + 500]
                removed += db.execute(
                    f"DELETE FROM webhook_deliveries WHERE flow_run_id IN ({','.join('?' * len(chunk))})", chunk
                ).rowcount
        return removed

    def forget_before(self, cutoff: float) -> int:
        """Drop settled deliveries received before ``cutoff`` (epoch seconds; retention). Queued ones stay: their
        runs do not exist yet."""
        with state_db(self.path, write=True) as db:
            return int(
                db.execute(
                    "DELETE FROM webhook_deliveries WHERE received_at < ? AND settled_at IS NOT NULL", (cutoff,)
                ).rowcount
            )

    def get(self, delivery_id: str) -> Delivery | None:
        with state_db(self.path) as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE delivery_id = ?", (delivery_id,)
            ).fetchone()
        return _delivery(row, self.sealer) if row else None

    def recent(self, workflow_id: str, status: DeliveryStatus | None = None, limit: int = 100) -> list[Delivery]:
        """The workflow's deliveries, newest first (``status`` narrows them)."""
        where = {
            None: "",
            "queued": " AND flow_run_id IS NULL AND failed_reason IS NULL",
            "created": " AND flow_run_id IS NOT NULL",
            "failed": " AND failed_reason IS NOT NULL",
        }[status]
        with state_db(self.path) as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE workflow_id = ?{where} ORDER BY received_at DESC LIMIT ?",
                (workflow_id, limit),
            ).fetchall()
        return [_delivery(row, self.sealer) for row in rows]
