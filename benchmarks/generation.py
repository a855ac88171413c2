"""Generation benchmark: a 10-item slate by beam search (and by sampling) for a batch of users, with the
model's KV cache (`start` once, then `reorder` + `extend` one position per step) against recomputing
the whole prefix at every step (`model.score` on history + generated items, the fallback path).

Both paths run in the same process on the same users; the table reports seconds and the ratio
recompute / cache (target >= 3x) and how many users got the identical list from both paths (they
differ only where history + slate exceeds max_len: the recompute path then drops the oldest items).

Models: SASRec and HSTU at the `small` preset (2 layers, dim 64, max length 200), freshly initialised
(decoding cost does not depend on the weights) or trained runs via --run. Users: test users of
ml-1m-u2999 (median history 96 items; those above 200 are cut to the most recent 200).

    python benchmarks/generation.py                       # both models, 256 users, beam 4
    python benchmarks/generation.py --users 64 --models sasrec --run runs/ml1m-sasrec
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

from genrec.data.sources import SourceSpec, load_dataset
from genrec.data.types import DataConfig
from genrec.generation import Constraints, beam_search, sample
from genrec.models import get_model_class

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("GENREC_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))


def fresh_model(name: str, n_items: int, size: str, max_len: int):
    cls = get_model_class(name)
    model = cls(cls.config_cls(size=size, max_len=max_len))
    torch.manual_seed(0)
    model.n_items_ = n_items
    model.net = model.build_net(n_items).eval()
    return model


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-1m-u2999")
    ap.add_argument("--models", default="sasrec,hstu")
    ap.add_argument("--run", action="append", default=[], help="trained run directory (instead of fresh)")
    ap.add_argument("--size", default="small")
    ap.add_argument("--max-len", type=int, default=200)
    ap.add_argument("--users", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=128, help="users per generation call")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--beam-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out", default=str(HERE / "results" / "generation.json"))
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    ds = load_dataset(SourceSpec(data=str(ROOT / a.dataset)), DataConfig())
    users = ds.test.history.users[: a.users]
    hist = ds.full_history(users)
    lens = np.minimum(hist.lengths, a.max_len)
    cons = Constraints()
    models = []
    if a.run:
        from genrec.training.runs import load_run

        models = [(f"{load_run(r).config.model} ({Path(r).name})", load_run(r).model) for r in a.run]
    else:
        models = [
            (f"{m} {a.size} (fresh)", fresh_model(m, ds.n_items, a.size, a.max_len))
            for m in a.models.split(",")
        ]
    print(
        f"{ds.name}: {len(users)} users (history used: median {int(np.median(lens))}, max {lens.max()} "
        f"items), {ds.n_items} items, slate of {a.k}, beam {a.beam_size}, {a.chunk} users per call, "
        f"torch threads {torch.get_num_threads()}"
    )
    rows = []
    with torch.no_grad():
        for label, model in models:
            beam_search(model, hist.take(slice(0, 8)), a.k, a.beam_size)  # warm-up (allocator, kernels)
            beam_search(model, hist.take(slice(0, 8)), a.k, a.beam_size, use_cache=False)
            for strategy in ("beam", "sample"):

                def run(h, cache, m=model, strategy=strategy):
                    if strategy == "beam":
                        return beam_search(m, h, a.k, a.beam_size, cons, use_cache=cache, batch_size=a.chunk)
                    return sample(
                        m,
                        h,
                        a.k,
                        temperature=1.0,
                        top_p=0.95,
                        seed=0,
                        constraints=cons,
                        use_cache=cache,
                        batch_size=a.chunk,
                    )

                # alternate the two paths chunk by chunk (and which goes first), so load changes on a
                # shared machine hit both alike; each path still sees `chunk` users per call
                t_cache = t_full = 0.0
                items_cache, items_full = [], []
                for i, s in enumerate(range(0, len(hist), a.chunk)):
                    h = hist.take(slice(s, s + a.chunk))
                    for cache in (True, False) if i % 2 == 0 else (False, True):
                        t, out = timed(lambda h=h, c=cache: run(h, c))
                        if cache:
                            t_cache += t
                            items_cache.append(out.items)
                        else:
                            t_full += t
                            items_full.append(out.items)
                equal = (np.concatenate(items_cache) == np.concatenate(items_full)).all(1)
                same = float(equal.mean())
                fits = lens + a.k <= a.max_len
                same_fit = float(equal[fits].mean()) if fits.any() else 1.0
                rows.append(
                    {
                        "model": label,
                        "strategy": strategy,
                        "users": len(users),
                        "k": a.k,
                        "beam_size": a.beam_size if strategy == "beam" else 1,
                        "chunk": a.chunk,
                        "cache_s": t_cache,
                        "recompute_s": t_full,
                        "speedup": t_full / t_cache,
                        "same_lists": same,
                        "same_lists_when_fits_max_len": same_fit,
                    }
                )
                r = rows[-1]
                print(
                    f"{label:<22} {strategy:<7} cache {t_cache:8.2f}s  recompute {t_full:8.2f}s  "
                    f"speedup {r['speedup']:6.1f}x  identical lists {same:.1%} "
                    f"({same_fit:.1%} where history + slate <= max_len)",
                    flush=True,
                )
    result = {
        "dataset": ds.name,
        "n_items": ds.n_items,
        "users": len(users),
        "k": a.k,
        "beam_size": a.beam_size,
        "chunk": a.chunk,
        "max_len": a.max_len,
        "size": a.size,
        "history_median": int(np.median(lens)),
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "rows": rows,
        "command": " ".join(["python benchmarks/generation.py", *sys.argv[1:]]),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))
    print(f"\n{'model':<22} {'strategy':<8} {'cache s':>9} {'recompute s':>12} {'speedup':>8}")
    for r in rows:
        print(
            f"{r['model']:<22} {r['strategy']:<8} {r['cache_s']:>9.2f} {r['recompute_s']:>12.2f} "
            f"{r['speedup']:>7.1f}x"
        )
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
