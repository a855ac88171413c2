"""`genrec recommend`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genrec.cli.common import RAW, Subparsers, positive_int
from genrec.data.types import DataError


def _read_id_file(path: str, ds) -> np.ndarray:
    """Internal ids of the raw item ids listed in `path`, one per line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    out = []
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(ds.item_ids.index(line.strip()))
            except KeyError:
                raise DataError(f"{p}:{lineno}: unknown item id {line.strip()!r} in {ds.name}") from None
    return np.array(out, dtype=np.int64)


def cmd_recommend(a: argparse.Namespace) -> int:
    from genrec.data.dataset import Histories
    from genrec.generation import Constraints, Generator, generate

    gen = Generator.from_run(a.run)
    ds = gen.dataset
    if (a.user is None) == (a.history is None):
        raise DataError("pass exactly one of --user ID or --history ITEM,ITEM,...")
    cons = Constraints(exclude_seen=not a.include_seen,
                       allowed=_read_id_file(a.allow, ds) if a.allow else None,
                       blocked=_read_id_file(a.block, ds) if a.block else None,
                       category_cap=a.category_cap, item_category=ds.item_category)
    if a.user is not None:
        try:
            hist = gen.histories([a.user])
        except KeyError:
            raise DataError(f"unknown user id {a.user!r} in {ds.name}; for a new user pass their items with "
                            "--history ITEM,ITEM,...") from None
    else:
        raw = [x.strip() for x in a.history.split(",") if x.strip()]
        try:
            hist = Histories.from_lists([ds.item_ids.indices(raw)])
        except KeyError as e:
            raise DataError(f"{e.args[0]}; --history takes the dataset's own item ids") from None
    slates = generate(gen.model, hist, a.k, a.strategy, cons, beam_size=a.beam_size,
                      temperature=a.temperature, top_p=a.top_p, seed=a.seed,
                      use_cache=False if a.no_cache else None)
    result = gen.to_records([a.user], slates)[0]
    if a.json:
        print(json.dumps(result))
        return 0
    who = f"user {a.user}" if a.user is not None else "the given history"
    how = {"topk": "top-k", "beam": f"beam search (beam {a.beam_size})",
           "sample": f"sampling (temperature {a.temperature}, top-p {a.top_p}, seed {a.seed})"}[a.strategy]
    score = "model score" if a.strategy == "topk" else "log-prob given history and the items above"
    print(f"{a.k} items for {who} by {how} ({Path(a.run).name} on {ds.name}; {len(hist.items)} items in "
          f"history; score = {score}):")
    for rank, r in enumerate(result["items"], 1):
        print(f"{rank:>3}. {r['item_id']!s:>10}  {r['score']:>9.4f}  {r.get('title', '')}")
    if len(result["items"]) < a.k:
        print(f"only {len(result['items'])} items satisfy the constraints")
    return 0


def add_recommend_command(sub: Subparsers) -> None:
    rc = sub.add_parser(
        "recommend", help="recommendations for a known user or an ad-hoc history",
        formatter_class=RAW,
        description="A list of k distinct items, by the dataset's own ids (and titles when the dataset\n"
                    "has them), for a user of the dataset (--user) or for any list of items (--history).\n"
                    "Items already in the history are not recommended unless --include-seen.\n"
                    "beam and sample generate item by item, each conditioned on the ones before; models\n"
                    "with a KV cache (sasrec, hstu) extend it, others re-score the extended history.",
        epilog="Examples:\n  genrec recommend runs/NAME --user 42 -k 10\n"
               "  genrec recommend runs/NAME --history 1,2,3 -k 10 --json\n"
               "  genrec recommend runs/NAME --user 42 --strategy beam --beam-size 4 --category-cap 3\n"
               "  genrec recommend runs/NAME --user 42 --strategy sample --temperature 0.8 --top-p 0.9 "
               "--seed 7 --block blocked.txt")
    rc.add_argument("run", help="run directory")
    rc.add_argument("--user", help="a user id of the dataset")
    rc.add_argument("--history", help="comma-separated item ids (a user the model never saw)")
    rc.add_argument("-k", type=positive_int, default=10, help="list length (default 10)")
    rc.add_argument("--include-seen", action="store_true", help="allow items already in the history")
    rc.add_argument("--allow", help="file with one allowed item id per line")
    rc.add_argument("--block", help="file with one blocked item id per line")
    rc.add_argument("--category-cap", type=int, metavar="N", help="at most N items of one category per list")
    rc.add_argument("--strategy", choices=["topk", "beam", "sample"], default="topk",
                    help="topk: best scores of one pass; beam: autoregressive beam search over lists; "
                         "sample: temperature / top-p sampling (each item conditions on the ones before)")
    rc.add_argument("--beam-size", type=int, default=4, help="beams kept per step (--strategy beam)")
    rc.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 = greedy")
    rc.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the top-p prob. mass")
    rc.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same list)")
    rc.add_argument("--no-cache", action="store_true",
                    help="recompute the whole prefix at every step instead of using the model's KV cache")
    rc.add_argument("--json", action="store_true",
                    help="print JSON: {user_id, items: [{item_id, score, title}]}")
    rc.set_defaults(func=cmd_recommend)
