"""`genrec recommend`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genrec.cli.common import RAW, Subparsers, positive_int
from genrec.data.ids import IdMap
from genrec.data.types import DataError


def _read_id_file(path: str, items: IdMap) -> list[str]:
    """The raw item ids listed in `path`, one per line; DataError naming the file and line of an id
    the dataset does not have."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    lines = p.read_text().splitlines()
    ids = [line.strip() for line in lines]
    for lineno, raw in enumerate(ids, 1):
        if raw and items.get(raw) is None:
            raise DataError(f"{p}:{lineno}: unknown item id {raw!r} in {items.where}")
    return [raw for raw in ids if raw]


def cmd_recommend(a: argparse.Namespace) -> int:
    from genrec.data.ids import UnknownId
    from genrec.generation import MAX_K, Generator

    if a.k > MAX_K:
        raise DataError(f"-k {a.k} is over the limit of {MAX_K} items per list")
    if (a.user is None) == (a.history is None):
        raise DataError("pass exactly one of --user ID or --history ITEM,ITEM,...")
    gen = Generator.from_run(a.run)
    items = gen.dataset.item_ids
    who = (
        {"users": [a.user]}
        if a.user is not None
        else {"histories": [[x.strip() for x in a.history.split(",") if x.strip()]]}
    )
    try:
        result = gen.recommend(
            **who,
            k=a.k,
            strategy=a.strategy,
            allow=_read_id_file(a.allow, items) if a.allow else None,
            block=_read_id_file(a.block, items) if a.block else None,
            category_cap=a.category_cap,
            exclude_seen=not a.include_seen,
            beam_size=a.beam_size,
            temperature=a.temperature,
            top_p=a.top_p,
            seed=a.seed,
            use_cache=False if a.no_cache else None,
            diversity=a.diversity,
        )[0]
    except UnknownId as e:
        hint = (
            "; for a new user pass their items with --history ITEM,ITEM,..."
            if e.args[0].startswith("unknown user")
            else "; --history takes the dataset's own item ids"
        )
        raise DataError(f"{e}{hint}") from None
    if a.json:
        print(json.dumps(result))
        return 0
    who_text = f"user {a.user}" if a.user is not None else "the given history"
    how = {
        "topk": "top-k",
        "beam": f"beam search (beam {a.beam_size})",
        "sample": f"sampling (temperature {a.temperature}, top-p {a.top_p}, seed {a.seed})",
    }[a.strategy]
    score = "model score" if a.strategy == "topk" else "log-prob given history and the items above"
    print(f"{a.k} items for {who_text} by {how} ({Path(a.run).name} on {gen.dataset.name}; score = {score}):")
    for rank, r in enumerate(result["items"], 1):
        print(f"{rank:>3}. {r['item_id']:>10}  {r['score']:>9.4f}  {r.get('title', '')}")
    if len(result["items"]) < a.k:
        print(f"only {len(result['items'])} items satisfy the constraints")
    return 0


def add_recommend_command(sub: Subparsers) -> None:
    rc = sub.add_parser(
        "recommend",
        help="recommendations for a known user or an ad-hoc history",
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
        "--seed 7 --block blocked.txt",
    )
    rc.add_argument("run", help="run directory")
    rc.add_argument("--user", help="a user id of the dataset")
    rc.add_argument("--history", help="comma-separated item ids (a user the model never saw)")
    rc.add_argument("-k", type=positive_int, default=10, help="list length (default 10, at most 1000)")
    rc.add_argument("--include-seen", action="store_true", help="allow items already in the history")
    rc.add_argument("--allow", help="file with one allowed item id per line")
    rc.add_argument("--block", help="file with one blocked item id per line")
    rc.add_argument("--category-cap", type=int, metavar="N", help="at most N items of one category per list")
    rc.add_argument(
        "--diversity",
        type=float,
        default=0.0,
        metavar="D",
        help="0-1: re-rank the top 100 for variety (MMR; 0 = the model's order; topk only)",
    )
    rc.add_argument(
        "--strategy",
        choices=["topk", "beam", "sample"],
        default="topk",
        help="topk: best scores of one pass; beam: autoregressive beam search over lists; "
        "sample: temperature / top-p sampling (each item conditions on the ones before)",
    )
    rc.add_argument("--beam-size", type=int, default=4, help="beams kept per step (--strategy beam)")
    rc.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 = greedy")
    rc.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the top-p prob. mass")
    rc.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same list)")
    rc.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute the whole prefix at every step instead of using the model's KV cache",
    )
    rc.add_argument(
        "--json", action="store_true", help="print JSON: {user_id, items: [{item_id, score, title}]}"
    )
    rc.set_defaults(func=cmd_recommend)
