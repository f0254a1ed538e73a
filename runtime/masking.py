"""Data masking (``security.dataMasking``): personal data and keys replaced wherever run data leaves a run.

One :class:`Masker` per configuration, applied at the boundaries where a run's
inputs and outputs are shown or sent: events before the outbox (so Kafka and
Prefect's event feed), the live stream's text before the broker (so ``/ws``),
graph writes, Prefect artifacts, log records, and API responses that carry run
data. It is not applied inside a run (steps read their inputs as given) nor to
prompts, unless ``security.masking.maskPrompts`` says so: models need the data.

What is masked, each to a bracketed word:

- e-mail addresses (``[email]``);
- phone numbers written as phone numbers: international (``+44 20 7946 0958``)
  or North American with separators (``(555) 123-4567``, ``555-123-4567``);
  a bare run of digits is an id, not a phone (``[phone]``);
- card numbers: 13 to 19 digits, optionally grouped, starting 2 to 6 (the card
  networks' ranges), that pass the Luhn check (``[card]``);
- IBANs that pass the ISO 7064 mod-97 check (``[iban]``);
- API keys: every key the process registered (``runtime/secrets.py``: ``***redacted***``, as before) and the
  shapes of the well-known providers' keys (``[key]``);
- the configured ``patterns`` and the values of the configured ``fields``
  (``[masked]``).

Candidates are found by precompiled patterns, one per kind behind a cheap test
(an ``@``, a digit, a key prefix), and validated before they are replaced, so
ordinary numbers, ids, UUIDs and timestamps are left alone.
Masking is idempotent: masked text has nothing left to mask.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel

from agentparty.models.sdk_config import SecurityConfig
from agentparty.runtime.secrets import redact

M = TypeVar("M", bound=BaseModel)
MASKED = "[masked]"
"""What a configured pattern or field becomes."""

_EMAIL = (
    r"(?P<email>(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-]))"
)
_IBAN = (
    r"(?P<iban>(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?|[A-Z0-9]{11,30})"
    r"(?![A-Za-z0-9]))"
)
_CARD = r"(?P<card>(?<![\w.+-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-]|\.\d))"
_PHONE = (
    r"(?P<phone>(?<![\w+.-])(?:\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{2,4}){2,5}"
    r"|(?:\(\d{3}\) ?|\d{3}[.-])\d{3}[.-]\d{4})(?![\w-]|\.\d))"
)
_KEY = (
    r"(?P<key>(?<![\w-])(?:sk-(?:ant-)?[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{35}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}))"
)
_PASSES: tuple[tuple[re.Pattern[str], Callable[[str], object]], ...] = (
    (re.compile(_KEY), re.compile(r"sk-|AIza|gh[pousr]_|xox|AKIA").search),
    (re.compile(_EMAIL), re.compile("@").search),
    (re.compile(_IBAN), re.compile(r"\d\d").search),
    (re.compile(f"{_CARD}|{_PHONE}"), re.compile(r"\d\d").search),
)
"""One pattern per kind, each behind a cheap test that the text could hold one (most strings hold none: ids,
names, ``research[2]``): separate passes are faster than one alternation, which tries every kind at every
position, and a search for two digits or an ``@`` costs a fraction of a microsecond."""
_ANY_HINT = re.compile(r"@|\d\d|sk-|AIza|gh[pousr]_|xox|AKIA").search
_SCALARS = (int, float, type(None), datetime)
_has_digit = re.compile(r"\d").search


def luhn_valid(digits: str) -> bool:
    """The Luhn check of card numbers (ISO/IEC 7812)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616: length 15 to 34, and the rearranged number mod 97 is 1 (ISO 7064 MOD 97-10)."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digit_count(text: str) -> int:
    return sum(c.isdigit() for c in text)


class Masker:
    """Masks text, JSON-like data and pydantic models; one per configuration, safe to share between threads."""

    def __init__(self, patterns: Iterable[str] = (), fields: Iterable[str] = (), mask_prompts: bool = False) -> None:
        self.patterns = tuple(patterns)
        self.fields = frozenset(f.lower() for f in fields)
        self.mask_prompts = mask_prompts
        passes = list(_PASSES)
        if self.patterns:
            custom = re.compile("|".join(f"(?P<custom{i}>{p})" for i, p in enumerate(self.patterns)))
            passes.append((custom, bool))
        self._passes = tuple(passes)

    def _replace(self, match: re.Match[str]) -> str:
        kind = match.lastgroup or ""
        found = match.group()
        if kind == "card":
            digits = found.replace(" ", "").replace("-", "")
            return "[card]" if 13 <= len(digits) <= 19 and luhn_valid(digits) else found
        if kind == "iban":
            return "[iban]" if iban_valid(found) else found
        if kind == "phone":
            return "[phone]" if 8 <= _digit_count(found) <= 15 else found
        if kind.startswith("custom"):
            return MASKED
        return f"[{kind}]"

    def text(self, text: str) -> str:
        """``text`` with every match masked."""
        if not text:
            return text
        text = redact(text)  # the process's own keys first: they read as redacted, as they always have
        if not self.patterns and _ANY_HINT(text) is None:  # one search settles most strings
            return text
        for pattern, could_hold in self._passes:
            if could_hold(text):
                text = pattern.sub(self._replace, text)
        return text

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where in ``text`` values to mask may lie (candidates, before validation)."""
        return [m.span() for pattern, could_hold in self._passes if could_hold(text) for m in pattern.finditer(text)]

    def data(self, value: Any, name: str | None = None) -> Any:
        """A JSON-like value (dicts, lists, strings, models) masked; values of configured field names wholly."""
        if self.fields and name is not None and value is not None and name.lower() in self.fields:
            return MASKED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, _SCALARS):  # the common case first: most fields are numbers, flags and None
            return value
        if isinstance(value, BaseModel):
            return self.model(value)
        if isinstance(value, dict | Mapping):
            return {k: self.data(v, k if isinstance(k, str) else None) for k, v in value.items()}
        if isinstance(value, list | tuple):
            items = [self.data(v) for v in value]
            return items if isinstance(value, list) else tuple(items)
        return value

    def model(self, model: M) -> M:
        """A copy of ``model`` with its string values masked (``model`` itself when nothing changed).

        A copy, not a re-validation: a masked value need not satisfy the field's constraints any more (an
        ``[email]`` is no e-mail address), and a model's defaults must not be made again."""
        changed: dict[str, Any] = {}
        for key, value in model.__dict__.items():
            masked = self.data(value, key)
            if masked is not value and masked != value:
                changed[key] = masked
        return model.model_copy(update=changed) if changed else model

    def json_text(self, text: str) -> str:
        """A JSON document's text masked: values by their field names too when fields are configured."""
        if not self.fields:
            return self.text(text)
        try:
            masked: str = json.dumps(self.data(json.loads(text)))
            return masked
        except ValueError:
            return self.text(text)

    def stream(self) -> StreamMasker:
        return StreamMasker(self)


STREAM_HOLD = 64
"""Characters of streamed text held back while they hold a digit or an ``@``: longer than any value the masker
finds, so a value split between two fragments is whole in the text held."""


@dataclass
class StreamMasker:
    """Masks text that arrives in fragments (a model's streamed deltas), where one e-mail may span two.

    :meth:`feed` releases the text up to its last space (a word may continue in the next fragment), or, when the
    last ``STREAM_HOLD`` characters hold a digit or an ``@`` (a value to mask may be forming), up to a space before
    them; never inside a value it finds. :meth:`flush` releases the rest. Plain prose reaches ``/ws`` one partial
    word later; text with numbers up to ``STREAM_HOLD`` characters later."""

    masker: Masker
    pending: str = ""

    def feed(self, delta: str) -> str:
        self.pending += delta
        text = self.pending
        window = max(0, len(text) - STREAM_HOLD)
        tail = text[window:]
        cut = text.rfind(" ", 0, window) + 1 if "@" in tail or _has_digit(tail) else text.rfind(" ") + 1
        for start, end in self.masker.spans(text):
            if start < cut < end:
                cut = start
        if cut <= 0:
            return ""
        self.pending = text[cut:]
        return self.masker.text(text[:cut])

    def flush(self) -> str:
        released, self.pending = self.pending, ""
        return self.masker.text(released)


@lru_cache(maxsize=8)
def _masker(patterns: tuple[str, ...], fields: tuple[str, ...], mask_prompts: bool) -> Masker:
    return Masker(patterns, fields, mask_prompts)


def masker_for(security: SecurityConfig) -> Masker | None:
    """The masker of this configuration, or None when ``dataMasking`` is off (one per configuration per process)."""
    if not security.data_masking:
        return None
    config = security.masking
    return _masker(tuple(config.patterns), tuple(config.fields), config.mask_prompts)


# -- log records ------------------------------------------------------------------------------


@dataclass
class _LogMasking:
    masker: Masker | None = None
    base_factory: Any = None


_log = _LogMasking()
_FORMATTER = logging.Formatter()
_log_lock = threading.Lock()


def _masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _log.base_factory(*args, **kwargs)
    masker = _log.masker
    if masker is not None:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: logging reports that itself
            return record
        record.msg, record.args = masker.text(message), None
        if record.exc_info and not record.exc_text:  # formatted once, here, so every handler shows it masked
            record.exc_text = masker.text(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = masker.text(record.stack_info)
    return record


def mask_logs(masker: Masker | None) -> None:
    """Mask every log record this process makes from now on (Prefect's run logs, ours, the libraries'): each
    record's message is formatted and masked when it is made, which is only for records a logger lets through."""
    with _log_lock:
        _log.masker = masker
        if masker is not None and logging.getLogRecordFactory() is not _masking_factory:
            _log.base_factory = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_masking_factory)
