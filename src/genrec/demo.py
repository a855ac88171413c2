"""`make demo`: the whole loop on the embedded synthetic dataset, offline, in about a minute."""

from __future__ import annotations

from pathlib import Path

from genrec.cli import print_metrics_table
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
        metrics = train_run(RunConfig(source=SourceSpec(synthetic=True), model=name), out / name)
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
