"""Which definition versions a resumed run accepts: seed 002's ``versioning`` (``compatibilityMatrix``).

A run resumed under its key after its workflow was redeployed with another
version either reuses what its first attempt completed (the versions are
compatible) or is refused with the reason; it never silently starts over.

* A ``compatibilityMatrix`` row from the first attempt's version to the new one
  decides: compatible unless it declares ``breakingChanges`` or ``migrationRequired``.
* Without a row, ``autoDetection`` with ``semantic`` versions treats versions of
  the same major as compatible and a major change as breaking; otherwise the
  versions are incompatible (nobody said they are not).
"""

from __future__ import annotations

from dataclasses import dataclass

from agentparty.models.graph_keys import SEMVER_PATTERN
from agentparty.models.sdk_config import VersioningConfig


@dataclass(frozen=True)
class Compatibility:
    accepted: bool
    reason: str


def _major(version: str) -> str | None:
    return version.split(".", 1)[0] if SEMVER_PATTERN.match(version) else None


def resume_compatibility(started: str, now: str, versioning: VersioningConfig) -> Compatibility:
    """Whether a run first started with definition version ``started`` may resume with version ``now``."""
    if started == now:
        return Compatibility(True, "same version")
    for row in versioning.compatibility_matrix:
        if (row.from_version, row.to_version) == (started, now):
            if row.breaking_changes:
                return Compatibility(False, f"compatibilityMatrix: {started} -> {now} has breaking changes")
            if row.migration_required:
                return Compatibility(False, f"compatibilityMatrix: {started} -> {now} requires a migration")
            return Compatibility(True, f"compatibilityMatrix: {started} -> {now} is compatible")
    if versioning.semantic and versioning.auto_detection:
        before, after = _major(started), _major(now)
        if before is not None and before == after:
            return Compatibility(True, f"same major version {before} (semantic versioning, autoDetection)")
        return Compatibility(False, f"{started} -> {now} changes the major version (semantic versioning)")
    return Compatibility(False, f"no compatibilityMatrix row from {started} to {now}")
