"""Alertmanager's configuration from the channels of ``monitoring.alerts[]``: pure, no I/O.

Each ``alerts[i]`` becomes the receiver ``alert-i`` holding one Alertmanager
notifier per channel (an SMS channel: one per phone number):

* ``email``: an ``email_configs`` entry (Alertmanager speaks SMTP itself, to the
  channel's ``smarthost``, as ``from``, STARTTLS per ``requireTls``);
* ``slack``: a ``slack_configs`` entry posting to the incoming webhook;
* ``webhook`` with ``secretName``: a ``webhook_configs`` entry to the API's alert
  relay, ``POST /alerts/relay/alert-i-j`` (``j``: the channel's index);
* ``sms``: one ``webhook_configs`` entry per phone number, ``POST
  /alerts/relay/alert-i-j/k`` (``k``: the number's index in ``phoneNumbers``).
  Alertmanager retries each entry of a receiver on its own, so a gateway that
  fails for one number makes Alertmanager retry that number alone: a number
  already sent is not sent again (one relay request posts exactly one SMS);
* ``webhook`` without ``secretName``: a ``webhook_configs`` entry straight to its
  URL (Alertmanager's own JSON, unsigned).

Relayed entries authenticate with the generated relay token
(``http_config.authorization``). Alertmanager 0.25 can neither sign a post with
HMAC nor speak an SMS gateway's format, so the relay (``api/alert_relay.py``)
signs and forwards the first, and turns the second into a gateway post.

Routing: an ``alerts[i]`` rule goes to ``alert-i``; a ``performanceThresholds``
rule goes to every receiver whose alert has the rule's type (``continue: true``
on every route, so one alert can reach several). An alert no route takes goes
to ``unrouted``, which notifies nobody: it is still listed by Alertmanager.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentparty.models.alerts import (
    EmailChannel,
    EmailChannelConfig,
    NotificationChannel,
    SlackChannel,
    SmsChannel,
    SmsChannelConfig,
    WebhookChannel,
    WebhookChannelConfig,
)
from agentparty.models.sdk_config import MonitoringConfig
from agentparty.runtime.alert_rules import (
    ALERT_LABEL,
    SOURCE_LABEL,
    TYPE_LABEL,
    MonitoringRenderError,
    RuleTiming,
    alert_name,
    duration,
)

RELAY_PATH = "/alerts/relay"
UNROUTED = "unrouted"

RelayChannel = WebhookChannelConfig | SmsChannelConfig
"""A channel Alertmanager reaches only through the API's relay."""


@dataclass(frozen=True)
class AlertmanagerLayout:
    """Where Alertmanager finds the relay, and the values it cannot read from our configuration itself."""

    relay_url: str
    """The API's base URL as Alertmanager reaches it (``http://127.0.0.1:8700``)."""
    relay_token_file: str
    """The file holding the relay's bearer token (``agentparty monitoring render`` generates it)."""
    relay_ca_file: str | None = None
    """The API's certificate when it serves TLS with a certificate of its own."""
    timing: RuleTiming = field(default_factory=RuleTiming)
    environ: Mapping[str, str] = field(default_factory=dict)
    """Where ``authPasswordSecretName`` variables are read (the rendering process's environment)."""


def relay_receiver(alert_index: int, channel_index: int) -> str:
    """The path segment under :data:`RELAY_PATH` of a relayed channel (an SMS channel's numbers below it)."""
    return f"{alert_name(alert_index)}-{channel_index}"


def relay_targets(receiver: str, channel: RelayChannel) -> list[str]:
    """The relay paths (under :data:`RELAY_PATH`) Alertmanager posts to for one channel, one per delivery.

    A signed webhook is one delivery (``alert-i-j``); an SMS channel is one per
    phone number (``alert-i-j/k``), each its own Alertmanager integration retried
    on its own.
    """
    if isinstance(channel, SmsChannelConfig):
        return [f"{receiver}/{k}" for k in range(len(channel.phone_numbers))]
    return [receiver]


def _relayed(channel: NotificationChannel) -> RelayChannel | None:
    if isinstance(channel, SmsChannel):
        return channel.configuration
    if isinstance(channel, WebhookChannel) and channel.configuration.secret_name is not None:
        return channel.configuration
    return None


def relay_channels(monitoring: MonitoringConfig) -> dict[str, RelayChannel]:
    """The channels the API's relay serves, by receiver name (what ``POST /alerts/relay/{receiver}`` accepts)."""
    found: dict[str, RelayChannel] = {}
    for i, alert in enumerate(monitoring.alerts):
        for j, channel in enumerate(alert.channels):
            relayed = _relayed(channel)
            if relayed is not None:
                found[relay_receiver(i, j)] = relayed
    return found


def _email(config: EmailChannelConfig, where: str, environ: Mapping[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "to": ", ".join(config.recipients),
        "from": config.from_,
        "smarthost": config.smarthost,
        "require_tls": config.require_tls,
        "send_resolved": True,
    }
    if config.auth_username is not None and config.auth_password_secret_name is not None:
        password = environ.get(config.auth_password_secret_name, "")
        if not password:
            raise MonitoringRenderError(
                f"{where}.configuration.authPasswordSecretName: the variable {config.auth_password_secret_name} "
                "is not set, so Alertmanager could not log in to the SMTP server"
            )
        entry["auth_username"] = config.auth_username
        entry["auth_password"] = password
    return entry


def _slack(channel: SlackChannel) -> dict[str, Any]:
    entry: dict[str, Any] = {"api_url": channel.configuration.webhook_url, "send_resolved": True}
    if channel.configuration.channel is not None:
        entry["channel"] = channel.configuration.channel
    return entry


def _relay_webhook(layout: AlertmanagerLayout, target: str) -> dict[str, Any]:
    http_config: dict[str, Any] = {
        "authorization": {"type": "Bearer", "credentials_file": layout.relay_token_file},
    }
    if layout.relay_ca_file is not None:
        http_config["tls_config"] = {"ca_file": layout.relay_ca_file}
    return {
        "url": f"{layout.relay_url.rstrip('/')}{RELAY_PATH}/{target}",
        "send_resolved": True,
        "http_config": http_config,
    }


def _receiver(monitoring: MonitoringConfig, index: int, layout: AlertmanagerLayout) -> dict[str, Any]:
    receiver: dict[str, Any] = {"name": alert_name(index)}
    for j, channel in enumerate(monitoring.alerts[index].channels):
        where = f"monitoring.alerts[{index}].channels[{j}]"
        if isinstance(channel, EmailChannel):
            kind, entry = "email_configs", _email(channel.configuration, where, layout.environ)
        elif isinstance(channel, SlackChannel):
            kind, entry = "slack_configs", _slack(channel)
        elif (relayed := _relayed(channel)) is not None:
            targets = relay_targets(relay_receiver(index, j), relayed)
            receiver.setdefault("webhook_configs", []).extend(_relay_webhook(layout, t) for t in targets)
            continue
        else:
            assert isinstance(channel, WebhookChannel)
            kind, entry = "webhook_configs", {"url": channel.configuration.url, "send_resolved": True}
        receiver.setdefault(kind, []).append(entry)
    return receiver


def _routes(monitoring: MonitoringConfig) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = []
    for index, _alert in enumerate(monitoring.alerts):
        routes.append(
            {"receiver": alert_name(index), "matchers": [f'{ALERT_LABEL}="{alert_name(index)}"'], "continue": True}
        )
    for index, alert in enumerate(monitoring.alerts):
        routes.append(
            {
                "receiver": alert_name(index),
                "matchers": [f'{SOURCE_LABEL}="thresholds"', f'{TYPE_LABEL}="{alert.type}"'],
                "continue": True,
            }
        )
    return routes


def alertmanager_config(monitoring: MonitoringConfig, layout: AlertmanagerLayout) -> dict[str, Any]:
    """``alertmanager.yml`` for Alertmanager 0.25."""
    timing = layout.timing
    return {
        "route": {
            "receiver": UNROUTED,
            "group_by": ["alertname", ALERT_LABEL],
            "group_wait": duration(timing.group_wait_s),
            "group_interval": duration(timing.group_interval_s),
            "repeat_interval": duration(timing.repeat_interval_s),
            "routes": _routes(monitoring),
        },
        "receivers": [
            {"name": UNROUTED},
            *(_receiver(monitoring, index, layout) for index in range(len(monitoring.alerts))),
        ],
    }
