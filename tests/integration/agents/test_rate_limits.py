"""Per-model rate limits on the Prefect server under 20 concurrent agent steps: queue, throttle, reject."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from support.run_services_support import services

from agentparty.flows import CompileOptions, WorkflowFailed, WorkflowResult, compile_workflow
from agentparty.models import ModelRegistry, WorkflowDefinition
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import BudgetLedger
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.providers.simulated import SimulatedProvider
from agentparty.runtime.rate_limits import ModelRateLimit, PrefectRateLimiter
from agentparty.tasks.agent import ModelAgentRunner

pytestmark = [
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.slow,
]  # each acquisition is a server round trip (~0.1 s)


@dataclass
class RecordingRateLimiter(PrefectRateLimiter):
    """Prefect's limiter, noting the token estimate each call asks for."""

    asked: list[int] = field(default_factory=list)

    async def acquire(self, model: str, tokens: int) -> None:
        self.asked.append(tokens)
        await super().acquire(model, tokens)


def run_twenty(tmp_path: Path, limit: ModelRateLimit, asked: list[int] | None = None) -> tuple[WorkflowResult, float]:
    model = f"sim-{uuid.uuid4().hex[:8]}"  # a limit of its own on the shared test server
    registry = ModelRegistry.model_validate(
        {
            "defaultModel": model,
            "availableModels": {
                model: {"provider": "simulated", "capabilities": {"maxTokens": 8000, "maxConcurrency": 64}}
            },
        }
    )
    router = ModelRouter(
        registry=registry,
        providers={"simulated": SimulatedProvider()},
        breaker_store=SqliteBreakerStore(tmp_path / "breakers.sqlite"),
        ledger=BudgetLedger(tmp_path / "budgets.sqlite"),
        rate_limiter=RecordingRateLimiter({model: limit}, asked=asked if asked is not None else []),
    )
    definition = WorkflowDefinition.model_validate(
        {
            "id": "rate-limited",
            "name": "Rate limited",
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed", "baseDelay": 0},
            "inputs": {"items": {"type": "array", "default": list(range(20))}},
            "steps": [
                {
                    "id": "ask",
                    "type": "parallel",
                    "configuration": {
                        "forEach": "${inputs.items}",
                        "step": {
                            "id": "one",
                            "type": "task",
                            "configuration": {"agent": "asker", "prompt": "Question ${item}"},
                        },
                    },
                }
            ],
        },
        context=None,
    )
    flow = compile_workflow(
        definition, options=CompileOptions(services=services(agent_runner=ModelAgentRunner(router=router)))
    )
    started = time.perf_counter()
    try:
        result = asyncio.run(flow(inputs={}))
    except WorkflowFailed as exc:
        result = exc.result
    return result, time.perf_counter() - started


def statuses(result: WorkflowResult) -> list[str]:
    return [item.status.value for item in result.steps["ask"].items or []]


def test_queue_lets_a_burst_through_then_paces(tmp_path: Path) -> None:
    result, elapsed = run_twenty(
        tmp_path, ModelRateLimit(requests_per_minute=600, burst_limit=5, penalty_strategy="queue")
    )
    assert statuses(result) == ["completed"] * 20
    assert elapsed >= 1.2, f"15 calls beyond the burst at 10/s cannot take {elapsed:.2f}s"


def test_throttle_spaces_every_call(tmp_path: Path) -> None:
    result, elapsed = run_twenty(
        tmp_path, ModelRateLimit(requests_per_minute=1200, burst_limit=10, penalty_strategy="throttle")
    )
    assert statuses(result) == ["completed"] * 20
    assert elapsed >= 0.8, f"20 calls at 20/s without bursts cannot take {elapsed:.2f}s"


def test_reject_fails_calls_beyond_the_allowance_with_a_retryable_error(tmp_path: Path) -> None:
    refused = "agentparty_rate_limit_refusals_total"
    before = REGISTRY.get_sample_value(refused, {"provider": "simulated"}) or 0
    result, _ = run_twenty(tmp_path, ModelRateLimit(requests_per_minute=6, burst_limit=3, penalty_strategy="reject"))
    outcome = statuses(result)
    assert 3 <= outcome.count("completed") <= 5
    failed: list[Any] = [i for i in result.steps["ask"].items or [] if i.status.value == "failed"]
    assert failed and all("RateLimited" in (i.reason or "") and "strategy reject" in (i.reason or "") for i in failed)
    assert (REGISTRY.get_sample_value(refused, {"provider": "simulated"}) or 0) - before == len(failed)


def test_tokens_per_minute_are_charged_with_each_calls_estimate(tmp_path: Path) -> None:
    # each call asks for its estimate (prompt / 4 + 512 expected output, about 550 tokens): three fit in 1,900
    # at once, a fourth only after some 300 tokens have decayed back at 1,900/min (about 9 s)
    asked: list[int] = []
    result, _ = run_twenty(tmp_path, ModelRateLimit(tokens_per_minute=1900, penalty_strategy="reject"), asked)
    assert len(asked) == 20 and 3 * max(asked) <= 1900 < 4 * min(asked), (
        f"estimates {sorted(set(asked))} do not fit the premise"
    )
    outcome = statuses(result)
    assert 3 <= outcome.count("completed") <= 4
    failed = [i for i in result.steps["ask"].items or [] if i.status.value == "failed"]
    assert all("1900 tokens/min" in (i.reason or "") for i in failed)
