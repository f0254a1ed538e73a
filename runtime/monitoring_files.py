"""Writing the monitoring files (``agentparty monitoring render``) and the alert relay's token.

What the files say is decided by the pure renderers (``runtime/alert_rules.py``,
``runtime/alert_routes.py``); this module places them: ``rules.yml``,
``alertmanager.yml`` and ``prometheus.yml`` in one folder (``HOME/monitoring``
by default), paths inside them relative to it where the referenced file lives
there too, so the folder can be mounted into containers as it is
(``docker-compose.yml``). ``alertmanager.yml`` may hold an SMTP password and a
Slack webhook URL, and the relay token is a credential: all are written owner-only.

The relay token authenticates Alertmanager to ``POST /alerts/relay/{receiver}[/{number}]``
(``api/alert_relay.py``): generated once per home, kept across renders, read by
the API per request so that a render while it serves takes effect.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from agentparty.models.sdk_config import MonitoringConfig
from agentparty.runtime.alert_routes import AlertmanagerLayout, alertmanager_config
from agentparty.runtime.alert_rules import (
    MonitoringRenderError,
    PrometheusLayout,
    RuleTiming,
    ScrapeTarget,
    alert_rules,
    prometheus_config,
)
from agentparty.runtime.settings import Settings

RULES_FILE = "rules.yml"
ALERTMANAGER_FILE = "alertmanager.yml"
PROMETHEUS_FILE = "prometheus.yml"
TOKEN_FILE = "relay-token"


def monitoring_dir(home: Path) -> Path:
    return home / "monitoring"


def relay_token_file(home: Path) -> Path:
    return monitoring_dir(home) / TOKEN_FILE


def ensure_relay_token(home: Path) -> Path:
    """The relay token file of this home, generated (32 random bytes, owner-only) when missing."""
    path = relay_token_file(home)
    if path.exists() and path.read_text().strip():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, secrets.token_urlsafe(32) + "\n")
    return path


def read_relay_token(home: Path) -> str | None:
    """The relay token, or None before the first render."""
    try:
        token = relay_token_file(home).read_text().strip()
    except OSError:
        return None
    return token or None


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    path.chmod(0o600)  # an existing file keeps its old mode through O_CREAT


def _reference(path: Path, folder: Path) -> str:
    """``path`` as the rendered files name it: relative when it lies in ``folder`` (mountable), else absolute."""
    resolved, base = path.resolve(), folder.resolve()
    return str(resolved.relative_to(base)) if resolved.is_relative_to(base) else str(resolved)


def rule_timing(settings: Settings) -> RuleTiming:
    return RuleTiming(
        window_s=settings.alert_window_s,
        for_s=settings.alert_for_s,
        group_wait_s=settings.alert_group_wait_s,
        group_interval_s=settings.alert_group_interval_s,
        repeat_interval_s=settings.alert_repeat_interval_s,
    )


def api_url(settings: Settings) -> str:
    """The API's base URL as Alertmanager and Prometheus on this machine reach it."""
    if settings.alert_relay_url is not None:
        return settings.alert_relay_url.rstrip("/")
    scheme = "https" if settings.api_tls_cert is not None else "http"
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"{scheme}://{host}:{settings.api_port}"


def _local(address: str) -> str:
    """A listener bound to every interface is scraped on loopback."""
    host, _, port = address.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]", "") else address


def default_targets(settings: Settings) -> tuple[ScrapeTarget, ...]:
    """What this home's Prometheus scrapes: the API's metrics (its keyless listener at ``metrics_address`` when set,
    else its ``/metrics`` with the key in ``monitoring_api_key_file``) and each worker's listener."""
    if settings.metrics_address is not None:
        api = ScrapeTarget("agentparty-api", _local(settings.metrics_address))
    else:
        scheme, address = api_url(settings).split("://", 1)
        key = settings.monitoring_api_key_file
        cert = settings.api_tls_cert if scheme == "https" else None
        api = ScrapeTarget(
            "agentparty-api",
            address,
            scheme=scheme,
            credentials_file=None if key is None else str(key.resolve()),
            ca_file=None if cert is None else str(cert.resolve()),
        )
    workers = [ScrapeTarget("agentparty-worker", _local(a)) for a in settings.monitoring_worker_addresses]
    return (api, *workers)


def scrape_warning(settings: Settings) -> str | None:
    """Why Prometheus' scrapes of the API would be refused, if they would."""
    if settings.metrics_address is None and settings.monitoring_api_key_file is None:
        return (
            "the API's /metrics needs a key: set AGENTPARTY_METRICS_ADDRESS (a metrics listener without a key) or "
            "AGENTPARTY_MONITORING_API_KEY_FILE (a file with a key that may read metrics), then render again"
        )
    return None


def exposition_refusal(monitoring: MonitoringConfig) -> str | None:
    """Why Prometheus could scrape no samples with this configuration, if it could not.

    Every process serves the Prometheus text format (the API's ``/metrics``, the
    keyless listener, a worker's listener) only when ``exportFormats`` lists
    ``prometheus`` (``runtime/telemetry_export.py``); otherwise each scrape is a
    404 and no rule could ever fire. Rendering then would accept the alerts and
    ignore them, so it is refused instead.
    """
    metrics = monitoring.metrics
    if not metrics.enabled:
        return (
            "monitoring.metrics.enabled is false, so nothing is recorded or served for Prometheus to scrape and no "
            "alert could fire: set it to true and list prometheus in monitoring.metrics.exportFormats"
        )
    if "prometheus" not in metrics.export_formats:
        listed = ", ".join(metrics.export_formats) or "none"
        return (
            f"monitoring.metrics.exportFormats lists {listed} but not prometheus, so /metrics serves no Prometheus "
            "text, every scrape would be refused and no alert could fire: add prometheus to "
            f"monitoring.metrics.exportFormats (e.g. exportFormats: [{', '.join([*metrics.export_formats, 'prometheus'])}])"
        )
    return None


@dataclass(frozen=True)
class RenderedFiles:
    rules: Path
    alertmanager: Path
    prometheus: Path


def render_monitoring(
    settings: Settings,
    monitoring: MonitoringConfig,
    out: Path,
    targets: tuple[ScrapeTarget, ...],
    environ: Mapping[str, str] | None = None,
) -> RenderedFiles:
    """Write the three files into ``out`` (the relay token under the home, generated when missing).

    Raises :class:`~agentparty.runtime.alert_rules.MonitoringRenderError` naming a setting that cannot work,
    among them an ``exportFormats`` without ``prometheus`` (:func:`exposition_refusal`), before writing anything.
    """
    timing = rule_timing(settings)
    scrape_s = monitoring.metrics.collection_interval / 1000
    rules = alert_rules(monitoring, timing, scrape_s)
    refused = exposition_refusal(monitoring) if rules["groups"][0]["rules"] else None
    if refused is not None:
        raise MonitoringRenderError(refused)
    out.mkdir(parents=True, exist_ok=True)
    token = ensure_relay_token(settings.home)
    ca_file = settings.api_tls_cert
    routes = alertmanager_config(
        monitoring,
        AlertmanagerLayout(
            relay_url=api_url(settings),
            relay_token_file=_reference(token, out),
            relay_ca_file=None if ca_file is None else _reference(ca_file, out),
            timing=timing,
            environ=os.environ if environ is None else environ,
        ),
    )
    prometheus = prometheus_config(
        PrometheusLayout(
            targets=targets,
            alertmanager=f"127.0.0.1:{settings.alertmanager_port}",
            rule_file=RULES_FILE,
            scrape_interval_s=scrape_s,
        )
    )
    for server in ("prometheus", "alertmanager"):  # their data folders, owned by whoever renders (docker-compose.yml)
        (settings.home / server / "data").mkdir(parents=True, exist_ok=True)
    files = RenderedFiles(out / RULES_FILE, out / ALERTMANAGER_FILE, out / PROMETHEUS_FILE)
    files.rules.write_text(_yaml(rules, "Prometheus alerting rules"))
    _write_private(files.alertmanager, _yaml(routes, "Alertmanager routes and receivers"))
    files.prometheus.write_text(_yaml(prometheus, "Prometheus scrape, rule and alerting configuration"))
    return files


def _yaml(document: object, what: str) -> str:
    header = (
        f"# {what}, generated by `agentparty monitoring render` from the SDK configuration: edits are overwritten.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=200)
