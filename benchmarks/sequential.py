"""Sequential models benchmark: Pop, EASE, SASRec and HSTU on ml-1m-u2999 and amazon-beauty.

Protocol of docs/benchmarks.md (leave-one-out, full ranking, history excluded, ties against the model),
max length 200 for the sequence models, default settings unless `--set` says otherwise; early stopping
on validation NDCG@10 only. Each (dataset, model) runs in its own process so that peak RSS is its own.

    python benchmarks/sequential.py                                   # everything
    python benchmarks/sequential.py --datasets amazon-beauty --models sasrec,hstu --minutes 20
    python benchmarks/sequential.py --datasets /data/amazon-toys/Toys_and_Games.txt   # any path works

Prints one table (HR@10, NDCG@10, HR@50, NDCG@50, s/epoch, epochs, train s, peak RSS, inference s for
all test users) and merges rows into benchmarks/results/sequential.json.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("GENREC_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
RESULTS = HERE / "results" / "sequential.json"
DATASETS = ("ml-1m-u2999", "amazon-beauty")
MODELS = ("pop", "ease", "sasrec", "hstu")
SEQUENTIAL = ("sasrec", "hstu")


def source(dataset: str) -> tuple[str, str]:
    """(row name, path): a folder under the data dir, or any file/folder path (e.g. Toys_and_Games.txt)."""
    p = Path(dataset)
    if not p.exists():
        return dataset, str(ROOT / dataset)
    return (p.parent.name if p.is_file() else p.name), str(p)


def run_one(dataset: str, model_name: str, overrides: dict, minutes: float) -> dict:
    """Train + evaluate one model in this process; returns the result row."""
    import torch

    from genrec.data.sources import SourceSpec, load_dataset
    from genrec.data.types import DataConfig
    from genrec.evaluation import evaluate
    from genrec.models import get_model_class
    from genrec.training import fit
    from genrec.training.settings import resolve

    name, path = source(dataset)
    ds = load_dataset(SourceSpec(data=path), DataConfig())
    settings = dict(overrides) if model_name in SEQUENTIAL else {}
    if model_name in SEQUENTIAL:
        settings.setdefault("max_len", 200)
        if minutes:
            settings["max_minutes"] = minutes
    model_config, train_config = resolve(model_name, {k: str(v) for k, v in settings.items()})
    model = get_model_class(model_name)(model_config)
    t0 = time.time()
    fit(model, ds, train_config)
    train_s = time.time() - t0
    info = model.fit_info_
    t1 = time.time()
    m = evaluate(model.score, ds.test, ks=(10, 50))
    infer_s = time.time() - t1
    valid = evaluate(model.score, ds.valid, ks=(10,))
    return {
        "dataset": name,
        "model": model_name,
        "settings": settings,
        "hr@10": m["hr@10"],
        "ndcg@10": m["ndcg@10"],
        "hr@50": m["hr@50"],
        "ndcg@50": m["ndcg@50"],
        "valid_ndcg@10": valid["ndcg@10"],
        "seconds_per_epoch": info.get("seconds_per_epoch", train_s),
        "epochs": info.get("epochs", 1),
        "best_epoch": info.get("best_epoch"),
        "stopped_by": info.get("stopped_by"),
        "train_seconds": train_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "inference_seconds_all_test_users": infer_s,
        "n_test_users": m["n_users"],
        "threads": torch.get_num_threads(),
        "load_average_at_end": os.getloadavg()[0],
        "config": info.get("config"),
        "valid_curve": [
            (r["epoch"], r[k])
            for p in info.get("phases", [])
            for r in p["curve"]
            for k in r
            if k.startswith("valid_")
        ],
    }


def spawn_one(dataset: str, model: str, sets: list[str], minutes: float = 0.0) -> dict | None:
    """Train + evaluate one (dataset, model) in a fresh process (so its peak RSS is its own); its result
    row, or None when the process failed. `sets` are KEY=VALUE settings as given to `--set`."""
    result = RESULTS.parent / f".sequential-{source(dataset)[0]}-{model}-{os.getpid()}.tmp"
    cmd = [sys.executable, __file__, "--one", dataset, model, str(result), "--minutes", str(minutes)]
    for kv in sets:
        cmd += ["--set", kv]
    if subprocess.call(cmd) != 0:
        return None
    row = json.loads(result.read_text())
    result.unlink()
    return row


def merge(rows: list[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several benchmark processes may finish at once
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": []}
        new = {(x["dataset"], x["model"]) for x in rows}
        keep = [r for r in data["rows"] if (r["dataset"], r["model"]) not in new]
        data["rows"] = keep + rows
        data["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count()}
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=float))
        os.replace(tmp, RESULTS)


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'dataset':<15}{'model':<8}{'HR@10':>8}{'NDCG@10':>9}{'HR@50':>8}{'NDCG@50':>9}{'s/epoch':>9}"
        f"{'epochs':>7}{'train s':>9}{'RSS MB':>8}{'infer s':>9}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['dataset']:<15}{r['model']:<8}{r['hr@10']:>8.4f}{r['ndcg@10']:>9.4f}{r['hr@50']:>8.4f}"
            f"{r['ndcg@50']:>9.4f}{r['seconds_per_epoch']:>9.1f}{r['epochs']:>7}{r['train_seconds']:>9.0f}"
            f"{r['peak_rss_mb']:>8.0f}{r['inference_seconds_all_test_users']:>9.1f}"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="setting for the sequence models (e.g. size=base)",
    )
    p.add_argument("--minutes", type=float, default=0.0, help="training budget per sequence model (0 = none)")
    p.add_argument("--one", nargs=3, metavar=("DATASET", "MODEL", "RESULT_FILE"), help=argparse.SUPPRESS)
    a = p.parse_args()
    overrides = {}
    for kv in a.set:
        k, v = kv.split("=", 1)
        try:
            overrides[k] = json.loads(v)
        except json.JSONDecodeError:
            overrides[k] = v
    if a.one:
        row = run_one(a.one[0], a.one[1], overrides, a.minutes)
        Path(a.one[2]).write_text(json.dumps(row, default=float))
        return 0
    rows = []
    for dataset in a.datasets.split(","):
        for model in a.models.split(","):
            print(f"== {dataset} / {model}", flush=True)
            row = spawn_one(dataset, model, a.set, a.minutes)
            if row is None:
                return 1
            rows.append(row)
            merge([row])
            print_table([row])
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
