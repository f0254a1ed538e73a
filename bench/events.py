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

Relays over one outbox: 1 process, then 4 processes at once (as 4 flow runs of
a worker), emit N/P events each through their process-wide bus (batches of 100)
and wait until their own are delivered; whichever relay holds the outbox's
sender slot sends for all. The clock runs from the start signal until every
process has its events delivered. The topics are then read from offset 0 by a
plain consumer that does not de-duplicate, and the repeated event ids counted.
Target: 4 relays >= 1.0 of the single relay's throughput, 0 repeats.

Delivery latency: single events emitted 10 ms apart through a bus whose relay
runs, each timed from ``emit()`` until the broker acknowledged it (the outbox
holds nothing pending); median and p99 of 300.

``--batching MAX_BATCH_SIZE,MAX_WAIT_TIME_MS,FLUSH_INTERVAL_MS`` (or ``seed``,
seed 002's defaults 100,50,100; ``builtin``, ours) sets ``communication.batching``
for every relay of the run (``runtime/relay.py``: ``RelayBatching``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from agentparty.models.config import KafkaConfig
from agentparty.models.events import TaskSubmittedEvent, TaskSubmittedPayload
from agentparty.models.sdk_config import BatchingConfig
from agentparty.runtime.broker import LocalKafkaBroker
from agentparty.runtime.event_bus import EventBus
from agentparty.runtime.local_service import free_port
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay, client_config, ensure_topics, producer_config, topic_names


def make_events(n: int) -> list[TaskSubmittedEvent]:
    return [
        TaskSubmittedEvent(
            correlation_id="bench",
            payload=TaskSubmittedPayload(
                task_id=f"task-{i % 500}", title=f"task {i}", submitted_by="bench", token_budget=1000
            ),
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


class Run:
    batching = BatchingConfig()
    """``--batching``: what every relay of the run uses."""


def parse_batching(text: str) -> BatchingConfig:
    if text == "builtin":
        return BatchingConfig()
    if text == "seed":
        return BatchingConfig(max_batch_size=100, max_wait_time=50, flush_interval=100)
    size, wait, flush = (int(part) for part in text.split(","))
    return BatchingConfig(max_batch_size=size, max_wait_time=wait, flush_interval=flush)


def ours(config: KafkaConfig, home: Path, prefix: str, events: list[TaskSubmittedEvent]) -> tuple[float, float]:
    """Seconds for emit + relay end to end, and for the relay alone (outbox → delivered)."""
    outbox = Outbox(home / f"outbox-{uuid.uuid4()}.sqlite", prefix)
    relay = OutboxRelay(outbox, config, batching=Run.batching)
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
    bus = EventBus(outbox, OutboxRelay(outbox, config, batching=Run.batching), mirror=True)
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


def delivery_latencies(config: KafkaConfig, home: Path, prefix: str, n: int) -> list[float]:
    """Seconds from ``emit()`` of one event until the broker acknowledged it, events 10 ms apart."""
    outbox = Outbox(home / f"outbox-{uuid.uuid4()}.sqlite", prefix)
    bus = EventBus(outbox, OutboxRelay(outbox, config, batching=Run.batching), mirror=False)
    bus.emit(*make_events(1))  # the relay's producer and topics are ready before the clock runs
    bus.settle(None, 30)
    latencies = []
    for event in make_events(n):
        started = time.perf_counter()
        bus.emit(event)
        while outbox.pending_count():
            time.sleep(0.0002)
        latencies.append(time.perf_counter() - started)
        time.sleep(0.01)
    assert bus.relay is not None
    bus.relay.stop()
    return latencies


def relaying_process(
    home: str,
    bootstrap: str,
    prefix: str,
    worker: int,
    n: int,
    ready: Any,
    go: Any,
    done: Any,
    batching: BatchingConfig | None = None,
) -> None:
    """One flow-run-like process: emit its share through the process-wide bus, then wait for it to be delivered."""
    from agentparty.runtime.event_bus import bus_for

    bus = bus_for(Path(home), KafkaConfig(bootstrap_servers=[bootstrap], group_id="bench"), prefix, batching=batching)
    events = [
        TaskSubmittedEvent(
            correlation_id=f"relay-{worker}",
            payload=TaskSubmittedPayload(
                task_id=f"task-{worker}-{i % 50}", title=f"e{i}", submitted_by="bench", token_budget=0
            ),
        )
        for i in range(n)
    ]
    warm = TaskSubmittedEvent(
        correlation_id=f"warm-{worker}",
        payload=TaskSubmittedPayload(task_id="warm", title="w", submitted_by="bench", token_budget=0),
    )
    bus.emit(warm)  # a flow-run process has imported Prefect and started its relay before its first event
    bus.settle(warm.correlation_id, 60)
    ready.put(worker)
    go.wait()
    for i in range(0, n, 100):
        bus.emit(*events[i : i + 100])
    done.put((worker, bus.settle(f"relay-{worker}", 300)))


def relays(bootstrap: str, home: Path, processes: int, n: int) -> tuple[float, int, int]:
    """Seconds until every process's events are delivered, events on the broker, and repeated event ids."""
    prefix = f"relays{uuid.uuid4().hex[:6]}."
    context = multiprocessing.get_context("spawn")
    ready, done, go = context.Queue(), context.Queue(), context.Event()
    share = n // processes
    started_processes = [
        context.Process(
            target=relaying_process,
            args=(str(home / prefix), bootstrap, prefix, w, share, ready, go, done, Run.batching),
        )
        for w in range(processes)
    ]
    for process in started_processes:
        process.start()
    for _ in started_processes:
        ready.get(timeout=120)
    started = time.perf_counter()
    go.set()
    pending = [done.get(timeout=600)[1] for _ in started_processes]
    elapsed = time.perf_counter() - started
    for process in started_processes:
        process.join(60)
    if any(pending):
        raise SystemExit(f"{processes} relays: {sum(pending)} events not delivered")
    ids = read_ids(bootstrap, prefix)
    return elapsed, len(ids) - processes, sum(count - 1 for count in Counter(ids).values())  # less the warm-up events


def read_ids(bootstrap: str, prefix: str, quiet: float = 2.0) -> list[str]:
    """Every event id on the topics, from offset 0, repeats included (no consumer group, no de-duplication).
    Read until ``quiet`` seconds pass with nothing new: Tansu's end offsets stop at the last batch's base."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            **client_config(KafkaConfig(bootstrap_servers=[bootstrap], group_id="bench")),
            "group.id": "unused",
            "enable.auto.commit": False,
        }
    )
    topics = consumer.list_topics(timeout=10).topics
    consumer.assign(
        [
            TopicPartition(name, partition, 0)
            for name in topic_names(prefix)
            if name in topics
            for partition in topics[name].partitions
        ]
    )
    ids: list[str] = []
    last = time.monotonic()
    while time.monotonic() - last < quiet:
        for message in consumer.consume(10_000, timeout=0.25):
            if message.error() is None:
                ids.append(json.loads(message.value())["event_id"])
                last = time.monotonic()
    consumer.close()
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--relay-events", type=int, default=40_000, help="events for the relays-over-one-outbox rows")
    parser.add_argument("--batching", type=parse_batching, default=BatchingConfig(), help="size,wait ms,flush ms")
    args = parser.parse_args()
    Run.batching = args.batching

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
            deliveries = sorted(delivery_latencies(config, home, prefix, 300))
            relay_samples: dict[int, list[tuple[float, int, int]]] = {1: [], 4: []}
            for rep in range(args.repeat):
                for processes in (1, 4) if rep % 2 == 0 else (4, 1):
                    relay_samples[processes].append(
                        relays(broker.bootstrap_servers, home, processes, args.relay_events)
                    )
        finally:
            broker.stop()

    r, o, rl = statistics.median(raw_times), statistics.median(our_times), statistics.median(relay_times)
    ordered = sorted(latencies)
    rows = [
        {
            "benchmark": "raw confluent-kafka producer",
            "seconds": r,
            "events_per_s": args.events / r,
            "ratio": None,
            "target": "",
        },
        {
            "benchmark": "emit + relay, end to end",
            "seconds": o,
            "events_per_s": args.events / o,
            "ratio": r / o,
            "target": ">= 0.5",
        },
        {
            "benchmark": "relay alone (outbox → delivered)",
            "seconds": rl,
            "events_per_s": args.events / rl,
            "ratio": r / rl,
            "target": "",
        },
        {
            "benchmark": "emit() one event, median",
            "seconds": statistics.median(latencies),
            "events_per_s": None,
            "ratio": None,
            "target": "< 0.0005",
        },
        {
            "benchmark": "emit() one event, p99",
            "seconds": ordered[int(len(ordered) * 0.99)],
            "events_per_s": None,
            "ratio": None,
            "target": "",
        },
    ]
    for label, value in (("median", statistics.median(deliveries)), ("p99", deliveries[int(len(deliveries) * 0.99)])):
        rows.append(
            {
                "benchmark": f"emit → delivered, {label}",
                "seconds": value,
                "events_per_s": None,
                "ratio": None,
                "target": "",
            }
        )
    one = statistics.median(t for t, _, _ in relay_samples[1])
    for processes, samples in relay_samples.items():
        seconds = statistics.median(t for t, _, _ in samples)
        on_broker = sum(count for _, count, _ in samples)
        repeated = sum(extra for _, _, extra in samples)
        rows.append(
            {
                "benchmark": f"{processes} relay{'s' if processes > 1 else ''} over one outbox ({processes} proc.)",
                "seconds": seconds,
                "events_per_s": args.relay_events / seconds,
                "ratio": one / seconds if processes > 1 else None,
                "target": f">= 1.0; repeats {repeated} of {on_broker} (0)"
                if processes > 1
                else f"repeats {repeated} of {on_broker} (0)",
            }
        )
    if args.json:
        print(
            json.dumps(
                {
                    "events": args.events,
                    "repeat": args.repeat,
                    "rows": rows,
                    "samples": {"raw": raw_times, "ours": our_times, "relay": relay_times, "relays": relay_samples},
                },
                indent=2,
            )
        )
        return
    b = args.batching
    print(
        f"{args.events:,} events, median of {args.repeat}; emit() over 2,000 single events; relays: {args.relay_events:,} events"
        f"; batching: enabled={b.enabled} maxBatchSize={b.max_batch_size} maxWaitTime={b.max_wait_time} ms"
        f" flushInterval={b.flush_interval} ms"
    )
    print(f"{'benchmark':<40} {'seconds':>10} {'events/s':>10} {'ratio':>6}  target")
    for row in rows:
        per_second = f"{row['events_per_s']:.0f}" if row["events_per_s"] else ""
        ratio = f"{row['ratio']:.2f}" if row["ratio"] else ""
        print(f"{row['benchmark']:<40} {row['seconds']:>10.5f} {per_second:>10} {ratio:>6}  {row['target']}")


if __name__ == "__main__":
    main()
