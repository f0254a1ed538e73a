"""Durable memory of the webhook deliveries already accepted, for replay protection (SQLite, house style).

A delivery is identified by its ``Idempotency-Key`` (by default its signature).
Accepting one is three steps, and a crash between any two loses nothing and
duplicates nothing:

1. ``claim``: the key is recorded (one immediate transaction) before any run exists;
2. the flow run is created with the *same* key as Prefect's idempotency key,
   so creating it again returns the run already created;
3. ``record_run``: the run's id is stored next to the key; only now is the
   delivery acknowledged (202).

A key with a run id is a replay (409, naming that run). A key claimed but
without a run id belongs to a delivery that was never acknowledged (a crash,
a Prefect outage, or a twin in flight): its sender will retry, and the retry
finishes step 2 and 3, where Prefect hands back the run if it had been made.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from agentparty.runtime.state_db import state_db

RETENTION_S = 7 * 24 * 3600
"""How long accepted keys are remembered (a sender's retries end long before)."""
PRUNE_EVERY_S = 600.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS webhook_receipts ("
    " workflow_id TEXT NOT NULL, key_sha256 TEXT NOT NULL, flow_run_id TEXT, received_at REAL NOT NULL,"
    " PRIMARY KEY (workflow_id, key_sha256))"
)


@dataclass(frozen=True)
class Receipt:
    """What the store knew about a key when it was claimed."""

    fresh: bool
    """The key was new: this delivery recorded it."""
    flow_run_id: str | None
    """The run an earlier delivery with this key was acknowledged with."""


def prefect_idempotency_key(workflow_id: str, key: str) -> str:
    """The key handed to Prefect: scoped to the workflow, hashed so any header value fits."""
    return f"agentparty-webhook:{workflow_id}:{hashlib.sha256(key.encode()).hexdigest()}"


class WebhookReceipts:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._pruned_at = 0.0
        with state_db(path) as db:
            db.execute(_SCHEMA)

    @classmethod
    def at(cls, home: Path) -> WebhookReceipts:
        return cls(home / "state" / "webhooks.sqlite")

    def claim(self, workflow_id: str, key: str) -> Receipt:
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = time.time()
        with state_db(self.path, write=True) as db:
            inserted = db.execute(
                "INSERT OR IGNORE INTO webhook_receipts (workflow_id, key_sha256, received_at) VALUES (?, ?, ?)",
                (workflow_id, digest, now),
            ).rowcount
            if inserted:
                if now - self._pruned_at > PRUNE_EVERY_S:
                    db.execute("DELETE FROM webhook_receipts WHERE received_at < ?", (now - RETENTION_S,))
                    self._pruned_at = now
                return Receipt(fresh=True, flow_run_id=None)
            row = db.execute(
                "SELECT flow_run_id FROM webhook_receipts WHERE workflow_id = ? AND key_sha256 = ?", (workflow_id, digest)
            ).fetchone()
        return Receipt(fresh=False, flow_run_id=row[0] if row else None)

    def record_run(self, workflow_id: str, key: str, flow_run_id: str) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        with state_db(self.path, write=True) as db:
            db.execute(
                "UPDATE webhook_receipts SET flow_run_id = ? WHERE workflow_id = ? AND key_sha256 = ? AND flow_run_id IS NULL",
                (flow_run_id, workflow_id, digest),
            )

    def run_for(self, workflow_id: str, key: str) -> str | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        with state_db(self.path) as db:
            row = db.execute(
                "SELECT flow_run_id FROM webhook_receipts WHERE workflow_id = ? AND key_sha256 = ?", (workflow_id, digest)
            ).fetchone()
        return row[0] if row else None
