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

TINY_VAE = dict(hidden=[64, 16], batch_size=100, epochs=12, patience=12)
# 600 users give ~15 updates per epoch: larger learning rates than the real-data defaults
TINY_GAN = dict(g_hidden=64, d_hidden=32, epochs=24, eval_every=6, patience=24, lr_g=1e-2, lr_d=1e-3)


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
    return evaluate(get_model_class("pop")().fit(users_ds).score, users_ds.test, ks=(20,))["ndcg@20"]


@pytest.fixture(scope="module")
def vae(users_ds):
    return MultVAE(**TINY_VAE).fit(users_ds)


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
    betas = [r["beta"] for r in info["beta_search"]]
    assert betas == sorted(betas) and betas[-1] > betas[0]  # annealing curve recorded
    best = info["beta_search"][info["beta_search_best_epoch"] - 1]
    assert info["beta"] == best["beta"]  # the beta of the best validation epoch
    assert best["valid_ndcg@100"] == max(r["valid_ndcg@100"] for r in info["beta_search"])
    assert max(r["beta"] for r in info["curve"]) <= info["beta"] + 1e-12  # final run stops at the cap


def test_multdae_folds_in(users_ds, pop_ndcg):
    dae = get_model_class("multdae")(**TINY_VAE).fit(users_ds)
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
    model = vae if name == "multvae" else CFGAN(**{**TINY_GAN, "epochs": 2, "eval_every": 1}).fit(users_ds)
    model.save(tmp_path / name)
    loaded = Recommender.load(tmp_path / name)
    h = users_ds.test.history.take(slice(0, 20))
    assert torch.equal(model.score(h), loaded.score(h))
    assert loaded.config == model.config


class _FrozenGenerator(CFGAN):
    """CFGAN whose generator update is broken: gradients are computed but never applied."""

    def _update_generator(self, opt, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()


def _gen_params(model: CFGAN) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.gen_.parameters()])


@pytest.mark.slow
def test_cfgan_trains_stably_and_a_broken_generator_update_is_caught(users_ds, pop_ndcg):
    torch.manual_seed(0)
    init = _gen_params(CFGAN(**TINY_GAN)._init_nets(users_ds.n_items))

    def quality_ok(model: CFGAN) -> bool:
        curve = model.fit_info_["curve"]
        changed = not torch.equal(_gen_params(model), init)
        g_moved = abs(curve[-1]["g_loss"] - curve[0]["g_loss"]) > 1e-3
        return changed and g_moved and _ndcg(model, users_ds) > 1.3 * pop_ndcg

    good = CFGAN(**TINY_GAN).fit(users_ds)
    curve = good.fit_info_["curve"]
    assert all(np.isfinite([r["d_loss"], r["g_loss"]]).all() for r in curve)
    assert min(r["d_loss"] for r in curve[:3]) > 0.05  # D does not win outright in the first epochs
    assert quality_ok(good)

    broken = _FrozenGenerator(**TINY_GAN).fit(users_ds)
    assert torch.equal(_gen_params(broken), init)  # nothing moved the generator
    assert not quality_ok(broken)
