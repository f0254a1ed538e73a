"""`agentparty validate` and `agentparty schema`: output format and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from support.workflow_docs import two_step_workflow
from typer.testing import CliRunner

from agentparty.cli import app

runner = CliRunner()


def broken_file(tmp_path: Path) -> Path:
    doc = two_step_workflow()
    doc["steps"][1]["inputs"]["value"] = "${steps.ghost.output}"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_valid_examples_exit_zero(examples_dir: Path) -> None:
    result = runner.invoke(app, ["validate", *map(str, sorted(examples_dir.glob("*.yaml")))])
    assert result.exit_code == 0, result.output
    assert "valid workflow" in result.stdout


def test_invalid_file_exits_one_with_path_and_reason(tmp_path: Path, examples_dir: Path) -> None:
    path = broken_file(tmp_path)
    result = runner.invoke(app, ["validate", str(examples_dir / "nightly-digest.yaml"), str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(path))]
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}:")
    assert ": steps[1].inputs.value: ${steps.ghost.output}: unknown step 'ghost'" in lines[0]


def test_json_output(tmp_path: Path) -> None:
    path = broken_file(tmp_path)
    result = runner.invoke(app, ["validate", "--json", str(path)])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["valid"] is False
    (error,) = payload["files"][0]["errors"]
    assert (
        error["path"] == "steps[1].inputs.value" and error["code"] == "unknown_step" and isinstance(error["line"], int)
    )


def test_usage_errors_exit_two(tmp_path: Path) -> None:
    assert runner.invoke(app, ["validate"]).exit_code == 2
    assert runner.invoke(app, ["validate", str(tmp_path / "missing.yaml")]).exit_code == 2
    assert runner.invoke(app, ["validate", "--kind", "nonsense", str(broken_file(tmp_path))]).exit_code == 2


def test_schema_command_prints_json_schema(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", "workflow"])
    assert result.exit_code == 0
    assert "errorHandling" in json.loads(result.stdout)["properties"]
    out = tmp_path / "s.json"
    assert runner.invoke(app, ["schema", "sdk-config", "-o", str(out)]).exit_code == 0
    assert "security" in json.loads(out.read_text())["properties"]


def test_installed_console_script(tmp_path: Path, examples_dir: Path) -> None:
    script = Path(sys.executable).with_name("agentparty")
    ok = subprocess.run(
        [str(script), "validate", str(examples_dir / "webhook-triage.yaml")], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([str(script), "validate", str(broken_file(tmp_path))], capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown step 'ghost'" in bad.stdout
