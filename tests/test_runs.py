"""Run directories: self-contained (work when moved, with the source and the cache gone), built atomically
(a failed run leaves nothing), resumable after Ctrl-C, never overwritten silently, and a changed source
is reported, never silently rebuilt."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from genrec.data.sources import SourceSpec
from genrec.training import Callback, TrainConfig, TrainingInterrupted
from genrec.training.runs import RunConfig, RunError, load_run, partial_dir, train_run


class StopAfter(Callback):
    def __init__(self, n: int) -> None:
        self.n = n

    def on_epoch_end(self, model, phase, row) -> None:
        if row["epoch"] == self.n:
            raise KeyboardInterrupt


@pytest.fixture()
def own_cache(tmp_path, monkeypatch):
    """A prepared-data cache of this test alone, so that deleting it touches nothing else."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GENREC_CACHE_DIR", str(cache))
    return cache


def csv_source(tmp_path, shared_data, n: int = 20000):
    """The first `n` ml-100k ratings as a CSV file of this test (so the test may change it)."""
    df = pd.read_csv(shared_data / "ml-100k" / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
    path = tmp_path / "log.csv"
    df.head(n).to_csv(path, index=False)
    return SourceSpec(data=str(path))


SEQ = {"size": "tiny", "max_len": 20, "epochs": 3, "patience": 5, "batch_tokens": 1024}


def test_run_is_self_contained(tmp_path, shared_data, own_cache):
    src = csv_source(tmp_path, shared_data)
    out = tmp_path / "runs" / "ease"
    train_run(RunConfig(source=src, model="ease", model_config={"l2": 50.0}), out, progress=False)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["run"]["model_config"] == {
        "l2": 50.0,
        "l2_grid": [10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0],
    }
    assert cfg["run"]["train"]["threads"] == 0 and cfg["data_hash"] and cfg["versions"]["torch"]
    before = load_run(out)
    h = before.dataset.test.history.take(slice(0, 30))
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(out, moved)
    shutil.rmtree(own_cache)
    (tmp_path / "log.csv").unlink()
    after = load_run(moved)
    assert torch.equal(before.model.score(h), after.model.score(h))
    assert list(after.dataset.item_raw) == list(before.dataset.item_raw)


def test_failed_train_leaves_nothing(tmp_path, shared_data, own_cache, monkeypatch):
    import genrec.training.runs as runs

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(runs, "evaluate", broken)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="disk full"):
        train_run(RunConfig(source=csv_source(tmp_path, shared_data), model="pop"), out, progress=False)
    assert not out.exists() and not partial_dir(out).exists()


def test_existing_run_is_never_overwritten_silently(tmp_path, shared_data, own_cache):
    src = csv_source(tmp_path, shared_data)
    out = tmp_path / "run"
    train_run(RunConfig(source=src, model="pop"), out, progress=False)
    (out / "versions").mkdir()  # what `genrec serve` keeps in a run
    (out / "versions" / "CURRENT").write_text("v0001\n")
    with pytest.raises(RunError, match="already exists; pass --force"):
        train_run(RunConfig(source=src, model="ease", model_config={"l2": 50.0}), out, progress=False)
    assert json.loads((out / "model" / "model.json").read_text())["model"] == "pop"
    train_run(RunConfig(source=src, model="ease", model_config={"l2": 50.0}), out, force=True, progress=False)
    assert json.loads((out / "model" / "model.json").read_text())["model"] == "ease"
    assert (out / "versions" / "CURRENT").read_text() == "v0001\n"  # served state kept for a new version


@pytest.mark.slow  # resume is also in the contract test
def test_interrupted_run_resumes_to_the_same_model(tmp_path, shared_data, own_cache):
    src = csv_source(tmp_path, shared_data)
    cfg = RunConfig(source=src, model="sasrec", model_config=SEQ, train=TrainConfig(threads=1))
    straight = tmp_path / "straight"
    train_run(cfg, straight, progress=False)
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as stop:
        train_run(cfg, out, progress=False, callbacks=(StopAfter(1),))
    assert not out.exists() and stop.value.checkpoint == partial_dir(out) / "checkpoints" / "last.pt"
    with pytest.raises(RunError, match="interrupted run"):
        train_run(cfg, out, progress=False)  # neither --resume nor --force
    other = RunConfig(source=src, model="sasrec", model_config={**SEQ, "epochs": 4})
    with pytest.raises(RunError, match="settings differ"):
        train_run(other, out, resume=True, progress=False)
    train_run(cfg, out, resume=True, progress=False)
    assert out.exists() and not partial_dir(out).exists() and not (out / "checkpoints").exists()
    a, b = load_run(straight), load_run(out)
    h = a.dataset.test.history.take(slice(0, 30))
    assert torch.allclose(a.model.score(h), b.model.score(h), atol=1e-5)
    assert "resumed from" in (out / "train.log").read_text()


def test_changed_source_is_reported_on_resume(tmp_path, shared_data, own_cache):
    src = csv_source(tmp_path, shared_data)
    cfg = RunConfig(source=src, model="sasrec", model_config=SEQ, train=TrainConfig(threads=1))
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train_run(cfg, out, progress=False, callbacks=(StopAfter(1),))
    with open(tmp_path / "log.csv", "a") as f:
        f.write("1,50,5,881250949\n2,50,5,881250950\n3,50,5,881250951\n")
    with pytest.raises(RunError, match="source data changed"):
        train_run(cfg, out, resume=True, progress=False)


def test_a_modified_run_is_refused(tmp_path, shared_data, own_cache):
    out = tmp_path / "run"
    train_run(RunConfig(source=csv_source(tmp_path, shared_data), model="pop"), out, progress=False)
    cfg = json.loads((out / "config.json").read_text())
    cfg["data_hash"] = "0" * 16
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match="was modified"):
        load_run(out)
    with pytest.raises(FileNotFoundError, match="not a genrec run"):
        load_run(tmp_path)
