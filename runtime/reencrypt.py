"""``agentparty keys rotate`` and ``agentparty keys reencrypt``: a new data key, and every record moved to it.

Re-encryption walks every sealed column each store declares (``SEALED_COLUMNS``)
and every persisted Prefect result under ``<home>/results``, and rewrites the
records that the home's sealer would not write as they are: sealed with an
older key, or plaintext from before encryption was on (or, with ``atRest``
off, sealed ones back to plaintext). Each state file is rewritten in one
immediate transaction (``runtime/state_db.py``), so running stores queue behind
it and never see half of it; a record that cannot be opened stops it with the
error naming the store and the record, and that file's changes roll back.

Where the engine's state is on PostgreSQL, the sealed columns of the stores kept
there (:data:`SHARED_COLUMNS`) are rewritten in the shared schema as well, each
in one transaction that locks the rows it reads (``SELECT … FOR UPDATE``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agentparty.runtime.agent_memory import SEALED_COLUMNS as MEMORY_COLUMNS
from agentparty.runtime.conversations import SEALED_COLUMNS as CONVERSATION_COLUMNS
from agentparty.runtime.data_keys import DEFAULT_KEY_FILE, DataKey, rotate_key_file
from agentparty.runtime.outbox import SEALED_COLUMNS as OUTBOX_COLUMNS
from agentparty.runtime.sealed_results import reseal_result_file
from agentparty.runtime.sealing import SealedColumn, Sealer
from agentparty.runtime.settings import Settings, state_backend_at
from agentparty.runtime.state_backend import SCHEMA, StateBackend
from agentparty.runtime.state_db import state_db
from agentparty.runtime.template_store import SEALED_COLUMNS as TEMPLATE_COLUMNS
from agentparty.runtime.webhook_deliveries import SEALED_COLUMNS as DELIVERY_COLUMNS

SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    *CONVERSATION_COLUMNS,
    *OUTBOX_COLUMNS,
    *DELIVERY_COLUMNS,
    *MEMORY_COLUMNS,
    *TEMPLATE_COLUMNS,
)
SHARED_COLUMNS: tuple[SealedColumn, ...] = (
    *OUTBOX_COLUMNS,
    *DELIVERY_COLUMNS,
    *TEMPLATE_COLUMNS,
    *CONVERSATION_COLUMNS,
    *MEMORY_COLUMNS,
)
"""The sealed columns of stores that live in the shared schema when the state backend is PostgreSQL."""


class RotationRefused(Exception):
    """``keys rotate`` cannot add a key here; the message says why and what to do instead."""


def rotate(settings: Settings, sealer: Sealer) -> DataKey:
    """Add a new data key to the home's key file (it seals from now on); refused where keys are not ours to add."""
    if not sealer.rotation:
        raise RotationRefused("security.encryption.keyRotation is false: this home keeps one data key")
    if settings.data_keys is not None:
        raise RotationRefused(
            "the data keys come from AGENTPARTY_DATA_KEYS: add the new key at its end (id=base64 of 32 random bytes) "
            "and restart, then run `agentparty keys reencrypt`"
        )
    path = settings.data_key_file or settings.home / DEFAULT_KEY_FILE
    sealer.ring  # noqa: B018  # the embedded default's key file is generated on first use
    key = rotate_key_file(path)
    sealer.reload()
    return key


@dataclass
class Reencrypted:
    """How many records each store had rewritten."""

    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def reencrypt(home: Path, sealer: Sealer, backend: StateBackend | None = None) -> Reencrypted:
    """Rewrite every record of the home that is not as ``sealer`` writes now (see the module docstring);
    ``backend``: the home's state backend (else as this process's settings say)."""
    report = Reencrypted()
    for column in SEALED_COLUMNS:
        path = home / "state" / column.file
        if path.exists():
            label = f"{column.store}: {column.table}.{column.column}"
            report.counts[label] = reseal_column(path, column, sealer)
    backend = backend or state_backend_at(home)
    if backend.dialect == "postgresql":
        for column in SHARED_COLUMNS:
            label = f"{column.store}: {column.table}.{column.column} (PostgreSQL)"
            report.counts[label] = reseal_shared_column(backend, column, sealer)
    results = home / "results"
    if results.is_dir():
        report.counts["results: persisted step and flow results"] = sum(
            reseal_result_file(path, sealer) for path in sorted(results.iterdir()) if path.is_file()
        )
    return report


def reseal_column(path: Path, column: SealedColumn, sealer: Sealer) -> int:
    """Rewrite one column's records in one transaction; how many changed (0 when the table does not exist yet)."""
    keys = ", ".join(column.key)
    changed = 0
    with state_db(path, write=True) as db:
        exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (column.table,))
        if exists.fetchone() is None:
            return 0
        rows = db.execute(
            f"SELECT rowid, {keys}, {column.column} FROM {column.table} WHERE {column.column} IS NOT NULL"
        ).fetchall()
        for rowid, *key, value in rows:
            if sealer.is_current(value):
                continue
            if column.binary:
                fresh: bytes | str = column.seal_bytes(sealer, column.open_bytes(sealer, value, *key), *key)
            else:
                fresh = column.seal(sealer, column.open(sealer, value, *key), *key)
            db.execute(f"UPDATE {column.table} SET {column.column} = ? WHERE rowid = ?", (fresh, rowid))
            changed += 1
    return changed


def reseal_shared_column(backend: StateBackend, column: SealedColumn, sealer: Sealer) -> int:
    """Rewrite one column's records in the PostgreSQL schema, in one transaction; how many changed."""
    keys = ", ".join(column.key)
    match = " AND ".join(f"{name} = ?" for name in column.key)
    changed = 0
    with backend.transaction(column.store, write=True) as db:
        if db.execute("SELECT to_regclass(?)", (f"{SCHEMA}.{column.table}",)).fetchone()[0] is None:
            return 0
        rows = db.execute(
            f"SELECT {keys}, {column.column} FROM {column.table} WHERE {column.column} IS NOT NULL{backend.for_update}"
        ).fetchall()
        for *key, value in rows:  # psycopg reads BYTEA as bytes, as sqlite3 reads BLOB
            if sealer.is_current(value):
                continue
            if column.binary:
                fresh: bytes | str = column.seal_bytes(sealer, column.open_bytes(sealer, value, *key), *key)
            else:
                fresh = column.seal(sealer, column.open(sealer, value, *key), *key)
            db.execute(f"UPDATE {column.table} SET {column.column} = ? WHERE {match}", (fresh, *key))
            changed += 1
    return changed
