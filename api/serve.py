"""Running the app under uvicorn: in the foreground (``agentparty api``) or in a thread (tests, benchmarks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


def serve(app: FastAPI, host: str, port: int, log_level: str = "info") -> None:
    """Serve until interrupted (one process: the rate limiter and the Prefect client live in it)."""
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


@contextmanager
def serving(app: FastAPI, port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> Iterator[str]:
    """A real uvicorn server for ``app`` in a background thread; yields its base URL and stops it on exit."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
