"""API replicas share their rate-limit buckets through the state backend (``runtime/rate_buckets.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentparty.api.rate_limit import RateLimited, RateLimiter
from agentparty.models.sdk_config import RateLimitConfig
from agentparty.runtime.rate_buckets import SharedBuckets
from agentparty.runtime.state_backend import PostgresBackend, SqliteBackend, StateBackend


def _replica_backend(backend: StateBackend) -> StateBackend:
    """The same store through a backend of its own (another replica's pool or connection)."""
    if isinstance(backend, PostgresBackend):
        return PostgresBackend(backend.url)
    assert isinstance(backend, SqliteBackend)
    return SqliteBackend(Path(backend.folder))


def _config(strategy: str, burst: int) -> RateLimitConfig:
    return RateLimitConfig.model_validate(
        {"enabled": True, "requestsPerMinute": 1, "burstLimit": burst, "penaltyStrategy": strategy}
    )


async def _admitted(limiters: list[RateLimiter], caller: str, tries: int) -> int:
    admitted = 0
    for i in range(tries):
        try:
            await limiters[i % len(limiters)].admit(caller)
            admitted += 1
        except RateLimited:
            pass
    return admitted


def test_two_replicas_admit_one_burst_between_them(state_backend: StateBackend) -> None:
    config = _config("reject", burst=5)
    replicas = [RateLimiter(config, shared=SharedBuckets(b)) for b in (state_backend, _replica_backend(state_backend))]
    assert asyncio.run(_admitted(replicas, "key:alice", 20)) == 5
    assert asyncio.run(_admitted(replicas, "key:bob", 4)) == 4  # buckets are per caller


def test_a_refused_request_names_the_limit_and_when_to_retry(state_backend: StateBackend) -> None:
    limiter = RateLimiter(_config("reject", burst=1), shared=SharedBuckets(state_backend))
    asyncio.run(limiter.admit("key:carol"))
    with pytest.raises(RateLimited) as refused:
        asyncio.run(limiter.admit("key:carol"))
    assert refused.value.headers is not None and int(refused.value.headers["Retry-After"]) > 50
    assert "1 requests per minute" in str(refused.value.detail)


def test_queued_requests_are_counted_across_replicas(state_backend: StateBackend) -> None:
    """``queue`` holds at most ``burstLimit`` waiters per caller, whichever replica holds them."""
    config = _config("queue", burst=2)
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        await asyncio.sleep(0.5)  # held while the other replica is asked

    replicas = [
        RateLimiter(config, shared=SharedBuckets(b), sleep=sleep)
        for b in (state_backend, _replica_backend(state_backend))
    ]

    async def burst() -> list[BaseException | None]:
        await replicas[0].admit("key:dan")
        await replicas[1].admit("key:dan")  # the burst is spent
        held = [asyncio.create_task(replicas[i % 2].admit("key:dan")) for i in range(2)]
        await asyncio.sleep(0.2)
        refused: BaseException | None = None
        try:
            await replicas[0].admit("key:dan")  # a third waiter: over the queue's limit
        except RateLimited as exc:
            refused = exc
        return [*(await asyncio.gather(*held, return_exceptions=True)), refused]

    first, second, third = asyncio.run(burst())
    assert first is None and second is None
    assert isinstance(third, RateLimited) and "2 requests already queued" in str(third.detail)
    assert len(waited) == 2
