"""``communication.connectionPool`` (seed 002) as the provider SDK clients' HTTP pool.

The OpenAI, Anthropic and Google SDKs all send through an httpx (``httpx2``)
client that each provider makes once; given one of ours, built here, they keep at
most ``maxConnections`` connections open and close a connection idle for
``idleTimeout`` ms (``httpx2.Limits``). ``maxReuseCount`` has no httpx
equivalent and is refused at load (``models/sdk_config.py``).

Google's SDK otherwise sends through aiohttp with no connection limit (one
session per event loop); handed an httpx client it sends through that instead,
its documented alternative, so the same limits hold for all three providers.
"""

from __future__ import annotations

from typing import Any

import httpx2

from agentparty.models.sdk_config import ConnectionPoolConfig


def pool_limits(pool: ConnectionPoolConfig) -> httpx2.Limits:
    """``maxConnections`` open at once (all of them may stay alive), closed after ``idleTimeout`` ms idle."""
    return httpx2.Limits(
        max_connections=pool.max_connections,
        max_keepalive_connections=pool.max_connections,
        keepalive_expiry=pool.idle_timeout / 1000,
    )


def sdk_http_client(default_client: type[Any], pool: ConnectionPoolConfig | None, timeout: float) -> Any | None:
    """An OpenAI or Anthropic SDK's own default client class (``DefaultAsyncHttpxClient``: its redirects and
    timeouts) with the pool's limits; None without a pool (the SDK's defaults)."""
    if pool is None:
        return None
    return default_client(limits=pool_limits(pool), timeout=timeout)


def google_http_client(pool: ConnectionPoolConfig | None, timeout: float) -> httpx2.AsyncClient | None:
    """An httpx client with the pool's limits for google-genai's ``HttpOptions.httpx_async_client``."""
    if pool is None:
        return None
    return httpx2.AsyncClient(limits=pool_limits(pool), timeout=timeout, follow_redirects=True)
