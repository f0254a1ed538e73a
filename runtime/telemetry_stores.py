"""Metrics read from their stores when scraped: outbox backlog and relay lag, webhook deliveries, approvals waiting,
circuit breaker states, and the memory limit.

These facts already sit in shared stores (SQLite files under ``AGENTPARTY_HOME/state/``, Prefect's database),
written by every process of the home. Counting them again on every write would cost each write a metric update
and still be wrong across processes; reading them when Prometheus asks is exact and costs nothing between
scrapes. A scrape reads them at most once per ``collectionInterval`` (``monitoring.metrics.collectionInterval``,
milliseconds): scrapes in between get the figures of the last read, so a Prometheus that scrapes every few
seconds, or several of them, cost the stores one read per interval.

The reads open each SQLite file read-only and only when it exists (a home that never emitted an event has no
outbox and reports no backlog, rather than creating one). With engine state on PostgreSQL
(``runtime/state_backend.py``) the same queries read the shared schema instead, so every replica and worker
reports the figures of all hosts; a table no store has created yet reads as nothing.

Approvals waiting are the flow runs in Prefect state
PAUSED (each waits for an answer: an approval, a tool call's approval, a human intervention), counted by the
Prefect API when one is configured (``PREFECT_API_URL``), with a short timeout so a slow server cannot hold a
scrape up; when it cannot be asked, the metric is left out rather than reported as 0.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agentparty.runtime import telemetry_metrics as names
from agentparty.runtime.breakers import BreakerState
from agentparty.runtime.state_backend import StateBackend

logger = logging.getLogger(__name__)

BREAKER_VALUES = {BreakerState.CLOSED.value: 0.0, BreakerState.HALF_OPEN.value: 1.0, BreakerState.OPEN.value: 2.0}
PREFECT_TIMEOUT_S = 2.0
"""Longest a scrape waits for Prefect's count of paused runs."""


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """The query's rows from the SQLite file at ``path`` opened read-only; none when there is no such file."""
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)) as db:
            return db.execute(sql).fetchall()
    except sqlite3.Error as exc:  # a store being created or migrated right now: the next read will see it
        logger.debug("metrics: %s not read: %s", path, exc)
        return []


def _shared_rows(backend: StateBackend, sql: str) -> list[tuple[Any, ...]]:
    """The query's rows from the shared state database; none when its table does not exist yet."""
    try:
        with backend.transaction("metrics") as db:
            return [tuple(row) for row in db.execute(sql).fetchall()]
    except Exception as exc:  # no such table yet (psycopg's UndefinedTable), or the database unreachable
        logger.debug("metrics: shared state not read: %s", exc)
        return []


def approvals_waiting() -> int | None:
    """Flow runs paused for input, from the Prefect API; None when no Prefect API is configured or reachable."""
    from prefect.settings import PREFECT_API_URL  # deferred: the Prefect client loads when a scrape asks

    if not PREFECT_API_URL.value():
        return None
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    try:
        with get_client(sync_client=True, httpx_settings={"timeout": PREFECT_TIMEOUT_S}) as client:
            return int(client.count_flow_runs(flow_run_filter=paused))
    except Exception as exc:  # Prefect down or slow: the figure is unknown, not zero
        logger.debug("metrics: approvals waiting not counted: %s", exc)
        return None


def memory_limit_bytes() -> float:
    """The cgroup's memory limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) when one is set, else the
    machine's physical memory: what ``maxMemoryUsage`` percentages are taken of."""
    machine = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for candidate in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(candidate).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < machine:
            return float(text)
    return machine


class StoreCollector(Collector):
    """The stored figures of one home, read at most once per ``interval_s`` (a Prometheus collector)."""

    def __init__(
        self,
        home: Path,
        interval_s: float,
        *,
        approvals: Callable[[], int | None] = approvals_waiting,
        clock: Callable[[], float] = time.monotonic,
        state: StateBackend | None = None,
    ) -> None:
        self.home = home
        self.state = state if state is not None and state.dialect == "postgresql" else None
        """The shared state database to read, when engine state is on PostgreSQL; else the home's SQLite files."""
        self.interval_s = interval_s
        self.approvals = approvals
        self.clock = clock
        self.reads = 0
        """How many times the stores were read (a test checks the interval holds)."""
        self._cached: list[GaugeMetricFamily] = []
        self._read_at = float("-inf")
        self._lock = threading.Lock()
        self._memory_limit = memory_limit_bytes()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if self.clock() - self._read_at >= self.interval_s:
                self._cached = self._read()
                self._read_at = self.clock()
                self.reads += 1
            families = list(self._cached)
        limit = GaugeMetricFamily(names.MEMORY_LIMIT, "Memory limit of this process's container, else the machine's.")
        limit.add_metric([], self._memory_limit)
        return iter([*families, limit])

    def _query(self, store: str, sql: str) -> list[tuple[Any, ...]]:
        if self.state is not None:
            return _shared_rows(self.state, sql)
        return _rows(self.home / "state" / f"{store}.sqlite", sql)

    def _read(self) -> list[GaugeMetricFamily]:
        families = [*self._outbox(), self._deliveries()]
        breakers = GaugeMetricFamily(
            names.BREAKER_STATE, "Circuit breaker state per target: 0 closed, 1 half-open, 2 open.", labels=["target"]
        )
        for target, value in self._query("breakers", "SELECT target, state FROM breakers"):
            breakers.add_metric([str(target)], BREAKER_VALUES.get(str(value), 0.0))
        families.append(breakers)
        waiting = self.approvals()
        if waiting is not None:
            families.append(
                GaugeMetricFamily(names.APPROVALS_WAITING, "Flow runs paused for an answer.", value=float(waiting))
            )
        return families

    def _outbox(self) -> list[GaugeMetricFamily]:
        rows = self._query("outbox", "SELECT count(*), min(created_at) FROM outbox WHERE delivered_at IS NULL")
        count, oldest = rows[0] if rows else (0, None)
        backlog = GaugeMetricFamily(names.OUTBOX_BACKLOG, "Events in the outbox not yet delivered to the broker.")
        backlog.add_metric([], float(count or 0))
        lag = GaugeMetricFamily(names.RELAY_LAG, "Age of the oldest undelivered event in the outbox (0 when none).")
        lag.add_metric([], max(0.0, time.time() - float(oldest)) if oldest is not None else 0.0)
        return [backlog, lag]

    def _deliveries(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            names.WEBHOOK_DELIVERIES, "Accepted webhook deliveries kept in the store, by status.", labels=["status"]
        )
        found = dict(
            self._query(
                "webhooks",
                "SELECT CASE WHEN flow_run_id IS NOT NULL THEN 'created' WHEN failed_reason IS NOT NULL THEN 'failed'"
                " ELSE 'queued' END AS status, count(*) FROM webhook_deliveries GROUP BY status",
            )
        )
        for status in ("queued", "created", "failed"):
            family.add_metric([status], float(found.get(status, 0)))
        return family
