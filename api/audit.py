"""The API's part of the audit log: every request recorded (who, what, outcome), and ``GET /audit``.

Recording must not slow requests down: an entry is an ``fsync``'d append under
a file lock (``runtime/audit.py``), a few milliseconds on an ordinary disk (with
state on PostgreSQL, a transaction that waits its turn on the one shared chain:
``runtime/audit_postgres.py``). So
requests only put their entry on a bounded queue, and one background thread
(:class:`AuditWriter`) appends what it finds there in batches. The queue holds
:data:`QUEUE_SIZE` entries; when the disk cannot keep up, a read (``GET``)
that finds it full is dropped and counted (the next batch records an
``audit.dropped`` entry with the count), while anything that changes state or
was refused waits for room, so those are never lost. The app's shutdown drains
the queue.

Each request is one entry: ``actor`` is ``key:NAME`` (``anonymous`` without a
valid key, ``webhook`` for a signed webhook), ``action`` ``api.request``, or
``access.refused`` for a 401 or 403 with the reason in ``details.reason``;
``target`` is the method and path; ``outcome`` the status code.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentparty.api.errors import GUARDED, declared, refuse_unknown_query
from agentparty.api.security import Principal, require
from agentparty.runtime.audit_trail import AuditTrail

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
BATCH = 256
_STOP = object()
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuditWriter:
    """One thread that appends queued entries to the audit log; ``submit`` never touches the disk."""

    def __init__(self, log: AuditTrail, size: int = QUEUE_SIZE) -> None:
        self.log = log
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(size)
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def submit(self, entry: dict[str, Any], *, may_drop: bool = False) -> None:
        if not self.log.enabled:
            return
        self._start()
        if may_drop:
            try:
                self._queue.put_nowait(entry)
            except queue.Full:
                self.dropped += 1
            return
        self._queue.put(entry)

    def _start(self) -> None:
        if self._thread is None:
            with self._guard:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            flushed = [item for item in batch if isinstance(item, threading.Event)]
            entries = [item for item in batch if isinstance(item, dict)]
            if self.dropped:
                dropped, self.dropped = self.dropped, 0
                entries.append({"actor": "system", "action": "audit.dropped", "outcome": "ok", "count": dropped})
            try:
                self.log.append_many(entries)
            except Exception:  # the API keeps serving; the failure is in its log
                logger.exception("audit log: could not append %d entries", len(entries))
            for waiter in flushed:
                waiter.set()
            if stop:
                return

    def flush(self, timeout: float = 10.0) -> None:
        """Return once what was queued before the call is written (or ``timeout`` passed)."""
        if self._thread is None:
            return
        written = threading.Event()
        self._queue.put(written)
        written.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None


class AuditMiddleware:
    """Records each HTTP request and WebSocket handshake once its status is known (pure ASGI: no body copies)."""

    def __init__(self, app: ASGIApp, writer: AuditWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.writer.log.enabled:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, int] = {}

        async def sending(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                seen["status"] = int(message["status"])
            elif kind == "websocket.accept":
                seen["status"] = 101
            elif kind == "websocket.close" and "status" not in seen:
                seen["status"] = 403
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._record(scope, seen.get("status", 500), time.perf_counter() - started)

    def _record(self, scope: Scope, code: int, seconds: float) -> None:
        state = scope.get("state") or {}
        method = scope.get("method", "WS")
        path = scope.get("path", "")
        name = state.get("principal")
        actor = f"key:{name}" if name else ("webhook" if path.startswith("/webhooks/") else "anonymous")
        reason = state.get("audit_reason")
        refused = code in (401, 403)
        entry: dict[str, Any] = {
            "actor": actor,
            "action": "access.refused" if refused else "api.request",
            "target": f"{method} {path}",
            "outcome": str(code),
            "ms": round(seconds * 1000, 1),
        }
        if reason and (refused or code >= 400):
            entry["reason"] = str(reason)
        self.writer.submit(entry, may_drop=method in _READS and not refused)


def record(request: Request, action: str, target: str, outcome: str = "ok", **details: Any) -> None:
    """Queue a domain event (an approval, a run started) as the request's key, beside its ``api.request``."""
    writer: AuditWriter | None = getattr(request.app.state, "audit_writer", None)
    if writer is not None:
        name = getattr(request.state, "principal", None)
        actor = f"key:{name}" if name else "anonymous"
        writer.submit({"actor": actor, "action": action, "target": target, "outcome": outcome, **details})


def install_audit(app: FastAPI, log: AuditTrail) -> AuditWriter:
    writer = AuditWriter(log)
    app.state.audit = log
    app.state.audit_writer = writer
    app.add_middleware(AuditMiddleware, writer=writer)
    return writer


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Drains the writer when the app stops (merged into the app's lifespan like the other routers')."""
    try:
        yield
    finally:
        writer: AuditWriter | None = getattr(app.state, "audit_writer", None)
        if writer is not None:
            writer.close()


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: object) -> object:
    """Only RFC 3339 times with their offset: pydantic alone would also take ``0`` (a Unix time) or a naive time,
    which the OpenAPI ``date-time`` format says are invalid."""
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 time with its offset, e.g. 2026-01-31T12:00:00Z")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]

router = APIRouter(tags=["audit"], lifespan=lifespan, dependencies=[Depends(refuse_unknown_query)])


class AuditEntryView(BaseModel):
    """One entry of the audit log, as written (``prev`` and ``hash`` link it into the chain)."""

    seq: int
    at: str = Field(description="UTC, ISO 8601.")
    actor: str = Field(description="``key:NAME``, ``anonymous``, ``webhook``, ``cli:USER``, ``system``.")
    action: str = Field(description="Dotted: ``api.request``, ``access.refused``, ``approval.approve`` …")
    target: str
    outcome: str
    details: dict[str, Any]
    prev: str
    hash: str


class AuditPage(BaseModel):
    entries: list[AuditEntryView] = Field(description="Newest first.")
    next_offset: int | None = Field(description="The ``offset`` of the next page; null on the last one.")


@router.get("/audit", response_model=AuditPage, responses=declared(*GUARDED))
def read_audit(
    request: Request,
    _: Annotated[Principal, Depends(require("audit", "read"))],
    actor: Annotated[str | None, Query(max_length=200, description="Only this actor (``key:NAME``).")] = None,
    action: Annotated[
        str | None, Query(max_length=200, description="Only actions with this prefix (``key`` finds ``key.rotate``).")
    ] = None,
    since: Annotated[Moment | None, Query(description="Only entries at or after (RFC 3339, with its offset).")] = None,
    until: Annotated[Moment | None, Query(description="Only entries at or before (RFC 3339).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditPage:
    """The audit log, newest first, filtered by actor, action prefix and time (admins only)."""
    log: AuditTrail = request.app.state.audit
    request.app.state.audit_writer.flush()  # what this key's earlier requests queued is in the answer
    found = log.query(actor=actor, action=action, since=since, until=until, limit=limit + 1, offset=offset)
    page = [AuditEntryView.model_validate(entry.as_json()) for entry in found[:limit]]
    return AuditPage(entries=page, next_offset=offset + limit if len(found) > limit else None)
