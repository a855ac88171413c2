"""A run that a time budget stops ends its learning-rate decay with the budget, not partway down a
decay planned over `epochs`."""

from __future__ import annotations

import pytest
import torch

from genrec.data.cache import prepare
from genrec.data.synthetic import SyntheticConfig, generate
from genrec.data.types import DataConfig
from genrec.models import get_model_class
from genrec.models.next_item import WarmupCosine
from genrec.training import TrainConfig, fit


def test_cosine_warms_up_decays_and_ends_where_it_is_told():
    s = WarmupCosine(warmup=10, total=110, min_ratio=0.1)
    assert s(0) == pytest.approx(0.1) and s(9) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.55)  # halfway down
    assert s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)
    s.end_at(60)
    assert s(35) == pytest.approx(0.55) and s(60) == pytest.approx(0.1)
    s.end_at(10_000)  # never later than the decay planned over `epochs`
    assert s.total == 110


def test_the_end_is_checkpointed_with_the_scheduler():
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
    s = WarmupCosine(0, 100, 0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, s)
    s.end_at(40)
    fresh = WarmupCosine(0, 100, 0.0)
    torch.optim.lr_scheduler.LambdaLR(opt, fresh).load_state_dict(sched.state_dict())
    assert fresh.total == 40


@pytest.fixture(scope="module")
def ds():
    return prepare(generate(SyntheticConfig(n_users=300, n_items=120, max_len=30)), DataConfig(), cache=False)


@pytest.mark.parametrize("anneal", [True, False])
def test_a_budget_stopped_run_ends_at_the_low_rate_only_when_annealing_to_the_budget(ds, anneal):
    cls = get_model_class("sasrec")
    cfg = cls.config_cls(
        size="tiny", max_len=20, batch_tokens=1024, warmup_steps=2, epochs=10_000, patience=10_000
    )
    cfg.anneal_to_budget = anneal
    model = fit(cls(cfg), ds, TrainConfig(threads=1, max_minutes=2.0 / 60))
    info = model.fit_info_
    curve = info["phases"][0]["curve"]
    assert info["stopped_by"] == "time budget" and len(curve) >= 4, (info["stopped_by"], len(curve))
    rates = [r["lr"] for r in curve]
    if anneal:
        # the last epoch starts before the budget runs out and ends after it: past the decay's end
        assert rates[-1] <= cfg.lr * (cfg.min_lr_ratio + 0.1), rates
        assert all(a >= b for a, b in zip(rates[1:], rates[2:])), rates
    else:  # the 10,000-epoch cosine has barely moved
        assert rates[-1] > 0.99 * cfg.lr, rates
