"""`genrec demo` (`make demo`): the whole loop on the embedded synthetic dataset, offline, in about a
minute."""

from __future__ import annotations

import argparse
from pathlib import Path

from genrec.cli.common import Subparsers, print_metrics_table
from genrec.data.sources import SourceSpec
from genrec.generation import Generator
from genrec.models import REGISTRY
from genrec.training.runs import RunConfig, train_run


def run_demo(out: Path, models: list[str]) -> int:
    print("genrec demo: synthetic shop (1,000 users, 400 items, sequential 'next episode' structure)\n")
    rows = {}
    for name in models:
        if name not in REGISTRY:
            print(f"skipping unknown model {name!r}")
            continue
        print(f"== training {name}")
        # the demo's runs are disposable: a second `make demo` replaces them
        metrics = train_run(RunConfig(source=SourceSpec(synthetic=True), model=name), out / name, force=True)
        rows[name] = metrics["test"]
    print("\ntest metrics (leave-one-out, full ranking, history excluded):")
    print_metrics_table(rows, [10, 20])
    best = max(rows, key=lambda m: rows[m]["ndcg@10"])
    gen = Generator.from_run(out / best)
    ds = gen.dataset
    user = ds.user_ids.id(1)
    recent = "; ".join(str(ds.item_title[i]) for i in gen.histories([user]).row(0)[-3:])
    print(f"\nuser {user} recently read: {recent}")
    print(f"{best} recommends:")
    for rank, r in enumerate(gen.recommend([user], k=5)[0]["items"], 1):
        print(f"  {rank}. [{r['item_id']}] {r.get('title', '')}  (score {r['score']:.3f})")
    print(f"\nruns in {out}/ — try: genrec recommend {out / best} --user {user} -k 10")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    return run_demo(Path(a.out), a.models.split(","))


def add_demo_command(sub: Subparsers) -> None:
    de = sub.add_parser(
        "demo", help="end to end on the synthetic dataset: prepare, train, evaluate, recommend"
    )
    de.add_argument("--out", default="runs/demo", help="where the demo runs go")
    de.add_argument("--models", default="pop,ease", help="comma-separated models to train")
    de.set_defaults(func=cmd_demo)
