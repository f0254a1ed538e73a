"""The audit log: append-only, hash-chained, one file per home (``<home>/audit/audit.jsonl``).

Each entry is one JSON line carrying the previous entry's hash and its own
(SHA-256 over the previous hash and the entry's canonical JSON), so an entry
edited, removed or moved breaks the chain at that point, and
:func:`verify` names the first one. Writers of every process of the home take
turns on an ``flock`` beside the file and read the chain's tip under it, so
concurrent appends never fork the chain.

What is recorded (``SecurityConfig.auditLogging`` and ``compliance.auditTrail``):
API requests (who, what, outcome), approvals, template publish and deprecate,
key create, rotate and revoke, deployments, configuration loads, erasures,
purges and refusals. Details never hold secrets: callers pass names and ids,
and every value is passed through key redaction before it is written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentparty.runtime.secrets import redact

GENESIS = "0" * 64
"""The ``prev`` of the first entry."""
MAX_DETAILS_CHARS = 8_000
"""Details longer than this are kept as their start (an entry stays one short line)."""
_TAIL_BYTES = 64 * 1024
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    """UTC, ISO 8601."""
    actor: str
    """Who: an API key's name (``key:NAME``), ``user:ID``, ``system``, ``cli``."""
    action: str
    """What, dotted: ``api.request``, ``approval.approve``, ``template.publish``, ``key.rotate``, ``gdpr.erase`` …"""
    target: str
    outcome: str
    """``ok``, ``refused``, ``failed``, or an HTTP status."""
    details: dict[str, Any]
    prev: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "details": self.details,
            "prev": self.prev,
            "hash": self.hash,
        }


def entry_hash(body: dict[str, Any], prev: str) -> str:
    """The hash of an entry: its previous entry's hash and its canonical JSON (everything but ``hash``)."""
    canonical = json.dumps({k: v for k, v in body.items() if k != "hash"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + canonical).encode()).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    line: int
    """1-based line of the first entry that does not hold."""
    seq: int | None
    reason: str


class AuditLog:
    """One home's audit log; ``enabled`` False records nothing (``auditLogging`` off where compliance allows)."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    @classmethod
    def at(cls, home: Path, *, enabled: bool = True) -> AuditLog:
        return cls(home / "audit" / "audit.jsonl", enabled=enabled)

    def append(
        self, actor: str, action: str, target: str = "", outcome: str = "ok", **details: Any
    ) -> AuditEntry | None:
        """Record one event at the chain's tip; None when the log is off."""
        if not self.enabled:
            return None
        text = redact(json.dumps(details, default=str, sort_keys=True))
        clean = json.loads(text) if len(text) <= MAX_DETAILS_CHARS else {"truncated": text[:MAX_DETAILS_CHARS]}
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _process_lock(self.path), _file_lock(self.path):
            seq, prev = _tip(self.path)
            body: dict[str, Any] = {
                "seq": seq + 1,
                "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                "actor": actor,
                "action": action,
                "target": target,
                "outcome": str(outcome),
                "details": clean,
                "prev": prev,
            }
            body["hash"] = entry_hash(body, prev)
            line = json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(descriptor, line.encode())
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        return AuditEntry(**body)

    def append_many(self, events: list[dict[str, Any]]) -> int:
        """Record several events (each ``actor``, ``action``, optional ``target`` and ``outcome``, the rest
        details) under one lock and one ``fsync``: how the API's background writer keeps up with requests."""
        if not self.enabled or not events:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _process_lock(self.path), _file_lock(self.path):
            seq, prev = _tip(self.path)
            lines = []
            for event in events:
                fields = dict(event)
                actor, action = str(fields.pop("actor")), str(fields.pop("action"))
                target, outcome = str(fields.pop("target", "")), str(fields.pop("outcome", "ok"))
                text = redact(json.dumps(fields, default=str, sort_keys=True))
                clean = json.loads(text) if len(text) <= MAX_DETAILS_CHARS else {"truncated": text[:MAX_DETAILS_CHARS]}
                seq += 1
                body: dict[str, Any] = {
                    "seq": seq,
                    "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "outcome": outcome,
                    "details": clean,
                    "prev": prev,
                }
                body["hash"] = prev = entry_hash(body, prev)
                lines.append(json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n")
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(descriptor, "".join(lines).encode())
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        return len(lines)

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry, oldest first (as written: :func:`verify` says whether the chain holds)."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield AuditEntry(**json.loads(line))

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """Entries matching every filter given (``action`` matches a prefix: ``key`` finds ``key.rotate``), newest
        first."""
        found: list[AuditEntry] = []
        for entry in self.entries():
            at = datetime.fromisoformat(entry.at)
            if actor is not None and entry.actor != actor:
                continue
            if action is not None and entry.action != action and not entry.action.startswith(action + "."):
                continue
            if (since is not None and at < since) or (until is not None and at > until):
                continue
            found.append(entry)
        found.reverse()
        return found[offset : offset + limit]

    def verify(self) -> ChainBreak | None:
        return verify(self.path)


def verify(path: Path) -> ChainBreak | None:
    """The first entry that breaks the chain (edited, removed, inserted or reordered), or None when it holds."""
    if not path.exists():
        return None
    prev, expected_seq = GENESIS, 1
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                return ChainBreak(number, None, "an empty line")
            try:
                body = json.loads(line)
            except json.JSONDecodeError as exc:
                return ChainBreak(number, None, f"not JSON: {exc}")
            seq = body.get("seq")
            if body.get("prev") != prev:
                return ChainBreak(number, seq, "its prev is not the hash of the entry before it (removed or reordered)")
            if seq != expected_seq:
                return ChainBreak(number, seq, f"sequence {seq} where {expected_seq} was expected")
            if entry_hash(body, prev) != body.get("hash"):
                return ChainBreak(number, seq, "its content does not match its hash (edited)")
            prev, expected_seq = body["hash"], expected_seq + 1
    return None


def _tip(path: Path) -> tuple[int, str]:
    """(seq, hash) of the last entry; (0, GENESIS) for an empty log."""
    if not path.exists():
        return 0, GENESIS
    with path.open("rb") as log:
        log.seek(0, os.SEEK_END)
        size = log.tell()
        log.seek(max(0, size - _TAIL_BYTES))
        tail = log.read().splitlines()
    for line in reversed(tail):
        if line.strip():
            body = json.loads(line)
            return int(body["seq"]), str(body["hash"])
    return 0, GENESIS


class _file_lock:
    """An exclusive ``flock`` on the file beside the log: processes append one at a time."""

    def __init__(self, path: Path) -> None:
        self.lock_path = path.with_name(path.name + ".lock")
        self.descriptor = -1

    def __enter__(self) -> None:
        self.descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.descriptor, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.descriptor, fcntl.LOCK_UN)
        os.close(self.descriptor)


def _process_lock(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())
