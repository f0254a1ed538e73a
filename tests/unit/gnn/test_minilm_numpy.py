"""The NumPy all-MiniLM-L6-v2 (``gnn/minilm_numpy.py``) gives the vectors sentence-transformers gives: one
embedding cache serves both. No server."""

from __future__ import annotations

import numpy as np

from agentparty.gnn.embeddings import MINILM, CachedEmbedder, MiniLMEmbedder
from agentparty.gnn.minilm_numpy import NumpyMiniLMEmbedder

TEXTS = [
    "Translate the user manual from French into English.",
    "research: Find, read and cite sources on a topic",
    "Héllo wörld — ünïcode ✓",
    "",
    "word " * 400,  # past the 256-token limit: truncated the same way
    *(f"task {i}: {'long ' * i}report" for i in range(40)),  # more than one batch, of mixed lengths
]


def test_numpy_minilm_matches_sentence_transformers(embedder: CachedEmbedder) -> None:
    assert isinstance(embedder.embedder, MiniLMEmbedder)
    light = NumpyMiniLMEmbedder()
    assert light.name == MINILM == embedder.name  # same name: the same cache rows
    ours, theirs = light.embed(TEXTS), embedder.embedder.embed(TEXTS)
    assert ours.shape == theirs.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    assert float(np.abs(ours - theirs).max()) < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
