"""Outbox → Kafka: a confluent-kafka producer that marks an event delivered only on its delivery report.

Delivery guarantee, exactly: every event appended to the outbox reaches the
broker at least once, in outbox order per key, and **once** unless a send's
outcome is lost. Only the relay holding the outbox's sender slot sends
(``runtime/outbox_sender.py``): relays in other processes stand by, and the
first to find the slot free takes over when its holder stops or dies. An event
can therefore be stored twice only if (a) its relay died after the broker
stored it and before the row was marked delivered (a SIGKILL, a power cut:
at most the rows it had in flight), or (b) its send timed out in librdkafka
after reaching the broker (``message.timeout.ms`` passed with no answer: the
broker went away mid-request); the row is then sent again. A relay that stops
normally, including at its process's exit, purges what it has not sent yet and
waits up to ``EXIT_GRACE_S`` for the answers to what it has; so a flow-run
process that ends leaves nothing in flight. Consumers that must not count an
event twice still de-duplicate by ``event_id`` (DESIGN.md §7).

Producer settings (DESIGN.md §7): ``acks=all`` and idempotence on, so the broker
neither loses an acknowledged event nor stores a retried send twice; a short
linger and lz4 compression batch the sends; key = the entity id (one partition
per agent, team or task keeps its events in order); headers = type, version,
correlation id. A send that fails (broker down, message timeout) stays pending
and is sent again by the next drain; a fatal producer error (an idempotent
producer meeting a restarted Tansu: ``UnknownProducerId``) replaces the producer.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from agentparty.models.config import KafkaConfig
from agentparty.models.sdk_config import BatchingConfig
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.outbox_sender import SendingSlot

logger = logging.getLogger("agentparty.events")

FAMILIES = ("agents", "teams", "tasks", "workflows")
STREAM_FAMILY = "agent-stream"
STREAM_RETENTION_MS = 3_600_000
"""The live stream's items are worth nothing after a while: the broker may drop them after an hour."""
EXIT_GRACE_S = 3.0
"""At a process's exit, how long its sending relay waits for the broker's answers to what it has in flight."""
TOPICS_RETRY_MIN_S, TOPICS_RETRY_MAX_S = 0.5, 5.0
"""While the broker cannot be reached, how long the sender waits before asking again (doubling up to the maximum)."""
LINGER_MS = 5
"""librdkafka's ``linger.ms`` within a drain (which ends with a flush, so it never delays a drain's last batch)."""
STANDBY_POLL_S = 0.2
"""How often a standby relay tries to take the sender slot (and so how soon it takes over from a dead sender)."""


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


@dataclass(frozen=True)
class RelayBatching:
    """``communication.batching`` (seed 002) as the relay applies it.

    ``rows`` (``maxBatchSize``): events read from the outbox and handed to the producer per batch, and the most
    librdkafka puts in one request (``batch.num.messages``). ``wait_s`` (``maxWaitTime``): woken by an appender,
    how long the sender waits for ``rows`` events to be pending before it sends what there is (each drain ends
    with a flush, so librdkafka's own ``linger.ms`` stays :data:`LINGER_MS`). ``flush_interval_s``
    (``flushInterval``): how often the sender looks at the outbox when no appender wakes it. Batching off: every
    event is its own request, sent as soon as it is read (one row per batch, no waiting, no linger).
    """

    rows: int = 10_000
    wait_s: float = 0.0
    flush_interval_s: float = 1.0
    linger_ms: int = 5

    @classmethod
    def of(cls, config: BatchingConfig) -> RelayBatching:
        flush = config.flush_interval / 1000
        if not config.enabled:
            return cls(rows=1, wait_s=0.0, flush_interval_s=flush, linger_ms=0)
        return cls(config.max_batch_size, config.max_wait_time / 1000, flush, LINGER_MS)


def producer_config(
    config: KafkaConfig, message_timeout_ms: int = 10_000, batching: RelayBatching | None = None
) -> dict[str, Any]:
    batching = batching or RelayBatching.of(BatchingConfig())
    return {
        **client_config(config),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": batching.linger_ms,
        "compression.type": "lz4",
        "batch.num.messages": batching.rows,
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


def stream_topic(prefix: str) -> str:
    """The live stream's topic (``runtime/live_stream.py``): beside the event topics, never read as events."""
    return f"{prefix}{STREAM_FAMILY}"


def ensure_topics(
    config: KafkaConfig, prefix: str, partitions: int = 3, replication: int = 1, timeout: float = 10.0
) -> list[str]:
    """Create the event topics and the live stream's topic that do not exist yet (AdminClient); returns the ones
    created."""

    admin = AdminClient(client_config(config))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [name for name in [*topic_names(prefix), stream_topic(prefix)] if name not in existing]
    if not wanted:
        return []
    stream_config = {"retention.ms": str(STREAM_RETENTION_MS)}
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=replication,
                config=stream_config if name == stream_topic(prefix) else {},
            )
            for name in wanted
        ],
        request_timeout=timeout,
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
    sender: bool = True
    """False: another relay holds the outbox's sender slot, so this one sent nothing."""


class OutboxRelay:
    """Sends what the outbox holds, if it holds the outbox's sender slot; ``drain`` once, or ``start`` a thread.

    The thread stands by while another relay (in this process or another) sends,
    and takes over the slot when that one lets it go. Appenders wake the sender
    through ``nudge`` (a datagram), whichever process it is in.
    """

    def __init__(
        self,
        outbox: Outbox,
        config: KafkaConfig,
        *,
        message_timeout_ms: int = 10_000,
        batching: BatchingConfig | None = None,
        partitions: int = 3,
        replication: int = 1,
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.partitions = partitions
        self.replication = replication
        self.message_timeout_ms = message_timeout_ms
        self.batching = RelayBatching.of(batching or BatchingConfig())
        """``communication.batching``: the built-in configuration's unless the caller hands one in."""
        self._producer: Any = None
        self._slot: SendingSlot | None = None
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._topics_ready = False
        self._topics_retry_at = 0.0
        self._topics_backoff = TOPICS_RETRY_MIN_S
        _LIVE.add(self)

    def _new_producer(self) -> Any:

        return Producer(producer_config(self.config, self.message_timeout_ms, self.batching))

    @property
    def is_sender(self) -> bool:
        return self._slot is not None

    def _take_slot(self) -> bool:
        with self._lock:
            if self._slot is not None and self._slot.released:  # lost (PostgreSQL: its session ended): try again
                self._slot = None
            if self._slot is None:
                self._slot = self.outbox.try_acquire_sender()
            return self._slot is not None

    def _let_go(self) -> None:
        """Give the slot up (a standby relay takes over) and drop the producer (librdkafka's threads and sockets)."""
        with self._lock:
            if self._slot is not None:
                self._slot.release()
                self._slot = None
            self._producer = None

    def drain(self, max_batches: int | None = None) -> DrainReport:
        """Send every pending event (in outbox order) and wait for their delivery reports; nothing if another relay sends."""

        with self._lock:
            if not self._take_slot():
                return DrainReport(0, 0, 0, self.outbox.pending_count(), sender=False)
            if not self._topics_ready:
                if time.monotonic() < self._topics_retry_at:  # the broker was unreachable a moment ago: no busy loop
                    return DrainReport(0, 0, 0, self.outbox.pending_count())
                try:
                    ensure_topics(self.config, self.outbox.topic_prefix, self.partitions, self.replication)
                    self._topics_ready = True
                    self._topics_backoff = TOPICS_RETRY_MIN_S
                except KafkaException as exc:
                    logger.warning("event topics not ready (%s); events stay in the outbox", exc)
                    self._topics_retry_at = time.monotonic() + self._topics_backoff
                    self._topics_backoff = min(self._topics_backoff * 2, TOPICS_RETRY_MAX_S)
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
            while (max_batches is None or batches < max_batches) and not errors and not self._stop.is_set():
                rows = self.outbox.pending(self.batching.rows, after=cursor)
                if not rows:
                    break
                batches += 1
                for row in rows:
                    while True:
                        try:
                            self._producer.produce(
                                row.topic,
                                value=row.value,
                                key=row.key.encode(),
                                headers=row.headers,
                                on_delivery=lambda err, msg, seq=row.seq: report(err, msg, seq),
                            )
                            break
                        except BufferError:  # the local queue is full: let deliveries drain it
                            self._producer.poll(0.05)
                cursor = rows[-1].seq
                sent += len(rows)
                self._producer.poll(0)
                settle()
            self._flush()
            settle()
            stopping = [e for e in errors if e.code() == KafkaError._PURGE_QUEUE]
            errors = [e for e in errors if e.code() != KafkaError._PURGE_QUEUE]
            if errors:
                failed = len(errors)
                logger.warning("%d of %d events not delivered (%s); they stay in the outbox", failed, sent, errors[0])
                if any(isinstance(e, KafkaError) and e.fatal() for e in errors):
                    self._producer = None  # e.g. UnknownProducerId after a broker restart: start a fresh producer
            if stopping:
                logger.info(
                    "relay stopping: %d events not sent yet stay in the outbox for the next sender", len(stopping)
                )
            return DrainReport(sent, delivered_total, failed + len(stopping), self.outbox.pending_count())

    def _flush(self) -> None:
        """Wait for every delivery report; when stopping, unsent events are purged (they stay pending, never sent
        twice) and the answers for those already sent are awaited for at most ``EXIT_GRACE_S``."""
        deadline = time.monotonic() + self.message_timeout_ms / 1000 + 5
        purged = False
        while self._producer.flush(0.1) > 0 and time.monotonic() < deadline:
            if self._stop.is_set() and not purged:
                self._producer.purge(in_queue=True, in_flight=False, blocking=False)
                deadline = min(deadline, time.monotonic() + EXIT_GRACE_S)
                purged = True

    def wait_delivered(self, correlation_id: str | None, timeout: float) -> int:
        """Until the run's events are delivered, by whichever relay sends, or ``timeout`` passes; the number pending."""
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
        """Rows are waiting: wake this process's standby thread and the sender, wherever it runs."""
        self._wake.set()
        self.outbox.wake_sender()

    def start(self, interval: float | None = None) -> None:
        """Relay in a thread: drain when woken, and every ``interval`` seconds (``flushInterval``) otherwise."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        interval = self.batching.flush_interval_s if interval is None else interval

        def loop() -> None:
            try:
                while not self._stop.is_set():
                    slot = self._slot if self._take_slot() else None
                    if slot is None:  # another relay sends: stand by, ready to take over
                        self._wake.wait(STANDBY_POLL_S)
                        self._wake.clear()
                        continue
                    try:
                        self.drain()
                    except Exception:  # keep relaying: a broken broker must not kill the thread
                        logger.exception("event relay drain failed; retrying")
                    if not self._stop.is_set() and slot.wait(interval):
                        self._fill(slot)
            finally:
                self._let_go()

        self._thread = threading.Thread(target=loop, name="agentparty-event-relay", daemon=True)
        self._thread.start()

    def _fill(self, slot: SendingSlot) -> None:
        """Woken: wait up to ``maxWaitTime`` for a full batch (``maxBatchSize`` pending), re-counting at each
        wake-up, so a burst of appends goes out in full batches and a lone event at most that much later."""
        deadline = time.monotonic() + self.batching.wait_s
        while not self._stop.is_set() and self.outbox.pending_count() < self.batching.rows:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            slot.wait(left)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop relaying: unsent events stay in the outbox, the slot goes to a standby relay (if any)."""
        self._stop.set()
        self._wake.set()
        self.outbox.wake_sender()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if thread is None or not thread.is_alive():  # else the thread lets go when its flush ends
            self._let_go()


_LIVE: weakref.WeakSet[OutboxRelay] = weakref.WeakSet()


@atexit.register
def _stop_relays_at_exit() -> None:
    """A flow-run process that ends hands its sender slot over with nothing in flight, within ``EXIT_GRACE_S``."""
    for relay in list(_LIVE):
        if relay.is_sender or (relay._thread is not None and relay._thread.is_alive()):
            relay.stop(EXIT_GRACE_S + 1)
