"""Kafka messages → Prefect events, so that an ``event`` trigger can start a run from a Kafka topic.

Prefect's automations react to Prefect events only. A trigger with a ``kafka``
section names a topic and a payload filter; the bridge consumes that topic in a
consumer group, and for each JSON message that passes a route's filter emits one
Prefect event named ``agentparty.kafka.<topic>`` whose resource carries the
route (``agentparty.bridge = <workflow id>.<trigger index>``). The deployment's
trigger (see :mod:`agentparty.deployments.build`) matches exactly that label, so
a message starts the workflows whose filter it passed and no others.

Delivery: offsets are committed only after the event went to the Prefect
server, so a crash re-sends rather than loses; the event id is derived from
(topic, partition, offset, route), so a re-sent event is the same event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer
from prefect.events import Event
from prefect.events.clients import get_events_client

from agentparty.models import WorkflowDefinition
from agentparty.models.workflow import KAFKA_EVENT_PREFIX, EventTrigger
from agentparty.runtime.relay import consumer_config

if TYPE_CHECKING:
    from confluent_kafka import Message
    from prefect.events import Event

    from agentparty.models.config import KafkaConfig

logger = logging.getLogger("agentparty.bridge")
EVENT_PREFIX = KAFKA_EVENT_PREFIX
ROUTE_LABEL = "agentparty.bridge"
BRIDGE_GROUP = "agentparty-bridge"
_NAMESPACE = uuid.UUID("6f1c1f4e-54a5-4b7e-9a43-2b7d1c9b0a11")
_MISSING = object()


def bridge_event_name(topic: str) -> str:
    return f"{EVENT_PREFIX}{topic}"


@dataclass(frozen=True)
class BridgeRoute:
    workflow_id: str
    trigger_index: int
    topic: str
    filter: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.workflow_id}.{self.trigger_index}"

    def accepts(self, payload: Any) -> bool:
        """Every filter path (dotted, into nested objects) is present and equal."""
        return all(_lookup(payload, path) == expected for path, expected in self.filter.items())


def _lookup(payload: Any, path: str) -> Any:
    value = payload
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def routes_for(definitions: Iterable[WorkflowDefinition]) -> list[BridgeRoute]:
    routes = []
    for definition in definitions:
        for index, trigger in enumerate(definition.triggers):
            if isinstance(trigger, EventTrigger) and trigger.configuration.kafka is not None:
                kafka = trigger.configuration.kafka
                routes.append(BridgeRoute(definition.id, index, kafka.topic, dict(kafka.filter)))
    return routes


def events_for(
    message_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    routes: Iterable[BridgeRoute],
) -> list[Event]:
    """The Prefect events one Kafka message becomes (none when it is not JSON or no route accepts it)."""

    try:
        payload = json.loads(value or b"")
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("kafka %s[%s]@%s: not JSON; not bridged", message_topic, partition, offset)
        return []
    events = []
    for route in routes:
        if route.topic != message_topic or not route.accepts(payload):
            continue
        position = f"{message_topic}.{partition}.{offset}"
        events.append(
            Event(
                id=uuid.uuid5(_NAMESPACE, f"{position}/{route.label}"),
                event=bridge_event_name(message_topic),
                resource={
                    "prefect.resource.id": f"{EVENT_PREFIX}{position}",
                    ROUTE_LABEL: route.label,
                    "agentparty.kafka.topic": message_topic,
                    "agentparty.kafka.key": key.decode(errors="replace") if key else "",
                },
                payload={"message": payload, "topic": message_topic, "partition": partition, "offset": offset},
            )
        )
    return events


class KafkaEventBridge:
    """Consumes the routes' topics in one consumer group and emits the accepted messages as Prefect events."""

    def __init__(
        self,
        routes: list[BridgeRoute],
        kafka: KafkaConfig,
        *,
        group_id: str = BRIDGE_GROUP,
        send: Callable[[list[Event]], None] | None = None,
    ) -> None:

        if not routes:
            raise ValueError("no workflow has a Kafka-bridged event trigger; nothing to bridge")
        self.routes = routes
        self.topics = sorted({route.topic for route in routes})
        settings = consumer_config(kafka, group_id)
        settings.update({"enable.auto.commit": False, "auto.offset.reset": "earliest"})
        self._consumer = Consumer(settings)
        self._consumer.subscribe(self.topics)
        self._send = send or send_to_prefect
        self.bridged = 0

    def handle(self, message: Message) -> int:
        events = events_for(
            message.topic() or "",
            message.partition() or 0,
            message.offset() or 0,
            message.key(),
            message.value(),
            self.routes,
        )
        if events:
            self._send(events)
        self._consumer.commit(message=message, asynchronous=False)
        self.bridged += len(events)
        return len(events)

    def run(self, stop: threading.Event, poll: float = 0.5) -> None:
        """Bridge until ``stop`` is set; a message whose events cannot be sent is retried, never skipped."""
        while not stop.is_set():
            message = self._consumer.poll(poll)
            if message is None:
                continue
            if message.error():
                logger.warning("bridge consumer: %s", message.error())
                continue
            while not stop.is_set():
                try:
                    self.handle(message)
                    break
                except Exception:
                    logger.exception(
                        "bridging %s[%s]@%s failed; retrying", message.topic(), message.partition(), message.offset()
                    )
                    stop.wait(2.0)

    def close(self) -> None:
        self._consumer.close()


def send_to_prefect(events: list[Event]) -> None:
    """Send to the Prefect server and return once the events are written to its socket."""

    async def send() -> None:
        async with get_events_client() as client:
            for event in events:
                await client.emit(event)

    asyncio.run(send())
