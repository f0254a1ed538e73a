"""Per-caller rate limiting (seed 002 ``RateLimitConfig``): one token bucket per API key or webhook.

A bucket holds at most ``burstLimit`` tokens and refills at
``requestsPerMinute / 60`` tokens a second; a request takes one. What happens
to a request that finds the bucket empty is the ``penaltyStrategy``:

- ``reject``: 429 at once, with ``Retry-After`` saying when a token will be there;
- ``queue``: it waits its turn (first come, first served) for a token; at most
  ``burstLimit`` requests wait per caller, the next one gets 429;
- ``throttle``: it is admitted after the delay that spaces requests at the
  sustained rate; a delay longer than ``max_delay_s`` means 429 instead.

Waiting requests reserve their token up front (the bucket goes negative), so
the order they are admitted in is the order they arrived in and no scheduler
task is needed; a waiter that is cancelled (its client went away) hands its
token back. The limiter only runs on the event loop, so it needs no lock, and
its clock and sleep are injectable so tests run deterministic and instant.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import HTTPException, status

from agentparty.models.sdk_config import RateLimitConfig
from agentparty.runtime.rate_buckets import BucketState, SharedBuckets

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

MAX_THROTTLE_DELAY_S = 30.0
"""Beyond this, a throttled request is refused rather than held (clients and proxies time out)."""


class RateLimited(HTTPException):
    """429 Too Many Requests, with the seconds until a retry can succeed in ``Retry-After``."""

    def __init__(self, caller: str, retry_after_s: float, why: str) -> None:
        self.retry_after_s = retry_after_s
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"rate limit exceeded for {caller}: {why}; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


@dataclass
class _Bucket:
    tokens: float
    """May go negative: each waiting request has reserved one token ahead."""
    stamp: float
    waiting: int = 0


@dataclass
class RateLimiter:
    """Token buckets keyed by caller (an API key's name, ``webhook:ID`` for a workflow's webhook)."""

    config: RateLimitConfig
    clock: Clock = time.monotonic
    sleep: Sleep = asyncio.sleep
    max_delay_s: float = MAX_THROTTLE_DELAY_S
    shared: SharedBuckets | None = None
    """Buckets every API replica shares (engine state on PostgreSQL); None: this process's own, in memory."""
    _buckets: dict[str, _Bucket] = field(default_factory=dict, init=False, repr=False)

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.config.requests_per_minute / 60.0

    def _bucket(self, caller: str) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = _Bucket(float(self.config.burst_limit), now)
        else:
            bucket.tokens = min(float(self.config.burst_limit), bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        return bucket

    def _decide(self, caller: str, tokens: float, waiting: int) -> float | None:
        """The wait before ``caller`` may proceed with ``tokens`` in its bucket (None: at once); raises a 429."""
        if tokens >= 1.0:
            return None
        delay = (1.0 - tokens) / self.rate
        strategy = self.config.penalty_strategy
        if strategy == "reject":
            raise RateLimited(caller, delay, f"{self.config.requests_per_minute} requests per minute")
        if strategy == "queue" and waiting >= self.config.burst_limit:
            raise RateLimited(caller, delay, f"{waiting} requests already queued (at most {self.config.burst_limit})")
        if strategy == "throttle" and delay > self.max_delay_s:
            raise RateLimited(
                caller, delay - self.max_delay_s, f"a throttle delay of {delay:.1f} s exceeds {self.max_delay_s:.0f} s"
            )
        return delay

    async def admit(self, caller: str) -> None:
        """Return when ``caller`` may proceed; raise :class:`RateLimited` (a 429) when it may not."""
        if not self.config.enabled:
            return
        if self.shared is not None:
            await self._admit_shared(caller, self.shared)
            return
        bucket = self._bucket(caller)
        delay = self._decide(caller, bucket.tokens, bucket.waiting)
        bucket.tokens -= 1.0
        if delay is None:
            return
        bucket.waiting += 1
        try:
            await self.sleep(delay)
        except BaseException:
            bucket.tokens += 1.0  # cancelled while waiting: the reserved token goes back
            raise
        finally:
            bucket.waiting -= 1

    async def _admit_shared(self, caller: str, shared: SharedBuckets) -> None:
        """The same decision on the bucket every replica shares (``runtime/rate_buckets.py``)."""
        capacity = float(self.config.burst_limit)

        def take(state: BucketState) -> tuple[BucketState, float | None]:
            delay = self._decide(caller, state.tokens, state.waiting)  # a 429 leaves the row as it was
            return BucketState(state.tokens - 1.0, state.waiting + (delay is not None)), delay

        def settle(tokens_back: float) -> Callable[[BucketState], tuple[BucketState, None]]:
            return lambda state: (BucketState(state.tokens + tokens_back, max(0, state.waiting - 1)), None)

        delay = await asyncio.to_thread(shared.update, caller, capacity, self.rate, take)
        if delay is None:
            return
        try:
            await self.sleep(delay)
        except BaseException:
            # cancelled while waiting: the reserved token goes back (shielded: the row must not stay reserved)
            await asyncio.shield(asyncio.to_thread(shared.update, caller, capacity, self.rate, settle(1.0)))
            raise
        await asyncio.to_thread(shared.update, caller, capacity, self.rate, settle(0.0))

    def waiting(self, caller: str) -> int:
        """Requests of ``caller`` held right now (queued or throttled) by this process."""
        bucket = self._buckets.get(caller)
        return bucket.waiting if bucket else 0
