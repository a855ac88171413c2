"""Peak memory and time of `genrec data prepare` on ML-20M-sized input.

Generates a synthetic `ratings.csv` (+ `movies.csv`) with ML-20M's shape in a temp dir: 138,493 users,
movie ids up to 131,262 (26,744 distinct), ratings 0.5..5, timestamps 1995..2015, rows sorted by
(userId, movieId) like the real file, per-user counts long-tailed (>= 20), item popularity Zipf-like.
Then runs `genrec data prepare --data DIR` in a fresh subprocess per size and reports the child's peak
RSS (resource.getrusage(RUSAGE_CHILDREN).ru_maxrss) and wall seconds. Sizes are compared in the same run
(RSS per input row, RSS relative to the raw file size).

    python benchmarks/preprocess_memory.py                 # 2M and 20M rows
    python benchmarks/preprocess_memory.py --rows 1000000  # quick check
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

import numpy as np

HERE = Path(__file__).resolve().parent
N_USERS, N_MOVIES, MAX_MOVIE_ID = 138_493, 26_744, 131_262
T0, T1 = 789_652_009, 1_427_784_002


def generate(folder: Path, rows: int, seed: int = 0) -> None:
    """Write ratings.csv (rows x userId,movieId,rating,timestamp) and movies.csv in chunks of users."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    n_users = min(N_USERS, max(1, rows // 144))  # ML-20M: ~144 ratings per user
    counts = np.maximum(20, rng.lognormal(4.2, 1.1, n_users)).astype(np.int64)
    counts = np.maximum(1, np.round(counts * rows / counts.sum())).astype(np.int64)
    counts[-1] += rows - counts.sum()
    if counts[-1] < 1:  # rounding overshoot: take it from the largest users
        counts[np.argmax(counts)] += counts[-1] - 1
        counts[-1] = 1
    movie_ids = np.sort(rng.choice(np.arange(1, MAX_MOVIE_ID + 1), N_MOVIES, replace=False))
    pop = 1.0 / np.arange(1, N_MOVIES + 1) ** 0.9
    pop = rng.permutation(pop / pop.sum())
    opts = pacsv.WriteOptions(include_header=False)
    with open(folder / "ratings.csv", "wb") as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        start = 0
        for lo in range(0, n_users, 10_000):
            c = counts[lo : lo + 10_000]
            n = int(c.sum())
            # oversample, drop repeated (user, movie) pairs (the real file has none), keep n rows at random
            c_over = (c * 1.5).astype(np.int64) + 5
            users = np.repeat(np.arange(lo + 1, lo + 1 + len(c)), c_over)
            items = movie_ids[rng.choice(N_MOVIES, len(users), p=pop)]
            order = np.lexsort((items, users))  # the real file is sorted by user, then movie
            users, items = users[order], items[order]
            first = np.r_[True, (users[1:] != users[:-1]) | (items[1:] != items[:-1])]
            users, items = users[first], items[first]
            keep = np.sort(rng.choice(len(users), min(n, len(users)), replace=False))
            users, items = users[keep], items[keep]
            n = len(users)
            tbl = pa.table(
                {
                    "userId": users,
                    "movieId": items,
                    "rating": rng.integers(1, 11, n) / 2.0,
                    "timestamp": rng.integers(T0, T1, n),
                }
            )
            pacsv.write_csv(tbl, f, opts)
            start += n
    with open(folder / "movies.csv", "w") as f:
        f.write("movieId,title,genres\n")
        for m in movie_ids:
            f.write(f'{m},"Movie {m}, The ({1900 + m % 115})",Drama|Comedy\n')


def measure(folder: Path, cache: Path) -> dict:
    """Run prepare in a fresh child; peak RSS of that child only."""
    env = {**os.environ, "GENREC_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "genrec.cli", "data", "prepare", "--data", str(folder)],
        env=env,
        capture_output=True,
        text=True,
    )
    secs = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"prepare failed:\n{out.stderr}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN is the max over all waited-for children, so sizes run from small to large
    assert peak_kb >= before
    return {"peak_rss_mb": peak_kb / 1024, "seconds": secs, "summary": out.stdout.strip().splitlines()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 20_000_000])
    ap.add_argument("--tmp", default=None, help="where to write the generated files (default: system temp)")
    a = ap.parse_args()
    results = []
    for rows in sorted(a.rows):
        with tempfile.TemporaryDirectory(dir=a.tmp, prefix="genrec-mem-") as d:
            folder = Path(d) / f"ml-synth-{rows}"
            folder.mkdir()
            t = time.perf_counter()
            generate(folder, rows)
            gen_s = time.perf_counter() - t
            size_mb = (folder / "ratings.csv").stat().st_size / 2**20
            r = measure(folder, Path(d) / "cache")
            peak = r["peak_rss_mb"]
            r.update(
                rows=rows,
                csv_mb=size_mb,
                generate_seconds=gen_s,
                rss_over_csv=peak / size_mb,
                bytes_per_row=peak * 2**20 / rows,
            )
            results.append(r)
            print(
                f"{rows:>12,} rows: peak RSS {peak:,.0f} MB, {r['seconds']:.1f}s ({r['summary']})", flush=True
            )
    print(f"\n{'rows':>12} {'csv MB':>8} {'peak RSS MB':>12} {'B/row':>7} {'RSS/csv':>8} {'seconds':>8}")
    for r in results:
        print(
            f"{r['rows']:>12,} {r['csv_mb']:>8.0f} {r['peak_rss_mb']:>12,.0f} {r['bytes_per_row']:>7.0f} "
            f"{r['rss_over_csv']:>8.2f} {r['seconds']:>8.1f}"
        )
    if len(results) > 1:
        a0, a1 = results[0], results[-1]
        print(
            f"ratio {a1['rows'] / a0['rows']:.0f}x rows -> {a1['peak_rss_mb'] / a0['peak_rss_mb']:.2f}x "
            f"peak RSS, {a1['seconds'] / a0['seconds']:.2f}x time"
        )
    out = HERE / "results" / "preprocess_memory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"results": results, "python": sys.version.split()[0]}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
