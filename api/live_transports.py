"""Live updates over Server-Sent Events and long polling, beside ``WS /ws``, and ``communication.realtime``.

Every transport takes its messages from the app's one :class:`~agentparty.api.live.LiveFeed`
through a :class:`~agentparty.api.live.Subscription` of its own: the same snapshot
first, the same messages in the same order, the same ``?agent_id=``/``?team_id=``
filters and the same access conditions as ``/ws``.

* ``GET /live/sse``: ``text/event-stream``, one ``data:`` line per message (the
  JSON ``/ws`` sends as a text frame). A client that falls ``bufferSize``
  messages behind gets an ``event: overflow`` and the stream ends (``/ws``: close 1013).
* ``GET /live/poll``: long polling. The first request (no ``cursor``) opens a
  subscription held by the server and answers ``{"cursor": ..., "messages": [...]}``
  at once with the snapshot; each later request with that ``cursor`` answers as
  soon as a message is queued, or after ``heartbeatInterval`` with none (that empty
  answer is its heartbeat). The cursor names the subscription, only for the key
  that opened it; one not polled for :data:`POLL_IDLE_S` (or 3 heartbeats, if
  longer) is dropped, and then, or after an overflow, answers 410: start again.
* ``GET /live``: what ``communication.realtime.protocol`` advertises, and where
  each transport is served.

``realtime.heartbeatInterval``: WebSocket ping frames (uvicorn's ``ws_ping_interval``,
``api/serve.py``), SSE comment lines (``: ping``), long polling's empty answers.
``realtime.bufferSize``: each subscription's queue. ``realtime.maxLatency``: every
message sent is timed against it (``api/live_delivery.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from agentparty.api.errors import GUARDED, declared, refuse_unknown_query
from agentparty.api.live import OVERFLOW, LiveFeed, RunFilter, Subscription, feed_of
from agentparty.api.live_delivery import Protocol, delivered
from agentparty.api.security import Principal, require

logger = logging.getLogger("agentparty.api.live")

POLL_IDLE_S = 60.0
"""A long-polling subscription not polled for this long (at least 3 heartbeats) is dropped."""
PATHS: dict[str, str] = {"websocket": "/ws", "sse": "/live/sse", "long_polling": "/live/poll"}


def overflow_reason(subscription: Subscription) -> str:
    return f"fell {subscription.queue.maxsize} messages behind"


class LiveTransports(BaseModel):
    """``GET /live``: the transport ``communication.realtime.protocol`` advertises, and every one served."""

    protocol: Protocol
    url: str
    """Path of the advertised transport."""
    transports: dict[str, str]
    heartbeat_interval_ms: int
    max_latency_ms: int
    buffer_size: int


router = APIRouter(tags=["live"], dependencies=[Depends(refuse_unknown_query)])


@router.get("/live", response_model=LiveTransports, responses=declared(*GUARDED))
async def live_transports(
    request: Request, _principal: Annotated[Principal, Depends(require("events", "read"))]
) -> LiveTransports:
    realtime = feed_of(request.app).realtime
    return LiveTransports(
        protocol=realtime.protocol,
        url=PATHS[realtime.protocol],
        transports=PATHS,
        heartbeat_interval_ms=realtime.heartbeat_interval,
        max_latency_ms=realtime.max_latency,
        buffer_size=realtime.buffer_size,
    )


async def _subscribe(
    request: Request, principal: Principal, agent_id: list[str] | None, team_id: list[str] | None
) -> tuple[LiveFeed, Subscription]:
    feed = feed_of(request.app)
    subscription = feed.subscribe(frozenset(agent_id or ()), frozenset(team_id or ()), RunFilter.of(principal))
    feed.start()
    if not await feed.wait_ready():
        logger.warning("live feed: not reading the topics yet; the client gets messages once it is")
    return feed, subscription


@router.get("/live/sse", include_in_schema=False)
async def live_sse(
    request: Request,
    principal: Annotated[Principal, Depends(require("events", "read"))],
    agent_id: Annotated[list[str] | None, Query()] = None,
    team_id: Annotated[list[str] | None, Query()] = None,
) -> EventSourceResponse:
    """The messages of ``/ws`` as Server-Sent Events (not in the OpenAPI document: a stream, like ``/ws``)."""
    feed, subscription = await _subscribe(request, principal, agent_id, team_id)
    realtime = feed.realtime

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            while True:
                item = await subscription.queue.get()
                if item is OVERFLOW:
                    yield ServerSentEvent(data=overflow_reason(subscription), event="overflow")
                    return
                yield ServerSentEvent(data=item)
                delivered("sse", item, realtime)
        finally:
            feed.unsubscribe(subscription)

    return EventSourceResponse(events(), ping=realtime.heartbeat_interval / 1000, headers={"Cache-Control": "no-store"})


@dataclass(eq=False)
class _Poller:
    subscription: Subscription
    key: str
    """The API key's name that opened it: no other key may read it."""
    last_poll: float = field(default_factory=time.monotonic)
    busy: bool = False


@dataclass
class PollSessions:
    """The app's long-polling subscriptions by cursor (``app.state.live_polls``)."""

    sessions: dict[str, _Poller] = field(default_factory=dict)

    def sweep(self, feed: LiveFeed) -> None:
        """Drop the subscriptions nobody polled for a while (their clients left)."""
        idle = max(POLL_IDLE_S, 3 * feed.realtime.heartbeat_interval / 1000)
        now = time.monotonic()
        for cursor, poller in list(self.sessions.items()):
            if not poller.busy and now - poller.last_poll > idle:
                feed.unsubscribe(poller.subscription)
                del self.sessions[cursor]

    def close(self, feed: LiveFeed, cursor: str) -> None:
        poller = self.sessions.pop(cursor, None)
        if poller is not None:
            feed.unsubscribe(poller.subscription)


def _sessions(request: Request) -> PollSessions:
    sessions: PollSessions | None = getattr(request.app.state, "live_polls", None)
    if sessions is None:
        sessions = request.app.state.live_polls = PollSessions()
    return sessions


def _gone(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_410_GONE, f"{reason}; poll without a cursor to start again")


@router.get("/live/poll", include_in_schema=False)
async def live_poll(
    request: Request,
    principal: Annotated[Principal, Depends(require("events", "read"))],
    cursor: str | None = None,
    agent_id: Annotated[list[str] | None, Query()] = None,
    team_id: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Long polling: the messages of ``/ws`` queued since the last poll of ``cursor`` (a new cursor without one)."""
    feed = feed_of(request.app)
    sessions = _sessions(request)
    sessions.sweep(feed)
    if cursor is None:
        _, subscription = await _subscribe(request, principal, agent_id, team_id)
        cursor = secrets.token_urlsafe(18)
        sessions.sessions[cursor] = poller = _Poller(subscription, principal.name)
        wait = 0.0  # the snapshot at once
    else:
        found = sessions.sessions.get(cursor)
        if found is None or found.key != principal.name:
            raise _gone("unknown or expired cursor")
        if found.busy:
            raise HTTPException(status.HTTP_409_CONFLICT, "this cursor is being polled already")
        poller, wait = found, feed.realtime.heartbeat_interval / 1000
    poller.busy = True
    try:
        messages = await _take(poller.subscription, wait)
    finally:
        poller.busy, poller.last_poll = False, time.monotonic()
    if messages is None:
        sessions.close(feed, cursor)
        raise _gone(overflow_reason(poller.subscription))
    for message in messages:
        delivered("long_polling", message, feed.realtime)
    texts = ",".join(messages)  # each is JSON already: joined, not parsed again
    body = f'{{"cursor":{json.dumps(cursor)},"messages":[{texts}]}}'
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


async def _take(subscription: Subscription, wait: float) -> list[str] | None:
    """What is queued, waiting up to ``wait`` seconds for a first message; None when the client fell behind."""
    queue = subscription.queue
    items: list[Any] = []
    if queue.empty() and wait > 0:
        try:
            items.append(await asyncio.wait_for(queue.get(), wait))
        except TimeoutError:
            return []
    while not queue.empty():
        items.append(queue.get_nowait())
    if any(item is OVERFLOW for item in items):
        return None
    return items
