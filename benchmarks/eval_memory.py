"""Memory of full-ranking evaluation as the catalogue grows: 100k, 1M and 10M items.

    python benchmarks/eval_memory.py                 # 100k, 1M, 10M items, 2,000 users
    python benchmarks/eval_memory.py --items 100000,1000000

Each size runs in its own process: a random 64-dim item table, one user vector per evaluated user,
scores = user @ items.T (what SASRec/HSTU serve), `genrec.evaluation.evaluate` over every item. Prints
the peak RSS of the process, the item table's own size, what evaluation added on top of it, and the
users scored per batch, and writes benchmarks/results/eval_memory.json (or --out). Evaluation keeps at
most `MAX_CELLS` scores at once, so what it adds should stay flat while the table grows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(n_items: int, n_users: int) -> dict:
    import numpy as np
    import torch

    from genrec.data.dataset import EvalSet, Histories
    from genrec.evaluation import evaluate
    from genrec.evaluation.metrics import MAX_CELLS

    torch.manual_seed(0)
    items = torch.randn(n_items + 1, 64)
    rng = np.random.default_rng(0)
    users = np.arange(1, n_users + 1)
    hist = Histories.from_lists([rng.integers(1, n_items + 1, 20) for _ in users], users=users)
    tgt = Histories.from_lists([rng.integers(1, n_items + 1, 1) for _ in users], users=users)
    vecs = torch.randn(n_users + 1, 64)
    batches = []

    def score(h: Histories) -> torch.Tensor:
        batches.append(len(h))
        return vecs[torch.from_numpy(h.users)] @ items.T

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.time()
    m = evaluate(score, EvalSet(hist, tgt), ks=(10,))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "n_items": n_items,
        "n_users": n_users,
        "seconds": time.time() - t0,
        "peak_rss_mb": peak,
        "rss_before_mb": base,
        "item_table_mb": items.numel() * 4 / 2**20,
        "added_by_evaluation_mb": peak - base,
        "users_per_batch": max(batches),
        "max_cells": MAX_CELLS,
        "ndcg@10": m["ndcg@10"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", default="100000,1000000,10000000")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--out", default=str(HERE / "results" / "eval_memory.json"))
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size here
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.users)))
        return 0
    rows = []
    for n in (int(x) for x in a.items.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n), "--users", str(a.users)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ)).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{r['n_items']:>11,} items: peak RSS {r['peak_rss_mb']:8.0f} MB, item table "
            f"{r['item_table_mb']:6.0f} MB, added by evaluation {r['added_by_evaluation_mb']:6.0f} MB, "
            f"{r['users_per_batch']:>5} users/batch, {r['seconds']:6.1f} s",
            flush=True,
        )
    res = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "rows": rows}
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
