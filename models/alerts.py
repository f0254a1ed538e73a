"""Seed 002's alerts (``monitoring.alerts[]``), their notification channels, and ``performanceThresholds``.

The seed leaves a channel's ``configuration`` open (``Record<string, any>``);
here each channel type has a closed model, with the extensions that delivering
to it needs, refused at load when missing rather than accepted and ignored:

* ``email``: ``smarthost`` (``host:port``) and ``from`` (Alertmanager sends the
  mail over SMTP itself), ``requireTls`` (STARTTLS, on by default) and SMTP
  ``authUsername`` with ``authPasswordSecretName`` (the variable that holds the
  password, read when the files are rendered);
* ``slack``: an incoming-webhook URL and an optional channel override;
* ``webhook``: the receiver's URL; with ``secretName`` each post is signed like
  our own signed webhooks (the API's alert relay signs it), without it
  Alertmanager posts its JSON unsigned;
* ``sms``: ``gatewayUrl``, an HTTP SMS gateway the API's alert relay posts
  ``{"to": number, "message": text}`` to, with an optional bearer token from the
  variable ``tokenSecretName``.

What each alert type measures and in which unit its ``threshold`` is given is
decided in ``runtime/alert_rules.py`` and documented in the README
(Observability: alerts); the ranges that make no sense for a type are refused
here.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ._base import CamelModel
from .agent import REALTIME_RESPONSE_TIME_MS
from .authentication import EnvName
from .authentication import secure_url as _secure_url

_SMARTHOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_ADDRESS = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def smarthost_is_loopback(smarthost: str) -> bool:
    """Whether the SMTP server is this machine (plain SMTP to it never crosses a network)."""
    return smarthost.rpartition(":")[0].lower() in _LOOPBACK_HOSTS


class EmailChannelConfig(CamelModel):
    recipients: Annotated[list[Annotated[str, Field(pattern=_ADDRESS)]], Field(min_length=1)]
    smarthost: str | None = None
    """Extension: the SMTP server as ``host:port``, e.g. ``smtp.example.com:587``. Required."""
    from_: Annotated[str, Field(pattern=_ADDRESS)] | None = Field(default=None, alias="from")
    """Extension: the sender address. Required."""
    require_tls: bool = True
    """Extension: insist on STARTTLS; off is allowed only for a smarthost on this machine."""
    auth_username: str | None = None
    """Extension: SMTP AUTH user, with ``authPasswordSecretName``."""
    auth_password_secret_name: EnvName | None = None
    """Extension: the environment variable holding the SMTP password (read by ``agentparty monitoring render``)."""

    @field_validator("smarthost")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None and (not (found := _SMARTHOST.match(value)) or not 0 < int(found.group(2)) < 65536):
            raise ValueError(f"smarthost {value!r} is not host:port (e.g. smtp.example.com:587)")
        return value

    @model_validator(mode="after")
    def _deliverable(self) -> EmailChannelConfig:
        missing = [name for name, value in (("smarthost", self.smarthost), ("from", self.from_)) if value is None]
        if missing:
            raise ValueError(
                f"an email channel needs {' and '.join(missing)}: Alertmanager sends alert mail over SMTP itself "
                "and needs the server (host:port) and the sender address"
            )
        if (self.auth_username is None) != (self.auth_password_secret_name is None):
            raise ValueError("authUsername and authPasswordSecretName go together (SMTP AUTH needs both)")
        if not self.require_tls and not smarthost_is_loopback(self.smarthost or ""):
            raise ValueError(
                f"requireTls is false but smarthost {self.smarthost!r} is not on this machine: "
                "alert mail (and any SMTP password) would cross the network in plaintext"
            )
        return self


class SlackChannelConfig(CamelModel):
    webhook_url: str
    """A Slack incoming webhook (``https://hooks.slack.com/services/…``)."""
    channel: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _secure_url(value, "webhookUrl")


class WebhookChannelConfig(CamelModel):
    url: str
    secret_name: EnvName | None = None
    """The environment variable (in the API's process) holding the HMAC secret; posts are unsigned without it."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _secure_url(value, "url")


class SmsChannelConfig(CamelModel):
    phone_numbers: Annotated[list[Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$")]], Field(min_length=1)]
    """E.164 numbers, e.g. +4915112345678."""
    gateway_url: str | None = None
    """Extension: the HTTP SMS gateway the alert relay posts ``{"to", "message"}`` to. Required."""
    token_secret_name: EnvName | None = None
    """Extension: the environment variable (in the API's process) holding the gateway's bearer token."""

    @field_validator("gateway_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _secure_url(value, "gatewayUrl")

    @model_validator(mode="after")
    def _deliverable(self) -> SmsChannelConfig:
        if self.gateway_url is None:
            raise ValueError(
                "an sms channel needs gatewayUrl: Alertmanager cannot send SMS, so the API's alert relay posts "
                "each message to this HTTP gateway"
            )
        return self


class EmailChannel(CamelModel):
    type: Literal["email"] = "email"
    configuration: EmailChannelConfig


class SlackChannel(CamelModel):
    type: Literal["slack"] = "slack"
    configuration: SlackChannelConfig


class WebhookChannel(CamelModel):
    type: Literal["webhook"] = "webhook"
    configuration: WebhookChannelConfig


class SmsChannel(CamelModel):
    type: Literal["sms"] = "sms"
    configuration: SmsChannelConfig


NotificationChannel = Annotated[EmailChannel | SlackChannel | WebhookChannel | SmsChannel, Field(discriminator="type")]

AlertType = Literal["performance", "error", "security"]


class AlertConfig(CamelModel):
    """One alerting rule and where it is sent; also where the thresholds' alerts of its type are sent."""

    type: AlertType
    threshold: Annotated[float, Field(ge=0.0)]
    """performance: milliseconds (p95 model-call latency); error: percent (failed runs); security: refused
    requests per minute (401/403/429)."""
    severity: Literal["low", "medium", "high", "critical"]
    channels: Annotated[list[NotificationChannel], Field(min_length=1)]

    @model_validator(mode="after")
    def _threshold_in_range(self) -> AlertConfig:
        if self.type == "error" and self.threshold > 100:
            raise ValueError(f"threshold {self.threshold:g}: an error alert's threshold is a percentage (0 to 100)")
        if self.type == "performance" and self.threshold == 0:
            raise ValueError("threshold 0: a performance alert's threshold is milliseconds and must be above 0")
        return self


class PerformanceThresholds(CamelModel):
    """Objectives that monitoring checks at run time (Prometheus rules), not schema rules on recorded data."""

    max_response_time: Annotated[float, Field(gt=0.0)] = REALTIME_RESPONSE_TIME_MS
    """Milliseconds; seed 002's real-time objective is 200 ms (each agent's mean response time)."""
    max_error_rate: Annotated[float, Field(ge=0.0, le=100.0)] = 5.0
    """Percent of model calls that fail."""
    min_throughput: Annotated[float, Field(ge=0.0)] = 0.0
    """API requests per second; 0 turns the rule off."""
    max_memory_usage: Annotated[float, Field(gt=0.0, le=100.0)] = 90.0
    """Percent of the machine's (or the container's) memory one process's resident memory may use."""
