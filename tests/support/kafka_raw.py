"""An independent reader of our topics: kafka-python (no librdkafka), no consumer group, no de-duplication.

Every end-to-end test that counts events reads them back through this as well as
through our own ``EventConsumer``: ours drops repeats by event id, so it cannot
see a relay that sends an event twice (it once hid 22% repeated events).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @property
    def event(self) -> dict[str, object]:
        return json.loads(self.value)  # type: ignore[no-any-return]

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])


def read_raw(
    bootstrap_servers: str,
    topics: list[str],
    timeout: float = 60.0,
    quiet: float = 1.5,
    expect: Collection[str] = (),
) -> list[RawRecord]:
    """Every record on ``topics`` now: each partition read from offset 0, as stored, until ``quiet`` seconds pass
    with nothing new after every partition reached its reported end and every event id in ``expect`` was seen.

    Not "up to the end offset" alone: Tansu answers ListOffsets(latest) with the last *batch's* base offset
    plus one, not the high watermark (three flushed batches of ten records: end offset 21, records 0-29), so
    a quiet pause was the only end it could see, and on a loaded machine a slow fetch once passed for one and
    cut the last batches off ("an event was lost" with every row acknowledged). With ``expect`` the read goes
    on until those ids are all there (then the quiet pause, for repeats); at ``timeout`` it returns what it
    has, and the caller's comparison names what is missing.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[RawRecord] = []
        missing = set(expect)
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while (
            missing
            or any(consumer.position(tp) < ends[tp] for tp in partitions)
            or time.monotonic() - quiet_since < quiet
        ):
            if time.monotonic() > deadline:
                if expect:
                    return records
                raise TimeoutError(f"read {len(records)} records; partitions not read to their end within {timeout} s")
            for tp, messages in consumer.poll(timeout_ms=250).items():
                if messages:
                    quiet_since = time.monotonic()
                batch = [RawRecord(tp.topic, tp.partition, m.offset, m.key, m.value) for m in messages]
                if missing:  # live-stream items have no event id; only events are expected
                    missing.difference_update(r.event_id for r in batch)
                records += batch
        return records
    finally:
        consumer.close()


def repeats(records: list[RawRecord]) -> Counter[str]:
    """Event ids stored more than once, with how many extra copies each has."""
    return Counter({event_id: n - 1 for event_id, n in Counter(r.event_id for r in records).items() if n > 1})
