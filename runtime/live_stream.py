"""The live stream: what agents' loops do as it happens, on its own topic, straight to the broker (no outbox).

Token deltas, turn boundaries and tool activity (``models/live_stream.py``) go
from the run to whoever shows them live (the API's ``/ws``) through the broker
because a run may be on another machine than the API. They are not events:

- **Not durable.** No outbox, no idempotence, ``acks=1``: an item lost to a
  broker restart or a full queue is a gap in a live view, never a lost record.
  What must last (turns in the step's result, ``tool_called``/``tool_completed``
  events, lifecycle transitions) is recorded as before.
- **Never blocks the run.** ``send`` hands the item to librdkafka's bounded
  local queue and returns; when the queue is full (a broker that is away) the
  item is dropped and counted (:attr:`LiveStream.dropped`). Topics are created
  in a background thread; items sent before they exist wait in the queue.
- **In order per agent.** The key is the agent id: one agent's items share a
  partition, which keeps the order this process produced them in.
- **Fast.** ``linger.ms=0`` and the reader's ``fetch.wait.max.ms`` of 5 ms: a
  delta reaches the API's reader in a few milliseconds (``bench/agent_loop.py``).

The stream is on when the run sends events to Kafka (``AGENTPARTY_EVENTS`` and a
configured or running broker, as for the event bus) and ``AGENTPARTY_LIVE_STREAM``
is not ``false``; without a broker the run streams nothing (``agentparty run -v``
still prints its own loop's activity, in process).
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, Producer, TopicPartition
from pydantic import ValidationError

from agentparty.models.config import KafkaConfig
from agentparty.models.live_stream import LiveStreamItem
from agentparty.runtime.event_bus import kafka_config
from agentparty.runtime.relay import client_config, consumer_config, ensure_topics, stream_topic

if TYPE_CHECKING:
    from agentparty.runtime.settings import Settings

logger = logging.getLogger("agentparty.live")
kafka_log = logging.getLogger("agentparty.live.kafka")
"""librdkafka's own lines (a broker that refuses connections, say), through Python logging rather than stderr."""

QUEUE_MESSAGES = 10_000
"""Items a process may have waiting for the broker before it drops new ones."""
MESSAGE_TIMEOUT_MS = 5_000
"""How long an item may wait for the broker before librdkafka gives it up (a live view has moved on by then)."""
FETCH_WAIT_MS = 5
"""How long the broker may hold the reader's fetch when there is nothing new (the reader's added latency)."""
EXIT_GRACE_S = 1.0
"""At a process's exit, how long it waits for the broker to take what it has streamed."""
CLOSE_GRACE_S = 2.0
"""How long ``close`` waits for the purged items' reports (it returns as soon as they are served)."""


def stream_producer_config(config: KafkaConfig) -> dict[str, Any]:
    return {
        **client_config(config),
        "acks": 1,
        "enable.idempotence": False,
        "linger.ms": 0,
        "queue.buffering.max.messages": QUEUE_MESSAGES,
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
        "delivery.report.only.error": True,
    }


class LiveStream:
    """One process's producer of live stream items for one broker and topic prefix (:func:`stream_for`)."""

    def __init__(self, config: KafkaConfig, prefix: str, partitions: int = 3, replication: int = 1) -> None:
        self.config, self.prefix = config, prefix
        self.topic = stream_topic(prefix)
        self.sent = self.dropped = self.failed = 0
        """Items handed to librdkafka; refused because its queue was full; given up by it (no broker in time)."""
        self._lock = threading.Lock()
        self._producer = Producer(
            {**stream_producer_config(config), "on_delivery": self._delivered, "logger": kafka_log}
        )
        threading.Thread(
            target=self._ensure_topics, args=(partitions, replication), name="agentparty-live-topics", daemon=True
        ).start()

    def _ensure_topics(self, partitions: int, replication: int) -> None:
        try:
            ensure_topics(self.config, self.prefix, partitions, replication)
        except Exception as exc:  # no broker now: items wait in the queue, then time out and are counted
            logger.warning("live stream: topics not ready at %s (%s)", ",".join(self.config.bootstrap_servers), exc)

    def _delivered(self, err: Any, _message: Any) -> None:
        if err is not None:
            with self._lock:
                self.failed += 1
                first = self.failed == 1
            if first:
                logger.warning("live stream: an item was not delivered (%s); later ones are counted only", err)

    def send(self, item: LiveStreamItem) -> bool:
        """Queue ``item`` for the broker without waiting; False when the queue is full and it was dropped."""
        try:
            self._producer.produce(self.topic, value=item.model_dump_json().encode(), key=item.agent_id.encode())
        except BufferError:
            with self._lock:
                self.dropped += 1
                first = self.dropped == 1
            if first:
                logger.warning("live stream: local queue full (%d items); dropping until it drains", QUEUE_MESSAGES)
            return False
        finally:
            self._producer.poll(0)  # serve delivery reports (never waits)
        with self._lock:
            self.sent += 1
        return True

    def pending(self) -> int:
        """Items not yet acknowledged by the broker."""
        return len(self._producer)

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for what is queued to reach the broker; what is left."""
        return int(self._producer.flush(timeout))

    def close(self) -> None:
        """Drop what is still queued (a live view has no use for it later) and stop sending.

        The purged items leave the producer only once their delivery reports are served, which librdkafka
        does from its own threads: ``flush(0)`` served what was ready (on a busy machine, not all of them),
        so this waits for them, briefly: after the purge nothing is left to send.
        """
        self._producer.purge()
        self._producer.flush(CLOSE_GRACE_S)


_STREAMS: dict[tuple[str, str], LiveStream] = {}
_STREAMS_LOCK = threading.Lock()


def stream_for(config: KafkaConfig, prefix: str, partitions: int = 3, replication: int = 1) -> LiveStream:
    """The process's stream to this broker and prefix (one producer per process, as for the event relay)."""
    key = (",".join(config.bootstrap_servers), prefix)
    with _STREAMS_LOCK:
        stream = _STREAMS.get(key)
        if stream is None:
            stream = _STREAMS[key] = LiveStream(config, prefix, partitions, replication)
        return stream


def configured_stream(settings: Settings) -> LiveStream | None:
    """The stream a run of ``settings`` sends to: none when events are off, the stream is off, or there is no broker
    (``AGENTPARTY_KAFKA__*`` or the local one running)."""
    if not settings.live_stream or settings.events == "off":
        return None
    kafka = kafka_config(settings)
    if kafka is None:
        return None
    return stream_for(kafka, settings.event_topic_prefix, settings.event_partitions, settings.event_replication)


def close_streams() -> None:
    """Drop every stream of this process and what they still queue (for a process that outlives its broker:
    otherwise librdkafka keeps reconnecting until the process ends)."""
    with _STREAMS_LOCK:
        streams = list(_STREAMS.values())
        _STREAMS.clear()
    for stream in streams:
        stream.close()


@atexit.register
def _flush_at_exit() -> None:
    """A run's last items (its answer) reach the broker before its process ends, within a short grace."""
    with _STREAMS_LOCK:
        streams = list(_STREAMS.values())
    for stream in streams:
        if stream.pending():
            stream.flush(EXIT_GRACE_S / max(1, len(streams)))


class LiveStreamReader:
    """Reads the stream topic from its current end (a live view wants what happens from now on)."""

    def __init__(self, config: KafkaConfig, prefix: str) -> None:
        settings = consumer_config(config, f"{config.group_id}-live")
        settings.update({"enable.auto.commit": False, "fetch.wait.max.ms": FETCH_WAIT_MS, "logger": kafka_log})
        self._consumer = Consumer(settings)
        topic = stream_topic(prefix)
        metadata = self._consumer.list_topics(timeout=10)
        partitions = (
            [TopicPartition(topic, p) for p in metadata.topics[topic].partitions] if topic in metadata.topics else []
        )
        for tp in partitions:  # concrete offsets now: OFFSET_END would be resolved at the first fetch, skipping some
            tp.offset = self._consumer.get_watermark_offsets(tp, timeout=10)[1]
        self.assigned = bool(partitions)
        """False when the topic is not in the metadata yet (the caller retries)."""
        self._consumer.assign(partitions)

    def poll(self, timeout: float) -> LiveStreamItem | None:
        """The next item, or None when none came within ``timeout`` seconds (or it could not be read)."""
        message = self._consumer.poll(timeout)
        if message is None:
            return None
        if message.error():
            logger.warning("live stream: %s", message.error())
            return None
        try:
            return LiveStreamItem.model_validate_json(message.value() or b"")
        except ValidationError as exc:  # a newer producer's item, or garbage: skip it, keep reading
            logger.warning("live stream: skipped an item that does not validate (%s)", exc.errors()[0]["msg"])
            return None

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> LiveStreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
