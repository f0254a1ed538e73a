"""Errors a step can end with, split by whether another attempt could help.

The error taxonomy lives with the data models so that every layer can raise and
classify these. The retry condition (``agentparty.flows.retries``) retries everything except a
:class:`NonRetryableError`: a bad definition or output, refused credentials, an
exhausted budget or an open circuit give the same answer on every attempt.
"""

from __future__ import annotations


class StepError(Exception):
    """Base of the engine's step failures; ``attempts`` is filled in by the step runner.

    Pure data: API keys a provider echoes back are redacted where provider calls are made
    (``agentparty.runtime.secrets.redact_exception``, applied by the model router).
    """

    attempts: int = 0


class RetryableError(StepError):
    """Transient: rate limits, 5xx, timeouts, dropped connections."""


class NonRetryableError(StepError):
    """Permanent for this call: retrying would fail the same way."""


class StepValidationError(NonRetryableError):
    """Inputs or outputs that do not fit the step's declared schema."""


class AuthenticationError(NonRetryableError):
    """Credentials were refused (401/403)."""

    try_next_model = True


class RateLimited(RetryableError):
    """HTTP 429: retried after at least ``retry_after`` seconds when the provider said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ProviderUnavailable(RetryableError):
    """5xx, 408, a timeout or a dropped connection."""


class InvalidModelOutput(RetryableError):
    """The model's structured output does not parse or does not match the schema: another sample may."""


class ModelUnavailable(NonRetryableError):
    """This model cannot answer at all (unknown to its provider, no key configured): the next model may."""

    try_next_model = True


class ProviderRequestError(NonRetryableError):
    """The provider refused the request itself (400/422): the same request fails on every attempt."""


class ContentPolicyViolation(NonRetryableError):
    """The provider refused the content (safety or content-policy filter)."""


class BudgetExceeded(NonRetryableError):
    """A token budget would be or was exceeded; the message names the budget, its limit and usage."""


class LoopLimitExceeded(NonRetryableError):
    """An agent's loop reached a limit (turns, tool calls, tool errors in a row) before a final answer; the message
    names the limit and what was used."""


class ContextWindowExceeded(NonRetryableError):
    """An agent's conversation cannot fit its model's context window even after trimming or summarising what it
    may drop; the message says how many tokens it needed and how many the model allows."""


class CircuitOpenError(NonRetryableError):
    """The target's circuit breaker is open: fail fast instead of calling it."""

    try_next_model = True

    def __init__(self, target: str, retry_in: float) -> None:
        self.target = target
        self.retry_in = retry_in
        super().__init__(f"circuit for {target!r} is open; next trial call in {retry_in:.1f}s")


class TemplateError(NonRetryableError):
    """A template or version that does not exist or cannot be used as asked."""


class ToolsRefused(TemplateError):
    """A template this server's configuration refuses: tool code off the allowlist, tools for a model without
    functions, a prompt template it does not define.

    ``problems`` are ``(where, why)``: where in the template request (``("tools", 0)``), and the reason.
    """

    def __init__(self, template: str, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.problems = problems
        super().__init__(f"template {template!r} refused: " + "; ".join(why for _, why in problems))


class SubgraphDepthExceeded(NonRetryableError):
    """Subgraphs nested deeper than the limit (a guard against recursive workflows)."""


class HandlerImportError(NonRetryableError):
    """A ``handler`` that cannot be imported or is not callable."""


class RunInputError(NonRetryableError):
    """Run inputs that do not match the definition's ``inputs`` schema."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid run inputs: " + "; ".join(problems))


class ResumeRefused(NonRetryableError):
    """A run resumed under a definition version its first attempt's version is not compatible with."""


def is_retryable(exc: BaseException) -> bool:
    return not isinstance(exc, NonRetryableError)


def tries_next_model(exc: BaseException) -> bool:
    """Whether a model's fallback chain should move on: the failure is about this model, not the request."""
    return bool(getattr(exc, "try_next_model", False))
