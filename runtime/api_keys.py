"""The HTTP API's key list: SHA-256 digests of keys, their names, roles, ages and last use.

Keys themselves are never stored: ``agentparty api key create`` and
``rotate-key`` print a new key once and keep its digest here, in the engine's
state backend (``runtime/state_backend.py``): ``<home>/state/api-keys.sqlite``
on one machine, so the CLI and a running API share it, or the shared PostgreSQL
schema, so every API replica on every host knows the same keys and their last
use. The rules that say what a key's role
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
from agentparty.runtime.settings import state_backend_at
from agentparty.runtime.state_backend import Migration, SqliteBackend, StateBackend, as_backend

KEY_PREFIX = "ap_"
HOUR_S = 3600.0
DEFAULT_OVERLAP_HOURS = 24.0
"""How long a rotated key stays valid beside its successor unless ``--overlap`` says otherwise."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at {real} NOT NULL,
    valid_until {real},
    revoked_at {real},
    last_used_at {real}
);
CREATE INDEX IF NOT EXISTS api_keys_by_name ON api_keys (name)
"""
MIGRATIONS = (Migration(1, sqlite=_SCHEMA.format(real="REAL"), postgresql=_SCHEMA.format(real="DOUBLE PRECISION")),)
_RECORD = "SELECT digest, name, role, created_at, valid_until, revoked_at, last_used_at FROM api_keys"


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
    """The key list of one home, or of every host sharing PostgreSQL; safe to share between processes (the
    CLI rotates while the API serves)."""

    STORE = "api-keys"
    """The store's name: ``state/api-keys.sqlite`` on SQLite, its schema version's key on PostgreSQL."""

    def __init__(self, where: StateBackend | Path) -> None:
        """``where``: the state backend, or the path of a SQLite file of the store's own."""
        self.backend = as_backend(where)
        self.path = self.backend.path(self.STORE) if isinstance(self.backend, SqliteBackend) else None
        """The SQLite file, when the store is one; None on PostgreSQL."""
        self._ready = False

    @classmethod
    def at(cls, home: Path, backend: StateBackend | None = None) -> ApiKeyStore:
        """The keys of ``home``: in ``backend``, by default where the settings keep engine state."""
        return cls(backend or state_backend_at(home))

    @property
    def location(self) -> str:
        """Where the keys are kept, for messages: the file, or the database."""
        return str(self.path) if self.path is not None else self.backend.describe()

    def exists(self) -> bool:
        return self.path.exists() if self.path is not None else bool(self.records())

    def _schema(self) -> None:
        if not self._ready:
            self.backend.migrate(self.STORE, MIGRATIONS)
            self._ready = True

    def records(self, name: str | None = None) -> list[ApiKeyRecord]:
        """Every key (of ``name``), oldest first."""
        if self.path is not None and not self.path.exists():
            return []  # reading does not create the file: a home without keys stays without one
        self._schema()
        with self.backend.transaction(self.STORE) as db:
            rows = (
                db.execute(_RECORD + " WHERE name = ? ORDER BY created_at", (name,))
                if name is not None
                else db.execute(_RECORD + " ORDER BY created_at")
            ).fetchall()
        return [ApiKeyRecord(*row) for row in rows]

    def add_digest(self, name: str, role: str, digest: str, created_at: float | None = None) -> bool:
        """Record a key by its digest (imported from the old access file); False when that digest is known."""
        self._schema()
        with self.backend.transaction(self.STORE, write=True) as db:
            cursor = db.execute(
                "INSERT INTO api_keys (digest, name, role, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(digest) DO NOTHING",
                (digest, name, role, time.time() if created_at is None else created_at),
            )
            return bool(cursor.rowcount == 1)

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
        with self.backend.transaction(self.STORE, write=True) as db:
            row = db.execute(  # on PostgreSQL the name's current keys are locked: one rotation at a time
                "SELECT role FROM api_keys WHERE name = ? AND valid_until IS NULL AND revoked_at IS NULL "
                "ORDER BY created_at DESC" + self.backend.for_update,
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
        with self.backend.transaction(self.STORE, write=True) as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (time.time(), name)
            )
            return int(cursor.rowcount)

    def touch(self, last_used: dict[str, float]) -> None:
        """Record when keys (by digest) were last used; one transaction for all of them."""
        if not last_used:
            return
        self._schema()
        with self.backend.transaction(self.STORE, write=True) as db:
            for digest, at in sorted(last_used.items()):  # one lock order across replicas
                db.execute(  # never moves back: another replica may have recorded a later use
                    "UPDATE api_keys SET last_used_at = ? WHERE digest = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                    (at, digest, at),
                )
