"""`genrec evaluate`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from genrec.cli.common import RAW, Subparsers, parse_ks, print_metrics_table
from genrec.data.types import DataError


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
    groups = group_metrics(a, run, exclude) if a.groups else None
    tradeoff = diversity_tradeoff(a, run, exclude) if a.diversity else None
    if a.json:
        extra = {"groups": groups} if groups is not None else {}
        if tradeoff is not None:
            extra["diversity"] = tradeoff
        print(json.dumps({"run": str(a.run), "split": a.split, "history_excluded": exclude, **m, **extra}))
        return 0
    print(
        f"{run.dataset.name} / {run.config.model} / {a.split} split, {m['n_users']} users, "
        f"full ranking over {run.dataset.n_items} items, "
        f"history {'excluded' if exclude else 'kept'}, ties against the model"
    )
    print_metrics_table({a.split: m}, a.k)
    k = a.k[0]
    print(
        f"exposure: gini@{k} {m[f'gini@{k}']:.4f} (0 = every item as often), hit rate@{k} of head-item "
        f"targets {m[f'head_hr@{k}']:.4f}, of tail-item targets {m[f'tail_hr@{k}']:.4f}"
    )
    if tradeoff is not None:
        print(f"\ndiversity re-ranking (MMR over the top 100), {a.split} split:")
        print(f"{'diversity':>9}{f'NDCG@{k}':>10}{f'HR@{k}':>9}{f'coverage@{k}':>13}{f'ILD@{k}':>9}")
        for r in tradeoff:
            print(
                f"{r['diversity']:>9.2f}{r[f'ndcg@{k}']:>10.4f}{r[f'hr@{k}']:>9.4f}"
                f"{r[f'coverage@{k}']:>13.4f}{r[f'ild@{k}']:>9.4f}"
            )
    for attr, res in (groups or {}).items():
        print(f"\nby {attr} ({res['unlabelled_users']} users without one):")
        print(f"{'group':<22}{'users':>7}{f'NDCG@{k}':>10}{f'HR@{k}':>9}")
        for g, gm in res["groups"].items():
            print(f"{g:<22}{gm['n_users']:>7}{gm[f'ndcg@{k}']:>10.4f}{gm[f'hr@{k}']:>9.4f}")
        for key in (f"ndcg@{k}", f"hr@{k}"):
            gap = res["gaps"].get(key)
            if gap:
                print(
                    f"largest {key.upper()} gap: {gap['best']} {res['groups'][gap['best']][key]:.4f} vs "
                    f"{gap['worst']} {res['groups'][gap['worst']][key]:.4f} (difference "
                    f"{gap['difference']:.4f}, ratio {gap['ratio']:.3f})"
                )
    return 0


def diversity_tradeoff(a: argparse.Namespace, run, exclude: bool) -> list[dict]:  # noqa: ANN001 - a Run
    from genrec.generation import Generator

    levels = sorted({0.0, *(float(x) for x in a.diversity.split(",") if x.strip())})
    if not all(0 <= d <= 1 for d in levels):
        raise DataError(f"--diversity levels must lie in [0, 1], got {a.diversity}")
    gen = Generator(run.model, run.dataset)
    return gen.diversity_tradeoff(getattr(run.dataset, a.split), a.k[0], levels, exclude)


def group_metrics(a: argparse.Namespace, run, exclude: bool) -> dict:  # noqa: ANN001 - a training Run
    """NDCG/HR per group of each attribute in --groups, from --user-attributes or the source's users.dat."""
    from genrec.data.attributes import read_user_attributes
    from genrec.data.sources import data_dir
    from genrec.evaluation.groups import evaluate_groups

    src = run.config.source
    path = a.user_attributes or src.data or (str(data_dir() / src.dataset) if src.dataset else None)
    if path is None:
        raise DataError("the run's data has no user attributes; give them with --user-attributes FILE")
    attrs = read_user_attributes(Path(path))
    wanted = [g.strip() for g in a.groups.split(",") if g.strip()]
    missing = [g for g in wanted if g not in attrs]
    if missing:
        raise DataError(f"{path}: no attribute {', '.join(missing)}; it has {', '.join(attrs)}")
    evalset = getattr(run.dataset, a.split)
    raw = run.dataset.user_ids.ids(evalset.history.users.tolist())
    return {
        g: evaluate_groups(
            run.model.score,
            evalset,
            [attrs[g].get(u) for u in raw],
            a.k,
            exclude,
            item_popularity=run.dataset.item_popularity,
            min_users=a.min_group_users,
        )
        for g in wanted
    }


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
    ev.add_argument(
        "--groups",
        metavar="ATTR,...",
        help="also report NDCG@K and HR@K per group of these user attributes and the largest gap, "
        "e.g. gender,age (MovieLens-1M's users.dat next to the run's data, or --user-attributes)",
    )
    ev.add_argument(
        "--user-attributes",
        metavar="FILE",
        help="CSV/TSV with a user column (user_id, userId, user) and one column per attribute",
    )
    ev.add_argument(
        "--diversity",
        metavar="D,...",
        help="also the accuracy / coverage / intra-list-diversity trade-off of MMR re-ranking at these "
        "levels (0-1), e.g. 0.1,0.3,0.5 (0 is always included)",
    )
    ev.add_argument(
        "--min-group-users", type=int, default=20, help="groups smaller than this are left out of the gaps"
    )
    ev.set_defaults(func=cmd_evaluate)
