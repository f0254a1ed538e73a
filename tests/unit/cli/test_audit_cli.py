"""``agentparty audit verify`` names the first edited or removed entry (exit 1); concurrent appends from several
processes keep one valid chain; key commands are audited."""

from __future__ import annotations

import json
import multiprocessing
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentparty.cli import app
from agentparty.runtime.audit import AuditLog, verify
from agentparty.runtime.settings import get_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AGENTPARTY_HOME", str(tmp_path))
    monkeypatch.delenv("AGENTPARTY_API_ACCESS", raising=False)
    monkeypatch.delenv("AGENTPARTY_SDK_CONFIG", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _filled(home: Path, count: int = 5) -> AuditLog:
    log = AuditLog.at(home)
    for number in range(count):
        log.append("key:ci", "api.request", f"GET /runs/{number}", "200")
    return log


def test_verify_passes_an_intact_chain(home: Path) -> None:
    _filled(home)
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 0 and "5 entries, chain intact" in result.output


def test_verify_names_an_edited_entry(home: Path) -> None:
    log = _filled(home)
    lines = log.path.read_text().splitlines()
    entry = json.loads(lines[2])
    entry["outcome"] = "403"  # someone hides a refusal
    lines[2] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    log.path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert re.search(r"audit\.jsonl:3: chain broken at entry 3: .*edited", result.output)


def test_verify_names_the_entry_after_a_removed_one(home: Path) -> None:
    log = _filled(home)
    lines = log.path.read_text().splitlines()
    del lines[1]
    log.path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert re.search(r"audit\.jsonl:2: chain broken at entry 3: .*removed or reordered", result.output)


def test_show_filters_by_action_prefix(home: Path) -> None:
    log = _filled(home, 2)
    log.append("cli:me", "key.rotate", "ci")
    result = CliRunner().invoke(app, ["audit", "show", "--action", "key", "--json"])
    assert result.exit_code == 0
    [line] = result.output.splitlines()
    assert json.loads(line)["action"] == "key.rotate"


def _append_many(path: str, writer: int, count: int) -> None:
    log = AuditLog(Path(path))
    for number in range(count):
        log.append(f"process:{writer}", "test.append", str(number))


def test_concurrent_appends_from_several_processes_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), n, 40)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert verify(path) is None
    entries = list(AuditLog(path).entries())
    assert [e.seq for e in entries] == list(range(1, 161))
    assert {e.actor for e in entries} == {f"process:{n}" for n in range(4)}


def test_key_commands_are_audited_and_never_record_the_key(home: Path) -> None:
    created = CliRunner().invoke(app, ["api", "key", "--name", "ci-bot", "--role", "operator"])
    assert created.exit_code == 0, created.output
    rotated = CliRunner().invoke(app, ["api", "rotate-key", "ci-bot", "--overlap", "1"])
    assert rotated.exit_code == 0, rotated.output
    revoked = CliRunner().invoke(app, ["api", "revoke-key", "ci-bot"])
    assert revoked.exit_code == 0, revoked.output
    log = AuditLog.at(home)
    assert [(e.action, e.target) for e in log.entries()] == [
        ("key.create", "ci-bot"),
        ("key.rotate", "ci-bot"),
        ("key.revoke", "ci-bot"),
    ]
    text = log.path.read_text()
    for output in (created.output, rotated.output):
        key = re.search(r"key: (\S+)", output).group(1)  # type: ignore[union-attr]
        assert key not in text
    assert verify(log.path) is None


def test_template_publish_and_deprecate_are_audited(home: Path) -> None:
    examples = Path(__file__).resolve().parents[3] / "examples" / "agents"
    writer = str(examples / "writer.yaml")
    assert CliRunner().invoke(app, ["templates", "create", writer, "--publish"]).exit_code == 0
    assert CliRunner().invoke(app, ["templates", "version", "writer", "--bump", "minor"]).exit_code == 0
    assert CliRunner().invoke(app, ["templates", "publish", "writer", "1.1.0"]).exit_code == 0
    assert CliRunner().invoke(app, ["templates", "deprecate", "writer", "1.0.0"]).exit_code == 0
    found = [(e.action, e.target, e.details["version"]) for e in AuditLog.at(home).entries()]
    assert found == [
        ("template.publish", "writer", "1.0.0"),
        ("template.publish", "writer", "1.1.0"),
        ("template.deprecate", "writer", "1.0.0"),
    ]


def test_a_configuration_load_is_audited_once_per_content(tmp_path: Path) -> None:
    from agentparty.runtime.settings import Settings

    config = tmp_path / "sdk.yaml"
    config.write_text("security: {auditLogging: true}\n")
    settings = Settings(home=tmp_path / "home", sdk_config=config)
    settings.load_sdk_configuration()
    settings.load_sdk_configuration()
    config.write_text("security: {dataMasking: true}\n")
    settings.load_sdk_configuration()
    loads = [e for e in AuditLog.at(tmp_path / "home").entries() if e.action == "config.load"]
    assert [e.target for e in loads] == [str(config), str(config)]
    assert loads[0].details["sha256"] != loads[1].details["sha256"]
