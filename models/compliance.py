"""The GDPR baseline: what ``monitoring.logging.compliance.gdpr`` requires of an SDK configuration at load.

GDPR names no settings, so the baseline is this project's reading of it for what
Agent Party keeps: personal data leaving a run is masked (``security.dataMasking``:
data protection by design and pseudonymisation, art. 25 and 32), and who did what
is recorded (``security.auditLogging`` and ``compliance.auditTrail``:
accountability, art. 5(2)). Storage limitation (art. 5(1)(e)) is
``compliance.dataRetention``, which cannot be unset (a positive number of days,
365 by default) and which ``agentparty gdpr purge`` enforces. Erasure and export
are ``flows/retention.py``; each erasure report says what it cannot remove.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sdk_config import SDKConfiguration

GDPR_RULE = (
    "With gdpr true the configuration is refused at load unless security.dataMasking is true (GDPR art. 25 and "
    "32: data protection by design, pseudonymisation), and security.auditLogging and auditTrail are true "
    "(art. 5(2): accountability). dataRetention, always a positive number of days, is the storage limitation "
    "period (art. 5(1)(e)) that agentparty gdpr purge enforces."
)


@dataclass(frozen=True)
class GdprControl:
    path: tuple[str, ...]
    """Attribute path from SDKConfiguration (snake_case)."""
    field: str
    """The same path as written in configuration files."""
    reason: str


GDPR_BASELINE: tuple[GdprControl, ...] = (
    GdprControl(
        ("security", "data_masking"),
        "security.dataMasking",
        "GDPR art. 25 and 32 (data protection by design, pseudonymisation) require personal data masked where it "
        "leaves a run",
    ),
    GdprControl(
        ("security", "audit_logging"),
        "security.auditLogging",
        "GDPR art. 5(2) (accountability) requires a record of who did what, erasures and purges included",
    ),
    GdprControl(
        ("monitoring", "logging", "compliance", "audit_trail"),
        "monitoring.logging.compliance.auditTrail",
        "GDPR art. 5(2) (accountability) requires an audit trail",
    ),
)
"""What ``compliance.gdpr`` requires on (:data:`GDPR_RULE`); ``dataRetention`` cannot be unset, so it always holds."""


def gdpr_problems(config: SDKConfiguration, soc2: list[dict[str, str]]) -> list[dict[str, str]]:
    """``soc2``'s problems with those of :data:`GDPR_BASELINE` added: a path both name gets both reasons."""
    problems = [dict(problem) for problem in soc2]
    for control in GDPR_BASELINE:
        value: Any = config
        for part in control.path:
            value = getattr(value, part)
        if value is True:
            continue
        reason = f"must be true while compliance.gdpr is on: {control.reason}"
        same = next((p for p in problems if p["path"] == control.field), None)
        if same is None:
            problems.append({"path": control.field, "message": reason, "code": "gdpr_baseline"})
        else:
            same["message"] += f"; and {reason}"
    return problems
