"""Where agent templates and their versions are kept: the engine's state backend (``runtime/state_backend.py``).

On one machine that is ``state/templates.sqlite`` under ``AGENTPARTY_HOME``;
with PostgreSQL configured, the shared schema, so that a template published on
one host is the one every worker and API replica resolves.

Versions are immutable: inserting an existing ``(template_id, version)`` is refused,
only a version's status (and who approved it) changes. The registry
(``tasks/templates.py``) holds the rules; this holds the rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from packaging.version import Version

from agentparty.models.graph import AgentTemplate
from agentparty.models.step_errors import TemplateError
from agentparty.models.templates import VersionRecord, VersionStatus
from agentparty.runtime.sealing import SealedColumn, Sealer, sealer_at, store_home
from agentparty.runtime.settings import get_settings
from agentparty.runtime.state_backend import Migration, SqliteBackend, StateBackend, as_backend

TEMPLATE_DOCS = SealedColumn("templates", "templates.sqlite", "templates", "doc", ("id",))
VERSION_DOCS = SealedColumn("templates", "templates.sqlite", "versions", "doc", ("template_id", "version"))
"""Templates and versions (system prompts, prompt templates) are sealed at rest (``runtime/sealing.py``), each bound
to its row; names, version numbers and statuses stay plain for the look-ups."""
SEALED_COLUMNS = (TEMPLATE_DOCS, VERSION_DOCS)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS templates (id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, doc TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS versions (template_id TEXT NOT NULL, version TEXT NOT NULL, status TEXT NOT NULL, "
    "doc TEXT NOT NULL, PRIMARY KEY (template_id, version))"
)
MIGRATIONS = (Migration(1, sqlite=_SCHEMA, postgresql=_SCHEMA),)


class TemplateStore(Protocol):
    def save_template(self, template: AgentTemplate) -> None: ...
    def template_by_name(self, name: str) -> AgentTemplate | None: ...
    def insert_version(self, record: VersionRecord) -> None:
        """Add a new version; an existing ``(template_id, version)`` is refused (versions are immutable)."""
        ...

    def set_version_status(
        self, template_id: str, version: str, status: VersionStatus, approved_by: str | None = None
    ) -> None: ...
    def versions(self, template_id: str) -> list[VersionRecord]: ...
    def names(self) -> list[str]: ...


class SharedTemplateStore:
    """Templates and versions in the state backend: every process (and, on PostgreSQL, every host) sees one list."""

    STORE = "templates"
    """The store's name: ``state/templates.sqlite`` on SQLite, its schema version's key on PostgreSQL."""

    def __init__(self, where: StateBackend | Path, sealer: Sealer | None = None) -> None:
        self.backend = as_backend(where)
        sqlite_file = self.backend.path(self.STORE) if isinstance(self.backend, SqliteBackend) else None
        self.path = sqlite_file
        """The SQLite file, when the store is one; None on PostgreSQL."""
        self.sealer = sealer or sealer_at(store_home(sqlite_file) if sqlite_file else get_settings().home)
        self.backend.migrate(self.STORE, MIGRATIONS)

    def save_template(self, template: AgentTemplate) -> None:
        with self.backend.transaction(self.STORE, write=True) as db:
            db.execute(
                "INSERT INTO templates VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc",
                (template.id, template.name, TEMPLATE_DOCS.seal(self.sealer, template.model_dump_json(), template.id)),
            )

    def template_by_name(self, name: str) -> AgentTemplate | None:
        with self.backend.transaction(self.STORE) as db:
            row = db.execute("SELECT id, doc FROM templates WHERE name = ?", (name,)).fetchone()
        return AgentTemplate.model_validate_json(TEMPLATE_DOCS.open(self.sealer, row[1], row[0])) if row else None

    def insert_version(self, record: VersionRecord) -> None:
        v = record.version
        with self.backend.transaction(self.STORE, write=True) as db:
            inserted = db.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?) ON CONFLICT(template_id, version) DO NOTHING",
                (v.template_id, v.version, record.status, self._sealed(record)),
            ).rowcount
        if not inserted:
            raise TemplateError(
                f"version {v.version} of template {v.template_id} exists and cannot change; create a new version"
            )

    def set_version_status(
        self, template_id: str, version: str, status: VersionStatus, approved_by: str | None = None
    ) -> None:
        with self.backend.transaction(self.STORE, write=True) as db:
            row = db.execute(  # locked on PostgreSQL: two status changes of one version never interleave
                "SELECT doc FROM versions WHERE template_id = ? AND version = ?" + self.backend.for_update,
                (template_id, version),
            ).fetchone()
            if row is None:
                raise TemplateError(f"template {template_id} has no version {version}")
            record = VersionRecord.model_validate_json(VERSION_DOCS.open(self.sealer, row[0], template_id, version))
            record.status = status
            record.approved_by = approved_by or record.approved_by
            record.version = record.version.model_copy(update={"is_deprecated": status == "deprecated"})
            db.execute(
                "UPDATE versions SET status = ?, doc = ? WHERE template_id = ? AND version = ?",
                (status, self._sealed(record), template_id, version),
            )

    def names(self) -> list[str]:
        with self.backend.transaction(self.STORE) as db:
            return [r[0] for r in db.execute("SELECT name FROM templates ORDER BY name").fetchall()]

    def versions(self, template_id: str) -> list[VersionRecord]:
        with self.backend.transaction(self.STORE) as db:
            rows = db.execute("SELECT version, doc FROM versions WHERE template_id = ?", (template_id,)).fetchall()
        records = (
            VersionRecord.model_validate_json(VERSION_DOCS.open(self.sealer, doc, template_id, version))
            for version, doc in rows
        )
        return sorted(records, key=lambda r: Version(r.version.version))

    def _sealed(self, record: VersionRecord) -> str:
        return VERSION_DOCS.seal(
            self.sealer, record.model_dump_json(), record.version.template_id, record.version.version
        )


class SqliteTemplateStore(SharedTemplateStore):
    """The store on one SQLite file of its own (one machine)."""

    def __init__(self, path: Path, sealer: Sealer | None = None) -> None:
        super().__init__(SqliteBackend.of_file(path), sealer)
        self.path = path
