"""The API's metrics: request latency per route template, and ``GET /metrics`` (``/json``, ``/csv``) behind a key.

Each HTTP request is timed by a small ASGI middleware and recorded under its route *template*
(``/workflows/{workflow_id}/runs``), never its raw path, so the series stay few whatever ids clients send;
a request no route matched is recorded as ``(unmatched)``. Responses 401, 403 and 429 also count as refusals
(``agentparty_api_refusals_total{code}``), which the security alert watches.

The routes serve :class:`~agentparty.runtime.telemetry_export.MetricsExporter`'s formats to a key whose role may
read ``metrics`` (the built-in roles' ``*`` read reaches it). For a Prometheus that scrapes without a key,
``AGENTPARTY_METRICS_ADDRESS`` (``host:port``) starts a separate listener with the app and stops it with it; with
``otlp`` in ``exportFormats`` the app pushes its metrics over OTLP while it runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentparty.api.errors import GUARDED, declared, refuse_unknown_query
from agentparty.api.security import Principal, require
from agentparty.models.sdk_config import MonitoringConfig
from agentparty.runtime.settings import Settings
from agentparty.runtime.telemetry_export import CONTENT_TYPES, MetricsExporter, start_listener
from agentparty.runtime.telemetry_metrics import configure, record_api_request

router = APIRouter(tags=["metrics"], dependencies=[Depends(refuse_unknown_query)])
UNMATCHED = "(unmatched)"


class RequestMetricsMiddleware:
    """Times each HTTP request and records it under its route template, method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            record_api_request(template, scope["method"], code, time.perf_counter() - started)


async def _serve(request: Request, fmt: str) -> Response:
    exporter: MetricsExporter = request.app.state.metrics
    refused = exporter.refusal(fmt)
    if refused is not None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=refused)
    body = await asyncio.to_thread(exporter.render, fmt)  # store reads, perhaps a Prefect count: off the loop
    return Response(body, media_type=CONTENT_TYPES[fmt])


Reader = Annotated[Principal, Depends(require("metrics", "read"))]
_TEXT: dict[int | str, dict[str, Any]] = {200: {"content": {"text/plain": {}}, "description": "The metrics."}}
_JSON: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}, "description": "The metrics."}
}


@router.get("/metrics", responses=declared(*GUARDED, 404) | _TEXT, response_class=Response)
async def prometheus_text(request: Request, _principal: Reader) -> Response:
    """Prometheus text exposition (``exportFormats`` must list ``prometheus``)."""
    return await _serve(request, "prometheus")


@router.get("/metrics/json", responses=declared(*GUARDED, 404) | _JSON, response_class=Response)
async def json_snapshot(request: Request, _principal: Reader) -> Response:
    """The same samples as JSON (``exportFormats`` must list ``json``, the seed's default)."""
    return await _serve(request, "json")


@router.get("/metrics/csv", responses=declared(*GUARDED, 404) | _TEXT, response_class=Response)
async def csv_rows(request: Request, _principal: Reader) -> Response:
    """One CSV row per sample (``exportFormats`` must list ``csv``)."""
    return await _serve(request, "csv")


def install_metrics(app: FastAPI, settings: Settings, monitoring: MonitoringConfig) -> MetricsExporter:
    """Record this app's requests, serve the routes, and run the keyless listener with the app when configured."""
    configure(monitoring.metrics, monitoring.performance_thresholds.max_response_time)
    exporter = MetricsExporter.build(monitoring.metrics, settings.home, state=settings.state_backend())
    app.state.metrics = exporter
    app.include_router(router)
    app.add_middleware(RequestMetricsMiddleware)
    address, inner = settings.metrics_address, app.router.lifespan_context

    @asynccontextmanager
    async def with_exports(app_: FastAPI) -> AsyncIterator[Any]:
        listener = start_listener(exporter, address) if address is not None else None
        pusher = exporter.start_otlp("agentparty-api")
        try:
            async with inner(app_) as state:
                yield state
        finally:
            for running in (listener, pusher):
                if running is not None:
                    await asyncio.to_thread(running.close)

    app.router.lifespan_context = with_exports
    return exporter
