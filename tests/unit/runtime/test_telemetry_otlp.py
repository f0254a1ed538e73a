"""``exportFormats: [otlp]``: the metrics reach an OTLP/HTTP receiver, decoded from the protobuf it was sent.

The receiver is a STAND-IN (``support/otlp_stand_in.py``): this machine has no real OTLP metrics receiver.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.otlp_stand_in import StandInOtlpReceiver, attributes_of, metrics_of, stand_in_receiver

from agentparty.models.sdk_config import MetricsConfig
from agentparty.runtime import telemetry_metrics as tm
from agentparty.runtime.telemetry_export import MetricsExporter


@pytest.fixture
def receiver() -> Iterator[StandInOtlpReceiver]:
    with stand_in_receiver() as server:
        yield server


def test_otlp_pushes_counters_gauges_and_histograms_every_interval(
    receiver: StandInOtlpReceiver, tmp_path: Path
) -> None:
    tm.configure(MetricsConfig())
    wf = f"wf-{uuid.uuid4().hex[:6]}"
    tm.record_run_started(wf)
    tm.record_step("subgraph", "completed", 0.3)
    tm.record_step("subgraph", "completed", 7.0)
    config = MetricsConfig(export_formats=["otlp"], collection_interval=200)
    exporter = MetricsExporter.build(config, tmp_path, approvals=lambda: 4)
    from agentparty.runtime.telemetry_otlp import OtlpPusher

    pusher = OtlpPusher(
        exporter.registry, 0.2, "agentparty-test", endpoint=f"http://127.0.0.1:{receiver.server_port}/v1/metrics"
    )
    pusher.start()
    try:
        deadline = time.monotonic() + 10
        while len(receiver.requests) < 2 and time.monotonic() < deadline:  # pushed again each interval
            time.sleep(0.05)
        assert len(receiver.requests) >= 2
    finally:
        pusher.close()

    request = receiver.requests[-1]
    resource = {a.key: a.value.string_value for a in request.resource_metrics[0].resource.attributes}
    assert resource["service.name"] == "agentparty-test"
    metrics = metrics_of(request)
    runs = metrics["agentparty_runs_started"].sum
    assert runs.is_monotonic and runs.aggregation_temporality == 2  # cumulative
    assert [p.as_double for p in runs.data_points if attributes_of(p) == {"workflow": wf}] == [1.0]
    assert metrics["agentparty_approvals_waiting"].gauge.data_points[0].as_double == 4.0
    steps = metrics["agentparty_step_duration_seconds"].histogram
    (point,) = [p for p in steps.data_points if attributes_of(p) == {"kind": "subgraph", "outcome": "completed"}]
    assert point.count >= 2 and sum(point.bucket_counts) == point.count
    assert len(point.bucket_counts) == len(point.explicit_bounds) + 1  # the +Inf bucket last
    assert point.bucket_counts[list(point.explicit_bounds).index(0.5)] >= 1  # 0.3 s lies in (0.25, 0.5]


def test_otlp_starts_only_when_listed(tmp_path: Path) -> None:
    assert MetricsExporter.build(MetricsConfig(), tmp_path, approvals=lambda: None).start_otlp("x") is None
    off = MetricsConfig(enabled=False, export_formats=["otlp"])
    assert MetricsExporter.build(off, tmp_path, approvals=lambda: None).start_otlp("x") is None
