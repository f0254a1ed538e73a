"""A throwaway local Prefect server for a benchmark run (real server, temporary state, free port)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentparty.runtime.local_service import free_port
from agentparty.runtime.prefect_server import LocalPrefectServer


@contextlib.contextmanager
def benchmark_server() -> Iterator[LocalPrefectServer]:
    with tempfile.TemporaryDirectory(prefix="agentparty-bench-") as home:
        server = LocalPrefectServer(Path(home), port=free_port())
        server.start()
        os.environ.update(server.client_env())
        os.environ["AGENTPARTY_HOME"] = home
        try:
            yield server
        finally:
            drain_client_services()
            server.stop()


def drain_client_services() -> None:
    """Send buffered logs and events before the server goes away (else Prefect prints errors at exit)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


async def wait_until_recorded(flow_run_id: Any, expected_task_runs: int, timeout: float = 60.0) -> float:
    """Wait until the server has recorded every task run of a finished flow run; return the seconds waited.

    Task-run states reach the server as events that it ingests after the flow
    has returned; on a two-core machine that ingestion competes with the next
    run for the CPU, so benchmarks that time single runs wait for it first.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    started = time.perf_counter()
    runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    completed = TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED])))
    async with get_client() as client:
        while time.perf_counter() - started < timeout:
            recorded = await client.read_task_runs(flow_run_filter=runs, task_run_filter=completed)
            if len(recorded) >= expected_task_runs:
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
    raise SystemExit(
        f"the server recorded only {len(recorded)} of {expected_task_runs} task runs within {timeout:.0f}s"
    )
