"""HSTU with and without rating side tokens, same data, settings and number of epochs.

Each variant runs in its own process through `benchmarks/sequential.py --one` (same protocol: leave-one-out,
max length 200, full ranking, history excluded, best validation epoch restored), with `side_tokens=none`
and `side_tokens=rating`; everything else is the same `--set` list. Prints one table with the ratio of
the two and writes benchmarks/results/side_tokens.json (it does not touch sequential.json).

    python benchmarks/side_tokens.py --dataset ml-1m-u2999 --set epochs=8 --set threads=1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sequential import spawn_one  # noqa: E402  (the same --one subprocess runner)

RESULTS = HERE / "results" / "side_tokens.json"
METRICS = ("hr@10", "ndcg@10", "hr@50", "ndcg@50")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-1m-u2999")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="HSTU setting for both runs"
    )
    a = p.parse_args()
    rows = []
    for side in ("none", "rating"):
        print(f"== {a.dataset} / hstu side_tokens={side}", flush=True)
        row = spawn_one(a.dataset, "hstu", a.set + [f"side_tokens={side}"])
        if row is None:
            return 1
        row["side_tokens"] = side
        rows.append(row)
    base, side = rows
    ratio = {m: side[m] / base[m] for m in METRICS}
    out = {
        "dataset": a.dataset,
        "settings": a.set,
        "rows": rows,
        "ratio_rating_over_none": ratio,
        "load_average_at_end": os.getloadavg()[0],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=float))
    print(
        f"\n{'side_tokens':<12}"
        + "".join(f"{m:>9}" for m in METRICS)
        + f"{'valid':>9}{'s/epoch':>9}{'epochs':>7}{'best':>6}{'RSS MB':>8}"
    )
    for r in rows:
        print(
            f"{r['side_tokens']:<12}"
            + "".join(f"{r[m]:>9.4f}" for m in METRICS)
            + f"{r['valid_ndcg@10']:>9.4f}{r['seconds_per_epoch']:>9.1f}{r['epochs']:>7}"
            f"{r['best_epoch']:>6}{r['peak_rss_mb']:>8.0f}"
        )
    print(f"{'ratio':<12}" + "".join(f"{ratio[m]:>9.3f}" for m in METRICS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
