"""A training run: data -> model.fit -> evaluation -> run directory.

runs/<name>/
  config.json    everything needed to reproduce the run (source, data config, model + config, seed)
  dataset.json   where the processed dataset lives (its cache path and hash)
  model/         model.json + model.pt (Recommender.save)
  metrics.json   validation and test metrics, and the evaluation protocol used
  train.log      what happened, with timings
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.data.dataset import Dataset
from genrec.data.sources import SourceSpec, load_dataset
from genrec.data.types import DataConfig, DataError
from genrec.evaluation import evaluate
from genrec.models import Recommender, get_model_class

log = logging.getLogger("genrec")


@dataclass
class RunConfig:
    source: SourceSpec
    data: DataConfig = field(default_factory=DataConfig)
    model: str = "pop"
    model_config: dict[str, Any] = field(default_factory=dict)
    ks: list[int] = field(default_factory=lambda: [10, 20, 50])
    exclude_seen: bool = True
    seed: int = 0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(d: dict) -> RunConfig:
        return RunConfig(source=SourceSpec(**d["source"]), data=DataConfig(**d["data"]), model=d["model"],
                         model_config=d["model_config"], ks=d["ks"], exclude_seen=d["exclude_seen"],
                         seed=d["seed"])


def build_model(name: str, overrides: dict[str, Any]) -> Recommender:
    cls = get_model_class(name)
    fields = {f.name: f for f in dataclasses.fields(cls.config_cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"model {name!r} has no setting(s) {', '.join(unknown)}; "
                         f"its settings are: {', '.join(fields) or '(none)'}")
    return cls(cls.config_cls(**overrides))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def train_run(cfg: RunConfig, out: Path, progress: bool = True, resume: bool = False) -> dict:
    """Train and evaluate; write the run directory. Returns metrics.

    Models with per-epoch checkpoints (those with a `checkpoint_dir` attribute) write them to
    out/checkpoints; `resume` continues an interrupted run there (same settings required).
    """
    model = build_model(cfg.model, cfg.model_config)  # fail on bad settings before reading data
    if resume:
        if not hasattr(model, "checkpoint_dir"):
            raise ValueError(f"model {cfg.model!r} trains in one step and has no checkpoints to resume from")
        old = out / "config.json"
        if not old.exists():
            raise FileNotFoundError(f"--resume: {out} holds no run to resume (no config.json); "
                                    "name the run directory of the interrupted run with --out")
        if json.loads(old.read_text()) != cfg.to_json():
            raise ValueError(f"--resume: the settings differ from the interrupted run's {old}; "
                             "pass the same data, model, --set and --seed options")
    if hasattr(model, "checkpoint_dir"):
        model.checkpoint_dir, model.resume = out / "checkpoints", resume
    out.mkdir(parents=True, exist_ok=True)
    handler = _log_to(out / "train.log")
    try:
        seed_everything(cfg.seed)
        t0 = time.time()
        ds = load_dataset(cfg.source, cfg.data)
        log.info("data %s: %d users, %d items, %d interactions (%.1fs)", ds.name, ds.n_users, ds.n_items,
                 ds.manifest["n_interactions"], time.time() - t0)
        if len(ds.test) == 0:
            raise DataError(f"{ds.name}: no user has enough interactions to evaluate under protocol "
                            f"{cfg.data.protocol!r}")
        (out / "config.json").write_text(json.dumps(cfg.to_json(), indent=2))
        (out / "dataset.json").write_text(json.dumps({
            "name": ds.name, "cache_path": ds.manifest.get("cache_path"), "hash": ds.manifest.get("hash"),
            "n_users": ds.n_users, "n_items": ds.n_items}, indent=2))
        t1 = time.time()
        model.fit(ds)
        fit_s = time.time() - t1
        log.info("fit %s in %.1fs %s", cfg.model, fit_s, model.fit_info_)
        model.save(out / "model")
        metrics = {"protocol": protocol_description(ds, cfg.exclude_seen), "fit_seconds": fit_s}
        for split in ("valid", "test"):
            t2 = time.time()
            metrics[split] = evaluate(model.score, getattr(ds, split), cfg.ks, cfg.exclude_seen,
                                      item_popularity=ds.item_popularity, progress=progress)
            metrics[split]["seconds"] = time.time() - t2
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        log.info("test %s", {k: round(v, 4) for k, v in metrics["test"].items()})
        return metrics
    finally:
        log.removeHandler(handler)
        handler.close()


def protocol_description(ds: Dataset, exclude_seen: bool) -> dict:
    return {
        "split": ds.protocol, "ranking": "full ranking over all items of the catalogue",
        "history_excluded": exclude_seen,
        "ties": "count against the model (rank = 1 + #others with score >=)",
        "n_items": ds.n_items, "dataset": ds.name,
    }


@dataclass
class Run:
    path: Path
    config: RunConfig
    model: Recommender
    dataset: Dataset


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path}: not a genrec run directory (no config.json); "
                                "create one with `genrec train ... --out DIR`")
    cfg = RunConfig.from_json(json.loads((path / "config.json").read_text()))
    info = json.loads((path / "dataset.json").read_text())
    cache = info.get("cache_path")
    if cache and (Path(cache) / "manifest.json").exists():
        ds = Dataset.load(Path(cache))
    else:  # cache deleted or moved: rebuild from the recorded source (same hash -> same data)
        ds = load_dataset(cfg.source, cfg.data)
    model = Recommender.load(path / "model")
    extend = getattr(model, "extend_catalogue", None)
    if extend is not None:  # items added to this run after training (`genrec items add`)
        ds = extend(ds)
    return Run(path, cfg, model, ds)
