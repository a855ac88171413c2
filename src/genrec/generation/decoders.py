"""Decoders: the `IncrementalModel` protocol for every model.

- a model that implements the protocol (SASRec, HSTU) is its own decoder: encode once, then one
  position per generated item from the KV cache;
- `RecomputeDecoder` gives any `Recommender` the same interface by re-scoring the whole extended
  history (`model.score(history + generated)`) at every step. It is the fallback for models without
  a cache (Mult-VAE/DAE, tiger's sampling, ...) and the baseline of benchmarks/generation.py;
- `StaticDecoder` returns given scores at every step (top-k under per-list constraints).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genrec.data.dataset import Histories
from genrec.models.base import IncrementalModel, Recommender


def decoder_for(model: Recommender, use_cache: bool | None = None) -> IncrementalModel:
    """The model itself if it implements the protocol (and `use_cache` is not False), else a
    `RecomputeDecoder`. `use_cache=True` on a model without the protocol is an error."""
    has = isinstance(model, IncrementalModel)
    if use_cache and not has:
        raise ValueError(
            f"model {model.name!r} has no KV cache "
            "(it does not implement start/extend/reorder); use use_cache=False or None"
        )
    return model if has and use_cache is not False else RecomputeDecoder(model)


def extend_histories(base: Histories, rowmap: np.ndarray, appended: np.ndarray) -> Histories:
    """Rows `base[rowmap[r]]` followed by `appended[r]` (R, t). Appended items get the row's request
    time, or without one its last timestamp (the same convention as a cached step)."""
    h = base.take(rowmap)
    R, t = appended.shape
    lens = h.lengths
    indptr = h.indptr + np.arange(R + 1, dtype=np.int64) * t
    items = np.empty(indptr[-1], dtype=np.int64)
    old = np.arange(len(h.items)) + np.repeat(np.arange(R, dtype=np.int64) * t, lens)
    new = (np.repeat(indptr[1:] - t, t) + np.tile(np.arange(t), R)).astype(np.int64)
    items[old] = h.items
    items[new] = appended.ravel()
    ts = None
    if h.timestamps is not None:
        last = np.zeros(R, dtype=np.int64)
        last[lens > 0] = h.timestamps[h.indptr[1:][lens > 0] - 1]
        if h.request_ts is not None:
            last = h.request_ts
        ts = np.empty(indptr[-1], dtype=np.int64)
        ts[old] = h.timestamps
        ts[new] = np.repeat(last, t)
    ratings = None
    if h.ratings is not None:  # a generated item's rating is unknown (NaN), as in a cached step
        ratings = np.full(indptr[-1], np.nan, dtype=np.float32)
        ratings[old] = h.ratings
    return Histories(indptr, items, ts, h.users, ratings, h.request_ts)


@dataclass
class _PrefixCache:
    base: Histories  # the batch given to start()
    rowmap: np.ndarray  # (R,) base row of each decoding row
    appended: np.ndarray  # (R, t) generated items so far


class RecomputeDecoder:
    """Protocol adapter that re-scores the full prefix at every step (no cache): O(prefix) per step."""

    def __init__(self, model: Recommender) -> None:
        self.model = model

    def start(self, histories: Histories) -> tuple[torch.Tensor, _PrefixCache]:
        cache = _PrefixCache(histories, np.arange(len(histories)), np.zeros((len(histories), 0), np.int64))
        return self.model.score(histories), cache

    def extend(self, cache: _PrefixCache, items: torch.Tensor) -> tuple[torch.Tensor, _PrefixCache]:
        appended = np.concatenate([cache.appended, items.cpu().numpy().astype(np.int64)[:, None]], 1)
        cache = _PrefixCache(cache.base, cache.rowmap, appended)
        return self.model.score(extend_histories(cache.base, cache.rowmap, appended)), cache

    def reorder(self, cache: _PrefixCache, index: torch.Tensor) -> _PrefixCache:
        idx = index.cpu().numpy()
        return _PrefixCache(cache.base, cache.rowmap[idx], cache.appended[idx])


class StaticDecoder:
    """Returns the same row scores at every step (no conditioning): top-k lists under per-list rules."""

    def __init__(self, scores: torch.Tensor) -> None:
        self.scores = scores  # (B, n_items + 1) the model's scores of the batch

    def start(self, histories: Histories) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scores, self.scores

    def extend(self, cache: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cache, cache

    def reorder(self, cache: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return cache.index_select(0, index.to(cache.device))
