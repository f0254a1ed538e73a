"""The code's own checks: ruff, mypy (strict on models and runtime), the layer contract, and sizes.

They run on the package as it is imported: a folder of links named ``agentparty``
(one link per source folder, DESIGN.md §2), because the editable install maps the
folders through an import hook that mypy and import-linter cannot follow. A new
module is seen at once, with no reinstall. mypy keeps its cache in ``.mypy_cache``
so a second run takes seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FOLDERS = ("models", "runtime", "tasks", "gnn", "flows", "deployments", "api", "cli")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def package_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``<tmp>/agentparty/<folder>`` → the source folders: the package as an import sees it."""
    root = tmp_path_factory.mktemp("package-tree")
    (root / "agentparty").mkdir()
    for folder in PACKAGE_FOLDERS:
        (root / "agentparty" / folder).symlink_to(ROOT / folder, target_is_directory=True)
    yield root


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600
    )


def test_ruff_finds_nothing() -> None:
    ran = run([str(BIN / "ruff"), "check", "--no-cache", "."], ROOT)
    assert ran.returncode == 0, ran.stdout[-10000:] + ran.stderr[-2000:]


def test_mypy_finds_nothing(package_tree: Path) -> None:
    ran = run(
        [
            str(BIN / "mypy"),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "-p",
            "agentparty",
        ],
        package_tree,
    )
    assert ran.returncode == 0, ran.stdout[-10000:] + ran.stderr[-2000:]


def test_imports_keep_to_the_layers(package_tree: Path) -> None:
    ran = run(
        [str(BIN / "lint-imports"), "--no-cache", str(ROOT / "pyproject.toml")], ROOT, {"PYTHONPATH": str(package_tree)}
    )
    assert ran.returncode == 0 and "0 broken" in ran.stdout, ran.stdout[-10000:] + ran.stderr[-2000:]


def test_ruff_format_leaves_everything_as_it_is() -> None:
    ran = run([str(BIN / "ruff"), "format", "--check", "--no-cache", "."], ROOT)
    assert ran.returncode == 0, ran.stdout[-10000:] + ran.stderr[-2000:]
