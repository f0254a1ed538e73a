"""The engine's Prometheus metrics (``monitoring.metrics``): one place that names them, and cheap ``record_*`` calls.

Every figure is recorded where its fact happens (a run starts, a step ends, a
model answers) by one call here, which costs a dictionary lookup and a float
add when metrics are on and a flag test when they are off
(``monitoring.metrics.enabled: false``, :func:`configure`). The names are a
contract: alerting rules (``runtime/alert_rules.py``) and dashboards use them,
so a name is never renamed, only added.

Figures that live in a store rather than in a process (the outbox backlog and
relay lag, webhook deliveries per status, approvals waiting, circuit breaker
states, the memory limit) are not recorded on every write: the serving process
reads them from their stores when scraped, at most once per
``collectionInterval`` (``runtime/telemetry_export.py``). Their names are here
too, so that everything a rule may name is in one module.

Processes. The API and ``agentparty run`` record into this process's default
registry. A worker's flow runs execute in short-lived processes that Prefect's
process worker starts; their figures are **aggregated by the worker** with
``prometheus_client``'s multiprocess mode rather than pushed: the worker points
``PROMETHEUS_MULTIPROC_DIR`` at a directory of its own under
``AGENTPARTY_HOME/metrics/``, its flow-run processes inherit it and write their
samples to memory-mapped files there (a write is a store into a mapped page, no
network call, nothing lost when the process exits a moment later), and the
worker's ``/metrics`` merges them. A Pushgateway would need another server,
would keep only the last push of each group (counters of concurrent runs
overwrite each other unless every run gets its own group, one series set per
run forever), and loses whatever a crashing process had not pushed. Gauges
recorded in flow-run processes use ``mostrecent`` (the latest value written by
any process, e.g. the last budget charged), so a finished process's value stays
meaningful; :func:`mark_process_dead` runs at exit for any ``live*`` gauge.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.multiprocess import mark_process_dead as _untyped_mark_process_dead

from agentparty.models.agent import REALTIME_RESPONSE_TIME_MS, PerformanceMetrics
from agentparty.models.sdk_config import MetricsConfig
from agentparty.models.tools import ToolCallRecord

mark_process_dead: Callable[[int, str], None] = _untyped_mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set by a worker for its flow-run processes (``prometheus_client``'s own variable)."""

StepKind = Literal["task", "decision", "parallel", "subgraph"]
RunOutcome = Literal["completed", "failed", "cancelled"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds; 0.2 is seed 002's real-time objective, so a rule can count calls over it exactly."""
_STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_LIVE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)

RUNS_STARTED = Counter("agentparty_runs_started", "Workflow runs started.", ["workflow"])
RUNS_FINISHED = Counter(
    "agentparty_runs_finished",
    "Workflow runs finished, by outcome (completed, failed, cancelled).",
    ["workflow", "outcome"],
)
STEP_DURATION = Histogram(
    "agentparty_step_duration_seconds",
    "Duration of executed steps, by kind and outcome (completed, failed).",
    ["kind", "outcome"],
    buckets=_STEP_BUCKETS,
)
STEPS_SKIPPED = Counter("agentparty_steps_skipped", "Steps skipped (branch not taken, dependency failed).", ["kind"])
MODEL_CALLS = Counter(
    "agentparty_model_calls", "Model calls, by outcome (ok, error).", ["provider", "model", "outcome"]
)
MODEL_CALL_DURATION = Histogram(
    "agentparty_model_call_duration_seconds", "Model call latency.", ["provider", "model"], buckets=_LATENCY_BUCKETS
)
MODEL_TOKENS = Counter(
    "agentparty_model_tokens",
    "Tokens of model calls, by direction (input, output).",
    ["provider", "model", "direction"],
)
MODEL_COST = Counter(
    "agentparty_model_cost_usd",
    "Cost of model calls from the registry's pricing (its currency, USD by default).",
    ["provider", "model"],
)
TOOL_CALLS = Counter(
    "agentparty_tool_calls", "Tool calls agents made, by outcome (ok, error, refused, cached).", ["tool", "outcome"]
)
TOOL_CALL_DURATION = Histogram(
    "agentparty_tool_call_duration_seconds",
    "Tool call duration (approval wait included).",
    ["tool"],
    buckets=_LATENCY_BUCKETS,
)
BUDGET_USED = Gauge(
    "agentparty_budget_used_tokens",
    "Tokens used of the budget at this level that was charged last.",
    ["level"],
    multiprocess_mode="mostrecent",
)
BUDGET_REMAINING = Gauge(
    "agentparty_budget_remaining_tokens",
    "Tokens left of the budget at this level that was charged last.",
    ["level"],
    multiprocess_mode="mostrecent",
)
RATE_LIMIT_WAITS = Counter(
    "agentparty_rate_limit_waits",
    "Model calls that waited for rate-limit allowance (penaltyStrategy queue).",
    ["provider"],
)
RATE_LIMIT_REFUSALS = Counter(
    "agentparty_rate_limit_refusals",
    "Model calls refused for a rate limit: by ours (penaltyStrategy reject) or by the provider (HTTP 429).",
    ["provider"],
)
API_REQUEST_DURATION = Histogram(
    "agentparty_api_request_duration_seconds",
    "API request latency by route template, method and status.",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
API_REFUSALS = Counter("agentparty_api_refusals", "API requests refused: 401, 403, 429.", ["code"])
AGENT_RESPONSE_TIME = Gauge(
    "agentparty_agent_response_time_seconds",
    "Mean response time of an agent (PerformanceMetrics.responseTime).",
    ["agent"],
    multiprocess_mode="mostrecent",
)
AGENT_MEETS_OBJECTIVE = Gauge(
    "agentparty_agent_meets_realtime_objective",
    "1 when the agent's mean response time is under monitoring.performanceThresholds.maxResponseTime.",
    ["agent"],
    multiprocess_mode="mostrecent",
)
LIVE_DELIVERY_LATENCY = Histogram(
    "agentparty_live_delivery_latency_seconds",
    "From a live message's creation to its sending to a client, by protocol.",
    ["protocol"],
    buckets=_LIVE_BUCKETS,
)
LIVE_DELIVERIES_LATE = Counter(
    "agentparty_live_deliveries_late",
    "Live messages sent to a client later than communication.realtime.maxLatency after their creation.",
    ["protocol"],
)

# Read from their stores when scraped (runtime/telemetry_export.py), never recorded per write:
BREAKER_STATE = "agentparty_breaker_state"
"""Per target: 0 closed, 1 half-open, 2 open (the shared breaker store)."""
OUTBOX_BACKLOG = "agentparty_outbox_backlog"
RELAY_LAG = "agentparty_relay_lag_seconds"
"""Age of the oldest event not yet delivered to the broker (0 when none waits)."""
WEBHOOK_DELIVERIES = "agentparty_webhook_deliveries"
"""Accepted webhook deliveries by status (queued, created, failed) still kept in the delivery store."""
APPROVALS_WAITING = "agentparty_approvals_waiting"
"""Flow runs paused for an answer (Prefect state PAUSED)."""
MEMORY_LIMIT = "agentparty_memory_limit_bytes"
"""The container's (cgroup) memory limit, else the machine's memory."""

_state = {"enabled": True, "objective_ms": REALTIME_RESPONSE_TIME_MS}


def configure(config: MetricsConfig, max_response_time_ms: float = REALTIME_RESPONSE_TIME_MS) -> None:
    """Turn recording on or off for this process (``monitoring.metrics.enabled``), and set the response-time
    objective agents are checked against (``monitoring.performanceThresholds.maxResponseTime``)."""
    _state["enabled"] = config.enabled
    _state["objective_ms"] = max_response_time_ms


def enabled() -> bool:
    return bool(_state["enabled"])


def record_run_started(workflow: str) -> None:
    if _state["enabled"]:
        RUNS_STARTED.labels(workflow).inc()


def record_run_finished(workflow: str, outcome: RunOutcome) -> None:
    if _state["enabled"]:
        RUNS_FINISHED.labels(workflow, outcome).inc()


def record_step(kind: str, outcome: str, seconds: float) -> None:
    """An executed step (``completed`` or ``failed``), or a skipped one (counted, no duration)."""
    if not _state["enabled"]:
        return
    if outcome == "skipped":
        STEPS_SKIPPED.labels(kind).inc()
    else:
        STEP_DURATION.labels(kind, outcome).observe(seconds)


def record_model_call(provider: str, model: str, seconds: float, *, ok: bool) -> None:
    if _state["enabled"]:
        MODEL_CALLS.labels(provider, model, "ok" if ok else "error").inc()
        MODEL_CALL_DURATION.labels(provider, model).observe(seconds)


def record_model_usage(provider: str, model: str, input_tokens: int, output_tokens: int, cost: float) -> None:
    if not _state["enabled"]:
        return
    MODEL_TOKENS.labels(provider, model, "input").inc(input_tokens)
    MODEL_TOKENS.labels(provider, model, "output").inc(output_tokens)
    if cost:
        MODEL_COST.labels(provider, model).inc(cost)


def record_tool_call(tool: str, record: ToolCallRecord) -> None:
    """A finished tool call: ``tool`` is the toolbox's name for it (``(unknown)`` for a name the model made up)."""
    if _state["enabled"]:
        outcome = "cached" if record.cached else "refused" if record.refused else "ok" if record.ok else "error"
        TOOL_CALLS.labels(tool, outcome).inc()
        TOOL_CALL_DURATION.labels(tool).observe(record.duration_ms / 1000)


def record_budget(level: str, used: int, limit: int) -> None:
    if _state["enabled"]:
        BUDGET_USED.labels(level).set(used)
        BUDGET_REMAINING.labels(level).set(max(0, limit - used))


def record_rate_limit_wait(provider: str) -> None:
    if _state["enabled"]:
        RATE_LIMIT_WAITS.labels(provider).inc()


def record_rate_limit_refusal(provider: str) -> None:
    if _state["enabled"]:
        RATE_LIMIT_REFUSALS.labels(provider).inc()


def record_api_request(route: str, method: str, status: int, seconds: float) -> None:
    if not _state["enabled"]:
        return
    API_REQUEST_DURATION.labels(route, method, str(status)).observe(seconds)
    if status in (401, 403, 429):
        API_REFUSALS.labels(str(status)).inc()


def record_api_refusal(code: int) -> None:
    """A refusal that is no HTTP response (a WebSocket handshake closed 1008 counts under 401 or 403)."""
    if _state["enabled"]:
        API_REFUSALS.labels(str(code)).inc()


def record_agent_performance(agent: str, performance: PerformanceMetrics) -> bool:
    """The agent's mean response time, and whether it meets the objective (returned too)."""
    meets = performance.meets_realtime_objective(float(_state["objective_ms"]))
    if _state["enabled"]:
        AGENT_RESPONSE_TIME.labels(agent).set(performance.response_time / 1000)
        AGENT_MEETS_OBJECTIVE.labels(agent).set(1 if meets else 0)
    return meets


def record_live_delivery(protocol: str, seconds: float) -> None:
    if _state["enabled"]:
        LIVE_DELIVERY_LATENCY.labels(protocol).observe(seconds)


def record_live_late(protocol: str) -> None:
    """One live message sent later than ``maxLatency`` (``api/live_transports.py`` compares)."""
    if _state["enabled"]:
        LIVE_DELIVERIES_LATE.labels(protocol).inc()


def _mark_dead_at_exit() -> None:
    directory = os.environ.get(MULTIPROC_ENV)
    if directory and os.path.isdir(directory):
        mark_process_dead(os.getpid(), directory)


if os.environ.get(MULTIPROC_ENV):  # a worker's flow-run process: its live* gauges go with it
    atexit.register(_mark_dead_at_exit)
