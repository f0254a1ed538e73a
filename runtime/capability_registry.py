"""Seed 000's ``AgentRuntimeConfig.capability_registry``, read: ``builtin``, or a YAML/JSON registry file.

The file's format is :class:`~agentparty.models.capabilities.CapabilityRegistry`. It is read and validated when the
settings load (``Settings.capability_registry``), so a bad file stops the command that reads it, with the file,
the line and the field named, instead of surfacing as a bare Capability node in some later run's graph.
"""

from __future__ import annotations

from pathlib import Path

from agentparty.models.capabilities import BUILTIN_CAPABILITY_REGISTRY, CapabilityRegistry
from agentparty.runtime.documents import DocumentError, read_document, validate_document

BUILTIN = "builtin"


class CapabilityRegistryError(ValueError):
    """A registry file that cannot be read or does not validate; the message names the file and the field."""


def load_capability_registry(source: str) -> CapabilityRegistry:
    """The registry ``source`` names (``builtin`` or a file path, ``~`` expanded, relative to the working
    directory), resolved (``include_builtin`` applied)."""
    if source == BUILTIN:
        return BUILTIN_CAPABILITY_REGISTRY
    path = Path(source).expanduser()
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise CapabilityRegistryError(
            f"capability_registry {source!r}: give 'builtin' or a .yaml, .yml or .json file of capability definitions"
        )
    try:
        registry = validate_document(read_document(path), CapabilityRegistry)
    except DocumentError as exc:
        raise CapabilityRegistryError(f"capability_registry {path}:\n{exc}") from None
    return registry.resolved()
