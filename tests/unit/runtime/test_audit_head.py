"""The audit log's head anchor (``audit.head``): a tail cut off the log, an emptied or deleted log, a head that
was removed or rewritten are each found and named; a head one append behind the log (an append interrupted
between the log's ``fsync`` and the head's rename) is not a break; a log from before the head is migrated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentparty.runtime.audit import (
    ANCHORED_GENESIS,
    GENESIS,
    HEAD_ACTION,
    AuditLog,
    check,
    entry_hash,
    read_head,
    verify,
)


def _filled(tmp_path: Path, count: int = 5) -> AuditLog:
    log = AuditLog.at(tmp_path)
    for number in range(count):
        log.append("key:ci", "api.request", f"GET /runs/{number}", "200")
    return log


def _keep_lines(log: AuditLog, count: int) -> None:
    lines = log.path.read_text().splitlines(keepends=True)
    log.path.write_text("".join(lines[:count]))


def test_each_append_moves_the_head_to_the_last_entry(tmp_path: Path) -> None:
    log = _filled(tmp_path, 3)
    last = list(log.entries())[-1]
    assert read_head(log.head_path) is not None
    assert json.loads(log.head_path.read_text()) == {"count": 3, "hash": last.hash}
    assert log.append_many([{"actor": "system", "action": "x"}] * 4) == 4
    assert read_head(log.head_path).count == 7  # type: ignore[union-attr]
    found = check(log.path)
    assert found.broken is None and found.entries == 7 and found.note == ""
    assert next(log.entries()).prev == ANCHORED_GENESIS


def test_a_cut_tail_is_named_from_its_first_missing_entry(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    _keep_lines(log, 3)
    broken = verify(log.path)
    assert broken is not None and (broken.line, broken.seq) == (4, 4)
    assert broken.reason.startswith("entries 4..5 removed from the end")


def test_an_emptied_log_is_found(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    log.path.write_text("")
    broken = verify(log.path)
    assert broken is not None and broken.seq == 1 and "entries 1..5 removed from the end" in broken.reason


def test_a_deleted_log_with_its_head_present_is_found(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    log.path.unlink()
    broken = verify(log.path)
    assert broken is not None and "entries 1..5 removed from the end" in broken.reason
    assert "audit.jsonl is missing" in broken.reason


def test_a_head_one_batch_behind_after_an_interrupted_append_is_not_a_break(tmp_path: Path) -> None:
    log = _filled(tmp_path, 3)
    before = log.head_path.read_bytes()
    log.append_many([{"actor": "system", "action": "batch", "n": n} for n in range(256)])
    log.head_path.write_bytes(before)  # the crash came after the log's fsync, before the head's rename
    found = check(log.path)
    assert found.broken is None and found.entries == 259
    assert "256 entries behind" in found.note
    log.append("system", "after.crash")  # the next append catches the head up and records nothing else
    assert [e.action for e in log.entries()][-1] == "after.crash"
    assert HEAD_ACTION not in {e.action for e in log.entries()}
    assert check(log.path).note == "" and read_head(log.head_path).count == 260  # type: ignore[union-attr]


def test_a_head_written_before_the_first_entry_survives_a_crash_before_it(tmp_path: Path) -> None:
    log = AuditLog.at(tmp_path)
    log.append("system", "first")
    log.path.unlink()  # as if the crash came before the first line: the head (count 0) was written first
    log.head_path.write_text(json.dumps({"count": 0, "hash": ANCHORED_GENESIS}))
    assert verify(log.path) is None


def test_a_rewritten_log_of_the_same_length_is_found(tmp_path: Path) -> None:
    log = _filled(tmp_path, 3)
    kept = log.head_path.read_bytes()
    log.path.unlink()
    log.head_path.unlink()
    _filled(tmp_path, 3)  # a whole new chain of three
    log.head_path.write_bytes(kept)
    broken = verify(log.path)
    assert broken is not None and broken.seq == 3 and "the log was rewritten" in broken.reason


def test_a_removed_head_is_reported(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    log.head_path.unlink()
    broken = verify(log.path)
    assert broken is not None and "audit.head is missing" in broken.reason


def test_an_unreadable_head_is_reported(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    log.head_path.write_text("{")
    broken = verify(log.path)
    assert broken is not None and "not a head anchor" in broken.reason


@pytest.mark.parametrize(
    ("tamper", "outcome", "fragment"),
    [
        (lambda log: _keep_lines(log, 3), "removed", "entries 4..5 had been removed from the end"),
        (lambda log: log.path.write_text(""), "removed", "entries 1..5 had been removed from the end"),
        (lambda log: log.head_path.unlink(), "missing", "audit.head was missing"),
    ],
)
def test_an_append_after_tampering_keeps_the_evidence(
    tmp_path: Path, tamper: object, outcome: str, fragment: str
) -> None:
    log = _filled(tmp_path)
    tamper(log)  # type: ignore[operator]
    log.append("key:ci", "api.request", "GET /next", "200")  # rewrites the head, but records what it found first
    evidence = [e for e in log.entries() if e.action == HEAD_ACTION]
    assert [e.outcome for e in evidence] == [outcome] and fragment in evidence[0].details["reason"]
    broken = verify(log.path)
    assert broken is not None and broken.seq == evidence[0].seq and fragment in broken.reason


def _legacy_log(path: Path, count: int) -> None:
    """A log as the version before the head anchor wrote it: entry 1 chains from GENESIS, no head."""
    path.parent.mkdir(parents=True)
    prev, lines = GENESIS, []
    for seq in range(1, count + 1):
        body = {"seq": seq, "at": "2026-01-01T00:00:00+00:00", "actor": "system", "action": "old", "target": ""}
        body |= {"outcome": "ok", "details": {}, "prev": prev}
        body["hash"] = prev = entry_hash(body, prev)
        lines.append(json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n")
    path.write_text("".join(lines))


def test_a_log_from_before_the_head_verifies_and_is_migrated_by_its_next_append(tmp_path: Path) -> None:
    log = AuditLog.at(tmp_path)
    _legacy_log(log.path, 4)
    found = check(log.path)
    assert found.broken is None and found.entries == 4 and "the next append writes audit.head" in found.note
    log.append("system", "config.load")
    assert [(e.action, e.outcome) for e in log.entries()][-2:] == [(HEAD_ACTION, "migrated"), ("config.load", "ok")]
    assert check(log.path).broken is None and read_head(log.head_path).count == 6  # type: ignore[union-attr]
    _keep_lines(log, 5)  # from here on a cut tail is seen
    assert "entries 6..6 removed from the end" in verify(log.path).reason  # type: ignore[union-attr]
    log.head_path.unlink()  # and a removed head, though the log began with GENESIS: the migration entry says so
    assert "audit.head is missing" in verify(log.path).reason  # type: ignore[union-attr]
