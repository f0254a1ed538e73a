"""What ``render_monitoring`` writes for every channel and threshold, checked by Debian's own ``promtool``
(rules and scrape configuration) and ``amtool`` (Alertmanager's configuration).

Here rather than in the unit lane: the ``monitoring_binaries`` fixture installs the two packages when missing and
fails (never skips) when it cannot, so the check always runs in the suite.
"""

from __future__ import annotations

from pathlib import Path

from support.alerting_support import ALERT_SECRET_ENV, check_rendered, every_channel_alerts, monitoring

from agentparty.models.sdk_config import SDKConfiguration
from agentparty.runtime.alert_rules import ScrapeTarget
from agentparty.runtime.monitoring_files import render_monitoring
from agentparty.runtime.settings import Settings


def test_prometheus_and_alertmanager_accept_what_is_rendered(
    tmp_path: Path, monitoring_binaries: dict[str, str]
) -> None:
    settings = Settings(home=tmp_path / "home")
    section = SDKConfiguration.model_validate(
        {"monitoring": monitoring(*every_channel_alerts(), minThroughput=1)}
    ).monitoring
    api = (ScrapeTarget("agentparty-api", "127.0.0.1:8700"),)
    render_monitoring(settings, section, tmp_path / "home" / "monitoring", api, {ALERT_SECRET_ENV: "x"})
    check_rendered(tmp_path / "home" / "monitoring")
