"""Per-agent performance figures (seed 002 ``PerformanceMetrics``) and cost, kept as calls finish.

Kept in the process; the graph store persists them with the agent (graph
issue). Each record also feeds the agent's gauges
(``agentparty_agent_response_time_seconds``, ``agentparty_agent_meets_realtime_objective``:
``meets_realtime_objective`` checked against ``monitoring.performanceThresholds.maxResponseTime``,
``runtime/telemetry_metrics.py``), which the generated alerting rules watch; an agent that stops
meeting the objective is also logged (info) once, when it happens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agentparty.models.agent import PerformanceMetrics
from agentparty.runtime.telemetry_metrics import record_agent_performance

logger = logging.getLogger("agentparty.agents")


@dataclass
class _Tally:
    first_seen: float
    calls: int = 0
    errors: int = 0
    tokens: int = 0
    total_response_ms: float = 0.0
    cost: float = 0.0
    meets_objective: bool = True


@dataclass
class AgentMetricsBook:
    clock: Callable[[], float] = time.time
    _tallies: dict[str, _Tally] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, agent_id: str, *, response_ms: float, tokens: int = 0, cost: float = 0.0, ok: bool = True) -> None:
        with self._lock:
            tally = self._tallies.setdefault(agent_id, _Tally(first_seen=self.clock()))
            tally.calls += 1
            tally.errors += 0 if ok else 1
            tally.tokens += tokens
            tally.cost += cost
            tally.total_response_ms += response_ms
            meets = record_agent_performance(agent_id, self._metrics(tally))
            was, tally.meets_objective = tally.meets_objective, meets
        if was and not meets:
            logger.info("agent %s: mean response time over the real-time objective", agent_id)

    def metrics(self, agent_id: str) -> PerformanceMetrics:
        """``responseTime`` is the mean in ms over all calls; ``uptime`` is seconds since the agent's first call."""
        with self._lock:
            tally = self._tallies.get(agent_id)
            return PerformanceMetrics() if tally is None else self._metrics(tally)

    def _metrics(self, tally: _Tally) -> PerformanceMetrics:
        return PerformanceMetrics(
            response_time=tally.total_response_ms / tally.calls,
            tokens_used=tally.tokens,
            requests_completed=tally.calls - tally.errors,
            error_rate=tally.errors / tally.calls,
            uptime=max(0.0, self.clock() - tally.first_seen),
        )

    def cost(self, agent_id: str) -> float:
        with self._lock:
            tally = self._tallies.get(agent_id)
            return tally.cost if tally else 0.0
