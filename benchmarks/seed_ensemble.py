"""What averaging trained runs would give: each run alone and every combination of them, on the
runs' own validation and test splits (full ranking, seen items excluded).

The runs must share one dataset (the same data and split; checked by the data hash) and give
next-item logits. A combination scores an item by the mean of the members' log-softmax over the
catalogue. For one user that ranks items exactly as the mean of the raw logits does (log-softmax only
subtracts a per-user constant), so a combination of dot-product models is itself a dot-product model
(the members' user and item vectors side by side) and would be served through the same generation
path. It costs the members' training and scoring time added up.

    python benchmarks/seed_ensemble.py runs/ml1m-hstu-s0 runs/ml1m-hstu-s1 runs/ml1m-hstu-s2

Prints a table and writes benchmarks/results/seed_ensemble.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import torch

from genrec.data.dataset import Histories
from genrec.evaluation import evaluate
from genrec.models.base import Recommender
from genrec.training.runs import Run, load_run

RESULTS = Path(__file__).resolve().parent / "results" / "seed_ensemble.json"


def mean_log_softmax(models: list[Recommender]) -> Callable[[Histories], torch.Tensor]:
    """score_fn of the combination: (B, n_items + 1) mean log-softmax over the real items."""

    def score(h: Histories) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(m.score(h)[:, 1:].float(), -1) for m in models]).mean(0)
        return torch.cat([torch.full((len(logp), 1), -torch.inf), logp], 1)  # column 0: padding

    return score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (genrec train --out) on one dataset")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if len(a.runs) < 2:
        ap.error("give two or more runs")
    torch.set_num_threads(a.threads)
    runs: list[Run] = [load_run(p) for p in a.runs]
    hashes = {r.data_hash for r in runs}
    if len(hashes) != 1:
        raise SystemExit(f"the runs were trained on different data (hashes {sorted(map(str, hashes))})")
    for r in runs:
        if not r.model.next_item_logits:
            raise SystemExit(f"{r.path}: {r.model.name} does not give next-item logits; nothing to average")
    ds = runs[0].dataset
    rows = []
    for size in range(1, len(runs) + 1):
        for group in itertools.combinations(runs, size):
            fn = group[0].model.score if size == 1 else mean_log_softmax([r.model for r in group])
            row = {"runs": [r.path.name for r in group]}
            for split in ("valid", "test"):
                m = evaluate(fn, getattr(ds, split), ks=(10,))
                row[f"{split}_ndcg@10"], row[f"{split}_hr@10"] = m["ndcg@10"], m["hr@10"]
            rows.append(row)
            print(
                f"{' + '.join(row['runs']):<60} valid NDCG@10 {row['valid_ndcg@10']:.4f}  "
                f"test NDCG@10 {row['test_ndcg@10']:.4f}  test HR@10 {row['test_hr@10']:.4f}",
                flush=True,
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"dataset": ds.name, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
