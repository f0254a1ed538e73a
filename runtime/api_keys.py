"""The HTTP API's key list: SHA-256 digests of keys, their names, roles, ages and last use.

Keys themselves are never stored: ``agentparty api key create`` and
``rotate-key`` print a new key once and keep its digest here, in
``<home>/state/api-keys.sqlite`` (through :func:`~agentparty.runtime.state_db.state_db`,
so the CLI and a running API share it). The rules that say what a key's role
may do live in ``security.accessControl`` of the SDK configuration; this file
only says which keys exist.

A name may hold several keys at once: rotating a name gives it a new key and
leaves the old one valid until the end of an overlap window
(``valid_until``), so clients can move over without an outage. A revoked key,
one past its overlap, or (with ``authentication.apiKeyRotation.enabled``) one
older than ``maxAge`` authenticates nobody, and :func:`refusal` says why.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from agentparty.models.authentication import ApiKeyRotationConfig
from agentparty.runtime.state_db import state_db

KEY_PREFIX = "ap_"
HOUR_S = 3600.0
DEFAULT_OVERLAP_HOURS = 24.0
"""How long a rotated key stays valid beside its successor unless ``--overlap`` says otherwise."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at REAL NOT NULL,
    valid_until REAL,
    revoked_at REAL,
    last_used_at REAL
);
CREATE INDEX IF NOT EXISTS api_keys_by_name ON api_keys (name);
"""


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeyRecord:
    digest: str
    name: str
    role: str
    created_at: float
    """Seconds since the epoch."""
    valid_until: float | None = None
    """End of the overlap window once the key was rotated; None while it is the name's current key."""
    revoked_at: float | None = None
    last_used_at: float | None = None

    @property
    def current(self) -> bool:
        return self.valid_until is None and self.revoked_at is None


def refusal(record: ApiKeyRecord, rotation: ApiKeyRotationConfig, now: float) -> str | None:
    """Why ``record`` may not authenticate at ``now`` (the 401's detail), or None when it may."""
    if record.revoked_at is not None:
        return f"API key {record.name!r} was revoked at {_iso(record.revoked_at)}"
    if record.valid_until is not None and now >= record.valid_until:
        return f"API key {record.name!r} was rotated; its overlap window ended at {_iso(record.valid_until)}"
    if rotation.enabled and now - record.created_at >= rotation.max_age * HOUR_S:
        return (
            f"API key {record.name!r} is older than maxAge ({rotation.max_age} h, "
            f"authentication.apiKeyRotation.maxAge): rotate it with `agentparty api rotate-key {record.name}`"
        )
    return None


def due_for_rotation(record: ApiKeyRecord, rotation: ApiKeyRotationConfig, now: float) -> bool:
    """True for a current key older than ``rotationInterval`` (with rotation enabled)."""
    return rotation.enabled and record.current and now - record.created_at >= rotation.rotation_interval * HOUR_S


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class ApiKeyProblem(LookupError):
    """A key operation that names no key, or a key that exists already."""


class ApiKeyStore:
    """The key list of one home; safe to share between processes (the CLI rotates while the API serves)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    @classmethod
    def at(cls, home: Path) -> ApiKeyStore:
        return cls(home / "state" / "api-keys.sqlite")

    def exists(self) -> bool:
        return self.path.exists()

    def _schema(self) -> None:
        if not self._ready:
            with state_db(self.path) as db:
                db.executescript(_SCHEMA)
            self._ready = True

    def records(self, name: str | None = None) -> list[ApiKeyRecord]:
        """Every key (of ``name``), oldest first."""
        if not self.path.exists():
            return []
        self._schema()
        with state_db(self.path) as db:
            query = "SELECT digest, name, role, created_at, valid_until, revoked_at, last_used_at FROM api_keys"
            rows = (
                db.execute(query + " WHERE name = ? ORDER BY created_at", (name,))
                if name is not None
                else db.execute(query + " ORDER BY created_at")
            ).fetchall()
        return [ApiKeyRecord(*row) for row in rows]

    def add_digest(self, name: str, role: str, digest: str, created_at: float | None = None) -> bool:
        """Record a key by its digest (imported from the old access file); False when that digest is known."""
        self._schema()
        with state_db(self.path, write=True) as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO api_keys (digest, name, role, created_at) VALUES (?, ?, ?, ?)",
                (digest, name, role, time.time() if created_at is None else created_at),
            )
            return cursor.rowcount == 1

    def create(self, name: str, role: str) -> tuple[str, ApiKeyRecord]:
        """A new key for a new name: the key (shown once) and its record. A name with a current key is refused."""
        if any(record.current for record in self.records(name)):
            raise ApiKeyProblem(f"API key {name!r} exists: rotate it (`agentparty api rotate-key {name}`) or revoke it")
        key = new_key()
        record = ApiKeyRecord(key_digest(key), name, role, time.time())
        self.add_digest(name, role, record.digest, record.created_at)
        return key, record

    def rotate(self, name: str, overlap_hours: float = DEFAULT_OVERLAP_HOURS) -> tuple[str, ApiKeyRecord]:
        """A new key for ``name`` with the role of its current key; the current ones stay valid ``overlap_hours``."""
        self._schema()
        key = new_key()
        now = time.time()
        with state_db(self.path, write=True) as db:
            row = db.execute(
                "SELECT role FROM api_keys WHERE name = ? AND valid_until IS NULL AND revoked_at IS NULL "
                "ORDER BY created_at DESC LIMIT 1",
                (name,),
            ).fetchone()
            if row is None:
                raise ApiKeyProblem(f"no current API key named {name!r} (`agentparty api keys` lists them)")
            db.execute(
                "UPDATE api_keys SET valid_until = ? WHERE name = ? AND valid_until IS NULL AND revoked_at IS NULL",
                (now + overlap_hours * HOUR_S, name),
            )
            record = ApiKeyRecord(key_digest(key), name, str(row[0]), now)
            db.execute(
                "INSERT INTO api_keys (digest, name, role, created_at) VALUES (?, ?, ?, ?)",
                (record.digest, name, record.role, now),
            )
        return key, record

    def revoke(self, name: str) -> int:
        """Revoke every key of ``name`` at once (overlap or not); how many were still valid."""
        self._schema()
        with state_db(self.path, write=True) as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (time.time(), name)
            )
            return cursor.rowcount

    def touch(self, last_used: dict[str, float]) -> None:
        """Record when keys (by digest) were last used; one transaction for all of them."""
        if not last_used:
            return
        self._schema()
        with state_db(self.path, write=True) as db:
            db.executemany(
                "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE digest = ?",
                [(at, digest) for digest, at in last_used.items()],
            )
