"""``communication.connectionPool``: the provider SDK clients open at most ``maxConnections`` at once.

Through the real OpenAI, Anthropic and Google SDKs against the local wire server
(``support/llm_wire.py``): six calls that each take 0.4 s at the server, made at
once, finish in one wave when six connections are allowed and in three when two are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.llm_wire import WireServer

from agentparty.models.messages import UserMessage
from agentparty.models.sdk_config import ConnectionPoolConfig
from agentparty.runtime.providers.anthropic_provider import AnthropicProvider
from agentparty.runtime.providers.base import CompletionRequest, Provider
from agentparty.runtime.providers.google_provider import GoogleProvider
from agentparty.runtime.providers.openai_provider import OpenAIProvider

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

CALLS, DELAY = 6, 0.4
Make = Callable[[str, ConnectionPoolConfig], Provider]
PROVIDERS: dict[str, tuple[str, Make]] = {
    "openai": ("gpt-wire-1", lambda url, pool: OpenAIProvider("test-key", url + "/v1", 10.0, pool=pool)),
    "anthropic": ("claude-wire-1", lambda url, pool: AnthropicProvider("test-key", url, 10.0, pool=pool)),
    "google": ("gemini-wire-1", lambda url, pool: GoogleProvider("test-key", url, 10.0, pool=pool)),
}


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "anthropic-config"))


@pytest.fixture(scope="module")
def wire() -> Iterator[WireServer]:
    with WireServer() as server:
        yield server


def calls_at_once(wire: WireServer, name: str, pool: ConnectionPoolConfig) -> float:
    """Seconds for CALLS calls made at once, each answered after DELAY."""
    model, make = PROVIDERS[name]
    wire.reset()
    for _ in range(CALLS):
        wire.script(delay=DELAY)
    provider = make(wire.url, pool)
    request = CompletionRequest(model=model, messages=(UserMessage(content="hi", user_id="u", session_id="s"),))

    async def run() -> float:
        try:
            started = time.perf_counter()
            await asyncio.gather(*(provider.complete(request) for _ in range(CALLS)))
            return time.perf_counter() - started
        finally:
            await provider.aclose()

    elapsed = asyncio.run(run())
    assert len(wire.requests) == CALLS
    return elapsed


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_max_connections_bounds_the_calls_in_flight(wire: WireServer, name: str) -> None:
    two = calls_at_once(wire, name, ConnectionPoolConfig(max_connections=2))
    six = calls_at_once(wire, name, ConnectionPoolConfig(max_connections=6))
    assert two >= 3 * DELAY * 0.95, f"two connections: three waves of {DELAY} s, took {two:.2f} s"
    assert six < 2 * DELAY, f"six connections: one wave, took {six:.2f} s"


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_idle_timeout_is_the_pools_keepalive_expiry(wire: WireServer, name: str) -> None:
    """httpx's pool closes a connection idle longer than its keepalive expiry (read from the pool itself)."""
    model, make = PROVIDERS[name]
    provider = make(wire.url, ConnectionPoolConfig(max_connections=3, idle_timeout=1500))
    sdk = provider._sdk(model)  # type: ignore[attr-defined]  # the adapter's SDK client, made on first use
    http = provider._http if isinstance(provider, GoogleProvider) else sdk._client
    pool = http._transport._pool
    assert (pool._max_connections, pool._max_keepalive_connections, pool._keepalive_expiry) == (3, 3, 1.5)
    asyncio.run(provider.aclose())
