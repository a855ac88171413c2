"""`genrec evaluate`."""

from __future__ import annotations

import argparse
import json
import time

from genrec.cli.common import RAW, Subparsers, parse_ks, print_metrics_table


def cmd_evaluate(a: argparse.Namespace) -> int:
    from genrec.evaluation import evaluate
    from genrec.training.runs import load_run

    run = load_run(a.run)
    exclude = run.config.exclude_seen if not a.include_seen else False
    t = time.time()
    m = evaluate(
        run.model.score,
        getattr(run.dataset, a.split),
        a.k,
        exclude,
        item_popularity=run.dataset.item_popularity,
        progress=not a.json,
    )
    m["seconds"] = time.time() - t
    if a.json:
        print(json.dumps({"run": str(a.run), "split": a.split, "history_excluded": exclude, **m}))
    else:
        print(
            f"{run.dataset.name} / {run.config.model} / {a.split} split, {m['n_users']} users, "
            f"full ranking over {run.dataset.n_items} items, "
            f"history {'excluded' if exclude else 'kept'}, ties against the model"
        )
        print_metrics_table({a.split: m}, a.k)
    return 0


def add_evaluate_command(sub: Subparsers) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="full-ranking metrics of a trained run",
        formatter_class=RAW,
        description="Rank every item of the catalogue for every user of the split and report\n"
        "HR@K, Recall@K, NDCG@K, MRR, coverage@K and avg_pop@K (mean training popularity\n"
        "of recommended items relative to the catalogue mean). Items of the user's input\n"
        "history are excluded from the ranking (the target always stays rankable); ties\n"
        "count against the model: a target's rank is 1 + the number of other items\n"
        "scoring greater than or equal to it.",
        epilog="Example:\n  genrec evaluate runs/NAME --split test --k 10,20,50 --json",
    )
    ev.add_argument("run", help="run directory")
    ev.add_argument("--split", choices=["valid", "test"], default="test", help="which split (default test)")
    ev.add_argument("--k", type=parse_ks, default=[10, 20, 50], help="metric cut-offs, e.g. 10,20,50")
    ev.add_argument(
        "--include-seen",
        action="store_true",
        help="keep the user's history items in the ranking (default: excluded)",
    )
    ev.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object instead of a table (keys like "ndcg@10", "hr@10")',
    )
    ev.set_defaults(func=cmd_evaluate)
