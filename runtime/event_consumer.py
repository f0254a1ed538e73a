"""Reading events back: typed, de-duplicated by ``event_id``, tolerant of newer versions.

An event whose ``event_version`` has a newer major version than this code knows
is yielded raw (a dict) with a warning, never a crash; duplicates (a relay that
re-sent after a lost acknowledgement) are dropped by id within a bounded window.
Without a group id the consumer reads every partition from the start (assign,
no group coordination: what ``agentparty events tail`` and tests want), or from
its end with ``from_end`` (a live reader such as the API's WebSocket feed); with
one it joins the consumer group and commits offsets.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agentparty.models.config import KafkaConfig
from agentparty.models.events import EVENT_SCHEMA_VERSION, EVENT_TYPES, BaseEvent
from agentparty.runtime.relay import consumer_config, topic_names

logger = logging.getLogger("agentparty.events")
DEDUPE_WINDOW = 100_000


@dataclass(frozen=True)
class RawEvent:
    """An event this code cannot type (unknown type or newer version): kept as sent."""

    event_type: str
    event_version: str
    data: dict[str, Any]


def _major(version: str) -> str:
    return version.split(".", 1)[0]


class EventConsumer:
    def __init__(
        self,
        config: KafkaConfig,
        prefix: str = "agentparty.",
        *,
        types: set[str] | None = None,
        group_id: str | None = None,
        from_end: bool = False,
    ) -> None:

        self.types = types
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0
        settings = consumer_config(config, group_id or f"{config.group_id}-reader")
        if group_id is None:
            settings["enable.auto.commit"] = False
        self._consumer = Consumer(settings)
        topics = topic_names(prefix)
        if group_id is None:
            metadata = self._consumer.list_topics(timeout=10)
            partitions = [
                TopicPartition(topic, partition, OFFSET_BEGINNING)
                for topic in topics
                if topic in metadata.topics
                for partition in metadata.topics[topic].partitions
            ]
            if from_end:
                # Concrete offsets now, not OFFSET_END (resolved lazily at the first fetch, which would skip what
                # is produced in between). A watermark Tansu reports short only replays a few older events.
                for tp in partitions:
                    tp.offset = self._consumer.get_watermark_offsets(tp, timeout=10)[1]
            self.assigned_topics = {tp.topic for tp in partitions}
            self._consumer.assign(partitions)
        else:
            self.assigned_topics = set(topics)
            self._consumer.subscribe(topics)

    def close(self) -> None:
        self._consumer.close()

    def poll(self, timeout: float) -> BaseEvent[Any] | RawEvent | None:
        """The next event, or None when none came within ``timeout`` seconds (or the message was a duplicate,
        filtered out or an error): for a reader that must also notice when to stop."""
        message = self._consumer.poll(timeout)
        if message is None:
            return None
        if message.error():
            logger.warning("consumer: %s", message.error())
            return None
        return self._decode(message.value() or b"")

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode(self, value: bytes) -> BaseEvent[Any] | RawEvent | None:
        data = json.loads(value)
        event_id, event_type = data.get("event_id", ""), data.get("event_type", "")
        if event_id in self._seen:
            self.duplicates += 1
            return None
        self._seen[event_id] = None
        if len(self._seen) > DEDUPE_WINDOW:
            self._seen.popitem(last=False)
        if self.types is not None and event_type not in self.types:
            return None
        version = str(data.get("event_version", ""))
        cls = EVENT_TYPES.get(event_type)
        if cls is None or _major(version) != _major(EVENT_SCHEMA_VERSION):
            logger.warning(
                "event %s: %s version %s is not one this code knows; kept raw", event_id, event_type, version
            )
            return RawEvent(event_type, version, data)
        return cls.model_validate(data)

    def events(
        self, idle_timeout: float = 10.0, follow: bool = False, quiet: float = 2.0
    ) -> Iterator[BaseEvent[Any] | RawEvent]:
        """Events as they come. Without ``follow``: wait up to ``idle_timeout`` seconds for the first message, then
        stop after ``quiet`` seconds without one. (Not the partitions' high watermarks: Tansu reports them short
        when a partition holds several producer batches.)"""
        seen_any = False
        while True:
            message = self._consumer.poll(quiet if seen_any else idle_timeout)
            if message is None:
                if follow:
                    continue
                return
            seen_any = True
            if message.error():
                logger.warning("consumer: %s", message.error())
                continue
            event = self._decode(message.value() or b"")
            if event is not None:
                yield event
