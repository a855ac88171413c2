"""Semantic-ID generative retrieval (tiger) vs ID-based models, with a cold-start slice.

(a) Standard protocol of docs/benchmarks.md (leave-one-out, full ranking over every item, history
    excluded, ties against the model; settings chosen on validation only): HR@10, NDCG@10, Recall@10,
    HR@50, NDCG@50, seconds/epoch, epochs, peak RSS and test inference time, per dataset and model.
(b) Cold start: 5% of the items (seeded random draw) lose *all* their interactions (training and
    model inputs); they stay in the catalogue with their text. Every model is retrained on that data
    and evaluated on all test events and on the slice of test events whose target is a cold item.

Each (dataset, variant, model) runs in a fresh process so its peak RSS is its own.

    python benchmarks/semantic_ids.py                                   # everything
    python benchmarks/semantic_ids.py --datasets amazon-beauty --models pop,ease,tiger
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("GENREC_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
KS = (10, 50)
COLD_FRACTION = 0.05
# per-model settings used on both datasets (the same as passing them with --set); the training loop's
# (genrec.training.TrainConfig: threads, max_minutes, ...) go to the loop, the others to the model
SETTINGS: dict[str, dict] = {
    "pop": {},
    "ease": {},
    "sasrec": {"max_len": 50, "max_minutes": 20.0, "threads": 1},
    "hstu": {"max_len": 50, "max_minutes": 20.0, "threads": 1},
    "tiger": {"threads": 1, "max_minutes": 50.0},  # two generators: about 2x the epoch time
}


def source(name: str):
    from genrec.data.sources import SourceSpec

    return SourceSpec(data=str(ROOT / name))


def cold_variant(ds, fraction: float = COLD_FRACTION, seed: int = 0):
    """(dataset without any interaction of a random `fraction` of the items, the cold item ids).

    Cold items vanish from training sequences and from every evaluation history; test/valid targets
    are kept, so the slice "target is cold" measures recommending items no one has interacted with."""
    from genrec.data.splits import without_items

    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(np.arange(1, ds.n_items + 1), round(fraction * ds.n_items), replace=False))
    out = dataclasses.replace(
        without_items(ds, cold),
        name=f"{ds.name}-cold{round(fraction * 100)}",
        manifest=dict(ds.manifest, cold_items=len(cold)),
    )
    return out, cold


def cold_slice(evalset, cold: np.ndarray):
    from genrec.data.dataset import EvalSet

    rows = np.flatnonzero(np.isin(evalset.targets.items, cold))  # one target per row (leave-one-out)
    return EvalSet(evalset.history.take(rows), evalset.targets.take(rows))


def job(dataset: str, variant: str, model_name: str, settings: dict, boosts: list[float], queue) -> None:
    """Train + evaluate one model in this (fresh) process; put a result row on `queue`."""
    import torch

    from genrec.data.sources import load_dataset
    from genrec.data.types import DataConfig
    from genrec.evaluation import evaluate
    from genrec.models import get_model_class
    from genrec.training import TrainConfig, fit

    try:
        ds = load_dataset(source(dataset), DataConfig())
        cold = None
        if variant == "cold":
            ds, cold = cold_variant(ds)
        loop_keys = {f.name for f in dataclasses.fields(TrainConfig)}
        model = get_model_class(model_name)(**{k: v for k, v in settings.items() if k not in loop_keys})
        t = time.perf_counter()
        # the loop's settings (seed 0 unless --set MODEL.seed=S) go to the loop, the rest to the model
        fit(model, ds, TrainConfig(**{"seed": 0, **{k: v for k, v in settings.items() if k in loop_keys}}))
        fit_s = time.perf_counter() - t
        torch.set_num_threads(1)
        t = time.perf_counter()
        m = evaluate(model.score, ds.test, ks=KS, item_popularity=ds.item_popularity)
        infer_s = time.perf_counter() - t
        # the kept model on every validation user (early stopping saw a sample): compares settings on
        # validation with less noise than the per-epoch figure
        valid_all = evaluate(model.score, ds.valid, ks=(10,))["ndcg@10"]
        info = model.fit_info_
        row = {
            "dataset": dataset,
            "variant": variant,
            "model": model_name,
            "settings": settings,
            "items": ds.n_items,
            "test_users": len(ds.test),
            **{k: m[k] for k in ("hr@10", "ndcg@10", "recall@10", "hr@50", "ndcg@50", "coverage@10")},
            "fit_s": fit_s,
            "seconds_per_epoch": info.get("seconds_per_epoch"),
            "epochs": info.get("epochs"),
            "inference_s": infer_s,
            "inference_ms_per_user": 1000 * infer_s / len(ds.test),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load_average_at_end": os.getloadavg()[0],  # the CPUs are shared: context for every time
            "stop_reason": info.get("stopped_by"),
            "best_valid_ndcg@10": info.get("best_valid"),
            "valid_ndcg@10_all_users": valid_all,
        }
        if model_name == "tiger":
            row["rqvae"] = {k: v for k, v in info["rqvae"].items()}
            row["text_encoder"] = info.get("text_encoder")
            row["text_seconds"] = info.get("text_seconds")
        if info.get("phases"):
            row["valid_curve"] = info["phases"][-1]["curve"]
        if cold is not None:
            sl = cold_slice(ds.test, cold)
            cm = evaluate(model.score, sl, ks=KS)
            vsl = cold_slice(ds.valid, cold)  # validation has cold targets too: settings are judged there
            row.update(
                {
                    "cold_items": len(cold),
                    "cold_events": len(sl),
                    "cold_recall@10": cm["recall@10"],
                    "cold_ndcg@10": cm["ndcg@10"],
                    "cold_recall@50": cm["recall@50"],
                    "valid_cold_recall@10": evaluate(model.score, vsl, ks=(10,))["recall@10"],
                }
            )
        if model_name == "tiger" and boosts:  # the same trained model, scored at other boosts
            row["boosts"] = []
            for b in boosts:
                model.config.new_item_boost = b
                r = {
                    "new_item_boost": b,
                    "valid_ndcg@10_all_users": evaluate(model.score, ds.valid, ks=(10,))["ndcg@10"],
                    "ndcg@10": evaluate(model.score, ds.test, ks=(10,))["ndcg@10"],
                }
                if cold is not None:
                    r["valid_cold_recall@10"] = evaluate(model.score, vsl, ks=(10,))["recall@10"]
                    r["cold_recall@10"] = evaluate(model.score, sl, ks=(10,))["recall@10"]
                row["boosts"].append(r)
                print(f"new_item_boost {b}: {r}", file=sys.stderr, flush=True)
        queue.put(row)
    except Exception as e:  # report, do not hang the parent
        queue.put({"dataset": dataset, "variant": variant, "model": model_name, "error": repr(e)})
        raise


def run(dataset: str, variant: str, model_name: str, boosts: list[float]) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=job, args=(dataset, variant, model_name, SETTINGS[model_name], boosts, q))
    p.start()
    row = q.get()
    p.join()
    return row


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'dataset':<15} {'variant':<8} {'model':<7} {'HR@10':>7} {'NDCG@10':>8} {'R@10':>7} {'HR@50':>7} "
        f"{'NDCG@50':>8} {'s/epoch':>8} {'epochs':>6} {'RSS MB':>7} {'infer s':>8} {'coldR@10':>8} "
        f"{'coldN@10':>8}"
    )
    print(head)
    for r in rows:
        if "error" in r:
            print(f"{r['dataset']:<15} {r['variant']:<8} {r['model']:<7} ERROR {r['error']}")
            continue
        print(
            f"{r['dataset']:<15} {r['variant']:<8} {r['model']:<7} {r['hr@10']:>7.4f} {r['ndcg@10']:>8.4f} "
            f"{r['recall@10']:>7.4f} {r['hr@50']:>7.4f} {r['ndcg@50']:>8.4f} "
            f"{fmt(r['seconds_per_epoch'], '8.1f')} {fmt(r['epochs'], '6d')} {r['peak_rss_mb']:>7.0f} "
            f"{r['inference_s']:>8.1f} {fmt(r.get('cold_recall@10'), '8.4f')} "
            f"{fmt(r.get('cold_ndcg@10'), '8.4f')}"
        )


def main() -> int:
    from genrec.models import REGISTRY

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="amazon-beauty,ml-1m-u2999")
    ap.add_argument(
        "--models",
        default="pop,ease,sasrec,hstu,tiger",
        help="models to run (those not registered on this checkout are skipped)",
    )
    ap.add_argument("--variants", default="standard,cold")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODEL.KEY=VALUE",
        help="override a model setting, e.g. tiger.text_encoder=tfidf (repeatable)",
    )
    ap.add_argument(
        "--boosts",
        default="",
        help="tiger: also score the trained model at these new_item_boost values, e.g. 0.5,1",
    )
    ap.add_argument("--out", default=str(HERE / "results" / "semantic_ids.json"))
    a = ap.parse_args()
    for item in a.set:
        key, value = item.split("=", 1)
        model_name, field = key.split(".", 1)
        try:
            SETTINGS[model_name][field] = json.loads(value)
        except json.JSONDecodeError:
            SETTINGS[model_name][field] = value
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    models = [m for m in a.models.split(",") if m in REGISTRY]
    out = Path(a.out)
    # rows of earlier invocations (other datasets/models) are kept; a re-run replaces its own rows
    old = json.loads(out.read_text()) if out.exists() else {}
    kept = old.get("rows", [])
    extra = {k: v for k, v in old.items() if k not in ("machine", "protocol", "cold_fraction", "rows")}
    rows: list[dict] = []
    for dataset in a.datasets.split(","):
        for variant in a.variants.split(","):
            for model_name in models:
                t = time.perf_counter()
                row = run(dataset, variant, model_name, [float(b) for b in a.boosts.split(",") if b])
                row["wall_s"] = time.perf_counter() - t
                rows.append(row)
                key = (dataset, variant, model_name)
                kept = [r for r in kept if (r["dataset"], r["variant"], r["model"]) != key]
                print_table([row])
                sys.stdout.flush()
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(
                    json.dumps(
                        {
                            "machine": f"{platform.machine()}, {os.cpu_count()} shared cpus, "
                            f"python {platform.python_version()}",
                            "protocol": "leave-one-out, full ranking, history excluded, ties against model",
                            "cold_fraction": COLD_FRACTION,
                            "rows": kept + rows,
                            **extra,  # hand-curated keys (e.g. stopped runs) survive a re-run
                        },
                        indent=2,
                        default=float,
                    )
                )
    print()
    print_table(rows)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
