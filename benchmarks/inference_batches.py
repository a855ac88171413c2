"""Scoring users with the sequence models: fixed-size batches against length-sorted token batches.

`SequentialRecommender.user_embeddings` sorts users by history length and packs each forward pass up to
`score_tokens` tokens (rows x longest history). The baseline is what it replaced: 256 users per pass in
the given order, left-padded to the longest history of the pass. Both run in this process on the same
untrained network (speed does not depend on the weights) over every validation user, one thread by
default, and must give the same user vectors.

    python benchmarks/inference_batches.py                       # ml-1m-u2999 and amazon-beauty
    python benchmarks/inference_batches.py --sizes small,base --models hstu --threads 2

Prints one table and writes benchmarks/results/inference_batches.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from genrec.data.sources import SourceSpec, load_dataset
from genrec.data.types import DataConfig
from genrec.models import get_model_class
from genrec.models.sequential import left_padded

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent / "shared" / "datasets"
RESULTS = HERE / "results" / "inference_batches.json"


@torch.no_grad()
def fixed_rows(model, histories, rows: int = 256) -> torch.Tensor:
    """The baseline: `rows` users per forward pass, in the order given."""
    net, out = model.net, []
    net.eval()
    for s in range(0, len(histories), rows):
        chunk = histories.take(slice(s, s + rows))
        items, ts = left_padded(chunk, model.config.max_len)
        hidden, _ = net(items, ts, left_pad=True, **model._side_input(chunk, items.shape[1]))
        out.append(hidden[:, -1].float())
    return torch.cat(out)


def best_of(fn, args: tuple, repeats: int) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="ml-1m-u2999,amazon-beauty", help="datasets (names or paths)")
    ap.add_argument("--models", default="sasrec,hstu")
    ap.add_argument("--sizes", default="small,base")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="best of N timings")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for dataset in args.data.split(","):
        path = Path(dataset) if Path(dataset).exists() else ROOT / dataset
        ds = load_dataset(SourceSpec(data=str(path)), DataConfig())
        users = ds.valid.history
        for name in args.models.split(","):
            for size in args.sizes.split(","):
                torch.manual_seed(0)
                cls = get_model_class(name)
                model = cls(cls.config_cls(size=size))
                model.setup_phase(model.prepare_training(ds)[0], ds, torch.device("cpu"))
                t_fixed, ref = best_of(fixed_rows, (model, users), args.repeats)
                t_sorted, out = best_of(model.user_embeddings, (users,), args.repeats)
                row = {
                    "dataset": path.name,
                    "model": name,
                    "size": size,
                    "users": len(users),
                    "mean_history": float(np.minimum(users.lengths, model.config.max_len).mean()),
                    "fixed_256_rows_s": t_fixed,
                    "length_sorted_s": t_sorted,
                    "speedup": t_fixed / t_sorted,
                    "max_abs_diff": float((out - ref).abs().max()),
                }
                rows.append(row)
                print(
                    f"{row['dataset']:<16} {name:<7} {size:<6} {len(users):>6} users  "
                    f"fixed {t_fixed:7.2f}s  sorted {t_sorted:6.2f}s  x{row['speedup']:.1f}  "
                    f"max diff {row['max_abs_diff']:.1e}",
                    flush=True,
                )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python benchmarks/inference_batches.py",
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
