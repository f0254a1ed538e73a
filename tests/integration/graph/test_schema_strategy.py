"""``versioning.migrationStrategy`` for the graph schema, on the real Bolt server (``runtime/graph_migrations.py``).

The session's graph already holds the schema (and data), so the migrations
here, numbered far above the real ones and removed afterwards, are upgrades.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentparty.runtime.graph_migrations import Migration, applied_migrations, migrate
from agentparty.runtime.schema_versions import MigrationDeclined, MigrationPolicy, SchemaBehind

ADDS_INDEX = Migration(
    9001, "strategy test index", ("CREATE INDEX strategy_test_a IF NOT EXISTS FOR (n:StrategyTest) ON (n.a)",)
)
BREAKS = Migration(
    9002,
    "strategy test, failing",
    (
        "CREATE INDEX strategy_test_b IF NOT EXISTS FOR (n:StrategyTest) ON (n.b)",
        "THIS IS NOT CYPHER",
    ),
)


@pytest.fixture
def graph(graph_store: Any) -> Iterator[Any]:
    driver = graph_store.driver
    driver.execute_query("CREATE (:StrategyTest {a: 'kept'})", database_=graph_store.database)
    yield graph_store
    for statement in (
        "DROP INDEX strategy_test_a IF EXISTS",
        "DROP INDEX strategy_test_b IF EXISTS",
        "MATCH (m:SchemaMigration) WHERE m.version >= 9000 DELETE m",
        "MATCH (n:StrategyTest) DELETE n",
    ):
        driver.execute_query(statement, database_=graph_store.database)


def _indexes(graph: Any) -> set[str]:
    records, _, _ = graph.driver.execute_query("SHOW INDEXES YIELD name RETURN name", database_=graph.database)
    return {r["name"] for r in records}


def test_manual_refuses_an_implicit_upgrade_and_applies_when_asked(graph: Any) -> None:
    with pytest.raises(SchemaBehind, match=r"9001 \(strategy test index\).*agentparty migrate"):
        migrate(graph.driver, graph.database, (ADDS_INDEX,), policy=MigrationPolicy("manual"))
    assert 9001 not in applied_migrations(graph.driver, graph.database)
    assert migrate(graph.driver, graph.database, (ADDS_INDEX,), policy=MigrationPolicy("manual"), explicit=True) == [
        9001
    ]
    assert "strategy_test_a" in _indexes(graph)


def test_assisted_asks_and_a_refusal_applies_nothing(graph: Any) -> None:
    with pytest.raises(MigrationDeclined):
        migrate(graph.driver, graph.database, (ADDS_INDEX,), policy=MigrationPolicy("assisted"), explicit=True,
                confirm=lambda plan: False)  # fmt: skip
    assert 9001 not in applied_migrations(graph.driver, graph.database)


def test_data_backup_exports_the_graph_first(graph: Any, tmp_path: Path) -> None:
    policy = MigrationPolicy("automatic", backup=True, backup_dir=tmp_path)
    migrate(graph.driver, graph.database, (ADDS_INDEX,), policy=policy)
    [export] = list(tmp_path.glob("graph-*.jsonl"))
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert any(line.get("labels") == ["StrategyTest"] and line["props"].get("a") == "kept" for line in lines)


def test_rollback_support_drops_what_a_failed_migration_created(graph: Any) -> None:
    with pytest.raises(Exception):  # the server's syntax error, whatever its class
        migrate(graph.driver, graph.database, (BREAKS,), policy=MigrationPolicy("automatic", rollback=True))
    assert "strategy_test_b" not in _indexes(graph)
    assert 9002 not in applied_migrations(graph.driver, graph.database)


def test_without_rollback_support_a_failed_migration_leaves_its_statements(graph: Any) -> None:
    with pytest.raises(Exception):
        migrate(graph.driver, graph.database, (BREAKS,), policy=MigrationPolicy("automatic", rollback=False))
    assert "strategy_test_b" in _indexes(graph)  # IF NOT EXISTS: a later run simply continues
    assert 9002 not in applied_migrations(graph.driver, graph.database)
