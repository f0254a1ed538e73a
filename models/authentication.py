"""Seed 002's ``authentication`` section: LLM providers, how each authenticates, and provider key rotation.

Extensions of the seed, all compatible (every document the seed accepts is accepted):

* ``apiKeyEnv`` beside ``apiKey``, ``tokenEnv`` beside ``token`` and ``clientSecretEnv`` beside
  ``clientSecret``: secrets come from the environment, never from the file;
* ``keys`` (several keys of one provider, each with an ``id`` and a ``createdAt``) for key rotation;
* a provider may leave ``authentication`` out, or give ``type: oauth2`` without a ``configuration``:
  the top-level ``authentication.oauth2`` then applies;
* a provider's ``models`` need not repeat ``provider`` (it is the provider's ``type``).

Which key serves a call, and resolving the environment, happen at run time
(``agentparty.runtime.provider_auth``); this module is pure data.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import AwareDatetime, Field, SecretStr, field_validator, model_validator

from ._base import CamelModel, NonEmptyStr, PositiveStrictInt
from ._keys import api_key_problem
from .model_registry import ModelInfo, ModelRegistry

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
"""The name of an environment variable."""


def secure_url(value: str, what: str) -> str:
    """``value`` if it is an absolute https URL (http only for localhost) without a fragment."""
    parsed = urlparse(value)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ValueError(f"{what} {value!r} is not an absolute http(s) URL")
    if parsed.scheme == "http" and parsed.hostname not in _LOCAL_HOSTS:
        raise ValueError(f"{what} must use https (http is allowed only for localhost), got {value!r}")
    if parsed.fragment:
        raise ValueError(f"{what} must not contain a fragment ('#…')")
    return value


def _one_of(what: str, *values: object) -> None:
    if sum(value is not None for value in values) != 1:
        raise ValueError(f"give exactly one of {what}")


class OAuth2Config(CamelModel):
    """OAuth2 client credentials: a token from ``tokenEndpoint`` for ``clientId`` and its secret."""

    client_id: NonEmptyStr
    client_secret: SecretStr | None = None
    client_secret_env: EnvName | None = None
    """Environment variable holding the client secret (keeps it out of configuration files)."""
    scopes: list[NonEmptyStr] = Field(default_factory=list)
    redirect_uri: str
    token_endpoint: str

    @field_validator("redirect_uri")
    @classmethod
    def _redirect(cls, value: str) -> str:
        return secure_url(value, "redirectUri")

    @field_validator("token_endpoint")
    @classmethod
    def _token_endpoint(cls, value: str) -> str:
        return secure_url(value, "tokenEndpoint")

    @model_validator(mode="after")
    def _one_secret(self) -> OAuth2Config:
        if self.client_secret is not None and self.client_secret_env is not None:
            raise ValueError("give at most one of clientSecret or clientSecretEnv")
        return self


class ApiKeyRotationConfig(CamelModel):
    enabled: bool = False
    rotation_interval: PositiveStrictInt = 720
    """Hours."""
    max_age: PositiveStrictInt = 2160
    """Hours."""

    @model_validator(mode="after")
    def _age_covers_interval(self) -> ApiKeyRotationConfig:
        if self.max_age < self.rotation_interval:
            raise ValueError(
                f"maxAge ({self.max_age} h) must be at least rotationInterval ({self.rotation_interval} h)"
            )
        return self


class ProviderKey(CamelModel):
    """One of several keys of a provider, for rotation; its ``id`` (never its value) names it in errors."""

    id: NonEmptyStr
    api_key: SecretStr | None = None
    api_key_env: EnvName | None = None
    created_at: AwareDatetime
    """When the key was issued (with a time zone, e.g. ``2026-01-31T09:00:00Z``): its age decides rotation."""

    @model_validator(mode="after")
    def _one_source(self) -> ProviderKey:
        _one_of("apiKey or apiKeyEnv", self.api_key, self.api_key_env)
        return self


class ApiKeyAuthConfiguration(CamelModel):
    api_key: SecretStr | None = None
    api_key_env: EnvName | None = None
    """Environment variable holding the key: keeps keys out of configuration files."""
    keys: list[ProviderKey] | None = None
    """Several keys with their creation times; ``authentication.apiKeyRotation`` picks the one new calls use."""

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeyAuthConfiguration:
        _one_of("apiKey, apiKeyEnv or keys", self.api_key, self.api_key_env, self.keys)
        if self.keys is not None:
            ids = [key.id for key in self.keys]
            if not ids or len(set(ids)) != len(ids):
                raise ValueError(f"keys must be a non-empty list with unique ids, got {ids}")
        return self


class BearerTokenConfiguration(CamelModel):
    token: SecretStr | None = None
    token_env: EnvName | None = None

    @model_validator(mode="after")
    def _one_source(self) -> BearerTokenConfiguration:
        _one_of("token or tokenEnv", self.token, self.token_env)
        return self


class ApiKeyAuthentication(CamelModel):
    type: Literal["api_key"] = "api_key"
    configuration: ApiKeyAuthConfiguration


class OAuth2Authentication(CamelModel):
    type: Literal["oauth2"] = "oauth2"
    configuration: OAuth2Config | None = None
    """None: the top-level ``authentication.oauth2``."""


class BearerTokenAuthentication(CamelModel):
    type: Literal["bearer_token"] = "bearer_token"
    configuration: BearerTokenConfiguration


AuthenticationMethod = Annotated[
    ApiKeyAuthentication | OAuth2Authentication | BearerTokenAuthentication, Field(discriminator="type")
]


class ProviderConfig(CamelModel):
    name: NonEmptyStr
    """What the provider is known by: two providers of one type stay two providers."""
    type: Literal["openai", "anthropic", "google"]
    endpoint: str | None = None
    """Base URL; set it for an OpenAI-compatible server (Ollama, vLLM) or a gateway."""
    authentication: AuthenticationMethod | None = None
    """None: OAuth2 with the top-level ``authentication.oauth2``."""
    models: list[ModelInfo] = Field(default_factory=list)
    """Models this provider serves; they join the model registry."""

    @model_validator(mode="before")
    @classmethod
    def _models_of_this_type(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("models"), list):
            kind = data.get("type")
            models = [{"provider": kind, **m} if isinstance(m, dict) else m for m in data["models"]]
            data = {**data, "models": models}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ProviderConfig:
        for index, model in enumerate(self.models):
            if model.provider != self.type:
                raise ValueError(f"models[{index}] {model.name!r}: provider {model.provider!r} is not {self.type!r}")
        auth = self.authentication
        if isinstance(auth, ApiKeyAuthentication):
            keys = [auth.configuration.api_key] + [k.api_key for k in auth.configuration.keys or []]
            # OpenAI-compatible servers (endpoint set) issue keys of their own shape.
            if self.endpoint is None or self.type != "openai":
                for key in keys:
                    problem = api_key_problem(self.type, key.get_secret_value()) if key is not None else None
                    if problem:
                        raise ValueError(f"authentication.configuration.apiKey {problem}")
        return self


class AuthenticationConfig(CamelModel):
    providers: list[ProviderConfig] = Field(default_factory=list)
    default_provider: str | None = None
    """Serves a model that several providers could."""
    oauth2: OAuth2Config | None = None
    """OAuth2 for providers that name no configuration of their own."""
    api_key_rotation: ApiKeyRotationConfig = Field(default_factory=ApiKeyRotationConfig)

    @model_validator(mode="after")
    def _default_is_configured(self) -> AuthenticationConfig:
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique, got {names}")
        if self.default_provider is not None and self.default_provider not in names:
            raise ValueError(
                f"defaultProvider {self.default_provider!r} is not one of the providers ({', '.join(names) or 'none'})"
            )
        for index, provider in enumerate(self.providers):
            uses_oauth2 = provider.authentication is None or isinstance(provider.authentication, OAuth2Authentication)
            if uses_oauth2 and self.oauth2_for(provider) is None:
                raise ValueError(
                    f"providers[{index}] ({provider.name}): no authentication of its own and no "
                    "authentication.oauth2 to fall back on"
                )
        return self

    def oauth2_for(self, provider: ProviderConfig) -> OAuth2Config | None:
        """The OAuth2 client a provider authenticates with (its own, else the top-level one), if it uses OAuth2."""
        return oauth2_of(provider, self.oauth2)


def oauth2_of(provider: ProviderConfig, default: OAuth2Config | None) -> OAuth2Config | None:
    auth = provider.authentication
    if auth is None:
        return default
    if isinstance(auth, OAuth2Authentication):
        return auth.configuration or default
    return None


def join_provider_models(auth: AuthenticationConfig, registry: ModelRegistry) -> None:
    """Add each provider's ``models`` to the registry (in place); a name already there keeps its entry,
    unless its provider type differs, which is refused."""
    for index, provider in enumerate(auth.providers):
        for model in provider.models:
            known = registry.available_models.get(model.name)
            if known is None:
                registry.available_models[model.name] = model
            elif known.provider != model.provider:
                raise ValueError(
                    f"authentication.providers[{index}].models: {model.name!r} is registered in models.availableModels "
                    f"for provider type {known.provider!r}, not {model.provider!r}"
                )
