"""Preprocessing and splits on hand-made interaction tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genrec.data import cache
from genrec.data.cache import prepare
from genrec.data.cleaning import _k_core, preprocess
from genrec.data.dataset import Dataset
from genrec.data.types import DataConfig, DataError, RawData


def raw(rows: list[tuple], cols=("user", "item", "timestamp"), name="toy", sources=()) -> RawData:
    return RawData(name, pd.DataFrame(rows, columns=list(cols)), None, list(sources))


def py(v):
    return v.item() if hasattr(v, "item") else v


def seqs_raw(ds: Dataset, h) -> list[list]:
    """Rows of a Histories as lists of raw item ids."""
    return [[py(ds.item_raw[i]) for i in h.row(b)] for b in range(len(h))]


def users_raw(ds: Dataset, h) -> list:
    return [py(ds.user_raw[u]) for u in h.users]


# user 10: 5 items, user 20: 3 items, user 30: 2 items (train only)
LOO_ROWS = [
    (10, 101, 5),
    (20, 201, 1),
    (10, 102, 1),
    (30, 301, 1),
    (10, 103, 2),
    (20, 202, 2),
    (10, 104, 3),
    (30, 302, 2),
    (20, 203, 3),
    (10, 105, 4),
]


def test_leave_one_out():
    ds = preprocess(raw(LOO_ROWS), DataConfig())
    # chronological: user 10 read 102(t1) 103 104 105 101(t5)
    assert users_raw(ds, ds.test.history) == [10, 20]
    assert seqs_raw(ds, ds.test.targets) == [[101], [203]]
    assert seqs_raw(ds, ds.test.history) == [[102, 103, 104, 105], [201, 202]]
    assert seqs_raw(ds, ds.valid.targets) == [[105], [202]]
    assert seqs_raw(ds, ds.valid.history) == [[102, 103, 104], [201]]
    train = dict(zip(users_raw(ds, ds.train)[1:], seqs_raw(ds, ds.train)[1:]))
    assert train == {10: [102, 103, 104], 20: [201], 30: [301, 302]}  # < 3 items: training only
    assert ds.manifest["n_train"] == 6 and ds.manifest["n_test_users"] == 2


def test_stable_tie_break_by_file_order():
    # equal timestamps keep file order; rows out of time order are sorted
    rows = [(1, "c", 7), (1, "a", 5), (1, "b", 5), (1, "z", 5), (1, "d", 9)]
    ds = preprocess(raw(rows), DataConfig())
    assert seqs_raw(ds, ds.test.history) == [["a", "b", "z", "c"]]
    assert seqs_raw(ds, ds.test.targets) == [["d"]]
    # without timestamps: file order is the order
    ds = preprocess(raw([(1, "c"), (1, "a"), (1, "b")], cols=("user", "item")), DataConfig())
    assert seqs_raw(ds, ds.test.history) == [["c", "a"]] and seqs_raw(ds, ds.test.targets) == [["b"]]


def test_contiguous_ids_both_ways_zero_is_padding():
    ds = preprocess(raw(LOO_ROWS), DataConfig())
    assert ds.n_users == 3 and ds.n_items == 10
    assert ds.train.lengths[0] == 0 and ds.train.users[0] == 0  # row 0 = padding user
    for raw_u in (10, 20, 30):
        assert ds.user_raw[ds.user_ids.index(raw_u)] == raw_u and ds.user_ids.index(raw_u) >= 1
    for raw_i in (101, 105, 203, 302):
        assert ds.item_raw[ds.item_ids.index(raw_i)] == raw_i and ds.item_ids.index(raw_i) >= 1
    assert sorted(ds.item_ids.index(i) for i in np.unique([r[1] for r in LOO_ROWS])) == list(range(1, 11))
    all_items = np.concatenate([ds.train.items, ds.test.targets.items, ds.valid.targets.items])
    assert all_items.min() >= 1 and all_items.max() == ds.n_items
    with pytest.raises(KeyError, match="unknown user"):
        ds.user_ids.index(99)


@pytest.mark.parametrize(
    "keep, expected",
    [("first", ["x", "y", "z"]), ("last", ["y", "z", "x"]), ("none", ["x", "y", "x", "z", "x"])],
)
def test_dedup(keep, expected):
    rows = [(1, "x", 1), (1, "y", 2), (1, "x", 3), (1, "z", 4), (1, "x", 5)]
    ds = preprocess(raw(rows), DataConfig(dedup=keep))
    assert seqs_raw(ds, ds.test.history)[0] + seqs_raw(ds, ds.test.targets)[0] == expected


def test_iterative_k_core_needs_more_than_one_pass():
    # u1, u2 x {p, q} is the 2-core. u4's "s" is rare -> u4 keeps only r -> u4 goes -> r is rare
    # (only u3) -> u3 keeps only p -> u3 goes. A single item+user pass would leave r and u3.
    rows = [
        ("u1", "p", 1),
        ("u1", "q", 2),
        ("u2", "p", 1),
        ("u2", "q", 2),
        ("u3", "p", 1),
        ("u3", "r", 2),
        ("u4", "r", 1),
        ("u4", "s", 2),
    ]
    df = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    one_pass = df[df.groupby("item")["item"].transform("size") >= 2]
    one_pass = one_pass[one_pass.groupby("user")["user"].transform("size") >= 2]
    assert "r" in set(one_pass["item"])  # the hand-made case really needs a second pass
    core = _k_core(df, 2, 2)
    assert set(map(tuple, core[["user", "item"]].to_numpy())) == {
        ("u1", "p"),
        ("u1", "q"),
        ("u2", "p"),
        ("u2", "q"),
    }
    ds = preprocess(RawData("toy", df), DataConfig(min_user_interactions=2, min_item_interactions=2))
    assert sorted(ds.user_raw[1:]) == ["u1", "u2"] and sorted(ds.item_raw[1:]) == ["p", "q"]


def test_rating_threshold():
    rows = [(1, "a", 1, 5.0), (1, "b", 2, 2.0), (1, "c", 3, 4.0), (1, "d", 4, 3.9), (1, "e", 5, 4.5)]
    ds = preprocess(raw(rows, cols=("user", "item", "timestamp", "rating")), DataConfig(rating_threshold=4))
    assert sorted(ds.item_raw[1:]) == ["a", "c", "e"]
    with pytest.raises(DataError, match="no rating column"):
        preprocess(raw([(1, "a", 1)]), DataConfig(rating_threshold=4))


def test_empty_after_filtering_is_a_clear_error():
    with pytest.raises(DataError, match="no interactions left after filtering"):
        preprocess(raw(LOO_ROWS), DataConfig(min_user_interactions=50))


def test_temporal_split_global_cut_no_future_leakage():
    rng = np.random.default_rng(0)
    n = 600
    rows = list(zip(rng.integers(1, 40, n), rng.integers(1, 80, n), rng.integers(0, 10_000, n)))
    ds = preprocess(raw(rows), DataConfig(protocol="temporal", dedup="none"))
    t_train_max = ds.train.timestamps.max()
    v_min, v_max = ds.valid.targets.timestamps.min(), ds.valid.targets.timestamps.max()
    t_min = ds.test.targets.timestamps.min()
    assert t_train_max < v_min <= v_max < t_min  # one global cut, not per user
    # histories never contain anything at or after their targets' period
    assert ds.valid.history.timestamps.max() < v_min
    assert ds.test.history.timestamps.max() < t_min
    # test input = everything before the test cut (training + validation period) for that user
    for b in range(len(ds.test)):
        u = ds.test.history.users[b]
        assert set(ds.train.row(u)) <= set(ds.test.history.row(b))
    # about 10 % of the events are test targets
    assert 0.05 < len(ds.test.targets.items) / n < 0.15
    with pytest.raises(DataError, match="needs timestamps"):
        preprocess(
            raw([(1, "a"), (1, "b"), (1, "c")], cols=("user", "item")), DataConfig(protocol="temporal")
        )


def test_heldout_users_split():
    rng = np.random.default_rng(1)
    # 50 items: every item is (almost surely) seen by a training user, so nothing is dropped here;
    # tests/test_generative_cf_protocol.py covers dropping held-out-only items
    rows = [(u, int(i), t) for u in range(1, 101) for t, i in enumerate(rng.choice(50, 10, replace=False))]
    ds = preprocess(raw(rows), DataConfig(protocol="users"))
    valid_u, test_u = set(ds.valid.history.users), set(ds.test.history.users)
    train_u = {u for u in range(1, ds.n_users + 1) if ds.train.lengths[u] > 0}
    assert len(valid_u) == len(test_u) == 10 and len(train_u) == 80
    assert not (valid_u & test_u) and not (train_u & (valid_u | test_u))
    for es in (ds.valid, ds.test):
        assert set(es.history.lengths) == {8} and set(es.targets.lengths) == {2}  # 80/20 fold-in
        for b in range(len(es)):
            u = es.history.users[b]
            full = {i for (uu, i, _) in rows if uu == ds.user_raw[u]}
            got = {ds.item_raw[i] for i in np.concatenate([es.history.row(b), es.targets.row(b)])}
            assert got == full and not set(es.history.row(b)) & set(es.targets.row(b))
    # deterministic from the seed, different with another seed
    again = preprocess(raw(rows), DataConfig(protocol="users"))
    assert np.array_equal(again.test.targets.items, ds.test.targets.items)
    other = preprocess(raw(rows), DataConfig(protocol="users", seed=5))
    assert set(other.test.history.users) != test_u


def test_item_text_joined_and_aligned():
    items = pd.DataFrame(
        {"title": ["Alpha", "Beta"], "categories": ["Books|Poetry", "Music"]}, index=[101, 102]
    )
    r = raw(LOO_ROWS)
    r.items = items
    ds = preprocess(r, DataConfig())
    i = ds.item_ids.index(102)
    assert ds.item_title[i] == "Beta" and "Music" in ds.item_text[i] and ds.item_category[i] == "Music"
    assert ds.item_category[ds.item_ids.index(101)] == "Books"
    assert ds.item_title[0] == "" and ds.item_title[ds.item_ids.index(105)] == ""


# --- cache -----------------------------------------------------------------------------------
def write_src(path, rows) -> RawData:
    path.write_text("\n".join(" ".join(map(str, r)) for r in rows))
    return raw(rows, sources=[path])


def test_cache_reused_when_hash_matches_and_rebuilt_when_not(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "inter.txt"
    first = prepare(write_src(src, LOO_ROWS), DataConfig())
    path = first.manifest["cache_path"]
    calls = []
    real = cache.preprocess
    monkeypatch.setattr(cache, "preprocess", lambda r, c: calls.append(1) or real(r, c))
    again = prepare(write_src(src, LOO_ROWS), DataConfig())
    assert calls == [] and again.manifest["cache_path"] == path  # reused, not recomputed
    assert np.array_equal(again.test.targets.items, first.test.targets.items)
    assert list(again.item_raw) == list(first.item_raw)
    other_cfg = prepare(write_src(src, LOO_ROWS), DataConfig(min_user_interactions=3))
    assert calls == [1] and other_cfg.manifest["cache_path"] != path  # settings changed -> rebuilt
    changed = prepare(write_src(src, LOO_ROWS + [(10, 106, 9)]), DataConfig())
    assert calls == [1, 1] and changed.manifest["cache_path"] != path  # input changed -> rebuilt
    assert changed.test.targets.items.tolist() != first.test.targets.items.tolist()


def test_cache_never_half_written(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "inter.txt"
    real_save = Dataset.save

    def crash(self, path):
        real_save(self, path)  # everything written ...
        raise OSError("disk full")  # ... then the process dies before publishing

    monkeypatch.setattr(Dataset, "save", crash)
    with pytest.raises(OSError):
        prepare(write_src(src, LOO_ROWS), DataConfig())
    root = tmp_path / "cache" / "processed"
    assert not root.exists() or list(root.iterdir()) == []  # nothing published, no debris
    monkeypatch.setattr(Dataset, "save", real_save)
    ds = prepare(write_src(src, LOO_ROWS), DataConfig())
    assert (root / ds.manifest["cache_path"].split("/")[-1] / "manifest.json").exists()
