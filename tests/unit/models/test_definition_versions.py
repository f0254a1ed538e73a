"""Which definition version a resumed run accepts (``models/definition_versions.py``)."""

from __future__ import annotations

import pytest

from agentparty.models.definition_versions import resume_compatibility
from agentparty.models.sdk_config import VersioningConfig


def config(**fields: object) -> VersioningConfig:
    return VersioningConfig.model_validate(fields)


def row(from_version: str, to_version: str, *, breaking: bool = False, migration: bool = False) -> dict[str, object]:
    return {
        "fromVersion": from_version,
        "toVersion": to_version,
        "breakingChanges": breaking,
        "migrationRequired": migration,
    }


@pytest.mark.parametrize(
    ("rows", "accepted", "reason"),
    [
        ([row("1.0.0", "2.0.0")], True, "compatibilityMatrix: 1.0.0 -> 2.0.0 is compatible"),
        ([row("1.0.0", "2.0.0", breaking=True)], False, "has breaking changes"),
        ([row("1.0.0", "2.0.0", migration=True)], False, "requires a migration"),
        ([], False, "changes the major version"),
    ],
)
def test_the_matrix_row_decides(rows: list[dict[str, object]], accepted: bool, reason: str) -> None:
    verdict = resume_compatibility("1.0.0", "2.0.0", config(compatibilityMatrix=rows))
    assert verdict.accepted is accepted and reason in verdict.reason


def test_semantic_auto_detection_accepts_the_same_major() -> None:
    assert resume_compatibility("1.2.0", "1.3.1", config()).accepted
    assert not resume_compatibility("1.2.0", "1.3.1", config(autoDetection=False)).accepted


def test_versions_that_are_not_semantic_need_a_row() -> None:
    verdict = resume_compatibility("1", "2", config(semantic=False))
    assert not verdict.accepted and verdict.reason == "no compatibilityMatrix row from 1 to 2"
    assert resume_compatibility("1", "2", config(semantic=False, compatibilityMatrix=[row("1", "2")])).accepted


def test_the_same_version_is_always_accepted() -> None:
    assert resume_compatibility("1", "1", config(autoDetection=False)).accepted
