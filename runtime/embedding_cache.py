"""Text embeddings by (embedder, SHA-256 of the text), in one SQLite file shared by every process of a home.

Encoding is the slow part of building GNN features (``gnn/embeddings.py``): a
vector computed once is found here by every later training run and process.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class EmbeddingCache:
    """Vectors by (embedder, SHA-256 of the text), in one SQLite file shared by every process of a home."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        with self._connection() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (embedder TEXT, digest TEXT, vector BLOB, PRIMARY KEY (embedder, digest))"
            )

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
        return db

    def get(self, embedder: str, digests: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        db = self._connection()
        for start in range(0, len(digests), 500):
            chunk = list(digests[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for digest, blob in db.execute(
                f"SELECT digest, vector FROM vectors WHERE embedder = ? AND digest IN ({marks})", [embedder, *chunk]
            ):
                found[digest] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, embedder: str, vectors: dict[str, np.ndarray]) -> None:
        with self._connection() as db:
            db.executemany(
                "INSERT OR IGNORE INTO vectors VALUES (?, ?, ?)",
                [(embedder, digest, np.asarray(v, dtype=np.float32).tobytes()) for digest, v in vectors.items()],
            )
