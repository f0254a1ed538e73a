"""The authentication section's rules: one source per secret, rotation keys, the OAuth2 default, provider models."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agentparty.models import SDKConfiguration
from agentparty.models.authentication import ApiKeyAuthConfiguration, AuthenticationConfig, OAuth2Config

OAUTH2 = {"clientId": "c", "redirectUri": "http://localhost/cb", "tokenEndpoint": "https://idp.example.com/token"}


def sdk(*providers: dict[str, Any], **auth: Any) -> SDKConfiguration:
    return SDKConfiguration.model_validate({"authentication": {"providers": list(providers), **auth}})


def test_one_source_per_key() -> None:
    with pytest.raises(ValidationError, match="exactly one of apiKey, apiKeyEnv or keys"):
        ApiKeyAuthConfiguration.model_validate({"apiKeyEnv": "A", "keys": []})
    with pytest.raises(ValidationError, match="unique ids"):
        ApiKeyAuthConfiguration.model_validate(
            {"keys": [{"id": "a", "apiKeyEnv": "A", "createdAt": "2026-01-01T00:00:00Z"}] * 2}
        )
    with pytest.raises(ValidationError, match="timezone"):
        ApiKeyAuthConfiguration.model_validate({"keys": [{"id": "a", "apiKeyEnv": "A", "createdAt": "2026-01-01"}]})
    with pytest.raises(ValidationError, match="at most one of clientSecret or clientSecretEnv"):
        OAuth2Config.model_validate({**OAUTH2, "clientSecret": "s", "clientSecretEnv": "S"})


def test_a_provider_without_authentication_needs_the_top_level_oauth2() -> None:
    bare = {"name": "corp", "type": "openai", "endpoint": "https://llm.example.com/v1"}
    with pytest.raises(ValidationError, match=r"providers\[0\] \(corp\): no authentication of its own"):
        AuthenticationConfig.model_validate({"providers": [bare]})
    with pytest.raises(ValidationError, match=r"providers\[0\] \(corp\)"):
        AuthenticationConfig.model_validate({"providers": [{**bare, "authentication": {"type": "oauth2"}}]})
    auth = AuthenticationConfig.model_validate({"providers": [bare], "oauth2": OAUTH2})
    assert auth.oauth2_for(auth.providers[0]) == auth.oauth2


def test_provider_models_join_the_registry() -> None:
    model = {"name": "llama-local", "capabilities": {"maxTokens": 8000}}
    ollama = {
        "name": "ollama",
        "type": "openai",
        "endpoint": "http://localhost:11434/v1",
        "authentication": {"type": "api_key", "configuration": {"apiKey": "ollama"}},
    }
    config = sdk({**ollama, "models": [model]})
    assert config.models.available_models["llama-local"].provider == "openai"
    clash = {**model, "name": "claude-haiku-4-5"}
    with pytest.raises(ValidationError, match=r"'claude-haiku-4-5' is registered .* for provider type 'anthropic'"):
        sdk({**ollama, "models": [clash]})
