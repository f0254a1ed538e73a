"""Prometheus alerting rules and scrape configuration from seed 002's ``monitoring`` section: pure, no I/O.

We alert with the tools operators already run (DESIGN.md §11): the rules are
*generated* here for Prometheus to evaluate, and Alertmanager
(``runtime/alert_routes.py``) delivers what fires. Nothing in the engine
evaluates a threshold itself.

Every rule reads a metric of the shared contract (``runtime/telemetry_metrics.py``)
over one rate window (:attr:`RuleTiming.window_s`, 5 minutes by default) and must
hold for :attr:`RuleTiming.for_s` (5 minutes) before it fires.

From ``performanceThresholds`` (label ``agentparty_source="thresholds"``, severity
``medium``; delivered to the channels of every ``alerts[]`` entry of the same
``alert_type``):

======================  ==========  ==========================================================================
threshold               alert_type  fires when
======================  ==========  ==========================================================================
``maxResponseTime`` ms  performance an agent's mean response time (``agentparty_agent_response_time_seconds``)
                                    is above it
``maxErrorRate`` %      error       the share of failed model calls (``agentparty_model_calls_total``) of a
                                    provider and model over the window is above it
``minThroughput`` rps   performance API requests per second (``agentparty_api_request_duration_seconds_count``,
                                    ``/metrics`` excluded) over the window are below it; 0 turns it off
``maxMemoryUsage`` %    performance a process's resident memory (``process_resident_memory_bytes``) is above this
                                    share of its machine's or container's limit (``agentparty_memory_limit_bytes``)
======================  ==========  ==========================================================================

From each ``alerts[i]`` (label ``agentparty_alert="alert-i"``, its own severity,
delivered to its own channels):

* ``performance``: ``threshold`` in milliseconds; the 95th percentile of model-call
  latency (``agentparty_model_call_duration_seconds``) per provider and model over
  the window is above it;
* ``error``: ``threshold`` in percent; the share of a workflow's finished runs that
  failed (``agentparty_runs_finished_total``) over the window is above it;
* ``security``: ``threshold`` in refusals per minute; the API's 401, 403 and 429
  answers (``agentparty_api_refusals_total``) over the window are above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentparty.models.alerts import AlertConfig, PerformanceThresholds
from agentparty.models.sdk_config import MonitoringConfig

SOURCE_LABEL = "agentparty_source"
ALERT_LABEL = "agentparty_alert"
TYPE_LABEL = "alert_type"
THRESHOLD_SEVERITY = "medium"
"""``performanceThresholds`` carry no severity of their own."""


class MonitoringRenderError(ValueError):
    """A monitoring setting that cannot be rendered into working Prometheus or Alertmanager files (names it)."""


@dataclass(frozen=True)
class RuleTiming:
    """How quickly rules react, and how Alertmanager groups what fired (seconds)."""

    window_s: int = 300
    """The range of ``rate()`` / ``increase()``; at least two scrape intervals."""
    for_s: int = 300
    """How long a condition must hold before its alert fires."""
    group_wait_s: int = 30
    group_interval_s: int = 300
    repeat_interval_s: int = 4 * 3600


@dataclass(frozen=True)
class ScrapeTarget:
    """One ``/metrics`` endpoint Prometheus scrapes (the API's or a worker's)."""

    job: str
    address: str
    """``host:port``."""
    scheme: str = "http"
    path: str = "/metrics"
    credentials_file: str | None = None
    """A file holding the bearer key the endpoint wants (e.g. an API key allowed to read metrics)."""
    ca_file: str | None = None
    """The CA (or self-signed certificate) of an https endpoint."""


@dataclass(frozen=True)
class PrometheusLayout:
    """What ``prometheus.yml`` points at."""

    targets: tuple[ScrapeTarget, ...]
    alertmanager: str
    """``host:port`` of Alertmanager."""
    rule_file: str = "rules.yml"
    scrape_interval_s: float = 10.0
    """``monitoring.metrics.collectionInterval``; rules are evaluated as often."""
    extra_labels: dict[str, str] = field(default_factory=dict)


def duration(seconds: float) -> str:
    """A Prometheus duration (``4h``, ``5m``, ``30s``, ``1500ms``)."""
    if not float(seconds).is_integer():
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _window_checked(timing: RuleTiming, scrape_interval_s: float) -> str:
    if timing.window_s < 2 * scrape_interval_s:
        raise MonitoringRenderError(
            f"the alert rate window ({timing.window_s} s) must span at least two scrapes "
            f"(monitoring.metrics.collectionInterval is {scrape_interval_s * 1000:g} ms): rate() needs two samples"
        )
    return duration(timing.window_s)


def _rule(
    name: str, expr: str, timing: RuleTiming, labels: dict[str, str], summary: str, description: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration(timing.for_s),
        "labels": labels,
        "annotations": {"summary": summary, "description": description},
    }


def threshold_rules(thresholds: PerformanceThresholds, timing: RuleTiming, window: str) -> list[dict[str, Any]]:
    """The rules of ``performanceThresholds`` (``minThroughput`` 0 gives none)."""

    def labels(alert_type: str) -> dict[str, str]:
        return {"severity": THRESHOLD_SEVERITY, TYPE_LABEL: alert_type, SOURCE_LABEL: "thresholds"}

    calls = "agentparty_model_calls_total"
    rules = [
        _rule(
            "AgentPartyResponseTimeHigh",
            f"max by (agent) (agentparty_agent_response_time_seconds) * 1000 > {thresholds.max_response_time:g}",
            timing,
            labels("performance"),
            'Agent {{ $labels.agent }} responds in {{ $value | printf "%.0f" }} ms on average',
            f"performanceThresholds.maxResponseTime is {thresholds.max_response_time:g} ms.",
        ),
        _rule(
            "AgentPartyModelErrorRateHigh",
            f'100 * sum by (provider, model) (rate({calls}{{outcome="error"}}[{window}]))'
            f" / sum by (provider, model) (rate({calls}[{window}])) > {thresholds.max_error_rate:g}",
            timing,
            labels("error"),
            '{{ $value | printf "%.1f" }}% of {{ $labels.provider }}/{{ $labels.model }} calls fail',
            f"performanceThresholds.maxErrorRate is {thresholds.max_error_rate:g}% over {window}.",
        ),
        _rule(
            "AgentPartyMemoryHigh",
            "100 * max by (job, instance) (process_resident_memory_bytes)"
            f" / max by (job, instance) (agentparty_memory_limit_bytes) > {thresholds.max_memory_usage:g}",
            timing,
            labels("performance"),
            '{{ $labels.job }} on {{ $labels.instance }} uses {{ $value | printf "%.0f" }}% of its memory limit',
            f"performanceThresholds.maxMemoryUsage is {thresholds.max_memory_usage:g}%.",
        ),
    ]
    if thresholds.min_throughput > 0:
        served = 'agentparty_api_request_duration_seconds_count{route!="/metrics"}'
        rules.append(
            _rule(
                "AgentPartyThroughputLow",
                f"(sum(rate({served}[{window}])) or vector(0)) < {thresholds.min_throughput:g}",
                timing,
                labels("performance"),
                'The API serves {{ $value | printf "%.2f" }} requests per second',
                f"performanceThresholds.minThroughput is {thresholds.min_throughput:g} requests per second.",
            )
        )
    return rules


def _alert_expr(alert: AlertConfig, window: str) -> tuple[str, str, str]:
    """The expression, summary and description of one ``alerts[]`` entry (see the module docstring)."""
    if alert.type == "performance":
        latency = "agentparty_model_call_duration_seconds_bucket"
        return (
            f"histogram_quantile(0.95, sum by (provider, model, le) (rate({latency}[{window}]))) * 1000"
            f" > {alert.threshold:g}",
            'p95 latency of {{ $labels.provider }}/{{ $labels.model }} is {{ $value | printf "%.0f" }} ms',
            f"threshold {alert.threshold:g} ms (95th percentile of model calls over {window})",
        )
    if alert.type == "error":
        finished = "agentparty_runs_finished_total"
        return (
            f'100 * sum by (workflow) (increase({finished}{{outcome="failed"}}[{window}]))'
            f" / sum by (workflow) (increase({finished}[{window}])) > {alert.threshold:g}",
            '{{ $value | printf "%.0f" }}% of runs of {{ $labels.workflow }} failed',
            f"threshold {alert.threshold:g}% of finished runs over {window}",
        )
    return (
        f"sum(rate(agentparty_api_refusals_total[{window}])) * 60 > {alert.threshold:g}",
        'The API refuses {{ $value | printf "%.1f" }} requests per minute (401/403/429)',
        f"threshold {alert.threshold:g} refusals per minute over {window}",
    )


def alert_name(index: int) -> str:
    """The label value, Alertmanager receiver and relay prefix of ``alerts[index]``."""
    return f"alert-{index}"


def alert_rules(monitoring: MonitoringConfig, timing: RuleTiming, scrape_interval_s: float) -> dict[str, Any]:
    """``rules.yml``: one group with the thresholds' rules and one rule per ``alerts[]`` entry."""
    window = _window_checked(timing, scrape_interval_s)
    rules = threshold_rules(monitoring.performance_thresholds, timing, window)
    for index, alert in enumerate(monitoring.alerts):
        expr, summary, description = _alert_expr(alert, window)
        labels = {"severity": alert.severity, TYPE_LABEL: alert.type, ALERT_LABEL: alert_name(index)}
        name = f"AgentParty{alert.type.capitalize()}Alert{index}"
        rules.append(_rule(name, expr, timing, labels, summary, f"monitoring.alerts[{index}]: {description}."))
    return {"groups": [{"name": "agentparty", "interval": duration(scrape_interval_s), "rules": rules}]}


def _scrape_job(target: ScrapeTarget, extra_labels: dict[str, str]) -> dict[str, Any]:
    job: dict[str, Any] = {
        "job_name": target.job,
        "scheme": target.scheme,
        "metrics_path": target.path,
        "static_configs": [{"targets": [target.address], "labels": dict(extra_labels)}],
    }
    if not extra_labels:
        del job["static_configs"][0]["labels"]
    if target.credentials_file is not None:
        job["authorization"] = {"type": "Bearer", "credentials_file": target.credentials_file}
    if target.ca_file is not None:
        job["tls_config"] = {"ca_file": target.ca_file}
    return job


def prometheus_config(layout: PrometheusLayout) -> dict[str, Any]:
    """``prometheus.yml``: scrape the engine's endpoints, evaluate ``rules.yml``, send alerts to Alertmanager."""
    interval = duration(layout.scrape_interval_s)
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [layout.rule_file],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [layout.alertmanager]}]}]},
        "scrape_configs": [_scrape_job(target, layout.extra_labels) for target in layout.targets],
    }
