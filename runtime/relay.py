"""Outbox → Kafka: a confluent-kafka producer that marks an event delivered only on its delivery report.

Producer settings (DESIGN.md §7): ``acks=all`` and idempotence on, so the broker
neither loses an acknowledged event nor stores a retried send twice; a short
linger and lz4 compression batch the sends; key = the entity id (one partition
per agent, team or task keeps its events in order); headers = type, version,
correlation id. A send that fails (broker down, message timeout) stays pending
and is sent again by the next drain; a fatal producer error (an idempotent
producer meeting a restarted Tansu: ``UnknownProducerId``) replaces the producer.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from agentparty.models.config import KafkaConfig
from agentparty.runtime.outbox import Outbox

logger = logging.getLogger("agentparty.events")

FAMILIES = ("agents", "teams", "tasks", "workflows")


def client_config(config: KafkaConfig) -> dict[str, Any]:
    """Seed 000's KafkaConfig as librdkafka settings (shared by producer, consumer and admin client)."""
    settings: dict[str, Any] = {
        "bootstrap.servers": ",".join(config.bootstrap_servers),
        "security.protocol": config.security_protocol,
    }
    if config.sasl_mechanism is not None:
        settings["sasl.mechanism"] = config.sasl_mechanism
    if config.sasl_username is not None:
        settings["sasl.username"] = config.sasl_username
    if config.sasl_password is not None:
        settings["sasl.password"] = config.sasl_password.get_secret_value()
    return settings


def producer_config(config: KafkaConfig, message_timeout_ms: int = 10_000) -> dict[str, Any]:
    return {
        **client_config(config),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "batch.num.messages": 10_000,
        "message.timeout.ms": message_timeout_ms,
    }


def consumer_config(config: KafkaConfig, group_id: str | None = None) -> dict[str, Any]:
    return {
        **client_config(config),
        "group.id": group_id or config.group_id,
        "auto.offset.reset": config.auto_offset_reset,
        "enable.auto.commit": config.enable_auto_commit,
    }


def topic_names(prefix: str) -> list[str]:
    return [f"{prefix}{family}" for family in FAMILIES]


def ensure_topics(config: KafkaConfig, prefix: str, partitions: int = 3, replication: int = 1, timeout: float = 10.0) -> list[str]:
    """Create the event topics that do not exist yet (AdminClient); returns the ones created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client_config(config))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [name for name in topic_names(prefix) if name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in wanted], request_timeout=timeout
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout)
            created.append(name)
        except Exception as exc:  # a concurrent creator won the race: the topic exists, which is what we want
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created


@dataclass
class DrainReport:
    sent: int
    delivered: int
    failed: int
    pending: int


class OutboxRelay:
    """Sends what the outbox holds; ``drain`` once, or ``start`` a background thread that keeps draining."""

    def __init__(
        self, outbox: Outbox, config: KafkaConfig, *, message_timeout_ms: int = 10_000, batch: int = 10_000,
        partitions: int = 3, replication: int = 1,
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.partitions = partitions
        self.replication = replication
        self.message_timeout_ms = message_timeout_ms
        self.batch = batch
        self._producer: Any = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._topics_ready = False

    def _new_producer(self) -> Any:
        from confluent_kafka import Producer

        return Producer(producer_config(self.config, self.message_timeout_ms))

    def drain(self, max_batches: int | None = None) -> DrainReport:
        """Send every pending event (in outbox order) and wait for their delivery reports."""
        from confluent_kafka import KafkaError, KafkaException

        with self._lock:
            if not self._topics_ready:
                try:
                    ensure_topics(self.config, self.outbox.topic_prefix, self.partitions, self.replication)
                    self._topics_ready = True
                except KafkaException as exc:
                    logger.warning("event topics not ready (%s); events stay in the outbox", exc)
                    return DrainReport(0, 0, 0, self.outbox.pending_count())
            if self._producer is None:
                self._producer = self._new_producer()
            sent = failed = 0
            delivered: list[int] = []
            errors: list[Any] = []
            delivered_total = 0

            def report(err: Any, _msg: Any, seq: int) -> None:
                if err is None:
                    delivered.append(seq)
                else:
                    errors.append(err)

            def settle() -> None:
                """Mark what has been acknowledged so far (the callbacks run inside poll/flush, in this thread)."""
                nonlocal delivered, delivered_total
                done, delivered = delivered, []
                self.outbox.mark_delivered(done)
                delivered_total += len(done)

            # Pipelined: the next batch is read and sent while the broker acknowledges the previous one.
            cursor = 0
            batches = 0
            while (max_batches is None or batches < max_batches) and not errors:
                rows = self.outbox.pending(self.batch, after=cursor)
                if not rows:
                    break
                batches += 1
                for row in rows:
                    while True:
                        try:
                            self._producer.produce(
                                row.topic, value=row.value, key=row.key.encode(), headers=row.headers,
                                on_delivery=lambda err, msg, seq=row.seq: report(err, msg, seq),
                            )
                            break
                        except BufferError:  # the local queue is full: let deliveries drain it
                            self._producer.poll(0.05)
                cursor = rows[-1].seq
                sent += len(rows)
                self._producer.poll(0)
                settle()
            self._producer.flush(self.message_timeout_ms / 1000 + 5)
            settle()
            if errors:
                failed = len(errors)
                logger.warning("%d of %d events not delivered (%s); they stay in the outbox", failed, sent, errors[0])
                if any(isinstance(e, KafkaError) and e.fatal() for e in errors):
                    self._producer = None  # e.g. UnknownProducerId after a broker restart: start a fresh producer
            return DrainReport(sent, delivered_total, failed, self.outbox.pending_count())

    def wait_delivered(self, correlation_id: str | None, timeout: float) -> int:
        """Let the relay thread send until the run's events are delivered or ``timeout`` passes; the number pending."""
        self.start()
        deadline = time.monotonic() + timeout
        while True:
            pending = self.outbox.pending_count(correlation_id)
            if pending == 0 or time.monotonic() >= deadline:
                return pending
            self.nudge()
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    # -- background ----------------------------------------------------------------------

    def nudge(self) -> None:
        self._wake.set()

    def start(self, interval: float = 1.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.drain()
                except Exception:  # keep relaying: a broken broker must not kill the thread
                    logger.exception("event relay drain failed; retrying")
                self._wake.wait(interval)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="agentparty-event-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._producer = None  # releases librdkafka's threads and connections (undelivered events stay in the outbox)
