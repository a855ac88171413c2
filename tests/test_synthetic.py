"""The synthetic default dataset: deterministic, long-tailed, and really sequential."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genrec.data.synthetic import SyntheticConfig, generate
from genrec.evaluation import evaluate
from genrec.models import get_model_class


def test_deterministic_from_seed():
    a, b = generate(SyntheticConfig(seed=3)), generate(SyntheticConfig(seed=3))
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    c = generate(SyntheticConfig(seed=4))
    assert not a.interactions["item"].equals(c.interactions["item"])


def test_shape_timestamps_and_text():
    cfg = SyntheticConfig()
    raw = generate(cfg)
    df = raw.interactions
    assert df["user"].nunique() == cfg.n_users
    lens = df.groupby("user").size()
    assert lens.min() >= cfg.min_len and lens.max() <= cfg.max_len
    assert (df.groupby("user")["timestamp"].diff().dropna() > 0).all()  # strictly increasing per user
    # every title names its category
    assert all(c in t for t, c in zip(raw.items["title"], raw.items["categories"]))


def test_long_tail_popularity():
    counts = np.sort(generate().interactions["item"].value_counts().to_numpy())[::-1]
    share_top10 = counts[: len(counts) // 10].sum() / counts.sum()
    share_bottom50 = counts[len(counts) // 2 :].sum() / counts.sum()
    assert share_top10 > 0.3  # a head of 10 % of items gets a third of the traffic or more
    assert share_bottom50 < 0.2  # the tail half gets little
    assert counts[0] > 20 * np.median(counts)


def test_sequential_structure_beats_popularity(synthetic_ds):
    """A first-order 'what usually follows the last item' model, estimated on training sequences
    only, must beat Most-Popular by a wide margin: the data has order a popularity model cannot use."""
    ds = synthetic_ds
    tr = ds.train
    same_user = np.diff(tr.row_ids()) == 0
    prev, nxt = tr.items[:-1][same_user], tr.items[1:][same_user]
    n = ds.n_items + 1
    bigram = np.zeros((n, n), dtype=np.float32)
    np.add.at(bigram, (prev, nxt), 1.0)
    pop = ds.item_popularity.astype(np.float32)
    import torch

    def successor_score(h):
        last = h.items[h.indptr[1:] - 1]
        # bigram counts first; popularity only breaks ties among the rest
        return torch.from_numpy(bigram[last] * 1e6 + pop[None, :])

    seq = evaluate(successor_score, ds.test, ks=(10,))
    popm = evaluate(get_model_class("pop")().fit(ds).score, ds.test, ks=(10,))
    assert seq["hr@10"] > 3 * popm["hr@10"]
    assert seq["ndcg@10"] > 3 * popm["ndcg@10"]
