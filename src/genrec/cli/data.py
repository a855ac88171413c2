"""`genrec data prepare`."""

from __future__ import annotations

import argparse
import time

from genrec.cli.common import RAW, Subparsers, add_source_args, source_from_args
from genrec.data.sources import ENGINES


def cmd_data_prepare(a: argparse.Namespace) -> int:
    from genrec.data.sources import load_dataset

    spec, cfg = source_from_args(a)
    t = time.time()
    ds = load_dataset(spec, cfg, engine=a.engine, memory_limit=a.memory_limit, progress=True)
    m = ds.manifest
    print(
        f"{ds.name}: {m['n_users']:,} users, {m['n_items']:,} items, {m['n_interactions']:,} interactions "
        f"({m['n_raw']:,} read) in {time.time() - t:.1f}s"
    )
    print(
        f"protocol {ds.protocol}: {m['n_train']:,} training interactions, "
        f"{m['n_valid_users']:,} validation "
        f"users, {m['n_test_users']:,} test users; timestamps: {'yes' if m['has_timestamps'] else 'no'}; "
        f"item titles: {'yes' if ds.item_title is not None else 'no'}"
    )
    print(f"cached at {m.get('cache_path', '(not cached)')}")
    return 0


def add_data_command(sub: Subparsers) -> None:
    data = sub.add_parser("data", help="prepare datasets").add_subparsers(dest="data_command", required=True)
    prep = data.add_parser(
        "prepare",
        help="read, clean, filter, index and split a dataset; cache it on disk",
        formatter_class=RAW,
        description="Read a dataset, convert ratings to implicit interactions, de-duplicate, k-core filter,\n"
        "index (contiguous ids, 0 = padding) and split it; the result is cached under\n"
        "$GENREC_CACHE_DIR and reused while the input files and settings are unchanged.",
        epilog="Examples:\n  genrec data prepare --data ../shared/datasets/ml-1m-u2999\n"
        "  genrec data prepare --data ../shared/datasets/amazon-beauty/Beauty.txt --format sequences\n"
        "  genrec data prepare --dataset ml-1m --protocol temporal\n"
        "  genrec data prepare --data events.parquet --engine duckdb --memory-limit 4GB",
    )
    add_source_args(prep)
    e = prep.add_argument_group("engine")
    e.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="memory: pandas/numpy in memory; duckdb: out of core, for table files (CSV/Parquet) larger "
        "than memory, protocol loo (pip install 'genrec[large]'); auto (default): duckdb for a table "
        "file of 1 GiB or more when duckdb is installed and the protocol is loo, else memory. "
        "Both write the same dataset",
    )
    e.add_argument(
        "--memory-limit",
        default=None,
        metavar="SIZE",
        help="duckdb engine: memory cap of its buffers, e.g. 2GB (default); it spills to disk beyond it",
    )
    prep.set_defaults(func=cmd_data_prepare)
