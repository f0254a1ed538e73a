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


async def wait_until_recorded(flow_run_id: Any, expected_task_runs: int | None, timeout: float = 60.0) -> int:
    """Wait until the server has recorded every task run of a finished flow run; return how many it recorded.

    Task-run states reach the server as events that it ingests after the flow
    has returned; on a two-core machine that ingestion competes with the next
    run for the CPU (and the server answers the next run's first calls late),
    so benchmarks that time single runs wait for it first. With
    ``expected_task_runs`` None (a warm-up run) it waits until the count of
    completed task runs has not changed for a second: a deterministic flow makes
    as many on every run, so later runs wait for exactly that count.
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
    seen, since = -1, started
    async with get_client() as client:
        while time.perf_counter() - started < timeout:
            count = len(await client.read_task_runs(flow_run_filter=runs, task_run_filter=completed))
            if expected_task_runs is not None and count >= expected_task_runs:
                return count
            if expected_task_runs is None:
                if count != seen:
                    seen, since = count, time.perf_counter()
                elif count and time.perf_counter() - since >= 1.0:
                    return count
            await asyncio.sleep(0.1)
    raise SystemExit(f"the server recorded only {seen} of {expected_task_runs} task runs within {timeout:.0f}s")
