"""Who may call the HTTP API: roles, their seed 002 permissions and the conditions those carry.

Seed 002's ``AccessControlConfig`` (``security.accessControl`` of the SDK
configuration) holds a flat permission list and the rate limit; it names no
roles. Here each role is such a permission list (``accessControl.roles``, the
built-in viewer/operator/admin when unset), and every API key belongs to one
role. Keys are never stored in configuration: the key list
(``runtime/api_keys.py``) holds their SHA-256 digests; the deprecated access
file (``AGENTPARTY_API_ACCESS``) may still name keys by digest or by the
environment variable that holds them.

A permission's ``conditions`` narrow what it grants: ``workflows`` (a list of
workflow ids) and ``owner: self`` (runs the key started). A conditional
permission grants only on resources whose objects carry what it checks
(:data:`CONDITION_FIELDS`); elsewhere it grants nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ._base import CamelModel, NonEmptyStr
from .graph_keys import stable_id
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
    "audit",
    "users",
    "metrics",
)
"""What the API's permissions name (``*`` in a permission means all of them)."""

CONDITION_FIELDS: dict[str, frozenset[str]] = {
    "workflows": frozenset({"workflows"}),
    "runs": frozenset({"workflows", "owner"}),
    "approvals": frozenset({"workflows", "owner"}),
    "events": frozenset({"workflows", "owner"}),
}
"""Which conditions each resource's objects can be checked against: a workflow has an id, a run (and the
approval it waits on, and the live messages ``/ws`` sends about it) a workflow and the key that started it."""

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
"""``audit`` and ``users`` (erasure, export) are for admins only: the viewer's and operator's ``*`` reads stop
short of them."""

ADMIN_ONLY: frozenset[str] = frozenset({"audit", "users"})
"""Resources a ``*`` permission does not reach unless it grants every action (the admin's)."""


@dataclass(frozen=True)
class Scope:
    """What a key may touch of one resource: everything (``alternatives`` None), or objects that meet every
    condition of at least one of its conditional permissions."""

    alternatives: tuple[Mapping[str, Any], ...] | None = None

    @property
    def restricted(self) -> bool:
        return self.alternatives is not None

    def admits(self, me: str, workflow_id: str | None, owner: str | None = None) -> bool:
        """Whether an object of ``workflow_id`` started by ``owner`` is within reach of key ``me``; None for
        either means the object has none (a condition on it then fails)."""
        if self.alternatives is None:
            return True
        return any(_holds(conditions, me, workflow_id, owner) for conditions in self.alternatives)

    def workflows(self) -> frozenset[str] | None:
        """The workflow ids it admits when every alternative names some; None when some admit any workflow."""
        if self.alternatives is None or any("workflows" not in c for c in self.alternatives):
            return None
        return frozenset(w for c in self.alternatives for w in c["workflows"])

    def reaches_workflow(self, workflow_id: str) -> bool:
        """Whether some object of ``workflow_id`` may be within reach (its runs may still be filtered by owner)."""
        return self.alternatives is None or any(
            "workflows" not in c or workflow_id in c["workflows"] for c in self.alternatives
        )

    def owner_only(self) -> bool:
        """True when every alternative requires the key's own runs."""
        return self.alternatives is not None and all(c.get("owner") == "self" for c in self.alternatives)


OWNER_TAG_PREFIX = "agentparty.owner:"


def owner_tag(name: str) -> str:
    """The flow-run tag that records which API key started a run."""
    return OWNER_TAG_PREFIX + name


def run_owner(tags: list[str] | tuple[str, ...]) -> str | None:
    """The key that started a run, from its tags; None for runs not started over the API."""
    return next((t[len(OWNER_TAG_PREFIX) :] for t in tags if t.startswith(OWNER_TAG_PREFIX)), None)


def owner_ref(name: str) -> str:
    """What a run's events and live stream items carry as its owner: a UUID derived from the key's name (never
    the key). Not the name itself: data masking would rewrite a name that looks like an e-mail address, and
    events on the broker need not name anyone; ``/ws`` compares it with the ref of the connected key's name."""
    return stable_id("api-key-owner", name)


def _holds(conditions: Mapping[str, Any], me: str, workflow_id: str | None, owner: str | None) -> bool:
    if "workflows" in conditions and workflow_id not in conditions["workflows"]:
        return False
    return not (conditions.get("owner") == "self" and owner != me)


class ApiKeyConfig(CamelModel):
    """One API key of the (deprecated) access file: its name, its role, and where its value is."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]+$", max_length=64)]
    role: NonEmptyStr
    key_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """Hex SHA-256 of the key's value."""
    key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    """Environment variable holding the key's value."""

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeyConfig:
        if (self.key_sha256 is None) == (self.key_env is None):
            raise ValueError("an API key needs exactly one of 'keySha256' or 'keyEnv'")
        return self


class ApiAccessConfig(CamelModel):
    """The API's rules and static keys: built from ``security.accessControl``, or read from the deprecated access
    file (``AGENTPARTY_API_ACCESS``), whose ``roles`` may also sit in ``accessControl.roles``."""

    access_control: AccessControlConfig = Field(default_factory=AccessControlConfig)
    """Seed 002: ``rbac`` (off: any valid key may do anything), ``permissions`` (granted to every key, on top
    of its role's) and ``rateLimiting`` (per key)."""
    roles: dict[NonEmptyStr, list[Permission]] = Field(default_factory=lambda: dict(DEFAULT_ROLES))
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)

    @classmethod
    def of(cls, access_control: AccessControlConfig) -> ApiAccessConfig:
        """The rules of an SDK configuration's ``security.accessControl`` (keys come from the key list)."""
        return cls.model_validate({"access_control": access_control})

    @model_validator(mode="before")
    @classmethod
    def _roles_of_access_control(cls, data: Any) -> Any:
        """``accessControl.roles`` (where the SDK configuration keeps them) become the roles."""
        if not isinstance(data, dict):
            return data
        control = data.get("accessControl", data.get("access_control"))
        roles = control.get("roles") if isinstance(control, dict) else getattr(control, "roles", None)
        if roles is None:
            return data
        if "roles" in data:
            raise ValueError("give roles once: in 'roles' or in 'accessControl.roles', not both")
        return {**data, "roles": roles}

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
        listed = [(f"roles.{role}", permissions) for role, permissions in self.roles.items()]
        for where, permissions in [*listed, ("accessControl.permissions", self.access_control.permissions)]:
            for index, permission in enumerate(permissions):
                problems.extend(_permission_problems(f"{where}.{index}", permission))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def permissions_of(self, role: str) -> list[Permission]:
        return [*self.roles.get(role, []), *self.access_control.permissions]

    def _granting(self, role: str, resource: str, action: Action) -> list[Permission]:
        usable = CONDITION_FIELDS.get(resource, frozenset())
        return [
            p
            for p in self.permissions_of(role)
            if _reaches(p, resource) and action in p.actions and set(p.conditions or ()) <= usable
        ]

    def allows(self, role: str, resource: str, action: Action) -> bool:
        if not self.access_control.rbac:
            return True
        return bool(self._granting(role, resource, action))

    def scope(self, role: str, resource: str, action: Action) -> Scope:
        """What ``role`` may ``action`` of ``resource`` (meaningful where :meth:`allows` is True)."""
        granting = self._granting(role, resource, action) if self.access_control.rbac else []
        if not self.access_control.rbac or any(not p.conditions for p in granting):
            return Scope()
        return Scope(tuple(p.conditions or {} for p in granting))


def _reaches(permission: Permission, resource: str) -> bool:
    if permission.resource == resource:
        return True
    return permission.resource == "*" and (resource not in ADMIN_ONLY or len(permission.actions) == len(_ALL_ACTIONS))


def _permission_problems(where: str, permission: Permission) -> list[str]:
    problems = []
    if permission.resource != "*" and permission.resource not in API_RESOURCES:
        problems.append(
            f"{where}.resource: unknown resource {permission.resource!r} (one of {', '.join(API_RESOURCES)} or '*')"
        )
    elif permission.conditions and permission.resource != "*":
        usable = CONDITION_FIELDS.get(permission.resource, frozenset())
        where_they_apply = "; ".join(f"{r}: {', '.join(sorted(c))}" for r, c in CONDITION_FIELDS.items())
        for name in sorted(set(permission.conditions) - usable):
            problems.append(
                f"{where}.conditions.{name}: cannot be checked on {permission.resource} "
                f"(conditions apply to {where_they_apply})"
            )
    return problems
