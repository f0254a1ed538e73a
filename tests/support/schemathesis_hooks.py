"""Schemathesis hooks for ``tests/integration/api/test_fuzzing.py`` (``SCHEMATHESIS_HOOKS``): webhook posts are signed.

The webhook's HMAC check comes before JSON parsing, input validation and the
deployment, so unsigned fuzzing would only ever meet the 401. Each generated
webhook case is sent with a fresh timestamp and a valid signature over the
exact bytes sent; the body is serialised here, once, so the bytes signed are
the bytes on the wire. Cases whose body is not JSON-serialisable are sent as
generated (unsigned: 401 is then the right answer).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

from agentparty.api.signing import signature_headers

SECRET_ENV = "AGENTPARTY_TEST_WEBHOOK_SECRET"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if (
        not case.operation.path.startswith("/webhooks/{workflow_id}")
        or case.method.upper() != "POST"
        or case.operation.path.endswith("/requeue")
    ):
        return
    if isinstance(case.body, bytes | bytearray):
        body = bytes(case.body)
    else:
        try:
            body = json.dumps(case.body).encode()
        except (TypeError, ValueError):
            return
        case.body = body
    headers = dict(case.headers or {})
    headers.update(signature_headers(os.environ[SECRET_ENV], body))
    case.headers = headers


@schemathesis.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Webhook routes address the one deployed webhook workflow of the test (a random id only ever meets 404);
    an id the schema refuses (a negative case: empty, too long) is left for the API to refuse."""
    if path_parameters is None:
        return None
    generated = path_parameters.get("workflow_id")
    if (
        context.operation is not None
        and context.operation.path.startswith("/webhooks/")
        and isinstance(generated, str)
        and 1 <= len(generated) <= 200
    ):
        path_parameters["workflow_id"] = os.environ["AGENTPARTY_FUZZ_WORKFLOW"]
    return path_parameters
