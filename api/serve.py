"""Running the app under uvicorn: in the foreground (``agentparty api``) or in a thread (tests, benchmarks)."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

TlsFiles = tuple[Path | None, Path | None]
"""A PEM certificate (chain) and its private key (``AGENTPARTY_API_TLS_CERT``, ``AGENTPARTY_API_TLS_KEY``); the
server speaks TLS only, HTTP and ``/ws`` alike, when both are set."""


def serve(
    app: FastAPI,
    host: str,
    port: int,
    log_level: str = "info",
    tls: TlsFiles = (None, None),
    ws_ping_interval: float | None = None,
) -> None:
    """Serve until interrupted (one process: the rate limiter and the Prefect client live in it).
    ``ws_ping_interval``: seconds between WebSocket ping frames (``communication.realtime.heartbeatInterval``;
    uvicorn's 20 when None); a client that answers none within as long again is disconnected."""
    started = app.router.lifespan_context

    @asynccontextmanager
    async def frozen_after_start(app_: FastAPI) -> AsyncIterator[Any]:
        async with started(app_) as state:
            # What exists now (Prefect, pydantic, FastAPI: ~185,000 tracked objects) lives as long as the
            # process; frozen, the collector stops re-scanning it in every full collection. A burst of
            # 100 webhooks cost 2.0 ms of CPU each with those scans and 0.55 ms without (in-process, same app).
            gc.freeze()
            yield state

    app.router.lifespan_context = frozen_after_start
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # uvicorn's lines go through the process's handlers (monitoring.logging), not its own
        ws_ping_interval=ws_ping_interval if ws_ping_interval is not None else 20.0,
        ws_ping_timeout=ws_ping_interval if ws_ping_interval is not None else 20.0,
        access_log=False,
        loop="uvloop",
        http="httptools",
        ssl_certfile=tls[0],
        ssl_keyfile=tls[1],
    )


@contextmanager
def serving(
    app: FastAPI, port: int, host: str = "127.0.0.1", timeout: float = 30.0, tls: TlsFiles = (None, None)
) -> Iterator[str]:
    """A real uvicorn server for ``app`` in a background thread; yields its base URL and stops it on exit."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        loop="uvloop",
        http="httptools",
        ssl_certfile=tls[0],
        ssl_keyfile=tls[1],
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"{'https' if tls[0] else 'http'}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
