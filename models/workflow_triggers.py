"""What starts a workflow's runs: its ``triggers`` (manual, schedule, event, webhook).

Each trigger is checked as far as it can be without a server: a cron or rrule
expression parses, a timezone exists, a Kafka bridge's ``expect`` can match the
events it produces. Deploying turns them into Prefect schedules, automations
and the webhook route (``deployments/``, ``api/``), which import them from here.
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from dateutil.rrule import rrulestr
from pydantic import Field, ValidationInfo, field_validator, model_validator

from ._base import CamelModel, NonEmptyStr, PositiveStrictInt


class ManualTriggerConfig(CamelModel):
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Default run inputs offered in the Prefect UI's run form."""


class ScheduleTriggerConfig(CamelModel):
    """Exactly one of ``cron``, ``interval`` (seconds) or ``rrule``."""

    cron: str | None = None
    interval: Annotated[float, Field(gt=0.0)] | None = None
    rrule: str | None = None
    timezone: str = "UTC"
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Run inputs for the scheduled runs."""
    active: bool = True

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronSim(value, datetime.now(UTC))
            except CronSimError as exc:
                raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @field_validator("rrule")
    @classmethod
    def _rrule(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                rrulestr(value)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"invalid rrule {value!r}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'Europe/Berlin'") from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ScheduleTriggerConfig:
        given = [name for name in ("cron", "interval", "rrule") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a schedule needs exactly one of 'cron', 'interval' or 'rrule'; got {', '.join(given) or 'none'}"
            )
        return self


class KafkaBridgeConfig(CamelModel):
    """Turn Kafka messages into Prefect events that this trigger then matches."""

    topic: NonEmptyStr
    filter: dict[str, Any] = Field(default_factory=dict)
    """Payload fields that must equal these values (dotted paths allowed)."""


KAFKA_EVENT_PREFIX = "agentparty.kafka."
"""Kafka-bridged messages arrive as Prefect events named ``agentparty.kafka.<topic>``."""


class EventTriggerConfig(CamelModel):
    kafka: KafkaBridgeConfig | None = None
    """Bridge a Kafka topic: its messages that pass ``filter`` arrive as events ``agentparty.kafka.<topic>``."""
    expect: list[NonEmptyStr] = Field(default_factory=list, validate_default=True)
    """Prefect event names (``agentparty.agent.state_transition``; ``*`` wildcards allowed); with ``kafka``
    it may be left out (it is then the bridge's ``agentparty.kafka.<topic>``)."""
    match: dict[str, str | list[str]] = Field(default_factory=dict)
    """Labels the event's resource must have (``prefect.resource.id``: ``agentparty.agent.*``)."""
    match_related: dict[str, str | list[str]] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Run inputs, templated from the event: ``"{{ event.resource.id }}"``."""
    threshold: PositiveStrictInt = 1
    within: Annotated[float, Field(ge=0.0)] = 0.0
    """Seconds over which ``threshold`` events must arrive."""

    @field_validator("expect")
    @classmethod
    def _expectations(cls, expect: list[str], info: ValidationInfo) -> list[str]:
        kafka: KafkaBridgeConfig | None = info.data.get("kafka")
        if kafka is None:
            if not expect:
                raise ValueError("needs at least 1 item: the Prefect events to react to (or add a 'kafka' bridge)")
            return expect
        bridged = f"{KAFKA_EVENT_PREFIX}{kafka.topic}"
        stray = [name for name in expect if not fnmatch.fnmatchcase(bridged, name)]
        if stray:
            raise ValueError(
                f"{', '.join(map(repr, stray))} would never match the bridged events; "
                f"messages from Kafka topic {kafka.topic!r} arrive as {bridged!r}"
            )
        return expect or [bridged]


class WebhookTriggerConfig(CamelModel):
    secret_name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    """Environment variable holding the HMAC secret; never the secret itself."""
    max_body_bytes: PositiveStrictInt = 1_048_576
    tolerance_seconds: PositiveStrictInt = 300
    """How old a signed timestamp may be before the request counts as stale."""
    wait_for_run_seconds: Annotated[float, Field(ge=0, le=30)] = 2.0
    """How long the 202 waits for the flow run to exist, so that it can name it. The delivery is stored before
    that wait, and its run is created either way; 0 acknowledges as soon as it is stored (bursty senders)."""


class _Trigger(CamelModel):
    type: str


class ManualTrigger(_Trigger):
    type: Literal["manual"] = "manual"
    configuration: ManualTriggerConfig = Field(default_factory=ManualTriggerConfig)


class ScheduleTrigger(_Trigger):
    type: Literal["schedule"] = "schedule"
    configuration: ScheduleTriggerConfig


class EventTrigger(_Trigger):
    type: Literal["event"] = "event"
    configuration: EventTriggerConfig


class WebhookTrigger(_Trigger):
    type: Literal["webhook"] = "webhook"
    configuration: WebhookTriggerConfig = Field(default_factory=WebhookTriggerConfig)


WorkflowTrigger = Annotated[
    ManualTrigger | ScheduleTrigger | EventTrigger | WebhookTrigger, Field(discriminator="type")
]
TRIGGER_TYPES: tuple[str, ...] = ("manual", "schedule", "event", "webhook")
