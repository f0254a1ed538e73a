"""Graph migrations against the real local Bolt server: idempotent, recorded, enforced."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agentparty.runtime.graph_migrations import MIGRATIONS, Migration, MigrationDrift, applied_migrations, migrate
from agentparty.runtime.graph_server import DATABASE_NAME


@pytest.fixture(scope="module")
def driver(bolt_server: Any) -> Iterator[Any]:
    from neo4j import GraphDatabase

    config = bolt_server.database_config()
    with GraphDatabase.driver(config.uri, auth=(config.username, config.password.get_secret_value())) as drv:
        yield drv


def test_migrations_apply_once_and_are_recorded(driver: Any) -> None:
    first = migrate(driver, DATABASE_NAME)
    assert first in ([m.version for m in MIGRATIONS], []), (
        "a fresh graph gets every migration (or they ran earlier this session)"
    )
    assert migrate(driver, DATABASE_NAME) == [], "applying again changes nothing"
    recorded = applied_migrations(driver, DATABASE_NAME)
    assert {v: r["checksum"] for v, r in recorded.items()} == {m.version: m.checksum for m in MIGRATIONS}


def test_every_label_has_a_unique_id_and_template_versions_a_key(driver: Any) -> None:
    migrate(driver, DATABASE_NAME)
    records, _, _ = driver.execute_query("SHOW CONSTRAINTS", database_=DATABASE_NAME)
    text = " ".join(str(dict(r)) for r in records)
    for name in ("agent_id", "agent_template_id", "template_version_key", "agent_state_id", "user_id", "output_id"):
        assert name in text, f"constraint {name} missing"
    records, _, _ = driver.execute_query("SHOW INDEXES", database_=DATABASE_NAME)
    text = " ".join(str(dict(r)) for r in records)
    for name in ("agent_status", "worked_with_success_score", "member_of_role", "has_capability_proficiency"):
        assert name in text, f"index {name} missing"


def test_uniqueness_is_enforced(driver: Any) -> None:
    from neo4j.exceptions import ConstraintError, Neo4jError

    migrate(driver, DATABASE_NAME)
    agent_id, template_id = str(uuid.uuid4()), str(uuid.uuid4())
    driver.execute_query("CREATE (:Agent {id: $id, name: 'a'})", id=agent_id, database_=DATABASE_NAME)
    with pytest.raises((ConstraintError, Neo4jError)):
        driver.execute_query("CREATE (:Agent {id: $id, name: 'b'})", id=agent_id, database_=DATABASE_NAME)
    driver.execute_query(
        "CREATE (:TemplateVersion {id: $a, template_id: $t, version: '1.0.0'})",
        a=str(uuid.uuid4()),
        t=template_id,
        database_=DATABASE_NAME,
    )
    with pytest.raises((ConstraintError, Neo4jError)):
        driver.execute_query(
            "CREATE (:TemplateVersion {id: $a, template_id: $t, version: '1.0.0'})",
            a=str(uuid.uuid4()),
            t=template_id,
            database_=DATABASE_NAME,
        )


def test_an_edited_applied_migration_is_refused(driver: Any) -> None:
    migrate(driver, DATABASE_NAME)
    edited = (
        MIGRATIONS[0],
        Migration(
            2, "seed 000 constraints and indexes", ("CREATE INDEX sneaky IF NOT EXISTS FOR (n:Agent) ON (n.name)",)
        ),
    )
    with pytest.raises(MigrationDrift, match="add a new migration"):
        migrate(driver, DATABASE_NAME, edited)
