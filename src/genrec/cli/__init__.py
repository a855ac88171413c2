"""The `genrec` command. Users and items are addressed by the dataset's own ids everywhere.

argparse lives in this package only: one module per command group, shared argument helpers in
`common`.
"""

from __future__ import annotations

import argparse
import sys

from genrec.cli.common import RAW
from genrec.cli.data import add_data_command
from genrec.cli.demo import add_demo_command
from genrec.cli.evaluate import add_evaluate_command
from genrec.cli.explain import add_explain_command
from genrec.cli.export import add_export_command
from genrec.cli.items import add_items_command
from genrec.cli.recommend import add_recommend_command
from genrec.cli.report import add_report_command
from genrec.cli.serve import add_serve_command, add_update_command
from genrec.cli.train import add_models_command, add_train_command
from genrec.data.types import DataError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genrec",
        description="genrec: generative recommendation from raw logs to served recommendations.",
        epilog="Examples:\n  genrec train --data ../shared/datasets/ml-1m-u2999 --model ease\n"
        "  genrec evaluate runs/NAME --split test --k 10,20,50\n"
        "  genrec recommend runs/NAME --user 42 -k 10",
        formatter_class=RAW,
    )
    sub = p.add_subparsers(dest="command", required=True)
    # in the order `genrec --help` lists them
    for add in (
        add_data_command,
        add_train_command,
        add_evaluate_command,
        add_recommend_command,
        add_explain_command,
        add_report_command,
        add_models_command,
        add_demo_command,
        add_export_command,
        add_serve_command,
        add_update_command,
        add_items_command,
    ):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parser.parse_args(argv)
    a.argv = argv
    try:
        return a.func(a)
    except (DataError, ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"genrec: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ngenrec: interrupted", file=sys.stderr)
        return 130
