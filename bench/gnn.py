"""GNN team recommender: training cost at two sizes, scoring latency, encoder throughput, evaluation.

    python bench/gnn.py [--json] [--quick] [--epochs N]

Training (one fresh subprocess per size, so the peak RSS of one size does not
leak into the other): ``generate`` a synthetic history, ``GraphSnapshot.from_batch``,
``prepare`` (split, features, tensors) and ``train_model`` for a fixed number
of full-batch epochs (early stopping off; ``--epochs``, default 10 and 3 at the
large size). Reported: generate (with the snapshot) and prepare seconds,
message-graph nodes and edges (training period), mean seconds per epoch
(forward, backward and the validation forward), peak RSS (``ru_maxrss``, taken
right after training) and torch's thread count during training
(``train_model`` uses one thread below 50,000 nodes, and restores the count
after). Sizes: the seed default ``SyntheticDataConfig()``
(50 agents, 20 capabilities, 100 tasks, 30 teams) and a large one (10,000
agents, 500 capabilities, 100,000 tasks, 30,000 teams). Both use the stand-in
``HashingEmbedder`` (in a ``CachedEmbedder`` without a cache file): encoding
100,000 task texts with MiniLM would take minutes and is not what is measured;
MiniLM's own throughput is a separate row (256 distinct task texts, after one
warm-up call). Mini-batch training is not measured: optional mini-batching
(neighbour sampling) needs pyg-lib or torch-sparse, which are not installed.

Latency (seed default size, after training): scoring 1,000 candidate agents for
one task from the cached node embeddings (the pairs' link features, vectorised,
and the head; agent rows repeat: that graph has 50 agents;
``GNNScorer.suitability``, 200 calls
after 10 warm-ups; target <= 5 ms), against the same call for 1 candidate; and
one whole team recommendation (``assemble``, size 4, no budget). The large child
times the same two calls on its 10,000-agent test graph.

Evaluation: ``train_candidate`` at the seed default size with the production
embedder (MiniLM behind its cache), against the baselines, scored on the hidden
truth; ``--quick`` skips the large size.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentparty.gnn.data import TASK, GraphSnapshot, node_tables
from agentparty.gnn.embeddings import CachedEmbedder, HashingEmbedder, MiniLMEmbedder, default_embedder
from agentparty.gnn.evaluate import table
from agentparty.gnn.pipeline import train_candidate
from agentparty.gnn.recommend import assemble
from agentparty.gnn.synthetic import generate
from agentparty.gnn.train import GNNScorer, PreparedData, prepare, train_model
from agentparty.models.config import GNNTrainingConfig, SyntheticDataConfig

SIZES = {
    "seed default": SyntheticDataConfig(),
    "large": SyntheticDataConfig(num_agents=10_000, num_capabilities=500, num_tasks=100_000, num_teams=30_000),
}
EPOCHS = {"seed default": 10, "large": 3}
NOTE = "full batch only: optional mini-batching needs pyg-lib/torch-sparse, not installed"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timings(call: Callable[[], Any], repeat: int = 200, warmup: int = 10) -> list[float]:
    for _ in range(warmup):
        call()
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def latency(name: str, samples: list[float], target: str = "", baseline: float | None = None) -> dict[str, Any]:
    median, p99 = statistics.median(samples), sorted(samples)[int(len(samples) * 0.99)]
    return {
        "benchmark": name,
        "median_ms": median * 1e3,
        "p99_ms": p99 * 1e3,
        "per_s": None,
        "threads": torch.get_num_threads(),
        "ratio": median / baseline if baseline else None,
        "target": target,
    }


def scoring(data: PreparedData, scorer: GNNScorer, label: str) -> list[dict[str, Any]]:
    test = data.graphs["test"]
    n_agents = len(test.tables.agent_ids)
    task_row = test.index[TASK][data.split.test_tasks[0]]
    agents, tasks = np.arange(1000) % n_agents, np.full(1000, 0)
    one = timings(lambda: scorer.suitability(agents[:1], tasks[:1]))
    many = timings(lambda: scorer.suitability(agents, tasks))
    team = timings(
        lambda: assemble(test, task_row, scorer, size=4, token_budget=0),
        repeat=20 if n_agents > 1000 else 200,
        warmup=2,
    )
    base = statistics.median(one)
    return [
        latency(f"{label}: score 1 candidate", one),
        latency(f"{label}: score 1,000 candidates", many, "<= 5 ms", base),
        latency(f"{label}: assemble team of 4 ({n_agents:,} agents)", team),
    ]


def child(size: str, epochs: int) -> dict[str, Any]:
    """One size, in this (fresh) process: build, train, and measure; the result as a dict."""
    config = GNNTrainingConfig(num_epochs=epochs, early_stopping_patience=1000)
    embedder = CachedEmbedder(HashingEmbedder(), None)
    started = time.perf_counter()
    history = generate(SIZES[size])
    generated = time.perf_counter()
    snapshot = GraphSnapshot.from_batch(history.batch)
    snapshotted = time.perf_counter()
    data = prepare(snapshot, config, embedder)
    prepared = time.perf_counter()
    rss_prepared = peak_rss_mib()
    threads: set[int] = set()
    run = train_model(data, on_epoch=lambda _: threads.add(torch.get_num_threads()))
    trained = time.perf_counter()
    graph = data.graphs["train"].data
    result = {
        "size": size,
        "config": SIZES[size].model_dump(include={"num_agents", "num_capabilities", "num_tasks", "num_teams"}),
        "nodes": sum(s.num_nodes for s in graph.node_stores),
        "edges": graph.num_edges,
        "generate_s": generated - started,
        "snapshot_s": snapshotted - generated,
        "prepare_s": prepared - snapshotted,
        "train_s": trained - prepared,
        "epochs": len(run.curves),
        "seconds_per_epoch": run.seconds_per_epoch,
        "epoch_seconds": [e.seconds for e in run.curves],
        "peak_rss_before_train_mib": rss_prepared,
        "peak_rss_mib": peak_rss_mib(),
        "torch_threads": max(threads),
        "device": run.device,
    }
    scorer = GNNScorer.on(run.model, data.graphs["test"], data.history("test"), data.scaler)
    result["latency"] = scoring(data, scorer, size)
    return result


def run_child(size: str, epochs: int) -> dict[str, Any]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", size, "--epochs", str(epochs)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    return result


def minilm_throughput(encoder: MiniLMEmbedder) -> dict[str, Any]:
    history = generate(SyntheticDataConfig(num_tasks=1000))
    texts = list(dict.fromkeys(node_tables(GraphSnapshot.from_batch(history.batch)).task_texts))[:256]
    encoder.embed(texts[:32])  # load the model and warm up
    started = time.perf_counter()
    encoder.embed(texts)
    seconds = time.perf_counter() - started
    return {
        "benchmark": f"MiniLM encode {len(texts)} distinct task texts",
        "median_ms": seconds * 1e3,
        "p99_ms": None,
        "per_s": len(texts) / seconds,
        "threads": torch.get_num_threads(),
        "ratio": None,
        "target": "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="skip the large size")
    parser.add_argument("--epochs", type=int, default=None, help=f"full-batch epochs per size (default: {EPOCHS})")
    parser.add_argument("--child", choices=sorted(SIZES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs or EPOCHS[args.child])))
        return

    sizes = [run_child(size, args.epochs or EPOCHS[size]) for size in SIZES if not (args.quick and size == "large")]
    with tempfile.TemporaryDirectory(prefix="agentparty-gnn-bench-") as home:
        embedder = default_embedder(Path(home))  # what production uses: MiniLM behind the embedding cache
        assert isinstance(embedder.embedder, MiniLMEmbedder)
        rows = [row for s in sizes for row in s.pop("latency")] + [minilm_throughput(embedder.embedder)]
        history = generate(SIZES["seed default"])
        started = time.perf_counter()
        candidate = train_candidate(
            GraphSnapshot.from_batch(history.batch), GNNTrainingConfig(), embedder, history.truth
        )
        candidate_s = time.perf_counter() - started

    if args.json:
        print(
            json.dumps(
                {
                    "note": NOTE,
                    "sizes": sizes,
                    "latency": rows,
                    "evaluation": [r.as_dict() for r in candidate.rows],
                    "evaluation_epochs": len(candidate.run.curves),
                    "evaluation_seconds": candidate_s,
                },
                indent=2,
            )
        )
        return
    print(f"Training, hashing stand-in embedder ({NOTE})")
    print(
        f"{'size':<13} {'nodes':>8} {'edges':>9} {'gen s':>7} {'prep s':>7} {'epochs':>6} {'s/epoch':>8}"
        f" {'peak MiB':>9} {'threads':>7}"
    )
    for s in sizes:
        print(
            f"{s['size']:<13} {s['nodes']:>8,} {s['edges']:>9,} {s['generate_s'] + s['snapshot_s']:>7.2f} {s['prepare_s']:>7.2f} "
            f"{s['epochs']:>6} {s['seconds_per_epoch']:>8.3f} {s['peak_rss_mib']:>9.0f} {s['torch_threads']:>7}"
        )
    print(f"\n{'benchmark':<48} {'median ms':>10} {'p99 ms':>8} {'per s':>7} {'threads':>7} {'ratio':>6}  target")
    for r in rows:
        p99 = f"{r['p99_ms']:.3f}" if r["p99_ms"] is not None else ""
        per_s = f"{r['per_s']:.0f}" if r["per_s"] else ""
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else ""
        print(
            f"{r['benchmark']:<48} {r['median_ms']:>10.3f} {p99:>8} {per_s:>7} {r['threads']:>7} {ratio:>6}  {r['target']}"
        )
    print(f"\nEvaluation, seed default size, MiniLM features ({len(candidate.run.curves)} epochs, {candidate_s:.1f} s)")
    print(table(candidate.rows))


if __name__ == "__main__":
    main()
