"""Requests and tokens per minute per model, shared by every step, run and worker.

Each limit is a Prefect global concurrency limit with slot decay (Prefect's
own rate limiting, ``prefect.concurrency.asyncio.rate_limit``), kept on the
Prefect server, so all processes that use the same server draw on the same
allowance. Without a configured server (``PREFECT_API_URL`` unset) Prefect runs
an ephemeral one inside the process, and the limits then hold within that
process only.

Per model (``AgentRuntimeConfig.models[NAME]``): ``requestsPerMinute`` with
``burstLimit`` calls at once before pacing starts (default: a tenth of a
minute's allowance), and ``tokensPerMinute`` charged with each call's token
estimate. ``penaltyStrategy`` says what a call does when the allowance is spent
(seed 002 ``RateLimitConfig``):

- ``queue`` waits for the allowance (bursts up to ``burstLimit``, then the sustained rate);
- ``throttle`` spaces every call evenly at the sustained rate (no bursts);
- ``reject`` fails the call at once with a retryable ``RateLimited`` whose
  ``retry_after`` is the time one request's allowance takes to come back, so
  the step's retries try again later.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from prefect.client.orchestration import get_client
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError, aacquire_concurrency_slots
from prefect.concurrency.asyncio import rate_limit
from prefect.exceptions import ObjectAlreadyExists

from agentparty.models.step_errors import RateLimited
from agentparty.runtime.telemetry_metrics import record_rate_limit_wait

logger = logging.getLogger("agentparty.rate_limits")

PenaltyStrategy = Literal["reject", "queue", "throttle"]


@dataclass(frozen=True)
class ModelRateLimit:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    burst_limit: int | None = None
    penalty_strategy: PenaltyStrategy = "queue"
    provider: str = ""
    """The provider named with the limit (``agentparty_rate_limit_waits_total`` is counted per provider)."""

    def request_slots(self) -> int:
        if self.penalty_strategy == "throttle":
            return 1
        assert self.requests_per_minute is not None
        return self.burst_limit or max(1, self.requests_per_minute // 10)


def _limit_name(kind: str, model: str) -> str:
    return f"agentparty-{kind}-" + re.sub(r"[^A-Za-z0-9._-]+", "-", model)


@dataclass
class PrefectRateLimiter:
    limits: Mapping[str, ModelRateLimit]
    _ready: set[str] = field(default_factory=set)
    _lock: asyncio.Lock | None = None
    _lock_loop: asyncio.AbstractEventLoop | None = None

    async def _ensure(self, model: str, limit: ModelRateLimit) -> None:
        """Create or update the model's limits on the server once per process."""
        if model in self._ready:
            return
        loop = asyncio.get_running_loop()
        if self._lock is None or loop is not self._lock_loop:  # a lock belongs to one event loop
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            if model in self._ready:
                return

            async with get_client() as client:
                if limit.requests_per_minute:
                    await _upsert(
                        client, _limit_name("rpm", model), limit.request_slots(), limit.requests_per_minute / 60
                    )
                if limit.tokens_per_minute:
                    await _upsert(
                        client, _limit_name("tpm", model), limit.tokens_per_minute, limit.tokens_per_minute / 60
                    )
            self._ready.add(model)

    async def acquire(self, model: str, tokens: int) -> None:
        """Wait for (or, with ``reject``, demand) one request's and ``tokens`` tokens' allowance."""
        limit = self.limits.get(model)
        if limit is None or not (limit.requests_per_minute or limit.tokens_per_minute):
            return

        await self._ensure(model, limit)
        wanted: list[tuple[str, int, int]] = []
        if limit.requests_per_minute:
            wanted.append((_limit_name("rpm", model), 1, limit.requests_per_minute))
        if limit.tokens_per_minute:
            wanted.append((_limit_name("tpm", model), min(tokens, limit.tokens_per_minute), limit.tokens_per_minute))
        for name, occupy, per_minute in wanted:
            if limit.penalty_strategy != "reject":
                await _take_or_wait(model, limit, name, occupy, per_minute)
                continue
            await _take_or_refuse(model, limit, name, occupy, per_minute)


async def _take_or_wait(model: str, limit: ModelRateLimit, name: str, occupy: int, per_minute: int) -> None:
    """Take the allowance if the server has it now (one request, as before); else count a wait and wait for it."""
    try:
        await _take_or_refuse(model, limit, name, occupy, per_minute)
    except RateLimited:
        record_rate_limit_wait(limit.provider or model)
        await rate_limit(name, occupy=occupy, strict=True)


async def _take_or_refuse(model: str, limit: ModelRateLimit, name: str, occupy: int, per_minute: int) -> None:
    """Take the allowance if the server has it now; else a retryable RateLimited (one try, no waiting)."""

    try:
        await aacquire_concurrency_slots([name], occupy, mode="rate_limit", max_retries=0, strict=True)
    except ConcurrencySlotAcquisitionError as exc:
        cause = exc.__cause__
        if not (isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423):
            raise
        header = cause.response.headers.get("Retry-After")
        retry_after = float(header) if header else occupy * 60 / per_minute
        raise RateLimited(
            f"{model}: rate limit reached ({limit.requests_per_minute or '-'} requests/min, "
            f"{limit.tokens_per_minute or '-'} tokens/min; strategy reject)",
            retry_after,
        ) from None


async def _upsert(client: Any, name: str, limit: int, decay: float) -> None:
    """Create or update one limit; another process creating it at the same moment is not an error."""

    try:
        await client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay_per_second=decay)
    except ObjectAlreadyExists:
        await client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay_per_second=decay)


def limits_from_runtime(models: Mapping[str, object]) -> dict[str, ModelRateLimit]:
    """The rate limits configured in ``AgentRuntimeConfig.models``."""
    found: dict[str, ModelRateLimit] = {}
    for name, settings in models.items():
        rpm = getattr(settings, "requests_per_minute", None)
        tpm = getattr(settings, "tokens_per_minute", None)
        if rpm or tpm:
            found[name] = ModelRateLimit(
                requests_per_minute=rpm,
                tokens_per_minute=tpm,
                burst_limit=getattr(settings, "burst_limit", None),
                penalty_strategy=getattr(settings, "penalty_strategy", "queue"),
                provider=str(getattr(settings, "provider", "") or ""),
            )
    return found
