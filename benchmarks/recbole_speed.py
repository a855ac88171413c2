"""Seconds per training epoch: RecBole 1.2.1's SASRec vs genrec's SASRec, same data and model config.

Config for both: 2 layers, 2 heads, hidden 64, inner (FFN) 256, CE loss over the full catalogue,
dropout 0.5/0.5 (RecBole's defaults), batch 2048 (RecBole's default train_batch_size), one torch thread
each (the machine is shared; see docs/benchmarks.md), max length 50 and 200, data ml-1m-u2999.

RecBole trains on every prefix of every training sequence (one target per sample, padded to the max
length); genrec trains on whole sequences (every position a target, length-bucketed). Both see every
training interaction once per epoch as a target. RecBole's epoch is estimated from a timed slice of
batches (time per batch is constant: every batch is padded to the max length) times its number of
batches; at length 200 its data preparation needs ~15 GB, so RecBole is run on the first 500 users
and the batch count of the full data is computed exactly (= training interactions - users, / batch).

RecBole lives in its own venv (benchmarks/.venv-recbole, git-ignored), created on first use with
torch==2.13.0 installed first and recbole==1.2.1 without its pinned extras that would pull other torch
builds:

    python benchmarks/recbole_speed.py                 # both lengths
    python benchmarks/recbole_speed.py --lengths 50 --batches 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("GENREC_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
VENV = HERE / ".venv-recbole"
RESULTS = HERE / "results" / "recbole_speed.json"
RECBOLE_DEPS = ["numpy<2", "scipy", "pandas", "tqdm", "colorlog==4.7.2", "colorama==0.4.4", "scikit-learn",
                "pyyaml", "tensorboard", "tabulate", "texttable", "psutil", "thop", "plotly"]
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

    df = pd.read_csv(ROOT / "ml-1m-u2999" / "ratings.dat", sep="::", engine="python",
                     names=["user_id:token", "item_id:token", "rating:float", "timestamp:float"])
    if users_limit:
        keep = df["user_id:token"].drop_duplicates().iloc[:users_limit]
        df = df[df["user_id:token"].isin(keep)]
    (folder / "ml").mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "ml" / "ml.inter", sep="\t", index=False)
    return df["user_id:token"].nunique(), len(df)


RECBOLE_CHILD = r'''
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
print("RESULT " + json.dumps({"batches_timed": n, "sec_per_batch": sum(times[1:]) / max(1, len(times) - 1),
                              "batches_in_epoch": len(train), "samples": len(train.dataset)}))
'''


def recbole_epoch(py: Path, max_len: int, n_batches: int, users_limit: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        users, inter = write_atomic(Path(tmp), users_limit)
        args = dict(COMMON, data=tmp, max_len=max_len, batches=n_batches, tmp=tmp)
        t = time.time()
        out = subprocess.run([str(py), "-c", RECBOLE_CHILD, json.dumps(args)], capture_output=True,
                             text=True, cwd=tmp)
        if out.returncode != 0:
            raise RuntimeError(f"RecBole failed:\n{out.stderr[-3000:]}")
        res = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
        res.update(users=users, interactions=inter, wall_seconds=time.time() - t)
        return res


def genrec_epoch(max_len: int) -> dict:
    import torch

    from genrec.data.preprocess import DataConfig
    from genrec.data.sources import SourceSpec, load_dataset
    from genrec.models.sasrec import SASRec, SASRecConfig

    torch.manual_seed(0)
    ds = load_dataset(SourceSpec(data=str(ROOT / "ml-1m-u2999")), DataConfig())
    cfg = SASRecConfig(dim=COMMON["hidden_size"], n_layers=COMMON["n_layers"], n_heads=COMMON["n_heads"],
                       ffn_mult=COMMON["inner_size"] // COMMON["hidden_size"], dropout=COMMON["dropout"],
                       max_len=max_len, epochs=1, threads=1, loss="ce")
    model = SASRec(cfg).fit(ds)
    return {"sec_per_epoch": model.fit_info_["seconds_per_epoch"], "valid_ndcg@10_after_1_epoch":
            model.fit_info_["best_valid_ndcg10"], "train_interactions": int(len(ds.train.items))}


def save(rows: list[dict]) -> None:
    """Merge rows into the results file by max_len (runs for one length keep the other's row)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    done = {r["max_len"] for r in rows}
    merged = sorted([r for r in old if r["max_len"] not in done] + rows, key=lambda r: r["max_len"])
    RESULTS.write_text(json.dumps({"config": COMMON, "rows": merged}, indent=2))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", default="50,200")
    p.add_argument("--batches", type=int, default=4, help="RecBole batches to time (the first is dropped)")
    p.add_argument("--users-200", type=int, default=500, help="users RecBole reads at length 200 (memory)")
    a = p.parse_args()
    py = ensure_venv()
    rows = []
    for L in [int(x) for x in a.lengths.split(",")]:
        limit = a.users_200 if L > 50 else None
        rb = recbole_epoch(py, L, a.batches, limit)
        # batches of a full-data epoch: one sample per training interaction except each user's first
        g = genrec_epoch(L)
        full_samples = g["train_interactions"] - 2999
        rb_batches = -(-full_samples // COMMON["batch"]) if limit else rb["batches_in_epoch"]
        rb_epoch = rb["sec_per_batch"] * rb_batches
        rows.append({"max_len": L, "recbole_sec_per_batch": rb["sec_per_batch"],
                     "recbole_batches": rb_batches, "recbole_sec_per_epoch_est": rb_epoch,
                     "recbole_users_read": rb["users"], "genrec_sec_per_epoch": g["sec_per_epoch"],
                     "ratio_genrec_over_recbole": g["sec_per_epoch"] / rb_epoch,
                     "genrec_valid_ndcg@10_1_epoch": g["valid_ndcg@10_after_1_epoch"],
                     "load_average": os.getloadavg()[0]})
        print(json.dumps(rows[-1]), flush=True)
        save(rows)
    print(f"\n{'max_len':>8}{'RecBole s/epoch (est)':>24}{'genrec s/epoch':>16}{'ratio':>8}")
    for r in rows:
        print(f"{r['max_len']:>8}{r['recbole_sec_per_epoch_est']:>24.0f}{r['genrec_sec_per_epoch']:>16.1f}"
              f"{r['ratio_genrec_over_recbole']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
