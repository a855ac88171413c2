"""Why an item is in a list: the history items whose removal lowers its score the most.

Leave-one-out score deltas are faithful by construction: they are what the model itself attributes to
each history item, through `score` alone, for any model (for EASE they equal the item-item weights
B[h, i] exactly). One extra batched `score` call covers every explained row.
"""

from __future__ import annotations

import numpy as np
import torch

from genrec.data.dataset import Histories
from genrec.models.base import Recommender

MAX_HISTORY = 50  # only the most recent history items are candidates
TOP = 3  # history items cited per recommended item


@torch.no_grad()
def explain(
    model: Recommender,
    histories: Histories,
    items: np.ndarray,
    scores: torch.Tensor | None = None,
    max_history: int = MAX_HISTORY,
    top: int = TOP,
) -> list[list[list[int]]]:
    """For row b and each recommended item `items[b, j]` (0 = padding slot: no reasons), up to `top`
    distinct history items h (internal ids) with the largest score drop score(i | history) -
    score(i | history without h), strongest first; only drops > 1e-6 count.

    `scores`: `model.score(histories)` when the caller already has it.
    """
    full = (model.score(histories) if scores is None else scores).float()
    seqs, stamps, owners, dropped = [], [], [], []
    for b in range(len(histories)):
        row = histories.row(b)
        ts = histories.row_timestamps(b)
        for h in np.unique(row[-max_history:]):
            keep = row != h
            seqs.append(row[keep])
            stamps.append(ts[keep] if ts is not None else None)
            owners.append(b)
            dropped.append(int(h))
    out = [[[] for _ in range(items.shape[1])] for _ in range(len(histories))]
    if not seqs:
        return out
    timed = histories.timestamps is not None
    owners_a, dropped_a = np.asarray(owners), np.asarray(dropped)
    without = Histories.from_lists(seqs, histories.users[owners_a], stamps if timed else None)
    loo = model.score(without).float()
    for b in range(len(histories)):
        sel = torch.from_numpy(np.flatnonzero(owners_a == b))
        if not len(sel):
            continue
        rec = torch.from_numpy(items[b].astype(np.int64))
        delta = full[b, rec][None, :] - loo[sel][:, rec]  # (H, K): what each history item adds
        vals, idx = delta.topk(min(top, len(sel)), dim=0)  # (t, K), strongest first
        ok = (vals > 1e-6) & torch.isfinite(vals)
        cited = dropped_a[sel.numpy()[idx.numpy()]]  # (t, K) history item ids
        for j in np.flatnonzero(items[b] > 0):
            out[b][j] = cited[ok[:, j].numpy(), j].tolist()
    return out
