"""``agentparty audit verify`` against the head anchor: a cut tail and a deleted log exit 1 naming the missing
entries; a head left behind by an interrupted append exits 0 and says so; the head's hash is printed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentparty.cli import app
from agentparty.runtime.audit import AuditLog
from agentparty.runtime.settings import get_settings


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditLog]:
    monkeypatch.setenv("AGENTPARTY_HOME", str(tmp_path))
    monkeypatch.delenv("AGENTPARTY_SDK_CONFIG", raising=False)
    get_settings.cache_clear()
    audit = AuditLog.at(tmp_path)
    for number in range(5):
        audit.append("key:ci", "api.request", f"GET /runs/{number}", "200")
    yield audit
    get_settings.cache_clear()


def test_verify_prints_the_head(log: AuditLog) -> None:
    result = CliRunner().invoke(app, ["audit", "verify"])
    last = list(log.entries())[-1].hash
    assert result.exit_code == 0 and f"5 entries, chain intact, head at entry 5 ({last})" in result.output


def test_verify_names_a_cut_tail(log: AuditLog) -> None:
    lines = log.path.read_text().splitlines(keepends=True)
    log.path.write_text("".join(lines[:2]))
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert re.search(r"audit\.jsonl:3: chain broken at entry 3: entries 3\.\.5 removed from the end", result.output)


def test_verify_names_a_deleted_log_whose_head_remains(log: AuditLog) -> None:
    log.path.unlink()
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1 and "entries 1..5 removed from the end" in result.output


def test_verify_passes_a_head_left_behind_by_an_interrupted_append(log: AuditLog) -> None:
    behind = log.head_path.read_bytes()
    log.append_many([{"actor": "system", "action": "batch"}] * 3)
    log.head_path.write_bytes(behind)
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 0 and "8 entries, chain intact" in result.output
    assert "the head anchor is 3 entries behind" in result.output
