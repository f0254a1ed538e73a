"""The model registry at run time: fallback chain, breakers, per-model concurrency, budgets and cost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from agentparty.models import CircuitBreakerConfig, ModelRegistry
from agentparty.models.messages import UserMessage
from agentparty.models.step_errors import BudgetExceeded, ModelUnavailable, ProviderUnavailable
from agentparty.runtime.breakers import SqliteBreakerStore
from agentparty.runtime.budgets import Budget, BudgetLedger
from agentparty.runtime.model_router import ModelRouter, detect_credentials
from agentparty.runtime.providers.base import CompletionRequest
from agentparty.runtime.providers.simulated import SimulatedProvider, SimulatedSettings


def registry(default: str = "gpt-4o", chain: list[str] | None = None, concurrency: int = 8) -> ModelRegistry:
    def model(name: str, provider: str, price: float = 0.0) -> dict[str, Any]:
        return {
            "provider": provider,
            "capabilities": {"maxTokens": 8000, "maxConcurrency": concurrency},
            "pricing": {"inputPerMillion": price, "outputPerMillion": 2 * price},
        }

    return ModelRegistry.model_validate(
        {
            "defaultModel": default,
            "availableModels": {
                "gpt-4o": model("gpt-4o", "openai", 2.5),
                "sim-a": model("sim-a", "simulated", 1.0),
                "sim-b": model("sim-b", "simulated", 3.0),
            },
            "fallbackChain": chain if chain is not None else ["sim-a", "sim-b"],
        }
    )


def router(tmp_path: Path, reg: ModelRegistry, sim: SimulatedProvider | None = None, **kw: Any) -> ModelRouter:
    return ModelRouter(
        registry=reg,
        providers={"simulated": sim or SimulatedProvider()},
        breaker_store=SqliteBreakerStore(tmp_path / "breakers.sqlite"),
        ledger=BudgetLedger(tmp_path / "budgets.sqlite"),
        **kw,
    )


def request(text: str = "hello") -> CompletionRequest:
    return CompletionRequest(model="", messages=(UserMessage(content=text, user_id="u", session_id="s"),))


def test_model_without_key_falls_back_and_records_who_answered(tmp_path: Path) -> None:
    routed = asyncio.run(router(tmp_path, registry()).complete(request()))
    assert routed.model == "sim-a" and routed.requested_model == "gpt-4o" and routed.fell_back
    assert "no API key configured for provider 'openai'" in routed.skipped[0].error
    assert routed.cost == pytest.approx(
        (routed.completion.input_tokens * 1.0 + routed.completion.output_tokens * 2.0) / 1e6
    )


def test_open_circuit_hands_over_to_the_next_model(tmp_path: Path) -> None:
    r = router(tmp_path, registry(default="sim-a"))
    breaker = r._breaker("sim-a")
    assert breaker is not None
    for _ in range(r.breaker_config.failure_threshold):
        breaker.record_failure()
    routed = asyncio.run(r.complete(request()))
    assert routed.model == "sim-b" and "circuit" in routed.skipped[0].error


def test_transient_failures_go_to_the_step_retries_then_open_the_breaker(tmp_path: Path) -> None:
    failing = SimulatedProvider(SimulatedSettings(failure_rate=1.0))
    r = router(
        tmp_path,
        registry(default="sim-a", chain=[]),
        failing,
        breaker_config=CircuitBreakerConfig(failure_threshold=2, recovery_timeout=60),
    )
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            asyncio.run(r.complete(request()))
    with pytest.raises(ModelUnavailable, match="no model in the chain"):
        asyncio.run(r.complete(request()))


def test_max_concurrency_per_model_is_enforced(tmp_path: Path) -> None:
    r = router(tmp_path, registry(default="sim-a", concurrency=2), SimulatedProvider(SimulatedSettings(latency_ms=100)))

    async def six() -> None:
        await asyncio.gather(*(r.complete(request(f"q{i}")) for i in range(6)))

    started = time.perf_counter()
    asyncio.run(six())
    assert time.perf_counter() - started >= 0.3  # three waves of two


def test_budget_refuses_before_the_call_is_made(tmp_path: Path) -> None:
    sim = SimulatedProvider()
    r = router(tmp_path, registry(default="sim-a"), sim)
    task = Budget("task", "run-1", 700)
    routed = asyncio.run(r.complete(request("x" * 400), budgets=[task]))
    assert r.ledger is not None and r.ledger.usage(task).used == routed.completion.tokens
    calls = sum(sim._calls.values())
    with pytest.raises(BudgetExceeded, match=r"task budget 'run-1'.*limit 700"):
        asyncio.run(r.complete(request("y" * 400), budgets=[task]))
    assert sum(sim._calls.values()) == calls, "a refused call must not reach the provider"


def test_auto_detection_offers_only_configured_providers(tmp_path: Path) -> None:
    assert router(tmp_path, registry()).available_models() == ["sim-a", "sim-b"]


def test_credentials_from_environment_and_openai_compatible_base_url() -> None:
    found = detect_credentials(
        environ={"ANTHROPIC_API_KEY": "sk-ant-x", "OPENAI_BASE_URL": "http://localhost:11434/v1", "GEMINI_API_KEY": "g"}
    )
    assert found["anthropic"].api_key is not None and found["anthropic"].api_key.get_secret_value() == "sk-ant-x"
    assert found["openai"].api_key is None and found["openai"].base_url == "http://localhost:11434/v1"
    assert found["google"].api_key is not None and found["google"].api_key.get_secret_value() == "g"
    assert detect_credentials(environ={}) == {}
