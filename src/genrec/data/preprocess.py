"""Raw interactions -> processed, split, cached Dataset.

Steps (in order): implicit conversion (optional rating threshold), de-duplication, iterative
k-core filtering, contiguous id maps (0 = padding), chronological order with a stable tie-break
by file order, item text assembly, split by protocol.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.dataset import Dataset, EvalSet, Histories

PROTOCOLS = ("loo", "temporal", "users")
CACHE_VERSION = 3  # 2: 'users' protocol keeps only training users' items; 3: ratings are kept


class DataError(ValueError):
    """Bad input data; the message names the file, line and field where known."""


@dataclass
class RawData:
    """What every reader returns. `interactions` rows are in file order."""

    name: str
    interactions: pd.DataFrame  # user, item, timestamp (Int64 or absent), rating (float or absent)
    items: pd.DataFrame | None = None  # index = raw item id; title, categories, brand, description, price
    sources: list[Path] = field(default_factory=list)  # files read, for the cache hash


@dataclass
class DataConfig:
    """How raw interactions become a processed, split dataset."""

    protocol: str = "loo"  # loo | temporal | users
    rating_threshold: float | None = None  # keep ratings >= threshold (None: every rating is an interaction)
    dedup: str = "first"  # none | first | last: which copy of a repeated (user, item) pair to keep
    min_user_interactions: int = 0  # iterative k-core, 0 = off
    min_item_interactions: int = 0
    valid_fraction: float = 0.1  # temporal: share of events after the valid cut; users: share of users
    test_fraction: float = 0.1
    foldin_fraction: float = 0.8  # users protocol: share of a held-out user's items given as input
    seed: int = 0

    def validate(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        if self.dedup not in ("none", "first", "last"):
            raise ValueError(f"dedup must be none, first or last, got {self.dedup!r}")
        for f in ("valid_fraction", "test_fraction", "foldin_fraction"):
            v = getattr(self, f)
            if not 0 < v < 1:
                raise ValueError(f"{f} must be in (0, 1), got {v}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction + test_fraction must be < 1")


def cache_root() -> Path:
    return Path(os.environ.get("GENREC_CACHE_DIR", Path.home() / ".cache" / "genrec")) / "processed"


def _hash_inputs(raw: RawData, cfg: DataConfig, extra: dict) -> str:
    h = hashlib.sha256()
    key = {"v": CACHE_VERSION, "cfg": dataclasses.asdict(cfg), **extra}
    h.update(json.dumps(key, sort_keys=True).encode())
    for p in sorted(raw.sources):
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def preprocess(raw: RawData, cfg: DataConfig) -> Dataset:
    cfg.validate()
    df = raw.interactions
    n_raw = len(df)
    if n_raw == 0:
        raise DataError(f"{raw.name}: no interactions were read")
    # numpy arrays, not DataFrame copies: ML-20M-sized input must stay in bounded memory
    rows = None
    if cfg.rating_threshold is not None:
        if "rating" not in df:
            raise DataError(f"{raw.name}: --rating-threshold given but the data has no rating column")
        rows = np.flatnonzero(df["rating"].to_numpy() >= cfg.rating_threshold)
    has_time = "timestamp" in df and bool(df["timestamp"].notna().all())
    u, user_raw = _sorted_codes(df["user"].to_numpy(), rows)
    i, item_raw = _sorted_codes(df["item"].to_numpy(), rows)
    ts = None
    if has_time:
        ts = df["timestamp"].to_numpy(np.int64)
        ts = ts[rows] if rows is not None else ts
    rating = None  # kept (float32) for models that read ratings as side information
    if "rating" in df:
        rating = df["rating"].to_numpy(np.float32, na_value=np.nan)
        rating = rating[rows] if rows is not None else rating
    del rows
    # chronological per user, stable tie-break by file order (codes follow the sorted raw ids)
    perm = _chronological(u, ts)
    if perm is not None:
        u, i = u[perm], i[perm]
        ts = ts[perm] if ts is not None else None
        rating = rating[perm] if rating is not None else None
        del perm
    keep = _first_occurrences(u, i, len(item_raw), cfg.dedup) if cfg.dedup != "none" else None
    keep = _k_core_mask(u, i, len(user_raw), len(item_raw), keep, cfg.min_user_interactions,
                        cfg.min_item_interactions)
    if keep is not None:
        u, i = u[keep], i[keep]
        ts = ts[keep] if ts is not None else None
        rating = rating[keep] if rating is not None else None
        del keep
    if len(u) == 0:
        raise DataError(
            f"{raw.name}: no interactions left after filtering (rating >= {cfg.rating_threshold}, "
            f"k-core {cfg.min_user_interactions}/{cfg.min_item_interactions}); loosen the filters"
        )
    # contiguous ids 1..n over what is left, in raw-id order; rows are already sorted by user
    users, user_raw = _compact(u, user_raw)
    items, item_raw = _compact(i, item_raw)
    del u, i
    n_users, n_items = len(user_raw), len(item_raw)
    seqs = _csr(users, items, ts, n_users, rating)
    train, valid, test = SPLITS[cfg.protocol](seqs, cfg)
    n_inter = int(len(items))
    if cfg.protocol == "users":
        # the catalogue is what the training users interacted with (Liang et al.'s reference setup)
        (train, valid, test), kept = _compact_items((train, valid, test), n_items)
        item_raw, n_items = item_raw[kept - 1], len(kept)
        parts = (train, valid.history, valid.targets, test.history, test.targets)
        n_inter = int(sum(len(h.items) for h in parts))
    title, text, category = _item_text(raw.items, item_raw)
    pad = np.array([""], dtype=object)
    return Dataset(
        name=raw.name,
        user_raw=np.concatenate([np.array([_pad_like(user_raw)], dtype=user_raw.dtype), user_raw]),
        item_raw=np.concatenate([np.array([_pad_like(item_raw)], dtype=item_raw.dtype), item_raw]),
        train=train, valid=valid, test=test, protocol=cfg.protocol,
        item_title=None if title is None else np.concatenate([pad, title]).astype(str),
        item_text=None if text is None else np.concatenate([pad, text]).astype(str),
        item_category=None if category is None else np.concatenate([pad, category]).astype(str),
        manifest={
            "config": dataclasses.asdict(cfg), "n_raw": n_raw,
            "n_interactions": n_inter,
            "n_users": n_users, "n_items": n_items, "has_timestamps": bool(has_time),
            "has_ratings": rating is not None,
            "n_train": int(len(train.items)), "n_valid_users": len(valid), "n_test_users": len(test),
        },
    )


def _pad_like(arr: np.ndarray) -> object:
    return -1 if np.issubdtype(arr.dtype, np.integer) else ""


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


def _k_core_mask(u: np.ndarray, i: np.ndarray, n_users: int, n_items: int, keep: np.ndarray | None,
                 min_user: int, min_item: int) -> np.ndarray | None:
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


def _csr(users: np.ndarray, items: np.ndarray, ts: np.ndarray | None, n_users: int,
         ratings: np.ndarray | None = None) -> Histories:
    """Per-user sequences, row = internal user id (row 0 empty); `users` must be sorted."""
    counts = np.bincount(users, minlength=n_users + 1)
    indptr = np.zeros(n_users + 2, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Histories(indptr, items, ts, np.arange(n_users + 1), ratings)


def _select(h: Histories, keep: np.ndarray, rows: np.ndarray | None = None) -> Histories:
    """Keep entries where `keep` (bool per entry), then keep rows `rows` (all if None)."""
    row_ids = h.row_ids()
    if rows is not None and (len(rows) < 2 or bool(np.all(np.diff(rows) > 0))):
        # ascending rows: fold the row filter into the entry mask, so no full-size copy is made first
        in_rows = np.zeros(len(h), dtype=bool)
        in_rows[rows] = True
        keep = keep & in_rows[row_ids]
        lens = np.bincount(row_ids[keep], minlength=len(h))[rows]
        users = h.users[rows]
        rows = None
    else:
        lens = np.bincount(row_ids[keep], minlength=len(h))
        users = h.users
    del row_ids
    indptr = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    ts = h.timestamps[keep] if h.timestamps is not None else None
    ratings = h.ratings[keep] if h.ratings is not None else None
    out = Histories(indptr, h.items[keep], ts, users, ratings)
    return out if rows is None else out.take(rows)


def _position(h: Histories) -> tuple[np.ndarray, np.ndarray]:
    """Position of each entry inside its row, and its row's length."""
    lens = np.repeat(h.lengths, h.lengths)
    return np.arange(len(h.items)) - np.repeat(h.indptr[:-1], h.lengths), lens


def without_items(ds: Dataset, items: np.ndarray) -> Dataset:
    """`ds` with every interaction of `items` removed from training and from the evaluation histories;
    evaluation targets stay. The cold-start setting: items in the catalogue that nobody has used yet."""
    drop = np.zeros(ds.n_items + 1, dtype=bool)
    drop[items] = True

    def keep(h: Histories) -> Histories:
        return _select(h, ~drop[h.items])

    return dataclasses.replace(
        ds, train=keep(ds.train),
        valid=EvalSet(keep(ds.valid.history), ds.valid.targets),
        test=EvalSet(keep(ds.test.history), ds.test.targets))


def leave_one_out_split(seqs: Histories, cfg: DataConfig) -> tuple[Histories, EvalSet, EvalSet]:
    """Last item = test target, second last = valid target; users with < 3 items only train."""
    pos, lens = _position(seqs)
    evaluable = lens >= 3
    train = _select(seqs, ~evaluable | (pos < lens - 2))
    users = np.flatnonzero(seqs.lengths >= 3)
    valid = EvalSet(_select(seqs, pos < lens - 2, users), _select(seqs, evaluable & (pos == lens - 2), users))
    test = EvalSet(_select(seqs, pos < lens - 1, users), _select(seqs, evaluable & (pos == lens - 1), users))
    return train, valid, test


def temporal_split(seqs: Histories, cfg: DataConfig) -> tuple[Histories, EvalSet, EvalSet]:
    """Global time cuts: train < t_valid <= valid targets < t_test <= test targets."""
    if seqs.timestamps is None:
        raise DataError("protocol 'temporal' needs timestamps, and this data has none; use --protocol loo")
    ts = seqs.timestamps
    t_valid = np.quantile(ts, 1 - cfg.valid_fraction - cfg.test_fraction, method="higher")
    t_test = np.quantile(ts, 1 - cfg.test_fraction, method="higher")
    train = _select(seqs, ts < t_valid)

    def evalset(t_lo: int, t_hi: int | None) -> EvalSet:
        hist_mask = ts < t_lo
        tgt_mask = (ts >= t_lo) if t_hi is None else (ts >= t_lo) & (ts < t_hi)
        row_ids = seqs.row_ids()
        has_hist = np.bincount(row_ids[hist_mask], minlength=len(seqs)) > 0
        has_tgt = np.bincount(row_ids[tgt_mask], minlength=len(seqs)) > 0
        users = np.flatnonzero(has_hist & has_tgt)
        return EvalSet(_select(seqs, hist_mask, users), _select(seqs, tgt_mask, users))

    return train, evalset(t_valid, t_test), evalset(t_test, None)


def heldout_users_split(seqs: Histories, cfg: DataConfig) -> tuple[Histories, EvalSet, EvalSet]:
    """Strong generalization (Liang et al. 2018, and their reference preprocessing).

    A random `valid_fraction` / `test_fraction` of the users are held out entirely; all other users
    are the training set. Held-out users' interactions with items no training user has are dropped
    (the catalogue is the training users' items; `preprocess` re-indexes it). Each held-out user's
    remaining items are split at random: floor((1 - foldin_fraction) * n) targets (at least one),
    the rest are the fold-in input; held-out users left with < 2 items are not evaluated.
    """
    rng = np.random.default_rng(cfg.seed)
    candidates = np.flatnonzero(seqs.lengths >= 2)
    perm = rng.permutation(candidates)
    n_u = len(seqs) - 1
    n_valid = max(1, round(cfg.valid_fraction * n_u))
    n_test = max(1, round(cfg.test_fraction * n_u))
    if n_valid + n_test >= len(perm):
        raise DataError(f"too few users ({len(perm)} with >= 2 items) for the 'users' protocol")
    valid_users, test_users = np.sort(perm[:n_valid]), np.sort(perm[n_valid : n_valid + n_test])
    heldout = np.zeros(len(seqs), dtype=bool)
    heldout[valid_users] = heldout[test_users] = True
    train = _select(seqs, ~heldout[seqs.row_ids()])
    seen = np.bincount(train.items, minlength=int(seqs.items.max(initial=0)) + 1) > 0
    seqs = _select(seqs, seen[seqs.items])  # only held-out entries can be dropped here
    row_ids = seqs.row_ids()
    # per entry: fold-in unless among the last n_target of a random permutation of the row
    rand = rng.random(len(seqs.items))
    pos_in_row = np.lexsort((rand, row_ids))
    rank = np.empty_like(pos_in_row)
    rank[pos_in_row] = np.arange(len(pos_in_row))
    rank -= np.repeat(seqs.indptr[:-1], seqs.lengths)
    lens = np.repeat(seqs.lengths, seqs.lengths)
    # floor as in the reference (int(0.2 * n)); the epsilon keeps 0.2 * 10 from flooring to 1
    n_target = np.maximum(1, np.floor((1 - cfg.foldin_fraction) * lens + 1e-9)).astype(np.int64)
    is_target = rank >= lens - n_target

    def evalset(users: np.ndarray) -> EvalSet:
        users = users[seqs.lengths[users] >= 2]
        return EvalSet(_select(seqs, ~is_target, users), _select(seqs, is_target, users))

    return train, evalset(valid_users), evalset(test_users)


def _compact_items(parts: tuple[Histories, EvalSet, EvalSet], n_items: int):
    """Re-index items to those in the training part: returns the parts and the kept old ids (sorted)."""
    train, valid, test = parts
    kept = np.flatnonzero(np.bincount(train.items, minlength=n_items + 1)[1:] > 0) + 1
    new_id = np.zeros(n_items + 1, dtype=np.int64)
    new_id[kept] = np.arange(1, len(kept) + 1)

    def remap(h: Histories) -> Histories:
        if len(h.items) and (new_id[h.items] == 0).any():
            raise AssertionError("an evaluation item is missing from the training catalogue")
        return Histories(h.indptr, new_id[h.items], h.timestamps, h.users, h.ratings)

    out = (remap(train), EvalSet(remap(valid.history), remap(valid.targets)),
           EvalSet(remap(test.history), remap(test.targets)))
    return out, kept


SPLITS = {"loo": leave_one_out_split, "temporal": temporal_split, "users": heldout_users_split}


def _item_text(items: pd.DataFrame | None, item_raw: np.ndarray):
    """Title, assembled text and main category aligned to `item_raw` (None if no metadata)."""
    if items is None or len(items) == 0:
        return None, None, None
    meta = items.reindex(pd.Index(item_raw))
    title = meta["title"].fillna("").astype(str).to_numpy() if "title" in meta else None
    parts = []
    for col, label in (("title", ""), ("categories", "Categories: "), ("brand", "Brand: "),
                       ("price", "Price: "), ("description", "")):
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


def prepare(raw: RawData, cfg: DataConfig, cache: bool = True, extra_key: dict | None = None) -> Dataset:
    """Preprocess with an on-disk cache keyed by a hash of the input files and the settings."""
    cfg.validate()
    key = _hash_inputs(raw, cfg, extra_key or {}) if cache and (raw.sources or extra_key) else None
    path = cache_root() / f"{_slug(raw.name)}-{key}" if key else None
    if path is not None and (path / "manifest.json").exists():
        ds = Dataset.load(path)
        ds.manifest["cache_path"] = str(path)
        return ds
    ds = preprocess(raw, cfg)
    ds.manifest["hash"] = key
    if path is not None:
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        try:
            ds.save(tmp)
            try:  # atomic publish: readers never see a half-written cache
                os.replace(tmp, path)
            except OSError:
                if not (path / "manifest.json").exists():  # else a concurrent prepare published it first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # debris of a failed or redundant write
        ds.manifest["cache_path"] = str(path)
    return ds


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
