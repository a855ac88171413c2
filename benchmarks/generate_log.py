"""Write a synthetic interaction log of N rows to Parquet, in row-group chunks with bounded memory.

Columns user, item, timestamp (unix seconds), rating (float32, 0.5..5). Shape of a large public log:
users' activity is long-tailed (lognormal, >= 3 events), item popularity Zipf-like (exponent 0.9, ids
shuffled so popularity does not follow the id), 3% of events repeat the user's previous item, so with
popular items met again ~15% of rows repeat a (user, item) pair; timestamps from 2010 on, ~20% of them
tied with the user's previous event. Rows come in
chunks of users with each chunk shuffled, so neither the file nor a chunk is sorted by time.
Memory: per-user counts and the item CDF (tens of MB at 100M rows) plus one chunk.

    python benchmarks/generate_log.py /tmp/log-100m.parquet                  # 100,000,000 rows
    python benchmarks/generate_log.py /tmp/log-10m.parquet --rows 10000000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

T0, T1 = 1_262_304_000, 1_704_067_200  # 2010-01-01 .. 2024-01-01
CHUNK_ROWS = 2_000_000


def generate(
    path: Path, rows: int, seed: int = 0, chunk_rows: int = CHUNK_ROWS, verbose: bool = False
) -> int:
    """Write `rows` interactions to `path` (Parquet, one row group per chunk); returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_users = max(1, rows // 50)
    n_items = max(100, rows // 20)
    counts = np.maximum(3, rng.lognormal(3.0, 1.2, n_users)).astype(np.int64)
    counts = np.maximum(1, np.floor(counts * (rows / counts.sum()))).astype(np.int64)
    counts[-1] += rows - counts.sum()  # exact total; the last user absorbs the rounding
    if counts[-1] < 1:  # overshoot: take it from the most active user
        counts[np.argmax(counts)] -= 1 - counts[-1]
        counts[-1] = 1
    cdf = np.cumsum(1.0 / np.arange(1, n_items + 1) ** 0.9)
    cdf /= cdf[-1]
    item_ids = rng.permutation(n_items).astype(np.int64) + 1
    ends = np.cumsum(counts)
    schema = pa.schema(
        [("user", pa.int64()), ("item", pa.int64()), ("timestamp", pa.int64()), ("rating", pa.float32())]
    )
    written, lo, t = 0, 0, time.perf_counter()
    with pq.ParquetWriter(path, schema, compression="snappy") as w:
        while lo < n_users:
            hi = int(np.searchsorted(ends, ends[lo - 1] + chunk_rows if lo else chunk_rows, side="right"))
            hi = min(max(hi, lo + 1), n_users)
            c = counts[lo:hi]
            n = int(c.sum())
            users = np.repeat(np.arange(lo + 1, hi + 1, dtype=np.int64), c)
            items = item_ids[np.minimum(np.searchsorted(cdf, rng.random(n)), n_items - 1)]
            starts = np.repeat(np.cumsum(c) - c, c)
            repeat = rng.random(n) < 0.03
            repeat &= np.arange(n) > starts  # the user's previous event exists
            items[repeat] = items[np.flatnonzero(repeat) - 1]
            # per user: a start time plus gaps, some of them zero (ties)
            first = rng.integers(T0, T1 - 86_400 * 365, len(c))
            gaps = rng.exponential(6 * 3600, n).astype(np.int64) * (rng.random(n) < 0.8)
            csum = np.cumsum(gaps)
            ts = np.repeat(first, c) + csum - np.repeat(csum[np.cumsum(c) - c], c)
            ratings = (rng.integers(1, 11, n) / 2.0).astype(np.float32)
            perm = rng.permutation(n)
            table = pa.table(
                {"user": users[perm], "item": items[perm], "timestamp": ts[perm], "rating": ratings[perm]},
                schema=schema,
            )
            w.write_table(table, row_group_size=n)
            written += n
            lo = hi
            if verbose:
                print(f"  {written:,} / {rows:,} rows ({time.perf_counter() - t:.0f}s)", flush=True)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", type=Path, help="the Parquet file to write")
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t = time.perf_counter()
    n = generate(a.path, a.rows, a.seed, verbose=True)
    size = a.path.stat().st_size / 2**20
    print(f"wrote {n:,} rows to {a.path} ({size:,.0f} MB) in {time.perf_counter() - t:.0f}s")


if __name__ == "__main__":
    main()
