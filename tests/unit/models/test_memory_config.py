"""A template version's memory configuration: its rules, where it is refused and why, and older records loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentparty.models import CreateAgentTemplateRequest
from agentparty.models.graph import TemplateVersion
from agentparty.models.memory import MemoryConfig, active_memory
from agentparty.models.templates import VersionRecord
from agentparty.runtime.documents import DocumentError, read_document, validate_document

TEMPLATE = """\
name: keeper
description: Keeps notes
model: simulated
parameters: {}
personality: careful
capabilities: [note_taking]
"""


def test_memory_config_rules() -> None:
    assert MemoryConfig.model_validate({"maxBytes": 10, "visibility": "named", "keys": ["goal"]}).max_bytes == 10
    for bad, reason in (
        ({"visibility": "named"}, "visibility 'named' shows the keys listed in keys"),
        ({"keys": ["a"]}, "keys are only shown with visibility 'named', not 'all'"),
        ({"enabled": False, "inherit": True}, "memory is disabled (enabled: false), so inherit would do nothing"),
        ({"visibility": "named", "keys": ["a", "a"]}, "each key once"),
        ({"visibility": "named", "keys": ["a\tb"]}, "control characters"),
        ({"max_bytes": 0}, "greater than 0"),
        ({"max_keys": 10_001}, "less than or equal to 10000"),
        ({"visibility": "some"}, "'none', 'all' or 'named'"),
        ({"inherit": "yes"}, "valid boolean"),
    ):
        with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            MemoryConfig.model_validate(bad)


def test_a_template_file_with_memory_and_its_errors_by_field(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(TEMPLATE + "memory: {visibility: named, keys: [goal], maxBytes: 4096, inherit: true}\n")
    request = validate_document(read_document(good), CreateAgentTemplateRequest)
    assert request.memory == MemoryConfig(visibility="named", keys=["goal"], max_bytes=4096, inherit=True)
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEMPLATE + "memory:\n  visibility: everything\n  max_keys: 0\n")
    with pytest.raises(DocumentError) as refused:
        validate_document(read_document(bad), CreateAgentTemplateRequest)
    rendered = str(refused.value)
    assert "bad.yaml:8: memory.visibility" in rendered and "bad.yaml:9: memory.max_keys" in rendered


def test_versions_stored_before_memory_load_without_one() -> None:
    version = TemplateVersion(template_id="00000000-0000-4000-8000-000000000001", version="1.0.0", model="simulated")
    stored = VersionRecord(version=version).model_dump(mode="json")
    del stored["memory"]
    record = VersionRecord.model_validate(stored)
    assert record.memory is None and active_memory(record.memory) is None
    assert active_memory(MemoryConfig(enabled=False)) is None and active_memory(MemoryConfig()) == MemoryConfig()
