"""Approximate retrieval (HNSW over item vectors, exact re-scoring) against the exact top-10: recall@10
and time per user, on a synthetic catalogue of clustered 64-dim item vectors.

Items: 1,000 cluster centres (Gaussian), each item = its centre + noise, cluster sizes Zipf-like; users:
a mix of two centres + noise. The exact lists come from `top_k_slates` over the whole catalogue (users
batched under the max_cells bound); the approximate ones from `ann_top_k_slates` with `--candidates`
per user, for each efSearch in `--ef`. One process, `--threads` torch/faiss threads.

    python benchmarks/ann_recall.py                      # 1M items, 1,000 users
    python benchmarks/ann_recall.py --items 100000 --ef 16,64

Prints one table and writes benchmarks/results/ann_recall.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ann_recall.json"


class Vectors:
    """The part of DotProductScores that retrieval reads, over fixed vectors (users by history row)."""

    def __init__(self, items: torch.Tensor, users: torch.Tensor) -> None:
        self.items, self.users, self.n_items_ = items, users, len(items) - 1

    def item_embeddings(self) -> torch.Tensor:
        return self.items

    def user_embeddings(self, h) -> torch.Tensor:
        return self.users[torch.from_numpy(h.users)]

    def score(self, h) -> torch.Tensor:
        s = self.user_embeddings(h) @ self.items.T
        s[:, 0] = -torch.inf
        return s


def catalogue(n_items: int, n_users: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    sizes = 1.0 / np.arange(1, 1001) ** 0.7
    cluster = rng.choice(1000, n_items, p=sizes / sizes.sum())
    items = centres[cluster] + 0.7 * rng.standard_normal((n_items, dim)).astype(np.float32)
    two = rng.choice(1000, (n_users, 2))
    users = centres[two].mean(1) + 0.5 * rng.standard_normal((n_users, dim)).astype(np.float32)
    items = np.vstack([np.zeros((1, dim), np.float32), items])  # row 0: padding
    return torch.from_numpy(items), torch.from_numpy(users)


def main() -> int:
    from genrec.data.dataset import Histories
    from genrec.generation.ann import ItemIndex, ann_top_k_slates, recall_at_k
    from genrec.generation.search import top_k_slates

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--ef", default="100,200,400", help="efSearch values (at least --candidates)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    import faiss

    torch.set_num_threads(a.threads)
    faiss.omp_set_num_threads(a.threads)
    items, users = catalogue(a.items, a.users, a.dim)
    model = Vectors(items, users)
    h = Histories(np.zeros(a.users + 1, np.int64), np.zeros(0, np.int64), None, np.arange(a.users))
    t0 = time.time()
    exact = top_k_slates(model, h, 10)
    exact_s = time.time() - t0
    index = ItemIndex.build(items)
    print(
        f"{a.items:,} items x {a.dim} dims; HNSW build {index.build_seconds:.1f} s; exact top-10 "
        f"{exact_s / a.users * 1e3:.2f} ms/user",
        flush=True,
    )
    rows = []
    for ef in map(int, a.ef.split(",")):
        index.set_ef_search(ef)
        t0 = time.time()
        approx = ann_top_k_slates(model, h, 10, index, candidates=a.candidates)
        s = time.time() - t0
        rows.append(
            {"ef_search": ef, "recall@10": recall_at_k(approx, exact), "ms_per_user": s / a.users * 1e3}
        )
    print(f"{'efSearch':>9}{'recall@10':>11}{'ms/user':>9}{'speed-up':>10}")
    for r in rows:
        r["speedup"] = exact_s / a.users * 1e3 / r["ms_per_user"]
        print(f"{r['ef_search']:>9}{r['recall@10']:>11.4f}{r['ms_per_user']:>9.3f}{r['speedup']:>9.1f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "items": a.items,
                "users": a.users,
                "dim": a.dim,
                "candidates": a.candidates,
                "threads": a.threads,
                "build_seconds": index.build_seconds,
                "exact_ms_per_user": exact_s / a.users * 1e3,
                "rows": rows,
                "command": "python benchmarks/ann_recall.py " + " ".join(sys.argv[1:]),
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
