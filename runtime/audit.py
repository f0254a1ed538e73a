"""The audit log: append-only, hash-chained, one file per home (``<home>/audit/audit.jsonl``).

This file is the embedded default; with engine state on PostgreSQL the same
chain lives in the database, shared by every host (``runtime/audit_postgres.py``;
``runtime/audit_trail.py`` chooses).

Each entry is one JSON line carrying the previous entry's hash and its own
(SHA-256 over the previous hash and the entry's canonical JSON), so an entry
edited, removed or moved breaks the chain at that point, and
:func:`verify` names the first one. Writers of every process of the home take
turns on an ``flock`` beside the file and read the chain's tip under it, so
concurrent appends never fork the chain.

A chain alone cannot show that its *last* entries were cut off: a shorter
prefix is still a valid chain. So beside the log lies its head anchor,
``audit.head`` (:class:`Head`: how many entries the log holds and the last
one's hash), rewritten atomically after each append. The order under the lock
is: the log's lines are written and ``fsync``'d, then the head is written to a
temporary file, ``fsync``'d and renamed over the old one. A crash between the
two leaves the head one append *behind* the log, never ahead of it, so the
rule :func:`check` applies is:

* the log may be longer than its head (the extra entries chain on from the
  entry the head names: an interrupted append, caught up by the next one);
* a log shorter than its head, or whose entry number ``count`` has another hash
  than the head records, lost its tail: entries ``N..count`` removed from the end;
* a log begun with a head (its first ``prev`` is :data:`ANCHORED_GENESIS`, not
  :data:`GENESIS`) whose head is gone is reported, as the head alone could
  have told what was removed. A log written before the head existed is
  migrated by its next append, which writes the head and records an
  ``audit.head`` entry (outcome ``migrated``).

An append that finds the head disagreeing with the log (removed tail, other
hash, head missing or unreadable) records that in an ``audit.head`` entry
before its own, so the evidence outlives the head it then rewrites, and
:func:`check` reports it. Someone who can write both files can still replace
both consistently: keep a copy of the head (or of ``agentparty audit verify``'s
output) elsewhere where that matters.

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
"""The ``prev`` of the first entry of a log begun before the head anchor existed."""
ANCHORED_GENESIS = hashlib.sha256(b"agentparty audit log with a head anchor").hexdigest()
"""The ``prev`` of the first entry of a log begun with its head anchor (so a missing head is told from an old log)."""
MAX_DETAILS_CHARS = 8_000
"""Details longer than this are kept as their start (an entry stays one short line)."""
HEAD_ACTION = "audit.head"
"""The action of the entries an append records about the head anchor."""
HEAD_BREAKS = frozenset({"removed", "rewritten", "missing", "unreadable"})
"""``audit.head`` outcomes that are evidence of tampering (``migrated`` is not)."""
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
    """1-based line of the first entry that does not hold (for a removed tail: the first missing one)."""
    seq: int | None
    reason: str


@dataclass(frozen=True)
class Head:
    """The head anchor: how many entries the log held after the last append, and the last one's hash."""

    count: int
    hash: str


@dataclass(frozen=True)
class AuditCheck:
    """What :func:`check` found: the entries, the head, the first break, and what is worth saying besides."""

    entries: int
    head: Head | None
    broken: ChainBreak | None
    note: str = ""


def head_path(log: Path) -> Path:
    """The head anchor beside a log (``audit.jsonl`` → ``audit.head``)."""
    return log.with_suffix(".head")


def read_head(path: Path) -> Head | None:
    """The head anchor at ``path``; None when there is none; ValueError when it cannot be read as one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        count, last = data["count"], data["hash"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path.name} is not a head anchor: {exc}") from exc
    if not isinstance(count, int) or count < 0 or not isinstance(last, str):
        raise ValueError(f"{path.name} is not a head anchor: count {count!r}, hash {last!r}")
    return Head(count, last)


Event = tuple[str, str, str, str, dict[str, Any]]
"""``(actor, action, target, outcome, details)`` with details already cleaned."""


class AuditLog:
    """One home's audit log; ``enabled`` False records nothing (``auditLogging`` off where compliance allows)."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    @classmethod
    def at(cls, home: Path, *, enabled: bool = True) -> AuditLog:
        return cls(home / "audit" / "audit.jsonl", enabled=enabled)

    @property
    def head_path(self) -> Path:
        return head_path(self.path)

    @property
    def location(self) -> str:
        """Where the chain is, for messages (``AuditTrail.location``)."""
        return str(self.path)

    def append(
        self, actor: str, action: str, target: str = "", outcome: str = "ok", **details: Any
    ) -> AuditEntry | None:
        """Record one event at the chain's tip; None when the log is off."""
        if not self.enabled:
            return None
        written = self._write([(actor, action, str(target), str(outcome), clean_details(details))])
        return AuditEntry(**written[-1])

    def append_many(self, events: list[dict[str, Any]]) -> int:
        """Record several events (each ``actor``, ``action``, optional ``target`` and ``outcome``, the rest
        details) under one lock and one ``fsync``: how the API's background writer keeps up with requests."""
        if not self.enabled or not events:
            return 0
        rows = event_rows(events)
        self._write(rows)
        return len(rows)

    def _write(self, events: list[Event]) -> list[dict[str, Any]]:
        """Append ``events`` at the tip, after what the head anchor had to say, then move the head (log first)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        anchor = self.head_path
        with _process_lock(self.path), _file_lock(self.path):
            seq, prev = _tip(self.path)
            findings = _head_findings(self.path, anchor, seq, prev)
            begins = seq == 0
            if begins:
                prev = ANCHORED_GENESIS
                if not anchor.exists():  # before the first line: a crash then leaves the head behind, never absent
                    _write_head(anchor, Head(0, prev), sync_folder=True)
            bodies: list[dict[str, Any]] = []
            for actor, action, target, outcome, details in [*findings, *events]:
                seq += 1
                body: dict[str, Any] = {
                    "seq": seq,
                    "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "outcome": outcome,
                    "details": details,
                    "prev": prev,
                }
                body["hash"] = prev = entry_hash(body, prev)
                bodies.append(body)
            _append_lines(self.path, bodies, sync_folder=begins)
            _write_head(anchor, Head(seq, prev))
        return bodies

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

    def check(self) -> AuditCheck:
        return check(self.path)


def verify(path: Path) -> ChainBreak | None:
    """The first entry that breaks the chain (edited, removed, inserted, reordered, or cut off the end), or None."""
    return check(path).broken


def check(path: Path) -> AuditCheck:
    """The whole log against its chain and its head anchor (the rules are in the module's docstring)."""
    anchor = head_path(path)
    try:
        head, unreadable = read_head(anchor), ""
    except ValueError as exc:
        head, unreadable = None, str(exc)
    walk = _walk(path, head.count if head is not None else 0)
    count = walk.entries
    if walk.broken is not None:
        return AuditCheck(count, head, walk.broken)
    if unreadable:
        return AuditCheck(count, None, ChainBreak(count + 1, None, f"{unreadable}: entries may be missing at the end"))
    if head is None:
        if count and (walk.first_prev == ANCHORED_GENESIS or walk.head_entries):
            reason = f"the head anchor {anchor.name} is missing: entries after {count} may have been removed"
            return AuditCheck(count, None, ChainBreak(count + 1, None, reason))
        note = f"begun before the head anchor: the next append writes {anchor.name} (until then a cut tail is unseen)"
        return AuditCheck(count, None, None, note if count else "")
    if head.count > count:
        where = "" if path.exists() else f"; {path.name} is missing"
        reason = f"entries {count + 1}..{head.count} removed from the end (the head anchor records {head.count}{where})"
        return AuditCheck(count, head, ChainBreak(count + 1, count + 1, reason))
    if head.count and walk.head_hash != head.hash:
        reason = "its hash is not the one the head anchor records for it (the log was rewritten)"
        return AuditCheck(count, head, ChainBreak(head.count, head.count, reason))
    lag = count - head.count
    note = (
        f"the head anchor is {lag} entries behind (an append stopped before moving it; the next one does)"
        if lag
        else ""
    )
    return AuditCheck(count, head, None, note)


@dataclass
class _Walk:
    entries: int = 0
    first_prev: str = ""
    head_hash: str = ""
    """The hash of the entry the head anchor counts to."""
    head_entries: bool = False
    """Whether an ``audit.head`` entry was seen (the log has had a head anchor)."""
    broken: ChainBreak | None = None


def _walk(path: Path, head_count: int) -> _Walk:
    """Follow the chain from its first line, up to the first entry that does not hold."""
    walk = _Walk()
    if not path.exists():
        return walk
    prev = ""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                walk.broken = ChainBreak(number, None, "an empty line")
                return walk
            try:
                body = json.loads(line)
            except json.JSONDecodeError as exc:
                walk.broken = ChainBreak(number, None, f"not JSON: {exc}")
                return walk
            walk.broken = entry_break(number, body, (GENESIS, ANCHORED_GENESIS) if number == 1 else (prev,))
            if walk.broken is not None:
                return walk
            prev, walk.entries = body["hash"], number
            walk.first_prev = walk.first_prev or body["prev"]
            walk.head_hash = prev if number == head_count else walk.head_hash
            walk.head_entries = walk.head_entries or body.get("action") == HEAD_ACTION
    return walk


def entry_break(number: int, body: dict[str, Any], prevs: tuple[str, ...]) -> ChainBreak | None:
    """Why entry ``number`` (as read, ``body``) does not hold, given the ``prev`` s it may have; None when it does."""
    seq = body.get("seq")
    if body.get("prev") not in prevs:
        return ChainBreak(number, seq, "its prev is not the hash of the entry before it (removed or reordered)")
    if seq != number:
        return ChainBreak(number, seq, f"sequence {seq} where {number} was expected")
    if entry_hash(body, body["prev"]) != body.get("hash"):
        return ChainBreak(number, seq, "its content does not match its hash (edited)")
    if body.get("action") == HEAD_ACTION and body.get("outcome") in HEAD_BREAKS:
        reason = body.get("details", {}).get("reason", body.get("outcome"))
        return ChainBreak(number, seq, f"this entry records that when it was appended {reason}")
    return None


def event_rows(events: list[dict[str, Any]]) -> list[Event]:
    """``append_many``'s events as rows: ``actor``, ``action``, optional ``target`` and ``outcome``, the rest
    details (cleaned); shared by the file log and the database chain."""
    rows: list[Event] = []
    for event in events:
        fields = dict(event)
        actor, action = str(fields.pop("actor")), str(fields.pop("action"))
        target, outcome = str(fields.pop("target", "")), str(fields.pop("outcome", "ok"))
        rows.append((actor, action, target, outcome, clean_details(fields)))
    return rows


def clean_details(details: dict[str, Any]) -> dict[str, Any]:
    """Details as written: key-redacted, and cut to their start past :data:`MAX_DETAILS_CHARS`."""
    text = redact(json.dumps(details, default=str, sort_keys=True))
    return json.loads(text) if len(text) <= MAX_DETAILS_CHARS else {"truncated": text[:MAX_DETAILS_CHARS]}


def _head_findings(log: Path, anchor: Path, seq: int, prev: str) -> list[Event]:
    """What the head anchor says about the log an append is about to extend: an ``audit.head`` entry to record
    first when they disagree (or when an old log gets its first head), else nothing."""
    try:
        head = read_head(anchor)
    except ValueError as exc:
        return [_finding(anchor, "unreadable", f"{exc}, so entries may have been removed from the end", seq)]
    if head is None:
        if seq == 0:
            return []
        if _has_had_a_head(log):
            return [_finding(anchor, "missing", f"{anchor.name} was missing, so entries may have been removed", seq)]
        return [_finding(anchor, "migrated", f"{anchor.name} is written from here on (the log predates it)", seq)]
    if head.count > seq:
        return [
            _finding(anchor, "removed", f"entries {seq + 1}..{head.count} had been removed from the end", seq, head)
        ]
    last = prev if head.count == seq else _hash_of(log, head.count)
    if head.count and last != head.hash:
        reason = f"entry {head.count} no longer had the hash {anchor.name} recorded (the log was rewritten)"
        return [_finding(anchor, "rewritten", reason, seq, head)]
    return []


def _finding(anchor: Path, outcome: str, reason: str, seq: int, head: Head | None = None) -> Event:
    details: dict[str, Any] = {"reason": reason, "log_entries": seq}
    if head is not None:
        details.update(head_entries=head.count, head_hash=head.hash)
    return ("system", HEAD_ACTION, anchor.name, outcome, details)


def _has_had_a_head(log: Path) -> bool:
    """Whether a log without its head anchor was begun with one or got one since (read only when it is missing)."""
    walk = _walk(log, 0)
    return walk.first_prev == ANCHORED_GENESIS or walk.head_entries


def _hash_of(log: Path, count: int) -> str:
    """The hash of entry ``count`` (read only when the head lags the log: after an interrupted append)."""
    with log.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if number == count:
                return str(json.loads(line).get("hash", ""))
    return ""


def _tip(path: Path) -> tuple[int, str]:
    """(seq, hash) of the last entry; (0, "") for an empty or absent log."""
    if not path.exists():
        return 0, ""
    with path.open("rb") as log:
        log.seek(0, os.SEEK_END)
        size = log.tell()
        log.seek(max(0, size - _TAIL_BYTES))
        tail = log.read().splitlines()
    for line in reversed(tail):
        if line.strip():
            body = json.loads(line)
            return int(body["seq"]), str(body["hash"])
    return 0, ""


def _append_lines(path: Path, bodies: list[dict[str, Any]], *, sync_folder: bool) -> None:
    """Write and ``fsync`` the entries (and the folder, when this creates the log, so its name is durable too)."""
    text = "".join(json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n" for body in bodies)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(descriptor, text.encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    if sync_folder:
        _sync_folder(path.parent)


def _write_head(anchor: Path, head: Head, *, sync_folder: bool = False) -> None:
    """Replace the head anchor atomically: a reader (or a crash) sees the old head or the new, whole."""
    temporary = anchor.with_name(anchor.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(descriptor, json.dumps({"count": head.count, "hash": head.hash}).encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, anchor)
    if sync_folder:
        _sync_folder(anchor.parent)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


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
