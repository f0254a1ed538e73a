"""A provider whose credentials cannot be resolved stops every command that runs agents at load, before it starts
anything (``run``, ``api``, ``worker``, ``serve``), is an error of ``validate``, and refuses the API app's start;
each names the provider and the missing variable. The keyless default has nothing to check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentparty.api import create_app
from agentparty.cli import app
from agentparty.runtime.provider_auth import ProviderCredentialsError
from agentparty.runtime.settings import Settings, get_settings

runner = CliRunner()
MISSING = "authentication.providers[0] (work): environment variable AGENTPARTY_TEST_WORK_KEY (apiKeyEnv) is not set"
WORK_PROVIDER = {
    "name": "work",
    "type": "openai",
    "endpoint": "https://llm.example.com/v1",
    "authentication": {"type": "api_key", "configuration": {"apiKeyEnv": "AGENTPARTY_TEST_WORK_KEY"}},
}


@pytest.fixture
def sdk_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An SDK configuration in use whose only provider's key variable is not set; nothing may start."""
    path = tmp_path / "sdk.yaml"
    path.write_text(yaml.safe_dump({"authentication": {"providers": [WORK_PROVIDER]}}))
    monkeypatch.setenv("AGENTPARTY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGENTPARTY_SDK_CONFIG", str(path))
    monkeypatch.delenv("AGENTPARTY_TEST_WORK_KEY", raising=False)
    monkeypatch.delenv("AGENTPARTY_API_ACCESS", raising=False)

    def started(*_: Any, **__: Any) -> str:
        raise AssertionError("a server was started before the credentials were checked")

    for command in ("run", "api", "deploy"):
        monkeypatch.setattr(f"agentparty.cli.{command}.use_prefect", started)
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "command",
    [["run", "--no-graph", "--no-events"], ["api"], ["worker"], ["serve"]],
    ids=["run", "api", "worker", "serve"],
)
def test_a_command_that_runs_agents_stops_at_load_naming_provider_and_variable(
    sdk_config: Path, examples_dir: Path, command: list[str]
) -> None:
    paths = [str(examples_dir / "research-report.yaml")] if command[0] in {"run", "serve"} else []
    result = runner.invoke(app, [command[0], *paths, *command[1:]])
    assert result.exit_code == 1, result.output
    assert f"error: {sdk_config}: provider credentials cannot be resolved: {MISSING}" in result.output


def test_validate_reports_the_configuration_in_use_and_each_one_given(
    sdk_config: Path, examples_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["validate", str(examples_dir / "research-report.yaml")])
    assert result.exit_code == 1
    assert "research-report.yaml: valid workflow" in result.stdout
    assert f"{sdk_config}: {MISSING}" in result.stdout.splitlines()

    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"authentication": {"providers": [{**WORK_PROVIDER, "name": "other"}]}}))
    result = runner.invoke(app, ["validate", "--json", str(other), str(sdk_config)])
    assert result.exit_code == 1
    files = yaml.safe_load(result.stdout)["files"]
    assert [(f["path"], f["valid"], [e["message"] for e in f["errors"]]) for f in files] == [
        (str(other), False, ["environment variable AGENTPARTY_TEST_WORK_KEY (apiKeyEnv) is not set"]),
        (str(sdk_config), False, ["environment variable AGENTPARTY_TEST_WORK_KEY (apiKeyEnv) is not set"]),
    ]


def test_with_the_variable_set_validate_passes(
    sdk_config: Path, examples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPARTY_TEST_WORK_KEY", "sk-test")
    result = runner.invoke(app, ["validate", str(examples_dir / "research-report.yaml"), str(sdk_config)])
    assert result.exit_code == 0, result.output


def test_the_api_app_refuses_to_start(sdk_config: Path, tmp_path: Path) -> None:
    with pytest.raises(ProviderCredentialsError, match=r"AGENTPARTY_TEST_WORK_KEY \(apiKeyEnv\)"):
        create_app(settings=Settings(home=tmp_path / "home", sdk_config=sdk_config))


def test_the_keyless_default_has_nothing_to_check(
    tmp_path: Path, examples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPARTY_HOME", str(tmp_path))
    monkeypatch.delenv("AGENTPARTY_SDK_CONFIG", raising=False)
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["validate", str(examples_dir / "research-report.yaml")])
        assert result.exit_code == 0, result.output
        create_app(settings=Settings(home=tmp_path))
    finally:
        get_settings.cache_clear()
