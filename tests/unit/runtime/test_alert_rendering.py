"""Rules, routes and scrape configuration rendered from ``monitoring`` (runtime/alert_rules.py, alert_routes.py).

Debian's ``promtool`` and ``amtool`` check what is rendered for every channel and
threshold in tests/integration/monitoring/test_rendered_files.py, where the setup
installs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.alerting_support import (
    email_channel,
    every_channel_alerts,
    monitoring,
)

from agentparty.models.sdk_config import MonitoringConfig, SDKConfiguration
from agentparty.runtime.alert_routes import AlertmanagerLayout, alertmanager_config, relay_channels, relay_targets
from agentparty.runtime.alert_rules import MonitoringRenderError, RuleTiming, ScrapeTarget, alert_rules, duration
from agentparty.runtime.monitoring_files import (
    ensure_relay_token,
    read_relay_token,
    relay_token_file,
    render_monitoring,
)
from agentparty.runtime.settings import Settings

API = (ScrapeTarget("agentparty-api", "127.0.0.1:8700"),)


def config(section: dict[str, Any]) -> MonitoringConfig:
    return SDKConfiguration.model_validate({"monitoring": section}).monitoring


def rules_by_name(section: dict[str, Any], timing: RuleTiming | None = None) -> dict[str, dict[str, Any]]:
    rendered = alert_rules(config(section), timing or RuleTiming(), 10)
    return {rule["alert"]: rule for rule in rendered["groups"][0]["rules"]}


def test_thresholds_become_rules_with_their_values_and_minthroughput_zero_is_off() -> None:
    rules = rules_by_name(monitoring(maxResponseTime=150, maxErrorRate=7.5, maxMemoryUsage=80))
    assert set(rules) == {"AgentPartyResponseTimeHigh", "AgentPartyModelErrorRateHigh", "AgentPartyMemoryHigh"}
    assert rules["AgentPartyResponseTimeHigh"]["expr"].endswith("* 1000 > 150")
    error = rules["AgentPartyModelErrorRateHigh"]
    assert 'agentparty_model_calls_total{outcome="error"}[5m]' in error["expr"] and error["expr"].endswith("> 7.5")
    assert error["labels"] == {"severity": "medium", "alert_type": "error", "agentparty_source": "thresholds"}
    assert "agentparty_memory_limit_bytes" in rules["AgentPartyMemoryHigh"]["expr"]
    throughput = rules_by_name(monitoring(minThroughput=2))["AgentPartyThroughputLow"]
    assert throughput["expr"].endswith("or vector(0)) < 2") and 'route!="/metrics"' in throughput["expr"]


def test_each_alert_gets_its_type_s_metric_window_and_labels() -> None:
    rules = rules_by_name(monitoring(*every_channel_alerts()), RuleTiming(window_s=120, for_s=30))
    error, performance, security = (
        rules[f"AgentParty{kind}Alert{i}"] for i, kind in enumerate(["Error", "Performance", "Security"])
    )
    assert 'increase(agentparty_runs_finished_total{outcome="failed"}[2m])' in error["expr"]
    assert error["expr"].endswith("> 10") and error["for"] == "30s"
    assert error["labels"] == {"severity": "high", "alert_type": "error", "agentparty_alert": "alert-0"}
    assert "histogram_quantile(0.95" in performance["expr"] and performance["expr"].endswith("* 1000 > 2500")
    assert security["expr"] == "sum(rate(agentparty_api_refusals_total[2m])) * 60 > 30"
    assert security["labels"]["severity"] == "critical"


def test_a_window_shorter_than_two_scrapes_is_refused_naming_both() -> None:
    with pytest.raises(MonitoringRenderError, match=r"window \(15 s\).*collectionInterval is 10000 ms"):
        alert_rules(config(monitoring()), RuleTiming(window_s=15), 10)


def test_durations_are_prometheus_durations() -> None:
    assert [duration(s) for s in (14400, 300, 45, 0, 1.5)] == ["4h", "5m", "45s", "0s", "1500ms"]


def test_routes_send_each_alert_to_its_channels_and_thresholds_to_their_type() -> None:
    routed = alertmanager_config(
        config(monitoring(*every_channel_alerts())), AlertmanagerLayout("http://127.0.0.1:8700", "relay-token")
    )
    receivers = {r["name"]: r for r in routed["receivers"]}
    assert set(receivers) == {"unrouted", "alert-0", "alert-1", "alert-2"}
    email = receivers["alert-0"]["email_configs"][0]
    assert email["to"] == "ops@example.com, oncall@example.com" and email["require_tls"] is True
    relayed = receivers["alert-0"]["webhook_configs"][0]
    assert relayed["url"] == "http://127.0.0.1:8700/alerts/relay/alert-0-1"
    assert relayed["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": "relay-token"}
    assert receivers["alert-1"]["slack_configs"][0]["api_url"].startswith("https://hooks.slack.com/")
    sms_urls = [entry["url"] for entry in receivers["alert-1"]["webhook_configs"]]
    assert sms_urls == [f"http://127.0.0.1:8700/alerts/relay/alert-1-1/{k}" for k in (0, 1)]  # one per number
    assert receivers["alert-2"]["webhook_configs"] == [{"url": "https://alerts.example.com/in", "send_resolved": True}]
    routes = [(r["receiver"], r["matchers"]) for r in routed["route"]["routes"]]
    assert ("alert-0", ['agentparty_source="thresholds"', 'alert_type="error"']) in routes
    assert ("alert-2", ['agentparty_alert="alert-2"']) in routes
    assert all(r["continue"] for r in routed["route"]["routes"])


def test_only_signed_webhooks_and_sms_go_through_the_relay_and_sms_once_per_number() -> None:
    channels = relay_channels(config(monitoring(*every_channel_alerts())))
    assert sorted(channels) == ["alert-0-1", "alert-1-1"]
    assert relay_targets("alert-0-1", channels["alert-0-1"]) == ["alert-0-1"]
    assert relay_targets("alert-1-1", channels["alert-1-1"]) == ["alert-1-1/0", "alert-1-1/1"]


def test_an_smtp_password_comes_from_its_variable_or_the_render_is_refused() -> None:
    section = monitoring(
        {
            "type": "error",
            "threshold": 5,
            "severity": "low",
            "channels": [email_channel(authUsername="alerts", authPasswordSecretName="SMTP_PASSWORD")],
        }
    )
    layout = AlertmanagerLayout("http://127.0.0.1:8700", "relay-token", environ={"SMTP_PASSWORD": "s3cret-pw"})
    email = alertmanager_config(config(section), layout)["receivers"][1]["email_configs"][0]
    assert (email["auth_username"], email["auth_password"]) == ("alerts", "s3cret-pw")
    with pytest.raises(
        MonitoringRenderError, match=r"channels\[0\].configuration.authPasswordSecretName.*SMTP_PASSWORD"
    ):
        alertmanager_config(config(section), AlertmanagerLayout("http://127.0.0.1:8700", "relay-token"))


def test_render_writes_the_three_files_private_where_secret_and_keeps_the_token(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", api_port=8711, alertmanager_port=9111)
    out = tmp_path / "home" / "monitoring"
    files = render_monitoring(settings, config(monitoring(*every_channel_alerts())), out, API, environ={})
    token = read_relay_token(settings.home)
    assert token is not None and len(token) >= 32
    assert relay_token_file(settings.home).stat().st_mode & 0o777 == 0o600
    assert files.alertmanager.stat().st_mode & 0o777 == 0o600
    routes = yaml.safe_load(files.alertmanager.read_text())
    webhook = routes["receivers"][1]["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:8711/alerts/relay/alert-0-1"
    assert webhook["http_config"]["authorization"]["credentials_file"] == "relay-token"  # relative: mountable
    scrape = yaml.safe_load(files.prometheus.read_text())
    assert scrape["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9111"]
    assert scrape["global"]["scrape_interval"] == "10s" and scrape["rule_files"] == ["rules.yml"]
    render_monitoring(settings, config(monitoring()), out, API, environ={})
    assert read_relay_token(settings.home) == token and ensure_relay_token(settings.home) == relay_token_file(
        settings.home
    )


def test_a_folder_elsewhere_names_the_token_by_absolute_path(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    files = render_monitoring(settings, config(monitoring(*every_channel_alerts())), tmp_path / "elsewhere", API, {})
    webhook = yaml.safe_load(files.alertmanager.read_text())["receivers"][1]["webhook_configs"][0]
    assert webhook["http_config"]["authorization"]["credentials_file"] == str(relay_token_file(settings.home).resolve())
