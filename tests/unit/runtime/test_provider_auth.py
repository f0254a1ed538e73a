"""Provider authentication, every method, through the real SDKs against local servers.

The LLM end is ``support.llm_wire.WireServer`` (it records each request's headers);
the OAuth2 token endpoint is ``support.oauth2_stand_in.OAuth2StandIn``, a stand-in
started by the test. Clocks are injected where expiry and key age matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.llm_wire import WireServer
from support.oauth2_stand_in import OAuth2StandIn

from agentparty.models import SDKConfiguration
from agentparty.models.messages import UserMessage
from agentparty.models.step_errors import AuthenticationError, ProviderUnavailable
from agentparty.runtime.model_router import ModelRouter, build_provider, detect_credentials
from agentparty.runtime.provider_auth import KeyRing, OAuth2ClientCredentials, ProviderCredentialsError
from agentparty.runtime.providers.base import CompletionRequest, Provider

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

CLIENT_ID, CLIENT_SECRET = "agentparty-client", "client-secret-value-1"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def wire() -> Iterator[WireServer]:
    with WireServer() as server:
        yield server


@pytest.fixture
def server(wire: WireServer) -> Iterator[WireServer]:
    wire.reset()
    wire.authorize = None
    yield wire
    wire.authorize = None


@pytest.fixture
def idp() -> Iterator[OAuth2StandIn]:
    with OAuth2StandIn(CLIENT_ID, CLIENT_SECRET) as stand_in:
        yield stand_in


def request(model: str = "m", text: str = "hello") -> CompletionRequest:
    return CompletionRequest(model=model, messages=(UserMessage(content=text, user_id="u", session_id="s"),))


def config(*providers: dict[str, Any], **auth: Any) -> SDKConfiguration:
    return SDKConfiguration.model_validate({"authentication": {"providers": list(providers), **auth}})


def provider(name: str, url: str, authentication: dict[str, Any] | None, kind: str = "openai", **kw: Any) -> dict:
    doc: dict[str, Any] = {"name": name, "type": kind, "endpoint": url + ("/v1" if kind == "openai" else "")}
    if authentication is not None:
        doc["authentication"] = authentication
    return {**doc, **kw}


def only(sdk: SDKConfiguration, environ: dict[str, str] | None = None, clock: Clock | None = None) -> Provider:
    creds = detect_credentials(sdk, environ or {}, clock or Clock())
    (configured,) = [c for c in creds.values() if c.name in {p.name for p in sdk.authentication.providers}]
    return build_provider(configured)


def complete(p: Provider, req: CompletionRequest | None = None) -> Any:
    async def go() -> Any:
        try:
            return await p.complete(req or request())
        finally:
            await p.aclose()

    return asyncio.run(go())


def api_key(**conf: Any) -> dict[str, Any]:
    return {"type": "api_key", "configuration": conf}


# -- api_key and bearer_token ---------------------------------------------------------------------------------


def test_api_key_from_apikey_env_reaches_the_server(server: WireServer) -> None:
    sdk = config(provider("local", server.url, api_key(apiKeyEnv="LOCAL_LLM_KEY")))
    complete(only(sdk, {"LOCAL_LLM_KEY": "sk-from-the-environment"}))
    assert server.requests[-1].headers["authorization"] == "Bearer sk-from-the-environment"


def test_missing_apikey_env_is_reported_at_load_naming_provider_and_variable(tmp_path: Path) -> None:
    sdk = config(
        provider("local", "http://127.0.0.1:9", api_key(apiKeyEnv="LOCAL_LLM_KEY")),
        provider("gw", "http://127.0.0.1:9", {"type": "bearer_token", "configuration": {"tokenEnv": "GW_TOKEN"}}),
    )
    with pytest.raises(ProviderCredentialsError) as caught:
        ModelRouter.from_settings(tmp_path, sdk, environ={})
    text = str(caught.value)
    assert "authentication.providers[0] (local): environment variable LOCAL_LLM_KEY (apiKeyEnv) is not set" in text
    assert "authentication.providers[1] (gw): environment variable GW_TOKEN (tokenEnv) is not set" in text


@pytest.mark.parametrize("kind", ["openai", "anthropic", "google"])
def test_bearer_token_for_a_gateway(server: WireServer, kind: str) -> None:
    bearer = {"type": "bearer_token", "configuration": {"tokenEnv": "GATEWAY_TOKEN"}}
    complete(only(config(provider("gw", server.url, bearer, kind)), {"GATEWAY_TOKEN": "gateway-token-123"}))
    headers = server.requests[-1].headers
    assert headers["authorization"] == "Bearer gateway-token-123"
    assert "gateway-token-123" not in headers.get("x-api-key", "") + headers.get("x-goog-api-key", "")


@pytest.mark.parametrize(
    ("kind", "header", "value"), [("anthropic", "authorization", "Bearer key"), ("google", "x-goog-api-key", "key")]
)
def test_rotating_keys_use_each_dialects_key_header(server: WireServer, kind: str, header: str, value: str) -> None:
    keys = [{"id": "only", "apiKeyEnv": "K", "createdAt": "2026-01-01T00:00:00Z"}]
    complete(only(config(provider("p", server.url, api_key(keys=keys), kind)), {"K": "key-for-" + kind}))
    assert server.requests[-1].headers[header] == value.replace("key", "key-for-" + kind)


# -- OAuth2 client credentials --------------------------------------------------------------------------------


def oauth2(idp: OAuth2StandIn, **extra: Any) -> dict[str, Any]:
    return {
        "clientId": CLIENT_ID,
        "clientSecretEnv": "OAUTH_SECRET",
        "scopes": ["llm.invoke", "llm.read"],
        "redirectUri": "http://localhost/cb",
        "tokenEndpoint": idp.token_endpoint,
        **extra,
    }


def test_oauth2_token_cached_until_shortly_before_expiry(server: WireServer, idp: OAuth2StandIn) -> None:
    idp.expires_in = 600
    clock = Clock()
    sdk = config(provider("corp", server.url, {"type": "oauth2", "configuration": oauth2(idp)}))
    p = only(sdk, {"OAUTH_SECRET": CLIENT_SECRET}, clock)

    async def calls() -> None:
        await p.complete(request())
        clock.now += 500  # inside the lifetime less its margin (30 s)
        await p.complete(request())
        clock.now += 80  # 20 s before expiry: fetched anew
        await p.complete(request())
        await p.aclose()

    asyncio.run(calls())
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]
    assert idp.requests[0].grant_type == "client_credentials" and idp.requests[0].scope == "llm.invoke llm.read"


def test_top_level_oauth2_is_the_default_for_providers_naming_none(server: WireServer, idp: OAuth2StandIn) -> None:
    sdk = config(provider("corp", server.url, None), oauth2=oauth2(idp))
    complete(only(sdk, {"OAUTH_SECRET": CLIENT_SECRET}))
    assert server.requests[-1].headers["authorization"] == "Bearer token-1"
    assert idp.issued == 1


def test_a_refused_client_secret_names_the_client_not_the_secret(server: WireServer, idp: OAuth2StandIn) -> None:
    sdk = config(provider("corp", server.url, {"type": "oauth2", "configuration": oauth2(idp)}))
    with pytest.raises(AuthenticationError) as caught:
        complete(only(sdk, {"OAUTH_SECRET": "not-the-secret-value"}))
    assert f"refused client {CLIENT_ID!r}: HTTP 401: invalid_client" in str(caught.value)
    assert "not-the-secret-value" not in str(caught.value)
    assert server.requests == []


def test_a_token_endpoint_outage_is_transient(server: WireServer, idp: OAuth2StandIn) -> None:
    sdk = config(provider("corp", server.url, {"type": "oauth2", "configuration": oauth2(idp)}))
    idp.outage = 503
    with pytest.raises(ProviderUnavailable, match=r"token endpoint .*: HTTP 503: temporarily_unavailable"):
        complete(only(sdk, {"OAUTH_SECRET": CLIENT_SECRET}))


def test_a_401_race_of_ten_calls_makes_exactly_one_refresh(server: WireServer, idp: OAuth2StandIn) -> None:
    sdk = config(provider("corp", server.url, {"type": "oauth2", "configuration": oauth2(idp)}))
    p = only(sdk, {"OAUTH_SECRET": CLIENT_SECRET})
    auth = p._auth  # type: ignore[attr-defined]
    assert isinstance(auth, OAuth2ClientCredentials)
    server.authorize = idp.authorizes

    async def race() -> list[Any]:
        cold = await asyncio.gather(*(p.complete(request(text=f"cold {i}")) for i in range(10)))
        assert idp.issued == 1, "ten calls with no token yet share one token request"
        idp.revoke()  # the server stops accepting token-1 before the client expects
        results = await asyncio.gather(*(p.complete(request(text=f"call {i}")) for i in range(10)))
        await p.aclose()
        return cold + results

    results = asyncio.run(race())
    assert len(results) == 20
    assert idp.issued == 2 and auth.fetches == 2, "ten 401s share one refresh"
    sent = [r.headers["authorization"] for r in server.requests]
    assert sent.count("Bearer token-1") == 20 and sent.count("Bearer token-2") == 10


def test_a_second_401_after_the_refresh_is_an_authentication_error(server: WireServer, idp: OAuth2StandIn) -> None:
    sdk = config(provider("corp", server.url, {"type": "oauth2", "configuration": oauth2(idp)}))
    server.authorize = lambda headers: False
    with pytest.raises(AuthenticationError, match="HTTP 401"):
        complete(only(sdk, {"OAUTH_SECRET": CLIENT_SECRET}))
    assert idp.issued == 2 and len(server.requests) == 2, "refreshed once, then gave up"


# -- providers by name ----------------------------------------------------------------------------------------


def test_two_openai_compatible_providers_stay_distinct(server: WireServer, tmp_path: Path) -> None:
    with WireServer() as other:
        sdk = config(
            provider("ollama", server.url, api_key(apiKeyEnv="OLLAMA_KEY"), models=[_model("llama-local")]),
            provider("vllm", other.url, api_key(apiKeyEnv="VLLM_KEY"), models=[_model("qwen-local")]),
            defaultProvider="vllm",
        )
        router = ModelRouter.from_settings(tmp_path, sdk, environ={"OLLAMA_KEY": "key-ollama", "VLLM_KEY": "key-vllm"})

        async def calls() -> list[str]:
            answered = [(await router.complete(request(), model=m)).model for m in ("llama-local", "qwen-local")]
            await router.complete(request(), model="gpt-4o")  # both could serve it: defaultProvider does
            await router.aclose()
            return answered

        assert asyncio.run(calls()) == ["llama-local", "qwen-local"]
        assert [(r.json["model"], r.headers["authorization"]) for r in server.requests] == [
            ("llama-local", "Bearer key-ollama")
        ]
        assert [(r.json["model"], r.headers["authorization"]) for r in other.requests] == [
            ("qwen-local", "Bearer key-vllm"),
            ("gpt-4o", "Bearer key-vllm"),
        ]
    assert {"llama-local", "qwen-local"} <= set(router.available_models())


def _model(name: str) -> dict[str, Any]:
    return {"name": name, "capabilities": {"maxTokens": 8000, "supportsFunctions": True}}


def test_keyless_default_is_unchanged(tmp_path: Path) -> None:
    router = ModelRouter.from_settings(tmp_path, None, environ={})
    assert set(router.providers) == {"simulated"} and router.routes == {}
    assert detect_credentials(None, environ={"OPENAI_API_KEY": "sk-env"})["openai"].name == "openai"


# -- key rotation ---------------------------------------------------------------------------------------------


def rotating(url: str, clock: Clock, **rotation: Any) -> SDKConfiguration:
    start = datetime.fromtimestamp(clock.now, UTC)
    keys = [
        {"id": "k-old", "apiKeyEnv": "KEY_OLD", "createdAt": (start - timedelta(hours=10)).isoformat()},
        {"id": "k-new", "apiKeyEnv": "KEY_NEW", "createdAt": (start - timedelta(hours=1)).isoformat()},
    ]
    rotation = {"enabled": True, "rotationInterval": 24, "maxAge": 48, **rotation}
    return config(provider("rot", url, api_key(keys=keys)), apiKeyRotation=rotation)


KEYS = {"KEY_OLD": "value-of-old-key", "KEY_NEW": "value-of-new-key"}


def test_rotation_moves_new_calls_while_calls_in_flight_finish_on_theirs(server: WireServer) -> None:
    clock = Clock()
    p = only(rotating(server.url, clock), KEYS, clock)

    async def calls() -> None:
        server.script(delay=0.5)
        slow = asyncio.create_task(p.complete(request(text="slow")))
        while not server.requests:
            await asyncio.sleep(0.01)
        clock.now += 15 * 3600  # k-old is now 25 h old: past rotationInterval
        await p.complete(request(text="new"))
        await slow
        await p.aclose()

    asyncio.run(calls())
    sent = {r.json["messages"][-1]["content"]: r.headers["authorization"] for r in server.requests}
    assert sent == {"slow": "Bearer value-of-old-key", "new": "Bearer value-of-new-key"}


def test_a_key_past_max_age_is_refused_by_id_never_by_value(server: WireServer, tmp_path: Path) -> None:
    clock = Clock()
    p = only(rotating(server.url, clock), KEYS, clock)
    ring = p._auth  # type: ignore[attr-defined]
    assert isinstance(ring, KeyRing) and ring.current().id == "k-old"
    clock.now += 48 * 3600  # every key past 48 h
    with pytest.raises(AuthenticationError) as caught:
        complete(p)
    text = str(caught.value)
    assert "key 'k-new' (apiKeyEnv KEY_NEW)" in text and "past apiKeyRotation.maxAge (48 h)" in text
    assert "value-of" not in text and server.requests == []


def test_the_router_moves_on_from_a_refused_key(server: WireServer, tmp_path: Path) -> None:
    clock = Clock()
    router = ModelRouter.from_settings(tmp_path, rotating(server.url, clock), environ=KEYS, clock=clock)
    clock.now += 60 * 3600
    answer = asyncio.run(router.complete(request(), model="gpt-4o"))  # served by "rot", the one openai provider
    assert answer.model == "simulated" and "past apiKeyRotation.maxAge" in answer.skipped[0].error
    assert server.requests == []
