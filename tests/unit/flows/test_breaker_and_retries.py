"""Circuit breaker transitions (controllable clock), sharing across processes, and retry delays."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from agentparty.flows import CompileOptions, compile_workflow
from agentparty.flows.retries import JITTER_FACTOR, effective_policy, retry_only_retryable
from agentparty.flows.services import run_services
from agentparty.models import CircuitBreakerConfig, ErrorHandlingStrategy, RetryPolicy, WorkflowDefinition
from agentparty.models.config import AgentRuntimeConfig
from agentparty.models.step_errors import CircuitOpenError
from agentparty.runtime.breakers import BreakerState, CircuitBreaker, SqliteBreakerStore
from agentparty.runtime.settings import get_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    tmp_path: Path, threshold: int = 2, recovery: float = 30, half_open: int = 1
) -> tuple[CircuitBreaker, Clock, list[tuple[str, str]]]:
    clock = Clock()
    seen: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        "handler:m:f",
        CircuitBreakerConfig(failure_threshold=threshold, recovery_timeout=recovery, half_open_max_calls=half_open),
        SqliteBreakerStore(tmp_path / "b.sqlite"),
        clock=clock,
        on_transition=lambda target, a, b: seen.append((a.value, b.value)),
    )
    return breaker, clock, seen


def test_closed_to_open_after_consecutive_failures(tmp_path: Path) -> None:
    breaker, _clock, seen = make(tmp_path, threshold=3)
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure()
    breaker.acquire()
    breaker.record_success()  # a success resets the count
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and seen == [("closed", "open")]


def test_open_rejects_until_recovery_then_half_open_admits_trials(tmp_path: Path) -> None:
    breaker, clock, seen = make(tmp_path, threshold=1, recovery=30, half_open=2)
    breaker.record_failure()
    clock.now += 29
    with pytest.raises(CircuitOpenError, match=r"open; next trial call in 1.0s"):
        breaker.acquire()
    clock.now += 1
    breaker.acquire()
    breaker.acquire()
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # only two trial calls
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_half_open_failure_opens_again(tmp_path: Path) -> None:
    breaker, clock, seen = make(tmp_path, threshold=1, recovery=10)
    breaker.record_failure()
    clock.now += 10
    breaker.acquire()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError, match=r"next trial call in 10\.0s"):
        breaker.acquire()
    assert seen[-1] == ("half_open", "open")


def _fail_many(path: str, count: int) -> None:
    breaker = CircuitBreaker(
        "shared", CircuitBreakerConfig(failure_threshold=1000, recovery_timeout=60), SqliteBreakerStore(Path(path))
    )
    for _ in range(count):
        breaker.record_failure()


def test_state_is_shared_by_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    SqliteBreakerStore(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_fail_many, args=(str(path), 150)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    record = SqliteBreakerStore(path).read("shared")
    assert record.consecutive_failures == 300, "concurrent updates from two processes lost increments"
    config = CircuitBreakerConfig(failure_threshold=300, recovery_timeout=60)
    breaker = CircuitBreaker("shared", config, SqliteBreakerStore(path))
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("exponential", [2.0, 4.0, 8.0, 10.0]), ("linear", [2.0, 4.0, 6.0, 8.0]), ("fixed", [2.0, 2.0, 2.0, 2.0])],
)
def test_backoff_delays_are_capped(strategy: str, expected: list[float]) -> None:
    policy = effective_policy(RetryPolicy(max_attempts=5, base_delay=2, max_delay=10, backoff_strategy=strategy), None)
    assert policy.delays() == expected
    options = policy.prefect_options()
    assert options["retries"] == 4 and options["retry_delay_seconds"] == expected
    assert options["retry_jitter_factor"] == JITTER_FACTOR and options["retry_condition_fn"] is retry_only_retryable


def test_step_policy_overrides_workflow_error_handling() -> None:
    workflow = ErrorHandlingStrategy(
        retry_attempts=5, backoff_strategy="linear", base_delay=1, max_delay=3, jitter=False
    )
    assert effective_policy(None, workflow).delays() == [1, 2, 3, 3, 3]
    step = RetryPolicy(max_attempts=2, base_delay=7, max_delay=9, jitter=False)
    policy = effective_policy(step, workflow)
    assert policy.attempts == 2 and policy.delays() == [7] and policy.strategy.value == "linear"
    assert effective_policy(None, None).prefect_options() == {"retries": 0}


def test_agent_steps_without_a_policy_back_off_by_the_runtime_setting() -> None:
    """``AgentRuntimeConfig.retry_backoff_seconds`` is the first delay of an agent step without a retryPolicy,
    unless errorHandling writes its own baseDelay; a step's retryPolicy always wins."""
    workflow = ErrorHandlingStrategy(retry_attempts=3, backoff_strategy="exponential", jitter=False)
    assert effective_policy(None, workflow, agent_backoff=5).delays() == [5, 10, 20]
    assert effective_policy(None, workflow).delays() == [1, 2, 4], "handler steps keep errorHandling's default"
    written = ErrorHandlingStrategy(retry_attempts=2, backoff_strategy="fixed", base_delay=0.5, jitter=False)
    assert effective_policy(None, written, agent_backoff=5).delays() == [0.5, 0.5]
    capped = ErrorHandlingStrategy(retry_attempts=2, backoff_strategy="fixed", max_delay=3, jitter=False)
    assert effective_policy(None, capped, agent_backoff=5).delays() == [3, 3], "a written maxDelay still caps it"
    step = RetryPolicy(max_attempts=2, base_delay=7, max_delay=9, jitter=False)
    assert effective_policy(step, workflow, agent_backoff=5).delays() == [7]


def test_the_compiler_gives_agent_steps_the_runtime_backoff(tmp_path: Path) -> None:

    definition = WorkflowDefinition.model_validate(
        {
            "id": "backoff",
            "name": "Backoff",
            "steps": [
                {"id": "agent", "type": "task", "configuration": {"agent": "writer", "prompt": "hi"}},
                {"id": "handler", "type": "task", "configuration": {"handler": "support.step_handlers:echo"}},
            ],
            "triggers": [{"type": "manual"}],
            "errorHandling": {"retryAttempts": 2, "backoffStrategy": "linear"},
        }
    )
    settings = get_settings().model_copy(
        update={"home": tmp_path, "agent_runtime": AgentRuntimeConfig(retry_backoff_seconds=4)}
    )
    flow = compile_workflow(definition, options=CompileOptions(services=run_services(settings)))
    policies = flow.compiled.policies  # type: ignore[attr-defined]
    assert policies["agent"].delays() == [4, 8] and policies["handler"].delays() == [1, 2]
