"""Seconds per training epoch: RecBole 1.2.1's SASRec vs genrec's SASRec, same data and model config.

Config for both: 2 layers, 2 heads, hidden 64, inner (FFN) 256, CE loss over the full catalogue,
dropout 0.5/0.5 (RecBole's defaults), batch 2048 (RecBole's default train_batch_size), one torch thread
each (the machine is shared; see docs/benchmarks.md), max length 50 and 200, data ml-1m-u2999.

RecBole trains on every prefix of every training sequence (one target per sample, padded to the max
length); genrec trains on whole sequences (every position a target, length-bucketed). Both see every
training interaction once per epoch as a target. RecBole's epoch is estimated from a timed slice of
batches: every RecBole batch is padded to the max length, so its time per sample is constant, and the
epoch = seconds per sample x the samples of the full data (= training interactions - users, exact).
At length 200 a batch of 2,048 padded prefixes holds RecBole's (B, heads, 200, 200) attention scores,
probabilities and dropout masks for backward: ~10 GB (a run was OOM-killed at 10.7 GB). So at lengths
above 50 RecBole reads the first `--users-200` users and its timed slice uses `--batch-200` samples per
batch; the printout says so. Both sides print their peak RSS (RecBole's is its own process's).

`--time-to-ndcg X` (default 0.0808, RecBole SASRec's test NDCG@10 on this data after its 33-minute
budget, see docs/benchmarks.md) also trains genrec's default SASRec (no flags but threads=1) and reports
the wall time from the start of training until its validation NDCG@10 first reaches X, against 33 min.

RecBole lives in its own venv (benchmarks/.venv-recbole, git-ignored), created on first use with
torch==2.13.0 installed first and recbole==1.2.1 without its pinned extras that would pull other torch
builds:

    python benchmarks/recbole_speed.py                 # both lengths
    python benchmarks/recbole_speed.py --lengths 50 --batches 20
    python benchmarks/recbole_speed.py --lengths 200 --time-to-ndcg 0.0808
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("GENREC_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
VENV = HERE / ".venv-recbole"
RESULTS = HERE / "results" / "recbole_speed.json"
RECBOLE_DEPS = [
    "numpy<2",
    "scipy",
    "pandas",
    "tqdm",
    "colorlog==4.7.2",
    "colorama==0.4.4",
    "scikit-learn",
    "pyyaml",
    "tensorboard",
    "tabulate",
    "texttable",
    "psutil",
    "thop",
    "plotly",
]
COMMON = {"n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256, "dropout": 0.5, "batch": 2048}


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    if not (VENV / ".ready").exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        pip = [str(py), "-m", "pip", "install", "-q"]
        subprocess.check_call(pip + ["torch==2.13.0"])  # first, so nothing pulls another torch build
        subprocess.check_call(pip + ["--no-deps", "recbole==1.2.1"])
        subprocess.check_call(pip + RECBOLE_DEPS + ["torch==2.13.0"])
        (VENV / ".ready").touch()
    return py


def write_atomic(folder: Path, users_limit: int | None) -> tuple[int, int]:
    """ml-1m-u2999 as a RecBole atomic .inter file; returns (users, interactions) written."""
    import pandas as pd

    df = pd.read_csv(
        ROOT / "ml-1m-u2999" / "ratings.dat",
        sep="::",
        engine="python",
        names=["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
    )
    if users_limit:
        keep = df["user_id:token"].drop_duplicates().iloc[:users_limit]
        df = df[df["user_id:token"].isin(keep)]
    (folder / "ml").mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "ml" / "ml.inter", sep="\t", index=False)
    return df["user_id:token"].nunique(), len(df)


RECBOLE_CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec
from recbole.utils import init_seed
a = json.loads(sys.argv[1])
cfg = Config(model="SASRec", dataset="ml", config_dict={
    "data_path": a["data"], "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "MAX_ITEM_LIST_LENGTH": a["max_len"], "n_layers": a["n_layers"], "n_heads": a["n_heads"],
    "hidden_size": a["hidden_size"], "inner_size": a["inner_size"], "hidden_dropout_prob": a["dropout"],
    "attn_dropout_prob": a["dropout"], "loss_type": "CE", "train_neg_sample_args": None,
    "train_batch_size": a["batch"], "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO",
    "mode": "full"}, "epochs": 1, "show_progress": False, "device": "cpu", "use_gpu": False,
    "checkpoint_dir": a["tmp"], "log_wandb": False, "seed": 0, "reproducibility": True})
init_seed(0, True)
ds = create_dataset(cfg)
train, valid, test = data_preparation(cfg, ds)
model = SASRec(cfg, train.dataset)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
model.train()
n, times = 0, []
t = time.time()
for inter in train:  # timed from the previous step's end: data loading counts as part of the epoch
    opt.zero_grad()
    loss = model.calculate_loss(inter)
    loss.backward()
    opt.step()
    times.append(time.time() - t)
    t = time.time()
    n += 1
    if n >= a["batches"]:
        break
import resource
print("RESULT " + json.dumps({"batches_timed": n, "sec_per_batch": sum(times[1:]) / max(1, len(times) - 1),
                              "batches_in_epoch": len(train), "samples": len(train.dataset),
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def recbole_epoch(py: Path, max_len: int, n_batches: int, users_limit: int | None, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        users, inter = write_atomic(Path(tmp), users_limit)
        args = dict(COMMON, data=tmp, max_len=max_len, batches=n_batches, tmp=tmp, batch=batch)
        t = time.time()
        out = subprocess.run(
            [str(py), "-c", RECBOLE_CHILD, json.dumps(args)], capture_output=True, text=True, cwd=tmp
        )
        if out.returncode != 0:
            raise RuntimeError(f"RecBole failed:\n{out.stderr[-3000:]}")
        res = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
        res.update(users=users, interactions=inter, wall_seconds=time.time() - t)
        return res


def genrec_epoch(max_len: int) -> dict:

    from genrec.data.sources import SourceSpec, load_dataset
    from genrec.data.types import DataConfig
    from genrec.models.sasrec import SASRec, SASRecConfig
    from genrec.training import TrainConfig, fit

    ds = load_dataset(SourceSpec(data=str(ROOT / "ml-1m-u2999")), DataConfig())
    cfg = SASRecConfig(
        dim=COMMON["hidden_size"],
        n_layers=COMMON["n_layers"],
        n_heads=COMMON["n_heads"],
        ffn_mult=COMMON["inner_size"] // COMMON["hidden_size"],
        dropout=COMMON["dropout"],
        max_len=max_len,
        epochs=1,
        loss="ce",
    )
    model = fit(SASRec(cfg), ds, TrainConfig(threads=1))
    return {
        "sec_per_epoch": model.fit_info_["seconds_per_epoch"],
        "valid_ndcg@10_after_1_epoch": model.fit_info_["best_valid"],
        "train_interactions": int(len(ds.train.items)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def genrec_time_to(target: float, max_epochs: int) -> dict:
    """Wall seconds (training + per-epoch validation) until genrec's default SASRec first reaches
    validation NDCG@10 >= target, and this process's CPU seconds until then (one torch thread, so on an
    idle machine CPU s = wall s; on a shared one the CPU seconds are the load-independent figure).
    A training callback timestamps each validation and stops training at the first one that reaches
    the target."""
    from genrec.data.sources import SourceSpec, load_dataset
    from genrec.data.types import DataConfig
    from genrec.models.sasrec import SASRec
    from genrec.training import Callback, TrainConfig, TrainingInterrupted, fit

    t_load = time.time()
    ds = load_dataset(SourceSpec(data=str(ROOT / "ml-1m-u2999")), DataConfig())
    load_s = time.time() - t_load
    curve: list[tuple[float, float, float]] = []  # (wall s, CPU s, validation NDCG@10) per epoch
    t0, c0 = time.time(), time.process_time()

    class Timer(Callback):
        def on_epoch_end(self, model, phase, row) -> None:
            curve.append((time.time() - t0, time.process_time() - c0, row["valid_ndcg@10"]))
            if row["valid_ndcg@10"] >= target or len(curve) >= max_epochs:
                raise KeyboardInterrupt  # the loop's clean stop

    try:  # every model setting at its default (max_len 200, epochs 200, ...)
        fit(SASRec(), ds, TrainConfig(threads=1), callbacks=(Timer(),))
    except TrainingInterrupted:
        pass
    hit = next((i for i, (_, _, v) in enumerate(curve) if v >= target), None)
    return {
        "target_valid_ndcg@10": target,
        "reached": hit is not None,
        "epochs": None if hit is None else hit + 1,
        "seconds": None if hit is None else curve[hit][0],
        "cpu_seconds": None if hit is None else curve[hit][1],
        "data_load_seconds": load_s,
        "curve_wall_s_cpu_s_ndcg": curve,
        "recbole_seconds": 33 * 60,
        "ratio_genrec_over_recbole": None if hit is None else curve[hit][0] / (33 * 60),
        "ratio_cpu_genrec_over_recbole": None if hit is None else curve[hit][1] / (33 * 60),
        "load_average": os.getloadavg()[0],
    }


def save(rows: list[dict], time_to: dict | None = None) -> None:
    """Merge rows into the results file by max_len (runs for one length keep the other's row)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    done = {r["max_len"] for r in rows}
    merged = sorted(
        [r for r in old.get("rows", []) if r["max_len"] not in done] + rows, key=lambda r: r["max_len"]
    )
    out = {"config": COMMON, "rows": merged}
    if time_to or old.get("time_to_recbole_ndcg"):
        out["time_to_recbole_ndcg"] = time_to or old["time_to_recbole_ndcg"]
    RESULTS.write_text(json.dumps(out, indent=2))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", default="50,200")
    p.add_argument("--batches", type=int, default=4, help="RecBole batches to time (the first is dropped)")
    p.add_argument(
        "--users-200",
        type=int,
        default=500,
        help="users RecBole reads at lengths > 50 (its data preparation is memory-hungry)",
    )
    p.add_argument(
        "--batch-200",
        type=int,
        default=256,
        help="RecBole samples per timed batch at lengths > 50 (attention memory; the epoch "
        "estimate scales seconds per sample to the full data)",
    )
    p.add_argument(
        "--time-to-ndcg",
        type=float,
        default=None,
        metavar="X",
        help="also time genrec's default SASRec until validation NDCG@10 >= X (e.g. 0.0808)",
    )
    p.add_argument("--max-epochs", type=int, default=10, help="give up the --time-to-ndcg run after this")
    a = p.parse_args()
    rows = []
    lengths = [int(x) for x in a.lengths.split(",")] if a.lengths else []
    py = ensure_venv() if lengths else None
    for L in lengths:
        limit = a.users_200 if L > 50 else None
        batch = a.batch_200 if L > 50 else COMMON["batch"]
        rb = recbole_epoch(py, L, a.batches, limit, batch)
        g = genrec_epoch(L)
        # samples of a full-data epoch: one per training interaction except each user's first
        full_samples = g["train_interactions"] - 2999
        rb_epoch = rb["sec_per_batch"] / batch * full_samples
        rows.append(
            {
                "max_len": L,
                "recbole_sec_per_batch": rb["sec_per_batch"],
                "recbole_batch": batch,
                "recbole_batches_timed": rb["batches_timed"],
                "recbole_full_epoch_samples": full_samples,
                "recbole_full_epoch_batches_of_2048": -(-full_samples // COMMON["batch"]),
                "recbole_sec_per_epoch_est": rb_epoch,
                "recbole_users_read": rb["users"],
                "recbole_peak_rss_mb": rb["peak_rss_mb"],
                "genrec_sec_per_epoch": g["sec_per_epoch"],
                "genrec_peak_rss_mb": g["peak_rss_mb"],
                "ratio_genrec_over_recbole": g["sec_per_epoch"] / rb_epoch,
                "genrec_valid_ndcg@10_1_epoch": g["valid_ndcg@10_after_1_epoch"],
                "load_average": os.getloadavg()[0],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        save(rows)
    time_to = None
    if a.time_to_ndcg is not None:
        time_to = genrec_time_to(a.time_to_ndcg, a.max_epochs)
        print(json.dumps(time_to), flush=True)
        save(rows, time_to)
    if rows:
        print(
            f"\n{'max_len':>8}{'RecBole s/epoch (est)':>24}{'RecBole RSS MB':>16}{'genrec s/epoch':>16}"
            f"{'genrec RSS MB':>15}{'ratio':>8}"
        )
    for r in rows:
        print(
            f"{r['max_len']:>8}{r['recbole_sec_per_epoch_est']:>24.0f}{r['recbole_peak_rss_mb']:>16.0f}"
            f"{r['genrec_sec_per_epoch']:>16.1f}{r['genrec_peak_rss_mb']:>15.0f}"
            f"{r['ratio_genrec_over_recbole']:>8.4f}"
        )
        if r["recbole_users_read"] < 2999:
            print(
                f"{'':>8}(RecBole timed on its first {r['recbole_users_read']} users, "
                f"{r['recbole_batch']} samples per batch, scaled to "
                f"{r['recbole_full_epoch_samples']} samples)"
            )
    if time_to:
        t = time_to
        if t["reached"]:
            print(
                f"\ngenrec SASRec (defaults, 1 thread) reached validation NDCG@10 >= "
                f"{t['target_valid_ndcg@10']} after {t['epochs']} epoch(s): {t['seconds']:.0f} s wall "
                f"({t['cpu_seconds']:.0f} CPU s, load average {t['load_average']:.1f}); RecBole: 1980 s "
                f"(33 min) -> ratio {t['ratio_genrec_over_recbole']:.3f} wall, "
                f"{t['ratio_cpu_genrec_over_recbole']:.3f} CPU"
            )
        else:
            print(
                f"\ngenrec SASRec did not reach {t['target_valid_ndcg@10']} "
                f"in {len(t['curve_wall_s_cpu_s_ndcg'])} epochs"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
