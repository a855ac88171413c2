"""The low-level pieces every recommendation list and every ranking metric share.

- eligibility: padding, the row's history, allowed and blocked items (for the whole batch, or one
  set per row) -> `ineligible` (a mask) or `mask_scores` (ineligible scores set to -inf in place);
- `top_k`: the k best eligible items with padding slots (item 0, score -inf) when fewer exist;
- reproducible noise: a counter-based hash (`mix32`), a key per history row (`row_keys`) and Gumbel
  noise that is a pure function of (row key, step, item), so a row gets the same draws alone or in
  any batch;
- `nucleus`: the top-p set of a softmax.

Everything works on internal item ids (1..n_items; column 0 of a score matrix is padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from genrec.data.dataset import Histories


@dataclass
class RowSets:
    """One item set per row of a batch (CSR): row b holds `items[indptr[b]:indptr[b + 1]]`; a row whose
    `given[b]` is False has no set (for `allowed`: no restriction)."""

    indptr: np.ndarray  # (B + 1,) int64
    items: np.ndarray  # (nnz,) int64 internal item ids
    given: np.ndarray  # (B,) bool

    @staticmethod
    def from_lists(sets: Sequence[Sequence[int] | np.ndarray | None]) -> RowSets:
        given = np.array([s is not None for s in sets], dtype=bool)
        arrays = [np.asarray(s if s is not None else (), dtype=np.int64).ravel() for s in sets]
        indptr = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=indptr[1:])
        items = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
        return RowSets(indptr, items.astype(np.int64), given)

    def __len__(self) -> int:
        return len(self.given)

    def row_ids(self) -> np.ndarray:
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.indptr))

    def take(self, rows: np.ndarray | slice) -> RowSets:
        h = Histories(self.indptr, self.items).take(rows)
        return RowSets(h.indptr, h.items, self.given[rows])


ItemFilter = np.ndarray | RowSets | None  # one set for every row, one set per row, or none


def check_filter(name: str, ids: ItemFilter, n_items: int, rows: int) -> None:
    """ValueError naming `name` when ids are out of range or a per-row filter has the wrong length."""
    if ids is None:
        return
    items = ids.items if isinstance(ids, RowSets) else ids
    if isinstance(ids, RowSets) and len(ids) != rows:
        raise ValueError(f"{name} has {len(ids)} rows but the batch has {rows} histories")
    if len(items) and (items.min() < 1 or items.max() > n_items):
        bad = items.min() if items.min() < 1 else items.max()
        raise ValueError(f"{name} contains item id {bad}, outside the model's items 1..{n_items}")


def _fill(
    t: torch.Tensor,
    value,
    histories: Histories | None,
    exclude_seen: bool,
    allowed: ItemFilter,
    blocked: ItemFilter,
) -> torch.Tensor:
    """Write `value` into `t` (B, V) wherever an item is ineligible for that row."""
    B, V = t.shape
    t[:, 0] = value
    if exclude_seen and histories is not None and len(histories.items):
        t[torch.from_numpy(histories.row_ids()), torch.from_numpy(histories.items)] = value
    if isinstance(blocked, RowSets):
        if len(blocked.items):
            t[torch.from_numpy(blocked.row_ids()), torch.from_numpy(blocked.items)] = value
    elif blocked is not None and len(blocked):
        t[:, torch.as_tensor(np.asarray(blocked, dtype=np.int64))] = value
    if isinstance(allowed, RowSets):
        if allowed.given.any():
            keep = torch.ones(B, V, dtype=torch.bool)
            keep[torch.from_numpy(allowed.given)] = False
            keep[torch.from_numpy(allowed.row_ids()), torch.from_numpy(allowed.items)] = True
            t.masked_fill_(~keep, value)
    elif allowed is not None:
        keep = torch.zeros(V, dtype=torch.bool)
        keep[torch.as_tensor(np.asarray(allowed, dtype=np.int64))] = True
        t[:, ~keep] = value
    return t


def mask_scores(
    scores: torch.Tensor,
    histories: Histories | None,
    exclude_seen: bool = True,
    allowed: ItemFilter = None,
    blocked: ItemFilter = None,
) -> torch.Tensor:
    """Set ineligible entries of `scores` (B, n_items + 1) to -inf in place and return it: padding,
    the row's history items (when `exclude_seen`), blocked items, items outside `allowed`."""
    return _fill(scores, -torch.inf, histories, exclude_seen, allowed, blocked)


def ineligible(
    histories: Histories | None,
    n_items: int,
    exclude_seen: bool = True,
    allowed: ItemFilter = None,
    blocked: ItemFilter = None,
    rows: int | None = None,
) -> torch.Tensor:
    """(B, n_items + 1) bool, True where an item may not appear for that row (padding included).
    B is `len(histories)`, or `rows` without histories."""
    B = len(histories) if histories is not None else (rows if rows is not None else 1)
    for name, ids in (("allowed", allowed), ("blocked", blocked)):
        check_filter(name, ids, n_items, B)
    banned = torch.zeros(B, n_items + 1, dtype=torch.bool)
    return _fill(banned, True, histories, exclude_seen, allowed, blocked)


def top_k(masked: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, k) item ids and scores of the k highest entries of each row of `masked` (ineligible items
    already at -inf), best first. Slots without an eligible item hold item 0 and -inf, also when the
    catalogue is smaller than k."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kk = min(k, masked.shape[1])
    vals, idx = torch.topk(masked, kk, dim=1)
    idx.masked_fill_(vals == -torch.inf, 0)
    if kk < k:
        pad = k - kk
        idx = torch.cat([idx, torch.zeros(len(idx), pad, dtype=idx.dtype)], 1)
        vals = torch.cat([vals, torch.full((len(vals), pad), -torch.inf, dtype=vals.dtype)], 1)
    return idx, vals


def nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(R, V) bool: the smallest set of most likely items whose softmax mass reaches `top_p`
    (the most likely item is always kept)."""
    probs = torch.softmax(logits.float(), dim=1)
    sp, order = probs.sort(dim=1, descending=True)
    before = sp.cumsum(1) - sp  # mass of the strictly more likely items
    keep_sorted = (before < top_p) & (sp > 0)
    keep_sorted[:, 0] = True
    return torch.zeros_like(keep_sorted).scatter_(1, order, keep_sorted)


# --- reproducible noise -------------------------------------------------------------------------------
M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2^32 for x in [0, 2^32) without overflowing int64 (split c into 16-bit halves)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & M32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xorshift-multiply, "lowbias32"); a bijection on [0, 2^32)."""
    x = x & M32
    x = _mul32(x ^ (x >> 16), 0x7FEB352D)
    x = _mul32(x ^ (x >> 15), 0x846CA68B)
    return x ^ (x >> 16)


def row_keys(h: Histories, seed: int) -> torch.Tensor:
    """(B,) 32-bit key per row from (seed, user id, history contents): independent of the batch."""
    items = torch.from_numpy(h.items)
    pos = torch.arange(len(items)) - torch.from_numpy(np.repeat(h.indptr[:-1], h.lengths))
    per_item = mix32(items + mix32(pos + 0x9E3779B9))
    content = torch.zeros(len(h), dtype=torch.long).index_add_(0, torch.from_numpy(h.row_ids()), per_item)
    s = mix32(torch.tensor(seed & M32))
    return mix32(mix32(s ^ torch.from_numpy(h.users)) + content)


def gumbel(keys: torch.Tensor, step: int, V: int) -> torch.Tensor:
    """(R, V) float64 standard Gumbel noise, a pure function of (row key, step, item)."""
    s = mix32(keys + (step + 1) * 0x9E3779B9)
    u = (mix32(s[:, None] ^ torch.arange(V)[None, :]).double() + 0.5) / 2.0**32
    return -torch.log(-torch.log(u))
