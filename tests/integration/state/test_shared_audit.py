"""The audit chain on both state backends: the home's JSONL file (SQLite state) and one chain in PostgreSQL.

The same chain behaviour holds on both (appends chain on, filters, a cut tail
and an edited or removed entry are named). On PostgreSQL, entries are tampered
with as an intruder would, with plain SQL through psycopg, and ``agentparty
audit verify`` names each; two processes with different homes (two hosts)
appending at once leave one unbroken chain holding every entry.
"""

from __future__ import annotations

import itertools
import multiprocessing
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from agentparty.cli import app
from agentparty.runtime.audit import ANCHORED_GENESIS, HEAD_ACTION
from agentparty.runtime.audit_postgres import PostgresAuditLog
from agentparty.runtime.audit_trail import AuditTrail, open_audit_trail
from agentparty.runtime.secrets import register
from agentparty.runtime.settings import get_settings
from agentparty.runtime.state_backend import PostgresBackend, StateBackend

WRITERS = 2
EACH = 60


@pytest.fixture
def trail(state_backend: StateBackend, tmp_path: Path) -> AuditTrail:
    return open_audit_trail(tmp_path / "home", state_backend)


@pytest.fixture
def pg_url(postgres_cluster: object) -> Iterator[str]:
    from support.postgres_support import fresh_database

    yield fresh_database(postgres_cluster)  # type: ignore[arg-type]


@pytest.fixture
def pg_home(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A home whose settings put engine state (and so the audit chain) in a fresh PostgreSQL database."""
    monkeypatch.setenv("AGENTPARTY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGENTPARTY_STATE_DB_URL", pg_url)
    monkeypatch.delenv("AGENTPARTY_SDK_CONFIG", raising=False)
    get_settings.cache_clear()
    yield pg_url
    get_settings.cache_clear()


def _filled(trail: AuditTrail, count: int = 5) -> AuditTrail:
    for number in range(count):
        trail.append("key:ci", "api.request", f"GET /runs/{number}", "200")
    return trail


def _sql(url: str, statement: str, params: tuple[object, ...] = ()) -> None:
    """Tampering as someone with the database's password would: plain SQL, outside the engine."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement, params)


def test_appends_chain_on_and_verify(trail: AuditTrail) -> None:
    _filled(trail, 3)
    assert trail.append_many([{"actor": "system", "action": "batch", "n": n} for n in range(4)]) == 4
    entries = list(trail.entries())
    assert [e.seq for e in entries] == list(range(1, 8))
    assert entries[0].prev == ANCHORED_GENESIS
    assert all(later.prev == earlier.hash for earlier, later in itertools.pairwise(entries))
    found = trail.check()
    assert found.broken is None and found.entries == 7
    assert found.head is not None and (found.head.count, found.head.hash) == (7, entries[-1].hash)


def test_details_are_redacted_and_a_disabled_trail_records_nothing(
    trail: AuditTrail, state_backend: StateBackend, tmp_path: Path
) -> None:
    secret = "sk-audit-" + "a" * 40
    register(secret)  # a key the engine holds: never written, even when a caller passes it
    entry = trail.append("cli:me", "key.create", "ci", token=secret, role="operator")
    assert entry is not None and secret not in str(entry.details) and entry.details["role"] == "operator"
    assert next(iter(trail.entries())).details == entry.details
    assert trail.verify() is None
    off = open_audit_trail(tmp_path / "home", state_backend, enabled=False)
    assert off.append("system", "nothing") is None and off.append_many([{"actor": "a", "action": "b"}]) == 0


def test_query_filters_by_actor_action_prefix_and_time_newest_first(trail: AuditTrail) -> None:
    _filled(trail, 3)
    trail.append("cli:me", "key.rotate", "ci")
    trail.append("cli:me", "keyring.open", "x")
    assert [e.target for e in trail.query(actor="key:ci", limit=2)] == ["GET /runs/2", "GET /runs/1"]
    assert [e.action for e in trail.query(action="key")] == ["key.rotate"]
    assert trail.query(action="ke") == []
    assert len(trail.query(since=datetime.now(UTC) - timedelta(minutes=5))) == 5
    assert trail.query(since=datetime.now(UTC) + timedelta(minutes=5)) == []
    assert [e.seq for e in trail.query(limit=2, offset=1)] == [4, 3]


def test_a_cut_tail_is_named_and_the_next_append_keeps_the_evidence(trail: AuditTrail) -> None:
    _filled(trail)
    _cut(trail, keep=3)
    broken = trail.verify()
    assert broken is not None and (broken.line, broken.seq) == (4, 4)
    assert broken.reason.startswith("entries 4..5 removed from the end")
    trail.append("key:ci", "api.request", "GET /next", "200")
    [evidence] = [e for e in trail.entries() if e.action == HEAD_ACTION]
    assert evidence.outcome == "removed" and "entries 4..5 had been removed" in evidence.details["reason"]
    broken = trail.verify()
    assert broken is not None and broken.seq == evidence.seq


def _cut(trail: AuditTrail, keep: int) -> None:
    if isinstance(trail, PostgresAuditLog):
        assert isinstance(trail.backend, PostgresBackend)
        _sql(trail.backend.url, "DELETE FROM agentparty.audit_entries WHERE seq > %s", (keep,))
        return
    path = trail.location
    lines = Path(path).read_text().splitlines(keepends=True)
    Path(path).write_text("".join(lines[:keep]))


def test_verify_names_an_entry_edited_with_sql(pg_home: str) -> None:
    _filled(get_settings().audit_log())
    _sql(pg_home, """UPDATE agentparty.audit_entries SET details = '{"hidden":true}' WHERE seq = 3""")
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert re.search(r"audit_entries:3: chain broken at entry 3: .*edited", result.output), result.output


def test_verify_names_the_entry_after_a_row_deleted_from_the_middle(pg_home: str) -> None:
    _filled(get_settings().audit_log())
    _sql(pg_home, "DELETE FROM agentparty.audit_entries WHERE seq = 2")
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert re.search(r"audit_entries:2: chain broken at entry 3: .*removed or reordered", result.output)


def test_verify_names_entries_swapped_in_place(pg_home: str) -> None:
    _filled(get_settings().audit_log())
    for statement in ("SET seq = -2 WHERE seq = 2", "SET seq = 2 WHERE seq = 4", "SET seq = 4 WHERE seq = -2"):
        _sql(pg_home, f"UPDATE agentparty.audit_entries {statement}")
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1 and "chain broken at entry 2" in result.output


@pytest.mark.parametrize("keep", [3, 0])
def test_verify_names_the_last_rows_deleted(pg_home: str, keep: int) -> None:
    _filled(get_settings().audit_log())
    _sql(pg_home, "DELETE FROM agentparty.audit_entries WHERE seq > %s", (keep,))
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert f"chain broken at entry {keep + 1}: entries {keep + 1}..5 removed from the end" in result.output


def test_verify_names_a_deleted_head_row_and_a_rewritten_chain(pg_home: str) -> None:
    _filled(get_settings().audit_log())
    _sql(pg_home, "DELETE FROM agentparty.audit_head")
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1 and "the head row (audit_head) is missing" in result.output
    _sql(pg_home, "INSERT INTO agentparty.audit_head VALUES (1, 5, %s)", ("f" * 64,))
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1 and "chain broken at entry 5" in result.output and "rewritten" in result.output


def test_verify_passes_and_show_reads_the_database_chain(pg_home: str) -> None:
    log = _filled(get_settings().audit_log(), 2)
    log.append("cli:me", "key.rotate", "ci")
    result = CliRunner().invoke(app, ["audit", "verify"])
    last = list(log.entries())[-1].hash
    assert result.exit_code == 0 and f"3 entries, chain intact, head at entry 3 ({last})" in result.output
    shown = CliRunner().invoke(app, ["audit", "show", "--action", "key"])
    assert shown.exit_code == 0 and "key.rotate" in shown.output and "api.request" not in shown.output
    home = Path(get_settings().home)
    assert not (home / "audit" / "audit.jsonl").exists()  # the home's file is not written when state is on PG


def _append_from_a_host(home: str, url: str, writer: int) -> None:
    """Another host: its own home, the same state database (found through settings, as production does)."""
    import os

    os.environ["AGENTPARTY_HOME"] = home
    os.environ["AGENTPARTY_STATE_DB_URL"] = url
    os.environ.pop("AGENTPARTY_SDK_CONFIG", None)
    log = get_settings().audit_log()
    for number in range(EACH):
        if number % 3 == 0:
            log.append_many(
                [{"actor": f"host:{writer}", "action": "test.batch", "target": f"{number}.{n}"} for n in range(2)]
            )
        else:
            log.append(f"host:{writer}", "test.append", str(number))


@pytest.mark.slow
def test_two_hosts_appending_at_once_keep_one_unbroken_chain(pg_url: str, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_append_from_a_host, args=(str(tmp_path / f"host-{n}"), pg_url, n))
        for n in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
        assert worker.exitcode == 0
    backend = PostgresBackend(pg_url)
    trail = PostgresAuditLog(backend)
    found = trail.check()
    per_writer = EACH + EACH // 3  # the batches hold two entries each
    assert found.broken is None and found.entries == WRITERS * per_writer
    entries = list(trail.entries())
    assert [e.seq for e in entries] == list(range(1, WRITERS * per_writer + 1))
    for writer in range(WRITERS):
        mine = [e.target for e in entries if e.actor == f"host:{writer}"]
        assert len(mine) == per_writer and len(set(mine)) == per_writer
    assert all(not (tmp_path / f"host-{n}" / "audit" / "audit.jsonl").exists() for n in range(WRITERS))
    backend.close()


def test_the_migrate_command_creates_the_audit_tables_on_postgres(pg_home: str) -> None:
    result = CliRunner().invoke(app, ["migrate", "--yes", "--no-graph"])
    assert result.exit_code == 0, result.output
    assert "  audit: version 0 -> 1" in result.output
    assert get_settings().audit_log().append("system", "after.migrate") is not None
