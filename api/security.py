"""API keys, roles and permissions (seed 002 ``AccessControlConfig``) as FastAPI dependencies.

A request names its key in ``X-API-Key`` (or ``Authorization: Bearer KEY``);
a WebSocket may also pass ``?api_key=`` because browsers cannot set headers
on one. No key, or an unknown one: 401. A key whose role lacks the permission:
403. Keys are compared by SHA-256 digest in constant time, never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fastapi import HTTPException, Request, Security, WebSocket, WebSocketException, status
from fastapi.security import APIKeyHeader

from agentparty.models.access import Action, ApiAccessConfig

API_KEY_HEADER = "X-API-Key"
_api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="An API key (agentparty api key).")
"""Declared so that OpenAPI documents the key and Swagger UI's Authorize button sends it; checked below."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's configured name and its role."""

    name: str
    role: str


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AccessPolicy:
    """Resolves keys to principals and answers permission questions; lives on ``app.state.access``."""

    def __init__(self, config: ApiAccessConfig, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        environ = os.environ if environ is None else environ
        self._digests: dict[str, Principal] = {}
        for key in config.api_keys:
            if key.key_sha256 is not None:
                digest = key.key_sha256
            else:
                value = environ.get(key.key_env or "", "")
                if not value:
                    continue  # a key whose variable is unset grants nothing (reported by `agentparty api`)
                digest = key_digest(value)
            self._digests[digest] = Principal(key.name, key.role)

    def principal_for(self, key: str | None) -> Principal | None:
        if not key:
            return None
        digest = key_digest(key)
        for known, principal in self._digests.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None

    def allows(self, principal: Principal, resource: str, action: Action) -> bool:
        return self.config.allows(principal.role, resource, action)


def _presented_key(headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
    key = headers.get(API_KEY_HEADER.lower()) or headers.get(API_KEY_HEADER)
    if key:
        return key
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return query.get("api_key") if query else None


def require(resource: str, action: Action) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal, if its role may ``action`` on ``resource``."""

    async def dependency(request: Request, _declared: str | None = Security(_api_key_scheme)) -> Principal:
        policy: AccessPolicy = request.app.state.access
        principal = policy.principal_for(_presented_key(request.headers))
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=f"missing or unknown API key (send it in {API_KEY_HEADER})",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not policy.allows(principal, resource, action):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {principal.role!r} of key {principal.name!r} may not {action} {resource}",
            )
        await _admit(request.app, principal)
        return principal

    return dependency


async def authorize_websocket(websocket: WebSocket, resource: str, action: Action) -> Principal:
    """The WebSocket's principal; closes the handshake with policy violation (1008) otherwise."""
    policy: AccessPolicy = websocket.app.state.access
    principal = policy.principal_for(_presented_key(websocket.headers, websocket.query_params))
    if principal is None:
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, reason="missing or unknown API key")
    if not policy.allows(principal, resource, action):
        raise WebSocketException(
            status.WS_1008_POLICY_VIOLATION, reason=f"role {principal.role!r} may not {action} {resource}"
        )
    return principal


async def _admit(app: object, principal: Principal) -> None:
    """Rate limiting per key (seed 002 ``RateLimitConfig``): see ``agentparty.api.rate_limit``."""
    limiter = getattr(getattr(app, "state", None), "rate_limiter", None)
    if limiter is not None:
        await limiter.admit(principal.name)
