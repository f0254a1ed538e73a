"""API keys, roles and permissions (seed 002 ``AccessControlConfig``) as FastAPI dependencies.

A request names its key in ``X-API-Key`` (or ``Authorization: Bearer KEY``);
a WebSocket may also pass ``?api_key=`` because browsers cannot set headers
on one. No key, an unknown one, or one revoked, past its rotation overlap or
older than ``maxAge``: 401 with the reason. A key whose role lacks the
permission, or whose permission's conditions leave the object out: 403. Keys
are compared by SHA-256 digest, never stored.

Keys come from the key list (``runtime/api_keys.py``, which the CLI changes
while the API serves: it is read again at most every
:data:`RELOAD_S` seconds) and from the deprecated access file's ``apiKeys``.
When each key was last used is written back at most every
:data:`LAST_USED_EVERY_S` seconds per key, so a request costs no disk write.
Refusals are noted on the request (``request.state.audit_reason``) for the
audit log (``api/audit.py``).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request, Security, WebSocket, WebSocketException, status
from fastapi.security import APIKeyHeader

from agentparty.models.access import Action, ApiAccessConfig, Scope
from agentparty.models.authentication import ApiKeyRotationConfig
from agentparty.runtime.api_keys import ApiKeyRecord, ApiKeyStore, key_digest, refusal
from agentparty.runtime.telemetry_metrics import record_api_refusal

API_KEY_HEADER = "X-API-Key"
_api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="An API key (agentparty api key).")
"""Declared so that OpenAPI documents the key and Swagger UI's Authorize button sends it; checked below."""

RELOAD_S = 1.0
"""A key created, rotated or revoked from the CLI takes effect in a running API within this many seconds."""
LAST_USED_EVERY_S = 60.0
"""Each key's ``last_used_at`` is written at most this often."""

__all__ = ["API_KEY_HEADER", "AccessPolicy", "Principal", "key_digest", "require"]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and role, and what the route's permission lets it reach."""

    name: str
    role: str
    scope: Scope = field(default_factory=Scope)


class AccessPolicy:
    """Resolves keys to principals and answers permission questions; lives on ``app.state.access``."""

    def __init__(
        self,
        config: ApiAccessConfig,
        environ: Mapping[str, str] | None = None,
        *,
        keys: ApiKeyStore | None = None,
        rotation: ApiKeyRotationConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.keys = keys
        self.rotation = rotation or ApiKeyRotationConfig()
        self.clock = clock
        environ = os.environ if environ is None else environ
        self._static: dict[str, Principal] = {}
        for key in config.api_keys:
            if key.key_sha256 is not None:
                digest = key.key_sha256
            else:
                value = environ.get(key.key_env or "", "")
                if not value:
                    continue  # a key whose variable is unset grants nothing (reported by `agentparty api`)
                digest = key_digest(value)
            self._static[digest] = Principal(key.name, key.role)
        self._records: dict[str, ApiKeyRecord] = {}
        self._loaded_at = float("-inf")
        self._written: dict[str, float] = {}

    def reload(self) -> None:
        """Read the key list again now (the CLI changed it)."""
        self._records = {r.digest: r for r in self.keys.records()} if self.keys is not None else {}
        self._loaded_at = time.monotonic()

    def _record(self, digest: str) -> ApiKeyRecord | None:
        if self.keys is None:
            return None
        if time.monotonic() - self._loaded_at >= RELOAD_S:
            self.reload()
        return self._records.get(digest)

    def authenticate(self, key: str | None) -> Principal | str:
        """The key's principal, or why it authenticates nobody."""
        if not key:
            return f"missing API key (send it in {API_KEY_HEADER})"
        digest = key_digest(key)
        for known, principal in self._static.items():
            if hmac.compare_digest(known, digest):
                return principal
        record = self._record(digest)  # a dict lookup by digest: the digest of a guess reveals nothing
        if record is None:
            return "unknown API key"
        reason = refusal(record, self.rotation, self.clock())
        if reason is not None:
            return reason
        self._used(record)
        return Principal(record.name, record.role)

    def principal_for(self, key: str | None) -> Principal | None:
        found = self.authenticate(key)
        return found if isinstance(found, Principal) else None

    def _used(self, record: ApiKeyRecord) -> None:
        now = self.clock()
        if now - self._written.get(record.digest, float("-inf")) < LAST_USED_EVERY_S:
            return
        self._written[record.digest] = now
        store = self.keys
        if store is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            store.touch({record.digest: now})
            return
        loop.run_in_executor(None, store.touch, {record.digest: now})

    def allows(self, principal: Principal, resource: str, action: Action) -> bool:
        return self.config.allows(principal.role, resource, action)

    def scope(self, principal: Principal, resource: str, action: Action) -> Scope:
        return self.config.scope(principal.role, resource, action)


def _presented_key(headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
    key = headers.get(API_KEY_HEADER.lower()) or headers.get(API_KEY_HEADER)
    if key:
        return key
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return query.get("api_key") if query else None


def refuse(request: Request | WebSocket, code: int, reason: str, **headers: str) -> HTTPException:
    """An HTTP refusal whose reason the audit log records with the request."""
    request.state.audit_reason = reason
    return HTTPException(code, detail=reason, headers=headers or None)


def outside_scope(principal: Principal, what: str) -> str:
    return f"key {principal.name!r} may not reach {what}: outside its permission's conditions"


def require(resource: str, action: Action, *, creates_own: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal, if its role may ``action`` on ``resource``. A route with a
    ``workflow_id`` path parameter is refused here (403) when the permission's conditions exclude it;
    ``creates_own``: the route creates an object owned by the key (a run it starts)."""

    async def dependency(request: Request, _declared: str | None = Security(_api_key_scheme)) -> Principal:
        policy: AccessPolicy = request.app.state.access
        found = policy.authenticate(_presented_key(request.headers))
        if not isinstance(found, Principal):
            raise refuse(request, status.HTTP_401_UNAUTHORIZED, found, **{"WWW-Authenticate": "Bearer"})
        request.state.principal = found.name
        if not policy.allows(found, resource, action):
            reason = f"role {found.role!r} of key {found.name!r} may not {action} {resource}"
            raise refuse(request, status.HTTP_403_FORBIDDEN, reason)
        principal = Principal(found.name, found.role, policy.scope(found, resource, action))
        workflow_id = request.path_params.get("workflow_id")
        if workflow_id is not None and not _path_in_scope(principal, creates_own, str(workflow_id)):
            raise refuse(request, status.HTTP_403_FORBIDDEN, outside_scope(principal, f"workflow {workflow_id!r}"))
        await _admit(request.app, principal)
        return principal

    return dependency


def _path_in_scope(principal: Principal, creates_own: bool, workflow_id: str) -> bool:
    """A run the key starts will be its own, so ``owner: self`` holds for it; what a route addresses by
    workflow alone (webhook deliveries, their requeue) has no owning key, so ``owner: self`` excludes it."""
    if creates_own:
        return principal.scope.reaches_workflow(workflow_id)
    return principal.scope.admits(principal.name, workflow_id)


async def authorize_websocket(websocket: WebSocket, resource: str, action: Action) -> Principal:
    """The WebSocket's principal, with what its permission's conditions let it reach (the caller filters by
    them); closes the handshake with policy violation (1008) when the key or its role does not do."""
    policy: AccessPolicy = websocket.app.state.access
    found = policy.authenticate(_presented_key(websocket.headers, websocket.query_params))
    if not isinstance(found, Principal):
        websocket.state.audit_reason = found
        record_api_refusal(401)  # no HTTP status to count it by: a handshake closed 1008
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, reason=found)
    websocket.state.principal = found.name
    if not policy.allows(found, resource, action):
        reason = f"role {found.role!r} may not {action} {resource}"
        websocket.state.audit_reason = reason
        record_api_refusal(403)
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, reason=reason)
    return Principal(found.name, found.role, policy.scope(found, resource, action))


async def _admit(app: Any, principal: Principal) -> None:
    """Rate limiting per key (seed 002 ``RateLimitConfig``): see ``agentparty.api.rate_limit``."""
    limiter = getattr(getattr(app, "state", None), "rate_limiter", None)
    if limiter is not None:
        await limiter.admit(principal.name)
