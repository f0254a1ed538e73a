"""The event outbox on both state backends, from several processes at once (DESIGN.md §12, issue 24).

On PostgreSQL the outbox is what every host shares: an event id is stored once
whichever process (host) appends it, exactly one appender is told it was new,
exactly one relay sends at a time, and when that relay's process dies another
takes over and sends what it left. A plain Kafka consumer (``kafka_raw``: no
de-duplication) checks that each event reached the broker once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.kafka_raw import read_raw, repeats
from support.shared_outbox_procs import append_overlapping, relay_forever, same_backend, shared_events

from agentparty.models.config import KafkaConfig
from agentparty.runtime.data_keys import DEFAULT_KEY_FILE, load_key_ring, rotate_key_file
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.reencrypt import reencrypt
from agentparty.runtime.relay import OutboxRelay, topic_names
from agentparty.runtime.sealing import MAGIC, Sealer
from agentparty.runtime.state_backend import StateBackend

PROCESSES = 4
EVENTS = 300


def home_of(backend: StateBackend, tmp_path: Path) -> Path:
    """The home whose outbox the backend holds (SQLite: ``<home>/state/outbox.sqlite``)."""
    folder = getattr(backend, "folder", None)
    return folder.parent if isinstance(folder, Path) else tmp_path


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


def stored_ids(outbox: Outbox) -> list[str]:
    """Every event id the outbox holds, repeats included (read through the backend, not the outbox's API)."""
    backend = getattr(outbox, "backend", None)
    if backend is None:
        from agentparty.runtime.state_db import state_db

        with state_db(outbox.path) as db:
            return [row[0] for row in db.execute("SELECT event_id FROM outbox").fetchall()]
    with backend.transaction("outbox") as db:
        return [row[0] for row in db.execute("SELECT event_id FROM outbox").fetchall()]


def test_processes_appending_overlapping_ids_store_each_once(state_backend: StateBackend, tmp_path: Path) -> None:
    home, prefix = home_of(state_backend, tmp_path), "o."
    outbox = Outbox.at(home, prefix, backend=state_backend)  # the schema, before the race
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [
        context.Process(
            target=append_overlapping, args=(str(home), *same_backend(state_backend), prefix, worker, EVENTS, out)
        )
        for worker in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    reports = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    told = [event_id for _, stored in reports for event_id in stored]
    expected = {e.event_id for e in shared_events("overlap", EVENTS)}
    assert sorted(stored_ids(outbox)) == sorted(expected), "an id was stored twice, or lost"
    assert sorted(told) == sorted(expected), "an id was reported new to no caller, or to two"
    assert outbox.pending_count() == EVENTS


def test_a_run_resumed_elsewhere_sends_nothing_twice(state_backend: StateBackend, tmp_path: Path) -> None:
    """Host A stored and sent a run's events; host B resumes the run and re-emits them: none is new."""
    home = home_of(state_backend, tmp_path)
    first = Outbox.at(home, "r.", backend=state_backend)
    events = shared_events("resumed", 40)
    assert len(first.append(events[:30])) == 30
    first.mark_delivered([row.seq for row in first.pending()])
    other = Outbox.at(home, "r.", backend=state_backend)  # another process's (host's) view of the same outbox
    assert [e.event_id for e in other.append(events)] == [e.event_id for e in events[30:]]
    assert [row.event_id for row in other.pending()] == [e.event_id for e in events[30:]]


def test_payloads_are_sealed_on_either_backend_and_reencrypted(state_backend: StateBackend, tmp_path: Path) -> None:
    home = home_of(state_backend, tmp_path)
    sealer = Sealer(True, "AES-256-GCM", lambda: load_key_ring(home, None, None))
    outbox = Outbox.at(home, "s.", sealer=sealer, backend=state_backend)
    events = shared_events("sealed", 12)
    outbox.append(events)
    raw = _raw_values(outbox)
    assert len(raw) == 12 and all(value.startswith(MAGIC) for value in raw)
    assert all(b"submitted_by" not in value for value in raw)
    rotate_key_file(home / DEFAULT_KEY_FILE)
    sealer.reload()
    report = reencrypt(home, sealer, state_backend)
    assert sum(n for label, n in report.counts.items() if label.startswith("outbox")) == 12
    assert reencrypt(home, sealer, state_backend).total == 0
    assert {sealer.key_id(value) for value in _raw_values(outbox)} == {sealer.ring.newest.id}
    assert [row.event_id for row in outbox.pending()] == [e.event_id for e in events]
    assert all(b"submitted_by" in row.value for row in outbox.pending())


def _raw_values(outbox: Outbox) -> list[bytes]:
    backend = getattr(outbox, "backend", None)
    if backend is None:
        from agentparty.runtime.state_db import state_db

        with state_db(outbox.path) as db:
            return [bytes(row[0]) for row in db.execute("SELECT value FROM outbox ORDER BY seq").fetchall()]
    with backend.transaction("outbox") as db:
        return [bytes(row[0]) for row in db.execute("SELECT value FROM outbox ORDER BY seq").fetchall()]


def test_one_relay_sends_and_another_takes_over_when_its_process_is_killed(
    state_backend: StateBackend, kafka_broker: Any, tmp_path: Path
) -> None:
    """Two processes relay one outbox: one sends, the other stands by; SIGKILL the sender (idle, nothing in
    flight) and the other sends what comes next. Every event reaches the broker exactly once."""
    home, prefix = home_of(state_backend, tmp_path), f"x{uuid.uuid4().hex[:8]}."
    outbox = Outbox.at(home, prefix, backend=state_backend)
    context = multiprocessing.get_context("spawn")
    args = (str(home), *same_backend(state_backend), prefix, kafka_broker.bootstrap_servers)
    first = context.Process(target=relay_forever, args=args)
    first.start()
    second: Any = None
    try:
        wait_until(lambda: outbox.sender_pid() == first.pid, 60, "the first relay to hold the sender slot")
        second = context.Process(target=relay_forever, args=args)
        second.start()
        before = shared_events("before-kill", 500)
        assert len(outbox.append(before)) == 500
        outbox.wake_sender()
        wait_until(lambda: outbox.pending_count() == 0, 60, "the first relay to send")
        assert outbox.sender_pid() == first.pid, "the standby relay took the slot from a live sender"
        assert outbox.try_acquire_sender() is None, "a third relay could take the slot while one holds it"

        killed_at = time.monotonic()
        os.kill(first.pid, signal.SIGKILL)
        first.join(10)
        wait_until(lambda: outbox.sender_pid() == second.pid, 30, "the standby relay to take over")
        print(f"the standby relay held the slot {time.monotonic() - killed_at:.2f} s after the SIGKILL")
        assert outbox.sender() is not None and str(second.pid) in outbox.sender()
        after = shared_events("after-kill", 500)
        assert len(outbox.append(after)) == 500
        outbox.wake_sender()
        wait_until(lambda: outbox.pending_count() == 0, 60, "the second relay to send")
    finally:
        for process in (first, second):
            if process is not None and process.is_alive():
                process.kill()
                process.join(10)
    emitted = {e.event_id for e in [*before, *after]}
    records = read_raw(kafka_broker.bootstrap_servers, topic_names(prefix), expect=emitted)
    assert {r.event_id for r in records} == emitted, "an event was lost"
    assert repeats(records) == {}, f"{sum(repeats(records).values())} repeated records"


@pytest.fixture
def pg_backend(postgres_cluster: Any) -> Iterator[StateBackend]:
    from support.postgres_support import backend_on

    yield from backend_on(postgres_cluster)


def test_a_relay_whose_session_ends_competes_again_and_sends(pg_backend: StateBackend, kafka_broker: Any) -> None:
    """PostgreSQL ends the sending relay's session (a restart, a failover, an operator): its lock is gone, so
    it may no longer send as if it held it; it takes the slot again when it can and goes on sending."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    outbox = Outbox.at(Path("/nonexistent-home"), prefix, backend=pg_backend)
    relay = OutboxRelay(outbox, KafkaConfig(bootstrap_servers=[kafka_broker.bootstrap_servers], group_id="t"))
    relay.start(interval=0.5)
    try:
        wait_until(lambda: relay.is_sender, 30, "the relay to hold the sender slot")
        with pg_backend.transaction("outbox") as db:
            ended = db.execute(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchall()
        assert ended == [(True,)]
        events = shared_events("after-terminate", 200)
        assert len(outbox.append(events)) == 200
        relay.nudge()
        wait_until(lambda: outbox.pending_count() == 0, 60, "the relay to take the slot again and send")
        assert outbox.sender_pid() == os.getpid() and relay.is_sender
    finally:
        relay.stop()
    records = read_raw(kafka_broker.bootstrap_servers, topic_names(prefix), expect={e.event_id for e in events})
    assert sorted(r.event_id for r in records) == sorted(e.event_id for e in events)


def test_deliveries_kept_in_postgres_are_reencrypted_too(postgres_cluster: Any, tmp_path: Path) -> None:
    """``keys reencrypt`` reseals every sealed column of the stores the shared schema holds, not only the outbox."""
    from support.postgres_support import backend_on

    from agentparty.runtime.webhook_deliveries import WebhookDeliveries

    for backend in backend_on(postgres_cluster):
        sealer = Sealer(True, "AES-256-GCM", lambda: load_key_ring(tmp_path, None, None))
        deliveries = WebhookDeliveries(backend, sealer=sealer)
        for i in range(3):
            deliveries.accept("wf", f"key-{i}", "Flow/wf", {"secret": f"value-{i}"})
        rotate_key_file(tmp_path / DEFAULT_KEY_FILE)
        sealer.reload()
        report = reencrypt(tmp_path, sealer, backend)
        assert report.counts["webhooks: webhook_deliveries.inputs (PostgreSQL)"] == 3
        assert reencrypt(tmp_path, sealer, backend).total == 0
        assert sorted(d.inputs["secret"] for d in deliveries.recent("wf") if d.inputs) == [
            "value-0", "value-1", "value-2"
        ]  # fmt: skip
