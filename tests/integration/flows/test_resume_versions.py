"""A run resumed after its workflow was redeployed with another version: reused or refused, never silently redone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentparty.flows import compile_workflow
from agentparty.models.step_errors import ResumeRefused
from agentparty.runtime.documents import load_workflow
from agentparty.runtime.settings import get_settings

pytestmark = pytest.mark.usefixtures("prefect_server")


def _definition(folder: Path, version: str, log: Path) -> Path:
    doc = {
        "id": "versioned",
        "name": "Versioned",
        "version": version,
        "steps": [
            {
                "id": "first",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:append_to_file"},
                "inputs": {"path": str(log), "line": "first"},
            },
            {
                "id": "second",
                "type": "task",
                "configuration": {"handler": "support.step_handlers:append_to_file", "dependsOn": ["first"]},
                "inputs": {"path": str(log), "line": f"second {version}"},
            },
        ],
        "triggers": [{"type": "manual"}],
        "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    }
    path = folder / f"versioned-{version}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _run(path: Path, key: str) -> Any:
    return asyncio.run(compile_workflow(load_workflow(path), source=path)(resume_key=key))


@pytest.fixture
def sdk_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "sdk.yaml"
    monkeypatch.setenv("AGENTPARTY_SDK_CONFIG", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_a_compatible_version_reuses_what_the_first_attempt_completed(tmp_path: Path, sdk_config: Path) -> None:
    sdk_config.write_text(yaml.safe_dump({"versioning": {"compatibilityMatrix": [
        {"fromVersion": "1.0.0", "toVersion": "1.1.0", "breakingChanges": False, "migrationRequired": False}
    ]}}))  # fmt: skip
    log = tmp_path / "log"
    _run(_definition(tmp_path, "1.0.0", log), "versioned-a")
    result = _run(_definition(tmp_path, "1.1.0", log), "versioned-a")
    assert result.steps["first"].cached
    assert log.read_text().splitlines() == ["first", "second 1.0.0", "second 1.1.0"]  # its changed step ran


def test_a_breaking_version_refuses_the_resume_with_the_reason(tmp_path: Path, sdk_config: Path) -> None:
    sdk_config.write_text(yaml.safe_dump({"versioning": {"compatibilityMatrix": [
        {"fromVersion": "1.0.0", "toVersion": "2.0.0", "breakingChanges": True, "migrationRequired": False}
    ]}}))  # fmt: skip
    log = tmp_path / "log"
    _run(_definition(tmp_path, "1.0.0", log), "versioned-b")
    with pytest.raises(ResumeRefused, match=r"began with versioned version 1.0.0.*2.0.0 has breaking changes"):
        _run(_definition(tmp_path, "2.0.0", log), "versioned-b")
    assert log.read_text().splitlines() == ["first", "second 1.0.0"]
