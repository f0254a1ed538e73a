"""Loading definitions from YAML and JSON files: line numbers, duplicate keys, subgraph targets, schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from support.workflow_docs import REPO_ROOT, two_step_workflow

from agentparty.models import CreateAgentTemplateRequest, SDKConfiguration
from agentparty.models.document_kinds import json_schema, json_schema_text
from agentparty.runtime.capability_registry import load_capability_registry
from agentparty.runtime.documents import DocumentError, load_workflow, read_document, validate_document, validate_paths


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_examples_load_and_validate(examples_dir: Path) -> None:
    paths = sorted(examples_dir.glob("*.yaml"))
    assert {p.stem for p in paths} >= {"research-report", "nightly-digest", "webhook-triage"}
    for path in paths:
        definition = load_workflow(path)
        assert definition.id == path.stem
    nightly = load_workflow(examples_dir / "nightly-digest.yaml")
    assert nightly.triggers[0].type == "schedule" and nightly.triggers[0].configuration.cron == "0 2 * * *"
    triage = load_workflow(examples_dir / "webhook-triage.yaml")
    assert {t.type for t in triage.triggers} >= {"webhook"}
    assert any(step.type == "subgraph" for step in triage.steps)
    research = load_workflow(examples_dir / "research-report.yaml")
    assert {step.type for step in research.steps} >= {"parallel", "decision", "task"}


def test_errors_carry_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flow.yaml",
        """\
id: flow
name: Flow
steps:
  - id: first
    type: task
    configuration:
      handler: m:f
    outputs:
      value: {type: number}
  - id: second
    type: task
    configuration:
      handler: m:g
    inputs:
      value: ${steps.first.outputs.valeu}
triggers:
  - type: manual
errorHandling: {retryAttempts: 1, backoffStrategy: fixed}
""",
    )
    with pytest.raises(DocumentError) as caught:
        load_workflow(path)
    (error,) = caught.value.errors
    assert (error.path, error.line) == ("steps[1].inputs.value", 15)
    assert str(caught.value) == (
        f"{path}:15: steps[1].inputs.value: ${{steps.first.outputs.valeu}}: step 'first' does not declare output "
        "'valeu' (declared: value) (did you mean 'value'?)"
    )


def test_missing_field_points_at_its_parent_and_snake_case_keys_map_to_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flow.yaml",
        "id: flow\nname: Flow\nsteps:\n  - id: a\n    type: task\n    configuration: {handler: m:f}\n"
        "    retry_policy:\n      base_delay: 1\ntriggers: [{type: manual}]\n",
    )
    with pytest.raises(DocumentError) as caught:
        load_workflow(path)
    (error,) = caught.value.errors
    assert error.path == "steps[0].retry_policy.maxAttempts"  # the key as the file spells it
    assert error.line == 7 and error.message == "required field is missing"


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.yaml", "id: a\nname: A\nid: b\nsteps: []\ntriggers: []\n")
    with pytest.raises(DocumentError) as caught:
        read_document(path)
    (error,) = caught.value.errors
    assert error.line == 3 and "duplicate key 'id' (first on line 1)" in error.message


def test_parse_errors_carry_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "id: a\nsteps:\n  - id: [unclosed\n")
    with pytest.raises(DocumentError) as caught:
        read_document(path)
    assert caught.value.errors[0].line is not None and "cannot parse" in caught.value.errors[0].message
    bad_json = write(tmp_path, "broken.json", '{"id": "a",\n "steps": [}\n')
    with pytest.raises(DocumentError) as caught:
        read_document(bad_json)
    assert caught.value.errors[0].line == 2


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="expected a mapping at the top level, got a list"):
        read_document(write(tmp_path, "list.yaml", "- a\n- b\n"))
    with pytest.raises(DocumentError, match="got empty"):
        read_document(write(tmp_path, "empty.yaml", ""))


def test_json_definitions_load_with_lines(tmp_path: Path) -> None:
    doc = two_step_workflow()
    path = write(tmp_path, "flow.json", json.dumps(doc, indent=2))
    assert load_workflow(path).id == "minimal"
    doc["steps"][1]["inputs"]["value"] = "${inputs.nope}"
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(DocumentError) as caught:
        load_workflow(path)
    error = caught.value.errors[0]
    assert error.path == "steps[1].inputs.value" and error.line is not None
    assert '"value": "${inputs.nope}"' in path.read_text().splitlines()[error.line - 1]


def test_subgraph_targets_resolve_by_path_and_by_id(tmp_path: Path) -> None:
    child = two_step_workflow(id="child-flow")
    write(tmp_path, "child.yaml", yaml.safe_dump(child))
    parent = two_step_workflow(id="parent")
    parent["steps"].append({"id": "by_path", "type": "subgraph", "configuration": {"workflow": "child.yaml"}})
    parent["steps"].append({"id": "by_id", "type": "subgraph", "configuration": {"workflow": "child-flow"}})
    assert len(load_workflow(write(tmp_path, "parent.yaml", yaml.safe_dump(parent))).steps) == 4
    parent["steps"][2]["configuration"]["workflow"] = "nope.yaml"
    with pytest.raises(DocumentError, match=r"subgraph target 'nope\.yaml' not found"):
        load_workflow(write(tmp_path, "parent.yaml", yaml.safe_dump(parent)))


def test_workflow_ids_must_be_unique_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", yaml.safe_dump(two_step_workflow(id="same")))
    b = write(tmp_path, "b.yaml", yaml.safe_dump(two_step_workflow(id="same")))
    reports = validate_paths([a, b])
    assert reports[0].valid
    assert [(e.path, e.line) for e in reports[1].errors] == [("id", 1)] or reports[1].errors[0].path == "id"
    assert "also used by" in reports[1].errors[0].message


def test_kind_is_detected_for_other_documents(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        "t.yaml",
        "name: T\ndescription: d\nmodel: gpt-4\nparameters: {}\npersonality: p\ncapabilities: [Bad Name]\n",
    )
    (report,) = validate_paths([template])
    assert report.kind == "agent-template"
    assert report.errors[0].path == "capabilities[0]" and report.errors[0].line == 6


def test_committed_schema_is_current() -> None:
    committed = (REPO_ROOT / "schemas" / "workflow.schema.json").read_text(encoding="utf-8")
    assert committed == json_schema_text("workflow"), "run: agentparty schema workflow -o schemas/workflow.schema.json"


def test_exported_schema_accepts_examples_and_rejects_typos(examples_dir: Path) -> None:
    schema = json_schema("workflow")
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for path in examples_dir.glob("*.yaml"):
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert not errors, f"{path.name}: {[e.message for e in errors]}"
    typo = two_step_workflow()
    typo["steps"][0]["retrypolicy"] = {}
    assert list(validator.iter_errors(typo)), "the schema should refuse unknown step fields"


def test_readme_workflow_example_validates(tmp_path: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```yaml\n")[1:]]
    assert blocks, "README has no yaml example"
    for block in blocks:
        if block.startswith("# sdk-config"):  # an SDK configuration, not a workflow
            validate_document(read_document(write(tmp_path, "sdk.yaml", block)), SDKConfiguration)
            continue
        if block.startswith("# agent-template"):  # an agent template request, not a workflow
            validate_document(read_document(write(tmp_path, "template.yaml", block)), CreateAgentTemplateRequest)
            continue
        if block.startswith("# capability-registry"):  # agentRuntime.capability_registry's file, not a workflow
            assert load_capability_registry(str(write(tmp_path, "capabilities.yaml", block))).capabilities
            continue
        assert load_workflow(write(tmp_path, "readme.yaml", block)).steps
