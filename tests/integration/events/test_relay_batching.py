"""A relay honours ``communication.batching`` against the session's Kafka-protocol broker (Tansu).

``maxBatchSize``: one batch sends exactly that many events; batching off sends
one. ``maxWaitTime``: a lone emitted event waits that long for a batch to fill, a
full batch goes at once. ``flushInterval``: with nobody waking it, the sending
relay finds new rows in the outbox one interval after its last drain, not sooner
and not much later.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.outbox_procs import events_of

from agentparty.models.config import KafkaConfig
from agentparty.models.sdk_config import BatchingConfig
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite", f"b{uuid.uuid4().hex[:8]}.")


@pytest.fixture
def kafka(kafka_broker: Any) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=[kafka_broker.bootstrap_servers], group_id="tests")


@pytest.fixture
def relays() -> Iterator[list[OutboxRelay]]:
    made: list[OutboxRelay] = []
    yield made
    for relay in made:
        relay.stop()


def relay_of(outbox: Outbox, kafka: KafkaConfig, relays: list[OutboxRelay], **batching: Any) -> OutboxRelay:
    relay = OutboxRelay(outbox, kafka, message_timeout_ms=5000, batching=BatchingConfig(**batching))
    relays.append(relay)
    return relay


def test_one_batch_sends_max_batch_size_events_and_one_with_batching_off(
    outbox: Outbox, kafka: KafkaConfig, relays: list[OutboxRelay]
) -> None:
    outbox.append(events_of(1, 25))  # appended, not emitted: nothing wakes a relay
    relay = relay_of(outbox, kafka, relays, max_batch_size=10, max_wait_time=0)
    first = relay.drain(max_batches=1)
    assert (first.sent, first.delivered, first.pending) == (10, 10, 15)
    relay.stop()  # hands the sender slot on

    unbatched = relay_of(outbox, kafka, relays, enabled=False, max_batch_size=10)
    second = unbatched.drain(max_batches=3)
    assert (second.sent, second.delivered, second.pending) == (3, 3, 12)
    assert unbatched.drain().pending == 0


def delivered_after(outbox: Outbox, bus: EventBus, events: list[Any]) -> float:
    started = time.monotonic()
    bus.emit(*events)
    while outbox.pending_count():
        assert time.monotonic() - started < 10, "never delivered"
        time.sleep(0.002)
    return time.monotonic() - started


def test_an_emitted_event_waits_up_to_max_wait_time_for_a_full_batch(
    outbox: Outbox, kafka: KafkaConfig, relays: list[OutboxRelay]
) -> None:
    relay = relay_of(outbox, kafka, relays, max_batch_size=5, max_wait_time=600, flush_interval=10_000)
    bus = EventBus(outbox, relay, mirror=False)
    delivered_after(outbox, bus, events_of(4, 1))  # the relay is started, its producer and topics ready
    lone = delivered_after(outbox, bus, events_of(5, 1))
    full = delivered_after(outbox, bus, events_of(6, 5))
    assert 0.5 <= lone <= 1.5, f"one event waited {lone:.2f} s for four more"
    assert full < 0.4, f"a full batch went at once: {full:.2f} s"
    unbatched = relay_of(outbox, kafka, relays, max_batch_size=5, max_wait_time=0, flush_interval=10_000)
    relay.stop()
    bus = EventBus(outbox, unbatched, mirror=False)
    delivered_after(outbox, bus, events_of(7, 1))  # takes the sender slot over, starts its producer
    assert delivered_after(outbox, bus, events_of(8, 1)) < 0.4, "maxWaitTime 0: a lone event goes at once"


@pytest.mark.parametrize(("interval_ms", "low", "high"), [(150, 0.0, 0.6), (1500, 1.1, 2.4)])
def test_with_nobody_waking_it_the_sender_drains_every_flush_interval(
    outbox: Outbox, kafka: KafkaConfig, relays: list[OutboxRelay], interval_ms: int, low: float, high: float
) -> None:
    relay = relay_of(outbox, kafka, relays, flush_interval=interval_ms)
    outbox.append(events_of(2, 1))
    relay.start()  # drains at once, then waits one interval for a wake-up that never comes
    deadline = time.monotonic() + 30
    while outbox.pending_count():
        assert time.monotonic() < deadline, "the first drain never happened"
        time.sleep(0.005)
    appended = time.monotonic()
    outbox.append(events_of(3, 1))
    while outbox.pending_count():
        assert time.monotonic() - appended < 10, "never drained"
        time.sleep(0.005)
    waited = time.monotonic() - appended
    assert low <= waited <= high, f"flushInterval {interval_ms} ms: drained after {waited:.2f} s"
