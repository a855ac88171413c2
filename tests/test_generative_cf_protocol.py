"""The strong-generalization ('users') protocol follows Liang et al. 2018's reference preprocessing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genrec.data.cache import prepare
from genrec.data.types import DataConfig, RawData


def _raw() -> RawData:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(1, 201), 12)
    items = np.concatenate([rng.choice(60, 12, replace=False) + 1 for _ in range(200)])
    # items 1001..1010 are only ever seen by users 1..10, so most of them belong to held-out users only
    users = np.concatenate([users, np.arange(1, 11)])
    items = np.concatenate([items, np.arange(1001, 1011)])
    return RawData("toy", pd.DataFrame({"user": users, "item": items, "timestamp": np.arange(len(users))}))


def test_users_protocol_is_faithful_to_the_reference():
    ds = prepare(_raw(), DataConfig(protocol="users", valid_fraction=0.2, test_fraction=0.2), cache=False)
    train_items = set(ds.train.items.tolist())
    assert train_items == set(range(1, ds.n_items + 1))  # the catalogue is the training users' items
    for part in (ds.valid, ds.test):
        users = part.history.users
        assert (ds.train.lengths[users] == 0).all()  # held-out users are absent from training
        assert set(part.history.items.tolist()) <= train_items
        assert set(part.targets.items.tolist()) <= train_items
        n = part.history.lengths + part.targets.lengths
        np.testing.assert_array_equal(part.targets.lengths, np.maximum(1, np.floor(0.2 * n + 1e-9)))
        for b in range(len(part)):  # fold-in and targets partition the user's (kept) items
            assert not set(part.history.row(b)) & set(part.targets.row(b))
    assert len(ds.valid) == len(ds.test) == 40
    raw_kept = set(ds.item_raw[1:].tolist())
    assert not {1001 + i for i in range(10)} <= raw_kept  # held-out-only items left the catalogue
