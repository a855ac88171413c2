"""A repeat-consumption dataset built from amazon-beauty: which brand a user buys next.

Each Beauty interaction becomes (user, brand, time): items are brands (an item without a brand keeps
its own ASIN), so users come back to the same "item" often and order matters less than in the product
sequence. The purchase times are Beauty's own (days), so time-aware models see when a user came back.
Written as a CSV for `genrec train --data FILE --dedup none` (repeats kept); evaluate with
`--include-seen` (a brand the user bought before may be the right answer).

    python benchmarks/repeat_dataset.py /tmp/beauty-brands.csv
    genrec train --data /tmp/beauty-brands.csv --dedup none --include-seen --model ease

Prints the dataset's size and repeat share.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("GENREC_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
BRAND = re.compile(r"Brand: ([^;]+)")


def main() -> int:
    from genrec.data.sources import SourceSpec, load_dataset
    from genrec.data.types import DataConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="CSV to write")
    p.add_argument("--data", default=str(ROOT / "amazon-beauty"))
    a = p.parse_args()
    ds = load_dataset(SourceSpec(data=a.data), DataConfig())
    text = ds.item_text if ds.item_text is not None else np.array([""] * (ds.n_items + 1))
    brand = np.array(
        [
            m.group(1).strip() if (m := BRAND.search(str(t))) else f"asin:{raw}"
            for t, raw in zip(text, ds.item_raw)
        ]
    )
    # every user's whole sequence: training history, then the validation and test targets
    rows = np.arange(1, ds.n_users + 1)
    parts = [ds.train.take(rows), ds.valid.targets, ds.test.targets]
    users = np.concatenate([ds.user_raw[p.users][p.row_ids()] if p.users is not None else [] for p in parts])
    items = np.concatenate([p.items for p in parts])
    stage = np.concatenate([np.full(len(p.items), k) for k, p in enumerate(parts)])
    pos = np.concatenate([p.items * 0 + (np.arange(len(p.items)) - p.indptr[p.row_ids()]) for p in parts])
    timed = all(p.timestamps is not None for p in parts)
    times = np.concatenate([p.timestamps for p in parts]) if timed else np.zeros(len(items), dtype=np.int64)
    df = pd.DataFrame({"user": users, "item": brand[items], "stage": stage, "pos": pos, "timestamp": times})
    # the split is by time, so this order is also each user's time order (ties keep it when read back)
    df = df.sort_values(["user", "stage", "pos"], kind="stable")
    if not timed:  # a source without times: each user's purchase order stands in for it
        df["timestamp"] = df.groupby("user").cumcount()
    df[["user", "item", "timestamp"]].to_csv(a.out, index=False)
    repeat = df.duplicated(["user", "item"]).mean()
    print(
        f"{len(df):,} interactions, {df.user.nunique():,} users, {df.item.nunique():,} brands; "
        f"{repeat:.1%} repeat an earlier (user, brand) pair -> {a.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
