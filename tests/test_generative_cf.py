"""Mult-VAE / Mult-DAE / CFGAN: fold-in, annealing, sparse inputs, persistence, GAN training health."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.dataset import Histories
from genrec.evaluation import evaluate
from genrec.models import Recommender, get_model_class
from genrec.models.base import history_matrix
from genrec.models.cfgan import CFGAN
from genrec.models.multvae import AutoEncoder, MultVAE, beta_schedule
from genrec.training import Callback, TrainConfig, TrainingInterrupted, fit

TINY_VAE = dict(hidden=[64, 16], batch_size=100, epochs=12, patience=12)
# 600 users give ~15 updates per epoch: larger learning rates than the real-data defaults
TINY_GAN = dict(g_hidden=64, d_hidden=32, epochs=24, eval_every=6, patience=4, lr_g=1e-2, lr_d=1e-3)
TRAIN = TrainConfig(threads=1)  # tiny matrices: threads only add contention on shared cores


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention on shared cores
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def users_ds():
    """Synthetic data under strong generalization: valid/test users are absent from training."""
    from genrec.data.cache import prepare
    from genrec.data.synthetic import SyntheticConfig, generate
    from genrec.data.types import DataConfig

    # taste dominates popularity, so a model that reads the history must beat Pop clearly
    syn = SyntheticConfig(n_users=600, n_items=200, taste_concentration=0.1, zipf=0.8)
    return prepare(generate(syn), DataConfig(protocol="users"), cache=False)


@pytest.fixture(scope="module")
def pop_ndcg(users_ds):
    return evaluate(fit(get_model_class("pop")(), users_ds).score, users_ds.test, ks=(20,))["ndcg@20"]


@pytest.fixture(scope="module")
def vae(users_ds):
    return fit(MultVAE(**TINY_VAE), users_ds, TRAIN)


def _ndcg(model, ds) -> float:
    return evaluate(model.score, ds.test, ks=(20,))["ndcg@20"]


def test_beta_schedule_values():
    assert beta_schedule(0, 100, 1.0) == 0.0
    assert beta_schedule(50, 100, 1.0) == pytest.approx(0.5)
    assert beta_schedule(100, 100, 1.0) == 1.0
    assert beta_schedule(400, 100, 1.0) == 1.0  # stays at beta_max after annealing
    assert beta_schedule(10, 100, 1.0, cap=0.2) == pytest.approx(0.1)
    assert beta_schedule(50, 100, 1.0, cap=0.2) == pytest.approx(0.2)  # annealing stops at the cap
    assert beta_schedule(50, 100, 0.5) == pytest.approx(0.25)


def test_multvae_folds_in_unseen_users_and_picks_beta_on_validation(users_ds, vae, pop_ndcg):
    test_users = users_ds.test.history.users
    assert (users_ds.train.lengths[test_users] == 0).all()  # never seen in training
    assert _ndcg(vae, users_ds) > 1.3 * pop_ndcg
    info = vae.fit_info_
    search, final = info["phases"]
    assert (search["name"], final["name"], info["valid_metric"]) == ("beta search", "final", "ndcg@100")
    betas = [r["beta"] for r in search["curve"]]
    assert betas == sorted(betas) and betas[-1] > betas[0]  # annealing curve recorded
    best = search["curve"][search["best_epoch"] - 1]
    assert info["beta"] == best["beta"]  # the beta of the best validation epoch
    assert best["valid_ndcg@100"] == max(r["valid_ndcg@100"] for r in search["curve"])
    assert max(r["beta"] for r in final["curve"]) <= info["beta"] + 1e-12  # final run stops at the cap
    assert final["curve"][: search["best_epoch"]] == search["curve"][: search["best_epoch"]]  # continued


class StopAt(Callback):
    """Ctrl-C during the `n`-th epoch of `phase` (at its end, before its checkpoint is written)."""

    def __init__(self, phase: str, n: int) -> None:
        self.phase, self.n = phase, n

    def on_epoch_end(self, model, phase, row) -> None:
        if phase.name == self.phase:
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt


def _curves(model) -> list[list[dict]]:
    """Every phase's log rows without the timings."""
    return [
        [{k: v for k, v in r.items() if k not in ("seconds", "examples_per_s")} for r in p["curve"]]
        for p in model.fit_info_["phases"]
    ]


def test_multvae_resumed_run_equals_an_uninterrupted_one(users_ds, tmp_path):
    """Interrupted in the beta search, at the start of the final phase and inside it, then resumed from
    the checkpoints: the same curves, beta and scores as a run that was never interrupted."""
    # beta_max 20 overshoots: the search peaks at epoch 5, so the final phase trains epochs 6-8
    cfg = dict(TINY_VAE, epochs=8, patience=8, beta_max=20.0)
    straight = fit(MultVAE(**cfg), users_ds, TRAIN)
    assert straight.fit_info_["phases"][0]["best_epoch"] < 8
    model = MultVAE(**cfg)
    for stop, resume in (
        (StopAt("beta search", 2), False),
        (StopAt("final", 1), True),
        (StopAt("final", 2), True),
    ):
        with pytest.raises(TrainingInterrupted) as e:
            fit(model, users_ds, TRAIN, checkpoint_dir=tmp_path, callbacks=(stop,), resume=resume)
        assert e.value.checkpoint == tmp_path / "last.pt"
        model = MultVAE(**cfg)  # a new process: nothing but the checkpoint survives
    fit(model, users_ds, TRAIN, checkpoint_dir=tmp_path, resume=True)
    assert model.fit_info_["beta"] == straight.fit_info_["beta"]
    assert model.fit_info_["epochs"] == straight.fit_info_["epochs"]
    assert _curves(model) == _curves(straight)
    h = users_ds.test.history
    assert torch.equal(model.score(h), straight.score(h))


def test_multdae_folds_in(users_ds, pop_ndcg):
    dae = fit(get_model_class("multdae")(**TINY_VAE), users_ds, TRAIN)
    assert _ndcg(dae, users_ds) > 1.3 * pop_ndcg
    assert "beta" not in dae.fit_info_


def test_sparse_input_path_equals_dense():
    torch.manual_seed(0)
    m = MultVAE(hidden=[12, 4])
    m.n_items_ = 30
    m.net_ = AutoEncoder(30, [12, 4], variational=True, dropout=0.5)
    h = Histories.from_lists([[3, 7, 7, 29], [1], [], [30, 2, 5, 8, 13, 21]])  # a repeat counts once
    sparse = m.score(h)
    dense = m.score_dense(history_matrix(h, 30))
    assert sparse.shape == (4, 31) and torch.isinf(sparse[:, 0]).all()
    torch.testing.assert_close(sparse[:, 1:], dense[:, 1:], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="1..30"):
        m.score(Histories.from_lists([[31]]))


@pytest.mark.parametrize("name", ["multvae", "cfgan"])
def test_save_load_round_trip_identical_scores(tmp_path, users_ds, vae, name):
    gan = CFGAN(**{**TINY_GAN, "epochs": 2, "eval_every": 1})
    model = vae if name == "multvae" else fit(gan, users_ds, TRAIN)
    model.save(tmp_path / name)
    loaded = Recommender.load(tmp_path / name)
    h = users_ds.test.history.take(slice(0, 20))
    assert torch.equal(model.score(h), loaded.score(h))
    assert loaded.config == model.config


class _Watched(CFGAN):
    """CFGAN that keeps its generator's initial parameters."""

    def setup_phase(self, phase, data, device):
        fitting = super().setup_phase(phase, data, device)
        self.init_gen = _gen_params(self)
        return fitting


class _FrozenGenerator(_Watched):
    """CFGAN whose generator update is broken: gradients are computed but never applied."""

    def setup_phase(self, phase, data, device):
        fitting = super().setup_phase(phase, data, device)
        for group in fitting.optimizers["g"].param_groups:
            group["lr"] = 0.0
        return fitting


def _gen_params(model: CFGAN) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.gen_.parameters()])


@pytest.mark.slow
def test_cfgan_trains_stably_and_a_broken_generator_update_is_caught(users_ds, pop_ndcg):
    def quality_ok(model: _Watched) -> bool:
        curve = model.fit_info_["phases"][0]["curve"]
        changed = not torch.equal(_gen_params(model), model.init_gen)
        g_moved = abs(curve[-1]["g_loss"] - curve[0]["g_loss"]) > 1e-3
        return changed and g_moved and _ndcg(model, users_ds) > 1.3 * pop_ndcg

    good = fit(_Watched(**TINY_GAN), users_ds, TRAIN)
    curve = good.fit_info_["phases"][0]["curve"]
    assert [r["epoch"] for r in curve if "valid_ndcg@100" in r] == [6, 12, 18, 24]  # every eval_every epochs
    assert all(np.isfinite([r["d_loss"], r["g_loss"]]).all() for r in curve)
    assert min(r["d_loss"] for r in curve[:3]) > 0.05  # D does not win outright in the first epochs
    assert quality_ok(good)

    broken = fit(_FrozenGenerator(**TINY_GAN), users_ds, TRAIN)
    assert torch.equal(_gen_params(broken), broken.init_gen)  # nothing moved the generator
    assert not quality_ok(broken)
