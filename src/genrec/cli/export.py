"""`genrec export`."""

from __future__ import annotations

import argparse

from genrec.cli.common import RAW, Subparsers
from genrec.generation import export


def cmd_export(a: argparse.Namespace) -> int:
    import torch

    from genrec.training.runs import load_run

    run = load_run(a.run)
    with torch.no_grad():
        meta = export.export_embeddings(run.model, run.dataset, a.out, run=str(a.run))
    users = f"{meta['n_users']:,} user states" if meta["n_users"] else "no user states"
    print(
        f"wrote {a.out}: {meta['n_items']:,} item vectors and {users}, dimension {meta['dim']} "
        f"({meta['model']} on {meta['dataset']}; {meta['scoring']})"
    )
    return 0


def add_export_command(sub: Subparsers) -> None:
    p = sub.add_parser(
        "export",
        help="export item embeddings and user states to Parquet",
        description=export.__doc__,
        formatter_class=RAW,
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--out", required=True, help="Parquet file to write, e.g. emb.parquet")
    p.set_defaults(func=cmd_export)
