"""HSTU side tokens (ratings): data carries ratings through preprocessing, the model reads them, the
KV cache matches recomputation, save/load round-trips, bad settings and rating-less data fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.cache import prepare
from genrec.data.dataset import Dataset, Histories
from genrec.data.synthetic import SyntheticConfig, generate
from genrec.data.types import DataConfig
from genrec.evaluation import evaluate
from genrec.generation.decoders import extend_histories
from genrec.models import Recommender
from genrec.models.hstu import HSTU, HSTUConfig, rating_tokens
from genrec.training import TrainConfig, fit

FAST = {
    "size": "tiny",
    "max_len": 30,
    "batch_tokens": 1024,
    "lr": 5e-3,
    "warmup_steps": 10,
    "dropout": 0.1,
    "epochs": 4,
    "patience": 2,
    "item_text": "off",  # the titles name the category: keep the comparison to what ratings add
}


@pytest.fixture(scope="module")
def rated_ds() -> Dataset:
    """Synthetic data (no successor chains) whose rating of an item tells the residue mod 5 of the
    user's *next* item: information only a model that reads ratings can use."""
    raw = generate(SyntheticConfig(n_users=600, p_follow=0.0, max_len=30))
    df = raw.interactions
    nxt = df.groupby("user")["item"].shift(-1)
    df["rating"] = np.where(nxt.isna(), 3.0, 1.0 + nxt.fillna(0).to_numpy() % 5)
    return prepare(raw, DataConfig(), cache=False)


@pytest.fixture(scope="module")
def trained(rated_ds):
    out = {}
    for side in ("none", "rating"):
        out[side] = fit(HSTU(HSTUConfig(**FAST, side_tokens=side)), rated_ds, TrainConfig(threads=1))
    return out


def test_ratings_survive_preprocessing_and_the_cache(tmp_path):
    raw = generate()
    raw.interactions["rating"] = (raw.interactions["item"] % 7).astype(float) + 0.5
    ds = prepare(raw, DataConfig(), cache=False)
    for h in (ds.train, ds.valid.history, ds.valid.targets, ds.test.history, ds.test.targets):
        assert h.ratings is not None and len(h.ratings) == len(h.items)
        raw_item = ds.item_raw[h.items].astype(np.int64)
        assert np.array_equal(h.ratings, (raw_item % 7) + 0.5)  # aligned with the items after sorting
    full = ds.full_history(np.array([2, 1, 5]))  # what serving and `genrec recommend` read
    assert np.array_equal(full.ratings, (ds.item_raw[full.items].astype(np.int64) % 7) + 0.5)
    ds.save(tmp_path / "ds")
    assert np.array_equal(Dataset.load(tmp_path / "ds").test.history.ratings, ds.test.history.ratings)
    sub = ds.test.history.take(np.array([3, 1]))
    assert np.array_equal(
        sub.ratings,
        np.concatenate(
            [
                ds.test.history.ratings[ds.test.history.indptr[r] : ds.test.history.indptr[r + 1]]
                for r in (3, 1)
            ]
        ),
    )


def test_rating_tokens_nearest_value_and_unknown():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float32)
    got = rating_tokens(np.array([1, 5, 3.4, 3.6, np.nan, 0.2, 9], dtype=np.float32), values)
    assert got.tolist() == [1, 5, 3, 4, 0, 1, 5]


def test_side_tokens_change_scores_and_help(trained, rated_ds):
    side, plain = trained["rating"], trained["none"]
    assert side.fit_info_["side_values"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    h = rated_ds.test.history.take(slice(0, 40))
    other = Histories(h.indptr, h.items, h.timestamps, h.users, np.roll(h.ratings, 1), h.request_ts)
    unknown = Histories(h.indptr, h.items, h.timestamps, h.users, request_ts=h.request_ts)
    s = side.score(h)
    assert not torch.allclose(s, side.score(other))
    assert not torch.allclose(s, side.score(unknown)) and torch.isfinite(side.score(unknown)[:, 1:]).all()
    # without side tokens the ratings are ignored
    assert torch.equal(plain.score(h), plain.score(other))
    # the ratings carry the next item's residue: only the side-token model can use it
    n_side = evaluate(side.score, rated_ds.test, ks=(10,))["ndcg@10"]
    n_plain = evaluate(plain.score, rated_ds.test, ks=(10,))["ndcg@10"]
    assert n_side > 2.0 * n_plain, (n_side, n_plain)


def test_save_load_round_trip(trained, rated_ds, tmp_path):
    model = trained["rating"]
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    h = rated_ds.test.history.take(slice(0, 30))
    assert torch.equal(model.score(h), loaded.score(h))
    assert np.array_equal(loaded.side_values_, model.side_values_)


def test_kv_cache_matches_recompute_with_ratings(trained, rated_ds):
    model = trained["rating"]
    h = rated_ds.test.history.take(np.array([0, 5, 9, 2]))
    h = Histories.from_lists([h.row(b)[-n:] for b, n in enumerate([3, 12, 1, 25])])  # varied lengths
    src = rated_ds.test.history.take(np.array([0, 5, 9, 2]))
    ends = src.indptr[1:]
    h.ratings = np.concatenate([src.ratings[e - n : e] for e, n in zip(ends, [3, 12, 1, 25])])
    scores, cache = model.start(h)
    assert torch.allclose(scores, model.score(h), atol=1e-4)
    rng = np.random.default_rng(0)
    appended = np.zeros((len(h), 0), dtype=np.int64)
    for _ in range(3):
        nxt = rng.integers(1, rated_ds.n_items + 1, len(h))
        scores, cache = model.extend(cache, torch.from_numpy(nxt))
        appended = np.concatenate([appended, nxt[:, None]], 1)
        full = model.score(extend_histories(h, np.arange(len(h)), appended))  # generated: rating NaN
        assert torch.allclose(scores[:, 1:], full[:, 1:], atol=1e-4), (scores - full)[:, 1:].abs().max()


@pytest.mark.parametrize(
    "bad, field", [({"side_tokens": "action"}, "side_tokens"), ({"side_dropout": 1.0}, "side_dropout")]
)
def test_bad_side_settings_are_clear_errors(bad, field):
    with pytest.raises(ValueError, match=field):
        HSTU(HSTUConfig(**bad))


def test_data_without_ratings_is_a_clear_error():
    raw = generate()
    raw.interactions = raw.interactions.drop(columns="rating")
    ds = prepare(raw, DataConfig(), cache=False)
    assert ds.train.ratings is None
    with pytest.raises(ValueError, match="has no ratings"):
        fit(HSTU(HSTUConfig(**FAST, side_tokens="rating")), ds)
