"""`agentparty keys list | rotate | reencrypt`: a rotation, then every record of the home moved to the new key."""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentparty.cli import app
from agentparty.models.memory import MemoryConfig
from agentparty.runtime.agent_memory import AgentMemoryStore, Engagement
from agentparty.runtime.audit import AuditLog
from agentparty.runtime.sealing import forget_sealers, sealer_at

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from agentparty.runtime.settings import get_settings

    monkeypatch.setenv("AGENTPARTY_HOME", str(tmp_path))
    get_settings.cache_clear()
    forget_sealers()
    yield tmp_path
    get_settings.cache_clear()
    forget_sealers()


def stored_values(home: Path) -> list[str]:
    with sqlite3.connect(home / "state" / "memory.sqlite") as db:
        return [row[0] for row in db.execute("SELECT value FROM memory_entries")]


def test_rotate_then_reencrypt_moves_every_record_and_is_audited(home: Path) -> None:
    memory = AgentMemoryStore.at(home)
    memory.write("agent-1", "plan", "ship on friday", limits=MemoryConfig(), where=Engagement("run", "s"))
    first = sealer_at(home).key_id(stored_values(home)[0])

    rotated = runner.invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0 and first is not None and first in listed.stdout
    new = listed.stdout.strip().splitlines()[-1].split()[0]
    assert "(seals new records)" in listed.stdout.splitlines()[-1] and new != first

    moved = runner.invoke(app, ["keys", "reencrypt"])
    assert moved.exit_code == 0, moved.output
    assert "memory: memory_entries.value: 1 rewritten" in moved.stdout and f"moved to key {new}" in moved.stdout
    forget_sealers()
    assert {sealer_at(home).key_id(v) for v in stored_values(home)} == {new}
    entry = AgentMemoryStore.at(home).get("agent-1", "plan")
    assert entry is not None and entry.value == "ship on friday"
    actions = [(e.action, e.outcome) for e in AuditLog.at(home).entries()]
    assert ("key.rotate", "ok") in actions and ("key.reencrypt", "ok") in actions


def test_rotate_is_refused_where_the_keys_come_from_the_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentparty.runtime.settings import get_settings

    monkeypatch.setenv("AGENTPARTY_DATA_KEYS", "k1=" + base64.b64encode(os.urandom(32)).decode())
    get_settings.cache_clear()
    refused = runner.invoke(app, ["keys", "rotate"])
    assert refused.exit_code == 1 and "AGENTPARTY_DATA_KEYS" in refused.output
    assert not (home / "keys").exists()  # the environment's keys are used, no key file generated


def test_a_tampered_record_stops_reencrypt_naming_it(home: Path) -> None:
    AgentMemoryStore.at(home).write("agent-1", "plan", "x", limits=MemoryConfig(), where=Engagement("run", "s"))
    with sqlite3.connect(home / "state" / "memory.sqlite") as db:
        (value,) = db.execute("SELECT value FROM memory_entries").fetchone()
        raw = bytearray(base64.b64decode(value[4:]))
        raw[-1] ^= 1
        db.execute("UPDATE memory_entries SET value = ?", ("ap1:" + base64.b64encode(bytes(raw)).decode(),))
    runner.invoke(app, ["keys", "rotate"])
    failed = runner.invoke(app, ["keys", "reencrypt"])
    assert failed.exit_code == 1
    assert "memory store: record memory_entries[agent-1|plan] cannot be decrypted" in failed.output
