"""Who may call the HTTP API: API keys, their roles, and each role's seed 002 permissions.

Seed 002's ``AccessControlConfig`` holds a flat permission list and the rate
limit; it names no roles. Here each role is such a permission list, and every
API key belongs to one role. Keys are never stored in configuration: a key is
given by the SHA-256 of its value or by the environment variable that holds it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ._base import CamelModel, NonEmptyStr
from .sdk_config import AccessControlConfig, Permission

Action = Literal["create", "read", "update", "delete"]

API_RESOURCES: tuple[str, ...] = (
    "templates",
    "agents",
    "teams",
    "tasks",
    "workflows",
    "deployments",
    "runs",
    "approvals",
    "events",
)
"""What the API's permissions name (``*`` in a permission means all of them)."""

_ALL_ACTIONS: list[Action] = ["create", "read", "update", "delete"]

DEFAULT_ROLES: dict[str, list[Permission]] = {
    "viewer": [Permission(resource="*", actions=["read"])],
    "operator": [
        Permission(resource="*", actions=["read"]),
        Permission(resource="runs", actions=["create"]),
        Permission(resource="approvals", actions=["update"]),
    ],
    "admin": [Permission(resource="*", actions=list(_ALL_ACTIONS))],
}


class ApiKeyConfig(CamelModel):
    """One API key: its name (shown in logs and as the approver), its role, and where its value is."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]+$", max_length=64)]
    role: NonEmptyStr
    key_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """Hex SHA-256 of the key's value (``agentparty api key`` prints both)."""
    key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    """Environment variable holding the key's value."""

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeyConfig:
        if (self.key_sha256 is None) == (self.key_env is None):
            raise ValueError("an API key needs exactly one of 'keySha256' or 'keyEnv'")
        return self


class ApiAccessConfig(CamelModel):
    """The API's access configuration file (``AGENTPARTY_API_ACCESS``)."""

    access_control: AccessControlConfig = Field(default_factory=AccessControlConfig)
    """Seed 002: ``rbac`` (off: any valid key may do anything), ``permissions`` (granted to every key, on top
    of its role's) and ``rateLimiting`` (per key)."""
    roles: dict[NonEmptyStr, list[Permission]] = Field(default_factory=lambda: dict(DEFAULT_ROLES))
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> ApiAccessConfig:
        problems = []
        names = [key.name for key in self.api_keys]
        for duplicate in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"apiKeys: name {duplicate!r} is used more than once")
        for index, key in enumerate(self.api_keys):
            if key.role not in self.roles:
                problems.append(
                    f"apiKeys.{index}.role: unknown role {key.role!r} (roles: {', '.join(sorted(self.roles))})"
                )
        for role, permissions in self.roles.items():
            for index, permission in enumerate([*permissions]):
                if permission.resource != "*" and permission.resource not in API_RESOURCES:
                    problems.append(
                        f"roles.{role}.{index}.resource: unknown resource {permission.resource!r} "
                        f"(one of {', '.join(API_RESOURCES)} or '*')"
                    )
                if permission.conditions:
                    problems.append(f"roles.{role}.{index}.conditions: conditions are not supported by the API")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def permissions_of(self, role: str) -> list[Permission]:
        return [*self.roles.get(role, []), *self.access_control.permissions]

    def allows(self, role: str, resource: str, action: Action) -> bool:
        if not self.access_control.rbac:
            return True
        return any((p.resource in ("*", resource)) and action in p.actions for p in self.permissions_of(role))
