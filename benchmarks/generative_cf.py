"""Generative collaborative filtering: Mult-VAE, Mult-DAE, CFGAN against EASE and Pop.

Two protocols per dataset:
  users  strong generalization (Liang et al. 2018): held-out users, 80% of each held-out user's
         items folded in, the other 20% ranked; Recall@20, Recall@50, NDCG@100. MovieLens is
         binarised at rating >= 4 and users need >= 5 such ratings, as in the paper.
  loo    leave-one-out (the table every genrec model shares): every rating an interaction,
         NDCG@10 / HR@10 on the last item, history excluded, full ranking.

Every (dataset, protocol, model) fit runs in its own subprocess so its peak RSS is its own.
A memory check trains Mult-VAE on the largest dataset at two batch sizes (subprocesses) and
reports their peak RSS next to the size a dense users x items float32 matrix would have.

    python benchmarks/generative_cf.py                       # everything (long on 2 cores)
    python benchmarks/generative_cf.py --datasets ml-100k --protocols users --models multvae,pop
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
DATA = Path(os.environ.get("GENREC_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
DATASETS = ["ml-1m-u2999", "ml-latest-small", "ml-100k", "amazon-beauty", "ml-20m"]
MODELS = ["pop", "ease", "multvae", "multdae", "cfgan"]
MOVIELENS = {"ml-1m-u2999", "ml-latest-small", "ml-100k", "ml-20m"}
LARGE = {"ml-20m"}  # epoch budgets cut to fit 2 cores; see docs/benchmarks.md
# CFGAN per dataset: (epochs, patience in validation evaluations, epochs between validations); others
# (ML-20M): (5, 20, 1)
CFGAN_BUDGETS = {
    "ml-1m-u2999": (60, 4, 5),
    "ml-latest-small": (300, 12, 5),
    "ml-100k": (150, 4, 5),
    "amazon-beauty": (15, 6, 1),
}
BY_SIZE = ["ml-100k", "ml-latest-small", "ml-1m-u2999", "amazon-beauty", "ml-20m"]  # interactions


def data_config(dataset: str, protocol: str) -> dict:
    if protocol == "users":
        return {
            "protocol": "users",
            "rating_threshold": 4.0 if dataset in MOVIELENS else None,
            "min_user_interactions": 5,
        }
    return {"protocol": "loo"}


def model_config(model: str, dataset: str) -> dict:
    large = dataset in LARGE
    if model in ("multvae", "multdae"):
        # batch 100 on these small user sets gives enough updates per epoch (the paper: 500 on 116k users);
        # otherwise the model's defaults: up to 200 epochs as in the paper, early stopping (patience 20)
        cfg = {"batch_size": 500 if large else 100} | ({"epochs": 5} if large else {})
        if model == "multvae" and large:
            cfg["beta_cap"] = 0.2  # no room for a beta-search run; the paper's chosen value on ML-20M
        return cfg
    if model == "cfgan":
        # a budget in updates, not epochs: ml-1m-u2999 (~75 minibatches per epoch) needed ~2,250 updates
        # to its best epoch; ml-latest-small has 16 minibatches per epoch, amazon-beauty ~560
        epochs, patience, eval_every = CFGAN_BUDGETS.get(dataset, (5, 20, 1))
        return {
            "epochs": epochs,
            "eval_every": eval_every,
            "patience": patience,
            "batch_size": 256 if large else 32,
        }
    return {}


def run_one(job: dict) -> dict:
    """In a child process: prepare data, fit, evaluate; report metrics, timings and peak RSS."""
    import torch

    torch.set_num_threads(1)  # 2 cores shared by several jobs: one thread each is the fastest
    from genrec.data.cache import prepare
    from genrec.data.readers import read
    from genrec.data.types import DataConfig
    from genrec.evaluation import evaluate
    from genrec.models import get_model_class
    from genrec.training import TrainConfig, fit

    ds = prepare(read(DATA / job["dataset"]), DataConfig(**job["data"]))
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    model = get_model_class(job["model"])(**job["config"])
    fit(model, ds, TrainConfig(seed=0, threads=1), progress=False)
    fit_s = time.perf_counter() - t
    peak_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the test evaluation
    ks = (20, 50, 100) if job["data"]["protocol"] == "users" else (10, 20)
    test = {} if job.get("memory_check") else evaluate(model.score, ds.test, ks=ks)
    info = model.fit_info_
    curves = {p["name"]: p["curve"] for p in info.get("phases", [])}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        **job,
        "n_users": ds.n_users,
        "n_items": ds.n_items,
        "n_train": int(len(ds.train.items)),
        "n_test_users": len(ds.test),
        "fit_seconds": fit_s,
        "epochs": info.get("epochs"),
        "epoch_seconds": info.get("seconds_per_epoch"),
        "peak_rss_mb": peak,
        "peak_rss_fit_mb": peak_fit,
        "rss_after_data_mb": rss_data,
        "test": test,
        "fit_info": {k: v for k, v in info.items() if k != "phases"},
    }
    if "beta search" in curves:
        out["beta_search"] = [
            {k: r[k] for k in r if k in ("epoch", "beta") or k.startswith("valid_")}
            for r in curves["beta search"]
        ]
    if job["model"] == "cfgan":
        out["loss_curve"] = [
            {k: r[k] for k in ("epoch", "d_loss", "g_loss", "d_real", "d_fake") if k in r}
            for r in curves["train"]
        ]
    return out


def run_probe(job: dict) -> dict:
    """In a child process: `steps` Mult-VAE training steps at one batch size, no evaluation; peak RSS."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from genrec.data.cache import prepare
    from genrec.data.readers import read
    from genrec.data.types import DataConfig
    from genrec.models.multvae import AutoEncoder, MultVAE
    from genrec.models.sparse_input import SparseRows

    ds = prepare(read(DATA / job["dataset"]), DataConfig(**job["data"]))
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m = MultVAE(batch_size=job["probe"])
    m.n_items_ = ds.n_items
    m.net_ = AutoEncoder(ds.n_items, m.config.hidden, True, m.config.dropout)
    opt = torch.optim.Adam(m.net_.parameters(), lr=1e-3)
    users = np.flatnonzero(ds.train.lengths > 0)
    for s in range(job["steps"]):
        rows = users[s * job["probe"] : (s + 1) * job["probe"]]
        nll, kl = m._losses(SparseRows.from_histories(ds.train.take(rows), ds.n_items))
        opt.zero_grad()
        (nll + 0.2 * kl).backward()
        opt.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        **job,
        "n_users": ds.n_users,
        "n_items": ds.n_items,
        "peak_rss_mb": peak,
        "rss_after_data_mb": rss_data,
    }


def spawn(job: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(job)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        return {**job, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = []
    for protocol, cols in (("users", ["recall@20", "recall@50", "ndcg@100"]), ("loo", ["hr@10", "ndcg@10"])):
        sel = [r for r in rows if r["data"]["protocol"] == protocol and "memory_check" not in r]
        if not sel:
            continue
        head = f"{'dataset':<16}{'model':<9}" + "".join(f"{c:>11}" for c in cols)
        lines += [f"\nprotocol {protocol}", head + f"{'epochs':>8}{'s/epoch':>9}{'fit s':>8}{'peak MB':>9}"]
        for r in sel:
            if "error" in r:
                lines.append(f"{r['dataset']:<16}{r['model']:<9} ERROR {r['error']}")
                continue
            eps = r.get("epoch_seconds")
            metrics = "".join(f"{r['test'][c]:>11.4f}" for c in cols)
            eps_s = f"{eps:.2f}" if eps else "-"
            lines.append(
                f"{r['dataset']:<16}{r['model']:<9}{metrics}{r['epochs'] or '-':>8}{eps_s:>9}"
                f"{r['fit_seconds']:>8.0f}{r['peak_rss_mb']:>9.0f}"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated; absent ones are skipped")
    p.add_argument("--protocols", default="users,loo")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument(
        "--memory-batches",
        default="100,1000",
        help="Mult-VAE batch sizes for the memory check on the largest dataset present ('' = skip)",
    )
    p.add_argument(
        "--probe-batches",
        default="",
        help="e.g. 100,5000: two Mult-VAE training steps per "
        "batch size on the largest dataset (no evaluation), peak RSS of each; '' = skip",
    )
    p.add_argument("--out", default=str(HERE / "results" / "generative_cf.json"))
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        job = json.loads(a.one)
        print(json.dumps(run_probe(job) if "probe" in job else run_one(job), default=float))
        return
    present = [d for d in a.datasets.split(",") if (DATA / d).exists()]
    out = Path(a.out)
    previous = json.loads(out.read_text()).get("runs", []) if out.exists() else []
    rows: list[dict] = []

    def save() -> None:
        # keep earlier results of jobs this invocation did not run (partial re-runs update in place)
        key = lambda r: (r["dataset"], r["data"]["protocol"], r["model"], r.get("memory_check"))  # noqa: E731
        done = {key(r) for r in rows}
        runs = [r for r in previous if key(r) not in done] + rows
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"machine": f"{os.cpu_count()} cores", "runs": runs}
        out.write_text(json.dumps(meta, indent=1, default=float))

    for protocol in a.protocols.split(","):
        for dataset in present:
            for model in [m for m in a.models.split(",") if m]:
                job = {
                    "dataset": dataset,
                    "model": model,
                    "data": data_config(dataset, protocol),
                    "config": model_config(model, dataset),
                }
                r = spawn(job)
                rows.append(r)
                save()
                print(table([r]).splitlines()[-1], flush=True)
    if a.memory_batches:
        largest = max(present, key=BY_SIZE.index)
        for bs in [int(b) for b in a.memory_batches.split(",")]:
            job = {
                "dataset": largest,
                "model": "multvae",
                "memory_check": bs,
                "data": data_config(largest, "loo"),
                "config": {"batch_size": bs, "epochs": 1, "beta_cap": 0.2, "patience": 1},
            }
            r = spawn(job)
            rows.append(r)
            save()
            if "error" not in r:
                dense_mb = r["n_users"] * r["n_items"] * 4 / 2**20
                print(
                    f"memory check {largest}: batch {bs}: peak RSS {r['peak_rss_fit_mb']:.0f} MB "
                    f"(after data {r['rss_after_data_mb']:.0f} MB); a dense users x items float32 matrix "
                    f"would be {dense_mb:.0f} MB",
                    flush=True,
                )
    if a.probe_batches:
        largest = max(present, key=BY_SIZE.index)
        for bs in [int(b) for b in a.probe_batches.split(",")]:
            job = {
                "dataset": largest,
                "model": "multvae",
                "memory_check": f"probe-{bs}",
                "probe": bs,
                "steps": 2,
                "data": data_config(largest, "loo"),
            }
            r = spawn(job)
            rows.append(r)
            save()
            if "error" not in r:
                print(
                    f"probe {largest}: 2 training steps at batch {bs}: peak RSS {r['peak_rss_mb']:.0f} MB "
                    f"(after data {r['rss_after_data_mb']:.0f} MB)",
                    flush=True,
                )
    print(table(rows))


if __name__ == "__main__":
    main()
