"""``agentparty api``: first start creates the access file with one admin key; ``api key`` mints keys."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agentparty.api.security import key_digest
from agentparty.cli import app
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
    monkeypatch.setattr("agentparty.api.serve.serve", lambda app, host, port: calls.append((app, host, port)))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # set: no local Prefect server is started
    return calls


def test_first_start_creates_one_admin_key_and_stores_only_its_digest(home: Path, served: list[Any]) -> None:
    result = CliRunner().invoke(app, ["api", "--port", "8799"])
    assert result.exit_code == 0, result.output
    key = re.search(r"\b(ap_[A-Za-z0-9_-]{20,})\b", result.output)
    assert key is not None
    access_file = home / "api-access.yaml"
    text = access_file.read_text()
    assert key.group(1) not in text and key_digest(key.group(1)) in text
    assert stat.S_IMODE(access_file.stat().st_mode) == 0o600
    [(api, host, port)] = served
    assert (host, port) == ("127.0.0.1", 8799)
    client = TestClient(api)
    assert client.get("/templates", headers={"X-API-Key": key.group(1)}).status_code == 200

    again = CliRunner().invoke(app, ["api"])
    assert again.exit_code == 0 and "ap_" not in again.output  # printed once, on creation only
    assert access_file.read_text() == text


def test_an_invalid_access_file_is_reported_with_its_field(home: Path, served: list[Any]) -> None:
    (home / "api-access.yaml").write_text(
        yaml.safe_dump({"apiKeys": [{"name": "x", "role": "wizard", "keySha256": "0" * 64}]})
    )
    result = CliRunner().invoke(app, ["api"])
    assert result.exit_code == 1
    assert "wizard" in result.output and not served


def test_api_key_prints_a_key_and_the_line_to_paste(home: Path) -> None:
    result = CliRunner().invoke(app, ["api", "key", "--name", "ci-bot", "--role", "operator"])
    assert result.exit_code == 0, result.output
    key = re.search(r"key: (\S+)", result.output).group(1)  # type: ignore[union-attr]
    line = result.output.splitlines()[1]
    entry = yaml.safe_load(f"apiKeys:\n{line}")["apiKeys"][0]
    assert entry == {"name": "ci-bot", "role": "operator", "keySha256": key_digest(key)}


def test_api_key_refuses_a_bad_name(home: Path) -> None:
    result = CliRunner().invoke(app, ["api", "key", "--name", "has spaces"])
    assert result.exit_code == 2
