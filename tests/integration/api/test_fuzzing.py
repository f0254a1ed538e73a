"""Schemathesis against a real ``agentparty api`` process (real Prefect and Bolt servers), under an admin and a viewer key.

Every check on: no server error, and every status code, header, content type
and body the API answers is one its OpenAPI document declares; invalid requests
are refused and valid ones accepted. Webhook posts are signed by a hook
(``tests/support/schemathesis_hooks.py``) so the fuzzing reaches past the signature check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.api_support import KEYS, SECRET, SECRET_ENV, HookWorkflows, access_config, wait_until_serving

from agentparty.models.api import CREATE_AGENT_TEMPLATE_EXAMPLE
from agentparty.runtime.local_service import free_port

pytest.importorskip("schemathesis")
pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parents[2]  # tests/: the hooks import as ``support.schemathesis_hooks``


@pytest.fixture(scope="module")
def live_api(
    prefect_server: str, bolt_server: Any, hook_workflows: HookWorkflows, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``agentparty api`` in a process of its own, on a fresh home, with the test keys and no rate limit."""
    home = tmp_path_factory.mktemp("fuzz-home")
    access = home / "api-access.yaml"
    access.write_text(yaml.safe_dump(access_config().model_dump(mode="json", by_alias=True, exclude_none=True)))
    database = bolt_server.database_config()
    port = free_port()
    env = {
        **os.environ,
        "AGENTPARTY_HOME": str(home),
        "AGENTPARTY_API_ACCESS": str(access),
        "PREFECT_API_URL": prefect_server,
        "AGENTPARTY_DATABASE__URI": database.uri,
        "AGENTPARTY_DATABASE__USERNAME": database.username,
        "AGENTPARTY_DATABASE__PASSWORD": database.password.get_secret_value(),
        "AGENTPARTY_EVENTS": "off",
        "AGENTPARTY_WORKFLOWS": str(hook_workflows.folder),
        "AGENTPARTY_TOOL_MODULES": "support.agent_tools",
        "AGENTPARTY_MCP_COMMANDS": "python mcp_docs_server.py",
        SECRET_ENV: SECRET,
    }
    log = (home / "api.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("agentparty")), "api", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, home / "api.log")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def schemathesis(url: str, key: str, workflow: str, *extra: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``schemathesis run`` in ``cwd`` (it keeps a ``.schemathesis`` folder of found cases where it runs)."""
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "support.schemathesis_hooks",
        "PYTHONPATH": str(TESTS),
        SECRET_ENV: SECRET,
        "AGENTPARTY_FUZZ_WORKFLOW": workflow,
    }
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "-H",
        f"X-API-Key: {key}",
        "--seed",
        "20261205",
        "--no-color",
        *extra,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_every_answer_is_declared_and_no_request_is_a_server_error(
    live_api: str, hook_workflows: HookWorkflows, role: str, tmp_path: Path
) -> None:
    ran = schemathesis(live_api, KEYS[role], hook_workflows.unwaited, "--max-examples", "100", cwd=tmp_path)
    print(ran.stdout[-3000:])
    assert ran.returncode == 0, ran.stdout[-20000:] + ran.stderr[-5000:]


def curl(*args: str) -> tuple[int, dict[str, str], Any]:
    """curl's view of an answer: status, headers (lower-case names) and the JSON body."""
    ran = subprocess.run(["curl", "-s", "-i", *args], capture_output=True, text=True, timeout=60, check=True)
    head, _, body = ran.stdout.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.splitlines()
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body) if body.strip() else None


def test_the_two_reported_server_errors_are_422_naming_the_field(live_api: str) -> None:
    key = f"X-API-Key: {KEYS['admin']}"
    code, _, body = curl("-H", key, f"{live_api}/agents?offset=99999999999999999999")
    assert code == 422 and [e["field"] for e in body["detail"]] == ["query.offset"]
    code, _, body = curl("-H", key, f"{live_api}/approvals?limit=293")
    assert code == 422 and [e["field"] for e in body["detail"]] == ["query.limit"]


def test_an_unknown_query_parameter_is_refused_not_ignored(live_api: str) -> None:
    code, _, body = curl("-H", f"X-API-Key: {KEYS['viewer']}", f"{live_api}/templates?limt=5")
    assert (
        code == 422
        and body["detail"][0]["field"] == "query.limt"
        and "unknown query parameter" in body["detail"][0]["msg"]
    )


def test_a_method_not_allowed_lists_every_method_of_the_path(live_api: str) -> None:
    code, headers, _ = curl("-X", "DELETE", "-H", f"X-API-Key: {KEYS['admin']}", f"{live_api}/templates")
    assert code == 405 and headers["allow"] == "GET, POST"


def test_a_created_template_is_read_back_and_listed(live_api: str) -> None:
    name = f"round-trip-{uuid.uuid4().hex[:6]}"
    request = json.dumps({**CREATE_AGENT_TEMPLATE_EXAMPLE, "name": name})
    key = f"X-API-Key: {KEYS['admin']}"
    code, _, created = curl(
        "-X", "POST", "-H", key, "-H", "Content-Type: application/json", "-d", request, f"{live_api}/templates"
    )
    assert code == 201, created
    code, _, read = curl("-H", key, f"{live_api}/templates/{name}")
    assert code == 200 and read["template"] == created["template"] and read["versions"] == [created["version"]]
    code, _, listed = curl("-H", key, f"{live_api}/templates")
    assert code == 200 and name in {t["template"]["name"] for t in listed}
    assert curl("-H", key, f"{live_api}/templates/no-such-{name}")[0] == 404


def test_templates_name_only_tool_code_on_the_allowlist(live_api: str) -> None:
    """A tool module or MCP command is code the workers run: off the allowlist, the template is refused at once
    (403: the request is valid, this server's policy refuses it; a URL that is not one is 422)."""
    key = f"X-API-Key: {KEYS['admin']}"

    def post(name: str, **extra: Any) -> tuple[int, Any]:
        body = json.dumps({**CREATE_AGENT_TEMPLATE_EXAMPLE, "name": name, "model": "simulated", **extra})
        code, _, answer = curl(
            "-X", "POST", "-H", key, "-H", "Content-Type: application/json", "-d", body, f"{live_api}/templates"
        )
        return code, answer

    suffix = uuid.uuid4().hex[:6]
    code, answer = post(
        f"tooled-{suffix}",
        tools=["support.agent_tools:lookup", {"function": "support.agent_tools:fetch_page", "needsApproval": True}],
        mcp_servers=[{"name": "docs", "command": ["python", "mcp_docs_server.py"]}],
        permissions=["!tools:fetch_page"],
        max_turns=5,
    )
    assert code == 201, answer
    tooling = answer["version"]["tooling"]
    assert tooling["tools"][0] == "support.agent_tools:lookup" and tooling["maxTurns"] == 5
    assert tooling["permissions"] == ["!tools:fetch_page"]

    code, answer = post(f"shell-{suffix}", tools=["os:system", "support.agent_tools:lookup"])
    assert code == 403, answer  # valid, but this server's policy refuses it
    [problem] = answer["detail"]
    assert problem["loc"] == ["body", "tools", 0] and problem["type"] == "tool_not_allowed"
    assert "tool module 'os' is not on the allowlist" in problem["msg"]

    code, answer = post(
        f"mcp-{suffix}", mcp_servers=[{"name": "fs", "command": ["npx", "-y", "server-filesystem", "/"]}]
    )
    assert code == 403 and answer["detail"][0]["loc"] == ["body", "mcp_servers", 0, "command"], answer
    assert "MCP command 'npx -y server-filesystem /' is not on the allowlist" in answer["detail"][0]["msg"]

    code, answer = post(f"url-{suffix}", mcp_servers=[{"name": "far", "url": "http://example.com/mcp"}])
    assert code == 422 and "plain http only to a loopback address" in json.dumps(answer), answer
    assert curl("-H", key, f"{live_api}/templates/shell-{suffix}")[0] == 404, "a refused template was stored"
