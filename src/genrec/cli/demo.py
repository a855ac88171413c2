"""`genrec demo` (`make demo`): the generative loop on the embedded synthetic shop, offline, in about
two minutes on 2 cores: train a tiny HSTU with Pop and EASE beside it, compare them, generate a
beam-search slate with its reasons, then simulate feedback and run the gated update."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from genrec.cli.common import Subparsers, print_metrics_table
from genrec.data.sources import SourceSpec
from genrec.generation import Generator
from genrec.models import REGISTRY
from genrec.serving.events import Event, open_store
from genrec.serving.update import update_run
from genrec.training import TrainConfig
from genrec.training.runs import RunConfig, train_run

# small enough for the demo's time budget on 2 cores; the benchmarks train the real sizes
SETTINGS = {"hstu": {"size": "tiny", "max_len": 50, "epochs": 30, "patience": 3}}
FEEDBACK_USERS = 150  # simulated shoppers who come back and click


def run_demo(out: Path, models: list[str]) -> int:
    print("genrec demo: synthetic shop (1,000 users, 400 items, sequential 'next episode' structure)\n")
    rows = {}
    for name in models:
        if name not in REGISTRY:
            print(f"skipping unknown model {name!r}")
            continue
        print(f"== training {name}")
        cfg = RunConfig(
            source=SourceSpec(synthetic=True),
            model=name,
            model_config=SETTINGS.get(name, {}),
            train=TrainConfig(max_minutes=1.0),
        )
        # the demo's runs are disposable: a second `make demo` starts again from nothing (served
        # versions and stored feedback included)
        shutil.rmtree(out / name, ignore_errors=True)
        rows[name] = train_run(cfg, out / name)["test"]
    print("\ntest metrics (leave-one-out, full ranking, history excluded):")
    print_metrics_table(rows, [10, 20])
    generative = "hstu" if "hstu" in rows else max(rows, key=lambda m: rows[m]["ndcg@10"])
    run = out / generative
    gen = Generator.from_run(run)
    ds = gen.dataset
    user = ds.user_ids.id(1)
    recent = "; ".join(str(ds.item_title[i]) for i in gen.histories([user]).row(0)[-3:])
    print(f"\nuser {user} recently read: {recent}")
    beam = generative != "ease" and generative != "pop"
    how = "beam search (beam 4)" if beam else "top-k"
    print(f"{generative} generates, by {how}, each item with the history items behind it:")
    options = {"strategy": "beam", "beam_size": 4} if beam else {}
    why = gen.explain(user, k=5, **options)
    for rank, r in enumerate(why["items"], 1):
        print(f"  {rank}. [{r['item_id']}] {r.get('title', '')}  (model score {r['score']:.3f})")
        because = ", ".join(f'"{w.get("title", w["item_id"])}" (+{w["delta"]:.2f})' for w in r["because"][:2])
        if because:
            print(f"       because you read {because}")
    simulate_feedback(gen, run)
    from genrec.cli.report import write_report

    report = write_report([out / m for m in rows], out / "report.html", "genrec demo: synthetic shop")
    print(f"\nreport: {report} (one HTML file, opens offline)")
    print(f"runs in {out}/ -- next: genrec serve {run}   (then GET /recommend?user_id={user})")
    return 0


def simulate_feedback(gen: Generator, run: Path) -> None:
    """Shoppers click what the model suggested at ranks 2-5; then `genrec update` retrains on it and
    publishes only if the held-back clicks are ranked no worse than by the served version."""
    ds = gen.dataset
    users = ds.user_ids.ids(range(1, FEEDBACK_USERS + 1))
    lists = gen.recommend(users, k=5)
    # the shop's clock: each shopper clicks a minute after their last visit (the synthetic logs end
    # years before today; stamping the clicks today would tell a time-aware model of a years-long pause)
    h = ds.full_history(ds.user_ids.indices(users))
    last = h.timestamps[h.indptr[1:] - 1] if h.timestamps is not None else np.full(len(users), time.time())
    events = [
        Event(user_id=rec["user_id"], item_id=item["item_id"], type="click", timestamp=float(t) + 60 + j)
        for rec, t in zip(lists, last)
        for j, item in enumerate(rec["items"][1:])
    ]
    url = f"sqlite:///{run / 'events.db'}"
    with open_store(url) as store:
        store.append(events)
    print(f"\n== feedback: {len(events)} clicks from {len(users)} shoppers; genrec update {run.name}")
    result = update_run(run, url, tolerance=0.01, log=lambda msg: print(f"  {msg}"))
    print(f"  {result.message}")


def cmd_demo(a: argparse.Namespace) -> int:
    return run_demo(Path(a.out), a.models.split(","))


def add_demo_command(sub: Subparsers) -> None:
    de = sub.add_parser(
        "demo",
        help="the generative loop on the synthetic shop: train, compare, generate with reasons, "
        "feedback, gated update",
    )
    de.add_argument("--out", default="runs/demo", help="where the demo runs go")
    de.add_argument("--models", default="pop,ease,hstu", help="comma-separated models to train")
    de.set_defaults(func=cmd_demo)
