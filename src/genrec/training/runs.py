"""A training run: data -> fit -> evaluation -> a self-contained run directory.

runs/<name>/
  config.json    the resolved configuration (source, data settings, model and every model setting,
                 training settings, cut-offs), the processed data's hash and the software versions
  dataset/       the processed dataset the model was trained and is evaluated on: id maps, item
                 metadata, splits (hard links to the prepared-data cache when on the same file system)
  model/         model.json + model.safetensors (Recommender.save)
  metrics.json   validation and test metrics, and the evaluation protocol used
  train.log      what happened, with timings

A run never reads its source or the prepared-data cache again: a copied or moved run works anywhere.
It is built in `<name>.partial/` and renamed into place when complete, so a failed run leaves nothing
behind; an interrupted one (Ctrl-C) stays there with its last checkpoint for `--resume`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import genrec
from genrec.data.dataset import Dataset
from genrec.data.sources import SourceSpec, load_dataset
from genrec.data.types import DataConfig, DataError
from genrec.evaluation import evaluate
from genrec.models import Recommender, get_model_class
from genrec.models.base import Trainable
from genrec.training import distributed
from genrec.training.config import TrainConfig
from genrec.training.loggers import check_logger, make_logger
from genrec.training.loop import Callback, TrainingInterrupted, fit, pick_device

log = logging.getLogger("genrec")
SERVED = ("versions", "events.db", "events.db-wal", "events.db-shm")  # what `genrec serve` keeps in a run


class RunError(ValueError):
    """A run directory that cannot be used as asked (exists, incomplete, changed data, ...)."""


@dataclass
class RunConfig:
    source: SourceSpec
    data: DataConfig = field(default_factory=DataConfig)
    model: str = "pop"
    model_config: dict[str, Any] = field(default_factory=dict)  # every setting, defaults included
    train: TrainConfig = field(default_factory=TrainConfig)
    ks: list[int] = field(default_factory=lambda: [10, 20, 50])
    exclude_seen: bool = True

    def __post_init__(self) -> None:
        # resolve to the full configuration (every default), so what is saved is what ran
        cls = get_model_class(self.model)
        self.model_config = dataclasses.asdict(cls.config_cls(**self.model_config))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(d: dict) -> RunConfig:
        return RunConfig(
            source=SourceSpec(**d["source"]),
            data=DataConfig(**d["data"]),
            model=d["model"],
            model_config=d["model_config"],
            train=TrainConfig(**d["train"]),
            ks=d["ks"],
            exclude_seen=d["exclude_seen"],
        )


def build_model(name: str, config: dict[str, Any]) -> Recommender:
    cls = get_model_class(name)
    return cls(cls.config_cls(**config))


def partial_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def versions() -> dict[str, str]:
    return {
        "genrec": genrec.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def check_target(out: Path, resume: bool, force: bool) -> None:
    """Refuse to overwrite a run or to resume what is not there, before anything is read or written."""
    part = partial_dir(out)
    if resume:
        if force:
            raise RunError("--resume and --force exclude each other")
        if not (part / "config.json").exists():
            hint = " (it is complete)" if (out / "config.json").exists() else ""
            raise RunError(f"--resume: no interrupted run at {part}{hint}; train without --resume")
    elif not force:
        if out.exists():
            raise RunError(
                f"{out} already exists; pass --force to replace it (a served run gets a new "
                "version), --resume to continue an interrupted run, or another --out"
            )
        if part.exists():
            raise RunError(
                f"{part} holds an interrupted run of that name; --resume it or --force to start over"
            )


def train_run(
    cfg: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool | None = None,
    callbacks: tuple[Callback, ...] = (),
) -> dict:
    """Train and evaluate; write the run directory atomically. Returns the metrics.

    Under torchrun, every process trains its share (genrec.training.distributed) and rank 0 alone
    writes the run and evaluates it; the other processes return an empty dict."""
    out = Path(out)
    model = build_model(cfg.model, cfg.model_config)
    part = partial_dir(out)
    distributed.init(pick_device(cfg.train))
    if not distributed.is_main():
        metrics = _train_replica(cfg, model, part, resume)
        # wait for rank 0 to evaluate and write the run: a replica that exits while rank 0 still holds
        # the process group can die of SIGABRT in gloo's teardown (if rank 0 fails, torchrun ends it)
        distributed.barrier()
        return metrics
    check_target(out, resume, force)
    check_logger(cfg.train.log)  # a missing dashboard package is refused before any work
    if resume:
        saved = json.loads((part / "config.json").read_text())
        if RunConfig.from_json(saved["run"]).to_json() != cfg.to_json():
            raise RunError(
                f"--resume: the settings differ from the interrupted run's "
                f"({part / 'config.json'}); pass the same data, model, --set/--config "
                "and --seed options"
            )
    else:
        shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True, exist_ok=True)
    handler = _log_to(part / "train.log")
    try:
        logger = make_logger(cfg.train.log, part / "logs", out.name)
        metrics = _train(cfg, model, out, part, resume, progress, (*callbacks, *([logger] if logger else [])))
    except TrainingInterrupted:
        raise  # the partial run stays, with its checkpoint, for --resume
    except BaseException:
        if not resume:
            log.removeHandler(handler)
            handler.close()
            shutil.rmtree(part, ignore_errors=True)  # a failed run leaves nothing behind
        raise
    finally:
        log.removeHandler(handler)
        handler.close()
    _put_in_place(part, out)
    distributed.barrier()  # the replicas wait here to exit together with rank 0 (see above)
    return metrics


def _train(
    cfg: RunConfig,
    model: Recommender,
    out: Path,
    part: Path,
    resume: bool,
    progress: bool | None,
    callbacks: tuple[Callback, ...],
) -> dict:
    t0 = time.time()
    ds = load_dataset(cfg.source, cfg.data)
    data_hash = ds.manifest.get("hash")
    log.info(
        "data %s: %d users, %d items, %d interactions (%.1fs)",
        ds.name,
        ds.n_users,
        ds.n_items,
        ds.manifest["n_interactions"],
        time.time() - t0,
    )
    if len(ds.test) == 0:
        raise DataError(
            f"{ds.name}: no user has enough interactions to evaluate under protocol {cfg.data.protocol!r}"
        )
    if resume:
        saved_hash = json.loads((part / "config.json").read_text())["data_hash"]
        if saved_hash != data_hash:
            raise RunError(
                f"--resume: the source data changed since the run started (processed-data hash "
                f"{saved_hash} then, {data_hash} now); restore it or start a new run"
            )
    else:
        store_dataset(ds, part / "dataset")
        (part / "config.json").write_text(
            json.dumps({"run": cfg.to_json(), "data_hash": data_hash, "versions": versions()}, indent=2)
        )
    t1 = time.time()
    _fit(cfg, model, ds, part, resume, callbacks=callbacks, progress=progress)
    fit_s = time.time() - t1
    log.info("fit %s in %.1fs", cfg.model, fit_s)
    model.save(part / "model")
    metrics = {"protocol": protocol_description(ds, cfg.exclude_seen), "fit_seconds": fit_s}
    for split in ("valid", "test"):
        t2 = time.time()
        metrics[split] = evaluate(
            model.score,
            getattr(ds, split),
            cfg.ks,
            cfg.exclude_seen,
            item_popularity=ds.item_popularity,
            progress=progress is not False,
        )
        metrics[split]["seconds"] = time.time() - t2
    (part / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info("test %s", ", ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items()))
    shutil.rmtree(part / "checkpoints", ignore_errors=True)  # only an unfinished run needs them
    return metrics


def _train_replica(cfg: RunConfig, model: Recommender, part: Path, resume: bool) -> dict:
    """A torchrun process other than rank 0: the same data, its share of the training, nothing written
    (a resumed run reads rank 0's checkpoint, so several machines need a shared file system for it)."""
    logging.getLogger("genrec").setLevel(logging.WARNING)  # rank 0 tells the story
    if not isinstance(model, Trainable):
        return {}  # nothing to share out: rank 0 fits it alone
    ds = load_dataset(cfg.source, cfg.data)
    _fit(cfg, model, ds, part, resume, progress=False)
    return {}


def _fit(cfg: RunConfig, model: Recommender, ds: Dataset, part: Path, resume: bool, **kw: Any) -> None:
    """`fit` as every process of a run calls it: checkpoints in the run, validation under its protocol."""
    fit(
        model,
        ds,
        cfg.train,
        checkpoint_dir=part / "checkpoints",
        resume=resume,
        exclude_seen=cfg.exclude_seen,
        **kw,
    )


def _put_in_place(part: Path, out: Path) -> None:
    """Rename the finished run into place; a replaced run's served state (versions, events) moves along."""
    if out.exists():
        for name in SERVED:
            if (out / name).exists():
                os.replace(out / name, part / name)
        old = out.with_name(f"{out.name}.replaced-{os.getpid()}")
        os.replace(out, old)
        os.replace(part, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(part, out)


def store_dataset(ds: Dataset, dest: Path) -> None:
    """The processed dataset inside the run: hard links to the cache's immutable files when possible."""
    cache = ds.manifest.get("cache_path")
    if cache and Path(cache, "manifest.json").exists():
        dest.mkdir(parents=True)
        for f in Path(cache).iterdir():
            try:
                os.link(f, dest / f.name)
            except OSError:  # another file system: copy
                shutil.copy2(f, dest / f.name)
    else:
        ds.save(dest)


def protocol_description(ds: Dataset, exclude_seen: bool) -> dict:
    return {
        "split": ds.protocol,
        "ranking": "full ranking over all items of the catalogue",
        "history_excluded": exclude_seen,
        "ties": "count against the model (rank = 1 + #others with score >=)",
        "n_items": ds.n_items,
        "dataset": ds.name,
    }


@dataclass
class Run:
    path: Path
    config: RunConfig
    model: Recommender
    dataset: Dataset
    data_hash: str | None = None


def read_run_config(path: str | Path) -> tuple[RunConfig, dict]:
    """The run's configuration and the rest of its config.json (data hash, versions)."""
    path = Path(path)
    f = path / "config.json"
    if not f.exists():
        hint = ""
        if partial_dir(path).exists():
            hint = f"; an interrupted run is in {partial_dir(path)}: finish it with `genrec train --resume`"
        raise FileNotFoundError(
            f"{path}: not a genrec run directory (no config.json){hint}; "
            "create one with `genrec train ... --out DIR`"
        )
    d = json.loads(f.read_text())
    if "run" not in d:
        raise RunError(f"{path}: written by an older genrec (no self-contained dataset); train it again")
    return RunConfig.from_json(d["run"]), d


def load_run(path: str | Path) -> Run:
    """Everything a run needs to evaluate, recommend and serve, from the run directory alone."""
    path = Path(path)
    cfg, extra = read_run_config(path)
    if not (path / "dataset" / "manifest.json").exists():
        raise RunError(f"{path}: the run's dataset/ folder is missing; copy the whole run directory")
    ds = Dataset.load(path / "dataset")
    if ds.manifest.get("hash") != extra.get("data_hash"):
        raise RunError(
            f"{path}: dataset/ does not match config.json (hash {ds.manifest.get('hash')} vs "
            f"{extra.get('data_hash')}); the run directory was modified"
        )
    model = Recommender.load(path / "model")
    if model.n_items_ != ds.n_items:
        raise RunError(
            f"{path}: the model knows {model.n_items_} items but dataset/ has {ds.n_items}; "
            "the run directory was modified"
        )
    return Run(path, cfg, model, ds, extra.get("data_hash"))
