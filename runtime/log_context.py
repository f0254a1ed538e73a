"""Which step and agent the code that logs is working for, so every log line can name them.

Prefect's own contexts already say which flow run (and task run) a line comes
from; nothing of Prefect's knows our step ids or agent ids. A step's task and the
agent runner bind them here (:func:`log_ids`, a context manager over context
variables, so parallel steps and agents each see their own), and the log
formatter (``runtime/structured_logs.py``) reads them with :func:`current_ids`.
Trace and span ids come from OpenTelemetry's current span, or from a record that
already carries them (``trace_id``/``span_id`` attributes).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator

_STEP: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentparty_log_step", default=None)
_AGENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentparty_log_agent", default=None)

ID_FIELDS = ("run_id", "step_id", "agent_id", "trace_id", "span_id")
"""The ids every structured log line carries (null where the line is about none)."""


@contextlib.contextmanager
def log_ids(*, step_id: str | None = None, agent_id: str | None = None) -> Iterator[None]:
    """Lines logged inside name this step and/or agent (an id left None keeps the enclosing one)."""
    tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]] = []
    if step_id is not None:
        tokens.append((_STEP, _STEP.set(step_id)))
    if agent_id is not None:
        tokens.append((_AGENT, _AGENT.set(agent_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _prefect_run_id() -> str | None:
    """The flow run this thread works for, when Prefect is loaded (a process without it has no runs)."""
    context = sys.modules.get("prefect.context")
    if context is None:
        return None
    flow_run = context.FlowRunContext.get()
    if flow_run is not None and flow_run.flow_run is not None:
        return str(flow_run.flow_run.id)
    task_run = context.TaskRunContext.get()
    if task_run is not None and task_run.task_run.flow_run_id is not None:
        return str(task_run.task_run.flow_run_id)
    return None


def _otel_ids() -> tuple[str | None, str | None]:
    """The current OpenTelemetry span's trace and span id as W3C hex, when OpenTelemetry is loaded and a span is."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None, None
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None, None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def current_ids(record_trace_id: str | None = None, record_span_id: str | None = None) -> dict[str, str | None]:
    """Run, step, agent, trace and span ids of the code running now (``ID_FIELDS``, None where unknown)."""
    trace_id, span_id = record_trace_id, record_span_id
    if trace_id is None:
        trace_id, span_id = _otel_ids()
    return {
        "run_id": _prefect_run_id(),
        "step_id": _STEP.get(),
        "agent_id": _AGENT.get(),
        "trace_id": trace_id,
        "span_id": span_id,
    }
