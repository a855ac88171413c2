"""`genrec train` and `genrec models`."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
import sys
import time
from pathlib import Path

from genrec.cli.common import (
    RAW,
    Subparsers,
    add_source_args,
    parse_ks,
    print_metrics_table,
    source_from_args,
)
from genrec.data.types import DataError


def cmd_train(a: argparse.Namespace) -> int:
    if a.nproc is not None:
        return launch_torchrun(a)
    from genrec.training import TrainConfig, TrainingInterrupted, distributed
    from genrec.training.runs import RunConfig, check_target, partial_dir, train_run
    from genrec.training.settings import parse_sets, read_config_file, resolve

    # every setting is checked before any data is read or any folder is made
    spec, data_cfg = source_from_args(a)
    file_values = read_config_file(a.config) if a.config else {}
    model = a.model or file_values.pop("model", None)
    if model is None:
        raise DataError("name the model with --model NAME (or `model = ...` in --config)")
    if file_values.get("model", model) != model:
        raise DataError(f"--model {model} but --config names model {file_values['model']!r}")
    file_values.pop("model", None)
    sets = parse_sets(a.set)
    if a.size:
        sets["size"] = a.size
    if a.seed is not None:
        sets["seed"] = str(a.seed)
    if a.log is not None:
        sets["log"] = a.log
    if a.device is not None:
        sets["device"] = a.device
    if a.compile is not None:
        sets["compile"] = a.compile
    if a.no_amp:
        sets["amp"] = "false"
    if model == "auto":
        return train_auto(a, spec, data_cfg, sets, file_values)
    model_config, train_config = resolve(model, sets, file_values, TrainConfig())
    cfg = RunConfig(
        source=spec,
        data=data_cfg,
        model=model,
        model_config=dataclasses.asdict(model_config),
        train=train_config,
        ks=a.k,
        exclude_seen=not a.include_seen,
    )
    stem = spec.dataset or Path(spec.data or "synthetic").stem
    name = a.name or f"{stem}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(a.out) if a.out else Path("runs") / name
    main_process = distributed.is_main()
    if main_process:  # the other processes of a torchrun launch write nothing
        check_target(out, a.resume, a.force)
    served = (out / "versions").exists()
    try:
        metrics = train_run(cfg, out, resume=a.resume, force=a.force)
        if not main_process:
            return 0
    except TrainingInterrupted as stop:
        if not main_process:
            return 130
        args = [x for x in a.argv if x not in ("--resume", "--force")]
        if stop.checkpoint is None:
            print(
                f"\ngenrec: interrupted before the first epoch ended; nothing to resume "
                f"({partial_dir(out)} removed)",
                file=sys.stderr,
            )
            shutil.rmtree(partial_dir(out), ignore_errors=True)
        else:
            print(
                f"\ngenrec: interrupted after {stop.epoch} epoch(s); checkpoint {stop.checkpoint}\n"
                f"resume with: {shlex.join(['genrec', *args, '--resume'])}",
                file=sys.stderr,
            )
        return 130
    print(f"run written to {out}")
    if served:  # `genrec serve` picks the retrained model up as a new version
        from genrec.serving.registry import Registry

        version = Registry(out).publish_run()
        print(f"{out} is served: published the retrained model as version {version}")
    print_metrics_table({"valid": metrics["valid"], "test": metrics["test"]}, a.k)
    return 0


AUTO = "ease,sasrec,hstu"  # candidates of --model auto: the classic baseline and the transducers


def train_auto(a: argparse.Namespace, spec, data_cfg, sets: dict, file_values: dict) -> int:  # noqa: ANN001
    """`--model auto`: train each candidate, keep the one with the best validation NDCG@10, say why."""
    import json
    import os

    from genrec.models.base import Trainable
    from genrec.training import TrainConfig
    from genrec.training.runs import RunConfig, build_model, check_target, train_run
    from genrec.training.settings import resolve

    if a.resume or a.nproc:
        raise DataError("--model auto trains several runs: no --resume or --nproc")
    names = [n.strip() for n in a.candidates.split(",") if n.strip()]
    if len(names) < 2:
        raise DataError(f"--candidates needs at least two models, got {a.candidates!r}")
    train_keys = set(TrainConfig.__dataclass_fields__)
    extra = sorted((set(sets) | set(file_values)) - train_keys)
    if extra:
        raise DataError(
            f"--model auto takes training settings only ({', '.join(sorted(train_keys))}); "
            f"{', '.join(extra)} belong to one model: train that model by name"
        )
    cfgs = {}
    for n in names:  # every candidate's settings are checked before any work
        model_config, train_config = resolve(n, sets, file_values, TrainConfig())
        cfgs[n] = RunConfig(
            spec, data_cfg, n, dataclasses.asdict(model_config), train_config, a.k, not a.include_seen
        )
    iterative = [n for n in names if isinstance(build_model(n, cfgs[n].model_config), Trainable)]
    budget = cfgs[names[0]].train.max_minutes
    for n in iterative:  # a total budget is shared by the models that train in epochs
        if budget:
            cfgs[n].train.max_minutes = budget / len(iterative)
    stem = spec.dataset or Path(spec.data or "synthetic").stem
    out = Path(a.out) if a.out else Path("runs") / (a.name or f"{stem}-auto-{time.strftime('%Y%m%d-%H%M%S')}")
    check_target(out, False, a.force)
    work = out.with_name(out.name + ".auto")
    shutil.rmtree(work, ignore_errors=True)
    results = {}
    for n in names:
        print(
            f"== auto: training {n}"
            + (f" ({cfgs[n].train.max_minutes:g} min)" if n in iterative and budget else "")
        )
        m = train_run(cfgs[n], work / n)
        results[n] = {"valid_ndcg@10": m["valid"]["ndcg@10"], "fit_seconds": m["fit_seconds"]}
        if "ndcg@10" in m.get("test", {}):  # reported beside the choice, never used to make it
            results[n]["test_ndcg@10"] = m["test"]["ndcg@10"]
    best = max(names, key=lambda n: results[n]["valid_ndcg@10"])  # ties: the first listed
    others = ", ".join(f"{n} {results[n]['valid_ndcg@10']:.4f}" for n in names if n != best)
    reason = f"{best} has the best validation NDCG@10 ({results[best]['valid_ndcg@10']:.4f}; {others})"
    if out.exists():
        shutil.rmtree(out)  # --force (checked above)
    os.rename(work / best, out)
    (out / "selection.json").write_text(
        json.dumps(
            {"candidates": results, "picked": best, "reason": reason, "metric": "valid ndcg@10"}, indent=2
        )
    )
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nauto: {reason}; kept {best}\nrun written to {out}")
    metrics = json.loads((out / "metrics.json").read_text())
    print_metrics_table({"valid": metrics["valid"], "test": metrics["test"]}, a.k)
    return 0


def launch_torchrun(a: argparse.Namespace) -> int:
    """`genrec train --nproc N ...`: the same command under torchrun, N processes on this machine."""
    import os
    import subprocess

    if a.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {a.nproc}")
    if "WORLD_SIZE" in os.environ:
        raise ValueError("--nproc inside a torchrun launch: give the process count to torchrun only")
    argv, skip = [], False
    for x in a.argv:  # the same command, less --nproc
        if skip:
            skip = False
        elif x == "--nproc":
            skip = True
        elif not x.startswith("--nproc="):
            argv.append(x)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={a.nproc}"]
    return subprocess.call([*cmd, "-m", "genrec", *argv])


def cmd_models(a: argparse.Namespace) -> int:
    from genrec.models import REGISTRY, get_model_class
    from genrec.training import TrainConfig
    from genrec.training.settings import describe

    def show(cls: type) -> str:
        return ", ".join(f"{n}={_value(d)}" for n, _, d in describe(cls)) or "(none)"

    for name in sorted(REGISTRY):
        cls = get_model_class(name)
        doc = ((cls.__doc__ or "").strip().splitlines() or [""])[0]  # a class without a docstring
        print(f"{name:<10} {doc}\n{'':<10} settings: {show(cls.config_cls)}")
    print(f"\ntraining settings (every model): {show(TrainConfig)}")
    print("set any of them with --set KEY=VALUE or a --config FILE (TOML/YAML) of KEY = VALUE lines")
    return 0


def _value(v: object) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return "none" if v is None else str(v)


def add_train_command(sub: Subparsers) -> None:
    tr = sub.add_parser(
        "train",
        help="train a model and write a run directory",
        formatter_class=RAW,
        description="Prepare the data, fit the model on the training part (hyper-parameters\n"
        "are tuned on the validation split only), evaluate on validation and test with\n"
        "full ranking, and write a self-contained run directory: config.json (every\n"
        "setting, defaults included), dataset/, model/, metrics.json, train.log.\n"
        "Ctrl-C keeps the last epoch's checkpoint; --resume continues from it.",
        epilog="Examples:\n  genrec train --data ../shared/datasets/ml-1m-u2999 --model ease\n"
        "  genrec train --synthetic --model ease --set l2=200 --out runs/syn-ease\n"
        "  genrec train --synthetic --model sasrec --config sasrec.toml --set max_minutes=10",
    )
    add_source_args(tr)
    tr.add_argument(
        "--model",
        help="model name (`genrec models` lists them), or auto: train the --candidates and keep the one "
        "with the best validation NDCG@10",
    )
    tr.add_argument(
        "--candidates",
        default=AUTO,
        help=f"models --model auto compares (default {AUTO}); a --set max_minutes=N budget is shared by "
        "those that train in epochs",
    )
    tr.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a model or training setting, e.g. lr=1e-3, threads=1, max_minutes=30 (repeatable; "
        "`genrec models` lists them)",
    )
    tr.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (.toml, .yaml): KEY = VALUE lines as for --set, and optionally "
        "model = NAME; --set wins over it",
    )
    tr.add_argument(
        "--size",
        help="size preset for models that have them: tiny, small, base, large, or auto (the default: "
        "base from 300k training targets up, small below)",
    )
    tr.add_argument("--out", help="run directory (default runs/<data>-<model>-<time>)")
    tr.add_argument("--name", help="run name under runs/")
    tr.add_argument("--k", type=parse_ks, default=[10, 20, 50], help="metric cut-offs, e.g. 10,20,50")
    tr.add_argument(
        "--include-seen", action="store_true", help="keep history items in the evaluation ranking"
    )
    tr.add_argument("--seed", type=int, default=None, help="random seed (default 0; same as --set seed=N)")
    tr.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run (same options and --out) from its last checkpoint",
    )
    tr.add_argument(
        "--log",
        choices=["none", "csv", "tensorboard", "mlflow"],
        help="training curves for dashboards in RUN/logs/ (default csv; same as --set log=...)",
    )
    tr.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help="where iterative models train (default auto: a CUDA GPU when one is visible; "
        "same as --set device=...)",
    )
    tr.add_argument(
        "--compile",
        choices=["auto", "on", "off"],
        help="torch.compile the networks (default auto: on a GPU only; the first steps compile)",
    )
    tr.add_argument(
        "--no-amp", action="store_true", help="train in float32 on a GPU (default: bf16 autocast)"
    )
    tr.add_argument(
        "--nproc",
        type=int,
        help="data-parallel training in N processes on this machine (starts torchrun; for several "
        "machines run torchrun yourself: docs/distributed.md)",
    )
    tr.add_argument(
        "--force",
        action="store_true",
        help="replace an existing run directory (a served run gets the new model as a new version)",
    )
    tr.set_defaults(func=cmd_train)


def add_models_command(sub: Subparsers) -> None:
    mo = sub.add_parser("models", help="list the available models and their settings")
    mo.set_defaults(func=cmd_models)
