"""Map a step's retry policy onto Prefect's own task retries.

The effective policy is the step's ``retryPolicy`` when it has one, else the
workflow's ``errorHandling``. An agent step without a ``retryPolicy`` of its own
waits ``AgentRuntimeConfig.retry_backoff_seconds`` before its first retry unless
``errorHandling`` writes a ``baseDelay`` (how many attempts it gets is still the
workflow's to say). Delays are computed here (Prefect takes a list),
jitter is Prefect's ``retry_jitter_factor``, and ``retry_condition_fn`` refuses
to retry :class:`~agentparty.models.step_errors.NonRetryableError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentparty.models import BackoffStrategy, ErrorHandlingStrategy, RetryPolicy
from agentparty.models.step_errors import is_retryable

JITTER_FACTOR = 0.5
"""With ``jitter: true`` each delay may grow by up to half (Prefect's clamped Poisson jitter)."""


@dataclass(frozen=True)
class EffectivePolicy:
    attempts: int
    """Total attempts including the first."""
    strategy: BackoffStrategy
    base_delay: float
    max_delay: float
    jitter: bool

    @property
    def retries(self) -> int:
        return self.attempts - 1

    def delays(self) -> list[float]:
        """Seconds to wait before retry 1, 2, …, each capped at ``max_delay``."""
        out = []
        for n in range(1, self.attempts):
            if self.strategy is BackoffStrategy.EXPONENTIAL:
                delay = self.base_delay * 2 ** (n - 1)
            elif self.strategy is BackoffStrategy.LINEAR:
                delay = self.base_delay * n
            else:
                delay = self.base_delay
            out.append(min(delay, self.max_delay))
        return out

    def prefect_options(self) -> dict[str, Any]:
        if self.retries == 0:
            return {"retries": 0}
        return {
            "retries": self.retries,
            "retry_delay_seconds": self.delays(),
            "retry_jitter_factor": JITTER_FACTOR if self.jitter else None,
            "retry_condition_fn": retry_only_retryable,
        }


def effective_policy(
    step_policy: RetryPolicy | None, workflow: ErrorHandlingStrategy | None, agent_backoff: float | None = None
) -> EffectivePolicy:
    """The policy a step runs under; ``agent_backoff`` is the runtime's base delay for an agent step."""
    written = workflow.model_fields_set if workflow is not None else set()
    if step_policy is None and workflow is not None and agent_backoff is not None and "base_delay" not in written:
        update: dict[str, float] = {"base_delay": agent_backoff}
        if "max_delay" not in written:
            update["max_delay"] = max(workflow.max_delay, agent_backoff)
        workflow = workflow.model_copy(update=update)
    default_strategy = workflow.backoff_strategy if workflow else BackoffStrategy.EXPONENTIAL
    if step_policy is not None:
        return EffectivePolicy(
            attempts=step_policy.max_attempts,
            strategy=step_policy.backoff_strategy or default_strategy,
            base_delay=step_policy.base_delay,
            max_delay=step_policy.max_delay,
            jitter=step_policy.jitter,
        )
    if workflow is not None:
        return EffectivePolicy(
            attempts=workflow.retry_attempts + 1,
            strategy=workflow.backoff_strategy,
            base_delay=workflow.base_delay,
            max_delay=workflow.max_delay,
            jitter=workflow.jitter,
        )
    return EffectivePolicy(attempts=1, strategy=BackoffStrategy.FIXED, base_delay=0.0, max_delay=0.0, jitter=False)


async def retry_only_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry unless the failure is permanent."""
    exc = state.data if isinstance(state.data, BaseException) else await state.aresult(raise_on_failure=False)
    return not isinstance(exc, BaseException) or is_retryable(exc)
