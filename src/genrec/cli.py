"""The `genrec` command. Users and items are addressed by the dataset's own ids everywhere."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from genrec.data.ids import IdMap
from genrec.data.preprocess import PROTOCOLS, DataConfig, DataError


# --- shared argument groups ---------------------------------------------------------------------
def add_source_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data source (name exactly one)")
    g.add_argument("--data",
                   help="a file or folder (MovieLens, sequences, CSV/Parquet, RecBole, Amazon, ...)")
    g.add_argument("--dataset",
                   help="a public dataset name (e.g. ml-1m): $GENREC_DATA_DIR/NAME, downloaded if absent")
    g.add_argument("--synthetic", action="store_true",
                   help="the embedded synthetic dataset (the demo default)")
    from genrec.data.readers import FORMATS

    g.add_argument("--format", help=f"reader format when auto-detection is not enough: {', '.join(FORMATS)}")
    t = p.add_argument_group("table files (format 'table': CSV, TSV, Parquet)")
    t.add_argument("--columns", metavar="FIELD=COL,...",
                   help="which columns hold user, item, timestamp, rating, e.g. "
                        "user=uid,item=sku,timestamp=ts (unmapped fields are guessed from names like userId, "
                        "item_id, timestamp, rating)")
    t.add_argument("--sep", help="field separator (default: from the file name / first line; 'tab' for TSV)")
    t.add_argument("--no-header", dest="header", action="store_false", default=None,
                   help="the file has no header row; --columns then names 0-based positions "
                        "(user=0,item=1)")
    t.add_argument("--items", metavar="FILE",
                   help="item metadata table (CSV/TSV/Parquet) joined on the item id")
    t.add_argument("--item-columns", metavar="FIELD=COL,...",
                   help="columns of --items: item, title, categories, category, brand, price, description")
    d = p.add_argument_group("preprocessing")
    d.add_argument("--protocol", choices=PROTOCOLS, default="loo",
                   help="loo: leave-one-out (default); temporal: global time cut; "
                        "users: held-out users with 80/20 fold-in")
    d.add_argument("--rating-threshold", type=float, default=None, help="keep ratings >= this (default: all)")
    d.add_argument("--min-user", type=int, default=0, help="iterative k-core: min interactions per user")
    d.add_argument("--min-item", type=int, default=0, help="iterative k-core: min interactions per item")
    d.add_argument("--dedup", choices=["none", "first", "last"], default="first",
                   help="which copy of a repeated (user, item) pair to keep")


def source_from_args(a: argparse.Namespace):
    from genrec.data.sources import SourceSpec

    opts = {"columns": a.columns, "sep": a.sep, "header": a.header, "items": a.items,
            "item_columns": a.item_columns}
    spec = SourceSpec(data=a.data, dataset=a.dataset, format=a.format, synthetic=a.synthetic,
                      options={k: v for k, v in opts.items() if v is not None})
    if not (a.data or a.dataset or a.synthetic):
        raise DataError("no data source: pass --data PATH, --dataset NAME or --synthetic")
    data_cfg = DataConfig(protocol=a.protocol, rating_threshold=a.rating_threshold, dedup=a.dedup,
                          min_user_interactions=a.min_user, min_item_interactions=a.min_item)
    return spec, data_cfg


def parse_ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 10,20,50, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"cut-offs must be >= 1, got {text!r}")
    return ks


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values parsed as JSON when they can be (numbers, lists, true/false)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


# --- commands -------------------------------------------------------------------------------------
def cmd_data_prepare(a: argparse.Namespace) -> int:
    from genrec.data.sources import load_dataset

    spec, cfg = source_from_args(a)
    t = time.time()
    ds = load_dataset(spec, cfg)
    m = ds.manifest
    print(f"{ds.name}: {m['n_users']:,} users, {m['n_items']:,} items, {m['n_interactions']:,} interactions "
          f"({m['n_raw']:,} read) in {time.time() - t:.1f}s")
    print(f"protocol {ds.protocol}: {m['n_train']:,} training interactions, "
          f"{m['n_valid_users']:,} validation "
          f"users, {m['n_test_users']:,} test users; timestamps: {'yes' if m['has_timestamps'] else 'no'}; "
          f"item titles: {'yes' if ds.item_title is not None else 'no'}")
    print(f"cached at {m.get('cache_path', '(not cached)')}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from genrec.training.runs import RunConfig, train_run

    spec, data_cfg = source_from_args(a)
    overrides = parse_overrides(a.set)
    if a.size:
        overrides["size"] = a.size
    cfg = RunConfig(source=spec, data=data_cfg, model=a.model, model_config=overrides, ks=a.k,
                    exclude_seen=not a.include_seen, seed=a.seed)
    stem = spec.dataset or Path(spec.data or "synthetic").stem
    name = a.name or f"{stem}-{a.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(a.out) if a.out else Path("runs") / name
    metrics = train_run(cfg, out, resume=a.resume)
    print(f"run written to {out}")
    print_metrics_table({"valid": metrics["valid"], "test": metrics["test"]}, a.k)
    return 0


def print_metrics_table(rows: dict[str, dict], ks: list[int]) -> None:
    cols = [f"{m}@{k}" for k in ks for m in ("hr", "recall", "ndcg")] + ["mrr"]
    cols += [f"coverage@{k}" for k in ks]
    width = max(len(r) for r in rows) + 2
    print("".join([" " * width] + [f"{c:>12}" for c in cols]))
    for name, m in rows.items():
        print("".join([f"{name:<{width}}"] + [f"{m.get(c, float('nan')):>12.4f}" for c in cols]))


def cmd_evaluate(a: argparse.Namespace) -> int:
    from genrec.evaluation import evaluate
    from genrec.training.runs import load_run

    run = load_run(a.run)
    exclude = run.config.exclude_seen if not a.include_seen else False
    t = time.time()
    m = evaluate(run.model.score, getattr(run.dataset, a.split), a.k, exclude,
                 item_popularity=run.dataset.item_popularity, progress=not a.json)
    m["seconds"] = time.time() - t
    if a.json:
        print(json.dumps({"run": str(a.run), "split": a.split, "history_excluded": exclude, **m}))
    else:
        print(f"{run.dataset.name} / {run.config.model} / {a.split} split, {m['n_users']} users, "
              f"full ranking over {run.dataset.n_items} items, "
              f"history {'excluded' if exclude else 'kept'}, ties against the model")
        print_metrics_table({a.split: m}, a.k)
    return 0


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
    who = {"users": [a.user]} if a.user is not None else {
        "histories": [[x.strip() for x in a.history.split(",") if x.strip()]]}
    try:
        result = gen.recommend(
            **who, k=a.k, strategy=a.strategy, allow=_read_id_file(a.allow, items) if a.allow else None,
            block=_read_id_file(a.block, items) if a.block else None, category_cap=a.category_cap,
            exclude_seen=not a.include_seen, beam_size=a.beam_size, temperature=a.temperature, top_p=a.top_p,
            seed=a.seed, use_cache=False if a.no_cache else None)[0]
    except UnknownId as e:
        hint = ("; for a new user pass their items with --history ITEM,ITEM,..." if e.args[0].startswith(
            "unknown user") else "; --history takes the dataset's own item ids")
        raise DataError(f"{e}{hint}") from None
    if a.json:
        print(json.dumps(result))
        return 0
    who_text = f"user {a.user}" if a.user is not None else "the given history"
    how = {"topk": "top-k", "beam": f"beam search (beam {a.beam_size})",
           "sample": f"sampling (temperature {a.temperature}, top-p {a.top_p}, seed {a.seed})"}[a.strategy]
    score = "model score" if a.strategy == "topk" else "log-prob given history and the items above"
    print(f"{a.k} items for {who_text} by {how} ({Path(a.run).name} on {gen.dataset.name}; score = {score}):")
    for rank, r in enumerate(result["items"], 1):
        print(f"{rank:>3}. {r['item_id']:>10}  {r['score']:>9.4f}  {r.get('title', '')}")
    if len(result["items"]) < a.k:
        print(f"only {len(result['items'])} items satisfy the constraints")
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    import dataclasses

    from genrec.models import REGISTRY, get_model_class

    for name in sorted(REGISTRY):
        cls = get_model_class(name)
        fields = ", ".join(f"{f.name}={f.default if f.default is not dataclasses.MISSING else '...'}"
                           for f in dataclasses.fields(cls.config_cls))
        doc = ((cls.__doc__ or "").strip().splitlines() or [""])[0]  # a class without a docstring
        print(f"{name:<10} {doc}\n{'':<10} settings: {fields or '(none)'}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from genrec.demo import run_demo

    return run_demo(Path(a.out), a.models.split(","))


RAW = argparse.RawDescriptionHelpFormatter


# --- parser ---------------------------------------------------------------------------------------
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

    data = sub.add_parser("data", help="prepare datasets").add_subparsers(dest="data_command", required=True)
    prep = data.add_parser(
        "prepare", help="read, clean, filter, index and split a dataset; cache it on disk",
        formatter_class=RAW,
        description="Read a dataset, convert ratings to implicit interactions, de-duplicate, k-core filter,\n"
                    "index (contiguous ids, 0 = padding) and split it; the result is cached under\n"
                    "$GENREC_CACHE_DIR and reused while the input files and settings are unchanged.",
        epilog="Examples:\n  genrec data prepare --data ../shared/datasets/ml-1m-u2999\n"
               "  genrec data prepare --data ../shared/datasets/amazon-beauty/Beauty.txt --format sequences\n"
               "  genrec data prepare --dataset ml-1m --protocol temporal")
    add_source_args(prep)
    prep.set_defaults(func=cmd_data_prepare)

    tr = sub.add_parser(
        "train", help="train a model and write a run directory",
        formatter_class=RAW,
        description="Prepare the data, fit the model on the training part (hyper-parameters\n"
                    "are tuned on the validation split only), evaluate on validation and test with\n"
                    "full ranking, and write a run directory: config.json, dataset.json, model/,\n"
                    "metrics.json, train.log.",
        epilog="Examples:\n  genrec train --data ../shared/datasets/ml-1m-u2999 --model ease\n"
               "  genrec train --synthetic --model ease --set l2=200 --out runs/syn-ease")
    add_source_args(tr)
    tr.add_argument("--model", required=True, help="model name; `genrec models` lists them")
    tr.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override a model setting (repeatable)")
    tr.add_argument("--size", help="size preset for models that have them (tiny/small/base/large)")
    tr.add_argument("--out", help="run directory (default runs/<data>-<model>-<time>)")
    tr.add_argument("--name", help="run name under runs/")
    tr.add_argument("--k", type=parse_ks, default=[10, 20, 50], help="metric cut-offs, e.g. 10,20,50")
    tr.add_argument("--include-seen", action="store_true",
                    help="keep history items in the evaluation ranking")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tr.add_argument("--resume", action="store_true",
                    help="continue an interrupted run (same options and --out) from its last checkpoint")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate", help="full-ranking metrics of a trained run",
        formatter_class=RAW,
        description="Rank every item of the catalogue for every user of the split and report\n"
                    "HR@K, Recall@K, NDCG@K, MRR, coverage@K and avg_pop@K (mean training popularity\n"
                    "of recommended items relative to the catalogue mean). Items of the user's input\n"
                    "history are excluded from the ranking (the target always stays rankable); ties\n"
                    "count against the model: a target's rank is 1 + the number of other items\n"
                    "scoring greater than or equal to it.",
        epilog="Example:\n  genrec evaluate runs/NAME --split test --k 10,20,50 --json")
    ev.add_argument("run", help="run directory")
    ev.add_argument("--split", choices=["valid", "test"], default="test", help="which split (default test)")
    ev.add_argument("--k", type=parse_ks, default=[10, 20, 50], help="metric cut-offs, e.g. 10,20,50")
    ev.add_argument("--include-seen", action="store_true",
                    help="keep the user's history items in the ranking (default: excluded)")
    ev.add_argument("--json", action="store_true",
                    help='print one JSON object instead of a table (keys like "ndcg@10", "hr@10")')
    ev.set_defaults(func=cmd_evaluate)

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
    rc.add_argument("-k", type=positive_int, default=10, help="list length (default 10, at most 1000)")
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

    mo = sub.add_parser("models", help="list the available models and their settings")
    mo.set_defaults(func=cmd_models)

    de = sub.add_parser("demo",
                        help="end to end on the synthetic dataset: prepare, train, evaluate, recommend")
    de.add_argument("--out", default="runs/demo", help="where the demo runs go")
    de.add_argument("--models", default="pop,ease", help="comma-separated models to train")
    de.set_defaults(func=cmd_demo)

    for hook in COMMAND_HOOKS:  # subcommands that live beside their feature (serve, export, ...)
        module, func = hook.split(":")
        getattr(importlib.import_module(module), func)(sub)
    return p


# "module:function" taking the subparsers object and adding a command; one line per feature
COMMAND_HOOKS: list[str] = [
    "genrec.generation.export:add_command",
    "genrec.serving.cli:add_commands",
    "genrec.training.items:register",
]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except (DataError, ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"genrec: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
