"""`genrec items add`."""

from __future__ import annotations

import argparse

from genrec.cli.common import Subparsers


def cmd_items_add(a: argparse.Namespace) -> int:
    from genrec.training.items import add_items

    ids, codes = add_items(a.run, a.csv)
    print(f"added {len(ids)} item(s) to {a.run}; they are recommendable now (no retraining):")
    for rid, c in list(zip(ids, codes))[:20]:
        print(f"  {rid!s:>12}  {c}")
    if len(ids) > 20:
        print(f"  ... and {len(ids) - 20} more")
    return 0


def add_items_command(sub: Subparsers) -> None:
    items = sub.add_parser("items", help="manage a run's item catalogue (cold-start items)")
    isub = items.add_subparsers(dest="items_command", required=True)
    add = isub.add_parser(
        "add",
        help="add new items from their text (models with semantic IDs, e.g. tiger)",
        description="Encode new items' text, give them semantic IDs with the run's RQ-VAE and add "
        "them to the catalogue. CSV header: item_id,title[,categories,brand,"
        "description,price].",
    )
    add.add_argument("run", help="run directory (trained with --model tiger)")
    add.add_argument("csv", help="CSV of new items")
    add.set_defaults(func=cmd_items_add)
