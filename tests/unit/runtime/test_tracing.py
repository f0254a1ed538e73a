"""Where spans go, how a request's trace reaches the run it starts, and the ids on log records (runtime/tracing.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentparty.models import SDKConfiguration
from agentparty.runtime import tracing
from agentparty.runtime.settings import Settings
from agentparty.runtime.trace_viewer import LocalTraceViewer

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def test_the_endpoint_is_the_standard_variable_else_the_setting_else_the_local_viewer(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert tracing.traces_endpoint(settings, {}) is None, "nothing configured: no tracing"
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    assert tracing.traces_endpoint(settings, base) == "http://collector:4318/v1/traces"
    explicit = base | {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/x"}
    assert tracing.traces_endpoint(settings, explicit) == "http://traces:4318/x"
    assert tracing.traces_endpoint(settings, explicit | {"OTEL_SDK_DISABLED": "true"}) is None
    assert tracing.traces_endpoint(settings, explicit | {"OTEL_TRACES_EXPORTER": "none"}) is None
    own = Settings(home=tmp_path, traces_endpoint="http://mine:6006/v1/traces")
    assert tracing.traces_endpoint(own, {}) == "http://mine:6006/v1/traces"

    viewer = LocalTraceViewer(tmp_path, port=6123)
    viewer.pid_file.parent.mkdir(parents=True)
    viewer.endpoint_file.write_text(viewer.otlp_endpoint)
    assert tracing.traces_endpoint(settings, {}) is None, "a record without a running viewer is stale"
    viewer.pid_file.write_text(str(os.getpid()))  # a live pid: the viewer "runs"
    assert tracing.traces_endpoint(settings, {}) == "http://127.0.0.1:6123/v1/traces"
    assert tracing.traces_endpoint(own, {}) == "http://mine:6006/v1/traces", "a configured endpoint comes first"


def test_a_grpc_protocol_is_refused_naming_the_variable(tmp_path: Path) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL='grpc'"):
        tracing.traces_endpoint(Settings(home=tmp_path), environ)


def test_no_endpoint_installs_nothing(tmp_path: Path) -> None:
    tracing.stop_tracing()
    try:
        assert tracing.configure_tracing(Settings(home=tmp_path), "test") is False
        assert not tracing.tracing_on()
        assert logging.getLogRecordFactory() is not tracing._log_ids_factory
    finally:
        tracing.stop_tracing()


def test_capture_content_is_a_monitoring_setting() -> None:
    config = SDKConfiguration.model_validate({"monitoring": {"tracing": {"captureContent": True}}})
    assert config.monitoring.tracing.capture_content is True
    assert SDKConfiguration().monitoring.tracing.capture_content is False


def test_a_webhook_request_joins_the_callers_trace_and_hands_it_to_the_run(spans: InMemorySpanExporter) -> None:
    attributes = {"http.route": "/webhooks/{workflow_id}"}
    with tracing.server_span("POST /webhooks/{workflow_id}", {"traceparent": CALLER}, attributes) as span:
        labels = tracing.run_trace_labels()
        ids = tracing.current_ids()
    (finished,) = spans.get_finished_spans()
    assert finished.kind is SpanKind.SERVER and finished.context is not None
    assert format(finished.context.trace_id, "032x") == CALLER_TRACE
    assert finished.parent is not None and format(finished.parent.span_id, "016x") == "00f067aa0ba902b7"
    span_id = format(span.get_span_context().span_id, "016x")
    assert labels == {"__OTEL_TRACEPARENT": f"00-{CALLER_TRACE}-{span_id}-01"}, "Prefect parents the run on it"
    assert ids == (CALLER_TRACE, span_id)


def test_the_label_key_is_prefects() -> None:
    from prefect.telemetry.run_telemetry import LABELS_TRACEPARENT_KEY

    assert tracing.PREFECT_TRACEPARENT_LABEL == LABELS_TRACEPARENT_KEY


def test_log_records_carry_the_trace_and_span_ids(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("agentparty.test.tracing")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("outside")
        with tracing.tool_span("lookup", "call_1") as span:
            logger.info("inside")
    outside, inside = caplog.records
    assert (outside.trace_id, outside.span_id) == ("", "")  # type: ignore[attr-defined]
    context = span.get_span_context()
    assert inside.trace_id == format(context.trace_id, "032x")  # type: ignore[attr-defined]
    assert inside.span_id == format(context.span_id, "016x")  # type: ignore[attr-defined]


def test_steps_are_annotated_on_the_span_they_run_in(spans: InMemorySpanExporter) -> None:
    from opentelemetry import trace

    tracer = trace.get_tracer("test", tracer_provider=tracing._state.provider)
    with tracer.start_as_current_span("research"):  # stands in for Prefect's span of the step's task run
        tracing.annotate_step("research", "task", 2)
        agent = tracing.annotate_agent_step("analyst")
        tracing.agent_answered(agent, "agent-1", "gpt-x", 120, 30)
    (step,) = spans.get_finished_spans()
    assert step.name == "invoke_agent analyst"
    assert dict(step.attributes or {}) == {
        "agentparty.step.id": "research",
        "agentparty.step.kind": "task",
        "agentparty.attempt": 2,
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "analyst",
        "gen_ai.agent.id": "agent-1",
        "gen_ai.response.model": "gpt-x",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
    }
