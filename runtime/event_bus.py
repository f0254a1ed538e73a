"""Where the engine emits events: the durable outbox first, Prefect's event feed beside it, Kafka through the relay.

``emit`` appends to the outbox (one transaction per call, in SQLite or, with
engine state on PostgreSQL, in the table every host shares; duplicates of a
known event id ignored), mirrors each new event as a Prefect event (resource =
the agent, team, task or breaker it is about, so it shows in the Prefect UI's
event feed and can trigger automations and deployments) and wakes the relay
that sends the outbox, in whichever process it runs. Only the process whose
append stored an event mirrors it, with a Prefect event id derived from the
event id, so Prefect sees each event once too (its server also ignores a
repeated id: events are inserted ``ON CONFLICT DO NOTHING`` and triggers skip
ids already seen).
``settle`` is what a run calls at its end: wait until its events are delivered,
or report how many are still pending (they stay in the outbox; ``agentparty
events relay`` or the next run sends them).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect.context import FlowRunContext
from prefect.events import emit_event

from agentparty.models.config import KafkaConfig
from agentparty.models.events import BaseEvent
from agentparty.models.sdk_config import BatchingConfig
from agentparty.runtime.local_services import local_services
from agentparty.runtime.masking import Masker
from agentparty.runtime.outbox import Outbox
from agentparty.runtime.relay import OutboxRelay

if TYPE_CHECKING:
    from agentparty.runtime.settings import Settings

logger = logging.getLogger("agentparty.events")

_RESOURCE_KINDS = {"agents": "agent", "teams": "team", "tasks": "task", "workflows": "task"}
_RESOURCE_LABELS = ("workflow_id", "step_id")
"""Payload fields mirrored as resource labels (``agentparty.workflow``, ``agentparty.step``)."""


def _in_flow_run() -> bool:
    """Outside a flow run Prefect's event client may have no server to talk to (it would start one)."""

    return FlowRunContext.get() is not None


def mirror_to_prefect(event: BaseEvent[Any]) -> None:
    """The event in Prefect's event feed (best effort: Prefect's own client buffers and sends it)."""

    kind = "breaker" if event.event_type.startswith("circuit_breaker") else _RESOURCE_KINDS.get(event.family, "entity")
    try:
        event_uuid = uuid.UUID(event.event_id)
    except ValueError:
        event_uuid = uuid.uuid5(uuid.NAMESPACE_URL, event.event_id)
    resource = {
        "prefect.resource.id": f"agentparty.{kind}.{event.entity_id()}",
        "prefect.resource.name": event.entity_id(),
    }
    for field in _RESOURCE_LABELS:  # so that a deployment's event trigger can match one workflow's (or step's) events
        value = getattr(event.payload, field, None)
        if value:
            resource[f"agentparty.{field.removesuffix('_id')}"] = str(value)
    emit_event(
        event=f"agentparty.{event.event_type}",
        resource=resource,
        related=[
            {"prefect.resource.id": f"prefect.flow-run.{event.correlation_id}", "prefect.resource.role": "flow-run"}
        ],
        payload=event.payload.model_dump(mode="json"),
        occurred=event.timestamp,
        id=event_uuid,
    )


@dataclass
class EventBus:
    outbox: Outbox
    relay: OutboxRelay | None = None
    mirror: bool = True
    masker: Masker | None = None
    """``security.dataMasking``: events are masked before they are stored, so neither Kafka nor Prefect's event
    feed ever holds what it masks (set by the run's services)."""

    def emit(self, *events: BaseEvent[Any]) -> int:
        """Store the events durably and pass them on; returns how many were new."""
        masker = self.masker
        new = self.outbox.append([masker.model(e) for e in events] if masker is not None else list(events))
        if self.mirror and new and _in_flow_run():
            for event in new:  # only what this call stored: of several emitters of one id, one mirrors it
                try:
                    mirror_to_prefect(event)
                except Exception as exc:  # the Prefect feed is a mirror: it must never fail a step
                    logger.debug("not mirrored to Prefect: %s", exc)
        if self.relay is not None:
            self.relay.start()
            self.relay.nudge()
        return len(new)

    def settle(self, correlation_id: str | None, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for this run's events to be delivered; the number still pending."""
        if self.relay is None:
            return self.outbox.pending_count(correlation_id)
        return self.relay.wait_delivered(correlation_id, timeout)


_BUSES: dict[tuple[Path, str, str], EventBus] = {}
_LOCK = threading.Lock()


def bus_for(
    home: Path,
    kafka: KafkaConfig | None,
    prefix: str,
    mirror: bool = True,
    partitions: int = 3,
    replication: int = 1,
    batching: BatchingConfig | None = None,
) -> EventBus:
    """One bus (one outbox file, one relay thread and producer) per home, broker and topic prefix per process;
    ``batching`` (``communication.batching``) sizes its relay's batches, the built-in configuration's when None."""
    key = (home, ",".join(kafka.bootstrap_servers) if kafka else "", prefix)
    with _LOCK:
        bus = _BUSES.get(key)
        if bus is None:
            outbox = Outbox.at(home, prefix)
            relay = (
                OutboxRelay(outbox, kafka, batching=batching, partitions=partitions, replication=replication)
                if kafka
                else None
            )
            bus = _BUSES[key] = EventBus(outbox, relay, mirror)
        return bus


def close_buses(timeout: float = 5.0) -> None:
    """Stop every bus's relay thread and producer; what is not delivered yet stays in its outbox.

    For a process that outlives the broker it used (the test session stops its
    broker before it exits): otherwise librdkafka keeps reconnecting, and logging
    each refused connection, until the process ends. Not registered with atexit: a
    relay in the middle of a flush to an unreachable broker would hold up the exit.
    """
    with _LOCK:
        buses = list(_BUSES.values())
        _BUSES.clear()
    for bus in buses:
        if bus.relay is not None:
            bus.relay.stop(timeout)


def kafka_config(settings: Settings) -> KafkaConfig | None:
    """The configured cluster, or the local broker when it runs (``agentparty up``)."""
    if settings.kafka is not None:
        return settings.kafka

    broker = local_services(settings).broker
    if broker.pid() is None or not broker.accepting():
        return None
    return KafkaConfig(bootstrap_servers=[broker.bootstrap_servers], group_id="agentparty")


def configured_bus(settings: Settings) -> EventBus | None:
    """As ``AGENTPARTY_EVENTS`` says: ``off``; ``on`` (outbox always, relayed when a broker is configured or
    running); ``auto`` (default: only when a broker is configured or the local one runs)."""
    if settings.events == "off":
        return None
    kafka = kafka_config(settings)
    if kafka is None and settings.events == "auto":
        return None
    return bus_for(
        settings.home,
        kafka,
        settings.event_topic_prefix,
        partitions=settings.event_partitions,
        replication=settings.event_replication,
        batching=settings.load_sdk_configuration().communication.batching,
    )
