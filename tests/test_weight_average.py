"""Weight averaging in the training loop: validation, early stopping and the kept model read an
exponential moving average of the weights; the live weights keep training."""

from __future__ import annotations

import copy

import pytest
import torch
from test_sequential import ONE_THREAD, make
from test_tiger import SMALL, TRAIN

from genrec.models import get_model_class
from genrec.models.base import Fitting, Phase
from genrec.models.tiger import TigerConfig
from genrec.training import Callback, TrainingInterrupted, fit
from genrec.training.loop import WeightAverage, _Loop, _snapshot_modules, validate, validation_users

TINY = {**SMALL, "rq_epochs": 20, "epochs": 5, "patience": 5, "eval_users": 0, "average_decay": 0.9}


def test_the_average_follows_the_ramped_decay_and_swaps_in_place():
    net = torch.nn.Linear(2, 1, bias=False)
    tied = torch.nn.ModuleDict({"a": net, "b": net})  # a shared parameter is averaged once
    avg = WeightAverage(Fitting({"net": tied, "again": net}, {}), decay=0.5)
    assert len(avg.params) == 1
    w = net.weight
    expected = w.detach().clone()
    for step in range(1, 6):
        with torch.no_grad():
            w.add_(1.0)
        avg.update()
        d = min(0.5, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * w.detach()
        assert torch.allclose(avg.shadow[0], expected)
    live = w.detach().clone()
    avg.swap()
    assert torch.allclose(w, expected) and torch.equal(avg.shadow[0], live)
    avg.swap()
    assert torch.equal(w, live)
    avg.reset()
    assert torch.equal(avg.shadow[0], live) and avg.n == 0


def test_average_decay_is_validated():
    with pytest.raises(ValueError, match="average_decay must be in"):
        TigerConfig(average_decay=1.0).validate()


class LiveWeights(Callback):
    """The live weights of `phase_name`'s `attr` module at the end of every epoch (the loop has swapped
    the average back out)."""

    def __init__(self, phase_name: str, attr: str) -> None:
        self.phase_name, self.attr = phase_name, attr
        self.by_epoch: dict[int, dict] = {}

    def on_epoch_end(self, model, phase, row) -> None:
        if phase.name == self.phase_name:
            self.by_epoch[row["epoch"]] = copy.deepcopy(getattr(model, self.attr).state_dict())


@pytest.mark.slow
def test_the_kept_model_is_the_validated_average(synthetic_ds, tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path))
    live = LiveWeights("generator", "nets_")
    model = fit(get_model_class("tiger")(TigerConfig(**TINY)), synthetic_ds, TRAIN, callbacks=(live,))
    phase = model.fit_info_["phases"][-1]
    kept = model.nets_.state_dict()
    at_best = live.by_epoch[phase["best_epoch"]]
    assert any(not torch.equal(kept[k], at_best[k]) for k in kept)  # not the live weights
    # the value early stopping kept is the kept model's own
    valid = validation_users(synthetic_ds, 0, TRAIN.seed)
    assert validate(model, valid, "ndcg@10") == pytest.approx(phase["best_valid"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_sequential_models_keep_and_validate_the_average(name, synthetic_ds):
    live = LiveWeights("train", "net")
    averaged = make(name, epochs=4, patience=4, average_decay=0.9)
    model = fit(averaged, synthetic_ds, ONE_THREAD, callbacks=(live,))
    phase = model.fit_info_["phases"][-1]
    kept = model.net.state_dict()
    at_best = live.by_epoch[phase["best_epoch"]]
    assert any(not torch.equal(kept[k], at_best[k]) for k in kept)  # the average, not the live weights
    valid = validation_users(synthetic_ds, 0, 0)
    assert validate(model, valid, "ndcg@10") == pytest.approx(phase["best_valid"], abs=1e-6)


class StopAt(Callback):
    def __init__(self, n: int) -> None:
        self.n = n

    def on_epoch_end(self, model, phase, row) -> None:
        if phase.name == "generator":
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt


@pytest.mark.slow
def test_a_resumed_run_continues_the_same_average(synthetic_ds, tmp_path, monkeypatch):
    cfg = TigerConfig(**TINY)
    # each run trains its own RQ-VAE: a cached one would leave the RNG where a trained one does not
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache-a"))
    straight = fit(get_model_class("tiger")(cfg), synthetic_ds, TRAIN)
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache-b"))
    ckpt = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        fit(get_model_class("tiger")(cfg), synthetic_ds, TRAIN, checkpoint_dir=ckpt, callbacks=(StopAt(3),))
    torch.manual_seed(999)  # a fresh process: the checkpoint carries the average and every RNG state
    resumed = fit(get_model_class("tiger")(cfg), synthetic_ds, TRAIN, checkpoint_dir=ckpt, resume=True)
    curve = [r["valid_ndcg@10"] for r in resumed.fit_info_["phases"][-1]["curve"]]
    assert curve == [r["valid_ndcg@10"] for r in straight.fit_info_["phases"][-1]["curve"]]
    h = synthetic_ds.test.history
    assert torch.allclose(resumed.score(h), straight.score(h), atol=1e-6)


def test_a_learning_rate_drop_restarts_the_average_from_the_best_weights():
    net = torch.nn.Linear(3, 2)
    fitting = Fitting({"net": net}, {"main": torch.optim.AdamW(net.parameters(), lr=1e-2)})
    loop = _Loop.__new__(_Loop)  # the drop needs the loop's state, best snapshot and weight average only
    loop.state = {"drops": 0, "bad": 2, "best_epoch": 3}
    loop.best_modules = _snapshot_modules(fitting)
    best = net.weight.detach().clone()
    loop.average = WeightAverage(fitting, decay=0.9)
    with torch.no_grad():
        net.weight.add_(1.0)
    loop.average.update()  # the average has moved towards the later weights
    loop._drop_lr(Phase("train", 10, patience=2, lr_drops=1), fitting)
    assert torch.equal(net.weight, best) and torch.equal(loop.average.shadow[0], best)
    assert loop.average.n == 0
