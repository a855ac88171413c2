"""Business rules every generation strategy shares: seen items, allowed set, blocked items,
per-category caps. Everything here works on internal item ids (1..n_items; 0 = padding)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from genrec.data.dataset import Histories
from genrec.ranking import RowSets, check_filter, ineligible, mask_scores


@dataclass
class Constraints:
    """What a generated list may contain.

    exclude_seen   drop items already in the row's history
    allowed        if given, only these item ids may appear
    blocked        these item ids never appear
    category_cap   at most this many items of one category per list (needs `item_category`)
    item_category  (n_items + 1,) category label per item (e.g. `Dataset.item_category`); items with an
                   empty label, and padding, are never capped

    `allowed` and `blocked` take one set for the whole batch (a 1-D array of ids) or one set per
    history row (a list with an array per row; None in `allowed` = no restriction for that row), so
    requests with different filters share one generation call.
    """

    exclude_seen: bool = True
    allowed: np.ndarray | RowSets | Sequence | None = None
    blocked: np.ndarray | RowSets | Sequence | None = None
    category_cap: int | None = None
    item_category: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.category_cap is not None:
            if self.category_cap < 1:
                raise ValueError(f"category_cap must be >= 1, got {self.category_cap}")
            if self.item_category is None:
                raise ValueError(
                    "category_cap needs item categories, but this dataset has none "
                    "(its items carry no category metadata)"
                )
        for name in ("allowed", "blocked"):
            ids = getattr(self, name)
            if ids is not None and not isinstance(ids, RowSets):
                ids = _item_filter(ids, name)
                setattr(self, name, ids)
            items = ids.items if isinstance(ids, RowSets) else ids
            if items is not None and len(items) and items.min() < 1:
                raise ValueError(f"{name} item ids must be internal ids >= 1, got {items.min()}")

    @property
    def per_row(self) -> bool:
        return isinstance(self.allowed, RowSets) or isinstance(self.blocked, RowSets)

    def take(self, rows: np.ndarray | slice) -> Constraints:
        """The constraints of a sub-batch (per-row filters follow their rows)."""
        if not self.per_row:
            return self
        pick = [f.take(rows) if isinstance(f, RowSets) else f for f in (self.allowed, self.blocked)]
        return dataclasses.replace(self, allowed=pick[0], blocked=pick[1])

    def banned(self, histories: Histories | None, n_items: int) -> torch.Tensor:
        """(B, n_items + 1) bool: True where an item may never appear for that row (incl. padding)."""
        return ineligible(histories, n_items, self.exclude_seen, self.allowed, self.blocked)

    def masked(self, scores: torch.Tensor, histories: Histories | None) -> torch.Tensor:
        """A float copy of `scores` (B, n_items + 1) with every banned entry at -inf (= masked_fill with
        `banned`, without building the mask)."""
        for name in ("allowed", "blocked"):
            check_filter(name, getattr(self, name), scores.shape[1] - 1, len(scores))
        return mask_scores(scores.float().clone(), histories, self.exclude_seen, self.allowed, self.blocked)

    def category_codes(self, n_items: int) -> tuple[torch.Tensor, int]:
        """(n_items + 1,) category code per item and the number of codes. The last code is the
        "uncapped" bucket (padding, items without a category, or no cap at all)."""
        if self.category_cap is None:
            return torch.zeros(n_items + 1, dtype=torch.long), 1
        labels = np.asarray(self.item_category).astype(str)
        if len(labels) != n_items + 1:
            raise ValueError(f"item_category has {len(labels)} entries; expected n_items + 1 = {n_items + 1}")
        uniq, codes = np.unique(labels, return_inverse=True)
        n = len(uniq)
        codes = np.where(labels == "", n, codes)
        codes[0] = n
        return torch.from_numpy(codes.astype(np.int64)), n + 1


def _item_filter(ids: np.ndarray | Sequence, name: str) -> np.ndarray | RowSets:
    """A 1-D array of ids (one set for every row), or a list of per-row sets -> RowSets."""
    if isinstance(ids, np.ndarray) or not any(s is None or np.ndim(s) > 0 for s in ids):
        arr = np.asarray(ids)
        if arr.ndim != 1 or (len(arr) and arr.dtype.kind not in "iu"):
            raise ValueError(f"{name} must be a 1-D array of item ids or a list with one array per row")
        return arr.astype(np.int64)
    return RowSets.from_lists(ids)


class Eligibility:
    """Per-row eligibility while a list grows: base bans + items already generated + category caps.

    Rows are decoding rows (users x beams); `rowmap[r]` is the user row of the batch that row r
    belongs to, so the (B, n_items + 1) base mask is never copied per beam.
    """

    def __init__(self, constraints: Constraints, histories: Histories, n_items: int) -> None:
        self.base = constraints.banned(histories, n_items)  # (B, V)
        self.cat, self.n_cat = constraints.category_codes(n_items)  # (V,), C
        self.cap = constraints.category_cap

    def new_counts(self, rows: int) -> torch.Tensor:
        return torch.zeros(rows, self.n_cat, dtype=torch.long)

    def count(self, counts: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Add one generated item per row to the per-category counts (R, C)."""
        counts = counts.clone()
        counts[torch.arange(len(items)), self.cat[items]] += 1
        return counts

    def apply(
        self, scores: torch.Tensor, rowmap: torch.Tensor, slate: torch.Tensor, counts: torch.Tensor
    ) -> torch.Tensor:
        """Set banned entries of `scores` (R, V) to -inf in place; `slate` (R, t) items so far."""
        dev = scores.device
        banned = self.base.index_select(0, rowmap).to(dev)
        if slate.shape[1]:
            banned.scatter_(1, slate.to(dev), True)  # no duplicates inside a list
        if self.cap is not None:
            full = counts >= self.cap  # (R, C)
            full[:, -1] = False  # the uncapped bucket
            banned |= full.to(dev)[:, self.cat.to(dev)]
        return scores.masked_fill_(banned, -torch.inf)
