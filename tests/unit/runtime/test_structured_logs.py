"""``monitoring.logging``: the JSON and text lines, their ids, the level, and the configuration reaching a child
process through Prefect's own logging setup. From a worker's flow-run process:
``tests/integration/deployments/test_flow_run_logs.py``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from agentparty.models.sdk_config import LoggingConfig
from agentparty.runtime.log_context import ID_FIELDS, log_ids
from agentparty.runtime.masking import Masker, mask_logs
from agentparty.runtime.secrets import REDACTED, register
from agentparty.runtime.structured_logs import (
    FORMATTER_CLASS,
    StructuredFormatter,
    apply_to_process,
    configure_logging,
    logging_environment,
)

LOGGER = "agentparty.tests.logs"


def record(message: str, *args: object, **attributes: object) -> logging.LogRecord:
    made = logging.getLogger(LOGGER).makeRecord(LOGGER, logging.WARNING, __file__, 1, message, args, None)
    for name, value in attributes.items():
        setattr(made, name, value)
    return made


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back the ``agentparty`` logger's level and every console handler's formatter."""
    ours = logging.getLogger("agentparty")
    level = ours.level
    handlers = [(h, h.formatter) for h in logging.getLogger().handlers]
    yield
    ours.setLevel(level)
    for handler, formatter in handlers:
        handler.setFormatter(formatter)


def test_a_json_line_carries_the_run_step_agent_and_trace_ids() -> None:
    formatter = StructuredFormatter("json", structured=True)
    with log_ids(step_id="research", agent_id="agent-7"):
        line = json.loads(
            formatter.format(record("answered %s", "ok", flow_run_id="run-1", trace_id="ab" * 16, span_id="cd" * 8))
        )
    assert line["message"] == "answered ok" and line["level"] == "warning" and line["logger"] == LOGGER
    assert (line["run_id"], line["step_id"], line["agent_id"]) == ("run-1", "research", "agent-7")
    assert (line["trace_id"], line["span_id"]) == ("ab" * 16, "cd" * 8)
    assert line["time"].endswith("+00:00")


def test_a_line_about_no_run_still_has_every_id_field_null() -> None:
    line = json.loads(StructuredFormatter("json", structured=True).format(record("idle", trace_id="", span_id="")))
    assert {name: line[name] for name in ID_FIELDS} == dict.fromkeys(ID_FIELDS)


def test_nested_contexts_restore_the_enclosing_ids() -> None:
    formatter = StructuredFormatter("json", structured=True)
    with log_ids(step_id="outer"):
        with log_ids(agent_id="a-1"):
            inner = json.loads(formatter.format(record("in")))
        outer = json.loads(formatter.format(record("out")))
    assert (inner["step_id"], inner["agent_id"]) == ("outer", "a-1")
    assert (outer["step_id"], outer["agent_id"]) == ("outer", None)


def test_text_lines_name_the_known_ids_and_unstructured_lines_none() -> None:
    with log_ids(step_id="s1"):
        text = StructuredFormatter("text", structured=True).format(record("hello", flow_run_id="r1"))
        plain = StructuredFormatter("text", structured=False).format(record("hello", flow_run_id="r1"))
        bare = json.loads(StructuredFormatter("json", structured=False).format(record("hello")))
    assert text.endswith("agentparty.tests.logs - hello [run=r1 step=s1]") and "| WARNING |" in text
    assert plain.endswith("agentparty.tests.logs - hello")
    assert set(bare) == {"time", "level", "logger", "message"}


def test_api_keys_are_redacted_and_pii_masked_when_masking_is_on() -> None:
    key = "sk-structured-logs-test-key-0123456789"
    register(key)
    formatter = StructuredFormatter("json", structured=True)
    try:
        raise RuntimeError(f"provider said: bad key {key}")
    except RuntimeError:
        failing = record("call failed with %s", key)
        failing.exc_info = sys.exc_info()
    line = json.loads(formatter.format(failing))
    assert key not in json.dumps(line) and line["message"] == f"call failed with {REDACTED}"
    assert REDACTED in line["exception"]

    logger = logging.getLogger(LOGGER)
    try:
        mask_logs(Masker())
        masked = logger.makeRecord(LOGGER, logging.INFO, __file__, 1, "reach me at %s", ("ana@example.com",), None)
    finally:
        mask_logs(None)
    assert json.loads(formatter.format(masked))["message"] == "reach me at [email]"


@pytest.mark.usefixtures("restore_logging")
def test_the_level_applies_to_every_agentparty_logger() -> None:
    for level, expected in (("debug", logging.DEBUG), ("warn", logging.WARNING), ("error", logging.ERROR)):
        apply_to_process(LoggingConfig(level=level))
        assert logging.getLogger("agentparty.events").getEffectiveLevel() == expected
    apply_to_process(LoggingConfig(level="error"))
    assert not logging.getLogger("agentparty.events").isEnabledFor(logging.WARNING)


@pytest.mark.usefixtures("restore_logging")
def test_a_command_that_prints_its_run_s_progress_shows_warnings_and_errors_only() -> None:
    apply_to_process(LoggingConfig(level="info"), quiet=True)
    assert logging.getLogger("agentparty.graph").getEffectiveLevel() == logging.WARNING
    apply_to_process(LoggingConfig(level="error"), quiet=True)
    assert logging.getLogger("agentparty.graph").getEffectiveLevel() == logging.ERROR


@pytest.mark.usefixtures("restore_logging")
def test_configuring_sets_prefect_s_logging_environment_and_this_process_s_console_handlers() -> None:
    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    environ: dict[str, str] = {}
    try:
        configure_logging(LoggingConfig(format="text", structured=False), environ)
        assert isinstance(handler.formatter, StructuredFormatter) and not handler.formatter.json
    finally:
        logging.getLogger().removeHandler(handler)
    assert environ["PREFECT_LOGGING_FORMATTERS_JSON_CLASS"] == FORMATTER_CLASS
    assert environ["PREFECT_LOGGING_FORMATTERS_JSON_FORMAT"] == "text"
    assert environ["PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER"] == "json"
    assert environ["AGENTPARTY_LOG_STRUCTURED"] == "0"


CHILD = """
import logging
from prefect import flow  # noqa: F401  (sets logging up from logging.yml and the environment, as a flow-run process does)
from agentparty.runtime.log_context import log_ids
with log_ids(step_id="child-step", agent_id="child-agent"):
    logging.getLogger("agentparty.tests.child").warning("from the child")
"""


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_child_process_gets_the_configuration_from_its_environment_through_prefect(fmt: str) -> None:
    env = {**os.environ, **logging_environment(LoggingConfig(format=fmt)), "PREFECT_LOGGING_COLORS": "false"}
    child = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    lines = [line for line in child.stderr.splitlines() if "from the child" in line]
    assert len(lines) == 1, child.stderr
    if fmt == "json":
        line = json.loads(lines[0])
        assert (line["step_id"], line["agent_id"], line["logger"]) == (
            "child-step",
            "child-agent",
            "agentparty.tests.child",
        )
    else:
        assert lines[0].endswith("from the child [step=child-step agent=child-agent]")


def test_inside_an_opentelemetry_span_a_line_carries_its_trace_and_span_id() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("tests")
    formatter = StructuredFormatter("json", structured=True)
    with tracer.start_as_current_span("step") as span:
        line = json.loads(formatter.format(record("inside")))  # no ids on the record: the current span's
        context = span.get_span_context()
    assert (line["trace_id"], line["span_id"]) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert json.loads(formatter.format(record("outside")))["trace_id"] is None
