"""Provider credentials checked at load (``check_provider_credentials``) and provider keys in the audit log.

No network: resolving credentials never calls a provider or a token endpoint, and
the key ring is asked for its current key directly (what each call does first).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentparty.models import SDKConfiguration
from agentparty.models.step_errors import AuthenticationError
from agentparty.runtime.audit import AuditLog
from agentparty.runtime.model_router import ModelRouter
from agentparty.runtime.provider_auth import (
    KeyRing,
    ProviderCredentialsError,
    check_provider_credentials,
    configured_providers,
)

HOUR = 3600.0
START = datetime(2026, 6, 1, tzinfo=UTC).timestamp()


def config(*providers: dict[str, Any], **auth: Any) -> SDKConfiguration:
    return SDKConfiguration.model_validate({"authentication": {"providers": list(providers), **auth}})


def provider(name: str, authentication: dict[str, Any], kind: str = "openai") -> dict[str, Any]:
    return {"name": name, "type": kind, "endpoint": "http://127.0.0.1:9/v1", "authentication": authentication}


def api_key(**conf: Any) -> dict[str, Any]:
    return {"type": "api_key", "configuration": conf}


OAUTH2 = {
    "clientId": "agentparty",
    "clientSecretEnv": "IDP_SECRET",
    "tokenEndpoint": "http://127.0.0.1:9/token",  # nothing listens: a token request would fail
    "redirectUri": "http://127.0.0.1:9/callback",
}


def test_every_unresolvable_provider_is_named_with_its_variable() -> None:
    sdk = config(
        provider("work", api_key(apiKeyEnv="WORK_KEY")),
        provider("gw", {"type": "bearer_token", "configuration": {"tokenEnv": "GW_TOKEN"}}),
        provider("idp", {"type": "oauth2", "configuration": OAUTH2}),
    )
    with pytest.raises(ProviderCredentialsError) as refused:
        check_provider_credentials(sdk, {})
    assert refused.value.problems == [
        "authentication.providers[0] (work): environment variable WORK_KEY (apiKeyEnv) is not set",
        "authentication.providers[1] (gw): environment variable GW_TOKEN (tokenEnv) is not set",
        "authentication.providers[2] (idp): environment variable IDP_SECRET (clientSecretEnv) is not set",
    ]


def test_resolvable_credentials_pass_without_any_request() -> None:
    sdk = config(
        provider("work", api_key(apiKeyEnv="WORK_KEY")),
        provider("idp", {"type": "oauth2", "configuration": OAUTH2}),
    )
    # The token endpoint is unreachable: passing proves the OAuth2 token stays lazy (fetched at the first call).
    check_provider_credentials(sdk, {"WORK_KEY": "sk-1", "IDP_SECRET": "s"})


def test_the_keyless_default_has_nothing_to_check() -> None:
    check_provider_credentials(SDKConfiguration(), {})


def ring(tmp_path: Path, clock: list[float], **rotation: Any) -> KeyRing:
    keys = [
        {"id": "k-old", "apiKeyEnv": "KEY_OLD", "createdAt": "2026-06-01T00:00:00Z"},
        {"id": "k-new", "apiKeyEnv": "KEY_NEW", "createdAt": "2026-06-02T00:00:00Z"},
    ]
    rotation = {"enabled": True, "rotationInterval": 24, "maxAge": 48, **rotation}
    sdk = config(provider("rot", api_key(keys=keys)), apiKeyRotation=rotation)
    environ = {"KEY_OLD": "value-of-old-key", "KEY_NEW": "value-of-new-key"}
    creds = configured_providers(sdk.authentication, environ, lambda: clock[0], AuditLog.at(tmp_path))
    auth = creds["rot"].auth
    assert isinstance(auth, KeyRing)
    return auth


def key_entries(home: Path) -> list[tuple[str, str, str]]:
    return [(e.action, e.target, e.outcome) for e in AuditLog.at(home).entries() if e.action.startswith("provider_key")]


def test_each_key_use_is_audited_once_and_a_refusal_past_max_age_too(tmp_path: Path) -> None:
    clock = [START + 1 * HOUR]
    keys = ring(tmp_path, clock)
    for _ in range(3):
        assert keys.current().id == "k-old"
    clock[0] = START + 30 * HOUR  # k-old is past rotationInterval: the newer key takes over
    for _ in range(3):
        assert asyncio.run(keys.acquire()).label == "key 'k-new'"
    clock[0] = START + 80 * HOUR  # k-new is 56 h old, past maxAge (48 h)
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="k-new"):
            keys.current()
    assert key_entries(tmp_path) == [
        ("provider_key.use", "rot/k-old", "ok"),
        ("provider_key.use", "rot/k-new", "ok"),
        ("provider_key.refused", "rot/k-new", "refused"),
    ]
    log = (tmp_path / "audit" / "audit.jsonl").read_text()
    assert "value-of" not in log and "apiKeyEnv KEY_NEW" in log
    assert AuditLog.at(tmp_path).verify() is None


def test_a_second_ring_in_the_same_process_records_nothing_again(tmp_path: Path) -> None:
    clock = [START + 1 * HOUR]
    ring(tmp_path, clock).current()
    ring(tmp_path, clock).current()  # e.g. a second router in one worker
    assert key_entries(tmp_path) == [("provider_key.use", "rot/k-old", "ok")]


def test_the_router_hands_its_homes_audit_log_to_the_key_ring_unless_auditing_is_off(tmp_path: Path) -> None:
    keys = [{"id": "only", "apiKeyEnv": "K", "createdAt": "2026-01-01T00:00:00Z"}]
    sdk = config(provider("r", api_key(keys=keys)))
    router = ModelRouter.from_settings(tmp_path / "on", sdk, environ={"K": "v"})
    asyncio.run(router.aclose())
    auth = router.providers["r"]._auth  # type: ignore[attr-defined]
    assert isinstance(auth, KeyRing) and auth.audit is not None
    assert auth.audit.path == tmp_path / "on" / "audit" / "audit.jsonl" and auth.audit.enabled
    off = sdk.model_copy(update={"security": sdk.security.model_copy(update={"audit_logging": False})})
    router = ModelRouter.from_settings(tmp_path / "off", off, environ={"K": "v"})
    asyncio.run(router.aclose())
    auth = router.providers["r"]._auth  # type: ignore[attr-defined]
    assert auth.audit is not None and not auth.audit.enabled
