"""Serving the metrics (``monitoring.metrics.exportFormats``): Prometheus text, a JSON snapshot, CSV.

One :class:`MetricsExporter` per serving process (the API; a worker's listener) assembles what a scrape sees:

* this process's recorded metrics (the default registry, with ``prometheus_client``'s process collector:
  ``process_resident_memory_bytes``), or, where flow-run processes write to a multiprocess directory (a
  worker), their merged files (``runtime/telemetry_multiproc.py``) and this process's own process collector;
* the figures read from the home's stores at scrape time (``runtime/telemetry_stores.py``).

Formats, each served only when listed in ``exportFormats`` (an unlisted one is refused naming the setting):

* ``prometheus``: the text exposition format, ``GET /metrics``;
* ``json``: the same samples as a JSON document, ``GET /metrics/json`` (the seed's default format);
* ``csv``: one row per sample (``metric,type,sample,labels,value``, labels as JSON), ``GET /metrics/csv``.

``otlp`` is pushed, not served (``runtime/telemetry_otlp.py``); ``statsd`` is refused when the configuration
loads (``models/sdk_config.py`` says why).

Without a key, Prometheus scrapes a separate listener (``AGENTPARTY_METRICS_ADDRESS``, ``host:port``) that serves
the same three routes: the API and ``agentparty worker`` start one when it is set (:func:`start_listener`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from agentparty.models.sdk_config import MetricsConfig
from agentparty.runtime.state_backend import StateBackend
from agentparty.runtime.telemetry_multiproc import CompactingCollector
from agentparty.runtime.telemetry_stores import StoreCollector

if TYPE_CHECKING:
    from agentparty.runtime.telemetry_otlp import OtlpPusher

ROUTES = {"/metrics": "prometheus", "/metrics/json": "json", "/metrics/csv": "csv"}
CONTENT_TYPES = {"prometheus": CONTENT_TYPE_LATEST, "json": "application/json", "csv": "text/csv; charset=utf-8"}
HOURS = 3600.0


class _Delegate(Collector):
    """Another registry's metrics, read when scraped (this process's default registry)."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


@dataclass
class MetricsExporter:
    """What one process serves as its metrics, in the formats the configuration lists."""

    config: MetricsConfig
    registry: CollectorRegistry
    stores: StoreCollector | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(
        cls,
        config: MetricsConfig,
        home: Path,
        *,
        multiproc_dir: Path | None = None,
        approvals: Callable[[], int | None] | None = None,
        state: StateBackend | None = None,
    ) -> MetricsExporter:
        """The exporter of a process serving ``home``; ``multiproc_dir``: merge the files of the processes that
        write there (a worker's flow runs) instead of reading this process's registry."""
        interval = config.collection_interval / 1000
        registry = CollectorRegistry(auto_describe=False)
        if multiproc_dir is not None:
            registry.register(CompactingCollector(multiproc_dir, interval, config.retention_period * HOURS))
            ProcessCollector(registry=registry)
        else:
            registry.register(_Delegate(REGISTRY))
        stores = (
            StoreCollector(home, interval, state=state)
            if approvals is None
            else StoreCollector(home, interval, approvals=approvals, state=state)
        )
        registry.register(stores)
        return cls(config, registry, stores)

    def start_otlp(self, service: str) -> OtlpPusher | None:
        """Push these metrics over OTLP every ``collectionInterval`` when ``exportFormats`` lists ``otlp``."""
        if not self.config.enabled or "otlp" not in self.config.export_formats:
            return None
        from agentparty.runtime.telemetry_otlp import OtlpPusher  # deferred: the OpenTelemetry SDK loads only for otlp

        return OtlpPusher(self.registry, self.config.collection_interval / 1000, service).start()

    def refusal(self, fmt: str) -> str | None:
        """Why ``fmt`` is not served, or None when it is."""
        if not self.config.enabled:
            return "monitoring.metrics.enabled is false: nothing is recorded"
        if fmt not in self.config.export_formats:
            listed = ", ".join(self.config.export_formats) or "none"
            return f"{fmt} is not in monitoring.metrics.exportFormats (listed: {listed})"
        return None

    def render(self, fmt: str) -> bytes:
        """The current samples in ``fmt`` (``prometheus``, ``json`` or ``csv``)."""
        with self._lock:  # one scrape at a time: concurrent ones would only repeat the same reads
            if fmt == "prometheus":
                return generate_latest(self.registry)
            families = list(self.registry.collect())
        return render_json(families) if fmt == "json" else render_csv(families)


def _number(value: float) -> float | str:
    """JSON has no NaN or infinity: those are written as Prometheus writes them."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def render_json(families: Iterable[Metric]) -> bytes:
    document = {
        "collectedAt": datetime.now(UTC).isoformat(),
        "metrics": [
            {
                "name": family.name,
                "type": family.type,
                "help": family.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": _number(s.value)} for s in family.samples],
            }
            for family in families
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def render_csv(families: Iterable[Metric]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "type", "sample", "labels", "value"])
    for family in families:
        for s in family.samples:
            labels = json.dumps(s.labels, sort_keys=True, separators=(",", ":"))
            writer.writerow([family.name, family.type, s.name, labels, _number(s.value)])
    return out.getvalue().encode()


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9100`` for IPv6) as a pair; ValueError naming the setting otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"AGENTPARTY_METRICS_ADDRESS must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the log."""


def wsgi_app(exporter: MetricsExporter) -> Callable[..., Iterator[bytes]]:
    """The listener's application: the three routes, without a key."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        fmt = ROUTES.get(environ.get("PATH_INFO", ""))
        if fmt is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return iter([f"not found; routes: {', '.join(ROUTES)}\n".encode()])
        refused = exporter.refusal(fmt)
        if refused is not None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return iter([refused.encode() + b"\n"])
        body = exporter.render(fmt)
        start_response("200 OK", [("Content-Type", CONTENT_TYPES[fmt]), ("Content-Length", str(len(body)))])
        return iter([body])

    return app


@dataclass
class Listener:
    """A running metrics listener; :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread
    host: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_listener(exporter: MetricsExporter, address: str) -> Listener:
    """Serve ``exporter`` without a key at ``address`` (``host:port``; port 0 picks a free one) in a thread."""
    host, port = parse_address(address)
    server = make_server(host, port, wsgi_app(exporter), _ThreadingServer, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="metrics-listener", daemon=True)
    thread.start()
    return Listener(server, thread, host)
