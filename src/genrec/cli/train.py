"""`genrec train` and `genrec models`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from genrec.cli.common import (
    RAW,
    Subparsers,
    add_source_args,
    parse_ks,
    parse_overrides,
    print_metrics_table,
    source_from_args,
)


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


def add_train_command(sub: Subparsers) -> None:
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


def add_models_command(sub: Subparsers) -> None:
    mo = sub.add_parser("models", help="list the available models and their settings")
    mo.set_defaults(func=cmd_models)
