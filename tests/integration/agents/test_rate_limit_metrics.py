"""Rate-limit waits are counted per provider when a call finds the allowance spent on the Prefect server."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from prometheus_client import REGISTRY

from agentparty.models.sdk_config import MetricsConfig
from agentparty.runtime import telemetry_metrics as tm
from agentparty.runtime.rate_limits import ModelRateLimit, PrefectRateLimiter

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_a_call_that_finds_the_allowance_spent_waits_and_is_counted() -> None:
    """One request a second, no burst: the second call right after the first must wait about a second."""
    tm.configure(MetricsConfig())
    provider, model = f"prov-{uuid.uuid4().hex[:6]}", f"sim-{uuid.uuid4().hex[:8]}"
    limiter = PrefectRateLimiter(
        {model: ModelRateLimit(requests_per_minute=60, burst_limit=1, penalty_strategy="queue", provider=provider)}
    )

    async def two_calls() -> float:
        await limiter.acquire(model, 10)
        started = time.perf_counter()
        await limiter.acquire(model, 10)
        return time.perf_counter() - started

    waited = asyncio.run(two_calls())
    assert waited >= 0.5, waited
    assert REGISTRY.get_sample_value("agentparty_rate_limit_waits_total", {"provider": provider}) == 1
