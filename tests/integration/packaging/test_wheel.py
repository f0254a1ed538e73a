"""The wheel holds the whole package: installed (not editable) into a fresh virtual environment, every module of
every subpackage imports from there.

``pyproject.toml`` lists the subpackages explicitly (``packages``, with ``package-dir``
mapping each top-level folder into the ``agentparty`` namespace, DESIGN.md §2). A
subpackage left off that list is left out of the wheel, which the editable install
the tests otherwise run on never shows: its finder serves the working tree as is.

The fresh environment gets the project environment's dependencies through a ``.pth``
line naming that environment's site-packages. A directory added by a ``.pth`` line is
not scanned for ``.pth`` files itself, so the project's editable finder stays out and
``agentparty`` can only come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from support.workflow_docs import REPO_ROOT

pytestmark = pytest.mark.slow

NOT_BUILT = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".agentparty",
    "test-artifacts",
    "tests",
    "bench",
)
"""Left out of the copy that is built: environments, earlier build output (``build/lib`` is reused by setuptools and
would carry modules the package list no longer names), caches, and folders that are not part of the package."""

IMPORT_ALL = r"""
import importlib, json, pathlib, sys, sysconfig

site = pathlib.Path(sysconfig.get_paths()["purelib"])
modules, errors = {}, {}
for path in sorted((site / "agentparty").rglob("*.py")):
    parts = path.relative_to(site).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    try:
        modules[name] = importlib.import_module(name).__file__
    except BaseException as exc:  # an import that fails in any way is the finding
        errors[name] = f"{type(exc).__name__}: {exc}"
pathlib.Path(sys.argv[1]).write_text(json.dumps({"site": str(site), "modules": modules, "errors": errors}))
"""


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=cwd, check=False)
    assert done.returncode == 0, f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def source_modules(root: Path) -> set[str]:
    """Every module of the source folders that ``package-dir`` maps into ``agentparty``, by its import name."""
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir: dict[str, str] = setuptools["package-dir"]
    names = set()
    for package, folder in package_dir.items():
        for path in (root / folder).rglob("*.py"):
            parts = path.relative_to(root / folder).with_suffix("").parts
            names.add(".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts))))
    return names


def test_every_module_imports_from_the_installed_wheel(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_BUILT)
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)])
    [wheel] = wheels.glob("agentparty-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)])
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    fresh_site = Path(run([str(python), "-I", "-c", purelib]).stdout.strip())
    project_site = Path(sysconfig.get_paths()["purelib"])
    assert project_site.is_dir() and fresh_site.is_dir() and fresh_site != project_site
    (fresh_site / "agentparty-test-dependencies.pth").write_text(f"{project_site}\n")

    report_path = tmp_path / "imports.json"
    # -I: neither the working directory nor PYTHONPATH is on sys.path, only the environment's site-packages
    run([str(python), "-I", "-c", IMPORT_ALL, str(report_path)], cwd=tmp_path)
    report = json.loads(report_path.read_text())

    assert report["errors"] == {}, "modules of the wheel that do not import:\n" + "\n".join(
        f"{name}: {error}" for name, error in sorted(report["errors"].items())
    )
    inside = venv.resolve()
    modules: dict[str, str | None] = report["modules"]
    outside = {name: file for name, file in modules.items() if not Path(file or "/").resolve().is_relative_to(inside)}
    assert outside == {}, f"imported from outside the fresh environment (not the wheel): {outside}"
    missing = source_modules(source) - set(modules)
    assert missing == set(), f"source modules missing from the wheel (pyproject.toml `packages`?): {sorted(missing)}"
    subpackages = {name.split(".")[1] for name in modules}
    assert subpackages >= {"models", "runtime", "tasks", "gnn", "flows", "deployments", "api", "cli"}  # DESIGN.md §2
    assert "agentparty.runtime.providers" in modules
