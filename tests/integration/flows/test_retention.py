"""Erasure, export and the retention purge, end to end on the session's Prefect server and Bolt graph.

A run made for user U carries a unique marker in its input: it reaches Prefect (the
run's parameters, its persisted results), the graph (the Task's outputs) and this
home (the agent's conversation, sealed). After ``agentparty gdpr erase --user U`` a
scan of every file under AGENTPARTY_HOME, every row of every table of Prefect's
SQLite database and every property of every node and relationship of the graph
finds the marker nowhere. The purge test runs two users' workflows, purges with a
cutoff between them, and checks the old run's data went and the new one's stayed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from support.disk_scan import files_holding
from typer.testing import CliRunner

from agentparty.flows import CompileOptions, compile_workflow
from agentparty.flows.retention import erase_user, export_user, purge
from agentparty.flows.services import run_services
from agentparty.models import WorkflowDefinition
from agentparty.models.graph import User, stable_id
from agentparty.models.retention import KAFKA_REMAINS
from agentparty.runtime.audit import AuditLog
from agentparty.runtime.conversations import ConversationStore
from agentparty.runtime.graph_store import GraphStore
from agentparty.runtime.run_index import RunIndex
from agentparty.runtime.run_recorder import GraphRecorder
from agentparty.runtime.settings import Settings, get_settings

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

DEFINITION = {
    "id": "retention-run",
    "name": "Retention run",
    "triggers": [{"type": "manual"}],
    "errorHandling": {"retryAttempts": 0, "backoffStrategy": "fixed"},
    "inputs": {"note": {"type": "string"}},
    "steps": [
        {"id": "reply", "type": "task", "configuration": {"agent": "clerk", "prompt": "Answer ${inputs.note}"}},
        {
            "id": "keep",
            "type": "task",
            "configuration": {"handler": "support.step_handlers:echo"},
            "inputs": {"note": "${inputs.note}"},
        },
    ],
}


@pytest.fixture
def settings(bolt_server: Any, agentparty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The session's home and graph (results go to the session home's ``results``, where Prefect writes them)."""
    config = bolt_server.database_config()
    monkeypatch.setenv("AGENTPARTY_DATABASE__URI", config.uri)
    monkeypatch.setenv("AGENTPARTY_DATABASE__USERNAME", config.username)
    monkeypatch.setenv("AGENTPARTY_DATABASE__PASSWORD", config.password.get_secret_value())
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def run_for(settings: Settings, graph_store: GraphStore, user: str, note: str) -> str:
    """One run of the workflow made for ``user``; its flow run id."""
    services = run_services(settings, recorder=GraphRecorder(graph_store), events=None, user_id=user)
    flow = compile_workflow(WorkflowDefinition.model_validate(DEFINITION), options=CompileOptions(services=services))
    state = asyncio.run(flow(inputs={"note": note}, return_state=True))
    assert state.is_completed(), state
    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)
    return str(state.state_details.flow_run_id)


def prefect_rows_holding(text: str, database: Path) -> dict[str, int]:
    """Rows of each table of Prefect's database (read through SQLite, not the raw file) that mention ``text``."""
    found: dict[str, int] = {}
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
            if not columns:
                continue
            where = " OR ".join(f'CAST("{c}" AS TEXT) LIKE ?' for c in columns)
            (count,) = db.execute(
                f'SELECT count(*) FROM "{table}" WHERE {where}', [f"%{text}%"] * len(columns)
            ).fetchone()
            if count:
                found[table] = count
    return found


def graph_holding(store: GraphStore, text: str) -> list[str]:
    records, _, _ = store.driver.execute_query(
        "MATCH (n) RETURN labels(n) AS l, properties(n) AS p", database_=store.database
    )
    found = [str(r["l"]) for r in records if text in json.dumps(dict(r["p"]), default=str)]
    records, _, _ = store.driver.execute_query(
        "MATCH ()-[r]->() RETURN type(r) AS t, properties(r) AS p", database_=store.database
    )
    return found + [str(r["t"]) for r in records if text in json.dumps(dict(r["p"]), default=str)]


def prefect_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = [p for d in tmp_path_factory.getbasetemp().glob("prefect-server*") for p in d.rglob("*.db")]
    assert found, "the Prefect server's SQLite database"
    return found[0]


def test_an_erased_user_leaves_nothing_behind(
    settings: Settings, graph_store: GraphStore, agentparty_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    user, marker = f"user-{uuid.uuid4().hex[:8]}", f"marker-{uuid.uuid4().hex}"
    other = run_for(settings, graph_store, "someone-else", "not erased")
    run_id = run_for(settings, graph_store, user, f"please keep {marker} safe")
    database = prefect_database(tmp_path_factory)
    # the marker really is in each place the scan looks at
    assert prefect_rows_holding(marker, database).get("flow_run") == 1
    assert graph_holding(graph_store, marker)
    assert [r.flow_run_id for r in RunIndex.at(agentparty_home).of_user(user)] == [run_id]
    assert ConversationStore.at(agentparty_home).of_runs([run_id])

    exported = asyncio.run(export_user(user, settings=settings))
    assert [r.flow_run_id for r in exported.runs] == [run_id]
    assert exported.runs[0].parameters == {"inputs": {"note": f"please keep {marker} safe"}, "resume_key": None}
    assert exported.conversations and marker in json.dumps(exported.conversations[0].messages)
    assert marker in json.dumps(exported.graph)

    report = asyncio.run(erase_user(user, actor="test", settings=settings, prefect_database=database))
    assert report.complete, report.problems
    assert report.removed.flow_runs == 1 and report.removed.graph_users == 1 and report.removed.graph_tasks == 1
    assert report.removed.result_files >= 2 and report.removed.conversation_messages > 0
    assert KAFKA_REMAINS in report.remains

    assert files_holding(marker, agentparty_home) == []
    assert ConversationStore.at(agentparty_home).of_runs([run_id]) == []  # sealed at rest: the scan alone cannot tell
    assert prefect_rows_holding(marker, database) == {}  # every table, Prefect's events and logs included
    assert files_holding(marker, database.parent) == []  # the file and its WAL, compacted after the erasure
    assert graph_holding(graph_store, marker) == []
    assert graph_store.read_nodes(User, [stable_id("user", user)]) == []
    assert RunIndex.at(agentparty_home).of_user(user) == []
    # the other user's run is untouched
    assert [r.flow_run_id for r in RunIndex.at(agentparty_home).of_user("someone-else")][-1] == other
    entry = AuditLog.at(agentparty_home).query(action="gdpr.erase", limit=1)
    assert entry and entry[0].target == user and entry[0].outcome == "ok"


def test_a_purge_removes_old_runs_and_keeps_recent_ones(
    settings: Settings, graph_store: GraphStore, agentparty_home: Path
) -> None:
    old_marker, new_marker = f"old-{uuid.uuid4().hex}", f"new-{uuid.uuid4().hex}"
    old = run_for(settings, graph_store, "purge-user", old_marker)
    cutoff = datetime.now(UTC)
    new = run_for(settings, graph_store, "purge-user", new_marker)

    report = asyncio.run(purge(actor="test", cutoff=cutoff, settings=settings))
    assert report.complete, report.problems
    assert report.removed.flow_runs >= 1 and report.removed.graph_tasks >= 1

    runs = [r.flow_run_id for r in RunIndex.at(agentparty_home).of_user("purge-user")]
    assert old not in runs and new in runs
    assert graph_holding(graph_store, old_marker) == [] and graph_holding(graph_store, new_marker)
    conversations = ConversationStore.at(agentparty_home)
    assert conversations.of_runs([old]) == [] and conversations.of_runs([new])
    exported = asyncio.run(export_user("purge-user", settings=settings))
    assert [r.flow_run_id for r in exported.runs] == [new]
    assert exported.runs[0].parameters == {"inputs": {"note": new_marker}, "resume_key": None}  # still in Prefect
    entry = AuditLog.at(agentparty_home).query(action="retention.purge", limit=1)
    assert entry and entry[0].outcome == "ok"


def test_the_cli_erases_and_says_what_remains(settings: Settings) -> None:
    from agentparty.cli import app

    result = CliRunner().invoke(app, ["gdpr", "erase", "--user", f"nobody-{uuid.uuid4().hex[:6]}"])
    assert result.exit_code == 0, result.output
    assert "0 runs" in result.stdout and "remains: Events already sent to Kafka" in result.stdout


def test_the_api_exports_then_erases_a_user(settings: Settings, graph_store: GraphStore) -> None:
    from support.api_support import access_config, auth

    from agentparty.api import create_app

    user = f"api-user-{uuid.uuid4().hex[:8]}"
    run_id = run_for(settings, graph_store, user, "exported over the API")
    with TestClient(create_app(access_config(), settings=settings)) as client:
        exported = client.get(f"/users/{user}/export", headers=auth("admin"))
        assert exported.status_code == 200, exported.text
        assert [r["flowRunId"] for r in exported.json()["runs"]] == [run_id]
        erased = client.delete(f"/users/{user}", headers=auth("admin"))
        assert erased.status_code == 200, erased.text
        report = erased.json()
        assert report["complete"] and report["removed"]["flowRuns"] == 1 and KAFKA_REMAINS in report["remains"]
        assert client.get(f"/users/{user}/export", headers=auth("admin")).json()["runs"] == []
    entry = AuditLog.at(settings.home).query(action="gdpr.erase", limit=1)[0]
    assert (entry.actor, entry.target) == ("key:admin-key", user)


def test_the_purge_flow_runs_and_is_scheduled_daily(settings: Settings) -> None:
    from prefect.client.orchestration import get_client

    from agentparty.cli import app
    from agentparty.flows.retention import retention_purge

    report = asyncio.run(retention_purge(older_than_days=36500))  # a Prefect flow run of its own
    APILogWorker.drain_all(timeout=10)
    assert report["complete"] and report["retentionDays"] == 36500 and report["removed"]["flowRuns"] == 0

    result = CliRunner().invoke(app, ["gdpr", "schedule", "--pool", f"retention-{uuid.uuid4().hex[:6]}"])
    assert result.exit_code == 0, result.output
    assert "retention-purge/daily" in result.stdout

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_deployment_by_name("retention-purge/daily")

    deployment = asyncio.run(read())
    assert deployment.entrypoint == "agentparty.flows.retention.retention_purge"
    assert [s.schedule.cron for s in deployment.schedules] == ["30 3 * * *"]
