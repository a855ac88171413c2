"""`genrec update` fine-tunes torch models from the served weights instead of refitting from scratch."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_client
from test_serve_update import future_ndcg, post, shifted_taste

from genrec.cli import main
from genrec.data.dataset import Dataset, Histories
from genrec.data.sources import SourceSpec, load_dataset
from genrec.data.types import DataConfig
from genrec.models import Recommender, get_model_class
from genrec.models.base import WarmStartable, grow_into
from genrec.serving.registry import Registry
from genrec.training import TrainConfig, fit


def grown(ds: Dataset, extra: int) -> Dataset:
    """The same data with `extra` new items appended to the catalogue (nobody has used them yet)."""
    raw = np.concatenate([ds.item_raw, [f"new-{j}" for j in range(extra)]])
    return Dataset(ds.name, ds.user_raw, raw, ds.train, ds.valid, ds.test, ds.protocol)


@pytest.mark.parametrize("name", ["sasrec", "multdae"])
def test_warm_start_begins_at_the_old_weights(name, request, monkeypatch):
    """With every optimiser step disabled, a warm-started fit returns the old model: equal scores on the
    old items (new items get fresh rows); from scratch it does not."""
    ds = load_dataset(SourceSpec(synthetic=True), DataConfig())
    one_thread = TrainConfig(threads=1)
    if name == "sasrec":
        old = Recommender.load(request.getfixturevalue("sasrec_run") / "model")
    else:
        old = fit(get_model_class("multdae")(epochs=1, hidden=[32]), ds, one_thread)
    big = grown(ds, 7)
    for opt in (torch.optim.Adam, torch.optim.AdamW):
        monkeypatch.setattr(opt, "step", lambda self, *a, **k: None)
    cfg = {**dataclasses.asdict(old.config), "epochs": 1}
    warm, cold = get_model_class(name)(**cfg), get_model_class(name)(**cfg)
    assert isinstance(warm, WarmStartable)
    warm.start_from(old)
    fit(warm, big, one_thread)
    fit(cold, big, one_thread)
    if name == "sasrec":  # item text (on by default) carries over though the grown data has none
        assert old.net.item_text is not None and warm.net.item_text is not None
    h = Histories.from_lists([ds.train.row(u) for u in range(1, 40)])
    ref, got, fresh = old.score(h), warm.score(h), cold.score(h)
    n = ds.n_items + 1
    assert got.shape[1] == n + 7 and torch.isfinite(got[:, 1:]).all()
    assert torch.allclose(got[:, 1:n], ref[:, 1:n], atol=1e-5)
    assert not torch.allclose(fresh[:, 1:n], ref[:, 1:n], atol=1e-2)


def test_grow_into_refuses_another_architecture():
    from torch import nn

    with pytest.raises(ValueError, match="only the catalogue may grow"):
        grow_into(nn.Linear(4, 8), nn.Linear(4, 16).state_dict())


@pytest.fixture(scope="module")
def multdae_run(tmp_path_factory) -> Path:
    from genrec.training.runs import RunConfig, train_run

    out = tmp_path_factory.mktemp("warm") / "multdae-run"
    cfg = {"hidden": [64], "epochs": 2, "batch_size": 100}
    train_run(
        RunConfig(source=SourceSpec(synthetic=True), model="multdae", model_config=cfg, ks=[10]),
        out,
        progress=False,
    )
    return out


@pytest.mark.slow
def test_update_fine_tunes_on_shifted_taste(multdae_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(multdae_run, run)
    events = f"sqlite:///{tmp_path / 'events.db'}"
    reg = Registry(run)
    with make_client(run, events) as client:
        v1 = reg.load()
        plan = shifted_taste(v1.catalog)
        post(client, plan, 0, 12, "w1")
    # a fine-tune needs enough steps at a high enough rate to move: 20 steps/epoch at lr 1e-2
    tune = ["--set", "batch_size=50", "--set", "lr=1e-2", "--set", "dropout=0.2", "--warm-epochs", "3"]
    assert main(["update", str(run), "--events", events, *tune]) == 0
    out = capsys.readouterr().out
    assert "fine-tuning multdae" in out and "published v0002" in out, out
    v2 = reg.load()
    assert v2.meta["update"]["warm_start"] and v2.model.fit_info_["epochs"] <= 3
    n_total = v2.catalog.n_items
    old, new = future_ndcg(v1, plan, 12, n_total), future_ndcg(v2, plan, 12, n_total)
    print(f"Mult-DAE NDCG@10 on the next new-taste item: v0001 {old:.4f}, fine-tuned v0002 {new:.4f}")
    assert new > 2 * old and new > 0.05, (old, new)
