"""``monitoring.alerts[]`` and its channels: what cannot be delivered is refused at load, naming the setting."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from support.alerting_support import email_channel, every_channel_alerts, monitoring, sms_channel

from agentparty.models.sdk_config import SDKConfiguration


def load(section: dict[str, Any]) -> SDKConfiguration:
    return SDKConfiguration.model_validate({"monitoring": section})


def refusal(section: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        load(section)
    return str(caught.value)


def alert(*channels: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"type": "error", "threshold": 5, "severity": "high", "channels": list(channels), **fields}


def test_every_channel_type_with_its_extensions_loads() -> None:
    config = load(monitoring(*every_channel_alerts()))
    email = config.monitoring.alerts[0].channels[0].configuration
    assert email.model_dump()["smarthost"] == "smtp.example.com:587"
    assert email.model_dump(by_alias=True)["from"] == "alerts@example.com"


@pytest.mark.parametrize(
    ("configuration", "named"),
    [
        ({"recipients": ["a@example.com"], "from": "b@example.com"}, "needs smarthost"),
        ({"recipients": ["a@example.com"], "smarthost": "smtp.example.com:25"}, "needs from"),
        ({"recipients": ["a@example.com"]}, "needs smarthost and from"),
    ],
)
def test_an_email_channel_without_server_or_sender_is_refused(configuration: dict[str, Any], named: str) -> None:
    message = refusal(monitoring(alert({"type": "email", "configuration": configuration})))
    assert "monitoring.alerts.0.channels.0.email.configuration" in message and named in message


def test_a_smarthost_must_be_host_and_port() -> None:
    assert "smarthost 'smtp.example.com' is not host:port" in refusal(
        monitoring(alert(email_channel(smarthost="smtp.example.com")))
    )


def test_plain_smtp_is_refused_off_this_machine_and_allowed_to_localhost() -> None:
    message = refusal(monitoring(alert(email_channel(requireTls=False))))
    assert "requireTls is false" in message and "smtp.example.com:587" in message
    load(monitoring(alert(email_channel(smarthost="127.0.0.1:2525", requireTls=False))))


def test_smtp_auth_needs_user_and_password_variable_together() -> None:
    assert "authUsername and authPasswordSecretName go together" in refusal(
        monitoring(alert(email_channel(authUsername="alerts")))
    )


def test_an_sms_channel_needs_a_gateway_that_is_https_or_local() -> None:
    no_gateway = {"type": "sms", "configuration": {"phoneNumbers": ["+4915112345678"]}}
    assert "needs gatewayUrl" in refusal(monitoring(alert(no_gateway)))
    assert "gatewayUrl must use https" in refusal(monitoring(alert(sms_channel("http://sms.example.com/send"))))
    load(monitoring(alert(sms_channel("http://127.0.0.1:9999/sms"))))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"type": "error", "threshold": 150}, "an error alert's threshold is a percentage"),
        ({"type": "performance", "threshold": 0}, "a performance alert's threshold is milliseconds"),
    ],
)
def test_thresholds_outside_their_type_s_unit_are_refused(fields: dict[str, Any], named: str) -> None:
    message = refusal(monitoring(alert(email_channel(), **fields)))
    assert "monitoring.alerts.0" in message and named in message


def test_the_seed_s_defaults_still_load_without_alerts() -> None:
    thresholds = SDKConfiguration().monitoring.performance_thresholds
    assert (thresholds.max_response_time, thresholds.min_throughput) == (200.0, 0.0)
