"""Why an item is in a list: the history items whose removal lowers its score the most.

Leave-one-out score deltas are faithful by construction: they are what the model itself attributes to
each history item, through `score` alone, for any model (for EASE they equal the item-item weights
B[h, i] exactly). One extra batched `score` call covers every explained row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genrec.data.dataset import Histories
from genrec.models.base import Recommender

MAX_HISTORY = 50  # only the most recent history items are candidates
TOP = 3  # history items cited per recommended item


@dataclass(frozen=True)
class Reason:
    """One history item behind a recommended item."""

    item: int  # internal id of the history item
    delta: float  # score(i | history) - score(i | history without every occurrence of `item`)
    position: int  # how recent its latest occurrence is: 0 = the last item of the history


@torch.no_grad()
def reasons(
    model: Recommender,
    histories: Histories,
    items: np.ndarray,
    scores: torch.Tensor | None = None,
    max_history: int = MAX_HISTORY,
    top: int = TOP,
) -> list[list[list[Reason]]]:
    """For row b and each recommended item `items[b, j]` (0 = padding slot: no reasons), up to `top`
    distinct history items h with the largest score drop score(i | history) - score(i | history
    without h), strongest first; only drops > 1e-6 count.

    `scores`: `model.score(histories)` when the caller already has it.
    """
    full = (model.score(histories) if scores is None else scores).float()
    seqs, stamps, owners, dropped, recency = [], [], [], [], []
    for b in range(len(histories)):
        row = histories.row(b)
        ts = histories.row_timestamps(b)
        for h in np.unique(row[-max_history:]):
            keep = row != h
            seqs.append(row[keep])
            stamps.append(ts[keep] if ts is not None else None)
            owners.append(b)
            dropped.append(int(h))
            recency.append(len(row) - 1 - int(np.flatnonzero(row == h)[-1]))
    out: list[list[list[Reason]]] = [[[] for _ in range(items.shape[1])] for _ in range(len(histories))]
    if not seqs:
        return out
    timed = histories.timestamps is not None
    owners_a, dropped_a, recency_a = np.asarray(owners), np.asarray(dropped), np.asarray(recency)
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
        rows = sel.numpy()[idx.numpy()]  # (t, K) rows of `without`
        for j in np.flatnonzero(items[b] > 0):
            out[b][j] = [
                Reason(int(dropped_a[r]), float(v), int(recency_a[r]))
                for r, v, good in zip(rows[:, j], vals[:, j].tolist(), ok[:, j].tolist())
                if good
            ]
    return out


@torch.no_grad()
def order_effect(model: Recommender, histories: Histories, items: np.ndarray) -> np.ndarray:
    """(B, K) score(i | history) - score(i | the same items in reverse order, times unchanged): how much
    the order of the history, recent items last, does for each recommended item. 0 for models that
    read a history as a set (EASE, Mult-VAE); for sequence models, positive when recency helps."""
    if len(histories) == 0:
        return np.zeros(items.shape, dtype=np.float64)
    rev = Histories.from_lists([histories.row(b)[::-1] for b in range(len(histories))], histories.users)
    rev.timestamps = histories.timestamps
    rows = torch.arange(len(histories))[:, None]
    cols = torch.from_numpy(items.astype(np.int64))
    diff = model.score(histories).float()[rows, cols] - model.score(rev).float()[rows, cols]
    return torch.where(cols > 0, diff, torch.zeros_like(diff)).double().numpy()


def explain(
    model: Recommender,
    histories: Histories,
    items: np.ndarray,
    scores: torch.Tensor | None = None,
    max_history: int = MAX_HISTORY,
    top: int = TOP,
) -> list[list[list[int]]]:
    """`reasons`, as the cited history items' internal ids only (what a list's `because` shows)."""
    why = reasons(model, histories, items, scores, max_history, top)
    return [[[r.item for r in rs] for rs in row] for row in why]
