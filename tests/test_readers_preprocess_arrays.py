"""The array-based preprocessing (bounded memory) must equal a plain pandas reference of the same rules:
rating threshold, chronological order with a file-order tie-break, de-duplication, iterative k-core,
contiguous ids in raw-id order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genrec.data.cleaning import preprocess
from genrec.data.types import DataConfig, RawData


def _reference(df: pd.DataFrame, thr, dedup, k_user, k_item) -> dict:
    df = df.assign(_order=np.arange(len(df)))
    if thr is not None:
        df = df[df["rating"] >= thr]
    cols = ["user", "timestamp", "_order"] if "timestamp" in df else ["user", "_order"]
    df = df.sort_values(cols, kind="stable")
    if dedup != "none":
        df = df.drop_duplicates(["user", "item"], keep=dedup)
    while k_user or k_item:
        n = len(df)
        if k_item:
            df = df[df.groupby("item")["item"].transform("size") >= k_item]
        if k_user:
            df = df[df.groupby("user")["user"].transform("size") >= k_user]
        if len(df) == n:
            break
    return {u: g["item"].tolist() for u, g in df.groupby("user", sort=True)}


@pytest.mark.parametrize(
    "thr, dedup, k_user, k_item, with_time",
    [
        (None, "first", 0, 0, True),
        (3.0, "last", 4, 6, True),
        (None, "none", 3, 8, True),
        (None, "first", 2, 0, False),
    ],
)
def test_matches_pandas_reference(thr, dedup, k_user, k_item, with_time):
    rng = np.random.default_rng(1)
    n = 6000
    df = pd.DataFrame(
        {
            "user": np.array([f"u{x:03d}" for x in rng.integers(0, 150, n)], dtype=object),
            "item": rng.integers(0, 300, n) * 3 + 1,  # sparse raw ids
            "timestamp": rng.integers(0, 40, n),  # many ties: the file order must break them
            "rating": rng.integers(1, 6, n).astype(float),
        }
    )
    if not with_time:
        df = df.drop(columns="timestamp")
    cfg = DataConfig(
        rating_threshold=thr, dedup=dedup, min_user_interactions=k_user, min_item_interactions=k_item
    )
    ds = preprocess(RawData("t", df), cfg)
    ref = _reference(df, thr, dedup, k_user, k_item)
    assert list(ds.user_raw[1:]) == sorted(ref)
    assert list(ds.item_raw[1:]) == sorted({i for seq in ref.values() for i in seq})
    full = ds.full_history(np.arange(1, ds.n_users + 1))
    for b, u in enumerate(ds.user_raw[1:]):
        assert ds.item_raw[full.row(b)].tolist() == ref[u], u
