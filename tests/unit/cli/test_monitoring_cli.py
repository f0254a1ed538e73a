"""``agentparty monitoring render``: the three files from the configured ``monitoring``, or a refusal naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.alerting_support import email_channel, every_channel_alerts, monitoring
from typer.testing import CliRunner

from agentparty.cli import app
from agentparty.runtime.settings import get_settings

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AGENTPARTY_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: dict[str, Any]) -> Path:
    sdk = tmp_path / "sdk.yaml"
    sdk.write_text(yaml.safe_dump({"monitoring": section}))
    monkeypatch.setenv("AGENTPARTY_SDK_CONFIG", str(sdk))
    get_settings.cache_clear()
    return sdk


def test_render_writes_into_the_home_by_default_and_into_out(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(tmp_path, monkeypatch, monitoring(*every_channel_alerts()))
    done = runner.invoke(app, ["monitoring", "render"])
    assert done.exit_code == 0, done.output
    for name in ("rules.yml", "alertmanager.yml", "prometheus.yml"):
        assert f"wrote {home / 'monitoring' / name}" in done.output
    rules = yaml.safe_load((home / "monitoring" / "rules.yml").read_text())
    assert len(rules["groups"][0]["rules"]) == 3 + 3
    out = tmp_path / "out"
    assert runner.invoke(app, ["monitoring", "render", "--out", str(out)]).exit_code == 0
    assert (out / "alertmanager.yml").exists() and (home / "monitoring" / "relay-token").exists()


def test_short_windows_come_from_settings(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(
        tmp_path,
        monkeypatch,
        {**monitoring(), "metrics": {"collectionInterval": 1000, "exportFormats": ["prometheus"]}},
    )
    monkeypatch.setenv("AGENTPARTY_ALERT_WINDOW_S", "10")
    monkeypatch.setenv("AGENTPARTY_ALERT_FOR_S", "2")
    get_settings.cache_clear()
    assert runner.invoke(app, ["monitoring", "render"]).exit_code == 0
    rule = yaml.safe_load((home / "monitoring" / "rules.yml").read_text())["groups"][0]["rules"][1]
    assert "[10s]" in rule["expr"] and rule["for"] == "2s"


def test_a_window_too_short_for_the_scrape_interval_is_refused_naming_both(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = configure(tmp_path, monkeypatch, monitoring())
    monkeypatch.setenv("AGENTPARTY_ALERT_WINDOW_S", "15")
    get_settings.cache_clear()
    done = runner.invoke(app, ["monitoring", "render"])
    assert done.exit_code == 1 and str(sdk) in done.output and "collectionInterval is 10000 ms" in done.output


def test_a_channel_that_cannot_deliver_is_refused_at_load(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = email_channel()
    del channel["configuration"]["smarthost"]
    configure(
        tmp_path, monkeypatch, monitoring({"type": "error", "threshold": 5, "severity": "low", "channels": [channel]})
    )
    done = runner.invoke(app, ["monitoring", "render"])
    assert (
        done.exit_code == 1 and "monitoring.alerts[0].channels[0]" in done.output and "needs smarthost" in done.output
    )


def test_without_prometheus_in_export_formats_render_is_refused_saying_what_to_add(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """exportFormats defaults to [json]: /metrics would answer 404 to every scrape and no alert could fire."""
    sdk = configure(tmp_path, monkeypatch, {**monitoring(*every_channel_alerts()), "metrics": {}})
    done = runner.invoke(app, ["monitoring", "render"])
    assert done.exit_code == 1 and str(sdk) in done.output
    assert "monitoring.metrics.exportFormats lists json but not prometheus" in done.output
    assert "add prometheus to monitoring.metrics.exportFormats (e.g. exportFormats: [json, prometheus])" in done.output
    assert not (home / "monitoring" / "prometheus.yml").exists()  # nothing written, nothing half-rendered
    configure(tmp_path, monkeypatch, {**monitoring(), "metrics": {"exportFormats": ["csv", "otlp"]}})
    assert "exportFormats: [csv, otlp, prometheus]" in runner.invoke(app, ["monitoring", "render"]).output


def test_the_built_in_configuration_is_refused_too(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTPARTY_SDK_CONFIG", raising=False)
    get_settings.cache_clear()
    done = runner.invoke(app, ["monitoring", "render"])
    assert done.exit_code == 1 and "the built-in configuration" in done.output
    assert "add prometheus to monitoring.metrics.exportFormats" in done.output


def test_metrics_turned_off_is_refused_naming_enabled(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(tmp_path, monkeypatch, {**monitoring(), "metrics": {"enabled": False, "exportFormats": ["prometheus"]}})
    done = runner.invoke(app, ["monitoring", "render"])
    assert done.exit_code == 1 and "monitoring.metrics.enabled is false" in done.output
