"""Argument groups, argument types and tables shared by the `genrec` commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from genrec.data.types import PROTOCOLS, DataConfig, DataError

RAW = argparse.RawDescriptionHelpFormatter
Subparsers = argparse._SubParsersAction  # what `add_subparsers` returns; commands add themselves to it


def add_source_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data source (name exactly one)")
    g.add_argument(
        "--data", help="a file or folder (MovieLens, sequences, CSV/Parquet, RecBole, Amazon, ...)"
    )
    g.add_argument(
        "--dataset", help="a public dataset name (e.g. ml-1m): $GENREC_DATA_DIR/NAME, downloaded if absent"
    )
    g.add_argument(
        "--synthetic", action="store_true", help="the embedded synthetic dataset (the demo default)"
    )
    from genrec.data.readers import FORMATS

    g.add_argument("--format", help=f"reader format when auto-detection is not enough: {', '.join(FORMATS)}")
    t = p.add_argument_group("table files (format 'table': CSV, TSV, Parquet)")
    t.add_argument(
        "--columns",
        metavar="FIELD=COL,...",
        help="which columns hold user, item, timestamp, rating, e.g. "
        "user=uid,item=sku,timestamp=ts (unmapped fields are guessed from names like userId, "
        "item_id, timestamp, rating)",
    )
    t.add_argument("--sep", help="field separator (default: from the file name / first line; 'tab' for TSV)")
    t.add_argument(
        "--no-header",
        dest="header",
        action="store_false",
        default=None,
        help="the file has no header row; --columns then names 0-based positions (user=0,item=1)",
    )
    t.add_argument(
        "--items", metavar="FILE", help="item metadata table (CSV/TSV/Parquet) joined on the item id"
    )
    t.add_argument(
        "--item-columns",
        metavar="FIELD=COL,...",
        help="columns of --items: item, title, categories, category, brand, price, description",
    )
    d = p.add_argument_group("preprocessing")
    d.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="loo",
        help="loo: leave-one-out (default); temporal: global time cut; "
        "users: held-out users with 80/20 fold-in",
    )
    d.add_argument("--rating-threshold", type=float, default=None, help="keep ratings >= this (default: all)")
    d.add_argument("--min-user", type=int, default=0, help="iterative k-core: min interactions per user")
    d.add_argument("--min-item", type=int, default=0, help="iterative k-core: min interactions per item")
    d.add_argument(
        "--dedup",
        choices=["none", "first", "last"],
        default="first",
        help="which copy of a repeated (user, item) pair to keep",
    )


def source_from_args(a: argparse.Namespace):
    from genrec.data.sources import SourceSpec

    opts = {
        "columns": a.columns,
        "sep": a.sep,
        "header": a.header,
        "items": a.items,
        "item_columns": a.item_columns,
    }
    if a.items:  # absolute: the run records where its data came from, whatever folder it runs in
        opts["items"] = str(Path(a.items).resolve())
    data = str(Path(a.data).resolve()) if a.data else None
    spec = SourceSpec(
        data=data,
        dataset=a.dataset,
        format=a.format,
        synthetic=a.synthetic,
        options={k: v for k, v in opts.items() if v is not None},
    )
    if not (a.data or a.dataset or a.synthetic):
        raise DataError("no data source: pass --data PATH, --dataset NAME or --synthetic")
    data_cfg = DataConfig(
        protocol=a.protocol,
        rating_threshold=a.rating_threshold,
        dedup=a.dedup,
        min_user_interactions=a.min_user,
        min_item_interactions=a.min_item,
    )
    return spec, data_cfg


def parse_ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 10,20,50, got {text!r}"
        ) from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"cut-offs must be >= 1, got {text!r}")
    return ks


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def print_metrics_table(rows: dict[str, dict], ks: list[int]) -> None:
    cols = [f"{m}@{k}" for k in ks for m in ("hr", "recall", "ndcg")] + ["mrr"]
    cols += [f"coverage@{k}" for k in ks]
    width = max(len(r) for r in rows) + 2
    print("".join([" " * width] + [f"{c:>12}" for c in cols]))
    for name, m in rows.items():
        print("".join([f"{name:<{width}}"] + [f"{m.get(c, float('nan')):>12.4f}" for c in cols]))
