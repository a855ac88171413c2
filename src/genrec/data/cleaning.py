"""Raw interactions -> processed, split Dataset.

Steps (in order): implicit conversion (optional rating threshold), chronological order with a stable
tie-break by file order, de-duplication, iterative k-core filtering, contiguous id maps (0 = padding),
split by protocol (genrec.data.splits), item text assembly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genrec.data.dataset import Dataset, Histories
from genrec.data.splits import SPLITS, Parts, compact_items
from genrec.data.types import DataConfig, DataError, RawData


@dataclass
class _Columns:
    """Interactions as parallel numpy arrays, not DataFrame copies: ML-20M-sized input must stay in
    bounded memory."""

    users: np.ndarray  # codes in sorted raw-id order
    items: np.ndarray
    timestamps: np.ndarray | None
    ratings: np.ndarray | None  # kept (float32) for models that read ratings as side information

    def take(self, rows: np.ndarray) -> None:
        """Keep `rows` (indices or a mask), one column at a time so at most one column is copied at once."""
        self.users = self.users[rows]
        self.items = self.items[rows]
        if self.timestamps is not None:
            self.timestamps = self.timestamps[rows]
        if self.ratings is not None:
            self.ratings = self.ratings[rows]


def preprocess(raw: RawData, cfg: DataConfig) -> Dataset:
    """Clean, index and split `raw` by the steps in the module docstring."""
    cfg.validate()
    n_raw = len(raw.interactions)
    if n_raw == 0:
        raise DataError(f"{raw.name}: no interactions were read")
    cols, user_raw, item_raw = _columns(raw, cfg)
    _clean(cols, cfg, len(user_raw), len(item_raw))
    if len(cols.users) == 0:
        raise DataError(
            f"{raw.name}: no interactions left after filtering (rating >= {cfg.rating_threshold}, "
            f"k-core {cfg.min_user_interactions}/{cfg.min_item_interactions}); loosen the filters"
        )
    # contiguous ids 1..n over what is left, in raw-id order; rows are already sorted by user
    cols.users, user_raw = _compact(cols.users, user_raw)
    cols.items, item_raw = _compact(cols.items, item_raw)
    seqs = _csr(cols.users, cols.items, cols.timestamps, len(user_raw), cols.ratings)
    train, valid, test = SPLITS[cfg.protocol](seqs, cfg)
    n_inter = int(len(seqs.items))
    if cfg.protocol == "users":
        # the catalogue is what the training users interacted with (Liang et al.'s reference setup)
        (train, valid, test), kept = compact_items((train, valid, test), len(item_raw))
        item_raw = item_raw[kept - 1]
        parts = (train, valid.history, valid.targets, test.history, test.targets)
        n_inter = int(sum(len(h.items) for h in parts))
    manifest = {
        "config": dataclasses.asdict(cfg),
        "n_raw": n_raw,
        "n_interactions": n_inter,
        "n_users": len(user_raw),
        "n_items": len(item_raw),
        "has_timestamps": cols.timestamps is not None,
        "has_ratings": cols.ratings is not None,
        "n_train": int(len(train.items)),
        "n_valid_users": len(valid),
        "n_test_users": len(test),
    }
    return _dataset(raw, cfg, user_raw, item_raw, (train, valid, test), manifest)


def _columns(raw: RawData, cfg: DataConfig) -> tuple[_Columns, np.ndarray, np.ndarray]:
    """The rows the rating threshold keeps, users and items coded in sorted raw-id order; and the
    sorted raw user and item ids."""
    df = raw.interactions
    rows = None
    if cfg.rating_threshold is not None:
        if "rating" not in df:
            raise DataError(f"{raw.name}: --rating-threshold given but the data has no rating column")
        rows = np.flatnonzero(df["rating"].to_numpy() >= cfg.rating_threshold)
    users, user_raw = _sorted_codes(df["user"].to_numpy(), rows)
    items, item_raw = _sorted_codes(df["item"].to_numpy(), rows)
    ts = None
    if "timestamp" in df and bool(df["timestamp"].notna().all()):
        ts = df["timestamp"].to_numpy(np.int64)
        ts = ts[rows] if rows is not None else ts
    ratings = None
    if "rating" in df:
        ratings = df["rating"].to_numpy(np.float32, na_value=np.nan)
        ratings = ratings[rows] if rows is not None else ratings
    return _Columns(users, items, ts, ratings), user_raw, item_raw


def _clean(cols: _Columns, cfg: DataConfig, n_users: int, n_items: int) -> None:
    """Sort chronologically per user, de-duplicate and k-core filter `cols` in place."""
    # stable tie-break by file order (codes follow the sorted raw ids)
    perm = _chronological(cols.users, cols.timestamps)
    if perm is not None:
        cols.take(perm)
        del perm
    keep = _first_occurrences(cols.users, cols.items, n_items, cfg.dedup) if cfg.dedup != "none" else None
    keep = _k_core_mask(
        cols.users, cols.items, n_users, n_items, keep, cfg.min_user_interactions, cfg.min_item_interactions
    )
    if keep is not None:
        cols.take(keep)


def _dataset(
    raw: RawData, cfg: DataConfig, user_raw: np.ndarray, item_raw: np.ndarray, parts: Parts, manifest: dict
) -> Dataset:
    """The Dataset of the split parts, raw ids and item text padded at index 0."""
    train, valid, test = parts
    title, text, category = item_text(raw.items, item_raw)
    pad = np.array([""], dtype=object)
    return Dataset(
        name=raw.name,
        user_raw=_with_pad(user_raw),
        item_raw=_with_pad(item_raw),
        train=train,
        valid=valid,
        test=test,
        protocol=cfg.protocol,
        item_title=None if title is None else np.concatenate([pad, title]).astype(str),
        item_text=None if text is None else np.concatenate([pad, text]).astype(str),
        item_category=None if category is None else np.concatenate([pad, category]).astype(str),
        manifest=manifest,
    )


def _with_pad(raw_ids: np.ndarray) -> np.ndarray:
    """`raw_ids` behind a padding entry (-1 or "") at index 0, the internal padding id."""
    pad = -1 if np.issubdtype(raw_ids.dtype, np.integer) else ""
    return np.concatenate([np.array([pad], dtype=raw_ids.dtype), raw_ids])


def _sorted_codes(values: np.ndarray, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Dense int32 codes of `values[rows]` numbered in sorted raw-id order, and the sorted raw ids.

    A hash factorize (O(n)) plus a sort of the few distinct ids, instead of np.unique's sort of all rows.
    """
    vals = values[rows] if rows is not None else values
    codes, uniques = pd.factorize(vals)
    uniques = np.asarray(uniques)
    order = np.argsort(uniques, kind="stable")
    rank = np.empty(len(uniques), dtype=np.int32)
    rank[order] = np.arange(len(uniques), dtype=np.int32)
    return rank[codes], uniques[order]


def _chronological(u: np.ndarray, ts: np.ndarray | None) -> np.ndarray | None:
    """Stable permutation sorting rows by (user, time), ties in file order; None if already sorted."""
    if len(u) == 0:
        return None
    if ts is None:
        return None if bool(np.all(u[1:] >= u[:-1])) else np.argsort(u, kind="stable")
    t0, span = int(ts.min()), int(ts.max()) - int(ts.min()) + 1
    if (int(u.max(initial=0)) + 1) * span < 2**62:  # one int64 key: a single stable sort
        key = u.astype(np.int64) * span + (ts - t0)
        if bool(np.all(key[1:] >= key[:-1])):
            return None
        return np.argsort(key, kind="stable")
    return np.lexsort((ts, u))  # lexsort is stable


def _first_occurrences(u: np.ndarray, i: np.ndarray, n_items: int, dedup: str) -> np.ndarray:
    """Mask keeping the first (or last) row of each (user, item) pair in the current order."""
    pair = u.astype(np.int64) * n_items + i
    if dedup == "last":
        pair = pair[::-1]
    _, idx = np.unique(pair, return_index=True)  # a stable sort: idx is each pair's first row
    del pair
    keep = np.zeros(len(u), dtype=bool)
    keep[idx if dedup == "first" else len(u) - 1 - idx] = True
    return keep


def _k_core(df: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    """Iterative k-core of a (user, item) frame (the rule `preprocess` applies, on a DataFrame)."""
    u, _ = _sorted_codes(df["user"].to_numpy(), None)
    i, _ = _sorted_codes(df["item"].to_numpy(), None)
    n_u, n_i = int(u.max(initial=-1)) + 1, int(i.max(initial=-1)) + 1
    keep = _k_core_mask(u, i, n_u, n_i, None, min_user, min_item)
    return df if keep is None else df[keep]


def _k_core_mask(
    u: np.ndarray,
    i: np.ndarray,
    n_users: int,
    n_items: int,
    keep: np.ndarray | None,
    min_user: int,
    min_item: int,
) -> np.ndarray | None:
    """Iterative k-core on a row mask: drop items, then users, below their threshold until stable."""
    if min_user <= 0 and min_item <= 0:
        return keep
    keep = np.ones(len(u), dtype=bool) if keep is None else keep
    while True:
        n = int(keep.sum())
        if min_item > 0:
            keep &= (np.bincount(i[keep], minlength=n_items) >= min_item)[i]
        if min_user > 0:
            keep &= (np.bincount(u[keep], minlength=n_users) >= min_user)[u]
        if int(keep.sum()) == n:
            return keep


def _compact(codes: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber the codes still present to 1..n (keeping their order); int64 ids and their raw ids."""
    present = np.bincount(codes, minlength=len(raw)) > 0
    new = np.cumsum(present, dtype=np.int64)  # code -> 1-based id among the present ones
    return new[codes], raw[present]


def _csr(
    users: np.ndarray,
    items: np.ndarray,
    ts: np.ndarray | None,
    n_users: int,
    ratings: np.ndarray | None = None,
) -> Histories:
    """Per-user sequences, row = internal user id (row 0 empty); `users` must be sorted."""
    counts = np.bincount(users, minlength=n_users + 1)
    indptr = np.zeros(n_users + 2, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Histories(indptr, items, ts, np.arange(n_users + 1), ratings)


TextColumns = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]


def item_text(items: pd.DataFrame | None, item_raw: np.ndarray) -> TextColumns:
    """Title, assembled text and main category aligned to `item_raw` (None if no metadata)."""
    if items is None or len(items) == 0:
        return None, None, None
    meta = items.reindex(pd.Index(item_raw))
    title = meta["title"].fillna("").astype(str).to_numpy() if "title" in meta else None
    parts = []
    for col, label in (
        ("title", ""),
        ("categories", "Categories: "),
        ("brand", "Brand: "),
        ("price", "Price: "),
        ("description", ""),
    ):
        if col in meta:
            col_vals = meta[col]
            vals = col_vals.astype(object).where(col_vals.notna(), "").astype(str)  # NaN price -> ""
            parts.append(np.where(vals.to_numpy() != "", label + vals.to_numpy().astype(object), ""))
    text = None
    if parts:
        stacked = np.stack(parts, 1)
        text = np.array(["; ".join(p for p in row if p) for row in stacked], dtype=object)
    category = None
    if "category" in meta:  # a reader's explicit main category wins
        category = meta["category"].fillna("").astype(str).to_numpy()
    elif "categories" in meta:
        category = meta["categories"].fillna("").astype(str).str.split(r"[|,]").str[0].str.strip().to_numpy()
    return title, text, category
