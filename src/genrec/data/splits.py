"""Evaluation protocols: split per-user chronological histories into train, validation and test.

Every split takes the full histories (row = internal user id) and the DataConfig and returns
(train, valid, test); an EvalSet pairs each evaluated user's input history with their targets.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from genrec.data.dataset import Dataset, EvalSet, Histories
from genrec.data.types import DataConfig, DataError

Parts = tuple[Histories, EvalSet, EvalSet]  # train, valid, test


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
        ds,
        train=keep(ds.train),
        valid=EvalSet(keep(ds.valid.history), ds.valid.targets),
        test=EvalSet(keep(ds.test.history), ds.test.targets),
    )


def leave_one_out_split(seqs: Histories, cfg: DataConfig) -> Parts:
    """Last item = test target, second last = valid target; users with < 3 items only train."""
    pos, lens = _position(seqs)
    evaluable = lens >= 3
    train = _select(seqs, ~evaluable | (pos < lens - 2))
    users = np.flatnonzero(seqs.lengths >= 3)
    valid = EvalSet(_select(seqs, pos < lens - 2, users), _select(seqs, evaluable & (pos == lens - 2), users))
    test = EvalSet(_select(seqs, pos < lens - 1, users), _select(seqs, evaluable & (pos == lens - 1), users))
    return train, valid, test


def temporal_split(seqs: Histories, cfg: DataConfig) -> Parts:
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


def heldout_users_split(seqs: Histories, cfg: DataConfig) -> Parts:
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


def compact_items(parts: Parts, n_items: int) -> tuple[Parts, np.ndarray]:
    """Re-index items to those in the training part: returns the parts and the kept old ids (sorted)."""
    train, valid, test = parts
    kept = np.flatnonzero(np.bincount(train.items, minlength=n_items + 1)[1:] > 0) + 1
    new_id = np.zeros(n_items + 1, dtype=np.int64)
    new_id[kept] = np.arange(1, len(kept) + 1)

    def remap(h: Histories) -> Histories:
        if len(h.items) and (new_id[h.items] == 0).any():
            raise AssertionError("an evaluation item is missing from the training catalogue")
        return Histories(h.indptr, new_id[h.items], h.timestamps, h.users, h.ratings)

    out = (
        remap(train),
        EvalSet(remap(valid.history), remap(valid.targets)),
        EvalSet(remap(test.history), remap(test.targets)),
    )
    return out, kept


SPLITS = {"loo": leave_one_out_split, "temporal": temporal_split, "users": heldout_users_split}
