"""``monitoring.logging.compliance.gdpr`` takes effect at load: with it on, data masking, audit logging and the
audit trail must be on (each refusal names its field and the article); with it off each may be off; the built-in
configuration loads; the JSON Schema states the rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agentparty.models.compliance import GDPR_BASELINE
from agentparty.models.document_kinds import json_schema
from agentparty.models.errors import field_errors
from agentparty.models.sdk_config import SDKConfiguration


def _config(*, gdpr: bool, soc2: bool = False, audit_trail: bool = True, **security: Any) -> dict[str, Any]:
    compliance = {"gdpr": gdpr, "soc2": soc2, "auditTrail": audit_trail, "dataRetention": 30}
    return {"monitoring": {"logging": {"compliance": compliance}}, "security": security}


def _errors(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        SDKConfiguration.model_validate(document)
    return {error.path: error.message for error in field_errors(caught.value)}


@pytest.mark.parametrize(
    ("document", "field", "article"),
    [
        (_config(gdpr=True, dataMasking=False), "security.dataMasking", "art. 25 and 32"),
        (_config(gdpr=True, auditLogging=False), "security.auditLogging", "art. 5(2)"),
        (_config(gdpr=True, audit_trail=False), "monitoring.logging.compliance.auditTrail", "art. 5(2)"),
    ],
)
def test_gdpr_refuses_each_control_off_naming_its_field(document: dict[str, Any], field: str, article: str) -> None:
    errors = _errors(document)
    assert list(errors) == [field]
    assert errors[field].startswith("must be true while compliance.gdpr is on: GDPR ") and article in errors[field]


def test_gdpr_reports_every_control_at_once_and_beside_soc2() -> None:
    errors = _errors(_config(gdpr=True, audit_trail=False, dataMasking=False, auditLogging=False))
    assert set(errors) == {control.field for control in GDPR_BASELINE}
    both = _errors(_config(gdpr=True, soc2=True, auditLogging=False, encryption={"atRest": False}))
    assert set(both) == {"security.auditLogging", "security.encryption.atRest"}
    assert "CC7.2" in both["security.auditLogging"] and "art. 5(2)" in both["security.auditLogging"]


def test_with_gdpr_off_each_control_may_be_off() -> None:
    config = SDKConfiguration.model_validate(
        _config(gdpr=False, audit_trail=False, dataMasking=False, auditLogging=False)
    )
    assert not config.security.data_masking and not config.security.audit_logging
    assert not config.monitoring.logging.compliance.audit_trail


def test_the_built_in_configuration_loads_and_meets_the_gdpr_baseline() -> None:
    built_in = SDKConfiguration()  # what Settings.load_sdk_configuration() gives without a file
    assert built_in.monitoring.logging.compliance.gdpr is False
    gdpr_on = SDKConfiguration.model_validate({"monitoring": {"logging": {"compliance": {"gdpr": True}}}})
    assert gdpr_on.security.data_masking and gdpr_on.monitoring.logging.compliance.data_retention == 365


def test_data_retention_cannot_be_unset() -> None:
    for value in (None, 0, -1):
        document = {"monitoring": {"logging": {"compliance": {"gdpr": True, "dataRetention": value}}}}
        assert list(_errors(document)) == ["monitoring.logging.compliance.dataRetention"]


def test_the_json_schema_states_the_rule() -> None:
    schema = json_schema("sdk-config")
    gdpr = schema["$defs"]["ComplianceConfig"]["properties"]["gdpr"]  # type: ignore[index]
    for field in ("security.dataMasking", "security.auditLogging", "auditTrail", "dataRetention"):
        assert field in gdpr["description"]
