"""``agentparty api``: first start creates one admin key in the key list; ``api key`` mints keys; the old access
file keeps working with a deprecation warning and ``import-access`` moves its keys."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agentparty.api.security import key_digest
from agentparty.cli import app
from agentparty.runtime.api_keys import ApiKeyStore
from agentparty.runtime.settings import get_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AGENTPARTY_HOME", str(tmp_path))
    monkeypatch.delenv("AGENTPARTY_API_ACCESS", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, str, int]]:
    """Captures what ``agentparty api`` would serve instead of blocking in uvicorn."""
    calls: list[tuple[Any, str, int]] = []
    monkeypatch.setattr("agentparty.api.serve.serve", lambda app, host, port, **_: calls.append((app, host, port)))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # set: no local Prefect server is started
    return calls


def test_first_start_creates_one_admin_key_and_stores_only_its_digest(home: Path, served: list[Any]) -> None:
    result = CliRunner().invoke(app, ["api", "--port", "8799"])
    assert result.exit_code == 0, result.output
    key = re.search(r"\b(ap_[A-Za-z0-9_-]{20,})\b", result.output)
    assert key is not None
    [record] = ApiKeyStore.at(home).records()
    assert (record.name, record.role, record.digest) == ("admin", "admin", key_digest(key.group(1)))
    stored = ApiKeyStore.at(home).path
    assert key.group(1).encode() not in stored.read_bytes()
    assert not (home / "api-access.yaml").exists()
    [(api, host, port)] = served
    assert (host, port) == ("127.0.0.1", 8799)
    client = TestClient(api)
    assert client.get("/templates", headers={"X-API-Key": key.group(1)}).status_code == 200

    again = CliRunner().invoke(app, ["api"])
    assert again.exit_code == 0 and "ap_" not in again.output  # printed once, on creation only
    assert len(ApiKeyStore.at(home).records()) == 1


def test_the_old_access_file_still_works_with_a_warning_and_its_keys_import(home: Path, served: list[Any]) -> None:
    digest = key_digest("old-file-key")
    (home / "api-access.yaml").write_text(
        yaml.safe_dump({"apiKeys": [{"name": "legacy", "role": "viewer", "keySha256": digest}]})
    )
    result = CliRunner().invoke(app, ["api"])
    assert result.exit_code == 0, result.output
    assert (
        "deprecated" in result.output and "security.accessControl" in result.output and "import-access" in result.output
    )
    assert "ap_" not in result.output and ApiKeyStore.at(home).records() == []  # no first-start key beside the file
    [(api, _, _)] = served
    assert TestClient(api).get("/templates", headers={"X-API-Key": "old-file-key"}).status_code == 200
    imported = CliRunner().invoke(app, ["api", "import-access", str(home / "api-access.yaml")])
    assert imported.exit_code == 0 and "1 key(s) imported" in imported.output
    [record] = ApiKeyStore.at(home).records()
    assert (record.name, record.digest) == ("legacy", digest)


def test_conditions_the_engine_cannot_check_stop_the_start_naming_them(
    home: Path, served: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = home / "sdk.yaml"
    roles = {"bot": [{"resource": "runs", "actions": ["read"], "conditions": {"team": "red"}}]}
    config.write_text(yaml.safe_dump({"security": {"accessControl": {"roles": roles}}}))
    monkeypatch.setenv("AGENTPARTY_SDK_CONFIG", str(config))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["api"])
    assert result.exit_code == 1 and "unknown condition 'team'" in result.output and not served


def test_an_invalid_access_file_is_reported_with_its_field(home: Path, served: list[Any]) -> None:
    (home / "api-access.yaml").write_text(
        yaml.safe_dump({"apiKeys": [{"name": "x", "role": "wizard", "keySha256": "0" * 64}]})
    )
    result = CliRunner().invoke(app, ["api"])
    assert result.exit_code == 1
    assert "wizard" in result.output and not served


def test_api_key_creates_a_key_in_the_list_and_prints_it_once(home: Path) -> None:
    result = CliRunner().invoke(app, ["api", "key", "--name", "ci-bot", "--role", "operator"])
    assert result.exit_code == 0, result.output
    key = re.search(r"key: (\S+)", result.output).group(1)  # type: ignore[union-attr]
    [record] = ApiKeyStore.at(home).records()
    assert (record.name, record.role, record.digest) == ("ci-bot", "operator", key_digest(key))
    again = CliRunner().invoke(app, ["api", "key", "--name", "ci-bot"])
    assert again.exit_code == 2 and "rotate-key" in again.output
    unknown = CliRunner().invoke(app, ["api", "key", "--name", "x", "--role", "wizard"])
    assert unknown.exit_code == 2 and "wizard" in unknown.output


def test_rotate_key_keeps_the_old_key_for_the_overlap_and_keys_lists_both(home: Path) -> None:
    CliRunner().invoke(app, ["api", "key", "--name", "ci-bot"])
    rotated = CliRunner().invoke(app, ["api", "rotate-key", "ci-bot", "--overlap", "2"])
    assert rotated.exit_code == 0, rotated.output
    listed = CliRunner().invoke(app, ["api", "keys"]).output.splitlines()
    assert [line.split("\t")[-1] for line in listed] == ["overlap", "current"]
    assert CliRunner().invoke(app, ["api", "rotate-key", "nobody"]).exit_code == 2


def test_api_key_refuses_a_bad_name(home: Path) -> None:
    result = CliRunner().invoke(app, ["api", "key", "--name", "has spaces"])
    assert result.exit_code == 2
