"""Each event reaches Kafka once, and Prefect's event feed once, however many processes emit into one outbox and relay it.

Read back by kafka-python from offset 0 with no de-duplication (``kafka_raw``): our own consumer drops repeats.
That of processes appending the same events to one outbox exactly one stores each needs
no broker: ``tests/unit/runtime/test_events_once.py``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.events.clients import AssertingEventsClient
from prefect.testing.fixtures import asserting_events_worker  # noqa: F401  (Prefect's own fixture)
from support.kafka_raw import read_raw, repeats
from support.outbox_procs import emit_and_keep_sending, emit_then_settle, events_of

from agentparty.runtime.broker import LocalKafkaBroker
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.local_service import free_port
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import topic_names
from agentparty.runtime.state_db import state_db

PROCESSES = 6
EVENTS_EACH = 400


def test_six_processes_relaying_one_outbox_send_each_event_once(kafka_broker: Any, tmp_path: Path) -> None:
    prefix = f"s{uuid.uuid4().hex[:8]}."
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(
            target=emit_then_settle,
            args=(str(tmp_path), kafka_broker.bootstrap_servers, prefix, worker, EVENTS_EACH, 20, results),
        )
        for worker in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert {worker: pending for worker, pending, _ in reports} == {worker: 0 for worker in range(PROCESSES)}
    emitted = {event_id for _, _, ids in reports for event_id in ids}
    records = read_raw(kafka_broker.bootstrap_servers, topic_names(prefix), expect=emitted)
    assert {r.event_id for r in records} == emitted, "an event was lost"
    assert repeats(records) == {}, f"{sum(repeats(records).values())} repeated records"


def test_a_killed_sender_is_replaced_and_only_its_rows_in_flight_can_repeat(kafka_broker: Any, tmp_path: Path) -> None:
    """The sender dies by SIGKILL in the middle of a send; a standby relay in another process sends the rest."""
    prefix = f"k{uuid.uuid4().hex[:8]}."
    outbox = Outbox.at(tmp_path, prefix)
    context = multiprocessing.get_context("spawn")
    doomed = context.Process(
        target=emit_and_keep_sending, args=(str(tmp_path), kafka_broker.bootstrap_servers, prefix, 0, 30_000, 1000)
    )
    doomed.start()
    wait_until(lambda: outbox.sender_pid() == doomed.pid, 60, "the first process to become the sender")
    results = context.Queue()
    survivor = context.Process(
        target=emit_then_settle, args=(str(tmp_path), kafka_broker.bootstrap_servers, prefix, 1, 2000, 100, results)
    )
    survivor.start()
    wait_until(lambda: delivered_count(outbox) >= 2000, 60, "the sender to be sending")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(10)
    undelivered_at_kill = undelivered_ids(outbox)
    assert undelivered_at_kill, "killed after everything was sent: not in the middle of a send"

    _worker, pending, survivor_ids = results.get(timeout=120)
    survivor.join(30)
    assert pending == 0 and outbox.sender_pid() in (None, survivor.pid)
    wait_until(lambda: outbox.pending_count() == 0, 60, "the survivor to send the dead sender's rows")
    # What the dead process had stored before the kill (on a loaded machine it is still emitting its 30,000
    # when the 2,000th is delivered); every one of them, and the survivor's, must reach the broker.
    doomed_stored = stored_ids(outbox) - set(survivor_ids)
    assert doomed_stored <= {e.event_id for e in events_of(0, 30_000)} and len(doomed_stored) >= 2000
    emitted = doomed_stored | set(survivor_ids)
    records = read_raw(kafka_broker.bootstrap_servers, topic_names(prefix), expect=emitted)
    assert {r.event_id for r in records} == emitted, "an event was lost"
    repeated = repeats(records)
    assert set(repeated) <= undelivered_at_kill, "an event the dead sender had marked delivered was sent again"
    assert all(extra == 1 for extra in repeated.values())
    print(
        f"{len(undelivered_at_kill)} rows undelivered at the kill; {sum(repeated.values())} of them reached the broker twice"
    )


def test_events_emitted_while_the_broker_is_down_arrive_once_when_it_returns(tmp_path: Path) -> None:
    port = free_port()
    broker = LocalKafkaBroker(tmp_path / "late-broker", port=port)
    prefix = "late."
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(
            target=emit_then_settle, args=(str(tmp_path), broker.bootstrap_servers, prefix, worker, 300, 20, results)
        )
        for worker in range(4)
    ]
    for process in processes:
        process.start()
    outbox = Outbox.at(tmp_path, prefix)
    wait_until(lambda: outbox.pending_count() == 4 * 300, 60, "every process to emit into the outbox")
    time.sleep(1)  # the sender has tried, and failed, to reach the broker
    assert outbox.pending_count() == 4 * 300
    broker.start()
    try:
        reports = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(30)
        assert sorted(pending for _, pending, _ in reports) == [0, 0, 0, 0]
        emitted = {event_id for _, _, ids in reports for event_id in ids}
        records = read_raw(broker.bootstrap_servers, topic_names(prefix), expect=emitted)
    finally:
        broker.stop()
    assert {r.event_id for r in records} == emitted
    assert repeats(records) == {}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.02)


def delivered_count(outbox: Outbox) -> int:
    with state_db(outbox.path) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL").fetchone()[0])


def stored_ids(outbox: Outbox) -> set[str]:
    with state_db(outbox.path) as db:
        return {row[0] for row in db.execute("SELECT event_id FROM outbox")}


def undelivered_ids(outbox: Outbox) -> set[str]:
    with state_db(outbox.path) as db:
        return {row[0] for row in db.execute("SELECT event_id FROM outbox WHERE delivered_at IS NULL")}


def test_the_prefect_mirror_sends_only_what_the_call_stored(
    prefect_server: str,
    tmp_path: Path,
    asserting_events_worker: Any,  # noqa: F811
) -> None:
    """A second emission of a known event is not mirrored again. Were it sent, Prefect's client would fail it
    (its worker keys queued events by id: "Service 'EventsWorker' failed to process item", logged at ERROR)."""
    bus = EventBus(Outbox(tmp_path / "outbox.sqlite"), None, mirror=True)
    first, second, third = events_of(7, 3)
    failures: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = failures.append  # type: ignore[method-assign]
    prefect_logger = logging.getLogger("prefect._internal.concurrency")
    prefect_logger.addHandler(handler)

    @flow
    def emits() -> tuple[int, int]:
        return bus.emit(first, second), bus.emit(first, second, third)

    try:
        assert emits() == (2, 1)
        asserting_events_worker.drain()
    finally:
        prefect_logger.removeHandler(handler)
    mirrored = [e for e in AssertingEventsClient.last.events if e.event.startswith("agentparty.")]  # type: ignore[union-attr]
    assert sorted(str(e.id) for e in mirrored) == sorted(e.event_id for e in (first, second, third))
    assert [r.getMessage() for r in failures] == []
