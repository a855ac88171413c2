"""Data-parallel training: 2 torchrun processes against 1, the same global batch, in one run.

    python benchmarks/distributed.py                       # SASRec small on ml-1m-u2999, 3 epochs
    python benchmarks/distributed.py --model hstu --epochs 5

One process trains with `batch_tokens=T, batch_seqs=S` and one torch thread; two processes (one thread
each, `genrec train --nproc 2`) train with `T/2, S/2` each, so every step covers the same global batch.
Prints validation / test NDCG@10, examples (target tokens) per second and seconds per epoch for both,
with the 2-process/1-process ratios, and writes benchmarks/results/distributed.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def train(data: Path, model: str, epochs: int, tokens: int, seqs: int, nproc: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "genrec", "train", "--data", str(data), "--model", model, "--out", str(out)]
    for s in (
        f"epochs={epochs}",
        "threads=1",
        f"batch_tokens={tokens}",
        f"batch_seqs={seqs}",
        "patience=100",
    ):
        cmd += ["--set", s]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    info = json.loads((out / "model" / "model.json").read_text())["fit_info"]
    metrics = json.loads((out / "metrics.json").read_text())
    curve = info["phases"][-1]["curve"]
    rel = os.path.relpath(data, HERE.parent)  # the command as run from the repository
    return {
        "command": "genrec " + " ".join(cmd[3:]).replace(str(out), "RUN").replace(str(data), rel),
        "processes": info["processes"],
        "valid_ndcg@10": metrics["valid"]["ndcg@10"],
        "test_ndcg@10": metrics["test"]["ndcg@10"],
        "examples_per_s": sum(r["examples_per_s"] for r in curve) / len(curve),
        "seconds_per_epoch": sum(r["seconds"] for r in curve) / len(curve),
        "wall_s": wall,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(HERE.parents[1] / "shared" / "datasets" / "ml-1m-u2999"))
    p.add_argument("--model", default="sasrec")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-tokens", type=int, default=2048, help="global: per process / N")
    p.add_argument("--batch-seqs", type=int, default=64, help="global: per process / N")
    p.add_argument("--out", default=str(HERE / "results" / "distributed.json"))
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="genrec-ddp-"))
    rows = {}
    for n in (1, 2):
        print(f"training {a.model} in {n} process(es) ...", flush=True)
        rows[n] = train(
            Path(a.data), a.model, a.epochs, a.batch_tokens // n, a.batch_seqs // n, n, root / f"n{n}"
        )
    one, two = rows[1], rows[2]
    print(f"\n{a.model} on {Path(a.data).name}, {a.epochs} epochs, global batch {a.batch_tokens} tokens")
    print(f"{'processes':>10} {'valid NDCG@10':>14} {'test NDCG@10':>13} {'examples/s':>11} {'s/epoch':>8}")
    for n, r in rows.items():
        print(
            f"{n:>10} {r['valid_ndcg@10']:>14.4f} {r['test_ndcg@10']:>13.4f} "
            f"{r['examples_per_s']:>11,.0f} {r['seconds_per_epoch']:>8.1f}"
        )
    ratios = {
        "valid_ndcg@10": two["valid_ndcg@10"] / one["valid_ndcg@10"],
        "examples_per_s": two["examples_per_s"] / one["examples_per_s"],
    }
    print(f"2 vs 1: valid NDCG@10 x{ratios['valid_ndcg@10']:.3f}, examples/s x{ratios['examples_per_s']:.2f}")
    result = {
        "model": a.model,
        "data": Path(a.data).name,
        "epochs": a.epochs,
        "global_batch_tokens": a.batch_tokens,
        "global_batch_seqs": a.batch_seqs,
        "hardware": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
        "date": time.strftime("%Y-%m-%d"),
        "runs": {str(n): r for n, r in rows.items()},
        "ratios_2_vs_1": ratios,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
