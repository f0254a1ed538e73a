"""``exportFormats: [otlp]``: the metrics pushed over OTLP/HTTP every ``collectionInterval``.

The metrics are recorded once, with ``prometheus_client`` (``runtime/telemetry_metrics.py``); for OTLP, what a
scrape would see (:class:`~agentparty.runtime.telemetry_export.MetricsExporter`'s registry: this process's
figures, or a worker's merged flow-run processes, and the store figures) is translated into OpenTelemetry's
metric data and handed to the OpenTelemetry SDK's own OTLP/HTTP exporter
(``opentelemetry-exporter-otlp-proto-http``), on a thread, every ``collectionInterval``, and once more when the
process stops. Counters become cumulative monotonic sums (named without ``_total``, as OpenTelemetry names
them), gauges gauges, histograms explicit-bucket histograms with the same bounds.

Where to: the exporter's standard variables, ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` (a full URL) or
``OTEL_EXPORTER_OTLP_ENDPOINT`` (a base URL; ``/v1/metrics`` is added), else ``http://localhost:4318/v1/metrics``;
headers and timeouts likewise (``OTEL_EXPORTER_OTLP_HEADERS`` …). The API pushes while it runs; a worker pushes
its flow runs' figures (``agentparty worker``: its flow-run processes are aggregated as for its listener).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

logger = logging.getLogger(__name__)


def _number_points(family: Metric, start: int, now: int, suffix: str) -> list[Any]:
    from opentelemetry.sdk.metrics.export import NumberDataPoint

    return [
        NumberDataPoint(attributes=dict(s.labels), start_time_unix_nano=start, time_unix_nano=now, value=s.value)
        for s in family.samples
        if s.name == family.name + suffix and math.isfinite(s.value)
    ]


def _histogram_points(family: Metric, start: int, now: int) -> list[Any]:
    """Prometheus's cumulative ``le`` buckets as OpenTelemetry's per-bucket counts and finite bounds."""
    from opentelemetry.sdk.metrics.export import HistogramDataPoint

    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = defaultdict(lambda: {"buckets": []})
    for s in family.samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        if s.name.endswith("_bucket"):
            series[labels]["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            series[labels]["count"] = s.value
        elif s.name.endswith("_sum"):
            series[labels]["sum"] = s.value
    points = []
    for labels, found in series.items():
        buckets = sorted(found["buckets"])
        cumulative = [count for _, count in buckets]
        counts = [int(c - p) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
        points.append(
            HistogramDataPoint(
                attributes=dict(labels),
                start_time_unix_nano=start,
                time_unix_nano=now,
                count=int(found.get("count", cumulative[-1] if cumulative else 0)),
                sum=found.get("sum", 0.0),
                bucket_counts=counts,
                explicit_bounds=[le for le, _ in buckets if math.isfinite(le)],
                min=None,  # type: ignore[arg-type]  # unknown from Prometheus buckets: left out of the message
                max=None,  # type: ignore[arg-type]
            )
        )
    return points


def metrics_data(families: Iterable[Metric], start_ns: int, service: str) -> Any:
    """OpenTelemetry ``MetricsData`` of these Prometheus families, cumulative since ``start_ns``."""
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
        Histogram,
        MetricsData,
        ResourceMetrics,
        ScopeMetrics,
        Sum,
    )
    from opentelemetry.sdk.metrics.export import Metric as OtelMetric
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    now, cumulative = time.time_ns(), AggregationTemporality.CUMULATIVE
    metrics = []
    for family in families:
        data: Any
        if family.type == "counter":
            points = _number_points(family, start_ns, now, "_total")
            data = Sum(data_points=points, aggregation_temporality=cumulative, is_monotonic=True)
        elif family.type == "gauge":
            data = Gauge(data_points=_number_points(family, start_ns, now, ""))
        elif family.type == "histogram":
            data = Histogram(data_points=_histogram_points(family, start_ns, now), aggregation_temporality=cumulative)
        else:  # summaries, info, unknown: none of ours
            continue
        if data.data_points:
            metrics.append(OtelMetric(name=family.name, description=family.documentation, unit="", data=data))
    scope = ScopeMetrics(scope=InstrumentationScope("agentparty"), metrics=metrics, schema_url="")
    resource = Resource.create({"service.name": service})
    return MetricsData(resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[scope], schema_url="")])


class OtlpPusher:
    """Pushes ``registry`` over OTLP/HTTP every ``interval_s`` on a thread, and once more at :meth:`close`."""

    def __init__(self, registry: CollectorRegistry, interval_s: float, service: str, endpoint: str | None = None):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        self.registry = registry
        self.interval_s = interval_s
        self.service = service
        self.exporter = OTLPMetricExporter(endpoint=endpoint)
        self.pushed = 0
        self._start_ns = time.time_ns()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-otlp", daemon=True)

    def start(self) -> OtlpPusher:
        self._thread.start()
        return self

    def push(self) -> bool:
        """One export; whether the receiver took it (a failure is logged by the exporter and retried next time)."""
        from opentelemetry.sdk.metrics.export import MetricExportResult

        data = metrics_data(self.registry.collect(), self._start_ns, self.service)
        ok = self.exporter.export(data) is MetricExportResult.SUCCESS
        self.pushed += ok
        return ok

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.push()
            except Exception as exc:  # a bad sample must not end the thread: the next interval tries again
                logger.warning("metrics: OTLP export failed: %s", exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval_s + 5)
        try:
            self.push()
        except Exception as exc:
            logger.warning("metrics: last OTLP export failed: %s", exc)
        self.exporter.shutdown()
