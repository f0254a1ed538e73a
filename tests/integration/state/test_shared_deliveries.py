"""Webhook deliveries on both state backends, claimed by several dispatchers (processes) at once.

The same tests run on SQLite (one machine) and PostgreSQL (what API replicas on
several hosts share): every queued delivery is claimed by exactly one
dispatcher and none is lost, and a claim whose holder died is taken over once
its lease runs out.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from support.postgres_support import backend_address, backend_at

from agentparty.runtime.data_keys import load_key_ring
from agentparty.runtime.sealing import Sealer
from agentparty.runtime.state_backend import StateBackend
from agentparty.runtime.webhook_deliveries import MIGRATIONS, WebhookDeliveries, delivery_id_for

DISPATCHERS = 4
DELIVERIES = 200


def _dispatch_all(kind: str, where: str, holder: str, start: Any, out: Any) -> None:
    """A dispatcher: claim a few, "create" their runs, until nothing is queued; report what it claimed."""
    store = WebhookDeliveries(backend_at(kind, where))
    claimed: list[str] = []
    start.wait(timeout=120)  # all at once: the first to start up would otherwise drain the queue alone
    while True:
        batch = store.claim(holder, limit=5)
        if not batch:
            if not store.pending(1):
                break
            time.sleep(0.01)  # the rest is held by others: wait for them to settle
            continue
        for delivery in batch:
            assert delivery.claimed_by == holder
            claimed.append(delivery.delivery_id)
            store.record_run(delivery.delivery_id, f"run-of-{delivery.delivery_id}")
    out.put((holder, claimed))


def _claim_and_hang(kind: str, where: str, lease_s: float, out: Any) -> None:
    store = WebhookDeliveries(backend_at(kind, where))
    out.put([d.delivery_id for d in store.claim("doomed", limit=100, lease_s=lease_s)])
    time.sleep(600)  # killed long before: its claims are never settled, renewed or released


def _queue(store: WebhookDeliveries, count: int) -> list[str]:
    arrivals = [("wf", f"key-{n}", "flow/deployment", {"n": n}) for n in range(count)]
    return [accepted.delivery.delivery_id for accepted in store.accept_many(arrivals)]


def test_concurrent_dispatchers_claim_every_delivery_exactly_once(state_backend: StateBackend) -> None:
    store = WebhookDeliveries(state_backend)
    queued = _queue(store, DELIVERIES)
    context = multiprocessing.get_context("spawn")
    out, start = context.Queue(), context.Barrier(DISPATCHERS)
    workers = [
        context.Process(target=_dispatch_all, args=(*backend_address(state_backend), f"replica-{n}", start, out))
        for n in range(DISPATCHERS)
    ]
    for worker in workers:
        worker.start()
    reports = dict(out.get(timeout=180) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    claims = [delivery_id for claimed in reports.values() for delivery_id in claimed]
    assert len(claims) == len(set(claims)), "a delivery was claimed by two dispatchers"
    assert sorted(claims) == sorted(queued), "a delivery was lost"
    assert sum(1 for claimed in reports.values() if claimed) > 1, "one dispatcher took everything: no contention"
    assert store.pending() == []
    for holder, claimed in reports.items():
        for delivery_id in claimed:
            settled = store.get(delivery_id)
            assert settled is not None and settled.status == "created" and settled.claimed_by == holder
            assert settled.flow_run_id == f"run-of-{delivery_id}" and settled.inputs is None


def test_a_dead_dispatchers_claims_are_taken_over_after_the_lease(state_backend: StateBackend) -> None:
    store = WebhookDeliveries(state_backend)
    queued = _queue(store, 10)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    doomed = context.Process(target=_claim_and_hang, args=(*backend_address(state_backend), 3.0, out))
    doomed.start()
    held = out.get(timeout=60)
    os.kill(doomed.pid, signal.SIGKILL)  # dies mid-dispatch: no record, no release
    doomed.join(timeout=30)
    assert sorted(held) == sorted(queued)

    assert store.claim("survivor") == []  # the lease still holds
    assert store.renew("survivor", held) == 0  # a claim is renewed only by its holder
    deadline = time.time() + 30
    taken: list[str] = []
    while not taken and time.time() < deadline:
        time.sleep(0.25)
        taken = [d.delivery_id for d in store.claim("survivor")]
    assert sorted(taken) == sorted(queued)
    assert {d.claimed_by for d in store.pending()} == {"survivor"}


def test_the_accepting_dispatcher_holds_its_delivery_until_it_lets_go(state_backend: StateBackend) -> None:
    store = WebhookDeliveries(state_backend)
    accepted = store.accept("wf", "key-1", "flow/deployment", {"a": 1}, holder="replica-a")
    assert accepted.fresh and accepted.delivery.claimed_by == "replica-a"
    assert store.claim("replica-b") == []  # the acceptor creates the run; the others leave it alone
    assert not store.accept("wf", "key-1", "flow/deployment", {"a": 1}, holder="replica-b").fresh  # a replay

    assert store.renew("replica-a", [accepted.delivery.delivery_id]) == 1
    store.record_error(accepted.delivery.delivery_id, "Prefect answered 503")  # released: anyone may try again
    [retaken] = store.claim("replica-b")
    assert retaken.delivery_id == accepted.delivery.delivery_id and retaken.inputs == {"a": 1}

    store.release("replica-b", [retaken.delivery_id])
    [again] = store.claim("replica-a")
    store.record_failure(again.delivery_id, "the workflow has no deployment")
    assert store.claim("replica-a") == []  # failed for good: not queued
    requeued = store.requeue(again.delivery_id, holder="replica-c")
    assert requeued is not None and requeued.fresh and requeued.delivery.claimed_by == "replica-c"
    store.record_run(again.delivery_id, "run-1")
    assert store.counts() == {"queued": 0, "created": 1, "failed": 0}
    assert [d.delivery_id for d in store.recent("wf", "created")] == [again.delivery_id]
    assert store.forget_runs(["run-1"]) == 1 and store.get(again.delivery_id) is None


def _host_sealer(home: Path) -> Sealer:
    """A host's sealer with a data key of its own (generated under its home)."""
    return Sealer(True, "AES-256-GCM", lambda: load_key_ring(home, None, None))


def test_a_delivery_sealed_with_another_hosts_key_stays_queued_for_that_host(
    state_backend: StateBackend, tmp_path: Path
) -> None:
    host_a = WebhookDeliveries(state_backend, sealer=_host_sealer(tmp_path / "a"))
    host_b = WebhookDeliveries(state_backend, sealer=_host_sealer(tmp_path / "b"))  # same rows, another key
    delivery_id = host_a.accept("wf", "key-1", "flow/deployment", {"secret": 1}).delivery.delivery_id

    assert host_b.claim("replica-b") == []  # cannot open its inputs: not taken, and the reason is recorded
    [queued] = host_a.pending()
    assert queued.status == "queued" and queued.claimed_until is None
    assert queued.last_error is not None and "AGENTPARTY_DATA_KEYS" in queued.last_error
    [claimed] = host_a.claim("replica-a")
    assert claimed.delivery_id == delivery_id and claimed.inputs == {"secret": 1}


def test_the_delivery_schema_is_versioned(state_backend: StateBackend) -> None:
    WebhookDeliveries(state_backend)
    assert state_backend.migrate(WebhookDeliveries.STORE, MIGRATIONS) == 2
    with state_backend.transaction(WebhookDeliveries.STORE) as db:
        row = db.execute("SELECT version FROM schema_versions WHERE store = ?", (WebhookDeliveries.STORE,)).fetchone()
    assert row[0] == 2


def test_a_webhooks_file_from_before_claims_keeps_its_queue(tmp_path: Path) -> None:
    """A home's ``webhooks.sqlite`` written by the previous release (no claims, no schema versions) is migrated."""
    path = tmp_path / "state" / "webhooks.sqlite"
    path.parent.mkdir()
    delivery_id = delivery_id_for("wf", "old-key")
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE webhook_deliveries (delivery_id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL,"
            " key_sha256 TEXT NOT NULL, deployment TEXT NOT NULL, inputs TEXT, received_at REAL NOT NULL,"
            " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, flow_run_id TEXT, failed_reason TEXT, settled_at REAL)"
        )
        db.execute(
            "INSERT INTO webhook_deliveries (delivery_id, workflow_id, key_sha256, deployment, inputs, received_at)"
            " VALUES (?, 'wf', 'digest', 'flow/deployment', '{\"old\": true}', ?)",
            (delivery_id, time.time()),
        )
    store = WebhookDeliveries.at(tmp_path)
    assert store.path == path
    [claimed] = store.claim(f"replica-{uuid.uuid4().hex[:6]}")
    assert claimed.delivery_id == delivery_id and claimed.inputs == {"old": True}
