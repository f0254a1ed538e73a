"""``WS /ws``: live ``agent_update`` and ``team_update`` messages (seed 000) from the lifecycle events on Kafka,
and agents' turns, text deltas and tool calls from the runs' live stream.

One :class:`LiveFeed` per app reads, in two background threads (confluent-kafka's
consumer blocks), the event topics and the live stream's topic
(``runtime/live_stream.py``, read with a 5 ms fetch wait) from their ends, turns
what it reads into messages (:class:`~agentparty.api.live_view.LiveView`,
serialised once) and hands each to every connection's bounded asyncio queue on
that connection's own event loop, in consumption order: one entity's messages
keep the order they were produced in. A connection whose queue is full is closed
(1013, try again later) rather than allowed to hold the others back or
buffer without bound; a run never waits for a connection (it streams to the
broker, not to the API). A new connection is first told the current state of
each team and agent the feed knows (:meth:`LiveView.snapshot`), then what
happens from then on: the snapshot and every later message are taken under
the one lock that the readers hold while they update the view and publish, so
nothing falls between them. The feed starts with the first connection and stops
with the app (:func:`lifespan`, the router's); a broker that is down is retried, and
clients get messages once it is back.

Clients may narrow the stream with ``?agent_id=`` and ``?team_id=``
(repeatable): an ``agent_update`` passes when its agent is named or belongs
to a named team, a ``team_update`` when its team is named.

A key whose ``events`` read permission has conditions gets only the messages,
snapshot included, about runs within them (:class:`RunFilter`): of the named
workflows, or started by the key (``owner: self``). A message the view could
not attribute to a run goes only to keys without conditions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, WebSocket, WebSocketDisconnect, status

from agentparty.api.live_delivery import Stamped, delivered
from agentparty.api.live_view import LiveView, Routed
from agentparty.api.security import Principal, authorize_websocket
from agentparty.models.access import Scope, owner_ref
from agentparty.models.config import KafkaConfig
from agentparty.models.events import BaseEvent
from agentparty.models.live_stream import LiveStreamItem
from agentparty.models.sdk_config import RealtimeConfig
from agentparty.runtime.event_consumer import EventConsumer, RawEvent
from agentparty.runtime.live_stream import LiveStreamReader
from agentparty.runtime.local_services import kafka_address
from agentparty.runtime.masking import Masker, masker_for
from agentparty.runtime.relay import ensure_topics, topic_names
from agentparty.runtime.settings import Settings, get_settings

logger = logging.getLogger("agentparty.api.live")

QUEUE_SIZE = RealtimeConfig().buffer_size
"""Messages a connection may fall behind by before it is closed (``communication.realtime.bufferSize``)."""
READY_WAIT_S = 10.0
"""How long a new connection waits for the feed to be positioned on the topics before it is accepted anyway."""
RETRY_S = 2.0
"""Pause between attempts to reach a broker that is down."""
OVERFLOW = object()
"""Queued in place of what a subscription missed when it fell behind (every transport ends on it)."""


@dataclass(frozen=True)
class RunFilter:
    """What a key whose permission has conditions may hear about: runs its :class:`Scope` admits, the owner
    compared by :func:`owner_ref` of the key's name (what runs carry)."""

    scope: Scope
    me: str
    """:func:`owner_ref` of the key's name."""

    @classmethod
    def of(cls, principal: Principal) -> RunFilter | None:
        """None for a key without conditions: it hears everything, as before conditions existed."""
        return cls(principal.scope, owner_ref(principal.name)) if principal.scope.restricted else None

    def admits(self, message: Routed) -> bool:
        run = message.run
        if run is None:  # fail closed: a message of no known run could be about anyone's
            return False
        return self.scope.admits(self.me, run.workflow_id, run.owner_ref)


@dataclass(eq=False)
class Subscription:
    """One connection's queue and filters; ``offer`` runs on the connection's loop."""

    loop: asyncio.AbstractEventLoop
    agent_ids: frozenset[str] = frozenset()
    team_ids: frozenset[str] = frozenset()
    runs: RunFilter | None = None
    """The key's conditions (None: none)."""
    queue: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def wants(self, message: Routed) -> bool:
        if self.runs is not None and not self.runs.admits(message):
            return False
        if not self.agent_ids and not self.team_ids:
            return True
        return (message.agent_id is not None and message.agent_id in self.agent_ids) or bool(
            message.team_ids & self.team_ids
        )

    def offer(self, message: Routed) -> None:
        if self.overflowed or not self.wants(message):
            return
        try:
            self.queue.put_nowait(message.text)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():  # what it missed is gone anyway; the close goes out next
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)


class LiveFeed:
    """The app's one reader of the event topics and the live stream, fanning messages out to every subscription."""

    def __init__(self, config: KafkaConfig, prefix: str, partitions: int = 3, replication: int = 1) -> None:
        self.config, self.prefix = config, prefix
        self.partitions, self.replication = partitions, replication
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        self._view = LiveView()
        self._view_lock = threading.Lock()
        """Held while a reader updates the view and publishes, and while a connection subscribes and is told the
        snapshot: a new connection misses nothing and is told nothing twice."""
        self._stop = threading.Event()
        self.ready = threading.Event()
        """Set once the feed reads the event topics and the live stream (from where they ended when it started)."""
        self._events_ready = threading.Event()
        self._stream_ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self.realtime = RealtimeConfig()
        """``communication.realtime``: each subscription's queue size, the heartbeat, the latency objective
        (``api/live_transports.py``)."""
        self.masker: Masker | None = None
        """``security.dataMasking``: what it shows is masked again here, whichever process produced it (a run's
        own masking holds back text deltas until a value they may split is whole; this masks each as it comes)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveFeed:
        """The configured cluster, else the local broker's address whether or not it runs yet (as ``agentparty
        events tail`` does): the feed keeps trying until it is up."""
        feed = cls(
            kafka_address(settings), settings.event_topic_prefix, settings.event_partitions, settings.event_replication
        )
        sdk = settings.load_sdk_configuration()
        feed.masker, feed.realtime = masker_for(sdk.security), sdk.communication.realtime
        return feed

    # -- subscriptions (called on a connection's loop) ------------------------------------------

    def subscribe(
        self,
        agent_ids: frozenset[str] = frozenset(),
        team_ids: frozenset[str] = frozenset(),
        runs: RunFilter | None = None,
    ) -> Subscription:
        """A connection's subscription, its queue holding the current state of what it wants to hear about."""
        queue: asyncio.Queue[Any] = asyncio.Queue(self.realtime.buffer_size)
        subscription = Subscription(asyncio.get_running_loop(), agent_ids, team_ids, runs, queue)
        with self._view_lock:
            for message in self._view.snapshot(subscription.wants):
                subscription.offer(message)
            with self._lock:
                self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    async def wait_ready(self, timeout: float = READY_WAIT_S) -> bool:
        """Whether the feed is reading the topics (from their current ends) within ``timeout`` seconds."""
        return await asyncio.to_thread(self.ready.wait, timeout)

    # -- the reader thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Start reading (once; a stopped feed stays stopped)."""
        with self._lock:
            if not self._threads and not self._stop.is_set():
                self._threads = [
                    threading.Thread(target=self._read, name="agentparty-live-feed", daemon=True),
                    threading.Thread(target=self._read_stream, name="agentparty-live-stream", daemon=True),
                ]
                for thread in self._threads:
                    thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _positioned(self, which: threading.Event) -> None:
        which.set()
        if self._events_ready.is_set() and self._stream_ready.is_set():
            self.ready.set()

    def show_event(self, event: BaseEvent[Any]) -> None:
        """A lifecycle event (the event reader's): the view updated, its messages published."""
        if self.masker is not None:
            event = self.masker.model(event)
        self._show(partial(self._view.messages_for, event), event.timestamp.timestamp())

    def show_item(self, item: LiveStreamItem) -> None:
        """A live stream item (the stream reader's): the view updated, its message published."""
        if self.masker is not None:
            item = self.masker.model(item)
        self._show(partial(self._view.stream_messages, item), item.timestamp.timestamp())

    def _show(self, show: Callable[[], list[Routed]], occurred: float) -> None:
        """Update the view (``show`` calls it) and publish what it answers, as one step against subscribing;
        ``occurred``: when the event was made (each transport times its delivery from then)."""
        with self._view_lock:
            try:
                messages = show()
            except Exception:  # one message that cannot be shown must not end the feed
                logger.exception("live feed: skipped a message")
                return
            for message in messages:
                self.publish(dataclasses.replace(message, text=Stamped(message.text, occurred)))

    def publish(self, message: Routed) -> None:
        """Hand one message to every subscription, each on its own loop (FIFO, so order is kept)."""
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            try:
                subscription.loop.call_soon_threadsafe(subscription.offer, message)
            except RuntimeError:  # its loop is closed: the connection is gone
                self.unsubscribe(subscription)

    def _read(self) -> None:
        """The event topics' reader thread."""
        while not self._stop.is_set():
            try:
                # Topics that do not exist yet cannot be assigned; creating them is what the relay does anyway.
                ensure_topics(self.config, self.prefix, self.partitions, self.replication)
                consumer = EventConsumer(self.config, self.prefix, from_end=True)
            except Exception as exc:  # broker down or unreachable: keep trying until stopped
                logger.warning(
                    "live feed: no broker at %s (%s); retrying", ",".join(self.config.bootstrap_servers), exc
                )
                self._stop.wait(RETRY_S)
                continue
            missing = set(topic_names(self.prefix)) - consumer.assigned_topics
            if missing:  # created but not in the metadata yet: a partial assignment would miss them for good
                consumer.close()
                logger.warning("live feed: topics %s not visible yet; retrying", ", ".join(sorted(missing)))
                self._stop.wait(RETRY_S)
                continue
            self._positioned(self._events_ready)
            with consumer:
                while not self._stop.is_set():
                    try:
                        event = consumer.poll(0.5)
                    except Exception:  # one message that cannot be read must not end the feed
                        logger.exception("live feed: skipped a message")
                        continue
                    if event is not None and not isinstance(event, RawEvent):
                        self.show_event(event)

    def _read_stream(self) -> None:
        """The live stream's reader thread (its topic is created with the event topics, by the other reader)."""
        while not self._stop.is_set():
            try:
                reader = LiveStreamReader(self.config, self.prefix)
            except Exception as exc:  # broker down or unreachable: keep trying until stopped
                logger.warning(
                    "live stream: no broker at %s (%s); retrying", ",".join(self.config.bootstrap_servers), exc
                )
                self._stop.wait(RETRY_S)
                continue
            if not reader.assigned:  # not created (or not in the metadata) yet
                reader.close()
                self._stop.wait(RETRY_S / 4)
                continue
            self._positioned(self._stream_ready)
            with reader:
                while not self._stop.is_set():
                    item = reader.poll(0.5)
                    if item is not None:
                        self.show_item(item)


def feed_of(app: FastAPI) -> LiveFeed:
    """The app's feed (``app.state.live_feed``, which a test may set), built from the settings on first use."""
    feed: LiveFeed | None = getattr(app.state, "live_feed", None)
    if feed is None:
        feed = app.state.live_feed = LiveFeed.from_settings(getattr(app.state, "settings", None) or get_settings())
    return feed


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Stops the app's feed, if a connection started one, when the app shuts down (FastAPI merges a router's
    lifespan into the app's when the app includes the router)."""
    try:
        yield
    finally:
        feed: LiveFeed | None = getattr(app.state, "live_feed", None)
        if feed is not None:
            await asyncio.to_thread(feed.stop)


router = APIRouter(tags=["live"], lifespan=lifespan)


@router.websocket("/ws")
async def live_updates(
    websocket: WebSocket,
    agent_id: Annotated[list[str] | None, Query()] = None,
    team_id: Annotated[list[str] | None, Query()] = None,
) -> None:
    principal = await authorize_websocket(websocket, "events", "read")
    feed = feed_of(websocket.app)
    subscription = feed.subscribe(frozenset(agent_id or ()), frozenset(team_id or ()), RunFilter.of(principal))
    feed.start()
    try:
        if not await feed.wait_ready():
            logger.warning("live feed: not reading the topics yet; the connection gets messages once it is")
        await websocket.accept()
        await _pump(websocket, subscription, feed.realtime)
    finally:
        feed.unsubscribe(subscription)


async def _pump(websocket: WebSocket, subscription: Subscription, realtime: RealtimeConfig) -> None:
    """Send queued messages until the client leaves or falls too far behind (what is queued already goes out
    without waiting, so a burst of deltas costs one send each)."""

    async def until_disconnect() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # clients have nothing to say; their messages are read only to notice the close

    leaving = asyncio.create_task(until_disconnect())
    try:
        while not leaving.done():
            if subscription.queue.empty():
                next_message = asyncio.create_task(subscription.queue.get())
                done, _ = await asyncio.wait({next_message, leaving}, return_when=asyncio.FIRST_COMPLETED)
                if next_message not in done:
                    next_message.cancel()
                    return
                item = next_message.result()
            else:
                item = subscription.queue.get_nowait()
            try:
                if item is OVERFLOW:
                    reason = f"fell {subscription.queue.maxsize} messages behind"
                    await websocket.close(status.WS_1013_TRY_AGAIN_LATER, reason=reason)
                    return
                await websocket.send_text(item)
                delivered("websocket", item, realtime)
            except (WebSocketDisconnect, RuntimeError, OSError):  # closed under it (the server's keepalive gave up)
                return
    finally:
        leaving.cancel()
