"""`genrec data prepare`."""

from __future__ import annotations

import argparse
import time

from genrec.cli.common import RAW, Subparsers, add_source_args, source_from_args


def cmd_data_prepare(a: argparse.Namespace) -> int:
    from genrec.data.sources import load_dataset

    spec, cfg = source_from_args(a)
    t = time.time()
    ds = load_dataset(spec, cfg)
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
        "  genrec data prepare --dataset ml-1m --protocol temporal",
    )
    add_source_args(prep)
    prep.set_defaults(func=cmd_data_prepare)
