"""Before/after check of a change, side by side in one run: the same jobs on two source trees of genrec
(e.g. a checkout of an older commit and this one), alternating, one torch thread each.

Jobs (leave-one-out, full ranking, history excluded):
- foundation: Pop and EASE (lambda searched on validation) on ml-1m-u2999 and amazon-beauty: test
  NDCG@10 / HR@10 and fit seconds;
- sequential: SASRec and HSTU (small, max_len 200) on the same two datasets for a fixed number of
  epochs: seconds per epoch and validation / test NDCG@10 after those epochs (equal epochs, so the
  accuracy columns compare the training loops, not their budgets);
- serving: each tree's own benchmarks/serve_load.py (EASE, SASRec, HSTU; GET /recommend at
  concurrency 1 and 32), the trees taking turns (--serve-rounds), each row keeping its best req/s and
  its lowest server CPU time per request (the steadier figure when the machine is not idle).

    python benchmarks/regression.py --before ../genrec-old --epochs 3
    python benchmarks/regression.py --before ../genrec-old --only foundation,sequential
    python benchmarks/regression.py --before ../genrec-old --only serving   # keeps the other rows
    python benchmarks/regression.py --before ../old --only sequential --models hstu --datasets amazon-beauty

Prints a table with after/before ratios and writes benchmarks/results/regression.json (or --out).
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
AFTER = HERE.parent
ROOT = Path(os.environ.get("GENREC_DATA_DIR", AFTER.parent / "shared" / "datasets"))
RESULTS = HERE / "results" / "regression.json"
DATASETS = ("ml-1m-u2999", "amazon-beauty")

# runs inside the tree under test (PYTHONPATH=TREE/src); adapts to either training API
JOB = r"""
import json, sys, time, torch
from genrec.data.sources import SourceSpec, load_dataset
try:
    from genrec.data.types import DataConfig
except ImportError:
    from genrec.data.preprocess import DataConfig
from genrec.evaluation import evaluate
from genrec.models import get_model_class
try:
    from genrec.training import TrainConfig, fit
except ImportError:
    fit = None
job = json.loads(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(1)
ds = load_dataset(SourceSpec(data=job["data"]), DataConfig())
cls = get_model_class(job["model"])
settings = dict(job["settings"])
t = time.time()
if fit is None:
    if job["model"] in ("sasrec", "hstu"):
        settings["threads"] = 1
    model = cls(cls.config_cls(**settings)).fit(ds)
    curve = [v for _, v in model.fit_info_.get("valid_ndcg10", [])]
else:
    model = fit(cls(cls.config_cls(**settings)), ds, TrainConfig(threads=1), progress=False)
    curve = [r["valid_ndcg@10"] for p in model.fit_info_.get("phases", []) for r in p["curve"]
             if "valid_ndcg@10" in r]
fit_s = time.time() - t
t = time.time()
m = evaluate(model.score, ds.test, ks=(10,))
print("RESULT " + json.dumps({"ndcg@10": m["ndcg@10"], "hr@10": m["hr@10"], "fit_s": fit_s,
      "eval_s": time.time() - t, "seconds_per_epoch": model.fit_info_.get("seconds_per_epoch"),
      "valid_curve": curve}))
"""


def data_path(name: str) -> str:
    return str(ROOT / name)


def run_job(tree: Path, job: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", JOB, json.dumps(job)], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: {job} failed:\n{out.stderr[-2000:]}")
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])


def jobs(only: set[str], epochs: int, datasets: list[str], models: set[str]) -> list[dict]:
    out = []
    for ds in datasets:
        if "foundation" in only:
            out += [
                {"kind": "foundation", "dataset": ds, "model": m, "data": data_path(ds), "settings": {}}
                for m in ("pop", "ease")
                if m in models
            ]
        if "sequential" in only:
            # patience above the epoch count: both trees train exactly `epochs` epochs
            s = {"max_len": 200, "epochs": epochs, "patience": epochs + 1}
            out += [
                {"kind": "sequential", "dataset": ds, "model": m, "data": data_path(ds), "settings": s}
                for m in ("sasrec", "hstu")
                if m in models
            ]
    return out


def serve_load(tree: Path, runs: Path, seconds: float, models: str) -> dict[str, tuple[float, float]]:
    """{row: (req/s, server CPU ms per request)} of one serve_load.py run of `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    cmd = [
        sys.executable,
        str(tree / "benchmarks" / "serve_load.py"),
        "--runs",
        str(runs),
        "--seconds",
        str(seconds),
        "--data",
        data_path("ml-1m-u2999"),
        "--models",
        models,
    ]
    out = tree / "benchmarks" / "results" / "serve_load.json"
    kept = out.read_bytes() if out.exists() else None  # the tree's own published result stays as it was
    try:
        subprocess.run(cmd, env=env, check=True)
        res = json.loads(out.read_text())
    finally:
        if kept is not None:
            out.write_bytes(kept)
    return {
        f"{r['model']} {r['mode']} c={r['concurrency']}": (r["req_per_s"], r["server_cpu_ms_per_request"])
        for r in res["rows"]
    }


def commit_of(tree: Path) -> str:
    """The tree's git commit (with '+changes' when its files differ from it): what the JSON records."""
    run = lambda *c: subprocess.run(["git", "-C", str(tree), *c], capture_output=True, text=True).stdout  # noqa: E731
    head = run("rev-parse", "--short", "HEAD").strip() or "unknown"
    return head + ("+changes" if run("status", "--porcelain", "--untracked-files=no").strip() else "")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="source tree of the older genrec (a git worktree)")
    p.add_argument("--after", default=str(AFTER), help="source tree of the newer genrec (default: this one)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the sequential jobs")
    p.add_argument("--only", default="foundation,sequential,serving")
    p.add_argument("--out", default=str(RESULTS), help="result JSON (a partial run keeps its other parts)")
    p.add_argument("--datasets", default=",".join(DATASETS), help="datasets of the training rows")
    p.add_argument("--models", default="pop,ease,sasrec,hstu", help="models of the training rows")
    p.add_argument("--serve-seconds", type=float, default=8.0)
    p.add_argument("--serve-models", default="ease,sasrec,hstu")
    p.add_argument(
        "--serve-rounds", type=int, default=2, help="serving runs per tree, alternating; rows keep their best"
    )
    a = p.parse_args()
    command = "python benchmarks/regression.py " + " ".join(sys.argv[1:])
    trees = {"before": Path(a.before).resolve(), "after": Path(a.after).resolve()}
    only = set(a.only.split(","))
    rows = []
    t0 = time.time()
    for job in jobs(only, a.epochs, a.datasets.split(","), set(a.models.split(","))):
        row = {k: job[k] for k in ("kind", "dataset", "model")}
        for side, tree in trees.items():  # alternate: both sides see the same machine conditions
            row[side] = run_job(tree, job)
        rows.append(row)
        b, f = row["before"], row["after"]
        speed = "seconds_per_epoch" if job["kind"] == "sequential" else "fit_s"
        print(
            f"{row['kind']:<11}{row['dataset']:<15}{row['model']:<7} NDCG@10 {b['ndcg@10']:.4f} -> "
            f"{f['ndcg@10']:.4f}  {speed} {b[speed]:.2f} -> {f[speed]:.2f} (x{f[speed] / b[speed]:.3f})",
            flush=True,
        )
    # req/s depends on whatever else the machine runs; the server's CPU time per request much less so
    serving: dict[str, dict[str, float]] = {}
    serving_cpu: dict[str, dict[str, float]] = {}
    if "serving" in only:
        for _ in range(a.serve_rounds):  # alternate: a slow minute on the machine hits both trees
            for side, tree in trees.items():
                runs = Path(tempfile.gettempdir()) / f"genrec-regression-runs-{side}"
                best, cpu = serving.setdefault(side, {}), serving_cpu.setdefault(side, {})
                for key, (rps, ms) in serve_load(tree, runs, a.serve_seconds, a.serve_models).items():
                    best[key] = max(best.get(key, 0.0), rps)
                    cpu[key] = min(cpu.get(key, float("inf")), ms)
        for key in serving["after"]:
            if key in serving["before"]:
                b, f = serving["before"][key], serving["after"][key]
                cb, cf = serving_cpu["before"][key], serving_cpu["after"][key]
                print(
                    f"serving    {key:<28} {b:8.1f} -> {f:8.1f} req/s (x{f / b:.3f})   "
                    f"server CPU {cb:.3f} -> {cf:.3f} ms/req (x{cf / cb:.3f})"
                )
    # a partial run (--only) replaces its own parts of an earlier result and keeps the rest
    out = Path(a.out)
    old = json.loads(out.read_text()) if out.exists() else {}
    fresh = {(r["kind"], r["dataset"], r["model"]) for r in rows}
    rows = [r for r in old.get("rows", []) if (r["kind"], r["dataset"], r["model"]) not in fresh] + rows
    for new, part in ((serving, "serving"), (serving_cpu, "serving_cpu_ms")):
        for side, rows_ in old.get(part, {}).items():  # rows of models this run did not serve stay
            for key, v in rows_.items():
                new.setdefault(side, {}).setdefault(key, v)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "trees": {k: commit_of(v) for k, v in trees.items()},
                "epochs": a.epochs,
                "rows": rows,
                "serving": serving,
                "serving_cpu_ms": serving_cpu,
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                "wall_seconds": time.time() - t0,
                "date": time.strftime("%Y-%m-%d"),
                "commands": [*old.get("commands", []), command],
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
