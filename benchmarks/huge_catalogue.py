"""Training with a 10M-item catalogue on a CPU: steps/s and peak RSS of sampled softmax, with the item
table's gradients sparse + row-wise AdaGrad (the default above `sampled_above` items) against dense
gradients + AdamW on every weight (`sparse_items=off`), in the same run.

A synthetic dataset is built in memory: N users x L training items drawn Zipf-like (exponent 0.8) over the
whole catalogue, the item table `dim` wide (SASRec small: 64). Each configuration runs in its own process
(its peak RSS is its own), builds the model, and times `--steps` training steps after 3 warm-up steps.
Steps/s times steps per epoch give the epoch time.

    python benchmarks/huge_catalogue.py                       # 10M items, sparse vs dense
    python benchmarks/huge_catalogue.py --items 1000000 --steps 10

Prints one table and writes benchmarks/results/huge_catalogue.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "huge_catalogue.json"


def build(n_items: int, n_users: int, length: int, seed: int = 0):
    from genrec.data.dataset import Dataset, EvalSet, Histories

    rng = np.random.default_rng(seed)
    # Zipf-like popularity over the whole catalogue, drawn by inverse CDF (no n_items-sized alias table)
    u = rng.random(n_users * (length + 2))
    items = np.minimum(n_items, 1 + (u ** (1 / 0.2) * n_items).astype(np.int64))
    seqs = items.reshape(n_users, length + 2)
    train = seqs[:, :length].reshape(-1)
    indptr = np.concatenate([[0, 0], np.arange(1, n_users + 1) * length])  # row 0 = padding user
    ts = np.tile(np.arange(length, dtype=np.int64) * 3600, n_users)
    users = np.arange(n_users + 1)
    hist = Histories(indptr, train, ts, users)
    rows = np.arange(1, n_users + 1)

    def held(col: int) -> EvalSet:
        h = hist.take(rows[:100])
        return EvalSet(h, Histories(np.arange(101), seqs[:100, col], None, rows[:100]))

    return Dataset(
        name=f"synthetic-{n_items}",
        user_raw=np.arange(n_users + 1),
        item_raw=np.arange(n_items + 1),
        train=hist,
        valid=held(length),
        test=held(length + 1),
        protocol="leave-one-out",
    )


def run_one(a: argparse.Namespace, sparse: str) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    from scaling import time_steps

    from genrec.models import get_model_class
    from genrec.training.settings import resolve

    t0 = time.time()
    ds = build(a.items, a.users, a.length)
    build_s = time.time() - t0
    sets = {"size": "small", "max_len": "50", "sparse_items": sparse, "threads": str(a.threads)}
    model_config, train_config = resolve(a.model, sets)
    model = get_model_class(a.model)(model_config)
    row = time_steps(model, ds, train_config, a.steps)
    return {
        "items": a.items,
        "model": a.model,
        "sparse_items": sparse,
        "loss": model._loss,
        "table_mb": model.net.item_emb.weight.numel() * 4 / 1e6,
        "steps_per_epoch": model._steps_per_epoch,
        "steps_per_s": 1 / row["seconds_per_step"],
        "build_seconds": build_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        **row,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=10_000_000)
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--length", type=int, default=40, help="training items per user")
    p.add_argument("--model", default="sasrec")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", default="auto,off", help="sparse_items values to compare")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        Path(a.out).write_text(json.dumps(run_one(a, a.one), default=float))
        return 0
    rows = []
    for sparse in a.configs.split(","):
        out = RESULTS.parent / f".huge-{os.getpid()}-{sparse}.json"
        cmd = [sys.executable, __file__, "--one", sparse, "--out", str(out)]
        for k in ("items", "users", "length", "model", "steps", "threads"):
            cmd += [f"--{k}", str(getattr(a, k))]
        print(f"== sparse_items={sparse}", flush=True)
        if subprocess.call(cmd) != 0:
            print(f"sparse_items={sparse} failed", file=sys.stderr)
            continue
        rows.append(json.loads(out.read_text()))
        out.unlink()
    print(f"{'items':>12}{'sparse':>8}{'table MB':>10}{'steps/s':>9}{'s/epoch':>9}{'peak RSS MB':>13}")
    for r in rows:
        print(
            f"{r['items']:>12,}{r['sparse_items']:>8}{r['table_mb']:>10.0f}{r['steps_per_s']:>9.2f}"
            f"{r['seconds_per_epoch']:>9.0f}{r['peak_rss_mb']:>13,.0f}"
        )
    if len(rows) == 2:
        print(
            f"steps/s ratio {rows[0]['sparse_items']} / {rows[1]['sparse_items']}: "
            f"x{rows[0]['steps_per_s'] / rows[1]['steps_per_s']:.1f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"rows": rows, "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}},
            indent=2,
            default=float,
        )
    )
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
