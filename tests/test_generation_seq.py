"""Generation on the real sequence models (SASRec, HSTU): the KV-cached decoder must produce the same
lists as re-scoring the whole prefix, and exported vectors must reproduce the model's scores.

Weights are a fresh initialisation (no training needed to check decoding arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.generation import Constraints, beam_search, sample
from genrec.generation.export import export_embeddings, read_embeddings
from genrec.models import get_model_class
from genrec.models.base import IncrementalModel


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: extra threads only add synchronisation
    yield
    torch.set_num_threads(n)


def fresh(name: str, n_items: int, **overrides):
    cls = get_model_class(name)
    model = cls(cls.config_cls(size="tiny", n_layers=2, max_len=100, dropout=0.0, **overrides))
    torch.manual_seed(0)
    model.n_items_ = n_items
    model.net = model.build_net(n_items).eval()
    with torch.no_grad():  # larger output embeddings than the init: peaked, tie-free distributions
        model.net.item_emb.weight.mul_(4.0)
    return model


@pytest.mark.parametrize(
    "name, overrides", [("sasrec", {}), ("hstu", {}), ("hstu", {"query_time": "next"})], ids=str
)
def test_cached_beam_and_sampling_equal_recompute(name, overrides, synthetic_ds):
    """The test histories carry request times (their held-out items' times): generated items take
    them on both paths, and HSTU with query_time=next measures its last query's gaps from them."""
    model = fresh(name, synthetic_ds.n_items, **overrides)
    assert isinstance(model, IncrementalModel)
    if name == "hstu":
        with torch.no_grad():  # the time biases start at 0: give them some, so that times matter
            for i, layer in enumerate(model.net.layers):
                layer.time_bias.copy_(
                    torch.randn(layer.time_bias.shape, generator=torch.Generator().manual_seed(i))
                )
    h = synthetic_ds.test.history.take(np.arange(24))  # <= 50 items + 8 generated < max_len
    assert h.request_ts is not None
    cons = Constraints(category_cap=3, item_category=synthetic_ds.item_category)
    cached = beam_search(model, h, 8, beam_size=4, constraints=cons)
    recomputed = beam_search(model, h, 8, beam_size=4, constraints=cons, use_cache=False)
    np.testing.assert_array_equal(cached.items, recomputed.items)
    np.testing.assert_allclose(cached.scores, recomputed.scores, rtol=1e-3, atol=1e-3)
    assert (cached.items > 0).all()
    a = sample(model, h, 8, temperature=1.0, top_p=0.95, seed=2, constraints=cons)
    b = sample(model, h, 8, temperature=1.0, top_p=0.95, seed=2, constraints=cons, use_cache=False)
    np.testing.assert_array_equal(a.items, b.items)


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_export_vectors_reproduce_scores(name, synthetic_ds, tmp_path):
    model = fresh(name, synthetic_ds.n_items)
    meta = export_embeddings(model, synthetic_ds, tmp_path / "emb.parquet")
    tables, _ = read_embeddings(tmp_path / "emb.parquet")
    assert meta["n_users"] == synthetic_ds.n_users and meta["dim"] == 32
    _, items = tables["item"]
    _, users = tables["user"]
    assert items.shape == (synthetic_ds.n_items, 32) and users.shape == (synthetic_ds.n_users, 32)
    h = synthetic_ds.full_history(np.arange(1, 6))
    np.testing.assert_allclose(users[:5] @ items.T, model.score(h)[:, 1:].numpy(), rtol=1e-4, atol=1e-4)
