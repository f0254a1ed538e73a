"""The one interface every writer and reader of the audit trail uses, and where the trail is chosen.

Two implementations keep the same hash chain (``runtime/audit.py`` has its
rules): :class:`~agentparty.runtime.audit.AuditLog`, the JSONL file of one home
with its head anchor beside it (the embedded default, beside SQLite state), and
:class:`~agentparty.runtime.audit_postgres.PostgresAuditLog`, one chain in the
state database that every host and process appends to in turn (when the state
backend is PostgreSQL). :func:`open_audit_trail` picks by the state backend, so
the callers (``Settings.audit_log``, the model router, the CLI) never choose.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from agentparty.runtime.audit import AuditCheck, AuditEntry, AuditLog, ChainBreak
from agentparty.runtime.state_backend import StateBackend


class AuditTrail(Protocol):
    """Append-only, hash-chained events; ``enabled`` False records nothing."""

    enabled: bool

    @property
    def location(self) -> str:
        """Where the chain is, for messages: a file path, or the database's table."""
        ...

    def append(
        self, actor: str, action: str, target: str = "", outcome: str = "ok", **details: Any
    ) -> AuditEntry | None: ...

    def append_many(self, events: list[dict[str, Any]]) -> int: ...

    def entries(self) -> Iterator[AuditEntry]: ...

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]: ...

    def verify(self) -> ChainBreak | None: ...

    def check(self) -> AuditCheck: ...


def open_audit_trail(home: Path, backend: StateBackend, *, enabled: bool = True) -> AuditTrail:
    """The chain in the state database when ``backend`` is PostgreSQL (shared by every host), else ``home``'s file."""
    if backend.dialect == "postgresql":
        from agentparty.runtime.audit_postgres import PostgresAuditLog  # deferred: only where PostgreSQL is used

        return PostgresAuditLog(backend, enabled=enabled)
    return AuditLog.at(home, enabled=enabled)
