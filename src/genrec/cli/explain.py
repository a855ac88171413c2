"""`genrec explain`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genrec.cli.common import RAW, Subparsers, positive_int
from genrec.data.types import DataError


def cmd_explain(a: argparse.Namespace) -> int:
    from genrec.data.ids import UnknownId
    from genrec.generation import MAX_K, Generator

    if a.k > MAX_K:
        raise DataError(f"-k {a.k} is over the limit of {MAX_K} items per list")
    gen = Generator.from_run(a.run)
    try:
        result = gen.explain(a.user, item=a.item, k=a.k, top=a.top, exclude_seen=not a.include_seen)
    except UnknownId as e:
        raise DataError(f"{e}; explain takes the dataset's own user and item ids") from None
    if a.json:
        print(json.dumps(result))
        return 0
    what = f"item {a.item}" if a.item is not None else f"the top {a.k}"
    print(
        f"why user {result['user_id']} gets {what} ({Path(a.run).name} on {gen.dataset.name}, "
        f"{result['history_length']} history items; delta = score lost without that history item):"
    )
    for rank, r in enumerate(result["items"], 1):
        print(f"{rank:>3}. {r['item_id']:>10}  score {r['score']:.4f}  {r.get('title', '')}")
        for why in r["because"]:
            ago = "the last item" if why["position"] == 0 else f"{why['position']} items before the last"
            print(f"       because {why['item_id']} {why.get('title', '')} (+{why['delta']:.4f}; {ago})")
        if not r["because"]:
            print("       no single history item raises its score")
        if abs(r["order_effect"]) > 1e-6:
            print(f"       order of the history: {r['order_effect']:+.4f} (against the same items reversed)")
    return 0


def add_explain_command(sub: Subparsers) -> None:
    ex = sub.add_parser(
        "explain",
        help="why a user gets each recommended item (history items and their effect on the score)",
        formatter_class=RAW,
        description="Explain a user's list, or one item: for each item, the history items whose removal "
        "lowers its score the most (leave-one-out on the model's own score, so removing that item "
        "lowers the score by exactly the delta shown), how recent each is, and, for sequence "
        "models, what the order of the history adds.\n\n"
        "  genrec explain runs/NAME --user 42\n"
        "  genrec explain runs/NAME --user 42 --item 2571 --json",
    )
    ex.add_argument("run", help="run directory")
    ex.add_argument("--user", required=True, help="the dataset's own user id")
    ex.add_argument("--item", help="explain this item only (in the list or not)")
    ex.add_argument("-k", "--k", type=positive_int, default=10, help="list length (default 10)")
    ex.add_argument("--top", type=positive_int, default=3, help="history items cited per item (default 3)")
    ex.add_argument("--include-seen", action="store_true", help="allow history items in the list")
    ex.add_argument("--json", action="store_true", help="print the explanation as JSON")
    ex.set_defaults(func=cmd_explain)
