"""Per-agent performance figures (seed 002 ``PerformanceMetrics``) and cost, kept as calls finish.

Kept in the process; the graph store persists them with the agent (graph
issue), and monitoring compares ``response_time`` with
``REALTIME_RESPONSE_TIME_MS``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agentparty.models.agent import PerformanceMetrics


@dataclass
class _Tally:
    first_seen: float
    calls: int = 0
    errors: int = 0
    tokens: int = 0
    total_response_ms: float = 0.0
    cost: float = 0.0


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

    def metrics(self, agent_id: str) -> PerformanceMetrics:
        """``responseTime`` is the mean in ms over all calls; ``uptime`` is seconds since the agent's first call."""
        with self._lock:
            tally = self._tallies.get(agent_id)
            if tally is None:
                return PerformanceMetrics()
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
