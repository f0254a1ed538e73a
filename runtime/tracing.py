"""OpenTelemetry traces of runs, following the GenAI semantic conventions, exported over OTLP/HTTP.

Prefect already makes a span for every flow run and task run, parents a flow
run's span on a W3C ``traceparent`` in its ``__OTEL_TRACEPARENT`` label, and
makes each run's span the current one while it runs
(``prefect/telemetry/run_telemetry.py``); it leaves installing a tracer
provider to the application. So this module does not repeat run spans. It:

* installs the SDK tracer provider with an OTLP/HTTP exporter, once per
  process, when an endpoint is configured (:func:`configure_tracing`); with
  none, nothing is installed, OpenTelemetry's API stays the no-op it is, and our
  span helpers return before touching a context: tracing costs nothing;
* annotates the span Prefect made for a step (:func:`annotate_step`,
  :func:`annotate_agent_step`: ``gen_ai.operation.name = invoke_agent`` for an
  agent step) instead of making a second one beside it;
* makes a ``chat {model}`` span per model turn and an ``execute_tool {tool}``
  span per tool call (:func:`chat_span`, :func:`tool_span`), children of the
  checkpoint task run's span they run in;
* puts the current ``trace_id`` and ``span_id`` on every log record
  (:func:`install_log_ids`) for the log formatter to print.

The GenAI attributes follow the conventions' latest experimental version
(``gen_ai.provider.name``, not the older ``gen_ai.system``). Prompt and
completion content stays out of spans unless ``monitoring.tracing.captureContent``
is on; then it is masked like any run data leaving a run (``security.dataMasking``),
and API keys are redacted in any case.

Where spans go, first found: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_ENDPOINT`` (+ ``/v1/traces``), ``AGENTPARTY_TRACES_ENDPOINT``,
the trace viewer ``agentparty up --traces`` runs for this home. ``OTEL_SDK_DISABLED``
and ``OTEL_TRACES_EXPORTER=none`` turn tracing off; a protocol other than
``http/protobuf`` is refused, naming the variable.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode

from agentparty.runtime.secrets import redact
from agentparty.runtime.trace_viewer import recorded_endpoint

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from agentparty.models.messages import Message
    from agentparty.models.sdk_config import SDKConfiguration
    from agentparty.runtime.masking import Masker
    from agentparty.runtime.model_router import RoutedCompletion
    from agentparty.runtime.providers.base import CompletionRequest
    from agentparty.runtime.settings import Settings

logger = logging.getLogger(__name__)

TRACER_NAME = "agentparty"
CONTENT_LIMIT = 16_000
"""Characters of one captured content attribute (a long conversation is cut, not dropped)."""


@dataclass
class _Tracing:
    tracer: trace.Tracer | None = None
    """Set while tracing is on: our spans are made with it."""
    capture: bool = False
    masker: Masker | None = None
    provider: Any = None
    """The provider our spans come from (the SDK's, or one a test or an embedding application installed)."""
    configured: bool = False


_state = _Tracing()
_lock = threading.Lock()


# -- configuration --------------------------------------------------------------------------------


def traces_endpoint(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """Where this process's spans go, or None for no tracing (see the module's docstring)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ValueError(f"{name}={protocol!r}: spans are exported over OTLP/HTTP only; use http/protobuf")
    if explicit := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return explicit
    if base := env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return base.rstrip("/") + "/v1/traces"
    if settings.traces_endpoint:
        return settings.traces_endpoint
    return recorded_endpoint(settings.home)


def configure_tracing(settings: Settings, service: str, config: SDKConfiguration | None = None) -> bool:
    """Install the exporting tracer provider once per process when an endpoint is configured; True if tracing.

    A provider installed before (``opentelemetry-instrument``, an embedding application) is used as it is.
    Called where a process starts running workflows or serving: compiling a workflow, the API's startup.
    """
    with _lock:
        if _state.configured:
            return _state.tracer is not None
        _state.configured = True
        endpoint = traces_endpoint(settings)
        installed = trace.get_tracer_provider()
        if endpoint is None and isinstance(installed, trace.ProxyTracerProvider):
            return False
        config = config or settings.load_sdk_configuration()
        from agentparty.runtime.masking import masker_for

        if isinstance(installed, trace.ProxyTracerProvider):
            assert endpoint is not None
            provider = _exporting_provider(endpoint, service)
            trace.set_tracer_provider(provider)
            logger.debug("exporting spans to %s", endpoint)
        start_tracing(
            trace.get_tracer_provider(),
            capture=config.monitoring.tracing.capture_content,
            masker=masker_for(config.security),
        )
        return True


def _exporting_provider(endpoint: str, service: str) -> TracerProvider:
    """The SDK provider with a batching OTLP/HTTP exporter (imported only here: the SDK loads only when on)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def start_tracing(provider: Any, *, capture: bool = False, masker: Masker | None = None) -> None:
    """Make our spans with ``provider`` (any ``TracerProvider``; tests hand in one with an in-memory exporter)."""
    _state.tracer = provider.get_tracer(TRACER_NAME)
    _state.capture = capture
    _state.masker = masker
    _state.provider = provider
    install_log_ids()


def stop_tracing() -> None:
    """Make no spans from now on, and let :func:`configure_tracing` look again (tests)."""
    with _lock:
        _state.tracer = None
        _state.capture = False
        _state.masker = None
        _state.provider = None
        _state.configured = False
        if logging.getLogRecordFactory() is _log_ids_factory:  # unless another factory chained onto ours since
            logging.setLogRecordFactory(_log_ids_base[0])


def flush(timeout_ms: int = 5000) -> None:
    """Export what is buffered now (a short-lived process's spans before it exits; the SDK also does at exit)."""
    provider = _state.provider
    if provider is not None and hasattr(provider, "force_flush"):
        provider.force_flush(timeout_ms)


def tracing_on() -> bool:
    return _state.tracer is not None


# -- ids for logs and artifacts -------------------------------------------------------------------


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, in W3C hex; None outside any valid span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def current_trace_id() -> str | None:
    ids = current_ids()
    return ids[0] if ids else None


_log_ids_base: list[Any] = []
"""The record factory ours chains onto (one element once installed)."""


def _log_ids_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _log_ids_base[0](*args, **kwargs)
    trace_id, span_id = current_ids() or ("", "")
    record.__dict__.update(trace_id=trace_id, span_id=span_id)  # as ``extra=`` would set them
    return record


def install_log_ids() -> None:
    """Give every log record made from now on ``trace_id`` and ``span_id`` attributes ("" outside a span).

    Chained onto whatever record factory is installed (data masking's, ``runtime/masking.py``); installed with
    tracing only: without a trace there is nothing to correlate lines with.
    """
    if logging.getLogRecordFactory() is _log_ids_factory:
        return
    _log_ids_base[:] = [logging.getLogRecordFactory()]
    logging.setLogRecordFactory(_log_ids_factory)


# -- requests and the runs they start ----------------------------------------------------------


PREFECT_TRACEPARENT_LABEL = "__OTEL_TRACEPARENT"
"""The flow-run label Prefect parents a run's span on (``prefect.telemetry.run_telemetry.LABELS_TRACEPARENT_KEY``)."""


@contextmanager
def server_span(name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]) -> Iterator[Span]:
    """A server span around a request, joined to the caller's trace when it sent a W3C ``traceparent``."""
    tracer = _state.tracer
    if tracer is None:
        yield INVALID_SPAN
        return
    parent = propagate.extract(headers)
    with tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes) as span:
        try:
            yield span
        except BaseException as exc:
            status = getattr(exc, "status_code", None)  # an HTTPException: the answer, not a crash
            if isinstance(status, int):
                span.set_attribute("http.response.status_code", status)
            span.set_attribute("error.type", str(status) if isinstance(status, int) else type(exc).__qualname__)
            raise


def run_trace_labels() -> dict[str, Any] | None:
    """Labels for a flow run created now, so that Prefect parents its span on the current span; None untraced."""
    if _state.tracer is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    traceparent = carrier.get("traceparent")
    return {PREFECT_TRACEPARENT_LABEL: traceparent} if traceparent else None


# -- spans ----------------------------------------------------------------------------------------


def annotate_step(step_id: str, kind: str, attempt: int) -> None:
    """Mark the span Prefect made for a step's task run as the step's (no-op without tracing)."""
    if _state.tracer is None:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {"agentparty.step.id": step_id, "agentparty.step.kind": kind, "agentparty.attempt": attempt}
        )


def annotate_agent_step(agent: str) -> Span:
    """Make the step's span an ``invoke_agent`` span (GenAI conventions); the span, for :func:`agent_answered`."""
    if _state.tracer is None:
        return INVALID_SPAN
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"invoke_agent {agent}")
        span.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent})
    return span


def agent_answered(span: Span, agent_id: str, model: str, input_tokens: int, output_tokens: int) -> None:
    """What the agent step used, on its ``invoke_agent`` span."""
    if span.is_recording():
        span.set_attributes(
            {
                "gen_ai.agent.id": agent_id,
                "gen_ai.response.model": model,
                "gen_ai.usage.input_tokens": input_tokens,
                "gen_ai.usage.output_tokens": output_tokens,
            }
        )


@contextmanager
def chat_span(request: CompletionRequest, agent_id: str, agent_name: str, step_id: str, turn: int) -> Iterator[Span]:
    """A ``chat {model}`` client span around one model turn; :func:`chat_answered` records the answer."""
    tracer = _state.tracer
    if tracer is None:
        yield INVALID_SPAN
        return
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": request.model,
        "gen_ai.request.max_tokens": request.max_tokens,
        "gen_ai.agent.id": agent_id,
        "gen_ai.agent.name": agent_name,
        "agentparty.step.id": step_id,
        "agentparty.turn": turn,
    }
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    if _state.capture and request.messages:
        attributes["gen_ai.input.messages"] = _content([_message_part(m) for m in request.messages])
    span = tracer.start_span(f"chat {request.model}", kind=SpanKind.CLIENT, attributes=attributes)
    with trace.use_span(span, end_on_exit=True), _error_type(span):
        yield span


def chat_answered(span: Span, routed: RoutedCompletion) -> None:
    """The turn's answer on its chat span: provider, answering model, usage; the content when captured."""
    if not span.is_recording():
        return
    completion = routed.completion
    attributes: dict[str, Any] = {
        "gen_ai.provider.name": completion.provider,
        "gen_ai.response.model": routed.model,
        "gen_ai.usage.input_tokens": completion.input_tokens,
        "gen_ai.usage.output_tokens": completion.output_tokens,
    }
    if completion.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [completion.finish_reason]
    if _state.capture:
        parts: list[dict[str, Any]] = [{"type": "text", "content": completion.text}] if completion.text else []
        parts += [
            {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
            for call in completion.tool_calls
        ]
        attributes["gen_ai.output.messages"] = _content([{"role": "assistant", "parts": parts}])
    span.set_attributes(attributes)


@contextmanager
def tool_span(
    tool: str, call_id: str, *, tool_type: str = "function", arguments: Any = None, step_id: str = ""
) -> Iterator[Span]:
    """An ``execute_tool {tool}`` span around one tool call; :func:`tool_answered` records how it ended."""
    tracer = _state.tracer
    if tracer is None:
        yield INVALID_SPAN
        return
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": tool_type,
        "agentparty.step.id": step_id,
    }
    if _state.capture and arguments is not None:
        attributes["gen_ai.tool.call.arguments"] = _content(arguments)
    span = tracer.start_span(f"execute_tool {tool}", attributes=attributes)
    with trace.use_span(span, end_on_exit=True), _error_type(span):
        yield span


def tool_answered(span: Span, *, content: str, is_error: bool, refused: bool) -> None:
    if not span.is_recording():
        return
    if _state.capture:
        span.set_attribute("gen_ai.tool.call.result", _content(content))
    if is_error:
        span.set_attribute("error.type", "tool_refused" if refused else "tool_error")
        span.set_status(Status(StatusCode.ERROR, "refused" if refused else "the tool answered an error"))


@contextmanager
def _error_type(span: Span) -> Iterator[None]:
    """``error.type`` on a span an exception leaves (the SDK records the exception and the status itself)."""
    try:
        yield
    except BaseException as exc:
        span.set_attribute("error.type", type(exc).__qualname__)
        raise


# -- content --------------------------------------------------------------------------------------


def _message_part(message: Message) -> dict[str, Any]:
    if getattr(message, "tool_result", None) is not None:
        role = "tool"
    else:
        role = {"system": "system", "user": "user", "agent": "assistant"}.get(str(message.type), "tool")
    return {"role": role, "parts": [{"type": "text", "content": message.content}]}


def _content(value: Any) -> str:
    """Captured content as a JSON string, masked (or at least redacted) and cut to :data:`CONTENT_LIMIT`."""
    masker = _state.masker
    if masker is not None:
        value = masker.data(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return redact(text)[:CONTENT_LIMIT]
