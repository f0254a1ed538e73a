"""The model registry at run time: which models can answer, in what order, how many at once, at what cost.

For a call that asks for a model (or the registry's default), the router walks
the chain ``[requested] + fallbackChain``. A model is skipped when its provider
has no key configured or its circuit breaker is open; a model whose call fails
for reasons about *that model* (refused key, unknown model, open circuit) hands
over to the next one. Transient failures (429, 5xx, timeouts) are raised to the
step, whose Prefect retries try again (one retry loop, ours), and they count
towards the model's breaker, so a model that keeps failing is skipped.

Providers are known by name (``authentication.providers``, with credentials from
:mod:`agentparty.runtime.provider_auth`), or by type when found in the environment;
``routes`` says which provider serves a model (:func:`provider_routes`).

Per model, at most ``capabilities.maxConcurrency`` calls are in flight in this
process. Budgets are reserved before a call and settled from its usage
(:mod:`agentparty.runtime.budgets`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentparty.models import CircuitBreakerConfig, ModelRegistry, SDKConfiguration
from agentparty.models.model_registry import ModelInfo
from agentparty.models.sdk_config import ConnectionPoolConfig
from agentparty.models.step_errors import (
    BudgetExceeded,
    CircuitOpenError,
    ContentPolicyViolation,
    ModelUnavailable,
    ProviderRequestError,
    RateLimited,
    StepError,
    tries_next_model,
)
from agentparty.runtime.audit_trail import AuditTrail, open_audit_trail
from agentparty.runtime.breakers import BreakerStore, CircuitBreaker, SharedBreakerStore
from agentparty.runtime.budgets import Budget, BudgetLedger, estimate_tokens
from agentparty.runtime.masking import Masker, masker_for
from agentparty.runtime.provider_auth import BASE_URL_ENV, ProviderCredentials, configured_providers
from agentparty.runtime.providers.base import Completion, CompletionRequest, Provider, TextCallback
from agentparty.runtime.providers.simulated import SimulatedProvider
from agentparty.runtime.rate_limits import PrefectRateLimiter, limits_from_runtime
from agentparty.runtime.schema_versions import MigrationPolicy
from agentparty.runtime.secrets import as_secret, redact_exception
from agentparty.runtime.settings import get_settings
from agentparty.runtime.state_backend import resolve_state_backend
from agentparty.runtime.telemetry_metrics import record_model_call, record_model_usage, record_rate_limit_refusal

logger = logging.getLogger("agentparty.llm")

MODEL_BREAKER = CircuitBreakerConfig(failure_threshold=5, recovery_timeout=30.0, half_open_max_calls=1)
"""Default breaker per model: five consecutive failures open it for 30 s."""

_KEY_ENV = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "google": ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
}


def detect_credentials(
    config: SDKConfiguration | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    audit: AuditTrail | None = None,
) -> dict[str, ProviderCredentials]:
    """Providers that can be called, by name: the SDK configuration's providers (their secrets resolved, or
    :class:`ProviderCredentialsError` naming each that cannot be), then the usual environment variables for
    a provider type that no configured provider has (named by the type). ``audit``: where rotating provider
    keys record their first use and refusals.

    An OpenAI-compatible server (Ollama, vLLM) needs only ``OPENAI_BASE_URL`` or an ``endpoint``.
    """
    environ = os.environ if environ is None else environ
    found = configured_providers(config.authentication, environ, clock, audit) if config else {}
    configured_types = {c.provider for c in found.values()}
    for provider, names in _KEY_ENV.items():
        if provider in configured_types or provider in found:
            continue
        key = next((environ[n] for n in names if environ.get(n)), None)
        base_url = environ.get(BASE_URL_ENV[provider]) or None
        if key or base_url:
            found[provider] = ProviderCredentials(provider, as_secret(key), base_url, provider)
    return found


def provider_routes(registry: ModelRegistry, config: SDKConfiguration | None) -> dict[str, str]:
    """Model name → the configured provider that serves it: a provider that lists the model, else one of the
    model's provider type; ``defaultProvider`` settles a model several could serve, else the first declared.
    A model no configured provider could serve is left to the provider named by its type (environment keys)."""
    if config is None:
        return {}
    auth = config.authentication
    routes: dict[str, str] = {}
    for name, info in registry.available_models.items():
        listing = [p.name for p in auth.providers if any(m.name == name for m in p.models)]
        candidates = listing or [p.name for p in auth.providers if p.type == info.provider]
        if candidates:
            routes[name] = auth.default_provider if auth.default_provider in candidates else candidates[0]
    return routes


def build_provider(
    credentials: ProviderCredentials, timeout: float = 60.0, pool: ConnectionPoolConfig | None = None
) -> Provider:
    """The provider's adapter; ``pool`` (``communication.connectionPool``) limits its SDK client's HTTP pool."""
    if credentials.provider == "openai":
        # deferred: a provider's SDK loads only when a model of that provider is configured
        from agentparty.runtime.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(credentials.api_key, credentials.base_url, timeout, credentials.auth, pool)
    if credentials.provider == "anthropic":
        # deferred: a provider's SDK loads only when a model of that provider is configured
        from agentparty.runtime.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(credentials.api_key, credentials.base_url, timeout, credentials.auth, pool)
    if credentials.provider == "google":
        # deferred: a provider's SDK loads only when a model of that provider is configured
        from agentparty.runtime.providers.google_provider import GoogleProvider

        return GoogleProvider(credentials.api_key, credentials.base_url, timeout, credentials.auth, pool)
    raise ValueError(f"unknown provider {credentials.provider!r}")


@dataclass(frozen=True)
class ModelAttempt:
    model: str
    error: str


@dataclass(frozen=True)
class RoutedCompletion:
    completion: Completion
    model: str
    """The model that answered (a fallback when the requested one could not)."""
    requested_model: str
    skipped: tuple[ModelAttempt, ...] = ()
    cost: float = 0.0
    currency: str = "USD"

    @property
    def fell_back(self) -> bool:
        return self.model != self.requested_model


@dataclass
class ModelRouter:
    registry: ModelRegistry
    providers: dict[str, Provider]
    """Provider name → adapter; only these providers' models are offered when ``autoDetection`` is on."""
    routes: dict[str, str] = field(default_factory=dict)
    """Model name → provider name, for models a configured provider serves (others: their provider type)."""
    breaker_store: BreakerStore | None = None
    breaker_config: CircuitBreakerConfig = field(default_factory=MODEL_BREAKER.model_copy)
    ledger: BudgetLedger | None = None
    rate_limiter: PrefectRateLimiter | None = None
    clock: Callable[[], float] = time.time
    prompt_masker: Masker | None = None
    """``security.masking.maskPrompts`` (with ``dataMasking``): prompts are masked before they reach any model."""
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _slots_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(
        cls,
        home: Path,
        config: SDKConfiguration | None = None,
        registry: ModelRegistry | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> ModelRouter:
        """The router of this process; a configured provider whose credentials cannot be resolved is reported
        here (:class:`~agentparty.runtime.provider_auth.ProviderCredentialsError`), never skipped."""
        providers: dict[str, Provider] = {"simulated": SimulatedProvider(get_settings().simulated)}
        for name, credentials in detect_credentials(config, environ, clock, _audit_log(home, config)).items():
            providers[name] = build_provider(credentials, pool=_connection_pool(config))
        limits = limits_from_runtime(get_settings().agent_runtime.models)
        url = get_settings().state_db_url
        policy = MigrationPolicy.from_config(config.versioning, home) if config else get_settings().migration_policy()
        state = resolve_state_backend(home, url.get_secret_value() if url else None, policy)
        registry = registry or (config.models if config else get_settings().model_registry())
        return cls(
            registry=registry,
            providers=providers,
            routes=provider_routes(registry, config),
            clock=clock,
            breaker_store=SharedBreakerStore(state),
            ledger=BudgetLedger(state),
            rate_limiter=PrefectRateLimiter(limits) if limits else None,
            prompt_masker=_prompt_masker(config),
        )

    # -- what can answer -------------------------------------------------------------

    def info(self, model: str) -> ModelInfo:
        try:
            return self.registry.available_models[model]
        except KeyError:
            raise ModelUnavailable(self.registry.unregistered_message(model)) from None

    def available_models(self) -> list[str]:
        """Registered models whose provider is configured (all of them with ``autoDetection`` off)."""
        return [
            name
            for name, info in self.registry.available_models.items()
            if not self.registry.auto_detection or self.routes.get(name, info.provider) in self.providers
        ]

    def chain(self, requested: str | None) -> list[str]:
        first = requested or self.registry.default_model
        return [first] + [m for m in self.registry.fallback_chain if m != first]

    def _breaker(self, model: str) -> CircuitBreaker | None:
        if self.breaker_store is None:
            return None
        return CircuitBreaker(f"model:{model}", self.breaker_config, self.breaker_store, self.clock)

    def _slot(self, info: ModelInfo) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if (
            loop is not self._slots_loop
        ):  # semaphores bind to the loop they first wait on; each asyncio.run gets fresh ones
            self._slots, self._slots_loop = {}, loop
        if info.name not in self._slots:
            self._slots[info.name] = asyncio.Semaphore(info.capabilities.max_concurrency)
        return self._slots[info.name]

    # -- calling -----------------------------------------------------------------------

    async def complete(
        self,
        request: CompletionRequest,
        *,
        model: str | None = None,
        budgets: Sequence[Budget] = (),
        on_text: TextCallback | None = None,
    ) -> RoutedCompletion:
        """Answer ``request`` with the requested model or the first one in its chain that can."""
        chain = self.chain(model)
        skipped: list[ModelAttempt] = []
        last_error: StepError | None = None
        for name in chain:
            try:
                info = self.info(name)
                serving = self.routes.get(name, info.provider)
                provider = self.providers.get(serving)
                if provider is None:
                    raise ModelUnavailable(f"{name}: no API key configured for provider {serving!r}")
                if request.tools and not info.capabilities.supports_functions:
                    # A model that cannot call functions is never given tools: the chain moves on, and says so.
                    raise ModelUnavailable(f"{name}: does not support functions, and this step offers tools")
                if (
                    request.context_tokens
                    and request.context_tokens + request.max_tokens > info.capabilities.max_tokens
                ):
                    raise ModelUnavailable(
                        f"{name}: the conversation needs about {request.context_tokens + request.max_tokens} tokens "
                        f"({request.max_tokens} of them for the answer); its window is {info.capabilities.max_tokens}"
                    )
                completion = await self._call(info, provider, request, budgets, on_text, serving)
            except BudgetExceeded:
                raise
            except StepError as exc:
                if not tries_next_model(exc):
                    raise
                logger.warning("model %s cannot answer (%s); trying the next model in the chain", name, exc)
                skipped.append(ModelAttempt(name, str(exc)))
                last_error = exc
                continue
            cost = info.pricing.cost(completion.input_tokens, completion.output_tokens) if info.pricing else 0.0
            record_model_usage(serving, name, completion.input_tokens, completion.output_tokens, cost)
            return RoutedCompletion(
                completion, name, chain[0], tuple(skipped), cost, info.pricing.currency if info.pricing else "USD"
            )
        tried = "; ".join(f"{a.model}: {a.error}" for a in skipped)
        error = ModelUnavailable(f"no model in the chain {chain} could answer: {tried}")
        raise error from last_error

    async def _call(
        self,
        info: ModelInfo,
        provider: Provider,
        request: CompletionRequest,
        budgets: Sequence[Budget],
        on_text: TextCallback | None,
        serving: str = "",
    ) -> Completion:
        """One call to ``provider`` (named ``serving``: the metrics' provider label) under the model's breaker,
        budgets, rate limit and concurrency bound."""
        breaker = self._breaker(info.name)
        if breaker is not None:
            breaker.acquire()
        estimate = estimate_tokens(sum(len(m.content) for m in request.messages), request.max_tokens)
        reservation = None
        if budgets and self.ledger is not None:
            reservation = self.ledger.reserve(budgets, estimate)
        streaming = request.stream and info.capabilities.supports_streaming
        call = dataclasses.replace(request, model=info.name, stream=streaming)
        if self.prompt_masker is not None:  # security.masking.maskPrompts: the model sees the masked forms
            call = dataclasses.replace(call, messages=tuple(self.prompt_masker.model(m) for m in call.messages))
        called: float | None = None
        try:
            if self.rate_limiter is not None:
                await self.rate_limiter.acquire(info.name, estimate)
            async with self._slot(info):
                called = time.perf_counter()
                completion = await provider.complete(call, on_text)
        except BaseException as exc:
            redact_exception(exc)  # a provider may quote the key back: never let it reach a log or a state
            if isinstance(exc, RateLimited):  # ours (penaltyStrategy reject) or the provider's 429
                record_rate_limit_refusal(serving or info.provider)
            if called is not None and isinstance(exc, Exception):  # the provider was asked, and failed
                record_model_call(serving or info.provider, info.name, time.perf_counter() - called, ok=False)
            if reservation is not None and self.ledger is not None:
                self.ledger.release(reservation)
            if breaker is not None and _counts_against_model(exc):
                breaker.record_failure()
            raise
        record_model_call(serving or info.provider, info.name, time.perf_counter() - (called or 0.0), ok=True)
        if breaker is not None:
            breaker.record_success()
        if reservation is not None and self.ledger is not None:
            self.ledger.settle(reservation, budgets, completion.tokens)
        return completion

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


def _audit_log(home: Path, config: SDKConfiguration | None) -> AuditTrail | None:
    """The home's audit log, on under the rule of ``Settings.audit_log`` (for the router's own ``home``)."""
    if config is None:  # the keyless default: no configured provider, no provider key to audit
        return None
    enabled = config.security.audit_logging and config.monitoring.logging.compliance.audit_trail
    from agentparty.runtime.settings import state_backend_at  # deferred: settings import this layer

    return open_audit_trail(home, state_backend_at(home), enabled=enabled)


def _connection_pool(config: SDKConfiguration | None) -> ConnectionPoolConfig:
    """``communication.connectionPool``, the built-in one when no configuration file is given."""
    return config.communication.connection_pool if config is not None else ConnectionPoolConfig()


def _prompt_masker(config: SDKConfiguration | None) -> Masker | None:
    masker = masker_for(config.security) if config is not None else None
    return masker if masker is not None and masker.mask_prompts else None


def _counts_against_model(exc: BaseException) -> bool:
    """Failures that say something about the model's health (not the request's content, not cancellation)."""
    if isinstance(
        exc, (asyncio.CancelledError, CircuitOpenError, BudgetExceeded, ProviderRequestError, ContentPolicyViolation)
    ):
        return False
    return isinstance(exc, (StepError, TimeoutError))
