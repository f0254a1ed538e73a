"""GNN team recommender: every method on the hidden truth at two sizes, training cost, scoring latency.

    python bench/gnn.py [--json] [--quick] [--large-only] [--ncn-only] [--epochs N] [--config JSON]

One fresh subprocess per size and model type (GraphSAGE, NCN), so peak RSS does not
leak between them: ``generate`` a synthetic history (the seed default
``SyntheticDataConfig()``: 50 agents, 20 capabilities, 100 tasks, 30 teams; and a large
one: 10,000 agents, 500 capabilities, 100,000 tasks, 30,000 teams), then
``train_candidate`` as the training flow runs it, with the truth: early stopping on
(at most ``--epochs``, default 100 and 25; patience 10 and 5), three validation folds at
the seed size and one at the large size (each fold is one more training), ``--config``
fields over those. The seed size uses the production embedder (MiniLM behind its
cache); the large one the hashing stand-in (encoding 100,000 task texts with MiniLM
would take many minutes and is not what is measured). Reported per child: nodes and
edges of the training graph, generation and train+evaluate seconds, epochs (and the
best one), mean seconds per epoch, peak RSS (``ru_maxrss``), torch threads, the method
promotion would serve, and the evaluation table (the NCN child's table has every
baseline and the declared ensemble; the GraphSAGE child its own row).

Latency after training, from cached node embeddings: scoring 1,000 candidate agents
for one task (``GNNScorer.suitability``: the pairs' link features, the NCN's
common-neighbour paths, the head; agent rows repeat on the 50-agent graph), 200 calls
after 10 warm-ups at the seed size and 1,000 at the large size (target: median <= 5 ms,
and p99 < 10 ms on the large graph), against 1 candidate; and one whole team
recommendation (``assemble``, size 4, no budget). MiniLM's throughput is a separate row.
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
from agentparty.gnn.evaluate import MethodMetrics, table
from agentparty.gnn.pipeline import train_candidate
from agentparty.gnn.recommend import assemble
from agentparty.gnn.synthetic import generate
from agentparty.gnn.train import GNNScorer, PreparedData
from agentparty.models.config import GNNTrainingConfig, SyntheticDataConfig

SIZES = {
    "seed default": SyntheticDataConfig(),
    "large": SyntheticDataConfig(num_agents=10_000, num_capabilities=500, num_tasks=100_000, num_teams=30_000),
}
EPOCHS = {"seed default": 100, "large": 25}
MODELS = ("GraphSAGE", "NCN")
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


def scoring(data: PreparedData, scorer: GNNScorer, label: str, repeat: int = 200) -> list[dict[str, Any]]:
    test = data.graphs["test"]
    n_agents = len(test.tables.agent_ids)
    task_row = test.index[TASK][data.split.test_tasks[0]]
    agents, tasks = np.arange(1000) % n_agents, np.full(1000, 0)
    one = timings(lambda: scorer.suitability(agents[:1], tasks[:1]))
    many = timings(lambda: scorer.suitability(agents, tasks), repeat=repeat)
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


def child(size: str, epochs: int, model_type: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """One size and model, in this (fresh) process: build, train (early stopping, at most ``epochs``), measure,
    and evaluate on the hidden truth; the NCN child also evaluates the baselines and the declared ensemble."""
    large = size == "large"
    settings: dict[str, Any] = {
        "model_type": model_type,
        "num_epochs": epochs,
        "early_stopping_patience": 5 if large else 10,
        "validation_folds": 1 if large else 3,
    }
    config = GNNTrainingConfig.model_validate({**settings, **(overrides or {})})
    with tempfile.TemporaryDirectory(prefix="agentparty-gnn-bench-") as home:
        embedder = CachedEmbedder(HashingEmbedder(), None) if large else default_embedder(Path(home))
        started = time.perf_counter()
        history = generate(SIZES[size])
        snapshot = GraphSnapshot.from_batch(history.batch)
        generated = time.perf_counter()
        rss_generated = peak_rss_mib()
        threads: set[int] = set()
        candidate = train_candidate(
            snapshot, config, embedder, history.truth, on_epoch=lambda _: threads.add(torch.get_num_threads())
        )
        done = time.perf_counter()
    data, run = candidate.data, candidate.run
    graph = data.graphs["train"].data
    rows = candidate.rows if model_type == "NCN" else [candidate.metrics]
    result = {
        "size": size,
        "model_type": model_type,
        "config": SIZES[size].model_dump(include={"num_agents", "num_capabilities", "num_tasks", "num_teams"}),
        "embedder": embedder.name,
        "nodes": sum(s.num_nodes for s in graph.node_stores),
        "edges": graph.num_edges,
        "generate_s": generated - started,
        "candidate_s": done - generated,
        "epochs": len(run.curves),
        "best_epoch": run.best_epoch,
        "seconds_per_epoch": run.seconds_per_epoch,
        "peak_rss_before_train_mib": rss_generated,
        "peak_rss_mib": peak_rss_mib(),
        "torch_threads": max(threads) if threads else torch.get_num_threads(),
        "device": run.device,
        "served": candidate.selection.winner if candidate.selection else None,
        "evaluation": [r.as_dict() for r in rows],
    }
    scorer = GNNScorer.on(run.model, data.graphs["test"], data.history("test"), data.scaler)
    result["latency"] = scoring(data, scorer, f"{size}, {model_type}", repeat=1000 if large else 200)
    return result


def run_child(size: str, epochs: int, model_type: str, overrides: str = "{}") -> dict[str, Any]:
    started = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            size,
            "--epochs",
            str(epochs),
            "--model",
            model_type,
            "--config",
            overrides,
        ],
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
    parser.add_argument("--epochs", type=int, default=None, help=f"most epochs per size (default: {EPOCHS})")
    parser.add_argument("--child", choices=sorted(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, default="NCN", help=argparse.SUPPRESS)
    parser.add_argument(
        "--config",
        default="{}",
        help='GNNTrainingConfig fields over the defaults, as JSON (e.g. \'{"ncn": {"fit_prior": true}}\')',
    )
    parser.add_argument("--large-only", action="store_true", help="skip the seed default size")
    parser.add_argument("--ncn-only", action="store_true", help="skip GraphSAGE")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs or EPOCHS[args.child], args.model, json.loads(args.config))))
        return

    sizes = [
        run_child(size, args.epochs or EPOCHS[size], model, args.config)
        for size in SIZES
        if not (args.quick and size == "large") and not (args.large_only and size != "large")
        for model in MODELS
        if not (args.ncn_only and model != "NCN")
    ]
    with tempfile.TemporaryDirectory(prefix="agentparty-gnn-bench-") as home:
        embedder = default_embedder(Path(home))  # what production uses: MiniLM behind the embedding cache
        assert isinstance(embedder.embedder, MiniLMEmbedder)
        rows = [row for s in sizes for row in s.pop("latency")] + [minilm_throughput(embedder.embedder)]
    if args.json:
        print(json.dumps({"note": NOTE, "sizes": sizes, "latency": rows}, indent=2))
        return
    print(f"Training ({NOTE}); seed default size with MiniLM features, large with the hashing stand-in")
    print(
        f"{'size':<13} {'model':<9} {'nodes':>8} {'edges':>9} {'gen s':>7} {'train+eval s':>12} {'epochs':>6}"
        f" {'best':>4} {'s/epoch':>8} {'peak MiB':>9} {'threads':>7}"
    )
    for s in sizes:
        print(
            f"{s['size']:<13} {s['model_type']:<9} {s['nodes']:>8,} {s['edges']:>9,} {s['generate_s']:>7.1f} "
            f"{s['candidate_s']:>12.1f} {s['epochs']:>6} {s['best_epoch']:>4} {s['seconds_per_epoch']:>8.3f} "
            f"{s['peak_rss_mib']:>9.0f} {s['torch_threads']:>7}"
        )
    print(f"\n{'benchmark':<52} {'median ms':>10} {'p99 ms':>8} {'per s':>7} {'threads':>7} {'ratio':>6}  target")
    for r in rows:
        p99 = f"{r['p99_ms']:.3f}" if r["p99_ms"] is not None else ""
        per_s = f"{r['per_s']:.0f}" if r["per_s"] else ""
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else ""
        print(
            f"{r['benchmark']:<52} {r['median_ms']:>10.3f} {p99:>8} {per_s:>7} {r['threads']:>7} {ratio:>6}  {r['target']}"
        )
    for size in SIZES:
        evaluated = [row for s in sizes if s["size"] == size for row in s["evaluation"]]
        if not evaluated:
            continue
        served = next(s["served"] for s in sizes if s["size"] == size and s["model_type"] == "NCN")
        print(f"\nEvaluation on the hidden truth, {size} (served by promotion: {served})")
        print(table([MethodMetrics.from_dict(row) for row in evaluated]))


if __name__ == "__main__":
    main()
