"""How each configured LLM provider authenticates: keys from the file or the environment, bearer tokens,
OAuth2 client credentials, and key rotation.

Everything a provider needs is resolved when a command that runs agents loads its
configuration (:func:`check_provider_credentials`, called by ``agentparty run``,
``validate``, ``api``, ``worker``, ``serve`` and the API app's start) and again when the
model router is built: a variable that is not set is reported then, naming the
provider and the variable, for all providers at once
(:class:`ProviderCredentialsError`); nothing is fetched over the network (an OAuth2
token is fetched at the first call, but its ``clientSecretEnv`` must be set). A call takes one
:class:`Credential` when it starts and keeps it to the end, so a rotation or a token
refresh never changes the key of a call in flight.

* :class:`KeyRing`: several keys with creation times (``apiKeyRotation``). New calls
  use the oldest key still inside ``rotationInterval``, and the newest key once every
  key is past it; a staged key thus takes over exactly when its predecessor is due,
  at the same moment in every process. With rotation on, a key past ``maxAge`` is
  refused, naming its id and variable (never its value). The audit log records, once
  per process and key id, the first use of a key (``provider_key.use``) and its
  refusal (``provider_key.refused``): ``<provider>/<key id>``, never the value.
* :class:`OAuth2ClientCredentials`: a token from ``tokenEndpoint`` (client id and
  secret in HTTP Basic, RFC 6749 §2.3.1), cached until shortly before it expires.
  Concurrent callers share one token request (single flight), and a 401 triggers one
  refresh per stale token: whoever comes second gets the token the first one fetched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from agentparty.models.authentication import (
    ApiKeyAuthentication,
    ApiKeyRotationConfig,
    AuthenticationConfig,
    BearerTokenAuthentication,
    OAuth2Config,
    ProviderConfig,
)
from agentparty.models.sdk_config import SDKConfiguration
from agentparty.models.step_errors import AuthenticationError, NonRetryableError, ProviderUnavailable
from agentparty.runtime.audit_trail import AuditTrail
from agentparty.runtime.secrets import as_secret, register

logger = logging.getLogger("agentparty.llm")

T = TypeVar("T")
Scheme = Literal["api_key", "bearer"]
HOUR = 3600.0
EXPIRY_MARGIN = 30.0
"""Seconds before a token's expiry at which it is fetched anew (at most a tenth of its lifetime)."""
DEFAULT_TOKEN_LIFETIME = 3600.0
"""For a token response without ``expires_in`` (RFC 6749 makes it optional)."""
BASE_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL", "google": "GOOGLE_GEMINI_BASE_URL"}
"""The variable each provider type's official SDK reads its base URL from when it is given none (google-genai:
the Gemini API's, as the adapter never uses Vertex AI)."""
_audited_keys: set[tuple[str, str, str, str]] = set()
"""(audit log, action, provider, key id) recorded by this process: each once, however many calls use the key."""
_audited_guard = threading.Lock()


class ProviderCredentialsError(NonRetryableError, ValueError):
    """Providers whose credentials cannot be resolved: each problem names the provider and the missing variable.

    Not retryable: a step that meets it fails at once, since a retry reads the same environment."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("provider credentials cannot be resolved: " + "; ".join(problems))


@dataclass(frozen=True)
class Credential:
    """What one call authenticates with; ``label`` names it in errors and logs (a key id or variable, never the
    value)."""

    secret: SecretStr
    scheme: Scheme
    label: str


class ProviderAuth(Protocol):
    """Hands each call a credential, and a fresh one after a 401 where that can help (None where it cannot)."""

    async def acquire(self) -> Credential: ...

    async def refresh(self, stale: Credential) -> Credential | None: ...


@dataclass(frozen=True)
class ProviderCredentials:
    """A provider that can be called: its type, its base URL, and either a fixed key or a :class:`ProviderAuth`."""

    provider: str
    """The provider type (``openai``, ``anthropic``, ``google``): which adapter serves it."""
    api_key: SecretStr | None
    base_url: str | None = None
    name: str = ""
    """What the router knows it by (the type for providers found in the environment)."""
    auth: ProviderAuth | None = None
    """Set for bearer tokens, OAuth2 and rotating keys: each call takes its credential from it."""


@dataclass(frozen=True)
class StaticCredential:
    """A bearer token (or any one credential) that no refresh can replace."""

    credential: Credential

    async def acquire(self) -> Credential:
        return self.credential

    async def refresh(self, stale: Credential) -> Credential | None:
        return None


@dataclass(frozen=True)
class RingKey:
    id: str
    source: str
    """``apiKeyEnv NAME`` or ``apiKey`` (inline): where the key came from, for error messages."""
    secret: SecretStr
    created_at: float


@dataclass
class KeyRing:
    """A provider's keys; which one new calls use follows ``apiKeyRotation`` (see the module docstring)."""

    provider: str
    keys: list[RingKey]
    rotation: ApiKeyRotationConfig
    clock: Callable[[], float] = time.time
    audit: AuditTrail | None = None
    """Where the first use and a refusal of each key are recorded (once per process and key id)."""
    _warned: set[str] = field(default_factory=set)
    _audited: set[tuple[str, str]] = field(default_factory=set)

    def current(self) -> RingKey:
        now = self.clock()
        issued = sorted((k for k in self.keys if k.created_at <= now), key=lambda k: k.created_at)
        if not issued:
            raise AuthenticationError(f"provider {self.provider!r}: none of its keys has reached its createdAt yet")
        if not self.rotation.enabled:
            return self._used(issued[-1])
        interval, max_age = self.rotation.rotation_interval * HOUR, self.rotation.max_age * HOUR
        key = next((k for k in issued if now - k.created_at < interval), issued[-1])
        age = now - key.created_at
        if age >= max_age:
            self._record("provider_key.refused", key, "refused", age_hours=round(age / HOUR, 1))
            raise AuthenticationError(
                f"provider {self.provider!r}: key {key.id!r} ({key.source}) is {age / HOUR:.0f} h old, past "
                f"apiKeyRotation.maxAge ({self.rotation.max_age} h): refused; add a newer key"
            )
        if age >= interval and key.id not in self._warned:
            self._warned.add(key.id)
            logger.warning(
                "provider %r: key %r is due for rotation (%.0f h old, rotationInterval %d h) and no newer key exists",
                self.provider,
                key.id,
                age / HOUR,
                self.rotation.rotation_interval,
            )
        return self._used(key)

    def _used(self, key: RingKey) -> RingKey:
        self._record("provider_key.use", key, "ok")
        return key

    def _record(self, action: str, key: RingKey, outcome: str, **details: object) -> None:
        """Append ``action`` for ``key`` to the audit log, the first time in this process; a set lookup after."""
        if self.audit is None or (action, key.id) in self._audited:
            return
        self._audited.add((action, key.id))
        mark = (self.audit.location, action, self.provider, key.id)
        with _audited_guard:
            if mark in _audited_keys:
                return
            _audited_keys.add(mark)
        try:
            self.audit.append(
                "system", action, f"{self.provider}/{key.id}", outcome, source=key.source, pid=os.getpid(), **details
            )
        except OSError as exc:  # a read-only home must not stop a call; the log says what went unrecorded
            logger.warning("audit log: %s of provider %r key %r not recorded: %s", action, self.provider, key.id, exc)

    async def acquire(self) -> Credential:
        key = self.current()
        return Credential(key.secret, "api_key", f"key {key.id!r}")

    async def refresh(self, stale: Credential) -> Credential | None:
        return None


@dataclass
class OAuth2ClientCredentials:
    """OAuth2 client-credentials tokens for one provider, cached and refreshed in single flight."""

    provider: str
    config: OAuth2Config
    client_secret: SecretStr
    clock: Callable[[], float] = time.time
    timeout: float = 30.0
    fetches: int = 0
    """Token requests made (what the single flight keeps at one per expiry or 401)."""
    _token: Credential | None = None
    _expires_at: float = 0.0
    _locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def _lock(self) -> asyncio.Lock:
        """One lock per event loop: an asyncio lock binds to the loop it first waits on."""
        loop = asyncio.get_running_loop()
        with self._guard:
            return self._locks.setdefault(loop, asyncio.Lock())

    def _valid(self) -> Credential | None:
        return self._token if self._token is not None and self.clock() < self._expires_at else None

    async def acquire(self) -> Credential:
        token = self._valid()
        if token is not None:
            return token
        async with self._lock():
            return self._valid() or await self._fetch()

    async def refresh(self, stale: Credential) -> Credential | None:
        async with self._lock():
            token = self._valid()
            if token is not None and token is not stale:
                return token  # another caller refreshed while this one waited
            return await self._fetch()

    async def _fetch(self) -> Credential:
        config, where = self.config, f"provider {self.provider!r}: token endpoint {self.config.token_endpoint}"
        data = {"grant_type": "client_credentials"}
        if config.scopes:
            data["scope"] = " ".join(config.scopes)
        basic = httpx.BasicAuth(quote(config.client_id, safe=""), quote(self.client_secret.get_secret_value(), safe=""))
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(
                    config.token_endpoint, data=data, auth=basic, headers={"Accept": "application/json"}
                )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{where}: request failed: {exc!r}") from None
        body = _json_object(response)
        access_token = body.get("access_token")
        if response.status_code != 200 or not isinstance(access_token, str) or not access_token:
            reason = " ".join(str(body[k]) for k in ("error", "error_description") if k in body) or "no access_token"
            if response.status_code >= 500 or response.status_code in (408, 429):  # transient: the step retries
                raise ProviderUnavailable(f"{where}: HTTP {response.status_code}: {reason}")
            raise AuthenticationError(
                f"{where} refused client {config.client_id!r}: HTTP {response.status_code}: {reason}"
            )
        lifetime = _lifetime(body.get("expires_in"))
        self._token = Credential(SecretStr(access_token), "bearer", f"oauth2 client {config.client_id!r}")
        register(access_token)  # redacted wherever a provider's error quotes it
        self._expires_at = self.clock() + lifetime - min(EXPIRY_MARGIN, lifetime / 10)
        return self._token


def _json_object(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _lifetime(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return float(value)
    return DEFAULT_TOKEN_LIFETIME


async def call_with_auth(auth: ProviderAuth, attempt: Callable[[Credential], Awaitable[T]]) -> T:
    """Run ``attempt`` with the current credential; after a 401, once more with a refreshed one (if any)."""
    credential = await auth.acquire()
    try:
        return await attempt(credential)
    except AuthenticationError as exc:
        if _status(exc) != 401:
            raise
        fresh = await auth.refresh(credential)
        if fresh is None:
            raise
    return await attempt(fresh)


def _status(exc: BaseException) -> object:
    """The HTTP status of the SDK error behind an engine error (``status_code``, or google-genai's ``code``)."""
    cause = exc.__cause__
    return getattr(cause, "status_code", None) or getattr(cause, "code", None)


def check_provider_credentials(config: SDKConfiguration, environ: Mapping[str, str] | None = None) -> None:
    """Refuse (:class:`ProviderCredentialsError`) a configuration with a provider whose credentials cannot be
    resolved, naming each provider and variable: what commands that run agents call when they load it, before
    anything starts. Resolves only (no token request, no audit entry); with no provider configured, a no-op."""
    if config.authentication.providers:
        configured_providers(config.authentication, os.environ if environ is None else environ)


def configured_providers(
    auth: AuthenticationConfig,
    environ: Mapping[str, str],
    clock: Callable[[], float] = time.time,
    audit: AuditTrail | None = None,
) -> dict[str, ProviderCredentials]:
    """Every configured provider by name, its secrets resolved; every unresolvable one reported together.
    ``audit``: where rotating keys record their first use and refusals."""
    found: dict[str, ProviderCredentials] = {}
    problems: list[str] = []
    for index, provider in enumerate(auth.providers):
        where = f"authentication.providers[{index}] ({provider.name})"
        missing: list[str] = []
        resolved = _resolve(provider, auth, environ, clock, missing, audit)
        problems += [f"{where}: {problem}" for problem in missing]
        if not missing:
            api_key, method = resolved
            found[provider.name] = ProviderCredentials(provider.type, api_key, provider.endpoint, provider.name, method)
    if problems:
        raise ProviderCredentialsError(problems)
    return found


def _resolve(
    provider: ProviderConfig,
    auth: AuthenticationConfig,
    environ: Mapping[str, str],
    clock: Callable[[], float],
    missing: list[str],
    audit: AuditTrail | None = None,
) -> tuple[SecretStr | None, ProviderAuth | None]:
    """A fixed key, or the :class:`ProviderAuth` of the provider's method; problems are appended to ``missing``."""

    def secret(inline: SecretStr | None, env: str | None, field_name: str) -> SecretStr:
        if inline is not None:
            return as_secret(inline) or inline
        value = environ.get(env or "")
        if not value:
            missing.append(f"environment variable {env} ({field_name}) is not set")
            return SecretStr("")
        return as_secret(value) or SecretStr(value)

    method = provider.authentication
    if isinstance(method, ApiKeyAuthentication):
        conf = method.configuration
        if conf.keys is None:
            return secret(conf.api_key, conf.api_key_env, "apiKeyEnv"), None
        keys = [
            RingKey(
                k.id,
                f"apiKeyEnv {k.api_key_env}" if k.api_key_env else "apiKey",
                secret(k.api_key, k.api_key_env, f"keys[{k.id}].apiKeyEnv"),
                k.created_at.timestamp(),
            )
            for k in conf.keys
        ]
        return None, KeyRing(provider.name, keys, auth.api_key_rotation, clock, audit)
    if isinstance(method, BearerTokenAuthentication):
        conf_t = method.configuration
        token = secret(conf_t.token, conf_t.token_env, "tokenEnv")
        label = f"tokenEnv {conf_t.token_env}" if conf_t.token_env else "token"
        return None, StaticCredential(Credential(token, "bearer", label))
    oauth2 = auth.oauth2_for(provider)
    if oauth2 is None:  # refused by AuthenticationConfig's validation; kept for type narrowing
        missing.append("no OAuth2 configuration")
        return None, None
    if oauth2.client_secret is None and oauth2.client_secret_env is None:
        missing.append(f"OAuth2 client {oauth2.client_id!r} has no clientSecretEnv (or clientSecret)")
        return None, None
    client_secret = secret(oauth2.client_secret, oauth2.client_secret_env, "clientSecretEnv")
    return None, OAuth2ClientCredentials(provider.name, oauth2, client_secret, clock)
