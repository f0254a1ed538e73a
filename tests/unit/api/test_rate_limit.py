"""Token buckets per key (seed 002 RateLimitConfig): reject, queue and throttle, on an injected clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api_support import access_config, auth

from agentparty.api.rate_limit import RateLimited, RateLimiter
from agentparty.models.sdk_config import RateLimitConfig


class FakeTime:
    """A clock the test moves; ``sleep`` records the delay and lets time pass by exactly that much for that waiter."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.delays: list[float] = []
        self.release = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.delays.append(round(delay, 6))
        await self.release.wait()


def limiter(strategy: str, rpm: int = 60, burst: int = 3, **kwargs: Any) -> tuple[RateLimiter, FakeTime]:
    fake = FakeTime()
    config = RateLimitConfig(requests_per_minute=rpm, burst_limit=burst, penalty_strategy=strategy)  # type: ignore[arg-type]
    return RateLimiter(config, clock=fake.clock, sleep=fake.sleep, **kwargs), fake


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_reject_admits_the_burst_then_429_with_retry_after() -> None:
    async def scenario() -> None:
        rl, fake = limiter("reject", rpm=60, burst=3)
        for _ in range(3):
            await rl.admit("k")
        with pytest.raises(RateLimited) as refused:
            await rl.admit("k")
        assert refused.value.status_code == 429 and refused.value.headers == {"Retry-After": "1"}
        await rl.admit("other")  # buckets are per caller
        fake.now += 1.0  # one token refilled at 1/s
        await rl.admit("k")
        with pytest.raises(RateLimited):
            await rl.admit("k")
        fake.now += 100.0  # refill stops at the burst size
        for _ in range(3):
            await rl.admit("k")
        with pytest.raises(RateLimited):
            await rl.admit("k")

    asyncio.run(scenario())


def test_queue_waits_in_arrival_order_and_bounds_the_queue_at_the_burst() -> None:
    async def scenario() -> None:
        rl, fake = limiter("queue", rpm=60, burst=3)
        for _ in range(3):
            await rl.admit("k")
        admitted: list[int] = []

        async def request(i: int) -> None:
            await rl.admit("k")
            admitted.append(i)

        waiters = [asyncio.create_task(request(i)) for i in range(3)]
        await _settle()
        assert rl.waiting("k") == 3 and fake.delays == [1.0, 2.0, 3.0]  # one token a second, first come first served
        with pytest.raises(RateLimited) as refused:
            await rl.admit("k")
        assert "queued" in refused.value.detail
        fake.release.set()
        await asyncio.gather(*waiters)
        assert admitted == [0, 1, 2] and rl.waiting("k") == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_gives_its_token_back() -> None:
    async def scenario() -> None:
        rl, fake = limiter("queue", rpm=60, burst=1)
        await rl.admit("k")
        waiter = asyncio.create_task(rl.admit("k"))
        await _settle()
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        fake.now += 1.0
        await rl.admit("k")  # the refilled token is there: the cancelled waiter did not keep it

    asyncio.run(scenario())


def test_throttle_spaces_requests_at_the_sustained_rate_and_caps_the_delay() -> None:
    async def scenario() -> None:
        rl, fake = limiter("throttle", rpm=120, burst=2, max_delay_s=2.0)
        await rl.admit("k")
        await rl.admit("k")
        tasks = [asyncio.create_task(rl.admit("k")) for _ in range(4)]  # 0.5 s apart: 0.5, 1.0, 1.5, 2.0
        await _settle()
        assert fake.delays == [0.5, 1.0, 1.5, 2.0]
        with pytest.raises(RateLimited) as refused:
            await rl.admit("k")  # would wait 2.5 s > 2 s
        assert refused.value.headers == {"Retry-After": "1"}
        fake.release.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_disabled_limits_nothing() -> None:
    async def scenario() -> None:
        rl = RateLimiter(RateLimitConfig(enabled=False, requests_per_minute=1, burst_limit=1))
        for _ in range(100):
            await rl.admit("k")

    asyncio.run(scenario())


def test_api_keys_are_limited_per_key_over_http(make_app: Any) -> None:
    config = access_config(
        rate_limiting={"enabled": True, "requestsPerMinute": 1, "burstLimit": 2, "penaltyStrategy": "reject"}
    )
    client = TestClient(make_app(config))
    codes = [client.get("/templates", headers=auth("viewer")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = client.get("/templates", headers=auth("viewer"))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert client.get("/templates", headers=auth("admin")).status_code == 200  # another key, another bucket


def test_queued_requests_over_http_are_served_in_turn(make_app: Any) -> None:
    """Queue strategy through the app: the third request waits for its token instead of failing."""
    config = access_config(
        rate_limiting={"enabled": True, "requestsPerMinute": 600, "burstLimit": 2, "penaltyStrategy": "queue"}
    )
    client = TestClient(make_app(config))
    codes = [client.get("/templates", headers=auth("viewer")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 200]  # 10 tokens a second: the waits are 0.1 s each
