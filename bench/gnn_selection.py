"""Does promotion serve the truth's best method? Per synthetic seed, what the selection picks against the truth.

    python bench/gnn_selection.py [--seeds 42 43 44 45 46] [--json]

For each seed: the seed-default synthetic history (``SyntheticDataConfig(random_seed=seed)``),
``train_candidate`` with the default ``GNNTrainingConfig`` (NCN, three validation folds,
the default ``ncn+adamic-adar`` ensemble) on the production embedder (MiniLM behind its
cache, in a temporary home), then every method's **truth score** (the mean of its
truth suitability AUC, recall@k and nDCG@k on the test tasks: the three figures the
recommendation goal names) beside its **selection score** (the pooled validation figure
promotion ranks by, :mod:`agentparty.gnn.selection`). A seed passes when the selection's
winner is the truth's best or within 0.01 of its truth score; the goal is at least 4 of 5.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from agentparty.gnn.data import GraphSnapshot
from agentparty.gnn.embeddings import default_embedder
from agentparty.gnn.pipeline import train_candidate
from agentparty.gnn.synthetic import generate
from agentparty.models.config import GNNTrainingConfig, SyntheticDataConfig

MARGIN = 0.01


def truth_score(row: dict[str, Any]) -> float:
    return (row["truth_suitability_auc"] + row["recall_at_k"] + row["ndcg_at_k"]) / 3


def one_seed(seed: int, home: Path) -> dict[str, Any]:
    history = generate(SyntheticDataConfig(random_seed=seed))
    candidate = train_candidate(
        GraphSnapshot.from_batch(history.batch), GNNTrainingConfig(), default_embedder(home), history.truth
    )
    assert candidate.selection is not None
    rows = {r.method: r.as_dict() for r in candidate.rows}
    truth = {name: truth_score(row) for name, row in rows.items()}
    best = max(truth, key=lambda name: truth[name])
    picked = candidate.selection.winner
    return {
        "seed": seed,
        "picked": picked,
        "truth_best": best,
        "shortfall": truth[best] - truth[picked],
        "passes": truth[best] - truth[picked] <= MARGIN,
        "truth": truth,
        "selection": {name: row["selection_score"] for name, row in rows.items()},
        "validation_tasks": rows[picked]["selection_tasks"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentparty-gnn-selection-") as home:
        results = [one_seed(seed, Path(home)) for seed in args.seeds]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    methods = list(results[0]["truth"])
    print("truth score (mean of truth suitability AUC, recall@k, nDCG@k) / selection score, per method")
    print(f"{'seed':>4}  " + "  ".join(f"{m:>22}" for m in methods) + f"  {'picked':>16}  {'truth best':>16}  pass")
    for r in results:
        cells = "  ".join(f"{r['truth'][m]:>10.3f} / {r['selection'][m]:.3f}" for m in methods)
        print(f"{r['seed']:>4}  {cells}  {r['picked']:>16}  {r['truth_best']:>16}  {'yes' if r['passes'] else 'NO'}")
    passed = sum(r["passes"] for r in results)
    print(f"\npicked the truth's best (or within {MARGIN}) in {passed} of {len(results)} seeds (goal: 4 of 5)")


if __name__ == "__main__":
    main()
