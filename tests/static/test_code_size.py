"""Every module of the package stays at most 500 lines, and every function at most 80.

Long modules and long functions are where the code stopped saying what it does
(the workflow compiler grew to 800 lines, one class of it to 400, before it was
split by job). The limits are checked here, with ``ast`` and no server, so that
crossing one fails the build where it happens rather than in a later review.
Tests and benchmarks are not the package, and are not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FOLDERS = ("models", "runtime", "tasks", "gnn", "flows", "deployments", "api", "cli")
"""The folders that install as ``agentparty.<folder>`` (pyproject.toml's ``package-dir``)."""
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(path for folder in PACKAGE_FOLDERS for path in (ROOT / folder).rglob("*.py"))


def _oversized(path: Path) -> list[str]:
    """What in one module is over the limits, one line each (the module itself, then its functions)."""
    text = path.read_text(encoding="utf-8")
    where = path.relative_to(ROOT).as_posix()
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{where}: module has {lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text, filename=where)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(
                    f"{where}:{node.lineno}: function {node.name} has {length} lines (at most {MAX_FUNCTION_LINES})"
                )
    return found


def test_the_package_folders_are_found() -> None:
    modules = _modules()
    assert {path.relative_to(ROOT).parts[0] for path in modules} == set(PACKAGE_FOLDERS)


def test_modules_and_functions_stay_within_their_size_limits() -> None:
    oversized = [problem for path in _modules() for problem in _oversized(path)]
    assert not oversized, "split these by job:\n" + "\n".join(oversized)
