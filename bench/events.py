"""Events through the outbox and relay vs the raw confluent-kafka producer, in the same run.

    python bench/events.py [--json] [--events N] [--repeat R]

A local Tansu broker is started for the run. Raw: the producer with the relay's
settings (acks=all, idempotence, lz4, linger 5 ms) sends N pre-serialised
events and flushes. Ours: the same N events (built before the clock starts)
are emitted through ``EventBus.emit`` in batches of 100 (SQLite outbox, one
transaction per call), then the relay drains the outbox and marks every event
delivered from its delivery report; the clock stops when the outbox is empty.
Target: ours >= 0.5 of raw throughput. Also: the median (and p99) time one
``emit()`` of a single event adds to a step (outbox append and relay wake-up;
the Prefect mirror is a no-op outside a flow run). Target < 0.5 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from agentparty.models.config import KafkaConfig
from agentparty.models.events import TaskSubmittedEvent, TaskSubmittedPayload
from agentparty.runtime.broker import LocalKafkaBroker
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.local_service import free_port
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay, ensure_topics, producer_config




def make_events(n: int) -> list[TaskSubmittedEvent]:
    return [
        TaskSubmittedEvent(
            correlation_id="bench", payload=TaskSubmittedPayload(task_id=f"task-{i % 500}", title=f"task {i}", submitted_by="bench", token_budget=1000)
        )
        for i in range(n)
    ]


def raw(config: KafkaConfig, topic: str, events: list[TaskSubmittedEvent]) -> float:
    from confluent_kafka import Producer

    rows = [(e.entity_id().encode(), e.model_dump_json().encode(), [("event_type", e.event_type)]) for e in events]
    producer = Producer(producer_config(config))
    delivered = 0

    def report(err: object, _msg: object) -> None:
        nonlocal delivered
        if err is None:
            delivered += 1

    started = time.perf_counter()
    for key, value, headers in rows:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    if delivered != len(rows):
        raise SystemExit(f"raw: {delivered} of {len(rows)} delivered")
    return elapsed


def ours(config: KafkaConfig, home: Path, prefix: str, events: list[TaskSubmittedEvent]) -> tuple[float, float]:
    """Seconds for emit + relay end to end, and for the relay alone (outbox → delivered)."""
    outbox = Outbox(home / f"outbox-{uuid.uuid4()}.sqlite", prefix)
    relay = OutboxRelay(outbox, config)
    bus = EventBus(outbox, None, mirror=False)  # drained below, in this thread, so the clock sees all of it
    started = time.perf_counter()
    for i in range(0, len(events), 100):
        bus.emit(*events[i : i + 100])
    relay_started = time.perf_counter()
    report = relay.drain()
    ended = time.perf_counter()
    if report.delivered != len(events) or outbox.pending_count():
        raise SystemExit(f"ours: {report}")
    return ended - started, ended - relay_started


def emit_latencies(config: KafkaConfig, home: Path, prefix: str, n: int) -> list[float]:
    outbox = Outbox(home / f"outbox-{uuid.uuid4()}.sqlite", prefix)
    bus = EventBus(outbox, OutboxRelay(outbox, config), mirror=True)
    events = make_events(n)
    latencies = []
    for event in events:
        started = time.perf_counter()
        bus.emit(event)
        latencies.append(time.perf_counter() - started)
        time.sleep(0.001)  # a step does other work between events; the relay sends meanwhile
    assert bus.relay is not None
    bus.relay.wait_delivered(None, 30)
    bus.relay.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    raw_times, our_times, relay_times = [], [], []
    with tempfile.TemporaryDirectory(prefix="agentparty-events-bench-") as tmp:
        home = Path(tmp)
        broker = LocalKafkaBroker(home, port=free_port())
        broker.start()
        try:
            config = KafkaConfig(bootstrap_servers=[broker.bootstrap_servers], group_id="bench")
            prefix = "bench."
            ensure_topics(config, prefix)
            events = make_events(args.events)
            raw(config, f"{prefix}tasks", events[:1000])  # warm up the broker and the topic
            for rep in range(args.repeat):  # alternate who goes first
                if rep % 2 == 0:
                    raw_times.append(raw(config, f"{prefix}tasks", events))
                    total, relayed = ours(config, home, prefix, events)
                else:
                    total, relayed = ours(config, home, prefix, events)
                    raw_times.append(raw(config, f"{prefix}tasks", events))
                our_times.append(total)
                relay_times.append(relayed)
            latencies = emit_latencies(config, home, prefix, 2000)
        finally:
            broker.stop()

    r, o, rl = statistics.median(raw_times), statistics.median(our_times), statistics.median(relay_times)
    ordered = sorted(latencies)
    rows = [
        {"benchmark": "raw confluent-kafka producer", "seconds": r, "events_per_s": args.events / r, "ratio": None, "target": ""},
        {"benchmark": "emit + relay, end to end", "seconds": o, "events_per_s": args.events / o, "ratio": r / o, "target": ">= 0.5"},
        {"benchmark": "relay alone (outbox → delivered)", "seconds": rl, "events_per_s": args.events / rl, "ratio": r / rl, "target": ""},
        {"benchmark": "emit() one event, median", "seconds": statistics.median(latencies), "events_per_s": None, "ratio": None, "target": "< 0.0005"},
        {"benchmark": "emit() one event, p99", "seconds": ordered[int(len(ordered) * 0.99)], "events_per_s": None, "ratio": None, "target": ""},
    ]
    if args.json:
        print(json.dumps({"events": args.events, "repeat": args.repeat, "rows": rows, "samples": {"raw": raw_times, "ours": our_times, "relay": relay_times}}, indent=2))
        return
    print(f"{args.events:,} events, median of {args.repeat}; emit() over 2,000 single events")
    print(f"{'benchmark':<32} {'seconds':>10} {'events/s':>10} {'ratio':>6}  target")
    for row in rows:
        per_second = f"{row['events_per_s']:.0f}" if row["events_per_s"] else ""
        ratio = f"{row['ratio']:.2f}" if row["ratio"] else ""
        print(f"{row['benchmark']:<32} {row['seconds']:>10.5f} {per_second:>10} {ratio:>6}  {row['target']}")


if __name__ == "__main__":
    main()
