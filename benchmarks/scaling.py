"""Scaling curve of the sequence models: NDCG@10 against parameters and training FLOPs, by size preset.

Trains HSTU (or SASRec) at each size preset (tiny/small/base/large) on each dataset with the default
settings and early stopping on validation NDCG@10, then evaluates on test (protocol of
docs/benchmarks.md). Each (dataset, model, size) runs in its own process; `--jobs N` runs N at once (on a
GPU they share the card; every row records how many ran beside it).

    python benchmarks/scaling.py --sizes tiny,small --minutes 20 --set threads=1          # CPU
    python benchmarks/scaling.py --sizes tiny,small,base,large --jobs 8 --minutes 5       # one GPU
    python benchmarks/scaling.py --sizes large --step-time 20 --set threads=2             # CPU s/epoch
    python benchmarks/scaling.py --collect runs/beauty-tiny runs/beauty-small   # runs of genrec train

`--step-time N` trains nothing to the end: it times N training steps (after 3 warm-up steps) and
extrapolates seconds per epoch, for sizes too slow to train on a CPU.

Each trained size is a run directory under runs/scaling/, and the script ends with the `genrec report`
of the runs it trained (runs/scaling/report.html): the scaling curves as plots, with every other
section. Parameters and training FLOPs are the model's own compute profile (`compute_profile`, recorded
in fit_info by the training loop): 3 x the forward pass per trained target, times the targets trained.

Prints one table and merges rows into benchmarks/results/scaling.json.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("GENREC_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
RESULTS = HERE / "results" / "scaling.json"
RUNS = Path(os.environ.get("GENREC_RUNS", HERE.parent / "runs")) / "scaling"  # one run directory per size
DATASETS = ("ml-1m-u2999", "amazon-beauty")
SIZES = ("tiny", "small", "base", "large")


def data_path(dataset: str) -> tuple[str, str]:
    """(name, path) of a dataset given by name (under GENREC_DATA_DIR) or by path."""
    p = Path(dataset)
    return (p.name, str(p)) if p.exists() else (dataset, str(ROOT / dataset))


def load(dataset: str):
    from genrec.data.sources import SourceSpec, load_dataset
    from genrec.data.types import DataConfig

    name, path = data_path(dataset)
    return name, load_dataset(SourceSpec(data=path), DataConfig())


def time_steps(model, ds, train_config, n_steps: int) -> dict:
    """Seconds per epoch extrapolated from `n_steps` timed training steps (after 3 warm-up steps)."""
    import numpy as np
    import torch

    from genrec.models.base import StepContext
    from genrec.models.optim import dense_grads
    from genrec.training.loop import pick_device

    device = pick_device(train_config)
    torch.manual_seed(train_config.seed)
    if train_config.threads:
        torch.set_num_threads(train_config.threads)
    phase = model.prepare_training(ds)[0]
    fitting = model.setup_phase(phase, ds, device)
    opt = fitting.optimizers["main"]

    def update(loss, optimizer: str = "main") -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = dense_grads(fitting.modules["net"].parameters())  # as the training loop clips
        torch.nn.utils.clip_grad_norm_(params, fitting.grad_clip or 1e9)
        opt.step()

    batches = model.batches(phase, ds, np.random.default_rng(0))
    ctx = StepContext(step=0, device=device, update=update)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    t0, n_targets = 0.0, 0
    for i, b in enumerate(batches[: n_steps + 3]):
        if i == 3:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.time()
        if autocast is not None:
            with autocast:
                out = model.train_step(b, ctx)
        else:
            out = model.train_step(b, ctx)
        n_targets += out["n"] if i >= 3 else 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    timed = min(n_steps, len(batches) - 3)
    s_per_step = (time.time() - t0) / timed
    return {
        "timed_steps": timed,
        "seconds_per_step": s_per_step,
        "seconds_per_epoch": s_per_step * len(batches),
        "examples_per_s": n_targets / (s_per_step * timed),
        "device": str(device),
    }


def run_one(
    dataset: str, model_name: str, size: str, sets: dict, minutes: float, step_time: int, tag: str
) -> dict:
    """Train one size into its own run directory (RUNS/<data>-<model>-<size>-<seed>[-<tag>], for
    `genrec report`), or time its steps; the row carries the model's compute profile."""
    import dataclasses

    import torch

    from genrec.data.sources import SourceSpec
    from genrec.models import get_model_class
    from genrec.training.runs import RunConfig, train_run
    from genrec.training.settings import resolve

    settings = {"size": size, **sets}
    if minutes:
        settings["max_minutes"] = str(minutes)
    model_config, train_config = resolve(model_name, settings)
    name, path = data_path(dataset)
    row: dict = {"dataset": name, "model": model_name, "size": size, "seed": train_config.seed}
    row["settings"] = settings
    if step_time:
        _, ds = load(dataset)
        model = get_model_class(model_name)(model_config)
        row.update(time_steps(model, ds, train_config, step_time), mode="step-time")
        profile = model.compute_profile(ds)  # nothing trained: parameters and FLOPs per target only
        row.update({k: profile[k] for k in ("params", "non_embedding_params", "flops_per_target")})
    else:
        out = RUNS / f"{name}-{model_name}-{size}-{train_config.seed}{'-' + tag if tag else ''}"
        cfg = RunConfig(
            source=SourceSpec(data=path),
            model=model_name,
            model_config=dataclasses.asdict(model_config),
            train=train_config,
            ks=[10],
        )
        train_run(cfg, out, force=True, progress=False)
        row.update(row_from_run(out), settings=settings)
    row.update(
        dim=model_config.resolved("dim"),
        n_layers=model_config.resolved("n_layers"),
        n_heads=model_config.resolved("n_heads"),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        threads=train_config.threads or torch.get_num_threads(),
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        torch=torch.__version__,
    )
    return row


def row_from_run(out: Path) -> dict:
    """A training row from a run directory (`genrec train --size ...` or this script's): its test
    metrics, curve and the model's compute profile (computed from the model when an older run lacks it)."""
    from genrec.models.base import MeasuresCompute
    from genrec.training.runs import load_run

    run = load_run(out)
    info = run.model.fit_info_
    if not isinstance(run.model, MeasuresCompute):
        raise SystemExit(f"{out}: model {run.model.name!r} states no parameters or FLOPs")
    profile = run.model.compute_profile(run.dataset)
    test = json.loads((Path(out) / "metrics.json").read_text())["test"]
    return {
        "dataset": run.dataset.name,
        "model": run.model.name,
        "size": run.model.config.size,  # the preset size=auto resolved to
        "seed": run.config.train.seed,
        "mode": "train",
        "run": str(out),
        "device": info["device"],
        "epochs": info["epochs"],
        "best_epoch": info["best_epoch"],
        "stopped_by": info["stopped_by"],
        "seconds_per_epoch": info["seconds_per_epoch"],
        "train_seconds": info["train_seconds"],
        "valid_ndcg10": info["best_valid"],
        "ndcg10": test["ndcg@10"],
        "hr10": test["hr@10"],
        "threads": info.get("threads"),
        **profile,  # params, non-embedding params, FLOPs per target, trained targets, train FLOPs
        **{k: info["config"][k] for k in ("dim", "n_layers", "n_heads")},
    }


def merge(rows: list[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": []}

        def key(r: dict) -> tuple:
            return (
                r["dataset"],
                r["model"],
                r["size"],
                r["mode"],
                r["device"].split(":")[0],
                r["tag"],
                r.get("seed", 0),
            )

        new = {key(r) for r in rows}
        data["rows"] = [r for r in data["rows"] if key(r) not in new] + rows
        data["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count()}
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=float))
        os.replace(tmp, RESULTS)


def print_table(rows: list[dict]) -> None:
    print(
        f"{'dataset':<15}{'model':<7}{'size':<7}{'params':>11}{'body':>10}{'train PFLOP':>12}"
        f"{'valid':>8}{'NDCG@10':>9}{'HR@10':>8}{'s/epoch':>9}{'epochs':>7}{'device':>8}"
    )
    for r in rows:
        pf = f"{r['train_flops'] / 1e15:.3g}" if "train_flops" in r else "-"
        acc = (
            f"{r['valid_ndcg10']:>8.4f}{r['ndcg10']:>9.4f}{r['hr10']:>8.4f}"
            if r["mode"] == "train"
            else f"{'-':>8}{'-':>9}{'-':>8}"
        )
        print(
            f"{r['dataset']:<15}{r['model']:<7}{r['size']:<7}{r['params']:>11,}{r['non_embedding_params']:>10,}"
            f"{pf:>12}{acc}{r['seconds_per_epoch']:>9.1f}{r.get('epochs', '-')!s:>7}"
            f"{r['device'].split(':')[0]:>8}"
        )


def print_seeds(rows: list[dict]) -> None:
    """Mean ± sample std over the seeds of each (dataset, model, size)."""
    import numpy as np

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["mode"] == "train":
            groups.setdefault((r["dataset"], r["model"], r["size"]), []).append(r)
    print(f"\n{'dataset':<15}{'model':<7}{'size':<7}{'seeds':>6}{'NDCG@10':>18}{'HR@10':>18}")
    for (d, m, s), rs in groups.items():
        n, h = np.array([r["ndcg10"] for r in rs]), np.array([r["hr10"] for r in rs])
        sd = lambda x: x.std(ddof=1) if len(x) > 1 else 0.0  # noqa: E731
        print(
            f"{d:<15}{m:<7}{s:<7}{len(rs):>6}{n.mean():>10.4f} ± {sd(n):.4f}{h.mean():>10.4f} ± {sd(h):.4f}"
        )


def compare() -> int:
    """GPU training rows against the CPU rows of the same (dataset, model, size): s/epoch and accuracy."""
    rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    cpu = {(r["dataset"], r["model"], r["size"]): r for r in rows if r["device"] == "cpu" and not r["tag"]}
    gpu = [r for r in rows if r["device"].startswith("cuda")]
    order = {s: i for i, s in enumerate(SIZES)}
    gpu.sort(key=lambda r: (r["dataset"], r["model"], order.get(r["size"], 9), r["tag"]))
    print(
        f"{'dataset':<15}{'model':<7}{'size':<7}{'tag':<10}{'GPU NDCG@10':>12}{'CPU NDCG@10':>12}"
        f"{'GPU s/ep':>9}{'CPU s/ep':>9}{'speed-up':>9}{'epochs':>7}{'beside':>7}"
    )
    for g in gpu:
        c = cpu.get((g["dataset"], g["model"], g["size"]))
        c_acc = f"{c['ndcg10']:.4f}" if c and c["mode"] == "train" else "-"
        c_ep = f"{c['seconds_per_epoch']:.1f}" if c else "-"
        up = f"x{c['seconds_per_epoch'] / g['seconds_per_epoch']:.1f}" if c else "-"
        print(
            f"{g['dataset']:<15}{g['model']:<7}{g['size']:<7}{g['tag'] or '-':<10}{g.get('ndcg10', 0):>12.4f}"
            f"{c_acc:>12}{g['seconds_per_epoch']:>9.1f}{c_ep:>9}{up:>9}{g.get('epochs', '-')!s:>7}"
            f"{g['concurrent_runs'] - 1:>7}"
        )
    return 0


def finish(rows: list[dict], seeds: int) -> int:
    """Merge the rows into scaling.json, print them and write the report of the trained runs."""
    order = {s: i for i, s in enumerate(SIZES)}
    rows.sort(key=lambda r: (r["dataset"], r["model"], order.get(r["size"], 9), r["seed"]))
    if not rows:
        return 1
    merge(rows)
    print_table(rows)
    if seeds > 1:
        print_seeds(rows)
    trained = [Path(r["run"]) for r in rows if r["mode"] == "train"]
    if len(trained) > 1:
        from genrec.cli.report import write_report

        report = write_report(trained, RUNS / "report.html", "genrec scaling curve")
        print(f"report: {report} (genrec report {' '.join(map(str, trained))} --out FILE)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--models", default="hstu", help="hstu, sasrec or both")
    p.add_argument("--sizes", default=",".join(SIZES))
    p.add_argument("--minutes", type=float, default=0.0, help="training budget per run (0 = none)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (each its own process)")
    p.add_argument("--seeds", default="0", help="seeds to run each setting with, e.g. 0,1,2 (mean ± std)")
    p.add_argument("--step-time", type=int, default=0, help="time N steps instead of training")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model/training setting")
    p.add_argument("--tag", default="", help="names a variant (e.g. compiled) so its rows stand apart")
    p.add_argument("--compare", action="store_true", help="print GPU rows against CPU rows and exit")
    p.add_argument(
        "--collect",
        nargs="+",
        metavar="RUN",
        help="tabulate run directories trained elsewhere (genrec train --size S), merge their rows and "
        "write their report",
    )
    p.add_argument("--one", nargs=4, metavar=("DATASET", "MODEL", "SIZE", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    sets = dict(kv.split("=", 1) for kv in a.set)
    if a.compare:
        return compare()
    if a.collect:
        rows = [{**row_from_run(Path(r)), "tag": a.tag, "concurrent_runs": 0} for r in a.collect]
        return finish(rows, seeds=1)
    if a.one:
        dataset, model, size, out = a.one
        row = run_one(dataset, model, size, sets, a.minutes, a.step_time, a.tag)
        row["concurrent_runs"] = int(os.environ.get("GENREC_CONCURRENT_RUNS", "1"))
        row["tag"] = a.tag
        Path(out).write_text(json.dumps(row, default=float))
        return 0
    todo = [
        (d, m, s, seed)
        for d in a.datasets.split(",")
        for m in a.models.split(",")
        for s in a.sizes.split(",")
        for seed in a.seeds.split(",")
    ]
    env = {**os.environ, "GENREC_CONCURRENT_RUNS": str(min(a.jobs, len(todo)))}
    running: list[tuple[subprocess.Popen, Path, tuple]] = []
    rows, failed = [], []
    tmp = RESULTS.parent / f".scaling-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    while todo or running:
        while todo and len(running) < a.jobs:
            d, m, s, seed = todo.pop(0)
            stem = f"{Path(d).name}-{m}-{s}-{seed}"
            out = tmp / f"{stem}.json"
            cmd = [sys.executable, __file__, "--one", d, m, s, str(out), "--minutes", str(a.minutes)]
            cmd += ["--step-time", str(a.step_time), "--tag", a.tag]
            cmd += [x for kv in [*a.set, f"seed={seed}"] for x in ("--set", kv)]
            log = open(tmp / f"{stem}.log", "w")
            running.append(
                (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), out, (d, m, s, seed))
            )
            print(f"[{time.time() - t0:5.0f}s] started {d} {m} {s} seed {seed}", flush=True)
        time.sleep(1)
        for job in [j for j in running if j[0].poll() is not None]:
            running.remove(job)
            proc, out, what = job
            if proc.returncode == 0:
                rows.append(json.loads(out.read_text()))
                print(f"[{time.time() - t0:5.0f}s] done {' '.join(map(str, what))}", flush=True)
            else:
                failed.append(what)
                log = (tmp / f"{Path(what[0]).name}-{what[1]}-{what[2]}-{what[3]}.log").read_text()
                print(
                    f"[{time.time() - t0:5.0f}s] FAILED {' '.join(map(str, what))}\n{log[-3000:]}", flush=True
                )
    finish(rows, len(a.seeds.split(",")))
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
