"""``monitoring.logging`` (seed 002): one log configuration for the engine, the API, workers and flow-run processes.

Prefect configures logging in every process that imports it, from its
``logging.yml``, and lets the environment override each entry
(``PREFECT_LOGGING_<PATH>_<KEY>``). :func:`configure_logging` uses exactly that:
it points Prefect's ``json`` formatter at :class:`StructuredFormatter` and its
console handler at that formatter. Set in the environment, the configuration
reaches every process started from this one: a worker's flow-run processes
(Prefect's process worker hands them its environment) configure themselves the
same way when they import Prefect, before any of our code runs. In the process
that calls it, where Prefect set its logging up already, the formatter is also
put on the console handlers at once. ``flows/deployed.py`` calls it too, for
flow-run processes a worker of someone else's started.

What each setting does:

* ``level`` (debug, info, warn, error): the threshold of everything Agent Party
  logs (the ``agentparty`` loggers). Prefect's own loggers keep
  ``PREFECT_LOGGING_LEVEL``, other libraries Python's default of WARNING.
* ``format``: ``json``, one object per line; ``text``, one readable line.
* ``structured``: every line carries ``run_id``, ``step_id``, ``agent_id``,
  ``trace_id`` and ``span_id`` (JSON: always, null where the line is about none;
  text: those known, in brackets). Off, lines carry time, level, logger and message.

Messages are formatted after the masking record factory (``runtime/masking.py``)
masked them when data masking is on, and any registered API key left in a
message or traceback is redacted here (``runtime/secrets.py``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal

from agentparty.models.sdk_config import LoggingConfig
from agentparty.runtime.log_context import ID_FIELDS, current_ids
from agentparty.runtime.secrets import redact

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
FORMATTER_CLASS = "agentparty.runtime.structured_logs.StructuredFormatter"
OUR_LOGGER = "agentparty"
STRUCTURED_ENV = "AGENTPARTY_LOG_STRUCTURED"
"""Carries ``structured`` to the formatters Prefect builds from its configuration (in child processes too)."""


class StructuredFormatter(logging.Formatter):
    """A JSON or text line with the ids of the run, step, agent and trace the record was made for.

    Built by :func:`logging.config.dictConfig` from Prefect's logging configuration, which hands it ``format``
    (here ``json`` or ``text``) as its first argument; whether lines carry the ids comes from the environment
    (``AGENTPARTY_LOG_STRUCTURED``), as the formatter is made before any of our code runs.
    """

    def __init__(
        self,
        fmt: str | None = "json",
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        validate: bool = True,
        *,
        structured: bool | None = None,
    ) -> None:
        super().__init__(None, datefmt)
        self.json = (fmt or "json") != "text"
        self.structured = os.environ.get(STRUCTURED_ENV, "1") != "0" if structured is None else structured

    def format(self, record: logging.LogRecord) -> str:
        message = redact(record.getMessage())
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if exc and not record.exc_text:
            record.exc_text = exc
        ids = self._ids(record) if self.structured else {}
        if self.json:
            line: dict[str, Any] = {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": message,
                **ids,
            }
            if exc:
                line["exception"] = redact(exc)
            if record.stack_info:
                line["stack"] = redact(record.stack_info)
            return json.dumps(line, default=str, ensure_ascii=False)
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S") + f".{int(record.msecs):03d}"
        text = f"{stamp} | {record.levelname:<7} | {record.name} - {message}"
        known = " ".join(f"{key.removesuffix('_id')}={value}" for key, value in ids.items() if value)
        if known:
            text += f" [{known}]"
        if exc:
            text += "\n" + redact(exc)
        return text

    @staticmethod
    def _ids(record: logging.LogRecord) -> dict[str, str | None]:
        """From the record where it carries them (Prefect's run loggers, the tracing helper), else from the context."""
        trace_id = _hex_attr(record, "trace_id", "otelTraceID")
        span_id = _hex_attr(record, "span_id", "otelSpanID")
        ids = current_ids(trace_id, span_id if trace_id else None)
        if ids["run_id"] is None:
            run_id = getattr(record, "flow_run_id", None)
            ids["run_id"] = str(run_id) if run_id else None
        return {key: ids[key] for key in ID_FIELDS}


def _hex_attr(record: logging.LogRecord, *names: str) -> str | None:
    for name in names:
        value = getattr(record, name, None)
        if isinstance(value, int):
            return f"{value:032x}" if name.startswith(("trace", "otelTrace")) else f"{value:016x}"
        if isinstance(value, str) and value.strip("0"):
            return value
    return None


def logging_environment(config: LoggingConfig) -> dict[str, str]:
    """The environment that carries ``config`` into Prefect's logging setup, here and in child processes."""
    return {
        "PREFECT_LOGGING_FORMATTERS_JSON_CLASS": FORMATTER_CLASS,
        "PREFECT_LOGGING_FORMATTERS_JSON_FORMAT": config.format,
        "PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER": "json",
        STRUCTURED_ENV: "1" if config.structured else "0",
    }


def configure_logging(
    config: LoggingConfig, environ: MutableMapping[str, str] | None = None, *, quiet: bool = False
) -> None:
    """Apply ``config`` to this process and to every process it starts (see the module's docstring).

    ``quiet``: a command that prints a run's progress itself (``agentparty run`` without ``-v``), where Prefect
    logs warnings only too: its own ``agentparty`` lines are warnings and errors at least (``level`` when higher);
    the processes it starts are not quiet."""
    env = os.environ if environ is None else environ
    env.update(logging_environment(config))
    if config.format == "json":
        env["PREFECT_LOGGING_COLORS"] = "false"  # rich would colour parts of the JSON on a terminal
    apply_to_process(config, quiet=quiet)


def apply_to_process(config: LoggingConfig, *, quiet: bool = False) -> None:
    """The formatter on every console handler this process has now, and ``level`` on the ``agentparty`` loggers."""
    level = LEVELS[config.level]
    logging.getLogger(OUR_LOGGER).setLevel(max(level, logging.WARNING) if quiet else level)
    formatter = StructuredFormatter(config.format, structured=config.structured)
    for handler in _console_handlers():
        handler.setFormatter(formatter)


def _console_handlers() -> list[logging.Handler]:
    """Handlers that write lines to a terminal or file stream: the root's and those of every configured logger."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if _is_console(handler):
                found[id(handler)] = handler
    return list(found.values())


def _is_console(handler: logging.Handler) -> bool:
    """Prefect's console handler, or a plain stream handler (not a file handler, not pytest's capture)."""
    name = type(handler).__name__
    if name in ("LogCaptureHandler", "_LiveLoggingNullHandler", "_FileHandler") or isinstance(
        handler, logging.FileHandler
    ):
        return False
    return name == "PrefectConsoleHandler" or isinstance(handler, logging.StreamHandler)
