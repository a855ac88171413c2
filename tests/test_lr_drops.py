"""Learning-rate drops on a validation plateau: back to the best weights, smaller steps from there."""

from __future__ import annotations

import pytest
import torch

from genrec.data.cache import prepare
from genrec.data.synthetic import generate
from genrec.data.types import DataConfig
from genrec.models import get_model_class
from genrec.models.base import Fitting, Phase
from genrec.training import TrainConfig, fit
from genrec.training.loop import _Loop, _snapshot_modules


def test_drop_restores_the_best_weights_and_scales_every_learning_rate(synthetic_ds):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    fitting = Fitting({"net": net}, {"main": opt}, {"main": sched})
    loop = _Loop.__new__(_Loop)  # the drop needs the loop's state, best snapshot and weight average only
    loop.state = {"drops": 0, "bad": 2, "best_epoch": 3}
    loop.average = None
    loop.best_modules = _snapshot_modules(fitting)
    best = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)  # epochs after the best one moved the weights
    loop._drop_lr(Phase("train", 10, patience=4, lr_drops=1, lr_drop_factor=0.3), fitting)
    assert torch.equal(net.weight, best)
    assert loop.state["drops"] == 1 and loop.state["bad"] == 0
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-3)
    opt.step()  # no gradients: the weights stay
    sched.step()  # the schedule keeps its shape at the smaller scale
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-3 / 2)


@pytest.mark.slow
def test_a_stalled_run_drops_its_learning_rate_at_most_lr_drops_times():
    ds = prepare(generate(), DataConfig(), cache=False)
    cls = get_model_class("sasrec")
    # a learning rate this high stalls validation within a few epochs
    cfg = cls.config_cls(size="tiny", max_len=50, batch_tokens=1024, lr=3e-2, warmup_steps=10, dropout=0.1)
    cfg.epochs, cfg.patience, cfg.lr_drops = 40, 4, 2
    model = fit(cls(cfg), ds, TrainConfig(threads=1))
    curve = model.fit_info_["phases"][0]["curve"]
    drops = [i for i, r in enumerate(curve) if "lr_drop" in r]
    assert [curve[i]["lr_drop"] for i in drops] == [1, 2]
    for i in drops:
        if i + 1 < len(curve):  # the next epoch runs at about a third of the rate (the cosine moves a bit)
            assert curve[i + 1]["lr"] < 0.35 * curve[i]["lr"]
    # each drop came where early stopping would have stopped: patience evaluations without a new best
    best = -1.0
    stalls = 0
    for i, r in enumerate(curve):
        if r["valid_ndcg@10"] > best:
            best, stalls = r["valid_ndcg@10"], 0
        else:
            stalls += 1
        if i in drops:
            assert stalls == 4
            stalls = 0
