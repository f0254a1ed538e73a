"""`agentparty templates`: create from seed-shaped files, version, publish, deprecate, list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.workflow_docs import EXAMPLES
from typer.testing import CliRunner

from agentparty.cli import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from agentparty.runtime.settings import get_settings

    monkeypatch.setenv("AGENTPARTY_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["templates", *args])
    return result.exit_code, result.output


def test_template_lifecycle_from_the_command_line(home: Path) -> None:
    files = sorted(str(p) for p in (EXAMPLES / "agents").glob("*.yaml"))
    code, out = invoke("create", *files, "--publish")
    assert code == 0 and "writer: version 1.0.0 published" in out
    assert invoke("create", *files)[0] == 1, "creating an existing template again must fail"
    assert invoke("create", *files, "--skip-existing")[0] == 0
    code, out = invoke("version", "writer", "--bump", "major", "--model", "simulated-large")
    assert code == 0 and "writer: version 2.0.0 draft (model simulated-large)" in out
    assert invoke("publish", "writer", "2.0.0")[0] == 0
    assert invoke("deprecate", "writer", "1.0.0")[0] == 0
    code, out = invoke("publish", "writer", "9.9.9")
    assert code == 1 and "no version 9.9.9 (versions: 1.0.0, 2.0.0)" in out
    code, out = invoke("list", "writer", "--json")
    rows = json.loads(out)
    assert [(r["version"], r["status"], r["model"]) for r in rows] == [
        ("1.0.0", "deprecated", "simulated"),
        ("2.0.0", "published", "simulated-large"),
    ]


def test_invalid_template_file_names_the_field(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\ndescription: d\nmodel: simulated\nparameters: {temperature: 9}\npersonality: p\ncapabilities: [Not Valid]\n"
    )
    code, out = invoke("create", str(bad))
    assert code == 1 and "parameters.temperature" in out and "bad.yaml:6: capabilities[0]" in out
