"""The data masker (``runtime/masking.py``): what it finds, what it validates, and what it leaves alone."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agentparty.models.events import WorkflowEvent, WorkflowEventPayload
from agentparty.models.sdk_config import SecurityConfig
from agentparty.runtime.masking import Masker, iban_valid, luhn_valid, mask_logs, masker_for
from agentparty.runtime.secrets import register

MASKER = Masker()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("write to jane.doe+work@example.co.uk today", "write to [email] today"),
        ("call +1 415 555 2671 now", "call [phone] now"),
        ("call +44 20 7946 0958", "call [phone]"),
        ("call (555) 123-4567 or 555.123.4567", "call [phone] or [phone]"),
        ("card 4111 1111 1111 1111.", "card [card]."),
        ("card 5500-0000-0000-0004", "card [card]"),
        ("card 378282246310005", "card [card]"),
        ("iban DE89 3704 0044 0532 0130 00", "iban [iban]"),
        ("iban GB82WEST12345698765432", "iban [iban]"),
        ("key sk-ant-abcdefghijklmnopqrstuvwx", "key [key]"),
    ],
)
def test_each_kind_is_masked(text: str, masked: str) -> None:
    assert MASKER.text(text) == masked
    assert MASKER.text(masked) == masked  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "run 550e8400-e29b-41d4-a716-446655440000 and 12345678-1234-1234-1234-123456789012",
        "at 2026-12-05T20:31:14.123456+00:00, epoch 1733430674 and 1733430674123 ms",
        "on 2024-01-05 12:30:45, 42 steps, 3.14159, 1234567890, 12,345,678 tokens, v1.2.3",
        "order 4111111111111112 fails Luhn, 4111-1111-1111-1112 too",
        "DE89370400440532013001 fails mod-97",
        "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "ip 192.168.1.10:8080, port 7687, pid 12345, ids 00000000000000000001",
        "user@host is no address, nor is a@b",
    ],
)
def test_ordinary_numbers_ids_uuids_and_timestamps_are_left_alone(text: str) -> None:
    assert MASKER.text(text) == text


def test_luhn_and_iban_checks() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("79927398710")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and iban_valid("FR1420041010050500013M02606")
    assert not iban_valid("DE89 3704 0044 0532 0130 01") and not iban_valid("DE89")


def test_registered_keys_configured_patterns_and_fields() -> None:
    register("a-private-key-value-42")
    masker = Masker(patterns=[r"EMP-\d{6}"], fields=["ssn", "Password"])
    assert masker.text("id EMP-123456 with a-private-key-value-42") == "id [masked] with ***redacted***"
    data = {"ssn": "078-05-1120", "password": 1234, "nested": [{"SSN": None, "note": "x@example.org"}]}
    assert masker.data(data) == {
        "ssn": "[masked]",
        "password": "[masked]",
        "nested": [{"SSN": None, "note": "[email]"}],
    }


def test_a_model_is_copied_with_its_strings_masked_and_left_as_is_without_any() -> None:
    payload = WorkflowEventPayload(
        workflow_id="w", workflow_version="1", run_key="r", task_id="t", reason="mail bob@example.com"
    )
    event = WorkflowEvent(event_type="step_failed", correlation_id="c", payload=payload)
    masked = MASKER.model(event)
    assert masked.payload.reason == "mail [email]" and payload.reason == "mail bob@example.com"
    assert masked.event_id == event.event_id and masked.timestamp == event.timestamp
    clean = WorkflowEvent(
        event_type="step_started", correlation_id="c", payload=payload.model_copy(update={"reason": None})
    )
    assert MASKER.model(clean) is clean


def test_streamed_fragments_are_masked_across_their_boundaries() -> None:
    text = "Contact jane.doe@example.com or +1 415 555 2671; card 4111 1111 1111 1111, then we are done here."
    for size in (1, 3, 7, 32):
        stream = MASKER.stream()
        out = "".join(stream.feed(text[i : i + size]) for i in range(0, len(text), size)) + stream.flush()
        assert out == "Contact [email] or [phone]; card [card], then we are done here.", size


def test_plain_prose_streams_with_at_most_its_last_word_held_back() -> None:
    stream = MASKER.stream()
    assert stream.feed("It is sunny in Lis") == "It is sunny in "
    assert stream.feed("bon today") == "Lisbon "
    assert stream.flush() == "today"


def test_log_records_are_masked_once_installed(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("agentparty.test.masking")
    try:
        mask_logs(MASKER)
        with caplog.at_level(logging.INFO, logger.name):
            logger.info("step answered %s", "call +1 415 555 2671")
        assert caplog.records[-1].getMessage() == "step answered call [phone]"
    finally:
        mask_logs(None)
    with caplog.at_level(logging.INFO, logger.name):
        logger.info("step answered %s", "call +1 415 555 2671")
    assert caplog.records[-1].getMessage() == "step answered call +1 415 555 2671"


def test_the_configuration_turns_it_on_and_refuses_what_would_not_take_effect() -> None:
    assert masker_for(SecurityConfig()) is not None
    config = SecurityConfig.model_validate({"masking": {"patterns": ["EMP-\\d+"], "fields": ["ssn"]}})
    masker = masker_for(config)
    assert masker is not None and masker.text("EMP-7") == "[masked]" and masker.mask_prompts is False
    with pytest.raises(
        ValidationError, match=r"(?s)masking\.patterns.*patterns\[0\] '\(unclosed' is not a regular expression"
    ):
        SecurityConfig.model_validate({"masking": {"patterns": ["(unclosed"]}})


def test_prompts_reach_the_model_masked_only_when_mask_prompts_is_on(tmp_path: Path) -> None:
    from agentparty.models import DEFAULT_MODEL_REGISTRY, SDKConfiguration
    from agentparty.models.messages import UserMessage
    from agentparty.runtime.model_router import ModelRouter
    from agentparty.runtime.providers.base import CompletionRequest
    from agentparty.runtime.providers.simulated import SimulatedProvider

    prompt = UserMessage(content="write to jane.doe@example.com", user_id="u", session_id="s")
    call = CompletionRequest(model="simulated", messages=(prompt,))

    def answer(security: dict[str, Any]) -> str:
        config = SDKConfiguration.model_validate({"security": security})
        router = ModelRouter.from_settings(tmp_path, config, DEFAULT_MODEL_REGISTRY)
        router.providers = {"simulated": SimulatedProvider()}
        return asyncio.run(router.complete(call)).completion.text  # the simulated model quotes its prompt

    assert answer({}).endswith("answer to: write to jane.doe@example.com")
    assert answer({"masking": {"maskPrompts": True}}).endswith("answer to: write to [email]")
