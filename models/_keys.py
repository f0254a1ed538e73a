"""Provider API key formats (seed 002: "API keys must match provider-specific format")."""

from __future__ import annotations

import re

_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "anthropic": (re.compile(r"^sk-ant-[A-Za-z0-9_\-]{16,}$"), "'sk-ant-' followed by at least 16 characters"),
    "openai": (re.compile(r"^sk-(?!ant-)[A-Za-z0-9_\-]{16,}$"), "'sk-' followed by at least 16 characters"),
    "google": (re.compile(r"^AIza[0-9A-Za-z_\-]{35}$"), "'AIza' followed by 35 characters"),
}


def api_key_problem(provider: str, key: str) -> str | None:
    """Why ``key`` cannot be a key for ``provider``, or None. Never echoes the key itself."""
    spec = _FORMATS.get(provider)
    if spec is None:
        return None  # simulated / unknown providers take any key
    pattern, expected = spec
    if pattern.match(key):
        return None
    for other, (other_pattern, _) in _FORMATS.items():
        if other != provider and other_pattern.match(key):
            return f"looks like a {other} key, but the provider is {provider}"
    return f"does not match the {provider} key format ({expected})"
