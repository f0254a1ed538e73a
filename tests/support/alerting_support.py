"""Shared by the alerting tests: monitoring sections, and Prometheus' and Alertmanager's own checkers.

``promtool check rules|config`` and ``amtool check-config`` are the tools'
own validators; a rendered file they accept is one the servers load.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

ALERT_SECRET_ENV = "AGENTPARTY_TEST_ALERT_SECRET"
ALERT_SECRET = "test-alert-signing-secret"


def email_channel(smarthost: str = "smtp.example.com:587", **extra: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "configuration": {
            "recipients": ["ops@example.com", "oncall@example.com"],
            "smarthost": smarthost,
            "from": "alerts@example.com",
            **extra,
        },
    }


def webhook_channel(
    url: str = "https://alerts.example.com/in", secret_name: str | None = ALERT_SECRET_ENV
) -> dict[str, Any]:
    configuration: dict[str, Any] = {"url": url}
    if secret_name is not None:
        configuration["secretName"] = secret_name
    return {"type": "webhook", "configuration": configuration}


def sms_channel(gateway: str = "https://sms.example.com/send", **extra: Any) -> dict[str, Any]:
    return {
        "type": "sms",
        "configuration": {"phoneNumbers": ["+4915112345678", "+4915187654321"], "gatewayUrl": gateway, **extra},
    }


def slack_channel() -> dict[str, Any]:
    return {
        "type": "slack",
        "configuration": {"webhookUrl": "https://hooks.slack.com/services/T/B/X", "channel": "#ops"},
    }


def monitoring(*alerts: dict[str, Any], **thresholds: Any) -> dict[str, Any]:
    """A ``monitoring`` section with these ``alerts`` and threshold overrides, serving Prometheus' format.

    ``exportFormats`` lists ``prometheus``: without it nothing could be scraped
    and ``agentparty monitoring render`` refuses the section.
    """
    section: dict[str, Any] = {"alerts": list(alerts), "metrics": {"exportFormats": ["json", "prometheus"]}}
    if thresholds:
        section["performanceThresholds"] = thresholds
    return section


def every_channel_alerts() -> list[dict[str, Any]]:
    """One alert of each type, between them every channel type (signed and unsigned webhooks)."""
    return [
        {"type": "error", "threshold": 10, "severity": "high", "channels": [email_channel(), webhook_channel()]},
        {"type": "performance", "threshold": 2500, "severity": "medium", "channels": [slack_channel(), sms_channel()]},
        {"type": "security", "threshold": 30, "severity": "critical", "channels": [webhook_channel(secret_name=None)]},
    ]


def promtool() -> str | None:
    return shutil.which("promtool")


def amtool() -> str | None:
    return shutil.which("amtool")


def check(command: list[str], cwd: Path | None = None) -> str:
    """Run a checker; its output, or an assertion error with it."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=cwd)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} refused the rendered file:\n{output}"
    return output


def check_rendered(folder: Path) -> None:
    """``promtool check rules`` and ``check config`` (which checks the rule file too), ``amtool check-config``."""
    tool = promtool()
    assert tool is not None and amtool() is not None, "promtool and amtool are needed here"
    check([tool, "check", "rules", str(folder / "rules.yml")])
    check([tool, "check", "config", str(folder / "prometheus.yml")], cwd=folder)
    check([str(amtool()), "check-config", str(folder / "alertmanager.yml")], cwd=folder)
