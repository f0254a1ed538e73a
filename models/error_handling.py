"""How a workflow handles a failing step: retries, backoff, the circuit breaker, the fallback action.

Seed 002's ``errorHandling`` (:class:`ErrorHandlingStrategy`) applies to every step
of a definition; a step's own ``retryPolicy`` (:class:`RetryPolicy`) overrides its
retries. They are their own module because both levels share the enums and the
delay rules, and the flows map them onto Prefect retries (``flows/retries.py``)
without needing the rest of the definition.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from ._base import CamelModel, PositiveStrictInt


class BackoffStrategy(StrEnum):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    FIXED = "fixed"


class FallbackAction(StrEnum):
    ABORT = "abort"
    RETRY = "retry"
    HUMAN_INTERVENTION = "human_intervention"


class RetryPolicy(CamelModel):
    """Per-step retries; overrides the workflow's ``errorHandling`` for that step."""

    max_attempts: Annotated[int, Field(ge=1, le=100)]
    """Total attempts, the first included (``maxAttempts: 1`` means no retry)."""
    base_delay: Annotated[float, Field(ge=0.0)] = 1.0
    """Seconds before the first retry."""
    max_delay: Annotated[float, Field(ge=0.0)] = 60.0
    """Upper bound on any single delay, in seconds."""
    jitter: bool = True
    backoff_strategy: BackoffStrategy | None = None
    """Extension: how delays grow; defaults to the workflow's ``errorHandling.backoffStrategy``."""

    @model_validator(mode="after")
    def _delays_ordered(self) -> RetryPolicy:
        if self.max_delay < self.base_delay:
            raise ValueError(f"maxDelay ({self.max_delay:g}) must not be below baseDelay ({self.base_delay:g})")
        return self


class CircuitBreakerConfig(CamelModel):
    failure_threshold: PositiveStrictInt
    """Consecutive failures that open the circuit."""
    recovery_timeout: Annotated[float, Field(gt=0.0)]
    """Seconds an open circuit rejects calls before admitting trial calls."""
    half_open_max_calls: PositiveStrictInt = 1


class ErrorHandlingStrategy(CamelModel):
    retry_attempts: Annotated[int, Field(ge=0, le=100)]
    """Retries after the first attempt (``retryAttempts: 2`` means up to 3 attempts)."""
    backoff_strategy: BackoffStrategy
    fallback_action: FallbackAction | None = None
    circuit_breaker: CircuitBreakerConfig | None = None
    base_delay: Annotated[float, Field(ge=0.0)] = 1.0
    """Extension: seconds before the first retry."""
    max_delay: Annotated[float, Field(ge=0.0)] = 60.0
    """Extension: cap on any single retry delay, seconds."""
    jitter: bool = True
    """Extension: spread retry delays randomly so concurrent retries do not stampede."""
    human_intervention_timeout: Annotated[float, Field(gt=0.0)] = 3600.0
    """Extension: seconds an operator has to answer a human-intervention pause before the run aborts."""

    @model_validator(mode="after")
    def _delays_ordered(self) -> ErrorHandlingStrategy:
        if self.max_delay < self.base_delay:
            raise ValueError(f"maxDelay ({self.max_delay:g}) must not be below baseDelay ({self.base_delay:g})")
        return self
