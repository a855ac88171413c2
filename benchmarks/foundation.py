"""Foundation benchmark: Most-Popular and EASE on the four shared datasets, and evaluation speed.

(a) Protocol of docs/benchmarks.md (leave-one-out, every rating an interaction, chronological with a
    stable tie-break by file order, full ranking, history excluded, ties against the model). EASE's
    lambda is chosen on the validation split only (inside EASE.fit); test metrics are reported.
(b) Time of `genrec.evaluation.evaluate` for every test user of ml-1m-u2999 and for a 6,040 x 3,706
    synthetic case, *without* model scoring: scores are computed once beforehand and handed to the
    evaluator by a lookup, so the timings are the evaluator's own. Scoring time is reported apart.

    python benchmarks/foundation.py                  # everything (about 5 minutes on 2 cores)
    python benchmarks/foundation.py --only speed     # just (b)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genrec.data.dataset import EvalSet, Histories
from genrec.data.sources import SourceSpec, load_dataset
from genrec.data.types import DataConfig, DataError
from genrec.evaluation import evaluate
from genrec.models import get_model_class
from genrec.training import fit

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("GENREC_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
KS = (10, 50)


def beauty_source() -> tuple[SourceSpec, str]:
    """The amazon-beauty folder (sequences + item text) when a reader for it exists, else Beauty.txt
    read as `sequences`: the same interactions in the same order."""
    from genrec.data.readers import read

    folder = ROOT / "amazon-beauty"
    try:
        read(folder)
        return SourceSpec(data=str(folder)), f"--data {folder}"
    except DataError:
        return SourceSpec(
            data=str(folder / "Beauty.txt"), format="sequences"
        ), f"--data {folder / 'Beauty.txt'} --format sequences"


def datasets() -> list[tuple[str, SourceSpec, str]]:
    out = []
    for name in ("ml-1m-u2999", "ml-100k", "ml-latest-small"):
        out.append((name, SourceSpec(data=str(ROOT / name)), f"--data {ROOT / name}"))
    spec, args = beauty_source()
    out.insert(1, ("amazon-beauty", spec, args))
    return out


def accuracy(only: list[str] | None, save) -> list[dict]:
    rows = []
    for name, spec, args in datasets():
        if only and name not in only:
            continue
        t = time.perf_counter()
        ds = load_dataset(spec, DataConfig())
        prep_s = time.perf_counter() - t
        for model_name in ("pop", "ease"):
            model = get_model_class(model_name)()
            t = time.perf_counter()
            fit(model, ds, progress=False)
            fit_s = time.perf_counter() - t
            t = time.perf_counter()
            m = evaluate(model.score, ds.test, ks=KS, item_popularity=ds.item_popularity)
            eval_s = time.perf_counter() - t
            rows.append(
                {
                    "dataset": name,
                    "model": model_name,
                    "users": ds.n_users,
                    "items": ds.n_items,
                    "interactions": ds.manifest["n_interactions"],
                    "test_users": len(ds.test),
                    **{
                        key: m[key]
                        for key in ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "coverage@10", "avg_pop@10")
                    },
                    "l2": model.fit_info_.get("l2"),
                    "l2_search": model.fit_info_.get("search", {}).get("tried"),
                    "fit_s": fit_s,
                    "eval_s": eval_s,
                    "prepare_s": prep_s,
                    "command": f"genrec train {args} --model {model_name} --k 10,50",
                }
            )
            r = rows[-1]
            print(
                f"  {name:<16} {model_name:<5} HR@10 {r['hr@10']:.4f} NDCG@10 {r['ndcg@10']:.4f} "
                f"HR@50 {r['hr@50']:.4f} NDCG@50 {r['ndcg@50']:.4f} fit {fit_s:6.1f}s l2 {r['l2']}",
                flush=True,
            )
        save(rows)  # after each dataset: a long run keeps what it has measured
    return rows


def lookup_scores(all_scores: torch.Tensor, users: np.ndarray):
    """A score_fn that returns precomputed rows, so only the evaluator is timed."""
    row_of = np.zeros(int(users.max()) + 1, dtype=np.int64)
    row_of[users] = np.arange(len(users))

    def score(h: Histories) -> torch.Tensor:
        rows = row_of[h.users]
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1:  # contiguous batch: a view, no copy
            return all_scores[rows[0] : rows[-1] + 1]
        return all_scores[torch.from_numpy(rows)]

    return score


def time_eval(score_fn, evalset, repeats: int = 5, **kw) -> tuple[float, float, dict]:
    """Median wall and CPU seconds of `evaluate` (CPU time is what the shared machine's load cannot
    inflate; with 2 threads it also counts both threads' work)."""
    evaluate(score_fn, evalset, ks=(10, 20, 50), **kw)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        m = evaluate(score_fn, evalset, ks=(10, 20, 50), **kw)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu), m


def score_all(model, evalset, batch_size: int = 1024) -> tuple[torch.Tensor, float]:
    t = time.perf_counter()
    with torch.no_grad():
        parts = [
            model.score(evalset.history.take(slice(s, s + batch_size)))
            for s in range(0, len(evalset), batch_size)
        ]
    return torch.cat(parts), time.perf_counter() - t


def ml1m_sized_case(seed: int = 0) -> tuple[EvalSet, np.ndarray]:
    """6,040 users x 3,706 items (the size of the full ML-1M) with ML-1M-like history lengths:
    >= 20, long-tailed, about a million interactions; items drawn from a Zipf popularity."""
    rng = np.random.default_rng(seed)
    U, n_items = 6040, 3706
    lens = np.clip(rng.lognormal(np.log(100), 1.0, U).astype(np.int64), 20, 2314)
    logp = -0.9 * np.log(np.arange(1, n_items + 1))
    # distinct items per user, popularity-weighted: the n largest of log p + Gumbel noise
    seqs = [np.argpartition(-(logp + rng.gumbel(size=n_items)), n)[:n] + 1 for n in lens]
    users = np.arange(1, U + 1)
    hist = Histories.from_lists(seqs, users)
    targets = Histories.from_lists([[t] for t in rng.integers(1, n_items + 1, U)], users)
    return EvalSet(hist, targets), np.bincount(hist.items, minlength=n_items + 1)


def speed() -> list[dict]:
    rows = []

    def run(label: str, evalset: EvalSet, n_items: int, scores: torch.Tensor, score_s: float, pop) -> None:
        fn = lookup_scores(scores, evalset.history.users)
        eval_s, cpu_s, m = time_eval(fn, evalset, item_popularity=pop)
        rows.append(
            {
                "case": label,
                "users": len(evalset),
                "items": n_items,
                "history_nnz": len(evalset.history.items),
                "eval_s": eval_s,
                "eval_cpu_s": cpu_s,
                "scoring_s": score_s,
                "ndcg@10": m["ndcg@10"],
                "ks": "10,20,50",
            }
        )
        print(
            f"  {label:<36} {len(evalset):>5} users x {n_items:>5} items: evaluate {eval_s:.3f}s wall, "
            f"{cpu_s:.3f}s CPU (scoring {score_s:.3f}s, not included)",
            flush=True,
        )

    ds = load_dataset(SourceSpec(data=str(ROOT / "ml-1m-u2999")), DataConfig())
    for name, model in (("pop", get_model_class("pop")()), ("ease", get_model_class("ease")(l2=500.0))):
        model.fit(ds)
        scores, score_s = score_all(model, ds.test)
        run(f"ml-1m-u2999 test, {name} scores", ds.test, ds.n_items, scores, score_s, ds.item_popularity)
    big, pop = ml1m_sized_case()
    n_items = len(pop) - 1
    t = time.perf_counter()
    pop_scores = torch.from_numpy(pop.astype(np.float32)).expand(len(big), -1).contiguous()
    run("6,040 x 3,706, pop scores (ties)", big, n_items, pop_scores, time.perf_counter() - t, pop)
    t = time.perf_counter()
    rnd = torch.rand(len(big), n_items + 1, generator=torch.Generator().manual_seed(0))
    run("6,040 x 3,706, random scores", big, n_items, rnd, time.perf_counter() - t, pop)
    return rows


def print_tables(acc: list[dict], spd: list[dict]) -> None:
    if acc:
        print("\n| dataset | model | HR@10 | NDCG@10 | HR@50 | NDCG@50 | fit s | lambda |")
        print("|---|---|---|---|---|---|---|---|")
        for r in acc:
            lam = "-" if r["model"] == "pop" else f"{r['l2']:g}"
            print(
                f"| {r['dataset']} | {r['model']} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} "
                f"| {r['hr@50']:.4f} "
                f"| {r['ndcg@50']:.4f} | {r['fit_s']:.1f} | {lam} |"
            )
    if spd:
        print(
            "\n| case | users x items | history nnz | evaluate s wall | evaluate s CPU | scoring s (apart) |"
        )
        print("|---|---|---|---|---|---|")
        for r in spd:
            print(
                f"| {r['case']} | {r['users']:,} x {r['items']:,} | {r['history_nnz']:,} "
                f"| {r['eval_s']:.3f} | {r['eval_cpu_s']:.3f} "
                f"| {r['scoring_s']:.3f} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["accuracy", "speed"], help="run one part only")
    ap.add_argument("--datasets", help="comma-separated subset for the accuracy part, e.g. ml-100k")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    ap.add_argument("--out", default=str(HERE / "results" / "foundation.json"))
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_avg_start": os.getloadavg()[0],
    }
    print(
        f"foundation benchmark: torch {env['torch']}, {env['threads']} threads, {env['cpus']} CPUs, "
        f"load average {env['load_avg_start']:.1f} (the machine is shared: timings scale with it)"
    )
    out = Path(a.out)

    def save(rows: list[dict], part: str = "accuracy") -> None:
        """Merge into the JSON file: rows of other datasets/cases (from earlier runs) are kept."""
        result = json.loads(out.read_text()) if out.exists() else {}
        key = ("dataset", "model") if part == "accuracy" else ("case",)
        new = {tuple(r[k] for k in key) for r in rows}
        kept = [r for r in result.get(part, []) if tuple(r.get(k) for k in key) not in new]
        env["load_avg_end"] = os.getloadavg()[0]
        result[part] = kept + [dict(r, env=env) for r in rows]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=float))

    only = a.datasets.split(",") if a.datasets else None
    acc = accuracy(only, save) if a.only in (None, "accuracy") else []
    spd = speed() if a.only in (None, "speed") else []
    if spd:
        save(spd, "evaluation_speed")
    print_tables(acc, spd)
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
