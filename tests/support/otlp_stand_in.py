"""A STAND-IN OTLP/HTTP metrics receiver for tests: this machine has no real one (Debian's Prometheus 2.42
predates its OTLP receiver). A plain HTTP server that accepts ``POST /v1/metrics`` and decodes the body with the
OpenTelemetry protocol's own message classes (``opentelemetry-proto``), as a collector would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)


class StandInOtlpReceiver(ThreadingHTTPServer):
    """A stand-in OTLP/HTTP metrics receiver: keeps every request it was sent, decoded."""

    def __init__(self) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                receiver.requests.append(request)
                receiver.arrived.set()
                answer = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/metrics" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)


@contextmanager
def stand_in_receiver() -> Iterator[StandInOtlpReceiver]:
    server = StandInOtlpReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def metrics_of(request: ExportMetricsServiceRequest) -> dict[str, Any]:
    """The request's metrics by name."""
    return {m.name: m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def attributes_of(point: Any) -> dict[str, str]:
    return {a.key: a.value.string_value for a in point.attributes}
